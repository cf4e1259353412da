#include "harness/clock/stall_watch.h"

#include <pthread.h>
#include <sched.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <map>

#include <fmt/format.h>

#include "harness/clock/clock.h"

namespace kah {

double stalled_ms(const std::vector<Stall>& stalls, double from_ms, double to_ms) {
  std::map<int, double> per_cpu;
  for (const auto& s : stalls) {
    const double lo = std::max(s.from_ms, from_ms);
    const double hi = std::min(s.to_ms, to_ms);
    if (hi > lo) per_cpu[s.cpu] += hi - lo;
  }
  double most = 0;
  for (const auto& [cpu, ms] : per_cpu) most = std::max(most, ms);
  return most;
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

bool StallWatch::watch() {
  const long cpus = ::sysconf(_SC_NPROCESSORS_ONLN);
  std::unique_lock lock(mutex_);
  if (started_) return refused_ == 0;
  started_ = true;
  for (int cpu = 0; cpu < cpus; ++cpu) threads_.emplace_back([this, cpu](std::stop_token stop) { run(cpu, stop); });
  lock.unlock();
  // Each thread says within a period whether it got its CPU and SCHED_FIFO.
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  lock.lock();
  if (refused_ == 0) note_ = fmt::format("every CPU watched ({}; SCHED_FIFO, {:.0f} ms)", cpus, kPeriodMs);
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

void StallWatch::run(int cpu, std::stop_token stop) {
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
  const timespec period{0, static_cast<long>(kPeriodMs * 1e6)};
  double last = monotonic_ms();
  while (!stop.stop_requested()) {
    ::clock_nanosleep(CLOCK_MONOTONIC, 0, &period, nullptr);
    const double now = monotonic_ms();
    if (now - last > kPeriodMs + kRecordMs) {
      std::lock_guard lock(mutex_);
      stalls_.push_back({cpu, last + kPeriodMs, now});
    }
    last = now;
  }
}

}  // namespace kah
