#include "harness/clock/jiffies.h"
#include "harness/clock/clock.h"

#include <fcntl.h>
#include <sys/utsname.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <ctime>
#include <limits>
#include <random>
#include <thread>

#include <fmt/format.h>

namespace kah {
namespace {

constexpr const char* kTimerList = "/proc/timer_list";
constexpr int kMaxConfigHz = 10000;
// MAX_STALLED_JIFFIES (kernel/time/tick-sched.c): when jiffies has not moved for this
// many ticks of a CPU, that CPU's tick updates it itself. A reading further behind is
// wrong, not late.
constexpr std::int64_t kMaxStalledJiffies = 5;
// A fit needs at least this many readings that agree without any lateness.
constexpr std::int64_t kMinConsistentReadings = 8;


// TICK_NSEC: (NSEC_PER_SEC + HZ/2) / HZ.
std::int64_t tick_nsec(int hz) { return (std::int64_t{1000000000} + hz / 2) / hz; }

std::int64_t floor_div(std::int64_t a, std::int64_t b) {
  const std::int64_t q = a / b;
  return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q;
}

template <class T>
std::optional<T> number_after(std::string_view text, std::string_view key) {
  const auto at = text.find(key);
  if (at == std::string_view::npos) return std::nullopt;
  const char* first = text.data() + at + key.size();
  const char* last = text.data() + text.size();
  while (first < last && *first == ' ') ++first;
  T value{};
  const auto [end, ec] = std::from_chars(first, last, value);
  if (ec != std::errc{} || end == first) return std::nullopt;
  return value;
}

// The whole of a /proc file in as few read() calls as possible: /proc/timer_list
// prints its clock and jiffies during the read, so a short read keeps them together.
std::optional<std::string> read_proc(const char* path) {
  const int fd = ::open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return std::nullopt;
  std::string text;
  std::array<char, 65536> buffer{};
  for (;;) {
    const ssize_t n = ::read(fd, buffer.data(), buffer.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    text.append(buffer.data(), static_cast<std::size_t>(n));
  }
  ::close(fd);
  return text;
}

std::optional<JiffySample> read_one_sample() {
  const auto text = read_proc(kTimerList);
  const std::int64_t after = monotonic_ns();
  if (!text) return std::nullopt;
  auto sample = parse_timer_list(*text);
  if (!sample) return std::nullopt;
  sample->read_ns = std::max<std::int64_t>(0, after - sample->monotonic_ns);
  return sample;
}

void sleep_until_ns(std::int64_t target) {
  // Sleep most of the way, spin the last stretch: wake-up latency is larger than
  // the precision wanted.
  constexpr std::int64_t kSpinNs = 300000;
  const std::int64_t now = monotonic_ns();
  if (target - now > kSpinNs) std::this_thread::sleep_for(std::chrono::nanoseconds(target - now - kSpinNs));
  while (monotonic_ns() < target) {
  }
}

// How the readings place one boundary offset, kept apart from fit() so that fit()
// reads as the search over offsets it is.
//
// jiffies advances only when the tick (or an idle exit) runs tick_do_update_jiffies64()
// at or after the boundary (kernel/time/tick-sched.c): a reading never shows a jiffy
// before its boundary, but can show the previous one after it, for as long as that tick
// is late. So, with jiffies advancing at b + n * tick, the constraint that holds for
// every reading is "no lead": jiffies <= base + (ticks elapsed when the read ended).
// The smallest base that satisfies it for all readings is the base; a reading that then
// shows less than the tick it began in is lagging.
struct Placement {
  std::int64_t base = 0;
  std::int64_t lagging = 0;
};
Placement place(const std::vector<JiffySample>& samples, std::int64_t tick, std::int64_t b) {
  Placement p{std::numeric_limits<std::int64_t>::min(), 0};
  for (const auto& s : samples)
    p.base = std::max(p.base, static_cast<std::int64_t>(s.jiffies) - floor_div(s.monotonic_ns + s.read_ns - b, tick));
  for (const auto& s : samples) {
    const std::int64_t behind = p.base + floor_div(s.monotonic_ns - b, tick) - static_cast<std::int64_t>(s.jiffies);
    // Further behind than the kernel lets jiffies stall: no lateness explains it.
    if (behind > kMaxStalledJiffies) p.lagging = std::numeric_limits<std::int32_t>::max();
    else p.lagging += behind > 0;
  }
  return p;
}

// The offsets that need the fewest lagging readings are the gap between an old and a
// new jiffy; the widest such gap, going round the tick, is where the boundary is.
struct OffsetRun {
  std::int64_t start = -1;
  std::int64_t len = 0;
};
OffsetRun longest_fewest_lagging(const std::vector<std::int64_t>& lagging, std::int64_t fewest) {
  const auto steps = static_cast<std::int64_t>(lagging.size());
  auto best = [&](std::size_t i) { return lagging[i] == fewest; };
  OffsetRun run;
  for (std::int64_t start = 0; start < steps; ++start) {
    const auto prev = static_cast<std::size_t>((start + steps - 1) % steps);
    if (!best(static_cast<std::size_t>(start)) || (best(prev) && start != 0)) continue;
    std::int64_t len = 0;
    while (len < steps && best(static_cast<std::size_t>((start + len) % steps))) ++len;
    if (len > run.len) run.start = start, run.len = len;
  }
  return run;
}

// How late the jiffies update has been, from the readings that still showed the old
// jiffy after `latest`: the earliest possible boundary reaches back that much.
std::int64_t max_jiffies_lag(const std::vector<JiffySample>& samples, std::int64_t tick, std::int64_t latest,
                             const Placement& at_latest) {
  std::int64_t max_lag = 0;
  for (const auto& s : samples) {
    const std::int64_t n_first = floor_div(s.monotonic_ns - latest, tick);
    const auto j = static_cast<std::int64_t>(s.jiffies);
    if (j >= at_latest.base + n_first) continue;
    // Jiffy j + 1 began at latest + (j + 1 - base) * tick at the latest; it was still
    // not counted when the reading began.
    max_lag = std::max(max_lag, s.monotonic_ns - (latest + (j + 1 - at_latest.base) * tick));
  }
  return max_lag;
}

}  // namespace

std::optional<int> hz_from_config_text(std::string_view config) {
  std::size_t pos = 0;
  while (pos < config.size()) {
    const std::size_t end = std::min(config.find('\n', pos), config.size());
    const std::string_view line = config.substr(pos, end - pos);
    if (line.rfind("CONFIG_HZ=", 0) == 0) {
      const auto hz = number_after<int>(line, "CONFIG_HZ=");
      if (hz && *hz > 0 && *hz <= kMaxConfigHz) return hz;
      return std::nullopt;
    }
    pos = end + 1;
  }
  return std::nullopt;
}

std::optional<int> hz_from_config_file(const std::filesystem::path& path) {
  // gzopen() reads plain files as they are, so one path serves both forms.
  gzFile file = gzopen(path.c_str(), "rb");
  if (file == nullptr) return std::nullopt;
  std::array<char, 4096> line{};
  std::optional<int> hz;
  while (gzgets(file, line.data(), static_cast<int>(line.size())) != nullptr) {
    const std::string_view text(line.data());
    if (text.rfind("CONFIG_HZ=", 0) == 0) {
      hz = hz_from_config_text(text);
      break;
    }
  }
  gzclose(file);
  return hz;
}

std::string kernel_release() {
  utsname u{};
  if (uname(&u) != 0) return "unknown";
  return u.release;
}

std::optional<JiffySample> parse_timer_list(std::string_view text) {
  const auto now = number_after<std::int64_t>(text, "now at ");
  const auto jiffies = number_after<std::uint64_t>(text, "\njiffies:");
  if (!now || !jiffies) return std::nullopt;
  return JiffySample{*now, *jiffies, 0};
}

std::optional<std::int64_t> tick_grid_phase(std::string_view text, int hz) {
  if (hz <= 0) return std::nullopt;
  const std::int64_t tick = tick_nsec(hz);
  std::vector<std::int64_t> phases;
  auto add = [&](std::int64_t ns) {
    if (ns > 0) phases.push_back(ns % tick);
  };
  // " #0: <...>, tick_nohz_handler, S:01\n # expires at A-B nsecs [...]"
  for (const std::string_view name : {", tick_sched_timer,", ", tick_nohz_handler,"}) {
    for (auto at = text.find(name); at != std::string_view::npos; at = text.find(name, at + 1)) {
      const auto line_end = text.find('\n', at);
      if (line_end == std::string_view::npos) break;
      if (const auto expires = number_after<std::int64_t>(text.substr(line_end, 64), "# expires at ")) add(*expires);
    }
  }
  for (auto at = text.find(".last_tick"); at != std::string_view::npos; at = text.find(".last_tick", at + 1))
    if (const auto last = number_after<std::int64_t>(text.substr(at, 64), ":")) add(*last);
  if (phases.empty()) return std::nullopt;
  // The earliest phase round the tick: the one after the widest gap between them.
  std::sort(phases.begin(), phases.end());
  std::size_t first = 0;
  std::int64_t widest = -1;
  for (std::size_t i = 0; i < phases.size(); ++i) {
    const std::size_t next = (i + 1) % phases.size();
    const std::int64_t gap = phases[next] - phases[i] + (next == 0 ? tick : 0);
    if (gap > widest) widest = gap, first = next;
  }
  // More than half a tick between the earliest and the latest: not one grid plus skews.
  if (phases.size() > 1 && tick - widest > tick / 2) return std::nullopt;
  return phases[first];
}

std::vector<JiffySample> read_jiffy_samples(int count, std::chrono::microseconds spacing) {
  std::vector<JiffySample> samples;
  std::mt19937_64 random(static_cast<std::uint64_t>(monotonic_ns()));
  std::uniform_int_distribution<std::int64_t> gap(0, 2 * spacing.count());
  for (int i = 0; i < count; ++i) {
    const auto sample = read_one_sample();
    if (!sample) return {};
    samples.push_back(*sample);
    if (i + 1 < count) std::this_thread::sleep_for(std::chrono::microseconds(gap(random)));
  }
  return samples;
}

std::optional<std::uint64_t> read_jiffies() {
  const auto sample = read_one_sample();
  if (!sample) return std::nullopt;
  return sample->jiffies;
}

std::optional<int> measure_hz(const std::vector<JiffySample>& samples) {
  if (samples.size() < 2) return std::nullopt;
  const auto& first = samples.front();
  const auto& last = samples.back();
  const double seconds = static_cast<double>(last.monotonic_ns - first.monotonic_ns) / 1e9;
  if (seconds < 0.1 || last.jiffies < first.jiffies) return std::nullopt;
  const double rate = static_cast<double>(last.jiffies - first.jiffies) / seconds;
  for (const int hz : model::kCommonHz)
    if (std::abs(rate - hz) <= 0.05 * hz) return hz;
  return std::nullopt;
}

HzInfo detect_hz(const std::filesystem::path& proc_config, const std::filesystem::path& boot_config, bool measure) {
  if (const auto hz = hz_from_config_file(proc_config)) return {hz, proc_config.string()};
  if (const auto hz = hz_from_config_file(boot_config)) return {hz, boot_config.string()};
  if (measure) {
    // Two readings ~200 ms apart: one jiffy of error is 2 % at HZ=250, well
    // inside the 20 % between the candidates.
    auto samples = read_jiffy_samples(1, std::chrono::microseconds(0));
    if (!samples.empty()) {
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
      if (const auto later = read_one_sample()) {
        samples.push_back(*later);
        if (const auto hz = measure_hz(samples))
          return {hz, fmt::format("measured from {} (jiffies advanced {} in {:.0f} ms)", kTimerList,
                                  samples.back().jiffies - samples.front().jiffies,
                                  static_cast<double>(samples.back().monotonic_ns - samples.front().monotonic_ns) / 1e6)};
      }
    }
  }
  return {std::nullopt, "unknown: using the union of windows for HZ 100, 250, 300, 1000"};
}

HzInfo detect_hz() {
  return detect_hz("/proc/config.gz", std::filesystem::path("/boot") / ("config-" + kernel_release()), true);
}

std::optional<JiffyClock> JiffyClock::fit(int hz, const std::vector<JiffySample>& samples,
                                          std::optional<std::int64_t> grid_phase) {
  if (hz <= 0 || samples.size() < 2) return std::nullopt;
  const std::int64_t tick = tick_nsec(hz);
  // Boundary offsets are tried 1 us apart (finer than a reading's own spread).
  constexpr std::int64_t kStepNs = 1000;
  const std::int64_t steps = (tick + kStepNs - 1) / kStepNs;

  // The offsets that need the fewest lagging readings. Moving b later past a reading that
  // shows the new jiffy breaks "no lead" (the base goes up one and every reading lags);
  // moving it earlier makes the readings that show the old jiffy after it lag. So these
  // offsets are the gap between the last reading that showed the old jiffy and the first
  // that showed the new one, once the readings only lateness explains are set aside.
  std::vector<std::int64_t> lagging(static_cast<std::size_t>(steps));
  for (std::int64_t k = 0; k < steps; ++k)
    lagging[static_cast<std::size_t>(k)] = place(samples, tick, k * kStepNs).lagging;
  const std::int64_t fewest = *std::min_element(lagging.begin(), lagging.end());
  const OffsetRun run = longest_fewest_lagging(lagging, fewest);
  const std::int64_t best_start = run.start, best_len = run.len;
  if (best_len == steps) return std::nullopt;  // no boundary seen at all
  // Evidence: most readings must agree without lateness. A reading that leads (shows a
  // jiffy before its boundary could have passed, which the kernel never does) pushes the
  // base up and makes the others lag: refused here, not explained away.
  const auto n = static_cast<std::int64_t>(samples.size());
  if (n - fewest < kMinConsistentReadings || 4 * fewest > n) return std::nullopt;

  JiffyClock clock;
  clock.hz_ = hz;
  clock.tick_ns_ = tick;
  // The latest offset of the run is bounded by a reading that showed the new jiffy (no
  // lead: certain). The earliest by one that showed the old jiffy, which holds only if
  // that reading was not itself late; the lagging readings show how late the jiffies
  // update has been, so the range reaches that much earlier.
  const std::int64_t latest = (best_start + best_len - 1) % steps * kStepNs;
  const Placement at_latest = place(samples, tick, latest);
  const std::int64_t max_lag = max_jiffies_lag(samples, tick, latest, at_latest);
  const std::int64_t high = latest + (latest < best_start * kStepNs ? tick : 0);
  // The grid is the earliest instant jiffies can advance: the grid point at or before high.
  const std::int64_t low = grid_phase ? high - ((high - *grid_phase) % tick + tick) % tick
                                      : best_start * kStepNs - max_lag;  // may be negative: offsets wrap
  clock.grid_known_ = grid_phase.has_value();
  const std::int64_t middle = low + (high - low) / 2;
  clock.boundary_ns_ = (middle % tick + tick) % tick;
  const Placement at_middle = place(samples, tick, clock.boundary_ns_);
  clock.jiffies_base_ = at_middle.base;
  clock.uncertainty_ticks_ = static_cast<double>(high - low + kStepNs) / 2 / static_cast<double>(tick);
  clock.readings_ = static_cast<int>(n);
  clock.lagging_readings_ = static_cast<int>(fewest);
  clock.max_lag_ns_ = max_lag;
  return clock;
}

std::optional<JiffyClock> JiffyClock::from_timer_firings(int hz, const std::vector<TimerFiring>& firings) {
  if (hz <= 0 || firings.size() < 4) return std::nullopt;
  const std::int64_t tick = tick_nsec(hz);
  std::vector<std::int64_t> phases;
  for (const auto& f : firings) phases.push_back((f.monotonic_ns % tick + tick) % tick);
  std::sort(phases.begin(), phases.end());
  // The cluster starts after the widest gap between phases, going round the tick.
  const std::size_t n = phases.size();
  std::size_t first = 0;
  std::int64_t widest = -1;
  for (std::size_t i = 0; i < n; ++i) {
    const std::size_t next = (i + 1) % n;
    const std::int64_t gap = phases[next] - phases[i] + (next == 0 ? tick : 0);
    if (gap > widest) widest = gap, first = next;
  }
  // The boundary is at most the earliest firing on time, and at least kFiringLatencyNs
  // before it. Some firings are much later (their softirq left to ksoftirqd on a busy
  // machine: 0.4, 1.6 and 3.9 ms seen here), and one delayed by most of a tick wraps
  // round to just before the others and looks early. So the phase is taken in the
  // densest stretch of kFiringLatencyNs (the firing from which the most others follow
  // within that latency), at its first quartile, which a few such firings cannot move.
  std::size_t densest = first;
  std::size_t most = 0;
  for (std::size_t k = 0; k < n; ++k) {
    const std::size_t i = (first + k) % n;
    std::size_t within = 0;
    for (std::size_t j = 0; j < n; ++j) within += ((phases[j] - phases[i]) % tick + tick) % tick < kFiringLatencyNs;
    if (within > most) most = within, densest = i;
  }
  if (2 * most < n) return std::nullopt;  // most firings not at tick boundaries
  const std::int64_t earliest = phases[(densest + most / 4) % n];
  JiffyClock clock;
  clock.hz_ = hz;
  clock.tick_ns_ = tick;
  clock.boundary_ns_ = ((earliest - kFiringLatencyNs / 2) % tick + tick) % tick;
  clock.uncertainty_ticks_ = static_cast<double>(kFiringLatencyNs / 2 + 1000) / static_cast<double>(tick);
  clock.readings_ = static_cast<int>(n);

  // Jiffies modulo the largest granularity: each firing's jiffy (the boundary it
  // follows) is a multiple of its own granularity.
  std::uint64_t modulus = 1;
  for (const auto& f : firings) modulus = std::max(modulus, f.granularity);
  auto tick_of = [&](const TimerFiring& f) { return floor_div(f.monotonic_ns - clock.boundary_ns_, tick); };
  auto residue = [](std::int64_t a, std::uint64_t m) {
    const auto mm = static_cast<std::int64_t>(m);
    return static_cast<std::uint64_t>((a % mm + mm) % mm);
  };
  // A firing is never early but can be late by a whole tick: when the CPU's tick beats
  // the jiffies update on the CPU that keeps time, that tick sees the old jiffies and the
  // timer waits for the next one (seen here in up to 40 % of firings on a busy machine),
  // and now and then by several (a deferred softirq). So each residue of base is tried:
  // the one that leaves the fewest firings more than kMaxLateTicks late, then needs the
  // least lateness, is kept, if at most a quarter are that late.
  constexpr std::uint64_t kMaxLateTicks = 2;
  std::optional<std::uint64_t> best_residue;
  std::pair<std::size_t, std::uint64_t> best_cost{n + 1, 0};
  int late = 0;
  for (std::uint64_t r = 0; r < modulus; ++r) {
    std::pair<std::size_t, std::uint64_t> cost{0, 0};
    int late_here = 0;
    for (const auto& f : firings) {
      const std::uint64_t lateness = residue(static_cast<std::int64_t>(r) + tick_of(f), f.granularity);
      if (lateness > kMaxLateTicks) ++cost.first;
      else cost.second += lateness;
      late_here += lateness > 0;
    }
    if (cost < best_cost) best_residue = r, best_cost = cost, late = late_here;
  }
  // Too many firings far late under every residue: only the phase is known.
  std::uint64_t base_residue = best_residue.value_or(0);
  if (!best_residue || 4 * best_cost.first > n) modulus = 1, base_residue = 0, late = 0;
  clock.lagging_readings_ = late;
  // Any value with that residue serves: replays depend on jiffies modulo it only.
  constexpr std::int64_t kRepresentative = std::int64_t{1} << 40;
  clock.jiffies_base_ = kRepresentative + static_cast<std::int64_t>(base_residue);
  clock.jiffies_modulus_ = modulus;
  clock.from_firings_ = true;
  return clock;
}

std::optional<JiffyClock> JiffyClock::anchored(std::int64_t from_ns, std::int64_t to_ns, std::uint32_t hundredths) const {
  if (jiffies_modulus_ == 0) return *this;
  if (jiffies_modulus_ < 64 || to_ns < from_ns) return std::nullopt;
  const auto hz = static_cast<std::uint64_t>(hz_);
  // INITIAL_JIFFIES (include/linux/jiffies.h) on a 64-bit kernel: (unsigned int)(-300 * HZ).
  const std::uint64_t initial = (std::uint64_t{1} << 32) - 300 * hz;
  // jiffies - INITIAL_JIFFIES in [ceil(h * HZ / 100), ceil((h + 1) * HZ / 100) - 1].
  const std::uint64_t since_lo = (std::uint64_t{hundredths} * hz + 99) / 100;
  const std::uint64_t since_hi = ((std::uint64_t{hundredths} + 1) * hz + 99) / 100 - 1;
  // The ticks of the two instants on this clock, one more each way for its uncertainty;
  // the kernel's jiffies may lag the first by up to MAX_STALLED_JIFFIES.
  const std::int64_t n_lo = floor_div(from_ns - boundary_ns_, tick_ns_) - 1 - kMaxStalledJiffies;
  const std::int64_t n_hi = floor_div(to_ns - boundary_ns_, tick_ns_) + 1;
  // base = jiffies - n, with base's residue modulo the modulus already known.
  const auto m = static_cast<std::int64_t>(jiffies_modulus_);
  const std::int64_t base_lo = static_cast<std::int64_t>(initial + since_lo) - n_hi;
  const std::int64_t base_hi = static_cast<std::int64_t>(initial + since_hi) - n_lo;
  if (base_hi - base_lo >= m) return std::nullopt;
  const std::int64_t r = ((jiffies_base_ % m) + m) % m;
  std::int64_t base = base_lo + ((r - base_lo % m) % m + m) % m;
  if (base > base_hi) return std::nullopt;
  JiffyClock clock = *this;
  clock.jiffies_base_ = base;
  clock.jiffies_modulus_ = 0;
  return clock;
}

std::optional<JiffyClock> JiffyClock::measure(int hz) {
  if (hz <= 0) return std::nullopt;
  const std::int64_t tick = tick_nsec(hz);
  // Coarse: readings at random phases find the boundary to a few percent of a tick.
  auto samples = read_jiffy_samples(40, std::chrono::microseconds(tick / 2000));
  if (samples.size() < 2) return std::nullopt;
  const auto coarse = fit(hz, samples);
  if (!coarse) return std::nullopt;
  // Fine: readings placed across the boundary found pin it to a reading's spread.
  const auto reach = std::clamp<std::int64_t>(
      static_cast<std::int64_t>(3 * coarse->uncertainty_ticks() * static_cast<double>(tick)), 50000, tick / 2);
  constexpr int kFine = 40;
  for (int i = 0; i < kFine; ++i) {
    const std::int64_t offset = -reach + 2 * reach * i / (kFine - 1);
    const std::int64_t soon = monotonic_ns() + 500000;
    std::int64_t target = coarse->boundary_ns() + floor_div(soon - coarse->boundary_ns(), tick) * tick + offset;
    while (target < soon) target += tick;
    sleep_until_ns(target);
    if (const auto s = read_one_sample()) samples.push_back(*s);
  }
  const auto text = read_proc(kTimerList);
  return fit(hz, samples, text ? tick_grid_phase(*text, hz) : std::nullopt);
}

model::JiffyCalibration JiffyClock::at(double monotonic_ms) const {
  const auto t = static_cast<std::int64_t>(std::llround(monotonic_ms * 1e6));
  const std::int64_t since = t - boundary_ns_;
  const std::int64_t n = floor_div(since, tick_ns_);
  model::JiffyCalibration c;
  c.jiffies_at_origin = static_cast<std::uint64_t>(jiffies_base_ + n);
  c.origin_phase = static_cast<double>(since - n * tick_ns_) / static_cast<double>(tick_ns_);
  c.phase_uncertainty = uncertainty_ticks_;
  c.jiffies_modulus = jiffies_modulus_;
  return c;
}

std::optional<double> JiffyClock::boundary_ms(std::uint64_t jiffy) const {
  if (jiffies_modulus_ != 0) return std::nullopt;
  const std::int64_t n = static_cast<std::int64_t>(jiffy) - jiffies_base_;
  return static_cast<double>(boundary_ns_ + n * tick_ns_) / 1e6;
}

}  // namespace kah
