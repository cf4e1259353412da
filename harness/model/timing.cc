// The timing model. It replays, in whole jiffies, what the kernel's timers do:
// which wheel bucket each timer lands in (kernel/time/timer.c calc_wheel_index),
// and what the callback decides when it runs (net/ipv4/tcp_timer.c
// tcp_keepalive_timer, tcp_retransmit_timer, tcp_write_timeout). The replay is
// repeated for every alignment of t_r on the jiffy grid that is possible, and each
// window is the hull of the instants the replays produce.
#include "harness/model/timing.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <optional>
#include <stdexcept>
#include <utility>

#include <fmt/format.h>

namespace kah::model {
namespace {

using Jiffies = std::uint64_t;  // an absolute jiffies value, or a delay
using Offset = std::int64_t;    // jiffies after the jiffy t_r falls in

constexpr double kInf = std::numeric_limits<double>::infinity();

// kernel/time/timer.c
constexpr int kLevelClockShift = 3;  // LVL_CLK_SHIFT: each level is 8 times coarser
constexpr Jiffies kLevelSize = 64;   // LVL_SIZE: buckets per level

// Replays use absolute jiffies counted from this origin: a multiple of every wheel
// granularity, so bucket arithmetic is the same as from 0, and far enough from 0
// that nothing goes negative.
constexpr Jiffies kJiffyOrigin = Jiffies{1} << 40;

// A replay may not run away (healthy peers are replayed up to the horizon).
constexpr double kHealthyReplayBudget = 2e7;
constexpr std::size_t kMaxListedEvents = 100000;

int wheel_depth(int hz) { return hz > 100 ? 9 : 8; }  // LVL_DEPTH
Jiffies level_start(int level) { return (kLevelSize - 1) << (kLevelClockShift * (level - 1)); }
Jiffies level_granularity(int level) { return Jiffies{1} << (kLevelClockShift * level); }

// A timer armed from process or softirq context (connect, setsockopt, a segment
// being received): the wheel's clock is the current jiffy.
Jiffies arm_from_task(Jiffies now, Jiffies delay, int hz) { return bucket_expiry(now + delay, now, hz); }

// A timer re-armed from inside its own callback: __run_timers() has already moved
// the wheel's clock one past the bucket it is expiring, so the level is chosen for
// delay - 1 (the bucket rounding itself is unchanged).
Jiffies arm_from_callback(Jiffies fired, Jiffies delay, int hz) {
  return bucket_expiry(fired + delay, fired + 1, hz);
}

Offset signed_diff(Jiffies a, Jiffies b) { return static_cast<Offset>(a) - static_cast<Offset>(b); }

Offset ceil_div(Offset a, Offset b) { return a <= 0 ? 0 : (a + b - 1) / b; }

// An interval of instants (ms) that grows by hull.
struct Span {
  double lo = kInf;
  double hi = -kInf;
  bool empty() const { return lo > hi; }
  void add(double a, double b) {
    lo = std::min(lo, a);
    hi = std::max(hi, b);
  }
  void add(const Span& s) {
    if (!s.empty()) add(s.lo, s.hi);
  }
  Span plus(double d) const { return empty() ? *this : Span{lo + d, hi + d}; }
};

// Where in its tick t_r may fall: a fraction of a tick in [lo, hi].
struct Phase {
  double lo = 0;
  double hi = 1;
};

// One hypothesis on the jiffy grid: t_r falls in jiffy `jr`, at a phase in `phase`.
struct Alignment {
  Jiffies jr = 0;
  Phase phase;
};

struct Grid {
  int hz = 250;
  double tick_ms = 4;

