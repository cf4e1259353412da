#include "harness/clock/stall_watch.h"

#include <pthread.h>
#include <sched.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <fstream>
#include <sstream>
#include <cerrno>
#include <cstring>
#include <map>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "harness/clock/clock.h"

namespace kah {

CpuStalled most_stalled(const std::vector<Stall>& stalls, double from_ms, double to_ms) {
  std::map<int, double> per_cpu;
  for (const auto& s : stalls)
    if (const double ms = s.held_within_ms(from_ms, to_ms); ms > 0) per_cpu[s.cpu] += ms;
  CpuStalled most;
  for (const auto& [cpu, ms] : per_cpu)
    if (ms > most.ms) most = {cpu, ms};
  return most;
}

double stalled_ms(const std::vector<Stall>& stalls, double from_ms, double to_ms) {
  return most_stalled(stalls, from_ms, to_ms).ms;
}

namespace {

// The column of `cpu` in /proc/interrupts: its header names the online CPUs in order
// ("CPU0 CPU1 CPU3" when CPU 2 is offline), so the column is not always the number.
std::optional<int> interrupt_column(std::string_view header, int cpu) {
  const std::string name = fmt::format("CPU{}", cpu);
  int column = 0;
  std::size_t at = 0;
  while (true) {
    const auto begin = header.find_first_not_of(" \t", at);
    if (begin == std::string_view::npos) return std::nullopt;
    const auto end = std::min(header.find_first_of(" \t", begin), header.size());
    if (header.substr(begin, end - begin) == name) return column;
    ++column;
    at = end;
  }
}

}  // namespace

std::optional<std::uint64_t> local_timer_interrupts(std::string_view text, int cpu) {
  const auto header_end = std::min(text.find('\n'), text.size());
  const auto column = interrupt_column(text.substr(0, header_end), cpu);
  if (!column) return std::nullopt;
  std::size_t at = 0;
  while (at < text.size()) {
    const auto end = std::min(text.find('\n', at), text.size());
    std::string_view line = text.substr(at, end - at);
    at = end + 1;
    const auto first = line.find_first_not_of(' ');
    if (first == std::string_view::npos || line.substr(first, 4) != "LOC:") continue;
    line.remove_prefix(first + 4);
    for (int i = 0;; ++i) {
      const auto digit = line.find_first_not_of(' ');
      if (digit == std::string_view::npos || line[digit] < '0' || line[digit] > '9') return std::nullopt;
      line.remove_prefix(digit);
      std::uint64_t value = 0;
      const auto [next, error] = std::from_chars(line.data(), line.data() + line.size(), value);
      if (error != std::errc()) return std::nullopt;
      if (i == *column) return value;
      line.remove_prefix(static_cast<std::size_t>(next - line.data()));
    }
  }
  return std::nullopt;
}

std::vector<int> cpus_of(const cpu_set_t& set) {
  std::vector<int> cpus;
  for (int cpu = 0; cpu < CPU_SETSIZE; ++cpu)
    if (CPU_ISSET(cpu, &set)) cpus.push_back(cpu);
  return cpus;
}

double ticks_in_gap(double gap_ms, double interval_ms, std::uint64_t interrupts, int hz) {
  const double tick_ms = 1000.0 / hz;
  // Ticks outside the gap, all taken (a busy CPU ticks every jiffy), and one more for
  // the wake-up that ended it.
  const double outside = std::ceil(std::max(0.0, interval_ms - gap_ms) / tick_ms) + 1;
  return std::max(0.0, static_cast<double>(interrupts) - outside);
}

bool gap_was_stop(double gap_ms, double interval_ms, std::uint64_t interrupts, int hz) {
  // A gap with ticks running would take about gap/tick of them; a stop none or one.
  return gap_ms >= 2 * (1000.0 / hz) && ticks_in_gap(gap_ms, interval_ms, interrupts, hz) <= 1;
}

double Stall::missed_ms() const {
  if (stopped) return length_ms();
  if (!interrupts || tick_ms <= 0) return 0;
  // One tick for the wake-up that ended the gap, one for where the count's edges fell.
  return std::max(0.0, length_ms() - (*interrupts + 2) * tick_ms);
}

double Stall::held_within_ms(double from, double to) const {
  return std::max(0.0, std::min(to_ms, to) - std::max(from_ms, from));
}

std::string Stall::describe() const {
  if (stopped) return "stopped: no timer interrupt";
  if (!interrupts || tick_ms <= 0) return "busy in the kernel, timer interrupts not counted";
  const double ticks = std::floor(length_ms() / tick_ms);
  if (missed_ms() > 0)
    return fmt::format("ran in part: {:.0f} timer interrupts in {:.0f} ticks' time, {:.1f} ms not run", *interrupts,
                       ticks, missed_ms());
  return fmt::format("busy in the kernel, {:.0f} timer interrupts in it", *interrupts);
}

StallWatch& StallWatch::process() {
  static StallWatch watch;
  return watch;
}

StallWatch::~StallWatch() {
  std::vector<std::jthread> threads;
  {
    std::lock_guard lock(mutex_);
    threads.swap(threads_);
  }
  threads.clear();  // request_stop + join; each wakes within a period
}

bool StallWatch::watch(int hz) {
  // The CPUs this process may run on (a container's cpuset may allow fewer than are
  // online): the connections' timers run there, and only there can a thread be pinned.
  cpu_set_t allowed;
  CPU_ZERO(&allowed);
  std::unique_lock lock(mutex_);
  if (started_) return refused_ == 0;
  started_ = true;
  if (::sched_getaffinity(0, sizeof allowed, &allowed) != 0) {
    ++refused_;
    note_ = fmt::format("not watched: cannot read this process's CPUs ({})", std::strerror(errno));
    return false;
  }
  const std::vector<int> cpus = cpus_of(allowed);
  for (const int cpu : cpus) threads_.emplace_back([this, cpu, hz](std::stop_token stop) { run(cpu, hz, stop); });
  lock.unlock();
  // Each thread says within a period whether it got its CPU and SCHED_FIFO.
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  lock.lock();
  if (refused_ == 0)
    note_ = fmt::format("every CPU this process may use watched ({}: {}; SCHED_FIFO, {:.0f} ms)", cpus.size(),
                        fmt::join(cpus, ","), kPeriodMs);
  return refused_ == 0;
}

bool StallWatch::watching() const {
  std::lock_guard lock(mutex_);
  return started_ && refused_ == 0;
}

std::string StallWatch::note() const {
  std::lock_guard lock(mutex_);
  return note_;
}

std::vector<Stall> StallWatch::stalls(double from_ms, double to_ms) const {
  std::lock_guard lock(mutex_);
  std::vector<Stall> found;
  for (const auto& s : stalls_)
    if (s.to_ms > from_ms && s.from_ms < to_ms) found.push_back(s);
  return found;
}

namespace {

std::optional<std::uint64_t> read_local_timer_interrupts(int cpu) {
  std::ifstream in("/proc/interrupts");
  if (!in) return std::nullopt;
  std::stringstream text;
  text << in.rdbuf();
  return local_timer_interrupts(text.str(), cpu);
}

}  // namespace

void StallWatch::run(int cpu, int hz, std::stop_token stop) {
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  int error = ::pthread_setaffinity_np(::pthread_self(), sizeof set, &set);
  const char* what = "pin to";
  if (error == 0) {
    const sched_param param{.sched_priority = kPriority};
    error = ::pthread_setschedparam(::pthread_self(), SCHED_FIFO, &param);
    what = "run SCHED_FIFO on";
  }
  if (error != 0) {
    std::lock_guard lock(mutex_);
    ++refused_;
    note_ = fmt::format("not watched: cannot {} CPU {} ({})", what, cpu, std::strerror(error));
    return;
  }
  constexpr int kCountEvery = 10;  // wake-ups between readings of the interrupt count
  const timespec period{0, static_cast<long>(kPeriodMs * 1e6)};
  double last = monotonic_ms();
  auto counted = read_local_timer_interrupts(cpu);
  double counted_at = monotonic_ms();
  for (int round = 1; !stop.stop_requested(); ++round) {
    ::clock_nanosleep(CLOCK_MONOTONIC, 0, &period, nullptr);
    const double now = monotonic_ms();
    const bool gap = now - last > kPeriodMs + kRecordMs;
    if (gap || round % kCountEvery == 0) {
      const auto count = read_local_timer_interrupts(cpu);
      if (gap) {
        Stall s{cpu, last + kPeriodMs, now, false};
        if (count && counted && *count >= *counted) {
          const double interval = monotonic_ms() - counted_at;
          s.stopped = gap_was_stop(s.length_ms(), interval, *count - *counted, hz);
          s.interrupts = ticks_in_gap(s.length_ms(), interval, *count - *counted, hz);
          s.tick_ms = 1000.0 / hz;
        }
        std::lock_guard lock(mutex_);
        stalls_.push_back(s);
      }
      counted = count;
      counted_at = monotonic_ms();
    }
    last = now;
  }
}

}  // namespace kah
