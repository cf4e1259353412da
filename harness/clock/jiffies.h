// What the running kernel is, as far as timing goes: its release, its CONFIG_HZ,
// and how its jiffies line up with CLOCK_MONOTONIC.
//
// The kernel does not export HZ (getconf CLK_TCK is USER_HZ, always 100), so it is
// read from the kernel config (/proc/config.gz, /boot/config-$(uname -r)) or
// measured from /proc/timer_list, which prints the kernel's CLOCK_MONOTONIC ("now
// at N nsecs") and jiffies side by side (root only). The same samples locate the
// instants where jiffies advances, so a monotonic instant (a packet's timestamp, say)
// can be mapped to the jiffy the kernel saw and how far into it it was: a
// model::JiffyCalibration, which narrows the model's windows to about one tick.
//
// Stateless free functions and a value type; safe from any thread. Reading
// /proc/timer_list takes ~35 us per sample; JiffyClock::measure() takes ~0.3 s.
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "harness/model/timing.h"

namespace kah {

struct HzInfo {
  std::optional<int> hz;  // empty: unknown, the model then covers HZ 100, 250, 300 and 1000
  std::string source;     // where the value comes from, for people
};

// CONFIG_HZ from /proc/config.gz, else /boot/config-$(uname -r), else measured from
// /proc/timer_list, else unknown.
HzInfo detect_hz();
// The same with the places to look given (tests); measuring is skipped if !measure.
HzInfo detect_hz(const std::filesystem::path& proc_config, const std::filesystem::path& boot_config, bool measure);

// "CONFIG_HZ=250" in a kernel config text; only the values Kconfig offers count.
std::optional<int> hz_from_config_text(std::string_view config);
// The same from a file, gzip-compressed or plain.
std::optional<int> hz_from_config_file(const std::filesystem::path& path);

// uname -r.
std::string kernel_release();

// One reading of /proc/timer_list.
struct JiffySample {
  std::int64_t monotonic_ns = 0;  // "now at": the kernel's CLOCK_MONOTONIC when it began printing
  std::uint64_t jiffies = 0;      // "jiffies:", printed a little later
  std::int64_t read_ns = 0;       // jiffies was read at most this long after monotonic_ns
};

// Parses "now at ... nsecs" and the first "jiffies: ..." of /proc/timer_list.
std::optional<JiffySample> parse_timer_list(std::string_view text);
// The phase (ns modulo TICK_NSEC of CLOCK_MONOTONIC) of the kernel's tick grid: the
// instants tick_next_period walks through, before which jiffies never advances
// (tick_do_update_jiffies64() returns early until now reaches it). /proc/timer_list
// shows it exactly, as the expiry of each CPU's tick hrtimer (tick_sched_timer; from 6.10
// tick_nohz_handler) and as each CPU's .last_tick. With skew_tick=1 the CPUs' ticks sit
// apart by up to half a tick after the grid; the grid is the earliest of them (CPU 0's,
// not skewed). Empty when the text shows no tick (periodic low-resolution mode).
std::optional<std::int64_t> tick_grid_phase(std::string_view timer_list, int hz);

// `count` readings, `spacing` apart on average (randomised, so they fall at every
// phase of the tick). Empty if /proc/timer_list cannot be read (not root).
std::vector<JiffySample> read_jiffy_samples(int count, std::chrono::microseconds spacing);
// The kernel's jiffies now, from one reading of /proc/timer_list; empty when it
// cannot be read (not root, or a kernel without it).
std::optional<std::uint64_t> read_jiffies();
// HZ from readings at least ~100 ms apart: the nearest of 100, 250, 300, 1000, if
// within 5 %.
std::optional<int> measure_hz(const std::vector<JiffySample>& samples);

// One firing of a kernel timer, seen from user space: the kernel's timestamp of what
// the timer's callback did (a keepalive probe leaving, captured with its kernel stamp),
// on CLOCK_MONOTONIC, and the wheel granularity of that timer (8^level jiffies: its
// bucket's jiffy is a multiple of it).
struct TimerFiring {
  std::int64_t monotonic_ns = 0;
  std::uint64_t granularity = 1;
};

// The map from CLOCK_MONOTONIC to jiffies: jiffies advances at boundary_ns + n *
// TICK_NSEC, so a monotonic instant t falls in jiffy base + floor((t - boundary) /
// tick), at phase frac((t - boundary) / tick).
class JiffyClock {
 public:
  // Samples /proc/timer_list (a coarse pass, then readings placed around the
  // boundary found). Empty if it cannot be read or the readings do not fit one clock.
  static std::optional<JiffyClock> measure(int hz);
  // The clock the readings allow (each reading knows jiffies only between monotonic_ns
  // and + read_ns). The kernel advances jiffies in the tick interrupt at or after each
  // boundary, never before, and that tick can be late (a busy or preempted VM: seen here
  // up to 0.8 ms): a reading never leads the clock but may lag it by a jiffy. So no
  // reading may lead; the boundary offsets kept are those that need the fewest lagging
  // readings, widened by the largest lateness those show. Empty when no boundary was
  // seen, fewer than 8 readings agree without lateness, more than a quarter lag (a
  // reading that leads makes every other one lag: refused), or one lags by more than the
  // 5 jiffies after which the kernel forces the update (MAX_STALLED_JIFFIES).
  //
  // Without `grid_phase` the earliest boundary is the last reading that showed the old
  // jiffy, less the largest lag seen. That is not a bound: the jiffies update runs some
  // tens of microseconds after its tick on every tick (interrupt latency), a different
  // amount each time, so a reading can show the old jiffy after the grid on a slow tick
  // while a timer fires earlier on a quick one (seen: the fitted earliest boundary 56 us
  // after the grid in 1 of 20 fits here, and a probe stamped 10 us before a window). With
  // `grid_phase` (tick_grid_phase()) the earliest boundary is the grid itself, exact;
  // the latest stays the readings' (a reading that showed the new jiffy).
  static std::optional<JiffyClock> fit(int hz, const std::vector<JiffySample>& samples,
                                       std::optional<std::int64_t> grid_phase = std::nullopt);

