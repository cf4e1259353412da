// The kernel's tracepoints for a whole run (netns/kernel_trace.h): one reader thread
// drains every CPU's perf ring into a store of events, and each case, when it collects
// its results, takes the events of its time span and re-times its probes and ends by
// them (harness/evidence/kernel_timing.h).
//
// Opening can fail (no tracefs, not root, perf_event_paranoid, a container's seccomp
// filter): then on() is false, status().note says why, and the run goes on with
// capture and wake-up timing as without it.
//
// Threading: the reader thread and any number of case threads; every member is
// thread-safe.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

#include "harness/evidence/kernel_timing.h"
#include "harness/judge/result.h"
#include "netns/kernel_trace.h"

namespace kah {

class JiffyClock;

class KernelTraceLoop {
 public:
  // Opens timer:timer_expire_entry (filtered on the callbacks tcp_keepalive_timer and
  // tcp_write_timer) and sock:inet_sock_set_state on every online CPU and starts reading.
  KernelTraceLoop();
  ~KernelTraceLoop();
  KernelTraceLoop(const KernelTraceLoop&) = delete;
  KernelTraceLoop& operator=(const KernelTraceLoop&) = delete;

  bool on() const { return trace_ != nullptr; }
  // What it did so far: counters of the cases that used it, samples lost.
  evidence::KernelTraceStatus status() const;

  // One connection of a case, as collect() knows it.
  struct Connection {
    ConnectionResult* result = nullptr;
    std::optional<evidence::TracedSocketKey> key;  // none: nothing to match (no socket)
    double origin_ms = 0;                          // t = 0, CLOCK_MONOTONIC
  };
  // Re-times the probes and ends of one case's connections by the kernel's events
  // (all of them from `from_ms` on). `clock`: the jiffies calibration; bucket instants
  // need jiffies itself (timer_list), else only state changes time the ends.
  void attach(std::vector<Connection>& connections, const JiffyClock* clock, double from_ms);

 private:
  void read_until_stopped();
  void drain_locked();

  std::unique_ptr<netns::KernelTrace> trace_;
  std::optional<netns::KernelEventDecoder> decoder_;
  std::uint64_t keepalive_fn_ = 0, retransmit_fn_ = 0;
  bool user_space_filter_ = false;

  mutable std::mutex mutex_;  // the trace's rings, the store and the counters
  std::vector<netns::SockState> states_;
  std::vector<netns::TimerExpiry> timers_;
  evidence::KernelTraceStatus status_;
  std::vector<std::int64_t> keepalive_votes_, retransmit_votes_;  // timer - skaddr, one vote per socket

  std::mutex stop_mutex_;
  std::condition_variable stop_cv_;
  bool stop_ = false;
  std::thread reader_;
};

}  // namespace kah
