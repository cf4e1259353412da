#include "harness/clock/realtime_steps.h"

#include <poll.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <ctime>

#include <fmt/format.h>

#include "harness/clock/wakeup_priority.h"

namespace kah {
namespace {

// A reading's own error plus this: the offset does not drift (NTP slews both clocks
// alike), so anything beyond it is a step.
constexpr std::int64_t kStepToleranceNs = 1000;
// How long after reading a stamp may claim to have been taken: the readings' error.
constexpr std::int64_t kReadSlackNs = 2000;
// The watcher's period when nothing is reported: keeps every bracket this short.
constexpr int kWatchPeriodMs = 10;
// ... and for this long after a step: the next steps of a burst get brackets this short.
constexpr int kBurstPeriodMs = 1;
constexpr std::int64_t kBurstNs = 10'000'000'000;

double ms(std::int64_t ns) { return static_cast<double>(ns) / 1e6; }

}  // namespace

std::string ClockStep::describe() const {
  return fmt::format("{:+.3f} ms between CLOCK_MONOTONIC {:.3f} and {:.3f} ms", ms(by_ns), ms(after_ns),
                     ms(no_later_ns));
}

StepLog::StepLog(ClockOffset first, std::int64_t read_from_ns) : last_reading_ns_(read_from_ns) {
  spans_.push_back({first});
}

bool StepLog::observe(std::int64_t begun_ns, std::int64_t done_ns, const ClockOffset& reading) {
  const OffsetSpan& now = spans_.back();
  const std::int64_t moved = reading.realtime_minus_monotonic_ns - now.offset.realtime_minus_monotonic_ns;
  const bool stepped = std::llabs(moved) > reading.error_ns + now.offset.error_ns + kStepToleranceNs;
  if (stepped) spans_.push_back({reading, last_reading_ns_, done_ns});
  last_reading_ns_ = std::max(last_reading_ns_, begun_ns);
  return stepped;
}

PlacedStamp StepLog::place(std::int64_t realtime_ns, std::int64_t read_by_ns) const {
  const auto candidate = [&](std::size_t k) { return realtime_ns - spans_[k].offset.realtime_minus_monotonic_ns; };
  if (spans_.size() == 1) return {candidate(0), false};
  std::optional<std::size_t> chosen;
  int possible = 0;
  for (std::size_t k = 0; k < spans_.size(); ++k) {
    const std::int64_t m = candidate(k);
    // Span k can have stamped it if m lies after it could have begun and before it
    // surely ended (or before the stamp was read, for the last one).
    const std::int64_t ends_by = k + 1 < spans_.size() ? spans_[k + 1].by_ns : read_by_ns;
    if (m > spans_[k].after_ns && m <= std::min(ends_by, read_by_ns) + kReadSlackNs) {
      chosen = k;
      ++possible;
    }
  }
  if (possible == 1) return {candidate(*chosen), false};
  // None (a stamp from before the log, or read later than said) or several: the offset
  // in force when it was read, marked.
  std::size_t in_force = 0;
  for (std::size_t k = 0; k < spans_.size(); ++k)
    if (spans_[k].by_ns <= read_by_ns) in_force = k;
  return {candidate(possible > 1 ? *chosen : in_force), true};
}

std::vector<ClockStep> StepLog::steps() const {
  std::vector<ClockStep> out;
  for (std::size_t k = 1; k < spans_.size(); ++k)
    out.push_back({spans_[k].offset.realtime_minus_monotonic_ns - spans_[k - 1].offset.realtime_minus_monotonic_ns,
                   spans_[k].after_ns, spans_[k].by_ns});
  return out;
}

namespace {

// The log's first offset, with when it was read: without that instant a step before
// the first check() had a bracket from -infinity, and every stamp before it was
// ambiguous (a soak run lost 6 connections' verdicts to a +0.5 ms step so).
StepLog first_reading() {
  const std::int64_t begun = monotonic_ns();
  return StepLog(ClockOffset::measure(), begun);
}

}  // namespace

RealtimeSteps::RealtimeSteps() : log_(first_reading()) {}

RealtimeSteps& RealtimeSteps::process() {
  static RealtimeSteps steps;
  return steps;
}

ClockOffset RealtimeSteps::reference() const {
  std::lock_guard lock(mutex_);
  return log_.first();
}

std::int64_t RealtimeSteps::check() {
  // Read under the lock, so that readings reach the log in the order they were taken.
  std::lock_guard lock(mutex_);
  const std::int64_t begun = monotonic_ns();
  const ClockOffset reading = ClockOffset::measure(4);
  const std::int64_t done = monotonic_ns();
  log_.observe(begun, done, reading);
  return done;
}

RealtimeSteps::Checked RealtimeSteps::checked() {
  const std::int64_t read_by = check();
  std::lock_guard lock(mutex_);
  if (log_.spans().size() == 1) return {std::nullopt, read_by};
  return {log_, read_by};
}

std::int64_t RealtimeSteps::Checked::to_run_realtime(std::int64_t realtime_ns, bool& ambiguous) const {
  if (!stepped()) return realtime_ns;  // the common case: the kernel's stamp as it is
  const PlacedStamp placed = log->place(realtime_ns, read_by_ns);
  if (placed.ambiguous) ambiguous = true;
  return placed.monotonic_ns + log->first().realtime_minus_monotonic_ns;
}

std::vector<ClockStep> RealtimeSteps::steps(std::int64_t since_ns) const {
  std::lock_guard lock(mutex_);
  std::vector<ClockStep> out;
  for (const auto& s : log_.steps())
    if (s.no_later_ns >= since_ns) out.push_back(s);
  return out;
}

std::size_t RealtimeSteps::step_count() const {
  std::lock_guard lock(mutex_);
  return log_.spans().size() - 1;
}

void RealtimeSteps::watch() {
  std::lock_guard lock(mutex_);
  if (watcher_.joinable()) return;
  watcher_ = std::jthread([this](std::stop_token stop) { watch_loop(stop); });
}

void RealtimeSteps::watch_loop(std::stop_token stop) {
  // A step's bracket runs from the last reading before it to the first after it. The
  // kernel's report (below) ends it within this thread's wake-up, which SCHED_FIFO
  // keeps short; its start is the previous periodic reading, up to a period before.
  // Steps come in bursts (measured in soak.sh: a guest agent stepped +0.5 ms every
  // 100 ms for 6 s, brackets 2-18 ms, and the stamps in a forward step shorter than
  // its bracket could not be placed), so after a step the period is 1 ms for a while.
  raise_wakeup_priority();
  // A realtime timer far in the future that the kernel cancels when the clock is set:
  // the read then fails with ECANCELED, which is the report. Without it (old kernel,
  // seccomp), the period alone.
  const int fd = ::timerfd_create(CLOCK_REALTIME, TFD_CLOEXEC | TFD_NONBLOCK);
  const auto arm = [fd] {
    if (fd < 0) return;
    itimerspec far{};
    far.it_value.tv_sec = std::time(nullptr) + 10L * 365 * 24 * 3600;
    ::timerfd_settime(fd, TFD_TIMER_ABSTIME | TFD_TIMER_CANCEL_ON_SET, &far, nullptr);
  };
  arm();
  std::size_t steps_seen = step_count();
  std::int64_t burst_until_ns = 0;
  while (!stop.stop_requested()) {
    pollfd p{fd, POLLIN, 0};
    const int period = monotonic_ns() < burst_until_ns ? kBurstPeriodMs : kWatchPeriodMs;
    const int ready = ::poll(&p, fd >= 0 ? 1 : 0, period);
    if (ready > 0) {
      std::uint64_t expirations = 0;
      if (::read(fd, &expirations, sizeof expirations) < 0 && errno == ECANCELED) arm();
    }
    const std::int64_t at = check();
    if (const std::size_t n = step_count(); n != steps_seen) {
      steps_seen = n;
      burst_until_ns = at + kBurstNs;
    }
  }
  if (fd >= 0) ::close(fd);
}

}  // namespace kah
