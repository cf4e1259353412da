#include "harness/run/scheduler.h"

#include <time.h>

#include <cerrno>
#include <cmath>

#include "harness/clock/wakeup_priority.h"
#include "harness/run/watcher.h"

namespace kah {
namespace {

// Sleeps until `when_ms` on CLOCK_MONOTONIC itself (an absolute deadline: no drift
// from the time it takes to get here), or until woken early by `changed`.
timespec to_timespec(double ms) {
  timespec ts{};
  ts.tv_sec = static_cast<time_t>(std::floor(ms / 1000));
  ts.tv_nsec = static_cast<long>((ms - static_cast<double>(ts.tv_sec) * 1000) * 1e6);
  if (ts.tv_nsec >= 1000000000L) {
    ts.tv_sec += 1;
    ts.tv_nsec -= 1000000000L;
  }
  return ts;
}

}  // namespace

Scheduler::Scheduler() : thread_([this] { loop(); }) {}

Scheduler::~Scheduler() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  changed_.notify_all();
  thread_.join();
}

void Scheduler::at(double when_ms, std::function<void()> action) {
  {
    std::lock_guard lock(mutex_);
    pending_.emplace(when_ms, std::move(action));
  }
  changed_.notify_all();
}

std::exception_ptr Scheduler::failure() const {
  std::lock_guard lock(mutex_);
  return failure_;
}

void Scheduler::loop() {
  raise_wakeup_priority();  // idle timeouts and delayed writes are due at an instant
  std::unique_lock lock(mutex_);
  for (;;) {
    if (stopping_) return;
    if (pending_.empty()) {
      changed_.wait(lock);
      continue;
    }
    const double next = pending_.begin()->first;
    const double now = monotonic_ms();
    if (now < next) {
      // Coarse wait on the condition variable (woken by at() or the destructor), then
      // the last stretch with clock_nanosleep on CLOCK_MONOTONIC, which never wakes early.
      if (next - now > 2) {
        changed_.wait_for(lock, std::chrono::microseconds(static_cast<long>((next - now - 1) * 1000)));
        continue;
      }
      lock.unlock();
      const timespec ts = to_timespec(next);
      while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, nullptr) == EINTR) {
      }
      lock.lock();
      continue;
    }
    auto action = std::move(pending_.begin()->second);
    pending_.erase(pending_.begin());
    lock.unlock();
    try {
      action();
    } catch (...) {
      std::lock_guard guard(mutex_);
      if (!failure_) failure_ = std::current_exception();
    }
    lock.lock();
  }
}

}  // namespace kah