  explicit Grid(int h) : hz(h), tick_ms(1000.0 / h) {}
  Jiffies seconds(int s) const { return static_cast<Jiffies>(s) * static_cast<Jiffies>(hz); }
  double ms(Jiffies j) const { return static_cast<double>(j) * tick_ms; }
  double ms(Offset j) const { return static_cast<double>(j) * tick_ms; }
  // The start of jiffy jr + off, seen from t_r, for t_r at a phase in `p`.
  Span instants(Offset first, Offset last, Phase p) const {
    return {(static_cast<double>(first) - p.hi) * tick_ms, (static_cast<double>(last) - p.lo) * tick_ms};
  }
  Span instants(Offset off, Phase p) const { return instants(off, off, p); }
};

// The jiffy an instant somewhere in [t_lo, t_hi] ms after t_r falls in, relative to
// t_r's jiffy: it depends on t_r's phase, so the phase range is split by the answers
// it allows (pieces overlap where the instant's own spread allows two jiffies).
struct PhasedOffset {
  Offset offset = 0;
  Phase phase;
};
std::vector<PhasedOffset> jiffy_of_instant(double t_lo, double t_hi, const Grid& grid, Phase p) {
  const double x_lo = t_lo / grid.tick_ms;
  const double x_hi = t_hi / grid.tick_ms;
  std::vector<PhasedOffset> pieces;
  const auto first = static_cast<Offset>(std::floor(p.lo + x_lo));
  const auto last = static_cast<Offset>(std::floor(p.hi + x_hi));
  for (Offset o = first; o <= last; ++o) {
    // phase + x lands in [o, o + 1) for some x in [x_lo, x_hi]
    const double lo = std::max(p.lo, static_cast<double>(o) - x_hi);
    const double hi = std::min(p.hi, static_cast<double>(o + 1) - x_lo);
    if (lo < hi || (lo == hi && o == first)) pieces.push_back({o, {lo, hi}});
  }
  return pieces;
}

double lag_of(const Kernel& k) { return std::max(0.0, k.jiffies_lag_ms); }

bool calibrated_for(const Kernel& k, int hz) { return k.calibration && k.hz && *k.hz == hz; }

// How far jiffies may have lagged when the timer was armed: jiffies_lag_ms, or more when
// the kernel's idle clock (JiffyCalibration::idle_clock_jiffies) shows it counted t_r
// from a jiffy that lag cannot explain. A CPU that stopped runs, when it resumes, the
// softirq that takes the segment before the tick that catches jiffies up (measured in an
// idle soak run on a VM whose CPUs stopped 20-55 ms at a time: rcv_tstamp two jiffies
// before t_r's, and probe 1 one level-1 bucket, 32 ms, before the window). The arming
// near t_r read jiffies in the same stale stretch, as late as t_r's reading was.
double arming_lag_ms(const Kernel& k, const Grid& grid) {
  const double allowed = lag_of(k);
  if (!calibrated_for(k, grid.hz)) return allowed;
  const auto& c = *k.calibration;
  if (!c.idle_clock_jiffies || c.jiffies_modulus != 0) return allowed;
  const double u = std::max(0.0, c.phase_uncertainty);
  const auto counted = static_cast<double>(static_cast<Offset>(*c.idle_clock_jiffies - c.jiffies_at_origin));
  // The earliest jiffy for_each_origin would allow t_r's reading without the idle clock.
  if (counted >= std::floor(c.origin_phase - u - allowed / grid.tick_ms)) return allowed;
  // The reading was taken at most receive_delay_ms after t_r, in jiffy `counted`.
  return std::max(allowed, (c.origin_phase + u - counted) * grid.tick_ms + std::max(0.0, k.receive_delay_ms));
}

// The jiffy the kernel armed the keepalive timer in: somewhere in the connect() call
// that established the connection when the run bracketed it (Input::armed_from_ms),
// else up to receive_delay_ms either side of armed_at_ms; jiffies read then may lag
// its tick by up to arming_lag_ms().
std::vector<PhasedOffset> jiffy_of_arming(const Input& in, const Grid& grid, Phase p) {
  const auto& k = in.kernel;
  const double lag = arming_lag_ms(k, grid);
  if (in.armed_from_ms) return jiffy_of_instant(*in.armed_from_ms - lag, in.armed_at_ms, grid, p);
  return jiffy_of_instant(in.armed_at_ms - k.receive_delay_ms - lag, in.armed_at_ms + k.receive_delay_ms, grid, p);
}

// How the kernel's jiffies read for an instant t_r may differ from t_r's own jiffy: the
// kernel read it up to `late_ms` after t_r, and jiffies may then still lag its tick by
// up to `lag_ms`. Both 0: t_r is only the origin of the times, not a kernel stamp.
struct Reading {
  double late_ms = 0;
  double lag_ms = 0;
};

// Visits every alignment of t_r the model must consider: those the calibration allows,
// else one per residue of the jiffy modulo `period` (the coarsest granularity in the
// chain: the replay only depends on the jiffy modulo it), at any phase.
//
// Calibrated, t_r's own phase in jiffy J = jiffies_at_origin is p in [op - u, op + u],
// and the kernel counted from jiffy J + s, s = floor(p + x) for some x in [-lag, late]
// (in ticks). Each s is one alignment {J + s, p - s}: the phase stays t_r's real place
// seen from the jiffy the kernel counted from, so it may leave [0, 1) (t_r then sits in
// a neighbouring jiffy) and every instant placed with it stays exact.
//
// `known`: the jiffy the kernel counted from, read from the kernel itself
// (JiffyCalibration::idle_clock_jiffies). It is then the only alignment, whatever the
// reading's bounds say; t_r's phase is seen from it as above.
template <class Visit>
void for_each_origin(const Kernel& k, int hz, Jiffies period, Reading reading, Visit&& visit,
                     std::optional<Jiffies> known = std::nullopt) {
  if (calibrated_for(k, hz)) {
    const auto& c = *k.calibration;
    const double u = std::max(0.0, c.phase_uncertainty);
    const double p_lo = c.origin_phase - u;
    const double p_hi = c.origin_phase + u;
    if (known && c.jiffies_modulus == 0) {
      const auto s = static_cast<double>(static_cast<Offset>(*known - c.jiffies_at_origin));
      visit(Alignment{*known, Phase{p_lo - s, p_hi - s}});
      return;
    }
    const double late = std::max(0.0, reading.late_ms) * hz / 1000.0;
    const double lag = std::max(0.0, reading.lag_ms) * hz / 1000.0;
    // Jiffies known only modulo m: the replay depends on jiffies modulo `period`, so every
    // value with the known residue modulo m is replayed (period and m are powers of 8).
    const Jiffies m = c.jiffies_modulus;
    const Jiffies copies = m == 0 || m >= period ? 1 : (period % m == 0 ? period / m : period);
    const Jiffies stride = copies == 1 ? 0 : period / copies;
    const auto first = static_cast<Offset>(std::floor(p_lo - lag));
    const auto last = static_cast<Offset>(std::floor(p_hi + late));
    for (Offset step = first; step <= last; ++step) {
      const auto s = static_cast<double>(step);
      // p + x lands in [s, s + 1) for some x in [-lag, late]
      const double lo = std::max(p_lo, s - late);
      const double hi = std::min(p_hi, s + 1 + lag);
      if (lo > hi) continue;
      const Phase p{lo - s, hi - s};
      const auto jr = static_cast<Jiffies>(static_cast<Offset>(c.jiffies_at_origin) + step);
      for (Jiffies copy = 0; copy < copies; ++copy) visit(Alignment{jr + copy * stride, p});
    }
    return;
  }
  for (Jiffies r = 0; r < period; ++r) visit(Alignment{kJiffyOrigin + r, Phase{}});
}

// The same for the keepalive timer, whose clock starts when the kernel stamped
// rcv_tstamp: a little after the measured t_r, with jiffies as it read then.
template <class Visit>
void for_each_alignment(const Kernel& k, int hz, Jiffies period, Visit&& visit) {
  std::optional<Jiffies> known;
  if (k.calibration) known = k.calibration->idle_clock_jiffies;
  for_each_origin(k, hz, period, Reading{k.receive_delay_ms, lag_of(k)}, std::forward<Visit>(visit), known);
}

std::string ms_text(double ms) {
  if (std::abs(ms) >= 1000) return fmt::format("{:.3f} s", ms / 1000);
  return fmt::format("{:.1f} ms", ms);
}

// Added to the end of every window: the wake-up latency after a timer fires, and
// t_r itself may be up to receive_delay_ms before the instant the kernel counts from.
double slack_of(const Kernel& k) { return k.wakeup_slack_ms + std::max(0.0, k.receive_delay_ms); }

// The same after a timer's latest bucket at one HZ: first the ticks its callback may wait
// (Kernel::late_ticks).
double firing_slack(const Kernel& k, const Grid& grid) { return std::max(0, k.late_ticks) * grid.tick_ms + slack_of(k); }

std::string span_text(const Span& s, double slack_ms) {
  return fmt::format("[{}, {}]", ms_text(s.lo), ms_text(s.hi + slack_ms));
}

// How a timer armed `delay` ahead lands on the wheel, in words.
std::string wheel_text(Jiffies delay, const Grid& grid) {
  const int level = wheel_level(delay, grid.hz);
  const Jiffies g = level_granularity(level);
  return fmt::format("wheel level {} ({} jiffies = {} at HZ={}): fires {}..{} late", level, g, ms_text(grid.ms(g)),
                     grid.hz, ms_text(grid.tick_ms), ms_text(grid.ms(g)));
}

// One HZ's answer, before the windows get the wake-up slack.
struct Events {
  std::vector<Span> probes;
  std::vector<bool> probe_certain;
  std::vector<Span> retransmissions;
  std::vector<bool> retransmission_certain;
  Span outcome;  // the instant the kernel decides (abort firing, or the probe the RST answers)
  Span loss_probe;  // data in flight: the tail-loss probe, if one is scheduled
  std::vector<std::string> steps;
};

// ---------------------------------------------------------------------------
// Keepalive: tcp_keepalive_timer()

struct KeepaliveTimers {
  Jiffies idle = 0;
  Jiffies interval = 0;
  Jiffies user_timeout = 0;  // msecs_to_jiffies(TCP_USER_TIMEOUT), 0 = off
  int count = 0;
  Jiffies period = 0;                // a probe's timer re-armed for interval from its callback
  Jiffies idle_granularity = 0;      // the full idle timer armed from a task
  Jiffies interval_granularity = 0;  // the interval timer armed from its callback
  // Latest probe 0 (jiffies after t_r's) when the timer was armed long before t_r.
  Jiffies cycling_bound = 0;
};

KeepaliveTimers keepalive_timers(const Keepalive& k, const Grid& grid) {
  KeepaliveTimers t;
  t.idle = grid.seconds(k.idle_s);
  t.interval = grid.seconds(k.interval_s);
  t.user_timeout = k.user_timeout_ms > 0 ? msecs_to_jiffies(k.user_timeout_ms, grid.hz) : 0;
  t.count = k.count;
  t.period = self_rearm_period(t.interval, grid.hz);
  t.idle_granularity = wheel_granularity(t.idle, grid.hz);
  t.interval_granularity = wheel_granularity(t.interval - 1, grid.hz);
  const Jiffies longest = std::max(t.idle, t.interval);
  t.cycling_bound = longest + wheel_granularity(longest, grid.hz);
  return t;
}

// Where probe 0 goes (jiffies after t_r's jiffy) when the timer was armed in jiffy
// jr + armed for a full idle period. Empty when that timer fires at or before t_r's
// jiffy: the traffic before t_r then decided how it was re-armed.
//
// Normally one path. A callback may run up to `late_ticks` after its bucket and then
// reads that many jiffies more: when the first firing's bucket is that close short of
// t_r + idle, the late callback finds idle elapsed and sends at once, in the jiffy of
// t_r + idle, where the callback on time re-arms for the rest and sends a jiffy later
// (the wheel rounds the re-arm up). Measured (soak.sh, loaded): lossy-path-count-1, idle
// 2 s = 500 jiffies, t_r at 0.08 of its jiffy (the kernel's own idle-clock jiffy, read
// from TCP_INFO), the first firing's bucket at +499: probe 1 left at 1999.8 ms, the
// start of jiffy +500, where the on-time path puts it at +501 (window from 2003.6 ms).
struct FirstProbe {
  Offset offset = 0;
  Jiffies remainder = 0;  // 0: sent at the armed timer's first firing
};
std::optional<FirstProbe> first_probe(Jiffies jr, Offset armed, const KeepaliveTimers& t, int hz) {
  const auto armed_jiffy = static_cast<Jiffies>(static_cast<Offset>(jr) + armed);
  const Jiffies first = arm_from_task(armed_jiffy, t.idle, hz);
  if (first <= jr) return std::nullopt;
  const Jiffies elapsed = first - jr;  // tcp_jiffies32 - rcv_tstamp
  if (elapsed >= t.idle) return FirstProbe{signed_diff(first, jr), 0};
  const Jiffies remainder = t.idle - elapsed;  // "It is tp->rcv_tstamp + keepalive_time_when(tp)"
  return FirstProbe{signed_diff(arm_from_callback(first, remainder, hz), jr), remainder};
}
std::vector<FirstProbe> first_probes(Jiffies jr, Offset armed, const KeepaliveTimers& t, int hz, int late_ticks) {
  const auto on_time = first_probe(jr, armed, t, hz);
  if (!on_time) return {};
  std::vector<FirstProbe> paths{*on_time};
  if (on_time->remainder > 0 && on_time->remainder <= static_cast<Jiffies>(std::max(0, late_ticks)))
    paths.push_back(FirstProbe{static_cast<Offset>(t.idle), 0});  // the late callback, at jr + idle
  return paths;
}

// The firings (1-based, counted after probe 0) at which the connection may be aborted.
// Without TCP_USER_TIMEOUT: the one after probe `count`-1 (probes_out >= count). With
// it: the first one whose `elapsed` (the jiffies the callback reads, less t_r's) has
// reached the timeout, since at least one probe is out. A callback that runs
// `late_ticks` after its bucket (section 4 of the timing notes: one tick, in a few
// per cent of firings) reads that many jiffies more: a firing whose bucket is just
// short of the timeout may abort already. Measured (sweep -n 10000 --seed 11): idle 2,
// interval 3, user timeout 5152 ms = 1288 jiffies at HZ 250, probe 2's bucket before
// 1288; the kernel aborted at that firing, 5149.5 ms after t_r, inside probe 2's window.
struct AbortFirings {
  int earliest = 0, latest = 0;
};
AbortFirings abort_firings(Offset probe1, const KeepaliveTimers& t, int late_ticks) {
  if (t.user_timeout == 0) return {t.count, t.count};
  const auto first_reaching = [&](Offset limit) {
    if (probe1 >= limit) return 1;
    return 1 + static_cast<int>(ceil_div(limit - probe1, static_cast<Offset>(t.period)));
  };
  const auto limit = static_cast<Offset>(t.user_timeout);
  return {first_reaching(limit - std::max(0, late_ticks)), first_reaching(limit)};
}

// Per abort firing: where probe 0 and probe 1 (the first self re-armed one) fall
// (indices from 0 in code; the steps count probes from 1 for people).
struct AbortGroup {
  Span probe0;
  Span probe1;
};

// What the replays of the first probes found, over every alignment of t_r.
struct FirstProbes {
  std::map<int, AbortGroup> groups;
  Span probe0;
  bool cycling = false;
  Phase cycling_phase{kInf, -kInf};
  std::map<int, int> remainder_levels;  // level -> how many alignments took that path
  int direct = 0;
};

// The first firing after idle decides everything after it: where probe 0 and probe 1
// fall, and so at which firing the abort comes, for each alignment of t_r.
FirstProbes first_firings_after_idle(const Input& in, const Grid& grid, const KeepaliveTimers& t, bool rebooted) {
  const Jiffies period = std::max(t.idle_granularity, t.interval_granularity);
  FirstProbes rep;
  for_each_alignment(in.kernel, grid.hz, period, [&](const Alignment& a) {
    for (const auto& armed : jiffy_of_arming(in, grid, a.phase)) {
      const auto paths = first_probes(a.jr, armed.offset, t, grid.hz, in.kernel.late_ticks);
      if (paths.empty()) {
        rep.cycling = true;
        rep.cycling_phase.lo = std::min(rep.cycling_phase.lo, armed.phase.lo);
        rep.cycling_phase.hi = std::max(rep.cycling_phase.hi, armed.phase.hi);
        continue;
      }
      for (const auto& p0 : paths) {
        if (p0.remainder == 0) ++rep.direct;
        else ++rep.remainder_levels[wheel_level(p0.remainder - 1, grid.hz)];
        const Span at0 = grid.instants(p0.offset, armed.phase);
        rep.probe0.add(at0);
        if (rebooted) continue;
        const Jiffies p0_jiffy = static_cast<Jiffies>(static_cast<Offset>(a.jr) + p0.offset);
        const Offset p1 = signed_diff(arm_from_callback(p0_jiffy, t.interval, grid.hz), a.jr);
        const auto aborts = abort_firings(p1, t, in.kernel.late_ticks);
        for (int k = aborts.earliest; k <= aborts.latest; ++k) {
          auto& g = rep.groups[k];
          g.probe0.add(at0);
          g.probe1.add(grid.instants(p1, armed.phase));
        }
      }
    }
  });

  return rep;
}

// The timer fired before t_r: the traffic before t_r decided how it was re-armed:
// for the rest of idle after an earlier segment, or for interval after a probe that
// the peer then answered. Either way it expires by t_r + max(idle, interval), from a
// delay of at most that. Probe 0 then falls in [idle, max(idle, interval) + g] and
// may sit anywhere modulo the interval's granularity, which moves probe 1 by up to
// that granularity.
void add_timer_armed_before_idle(const KeepaliveTimers& t, const Grid& grid, int late_ticks, bool rebooted,
                                 FirstProbes& rep) {
  const auto lo0 = static_cast<Offset>(t.idle);
  const Offset hi0 = static_cast<Offset>(t.cycling_bound);
  rep.probe0.add(grid.instants(lo0, hi0, rep.cycling_phase));
  if (!rebooted) {
    const auto step_lo = static_cast<Offset>(t.interval) + 1;
    const Offset step_hi = static_cast<Offset>(t.interval + t.interval_granularity);
    if (t.user_timeout == 0) {
      auto& g = rep.groups[t.count];
      g.probe0.add(grid.instants(lo0, hi0, rep.cycling_phase));
      g.probe1.add(grid.instants(lo0 + step_lo, hi0 + step_hi, rep.cycling_phase));
    } else {
      for (Offset p1 = lo0 + step_lo; p1 <= hi0 + step_hi; ++p1) {
        const auto aborts = abort_firings(p1, t, late_ticks);
        for (int k = aborts.earliest; k <= aborts.latest; ++k) {
          auto& g = rep.groups[k];
          g.probe0.add(grid.instants(std::max(lo0, p1 - step_hi), std::min(hi0, p1 - step_lo), rep.cycling_phase));
          g.probe1.add(grid.instants(p1, rep.cycling_phase));
        }
      }
    }
  }
}

// The words for how probe 0 comes about: the paths differ by which wheel level the
// first firing and its re-arm land on, and that is what makes probe 1 late.
void explain_first_probe(const Input& in, const Grid& grid, const KeepaliveTimers& t, const FirstProbes& rep,
                         Events& ev) {
  ev.steps.push_back(fmt::format("HZ={} (one tick = {}):", grid.hz, ms_text(grid.tick_ms)));
  ev.steps.push_back(fmt::format(
      "keepalive timer armed {} t_r for idle {} s = {} jiffies → {}", in.armed_at_ms == 0 ? "at" :
      (in.armed_at_ms < 0 ? fmt::format("{} before", ms_text(-in.armed_at_ms)) : fmt::format("{} after", ms_text(in.armed_at_ms))),
      in.keepalive.idle_s, t.idle, wheel_text(t.idle, grid)));
  if (rep.direct > 0)
    ev.steps.push_back("when it fires at or after t_r + idle (elapsed since the last received segment >= idle), probe 1 goes out then");
  for (const auto& [level, n] : rep.remainder_levels) {
    (void)n;
    ev.steps.push_back(fmt::format(
        "when it fires before t_r + idle (elapsed < idle), it re-arms for the remainder, up to {} jiffies "
        "→ wheel level {} ({} late at most): probe 1 pays a second period of lateness",
        level_start(level + 1), level, ms_text(grid.ms(level_granularity(level)))));
  }
  if (rep.cycling)
    ev.steps.push_back(fmt::format(
        "the timer was armed {} s before t_r, at least one idle period: the traffic (or answered probes) before "
        "t_r kept re-arming it, so probe 1 is only known to fall in [idle, {}]",
        -in.armed_at_ms / 1000, ms_text(grid.ms(t.cycling_bound))));
  ev.steps.push_back(fmt::format("probe 1 (nominal {}): {}", ms_text(1000.0 * in.keepalive.idle_s),
                                 span_text(rep.probe0, firing_slack(in.kernel, grid))));
}

// The self re-armed probes: each one's lateness is fixed by the interval's wheel level,
// except the first interval when probe 1 sat on a finer level.
void explain_interval_probes(const Input& in, const Grid& grid, const KeepaliveTimers& t, Events& ev) {
  ev.steps.push_back(fmt::format(
      "each probe re-arms the timer for interval {} s = {} jiffies from its own callback → wheel level {} "
      "(granularity {} jiffies): one probe every {} jiffies = {} ({} late each time, fixed)",
      in.keepalive.interval_s, t.interval, wheel_level(t.interval - 1, grid.hz), t.interval_granularity, t.period,
      ms_text(grid.ms(t.period)), ms_text(grid.ms(t.period - t.interval))));
  if (t.interval_granularity > 1 && t.idle_granularity < t.interval_granularity)
    ev.steps.push_back(
        "probe 1 sits on a finer level than the interval timer, so the first interval is late by "
        "1..g jiffies depending on where probe 1 fell; the later ones by the fixed amount");
}

// Probe k's window is the hull over the abort firings that still send it; a probe is
// certain only if every path sends it. Returns the earliest and latest abort firings.
std::pair<int, int> probes_until_abort(const std::map<int, AbortGroup>& groups, const Grid& grid,
                                       const KeepaliveTimers& t, Events& ev) {
  int min_abort = std::numeric_limits<int>::max();
  int max_abort = 0;
  for (const auto& [k, g] : groups) {
    (void)g;
    min_abort = std::min(min_abort, k);
    max_abort = std::max(max_abort, k);
  }
  const double period_ms = grid.ms(t.period);
  for (int k = 0; k < max_abort && static_cast<std::size_t>(k) < kMaxListedEvents; ++k) {
    Span s;
    for (const auto& [abort_at, g] : groups) {
      if (abort_at <= k) continue;
      s.add(k == 0 ? g.probe0 : g.probe1.plus(period_ms * (k - 1)));
    }
    ev.probes.push_back(s);
    ev.probe_certain.push_back(k < min_abort);
  }
  for (const auto& [abort_at, g] : groups) ev.outcome.add(g.probe1.plus(period_ms * (abort_at - 1)));
  return {min_abort, max_abort};
}

// The abort test in words: by count, or by TCP_USER_TIMEOUT, which may land after
// different probes depending on the wheel.
void explain_abort(const Input& in, const Grid& grid, const KeepaliveTimers& t, int min_abort, int max_abort, Events& ev) {
  if (t.user_timeout > 0) {
    ev.steps.push_back(fmt::format(
        "TCP_USER_TIMEOUT {} ms = {} jiffies: TCP_KEEPCNT is ignored; the timer aborts at its first firing after a "
        "probe where the time since t_r has reached it",
        in.keepalive.user_timeout_ms, t.user_timeout));
    if (min_abort != max_abort)
      ev.steps.push_back(fmt::format(
          "depending on where the wheel put the probes, and on whether a callback whose bucket is just short of "
          "the timeout ran a tick late (it then reads a jiffy more), that is the firing after probe {} or after "
          "probe {}",
          min_abort, max_abort));
  }
  const std::size_t shown = std::min<std::size_t>(ev.probes.size(), 12);
  for (std::size_t k = 1; k < shown; ++k)
    ev.steps.push_back(fmt::format("probe {} (nominal {}): {}{}", k + 1,
                                   ms_text(1000.0 * (in.keepalive.idle_s + static_cast<double>(k) * in.keepalive.interval_s)),
                                   span_text(ev.probes[k], firing_slack(in.kernel, grid)),
                                   ev.probe_certain[k] ? "" : " (only for some alignments)"));
  if (ev.probes.size() > shown) ev.steps.push_back(fmt::format("... {} probes in all", ev.probes.size()));
  ev.steps.push_back(fmt::format(
      "abort at the firing after the last probe: RST sent, ETIMEDOUT: {} (the window's end allows {} for a "
      "callback a tick late, wake-up and receive delays)",
      span_text(ev.outcome, firing_slack(in.kernel, grid)), ms_text(firing_slack(in.kernel, grid))));
}

void keepalive_dead_peer(const Input& in, const Grid& grid, Events& ev) {
  const auto t = keepalive_timers(in.keepalive, grid);
  const bool rebooted = in.peer == PeerBehaviour::rebooted;
  FirstProbes rep = first_firings_after_idle(in, grid, t, rebooted);
  if (rep.cycling) add_timer_armed_before_idle(t, grid, in.kernel.late_ticks, rebooted, rep);
  explain_first_probe(in, grid, t, rep, ev);
  const Span& probe0 = rep.probe0;

  if (rebooted) {
    ev.probes.push_back(probe0);
    ev.probe_certain.push_back(true);
    ev.outcome = probe0;
    ev.steps.push_back(fmt::format(
        "the rebooted peer answers probe 1 with an RST carrying exactly our rcv_nxt: ECONNRESET one round trip "
        "({}) later",
        ms_text(in.kernel.rtt_ms)));
    return;
  }

  explain_interval_probes(in, grid, t, ev);
  const auto [min_abort, max_abort] = probes_until_abort(rep.groups, grid, t, ev);
  explain_abort(in, grid, t, min_abort, max_abort, ev);
}

// A healthy peer ACKs each probe: rcv_tstamp moves and probes_out resets. The timer,
// re-armed for `interval` when the probe went out, then finds elapsed < idle and
// re-arms for what is left of idle: one probe per idle period, not per interval.
void keepalive_healthy_peer(const Input& in, const Grid& grid, Events& ev) {
  const auto t = keepalive_timers(in.keepalive, grid);
  const auto ack_delay = static_cast<Offset>(std::floor(in.kernel.rtt_ms / grid.tick_ms));
  const auto horizon = static_cast<Offset>(std::floor(in.horizon_ms / grid.tick_ms)) + 1;
  const Jiffies period = std::max(t.idle_granularity, t.interval_granularity);
  const double expected = std::max(1.0, in.horizon_ms / (1000.0 * std::max(in.keepalive.idle_s, in.keepalive.interval_s)));
  const auto cap = static_cast<std::size_t>(std::clamp(kHealthyReplayBudget / static_cast<double>(period) / 2, 1.0,
                                                       std::min(expected + 2, static_cast<double>(kMaxListedEvents))));

  // How many replayed paths there were, and how many of them sent probe n before the
  // horizon: a probe some paths send only after it is not certain, however early the
  // others put it (peer-alive, measured: one path had probe 5 at 5095 ms, the kernel's
  // at 5127 ms, after the 5124 ms horizon, and "probe 5 missing" was a false failure).
  std::size_t paths = 0;
  std::vector<std::size_t> reached;
  // The probes after one at `first` (absolute), relative to t_r's jiffy `jr`.
  auto replay = [&](Jiffies jr, Jiffies first, Phase p, Offset shift_lo, Offset shift_hi) {
    ++paths;
    Jiffies probe = first;
    for (std::size_t n = 0; n < cap; ++n) {
      const Offset off = signed_diff(probe, jr);
      if (off + shift_lo > horizon) break;
      if (ev.probes.size() <= n) ev.probes.resize(n + 1);
      if (reached.size() <= n) reached.resize(n + 1, 0);
      if (off + shift_hi <= horizon) ++reached[n];
      ev.probes[n].add(grid.instants(off + shift_lo, off + shift_hi, p));
      const Jiffies acked = probe + static_cast<Jiffies>(ack_delay);
      const Jiffies fired = arm_from_callback(probe, t.interval, grid.hz);
      const Jiffies elapsed = fired > acked ? fired - acked : 0;
      probe = elapsed >= t.idle ? fired : arm_from_callback(fired, acked + t.idle - fired, grid.hz);
    }
  };

  bool cycling = false;
  Phase cycling_phase{kInf, -kInf};
  for_each_alignment(in.kernel, grid.hz, period, [&](const Alignment& a) {
    for (const auto& armed : jiffy_of_arming(in, grid, a.phase)) {
      const auto firsts = first_probes(a.jr, armed.offset, t, grid.hz, in.kernel.late_ticks);
      if (firsts.empty()) {
        cycling = true;
        cycling_phase.lo = std::min(cycling_phase.lo, armed.phase.lo);
        cycling_phase.hi = std::max(cycling_phase.hi, armed.phase.hi);
        continue;
      }
      for (const auto& p0 : firsts)
        replay(a.jr, static_cast<Jiffies>(static_cast<Offset>(a.jr) + p0.offset), armed.phase, 0, 0);
    }
  });
  if (cycling) {
    // Probe 0 anywhere in [idle, cycling bound], at any residue: replay from each
    // residue and widen by the range of probe 0.
    for (Jiffies r = 0; r < period; ++r) {
      const Jiffies jr = kJiffyOrigin + period + r - t.idle;
      replay(jr, kJiffyOrigin + period + r, cycling_phase, 0, static_cast<Offset>(t.cycling_bound - t.idle));
    }
  }
  ev.probe_certain.assign(ev.probes.size(), true);
  for (std::size_t n = 0; n < ev.probes.size(); ++n)
    ev.probe_certain[n] = ev.probes[n].hi <= in.horizon_ms && reached[n] == paths;

  ev.steps.push_back(fmt::format("HZ={} (one tick = {}):", grid.hz, ms_text(grid.tick_ms)));
  ev.steps.push_back(fmt::format("keepalive timer armed for idle {} s = {} jiffies → {}", in.keepalive.idle_s, t.idle,
                                 wheel_text(t.idle, grid)));
  ev.steps.push_back(fmt::format(
      "the peer's kernel ACKs every probe: rcv_tstamp moves and probes_out goes back to 0; the timer, re-armed for "
      "interval {} s when the probe left, then finds less than idle elapsed and re-arms for the rest: about one "
      "probe per max(idle, interval) = {} s, each with its own wheel lateness",
      in.keepalive.interval_s, std::max(in.keepalive.idle_s, in.keepalive.interval_s)));
  if (!ev.probes.empty())
    ev.steps.push_back(fmt::format("probe 1: {}; {} probe{} before the horizon {}",
                                   span_text(ev.probes[0], firing_slack(in.kernel, grid)), ev.probes.size(),
                                   ev.probes.size() == 1 ? "" : "s", ms_text(in.horizon_ms)));
}

// ---------------------------------------------------------------------------
// Retransmissions: tcp_retransmit_timer() and tcp_write_timeout()

// retransmits_timed_out() and tcp_clamp_rto_to_user_timeout() count whole milliseconds
// since retrans_stamp on the TCP clock: tcp_clock_ns() truncated to ms at both ends
// (tcp_time_stamp_ts(), tcp_skb_timestamp_ts()), while the replay counts jiffies. Ticks
// start at multiples of TICK_NSEC on CLOCK_MONOTONIC (kernel/time/tick-sched.c
// tick_init_jiffy_update(): "Ensure that the tick is aligned to a multiple of TICK_NSEC"),
// and a timer callback runs less than kCallbackLatencyMs after its tick (the model's
// standing assumption: the softirq is not late). So with a whole-millisecond tick
// (HZ = 100, 250, 1000) a callback reads exactly its tick's millisecond, and between two
// callbacks the kernel counts exactly the jiffies between them. Measured here at HZ=250
// (TCP_USER_TIMEOUT 3000 ms, 28 connections, packet captures): the abort came where a
// clamp of UT minus exactly 4 ms per captured jiffy since the first retransmission puts
// it, or one tick after that (a late last firing, inside wakeup_slack_ms). A callback that
// runs a whole tick late (a few percent of firings here) usually reads the next jiffy and
// counts that tick too, so the clamp takes the lateness back. But the reason it ran late
// (Kernel::late_ticks: its CPU's tick came before the time-keeping CPU advanced jiffies)
// can repeat at the next tick: then it runs after tick j+1 still reading jiffy j, and the
// clock has counted 4 ms more than jiffies have. As the first retransmission's stamp,
// that makes the abort a jiffy later; as the firing that clamps the last RTO, a jiffy
// earlier (psql, TCP_USER_TIMEOUT 3000 ms, idle machine: aborted in the jiffy before the
// one this count without it allowed). So with late ticks, a callback's clock reading may
// be up to late_ticks ticks plus the jiffies lag after its jiffy's tick. Measured here by
// scripts/bench-callback-clock.sh (timer:timer_expire_entry against the tick grid):
// during one library run, 37 of 6353 callbacks (26 of them TCP timers) ran 4.0-4.14 ms
// after the tick of the jiffy they read; idle, about 1 in 2000.
// Otherwise (HZ = 300) either truncation may cost a millisecond.
constexpr double kCallbackLatencyMs = 1.0;

// Where retrans_stamp was read, in ticks after the start of its jiffy: somewhere in
// [lo, hi] inside connect() (the SYN), or in a timer callback (a retransmission), which
// may read the clock late (RtoRules::callback_read_late_ms).
struct StampPlace {
  double lo = 0;
  double hi = 0;
  bool callback = false;
};

bool whole_ms_tick(const Grid& grid) { return 1000 % grid.hz == 0; }

// The most whole milliseconds a reading taken less than `late_ms` after a tick that
// starts a millisecond can add: 5 for 5.2 ms, 3 for exactly 4 ms, 0 for none.
std::int64_t whole_ms_below(double late_ms) {
  return late_ms <= 0 ? 0 : static_cast<std::int64_t>(std::ceil(late_ms - 1e-9)) - 1;
}

// The integers the kernel may compute for now - retrans_stamp at a timer callback that
// runs `d_ms` (whole jiffies) after the start of the stamp's jiffy; a callback reads the
// clock less than `read_late_ms` after its jiffy's tick (0: within its first millisecond).
std::pair<std::int64_t, std::int64_t> kernel_elapsed_ms(double d_ms, const StampPlace& at, double read_late_ms,
                                                        const Grid& grid) {
  const double near_lo = d_ms - at.hi * grid.tick_ms;  // the true difference, callbacks on time
  const double near_hi = d_ms - at.lo * grid.tick_ms;
  if (whole_ms_tick(grid)) {
    // A callback reads its tick's millisecond plus whole_ms_below(read_late_ms) at most;
    // the SYN's stamp truncates within its jiffy.
    const std::int64_t late = whole_ms_below(read_late_ms);
    const auto stamp_lo = static_cast<std::int64_t>(std::floor(at.lo * grid.tick_ms + 1e-9));
    const auto stamp_hi = static_cast<std::int64_t>(std::floor(at.hi * grid.tick_ms + 1e-9)) + (at.callback ? late : 0);
    const auto d = static_cast<std::int64_t>(std::floor(d_ms + 1e-9));
    return {d - stamp_hi, d + late - stamp_lo};
  }
  // Both readings truncate, each callback up to kCallbackLatencyMs (or read_late_ms)
  // late: the integers in (near_lo - latency - 1, near_hi + latency + 1).
  const double latency = std::max(kCallbackLatencyMs, read_late_ms);
  const auto lo = static_cast<std::int64_t>(std::floor(near_lo - latency - 1)) + 1;
  const auto hi = static_cast<std::int64_t>(std::ceil(near_hi + latency + 1)) - 1;
  return {lo, std::max(lo, hi)};
}

struct RtoRules {
  Jiffies first_rto = 0;
  // The delay the retransmission timer is armed for when the data (or the SYN) goes out:
  // the tail-loss probe's timeout if `loss_probe`, else first_rto.
  Jiffies first_timer = 0;
  bool loss_probe = false;
  Jiffies pace = 0;                 // at most this tcp_pacing_delay() on the arms made for new data
  Jiffies rto_max = 0;
  bool syn = false;                 // SYN_SENT: count limit and linear first backoffs
  int syn_retransmissions_max = 0;  // tcp_syn_retries + tcp_syn_linear_timeouts
  int syn_linear_timeouts = 0;
  double abort_after_ms = 0;        // tcp_model_timeout() or TCP_USER_TIMEOUT, from retrans_stamp
                                    // (the SYN itself when connecting, else the first retransmission)
  double user_timeout_ms = 0;       // clamps each RTO to what is left of it
  bool clamp_to_user_timeout = true;  // tcp_clamp_rto_to_user_timeout() (4.19, b701a99e431d)
  // How long after its jiffy's tick a callback may read the TCP clock while jiffies
  // still reads that jiffy: late_ticks ticks plus the jiffies lag (0 without late ticks).
  double callback_read_late_ms = 0;
};

// One way the chain can go, in jiffies after the data (or SYN) went out.
struct RtoPath {
  std::optional<Offset> loss_probe;
  std::vector<Offset> retransmissions;
  Offset abort = 0;
};

// The chain forks only where the kernel's millisecond count may fall either side of a
// limit; a handful of paths at most. Past this many, forks are not followed.
constexpr std::size_t kMaxRtoPaths = 256;

// One replay in progress: what tcp_retransmit_timer() keeps in the socket between
// firings. A fork copies it, so each path carries its own.
struct RtoState {
  Jiffies fired = 0;
  std::optional<Jiffies> stamp;  // the jiffy retrans_stamp was taken in
  StampPlace place;              // and where in it
  int retransmits = 0;           // icsk_retransmits
  int backoff = 0;
  Jiffies rto = 0;               // icsk_rto
  RtoPath path;
};

// The first arm after the send, and the tail-loss probe if one is scheduled: kept apart
// because these arms add the pacing delay and never run the abort test.
RtoState first_rto_firing(Jiffies sent, const RtoRules& r, const StampPlace& syn_stamp, Jiffies pace_first,
                          Jiffies pace_rearm, const Grid& grid) {
  RtoState s;
  s.rto = r.first_rto;
  if (r.syn) {  // tcp_connect() stamps retrans_stamp with the SYN
    s.stamp = sent;
    s.place = syn_stamp;
  }
  // tcp_event_new_data_sent() arms the RTO, then tcp_schedule_loss_probe() re-arms the
  // same timer (icsk_retransmit_timer) for the probe, in the same jiffy, from the task.
  // Both arms add the pacing delay (tcp_reset_xmit_timer(..., true)).
  s.fired = arm_from_task(sent, (r.loss_probe ? r.first_timer : r.first_rto) + pace_first, grid.hz);
  if (r.loss_probe) {
    // tcp_send_loss_probe(): the last segment goes out again through
    // __tcp_retransmit_skb() (no retrans_stamp, no icsk_retransmits), icsk_pending = 0,
    // then tcp_rearm_rto() arms a full icsk_rto (plus the pacing delay) from the
    // callback. No abort test here: tcp_write_timeout() only runs from
    // tcp_retransmit_timer().
    s.path.loss_probe = signed_diff(s.fired, sent);
    s.fired = arm_from_callback(s.fired, r.first_rto + pace_rearm, grid.hz);
  }
  return s;
}

// The abort test at a firing gets its own function because the kernel's millisecond
// count may straddle the limit: then the path both ends here and goes on.
struct AbortTest {
  bool certain = false;
  bool possible = false;
};
AbortTest abort_test(const RtoState& s, std::pair<std::int64_t, std::int64_t> elapsed, const RtoRules& r) {
  // tcp_write_timeout(): the SYN count, then retransmits_timed_out(), which is false
  // until a retransmission has been made.
  AbortTest t;
  t.certain = r.syn && s.retransmits >= r.syn_retransmissions_max;
  if (!t.certain && s.retransmits > 0) {
    t.certain = static_cast<double>(elapsed.first) >= r.abort_after_ms;
    t.possible = static_cast<double>(elapsed.second) >= r.abort_after_ms;
  }
  return t;
}

// The delays the next retransmission may be armed for: one, unless TCP_USER_TIMEOUT
// clamps it and the kernel's elapsed milliseconds are known only to within a range,
// where each distinct clamp is a fork of the chain.
std::vector<Jiffies> next_retransmission_delays(const RtoState& s, std::pair<std::int64_t, std::int64_t> elapsed,
                                                const RtoRules& r, const Grid& grid) {
  std::vector<Jiffies> delays{s.rto};
  if (r.user_timeout_ms > 0 && r.clamp_to_user_timeout) {  // tcp_clamp_rto_to_user_timeout()
    delays.clear();
    for (auto e = elapsed.first; e <= elapsed.second; ++e) {
      const double remaining = r.user_timeout_ms - static_cast<double>(e);
      const Jiffies d = remaining <= 0 ? 1 : std::min(s.rto, msecs_to_jiffies(remaining, grid.hz));
      if (std::find(delays.begin(), delays.end(), d) == delays.end()) delays.push_back(d);
    }
  }
  return delays;
}

// Replays the retransmission timer from the jiffy the data (or SYN) went out in.
std::vector<RtoPath> replay_rto(Jiffies sent, const RtoRules& r, const StampPlace& syn_stamp, const Grid& grid) {
  std::vector<RtoPath> out;
  std::vector<RtoState> todo;
  // Each paced arm adds tcp_pacing_delay(): anywhere from 0 to r.pace jiffies (measured:
  // both values, on the same connection). Every combination is a path.
  for (Jiffies pace_first = 0; pace_first <= r.pace; ++pace_first) {
    for (Jiffies pace_rearm = 0; pace_rearm <= (r.loss_probe ? r.pace : 0); ++pace_rearm) {
      todo.push_back(first_rto_firing(sent, r, syn_stamp, pace_first, pace_rearm, grid));
    }
  }
  while (!todo.empty()) {
    RtoState s = std::move(todo.back());
    todo.pop_back();
    for (int step = 0; step < 512; ++step) {
      const Offset at = signed_diff(s.fired, sent);
      std::pair<std::int64_t, std::int64_t> elapsed{0, 0};
      if (s.stamp) elapsed = kernel_elapsed_ms(grid.ms(s.fired - *s.stamp), s.place, r.callback_read_late_ms, grid);
      const AbortTest test = abort_test(s, elapsed, r);
      if (test.certain || test.possible) {
        RtoPath ended = s.path;
        ended.abort = at;
        out.push_back(std::move(ended));
        if (test.certain) break;
      }
      // tcp_retransmit_skb(): the first retransmission of established data stamps
      // retrans_stamp with its own send time, this very callback.
      if (!s.stamp) {
        s.stamp = s.fired;
        s.place = StampPlace{0, 0, true};
        elapsed = {0, 0};  // the clamp below reads the same clock in the same callback
      }
      ++s.retransmits;
      s.path.retransmissions.push_back(at);
      ++s.backoff;
      if (!r.syn || s.backoff > r.syn_linear_timeouts) s.rto = std::min(s.rto * 2, r.rto_max);
      const std::vector<Jiffies> delays = next_retransmission_delays(s, elapsed, r, grid);
      for (std::size_t i = 1; i < delays.size() && out.size() + todo.size() < kMaxRtoPaths; ++i) {
        RtoState fork = s;
        fork.fired = arm_from_callback(s.fired, delays[i], grid.hz);
        todo.push_back(std::move(fork));
      }
      s.fired = arm_from_callback(s.fired, delays.front(), grid.hz);
    }
  }
  return out;
}

// Hulls of replayed paths (in jiffies after the send).
struct RtoHull {
  std::vector<Offset> retrans_min, retrans_max;
  std::vector<int> retrans_seen;
  Offset abort_min = std::numeric_limits<Offset>::max();
  Offset abort_max = std::numeric_limits<Offset>::min();
  Offset probe_min = std::numeric_limits<Offset>::max();
  Offset probe_max = std::numeric_limits<Offset>::min();
  int paths = 0;
  void add(const RtoPath& p) {
    ++paths;
    if (retrans_min.size() < p.retransmissions.size()) {
      retrans_min.resize(p.retransmissions.size(), std::numeric_limits<Offset>::max());
      retrans_max.resize(p.retransmissions.size(), std::numeric_limits<Offset>::min());
      retrans_seen.resize(p.retransmissions.size(), 0);
    }
    for (std::size_t k = 0; k < p.retransmissions.size(); ++k) {
      retrans_min[k] = std::min(retrans_min[k], p.retransmissions[k]);
      retrans_max[k] = std::max(retrans_max[k], p.retransmissions[k]);
      ++retrans_seen[k];
    }
    if (p.loss_probe) {
      probe_min = std::min(probe_min, *p.loss_probe);
      probe_max = std::max(probe_max, *p.loss_probe);
    }
    abort_min = std::min(abort_min, p.abort);
    abort_max = std::max(abort_max, p.abort);
  }
  void add(const std::vector<RtoPath>& ps) {
    for (const auto& p : ps) add(p);
  }
};

// Collects the retransmission events of several groups of replays; a retransmission
// is certain only if every group has it in every path.
struct RtoEvents {
  std::vector<Span> retransmissions;
  std::vector<int> missing;  // per index: groups where some path lacks it
  int groups = 0;
  Span abort;
  Span loss_probe;

