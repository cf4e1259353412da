// Scheduler: runs actions at CLOCK_MONOTONIC instants on a thread of its own: the
// timers that live in the harness process (a server application's idle timeout, a
// client request after an idle period). Not the kernel's timers: these fire at or
// after their instant, late by the scheduler only (no timer-wheel rounding).
//
// Threading: at() may be called from any thread; actions run one at a time on the
// scheduler's thread and must be short. The destructor drops what has not run yet
// and joins. An exception from an action is kept; failure() returns the first.
#pragma once

#include <condition_variable>
#include <exception>
#include <functional>
#include <map>
#include <mutex>
#include <thread>

namespace kah {

class Scheduler {
 public:
  Scheduler();
  ~Scheduler();
  Scheduler(const Scheduler&) = delete;
  Scheduler& operator=(const Scheduler&) = delete;

  // Runs `action` at `when_ms` (CLOCK_MONOTONIC, as monotonic_ms()), at once if past.
  void at(double when_ms, std::function<void()> action);
  // The first exception an action threw, or null.
  std::exception_ptr failure() const;

 private:
  void loop();

  mutable std::mutex mutex_;
  std::condition_variable changed_;
  std::multimap<double, std::function<void()>> pending_;
  std::exception_ptr failure_;
  bool stopping_ = false;
  std::thread thread_;  // last: starts once the rest exists
};

}  // namespace kah