  // The clock timer firings allow, without /proc/timer_list. A wheel timer runs in the
  // timer softirq of the tick that makes jiffies reach its bucket, never before that
  // tick's boundary: each firing is a boundary plus the latency from the tick to its
  // stamp, small for most firings. So the phases cluster just after the boundary, taken
  // at the first quartile of their densest stretch of kFiringLatencyNs (a firing delayed
  // by most of a tick wraps round and looks early); the uncertainty covers
  // kFiringLatencyNs before it. A firing also says its jiffy is a multiple of its granularity, which gives
  // jiffies modulo the largest granularity, not jiffies itself: jiffies_modulus(). A
  // firing is never early but often a tick late (the CPU's tick beat the jiffies update)
  // and now and then several: the residue kept leaves the fewest firings more than 2
  // ticks late, then needs the least lateness (lagging_readings(): the firings it makes
  // late); if a quarter are more than 2 ticks late, only the phase (modulus 1). Empty
  // with fewer than 4 firings, or when fewer than half fall in that densest stretch.
  static std::optional<JiffyClock> from_timer_firings(int hz, const std::vector<TimerFiring>& firings);
  // This clock with jiffies itself known, from jiffies read by the kernel somewhere
  // between two instants: `hundredths` is (jiffies - INITIAL_JIFFIES) * 100 / HZ, as an
  // address's creation stamp gives it (ifa_cacheinfo.cstamp, readable by anyone for the
  // addresses of a namespace one owns). Those pin jiffies to a few values, and jiffies
  // modulo the clock's modulus picks one; jiffies read up to MAX_STALLED_JIFFIES late is
  // allowed for. Empty unless exactly one value fits (or the modulus is below 64).
  std::optional<JiffyClock> anchored(std::int64_t from_ns, std::int64_t to_ns, std::uint32_t hundredths) const;

  // How far after its tick's boundary the earliest firing of a calibration is allowed to
  // have been stamped (the tick interrupt, the timer softirq, the callback, the packet's
  // way to the capture tap): measured here at 75-140 us after the boundary (kernel 6.18
  // in a VM; its boundaries are multiples of TICK_NSEC), see the README.
  static constexpr std::int64_t kFiringLatencyNs = 200000;

  // Where a CLOCK_MONOTONIC instant (ms) falls on the jiffy grid.
  model::JiffyCalibration at(double monotonic_ms) const;
  // The CLOCK_MONOTONIC instant (ms) at which jiffies reaches `jiffy` (the start of its
  // tick, the middle of what the readings allow): the inverse of at(). Only when
  // jiffies itself is known (jiffies_modulus() == 0); nullopt otherwise.
  std::optional<double> boundary_ms(std::uint64_t jiffy) const;

  int hz() const { return hz_; }
  std::int64_t tick_ns() const { return tick_ns_; }
  // Offset of the instants jiffies advances at, modulo the tick (the middle of
  // what the readings allow).
  std::int64_t boundary_ns() const { return boundary_ns_; }
  // Half the range of boundary offsets the readings allow, in ticks: how far a
  // computed phase may be off.
  double uncertainty_ticks() const { return uncertainty_ticks_; }
  // The evidence: readings fitted, how many showed jiffies behind their instant (the
  // tick that advances it was late), and at least how late the latest of them was.
  int readings() const { return readings_; }  // readings or firings
  // 0: jiffies is known (timer_list); else it is known modulo this (timer firings).
  std::uint64_t jiffies_modulus() const { return jiffies_modulus_; }
  // "timer_list" or "timer-firings".
  const char* method() const { return from_firings_ ? "timer-firings" : "timer_list"; }
  // The earliest boundary is the kernel's tick grid (tick_grid_phase()), not a fit.
  bool grid_known() const { return grid_known_; }
  bool from_timer_firings() const { return from_firings_; }
  int lagging_readings() const { return lagging_readings_; }
  std::int64_t max_lag_ns() const { return max_lag_ns_; }

 private:
  int hz_ = 0;
  std::int64_t tick_ns_ = 0;
  std::int64_t boundary_ns_ = 0;
  std::int64_t jiffies_base_ = 0;  // jiffies at the boundary at monotonic boundary_ns
  double uncertainty_ticks_ = 1;
  int readings_ = 0;
  int lagging_readings_ = 0;
  std::int64_t max_lag_ns_ = 0;
  std::uint64_t jiffies_modulus_ = 0;
  bool from_firings_ = false;
  bool grid_known_ = false;
};

}  // namespace kah