  // Paths summarised in `hull`, sent `first`..`last` jiffies after t_r's jiffy, t_r at
  // phase `p`.
  void add(const RtoHull& hull, Offset first, Offset last, Phase p, const Grid& grid) {
    if (retransmissions.size() < hull.retrans_min.size()) {
      retransmissions.resize(hull.retrans_min.size());
      missing.resize(hull.retrans_min.size(), groups);  // earlier groups lacked these
    }
    for (std::size_t k = 0; k < retransmissions.size(); ++k) {
      if (k >= hull.retrans_min.size()) {
        ++missing[k];
        continue;
      }
      retransmissions[k].add(grid.instants(first + hull.retrans_min[k], last + hull.retrans_max[k], p));
      if (hull.retrans_seen[k] != hull.paths) ++missing[k];
    }
    if (hull.abort_min <= hull.abort_max) abort.add(grid.instants(first + hull.abort_min, last + hull.abort_max, p));
    if (hull.probe_min <= hull.probe_max)
      loss_probe.add(grid.instants(first + hull.probe_min, last + hull.probe_max, p));
    ++groups;
  }
};

Jiffies coarsest_granularity(Jiffies max_delay, int hz) { return wheel_granularity(max_delay, hz); }

// tcp_schedule_loss_probe() for a segment just sent (see Retransmission in timing.h).
std::optional<Jiffies> loss_probe_timeout(const Retransmission& rt, Jiffies rto, int hz) {
  if ((rt.early_retrans != 3 && rt.early_retrans != 4) || !rt.sack || rt.packets_out < 1) return std::nullopt;
  Jiffies pto = static_cast<Jiffies>(hz);  // TCP_TIMEOUT_INIT: no RTT sample
  if (rt.srtt_ms > 0) {
    // timeout_us = (srtt_us >> 2) + (packets_out == 1 ? tcp_rto_min_us(sk) : TCP_TIMEOUT_MIN_US);
    // usecs_to_jiffies() rounds up.
    const double us = std::round(2000.0 * rt.srtt_ms) + (rt.packets_out == 1 ? 1000.0 * rt.rto_min_ms : 2000.0);
    pto = msecs_to_jiffies(us / 1000.0, hz);
  }
  // "If the RTO formula yields an earlier time, then use that time": the RTO armed for
  // this very segment is a whole icsk_rto ahead (tcp_rto_delta_us()).
  return std::min(pto, rto);
}

// The kernel's settings for this chain, in the kernel's own units, gathered once:
// the replay and the words both read them.
RtoRules rto_rules(const Input& in, const Grid& grid) {
  const auto& rt = in.retransmission;
  const bool syn = in.traffic == Traffic::connecting;
  RtoRules r;
  r.syn = syn;
  r.rto_max = msecs_to_jiffies(rt.rto_max_ms, grid.hz);
  r.first_rto = std::min(r.rto_max, msecs_to_jiffies(syn ? rt.initial_rto_ms : std::max(rt.first_rto_ms, rt.rto_min_ms), grid.hz));
  const auto pto = syn ? std::nullopt : loss_probe_timeout(rt, r.first_rto, grid.hz);
  r.loss_probe = pto.has_value();
  r.first_timer = pto ? *pto : r.first_rto;
  r.pace = syn ? 0 : static_cast<Jiffies>(std::max(0, rt.pacing_delay_jiffies));  // SYN_SENT: not paced yet
  r.syn_linear_timeouts = syn ? rt.syn_linear_timeouts : 0;
  r.syn_retransmissions_max = rt.syn_retries + r.syn_linear_timeouts;
  r.user_timeout_ms = in.keepalive.user_timeout_ms;
  r.clamp_to_user_timeout = has(in.kernel.version, Behaviour::user_timeout_clamps_rto);
  if (in.kernel.late_ticks > 0) r.callback_read_late_ms = in.kernel.late_ticks * grid.tick_ms + lag_of(in.kernel);
  r.abort_after_ms = r.user_timeout_ms > 0 ? r.user_timeout_ms
                                           : retransmission_timeout_ms(syn ? rt.syn_retries : rt.retries2,
                                                                       syn ? rt.initial_rto_ms : rt.rto_min_ms, rt.rto_max_ms);
  return r;
}

// Where the send fell on the jiffy grid is the only unknown the replay has: every
// place the calibration (or, without one, every residue) allows is replayed and hulled.
RtoEvents replay_every_send(const Input& in, const RtoRules& r, double start_ms, const Grid& grid) {
  const Jiffies period = coarsest_granularity(r.rto_max, grid.hz);
  // The kernel sent the data (the SYN) and armed the timer inside the write() (connect())
  // that began at start_ms: not before, and by the time the call returned.
  const double sent_by_ms = in.sent_by_ms ? *in.sent_by_ms : start_ms + std::max(0.0, in.kernel.receive_delay_ms);
  const double rd = sent_by_ms - start_ms;
  // Where connect() stamped the SYN inside its jiffy, for t_r at phase p and the SYN in
  // jiffy sent_offset. (Established data is stamped by a timer callback instead.)
  auto syn_stamp_place = [&](Offset sent_offset, Phase p) {
    const double lo = std::clamp(p.lo + start_ms / grid.tick_ms - static_cast<double>(sent_offset), 0.0, 1.0);
    const double hi = std::clamp(p.hi + (start_ms + rd) / grid.tick_ms - static_cast<double>(sent_offset), 0.0, 1.0);
    return StampPlace{lo, std::max(lo, hi)};
  };

  RtoEvents events;
  if (calibrated_for(in.kernel, grid.hz)) {
    // Only the send matters here, and the calibration places the clock readings on the
    // jiffy grid directly: t_r is just the origin of the times, not a kernel stamp.
    for_each_origin(in.kernel, grid.hz, period, Reading{}, [&](const Alignment& a) {
      // The jiffy the kernel read while sending: jiffies may lag its tick.
      for (const auto& sent : jiffy_of_instant(start_ms - lag_of(in.kernel), sent_by_ms, grid, a.phase)) {
        const auto sent_jiffy = static_cast<Jiffies>(static_cast<Offset>(a.jr) + sent.offset);
        RtoHull hull;
        hull.add(replay_rto(sent_jiffy, r, syn_stamp_place(sent.offset, sent.phase), grid));
        events.add(hull, sent.offset, sent.offset, sent.phase, grid);
      }
    });
  } else {
    // The replay only depends on the sending jiffy modulo the coarsest granularity, and
    // with t_r's alignment unknown every residue is possible whatever the offset.
    RtoHull hull;
    const StampPlace anywhere{0, 1};
    for (Jiffies res = 0; res < period; ++res) hull.add(replay_rto(kJiffyOrigin + res, r, anywhere, grid));
    for (const auto& sent : jiffy_of_instant(start_ms - lag_of(in.kernel), sent_by_ms, grid, Phase{}))
      events.add(hull, sent.offset, sent.offset, sent.phase, grid);
  }
  return events;
}

// The abort test counts on the TCP clock, not in jiffies (kernel_elapsed_ms()).
void explain_late_clock_reading(const RtoRules& r, Events& ev) {
  if (r.callback_read_late_ms <= 0) return;
  ev.steps.push_back(fmt::format(
      "that count is in milliseconds of the TCP clock, which a callback run a tick late may read up to {} after "
      "the tick of the jiffy it re-arms from (jiffies not yet advanced): the count may be that far over or short "
      "of the jiffies between the firings",
      ms_text(r.callback_read_late_ms)));
}

// Connecting: the SYN's own chain (linear first backoffs, a count limit), told apart
// because its rules differ from those of established data.
void explain_syn_chain(const Retransmission& rt, const RtoRules& r, const Grid& grid, Events& ev) {
  ev.steps.push_back(fmt::format(
      "connect() sends the SYN at 0 and arms the retransmission timer for {} = {} jiffies → {}",
      ms_text(rt.initial_rto_ms), r.first_rto, wheel_text(r.first_rto, grid)));
  ev.steps.push_back(fmt::format(
      "the first {} SYN retransmissions keep that RTO (tcp_syn_linear_timeouts), then it doubles up to {}; "
      "each timer is re-armed from its own callback",
      r.syn_linear_timeouts, ms_text(rt.rto_max_ms)));
  ev.steps.push_back(fmt::format(
      "connect() fails with ETIMEDOUT at the firing after {} retransmissions (tcp_syn_retries {} + {} linear), or "
      "earlier at the first firing {} after the SYN (tcp_connect() stamps retrans_stamp with the SYN; "
      "tcp_model_timeout(tcp_syn_retries, initial RTO))",
      r.syn_retransmissions_max, rt.syn_retries, r.syn_linear_timeouts, ms_text(r.abort_after_ms)));
  explain_late_clock_reading(r, ev);
}

// Established data: the tail-loss probe (if any), the doubling RTO and the abort test
// by time since the first retransmission.
void explain_data_chain(const Input& in, const RtoRules& r, double start_ms, const Grid& grid, Events& ev) {
  const auto& rt = in.retransmission;
  ev.steps.push_back(fmt::format(
      "data sent at {} stays unacknowledged: keepalive stands aside (packets_out > 0), the retransmission timer "
      "owns the connection",
      ms_text(start_ms)));
  if (r.loss_probe) {
    ev.steps.push_back(fmt::format(
        "tail-loss probe (tcp_early_retrans {}, SACK): the timer is armed for the probe timeout min(2 x srtt + {}, "
        "RTO {}) = {} jiffies → {}",
        rt.early_retrans, rt.packets_out == 1 ? "rto_min" : "2 ms", ms_text(std::max(rt.first_rto_ms, rt.rto_min_ms)),
        r.first_timer, wheel_text(r.first_timer, grid)));
    ev.steps.push_back(fmt::format(
        "the probe resends the last segment without starting retrans_stamp, and re-arms a full RTO of {} jiffies "
        "from its callback: the first retransmission comes one RTO after the probe",
        r.first_rto));
    if (r.pace > 0)
      ev.steps.push_back(fmt::format(
          "the socket is paced (BBR): both arms above add tcp_pacing_delay(), 0 to {} jiff{} "
          "(tcp_reset_xmit_timer(..., true)); the retransmission timer's own re-arms do not",
          r.pace, r.pace == 1 ? "y" : "ies"));
    if (!ev.loss_probe.empty())
      ev.steps.push_back(fmt::format("tail-loss probe: {}", span_text(ev.loss_probe, firing_slack(in.kernel, grid))));
  } else {
    ev.steps.push_back(fmt::format(
        "no tail-loss probe ({}): the first RTO {} = {} jiffies → {}",
        !rt.sack ? "no SACK" : fmt::format("tcp_early_retrans {}", rt.early_retrans),
        ms_text(std::max(rt.first_rto_ms, rt.rto_min_ms)), r.first_rto, wheel_text(r.first_rto, grid)));
    if (r.pace > 0)
      ev.steps.push_back(fmt::format("the socket is paced (BBR): tcp_rearm_rto() adds tcp_pacing_delay(), 0 to {} jiffies",
                                     r.pace));
  }
  ev.steps.push_back(fmt::format(
      "each retransmission doubles the RTO up to {} ({} jiffies, re-armed from the callback: one every {} = {})",
      ms_text(rt.rto_max_ms), r.rto_max, self_rearm_period(r.rto_max, grid.hz),
      ms_text(grid.ms(self_rearm_period(r.rto_max, grid.hz)))));
  ev.steps.push_back(fmt::format(
      "the connection is aborted (ETIMEDOUT, no RST) at the first firing {} after the first retransmission "
      "(retrans_stamp){}",
      ms_text(r.abort_after_ms),
      r.user_timeout_ms > 0 ? " (TCP_USER_TIMEOUT; each RTO is clamped to what is left of it)"
                            : fmt::format(" (tcp_model_timeout(tcp_retries2={}, TCP_RTO_MIN))", rt.retries2)));
  explain_late_clock_reading(r, ev);
}

// An unreachable peer's ICMP errors undo each backoff (RFC 6069): the replayed chain
// of doublings no longer holds past the first retransmission, so the abort is bounded
// from that one instead.
void icmp_reverted_backoff(const RtoRules& r, const Grid& grid, Events& ev) {
  // RFC 6069: the ICMP error for each retransmission takes its backoff back and
  // re-arms the timer for the base RTO less the time since that retransmission, so
  // the timer fires about once per base RTO (armed from softirq, level 0 for a
  // 200 ms RTO: +-1 jiffy). The abort test is by time since retrans_stamp (the
  // first retransmission), made at each firing.
  const double doubt_ms = grid.tick_ms + 1;
  const double period_max_ms = grid.ms(r.first_rto + wheel_granularity(r.first_rto, grid.hz));
  const Span first = ev.retransmissions.front();
  ev.outcome = Span{first.lo + r.abort_after_ms - doubt_ms, first.hi + r.abort_after_ms + doubt_ms + period_max_ms};
  ev.retransmissions.resize(1);
  ev.retransmission_certain.resize(1);
  ev.steps.push_back(fmt::format(
      "each retransmission draws an ICMP host unreachable, which undoes its RTO backoff (RFC 6069, IPv4 only): the "
      "timer keeps firing about every {} instead of doubling, and aborts at the first firing {} after the first "
      "retransmission",
      ms_text(grid.ms(r.first_rto)), ms_text(r.abort_after_ms)));
}

void retransmission_chain(const Input& in, const Grid& grid, Events& ev) {
  const auto& rt = in.retransmission;
  const bool syn = in.traffic == Traffic::connecting;
  const RtoRules r = rto_rules(in, grid);
  const double start_ms = syn ? 0.0 : in.data_sent_at_ms;
  const RtoEvents events = replay_every_send(in, r, start_ms, grid);
  ev.retransmissions = events.retransmissions;
  ev.outcome = events.abort;
  ev.loss_probe = events.loss_probe;
  ev.retransmission_certain.resize(events.missing.size());
  for (std::size_t k = 0; k < events.missing.size(); ++k) ev.retransmission_certain[k] = events.missing[k] == 0;

  ev.steps.push_back(fmt::format("HZ={} (one tick = {}):", grid.hz, ms_text(grid.tick_ms)));
  if (syn) explain_syn_chain(rt, r, grid, ev);
  else explain_data_chain(in, r, start_ms, grid, ev);
  if (!ev.retransmissions.empty())
    ev.steps.push_back(fmt::format("retransmission 1: {}; {} in all", span_text(ev.retransmissions[0], firing_slack(in.kernel, grid)),
                                   ev.retransmissions.size()));
  if (!syn && in.peer == PeerBehaviour::unreachable && in.icmp_reverts_backoff && !ev.retransmissions.empty())
    icmp_reverted_backoff(r, grid, ev);
  ev.steps.push_back(fmt::format("{}: {}", in.peer == PeerBehaviour::unreachable ? "EHOSTUNREACH" : "ETIMEDOUT",
                                 span_text(ev.outcome, firing_slack(in.kernel, grid))));
}

// ---------------------------------------------------------------------------

void validate(const Input& in) {
  const auto& k = in.keepalive;
  if (in.kernel.hz && *in.kernel.hz <= 0) throw std::invalid_argument(fmt::format("HZ must be positive, not {}", *in.kernel.hz));
  if (k.enabled && in.traffic == Traffic::idle) {
    if (k.idle_s < 1 || k.interval_s < 1)
      throw std::invalid_argument(
          fmt::format("keepalive idle and interval must be at least 1 s (got {} and {})", k.idle_s, k.interval_s));
    if (k.count < 1) throw std::invalid_argument(fmt::format("keepalive count must be at least 1 (got {})", k.count));
  }
  if (k.user_timeout_ms < 0) throw std::invalid_argument("TCP_USER_TIMEOUT cannot be negative");
  if (in.retransmission.rto_min_ms <= 0 || in.retransmission.rto_max_ms < in.retransmission.rto_min_ms)
    throw std::invalid_argument("RTO bounds must satisfy 0 < rto_min <= rto_max");
  if (in.retransmission.srtt_ms < 0) throw std::invalid_argument("srtt cannot be negative");
  if (in.sent_by_ms && *in.sent_by_ms < (in.traffic == Traffic::connecting ? 0.0 : in.data_sent_at_ms))
    throw std::invalid_argument("sent_by_ms cannot be before the send began");
  if (in.traffic == Traffic::data_in_flight && in.retransmission.packets_out < 1)
    throw std::invalid_argument(fmt::format("data in flight needs packets_out >= 1 (got {})", in.retransmission.packets_out));
}

// The behaviours of the kernel version the input names (kernel_version.h) that decide
// this traffic: what the version lacks is taken out of the input (so every step below
// reads one consistent set of settings), what it cannot do is refused, and each is
// said in the explanation.
Input with_kernel_behaviours(const Input& given, std::vector<std::string>& steps) {
  Input in = for_kernel(given);
  if (!in.kernel.version) return in;
  const KernelVersion v = *in.kernel.version;
  auto say = [&](Behaviour b) { steps.push_back(behaviour_line(v, behaviour_row(b))); };
  const auto& rt = in.retransmission;
  if (!has(v, Behaviour::rto_min_us_sysctl) && rt.rto_min_ms != Retransmission{}.rto_min_ms)
    throw std::invalid_argument(fmt::format("kernel {} has no net.ipv4.tcp_rto_min_us (from 6.11): the RTO minimum "
                                            "is 200 ms there, not {}",
                                            v.str(), ms_text(rt.rto_min_ms)));
  if (!has(v, Behaviour::rto_max_ms_sysctl) && rt.rto_max_ms != Retransmission{}.rto_max_ms)
    throw std::invalid_argument(fmt::format("kernel {} has no net.ipv4.tcp_rto_max_ms (from 6.15): the RTO cap is "
                                            "120 s there, not {}",
                                            v.str(), ms_text(rt.rto_max_ms)));
  switch (in.traffic) {
    case Traffic::idle:
      steps.push_back(fmt::format("kernel {}: the keepalive timer's decision (tcp_keepalive_timer) is the same on every "
                                  "kernel since 4.x",
                                  v.str()));
      break;
    case Traffic::connecting:
      say(Behaviour::syn_linear_timeouts);
      if (in.keepalive.user_timeout_ms > 0) {
        if (!has(v, Behaviour::user_timeout_in_syn_sent))
          throw std::invalid_argument(fmt::format(
              "connect() with TCP_USER_TIMEOUT is not modelled on kernel {}: before 5.4 (a41e8a88b06e) SYN-SENT "
              "ignored the user timeout and fired one-jiffy timers past it until the SYN count ran out",
              v.str()));
        say(Behaviour::user_timeout_in_syn_sent);
      }
      break;
    case Traffic::data_in_flight:
      say(Behaviour::rto_min_us_sysctl);
      say(Behaviour::rto_max_ms_sysctl);
      if (in.keepalive.user_timeout_ms > 0) say(Behaviour::user_timeout_clamps_rto);
      break;
  }
  return in;
}

// The textbook figures: no lateness at all.
double nominal_keepalive_abort_ms(const Keepalive& k) {
  if (k.user_timeout_ms <= 0) return 1000.0 * (k.idle_s + k.count * k.interval_s);
  for (int n = 1;; ++n) {
    const double at = 1000.0 * (k.idle_s + static_cast<double>(n) * k.interval_s);
    if (at >= k.user_timeout_ms) return at;
  }
}

double nominal_retransmission_abort_ms(const Input& in) {
  const auto& rt = in.retransmission;
  if (in.traffic == Traffic::connecting) {
    const double limit = in.keepalive.user_timeout_ms > 0
                             ? in.keepalive.user_timeout_ms
                             : retransmission_timeout_ms(rt.syn_retries, rt.initial_rto_ms, rt.rto_max_ms);
    double fire = rt.initial_rto_ms;
    double rto = rt.initial_rto_ms;
    for (int retransmits = 0; retransmits < 512;) {  // at each firing, as tcp_write_timeout() decides
      if (retransmits >= rt.syn_retries + rt.syn_linear_timeouts) return fire;
      if (retransmits > 0 && fire >= limit) return fire;  // retrans_stamp is the SYN, at 0
      ++retransmits;
      if (retransmits > rt.syn_linear_timeouts) rto = std::min(2 * rto, rt.rto_max_ms);
      fire += rto;
    }
    return fire;
  }
  const double first = in.data_sent_at_ms + std::max(rt.first_rto_ms, rt.rto_min_ms);
  const double limit = in.keepalive.user_timeout_ms > 0
                           ? in.keepalive.user_timeout_ms
                           : retransmission_timeout_ms(rt.retries2, rt.rto_min_ms, rt.rto_max_ms);
  return first + limit;
}

Window with_slack(const Span& s, double slack) {
  if (s.empty()) return Window{};
  return Window{s.lo, s.hi + slack};
}

}  // namespace

// ---------------------------------------------------------------------------
// Wheel helpers

int wheel_level(std::uint64_t delay_jiffies, int hz) {
  const int depth = wheel_depth(hz);
  for (int n = 1; n < depth; ++n)
    if (delay_jiffies < level_start(n)) return n - 1;
  return depth - 1;
}

std::uint64_t wheel_granularity(std::uint64_t delay_jiffies) { return wheel_granularity(delay_jiffies, 1000); }

std::uint64_t wheel_granularity(std::uint64_t delay_jiffies, int hz) {
  return level_granularity(wheel_level(delay_jiffies, hz));
}

JiffyRange wheel_lateness(std::uint64_t delay_jiffies, int hz) {
  return JiffyRange{1, wheel_granularity(delay_jiffies, hz)};
}

std::uint64_t bucket_expiry(std::uint64_t expires, std::uint64_t clk, int hz) {
  if (expires < clk) return clk;  // already due: the next tick runs it
  const int depth = wheel_depth(hz);
  const Jiffies delta = expires - clk;
  const int level = wheel_level(delta, hz);
  const Jiffies cutoff = level_start(depth);  // WHEEL_TIMEOUT_CUTOFF
  if (delta >= cutoff) expires = clk + cutoff - level_granularity(depth - 1);  // WHEEL_TIMEOUT_MAX
  // calc_index(): "Round up with level granularity" so a timer never fires early.
  const int shift = kLevelClockShift * level;
  return ((expires >> shift) + 1) << shift;
}

std::uint64_t self_rearm_period(std::uint64_t delay_jiffies, int hz) {
  // The callback runs in a bucket of its level, i.e. at a multiple of the granularity.
  const Jiffies fired = kJiffyOrigin;
  return arm_from_callback(fired, delay_jiffies, hz) - fired;
}

std::uint64_t msecs_to_jiffies(double ms, int hz) {
  if (ms <= 0) return 0;
  const double j = std::ceil(ms * hz / 1000.0 - 1e-9);
  return static_cast<std::uint64_t>(j);
}

std::optional<std::uint64_t> loss_probe_jiffies(const Retransmission& rt, int hz) {
  const Jiffies rto_max = msecs_to_jiffies(rt.rto_max_ms, hz);
  return loss_probe_timeout(rt, std::min(rto_max, msecs_to_jiffies(std::max(rt.first_rto_ms, rt.rto_min_ms), hz)), hz);
}

double retransmission_timeout_ms(int boundary, double rto_base_ms, double rto_max_ms) {
  const auto ratio = static_cast<std::uint64_t>(rto_max_ms / rto_base_ms);
  int thresh = 0;  // ilog2()
  while ((std::uint64_t{2} << thresh) <= ratio) ++thresh;
  if (boundary <= thresh) return static_cast<double>((std::uint64_t{2} << boundary) - 1) * rto_base_ms;
  return static_cast<double>((std::uint64_t{2} << thresh) - 1) * rto_base_ms + (boundary - thresh) * rto_max_ms;
}

// ---------------------------------------------------------------------------

namespace {

// Which of the kernel's timers decides the outcome; `decided` when no timer is
// involved and the prediction is already complete.
enum class Path { keepalive_dead, keepalive_healthy, retransmission, nothing, decided };

// An idle connection: only keepalive can notice the peer, and how depends on what the
// peer does with a probe.
Path idle_connection_path(const Input& in, Prediction& p) {
  Path path = Path::nothing;
  if (!in.keepalive.enabled) {
    p.outcome = Outcome::alive;
    p.steps.push_back("SO_KEEPALIVE is off: nothing probes an idle connection, so a dead peer is never detected");
    return path;
  }
  switch (in.peer) {
    case PeerBehaviour::unreachable:
      p.steps.push_back(
          "each probe is answered with ICMP host unreachable, but a probe's sequence number is snd_una - 1, "
          "outside [snd_una, snd_nxt]: the kernel drops the error as out of window (OutOfWindowIcmps), "
          "stores no soft error, and keepalive runs as if nothing came back");
      [[fallthrough]];
    case PeerBehaviour::silent:
      p.outcome = Outcome::timeout;
      p.errno_name = "ETIMEDOUT";
      p.rst_sent = true;
      p.nominal_ms = nominal_keepalive_abort_ms(in.keepalive);
      path = Path::keepalive_dead;
      break;
    case PeerBehaviour::rebooted:
      p.outcome = Outcome::reset;
      p.errno_name = "ECONNRESET";
      p.nominal_ms = 1000.0 * in.keepalive.idle_s;
      path = Path::keepalive_dead;
      break;
    case PeerBehaviour::answers:
      p.outcome = Outcome::alive;
      path = Path::keepalive_healthy;
      break;
  }
  return path;
}

// Data in flight or a SYN: the retransmission timer owns the connection, unless the
// peer answers the segment itself (an RST at once, or an ACK).
Path sending_connection_path(const Input& in, Prediction& p) {
  Path path = Path::nothing;
  switch (in.peer) {
    case PeerBehaviour::unreachable:
      if (in.traffic == Traffic::connecting)
        throw std::invalid_argument(
            "connect() to an unreachable peer fails at the first ICMP error (EHOSTUNREACH, no timer): not modelled");
      p.steps.push_back(
          "the data is answered with ICMP host unreachable: its sequence number is in window, so the kernel keeps "
          "EHOSTUNREACH as the socket's soft error and reports it, instead of ETIMEDOUT, when it gives up");
      p.outcome = Outcome::timeout;
      p.errno_name = "EHOSTUNREACH";
      p.nominal_ms = nominal_retransmission_abort_ms(in);
      path = Path::retransmission;
      break;
    case PeerBehaviour::silent:
      p.outcome = Outcome::timeout;
      p.errno_name = "ETIMEDOUT";
      p.nominal_ms = nominal_retransmission_abort_ms(in);
      path = Path::retransmission;
      break;
    case PeerBehaviour::rebooted: {
      // The peer's kernel has no socket for this segment and answers it with an RST
      // at once: the data (or the SYN) itself draws it, no timer is involved.
      const double sent = in.traffic == Traffic::connecting ? 0.0 : in.data_sent_at_ms;
      p.outcome = Outcome::reset;
      p.errno_name = in.traffic == Traffic::connecting ? "ECONNREFUSED" : "ECONNRESET";
      p.nominal_ms = sent + in.kernel.rtt_ms;
      p.window = Window{sent - std::max(0.0, in.kernel.receive_delay_ms), sent + in.kernel.rtt_ms + slack_of(in.kernel)};
      p.steps.push_back(fmt::format(
          "the peer lost the connection: it answers the {} sent at {} with an RST, {} one round trip later",
          in.traffic == Traffic::connecting ? "SYN" : "data", ms_text(sent),
          in.traffic == Traffic::connecting ? "ECONNREFUSED" : "ECONNRESET"));
      return Path::decided;
    }
    case PeerBehaviour::answers:
      p.outcome = Outcome::alive;
      p.steps.push_back(in.traffic == Traffic::connecting
                            ? "the peer answers the SYN: the connection is established"
                            : "the peer acknowledges the data: nothing times out");
      break;
  }
  return path;
}

// The calibration changes which alignments are replayed, so the steps say what it was.
std::string calibration_text(const JiffyCalibration& c) {
  return c.jiffies_modulus == 0
             ? fmt::format("jiffies calibrated: t_r falls in jiffy {} at {:.2f} of a tick (± {:.2f})",
                           c.jiffies_at_origin, c.origin_phase, c.phase_uncertainty)
             : fmt::format("tick phase calibrated: t_r falls at {:.2f} of a tick (± {:.2f}), in a "
                           "jiffy known modulo {} ({} mod {}): coarser buckets replayed for each "
                           "value left",
                           c.origin_phase, c.phase_uncertainty, c.jiffies_modulus,
                           c.jiffies_at_origin % c.jiffies_modulus, c.jiffies_modulus);
}

// Each possible HZ is its own jiffy grid with its own wheel levels: replayed apart,
// and their steps kept in order.
std::vector<Events> replay_each_hz(const Input& in, Path path, Prediction& p) {
  std::vector<Events> per_hz;
  for (const int hz : p.hz_values) {
    const Grid grid(hz);
    Events ev;
    if (path == Path::keepalive_dead) keepalive_dead_peer(in, grid, ev);
    else if (path == Path::keepalive_healthy) keepalive_healthy_peer(in, grid, ev);
    else retransmission_chain(in, grid, ev);
    if (calibrated_for(in.kernel, hz)) ev.steps.insert(ev.steps.begin() + 1, calibration_text(*in.kernel.calibration));
    for (auto& line : ev.steps) p.steps.push_back(std::move(line));
    per_hz.push_back(std::move(ev));
  }
  return per_hz;
}

// The events of every HZ as one: with HZ unknown any of them may be the kernel's.
struct MergedEvents {
  std::vector<Span> probes, retransmissions;
  std::vector<bool> probe_certain, retransmission_certain;
  Span outcome, loss_probe;
};
MergedEvents merge_over_hz(const std::vector<Events>& per_hz) {
  // Union over HZ: an event is certain only if every HZ has it, certainly.
  auto merge = [&](auto spans, auto flags, std::vector<Span>& out, std::vector<bool>& certain) {
    std::size_t n = 0;
    for (const auto& ev : per_hz) n = std::max(n, (ev.*spans).size());
    out.assign(n, Span{});
    certain.assign(n, true);
    for (const auto& ev : per_hz)
      for (std::size_t k = 0; k < n; ++k) {
        if (k < (ev.*spans).size()) out[k].add((ev.*spans)[k]);
        certain[k] = certain[k] && k < (ev.*flags).size() && (ev.*flags)[k];
      }
  };
  MergedEvents m;
  merge(&Events::probes, &Events::probe_certain, m.probes, m.probe_certain);
  merge(&Events::retransmissions, &Events::retransmission_certain, m.retransmissions, m.retransmission_certain);
  for (const auto& ev : per_hz) {
    m.outcome.add(ev.outcome);
    m.loss_probe.add(ev.loss_probe);
  }
  return m;
}

// Windows with the wake-up slack, next to the textbook instants (no jiffies, no
// lateness) they are compared with: the probes.
void add_probe_windows(const Input& in, Path path, const MergedEvents& m, double slack, Prediction& p) {
  const auto& probes = m.probes;
  const auto& probe_certain = m.probe_certain;
  for (std::size_t k = 0; k < probes.size(); ++k) {
    ProbeWindow w;
    w.index = static_cast<int>(k);
    w.nominal_ms = 1000.0 * in.keepalive.idle_s;
    if (path == Path::keepalive_dead)
      w.nominal_ms += 1000.0 * static_cast<double>(k) * in.keepalive.interval_s;
    else  // a healthy peer: one probe per idle period (or per interval, if longer)
      w.nominal_ms += 1000.0 * static_cast<double>(k) * std::max(in.keepalive.idle_s, in.keepalive.interval_s);
    w.window = with_slack(probes[k], slack);
    w.certain = probe_certain[k];
    p.probes.push_back(w);
  }
}

// The same for the retransmissions and the tail-loss probe.
void add_retransmission_windows(const Input& in, const MergedEvents& m, double slack, Prediction& p) {
  const auto& retransmissions = m.retransmissions;
  const auto& retransmission_certain = m.retransmission_certain;
  const auto& loss_probe = m.loss_probe;
  for (std::size_t k = 0; k < retransmissions.size(); ++k) {
    ProbeWindow w;
    w.index = static_cast<int>(k);
    w.nominal_ms = 0;  // filled below from the textbook chain
    w.window = with_slack(retransmissions[k], slack);
    w.certain = retransmission_certain[k];
    p.retransmissions.push_back(w);
  }
  if (!loss_probe.empty()) {
    ProbeWindow w;
    w.window = with_slack(loss_probe, slack);
    // Textbook: the send plus the probe timeout (no jiffy rounding, no lateness).
    const auto& rt = in.retransmission;
    const double rto = std::max(rt.first_rto_ms, rt.rto_min_ms);
    const double pto = rt.srtt_ms > 0 ? 2 * rt.srtt_ms + (rt.packets_out == 1 ? rt.rto_min_ms : 2.0) : 1000.0;
    w.nominal_ms = in.data_sent_at_ms + std::min(pto, rto);
    p.loss_probe = w;
  }
  if (!p.retransmissions.empty()) {
    // Textbook retransmission times: no lateness, no tail-loss probe.
    const auto& rt = in.retransmission;
    const bool syn = in.traffic == Traffic::connecting;
    double rto = syn ? rt.initial_rto_ms : std::max(rt.first_rto_ms, rt.rto_min_ms);
    double t = (syn ? 0.0 : in.data_sent_at_ms) + rto;
    for (std::size_t k = 0; k < p.retransmissions.size(); ++k) {
      p.retransmissions[k].nominal_ms = t;
      if (!syn || static_cast<int>(k) + 1 > rt.syn_linear_timeouts) rto = std::min(2 * rto, rt.rto_max_ms);
      t += rto;
    }
  }
}

// The outcome's window: a reset also waits the round trip of the probe it answers.
void set_outcome_window(const Input& in, const Span& outcome, double slack, Prediction& p) {
  switch (p.outcome) {
    case Outcome::timeout:
      p.window = with_slack(outcome, slack);
      break;
    case Outcome::reset:
      p.window = with_slack(outcome, slack + in.kernel.rtt_ms);
      break;
    case Outcome::alive:
    case Outcome::eof:  // never set above
      p.nominal_ms = in.horizon_ms;
      p.window = Window{in.horizon_ms, kInf};
      break;
  }
}

}  // namespace

Input for_kernel(const Input& given) {
  Input in = given;
  if (!has(in.kernel.version, Behaviour::syn_linear_timeouts)) in.retransmission.syn_linear_timeouts = 0;
  return in;
}

Prediction predict(const Input& given) {
  validate(given);
  Prediction p;
  const Input in = with_kernel_behaviours(given, p.steps);
  if (in.kernel.hz) p.hz_values = {*in.kernel.hz};
  else p.hz_values.assign(std::begin(kCommonHz), std::end(kCommonHz));

  const Path path = in.traffic == Traffic::idle ? idle_connection_path(in, p) : sending_connection_path(in, p);
  if (path == Path::decided) return p;
  if (p.outcome == Outcome::alive && path != Path::keepalive_healthy) {
    p.nominal_ms = in.horizon_ms;
    p.window = Window{in.horizon_ms, kInf};
    return p;
  }

  const int slowest_hz = *std::min_element(p.hz_values.begin(), p.hz_values.end());
  p.late_tick_ms = std::max(0, in.kernel.late_ticks) * 1000.0 / slowest_hz;
  const double slack = slack_of(in.kernel) + p.late_tick_ms;
  if (in.kernel.late_ticks > 0)
    p.steps.push_back(fmt::format("every window ends {} after its latest bucket: a callback may wait {} tick{} ({}) "
                                  "when another CPU's jiffies update comes after this CPU's tick, then {} for "
                                  "wake-up and receive delays",
                                  ms_text(slack), in.kernel.late_ticks, in.kernel.late_ticks == 1 ? "" : "s",
                                  ms_text(p.late_tick_ms), ms_text(slack_of(in.kernel))));
  if (p.hz_values.size() > 1) {
    p.steps.push_back("HZ unknown: the windows are the union of those for HZ 100, 250, 300 and 1000");
    if (in.kernel.calibration) p.steps.push_back("a jiffies calibration needs a known HZ: ignored");
  }
  const std::vector<Events> per_hz = replay_each_hz(in, path, p);
  const MergedEvents merged = merge_over_hz(per_hz);
  add_probe_windows(in, path, merged, slack, p);
  add_retransmission_windows(in, merged, slack, p);

  if (path == Path::keepalive_healthy)
    p.steps.push_back("the connection stays open: a peer whose kernel answers is never declared dead by keepalive");
  set_outcome_window(in, merged.outcome, slack, p);
  return p;
}

}  // namespace kah::model
