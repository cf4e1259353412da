// When the machine stopped running a CPU.
//
// A virtual machine's CPU can stop for tens of milliseconds while the host runs
// something else (measured here, a 2-vCPU guest with both CPUs busy: one 11 ms gap in
// 60 s of a SCHED_FIFO thread sleeping 1 ms, and probes 20 and 90 ms after their
// windows in 2 of 240 soak runs). Nothing on that CPU runs then: not its timer
// softirq, and, when it is the CPU that keeps time, not the jiffies update the other
// CPU's timers wait for (for up to 5 ticks: MAX_STALLED_JIFFIES, kernel/time/tick-sched.c).
// A keepalive probe is then late by the stall, which is not the kernel's timers nor
// the model at fault.
//
// StallWatch sees such stops: one thread per CPU, pinned to it, SCHED_FIFO (nothing
// of the guest's ordinary load delays it), sleeping 1 ms at a time; a wake-up that
// comes more than kRecordMs late is a stall of that CPU over the gap (interrupts and
// the softirqs run on their way out delay it too: they also hold back the timers). It needs
// CAP_SYS_NICE for SCHED_FIFO; without it (a container, a user namespace) nothing is
// watched and note() says so. Cost: 1000 short wake-ups per second per CPU.
//
// StallWatch::process() is the process's one watch; watch() starts it. Thread-safe.
#pragma once

#include <mutex>
#include <stop_token>
#include <string>
#include <thread>
#include <vector>

namespace kah {

// A CPU that ran nothing of the guest from from_ms to to_ms (CLOCK_MONOTONIC).
struct Stall {
  int cpu = 0;
  double from_ms = 0;
  double to_ms = 0;
};

// The longest any one CPU was stalled within [from_ms, to_ms], each stall clipped to
// it, a CPU's stalls added up.
double stalled_ms(const std::vector<Stall>& stalls, double from_ms, double to_ms);

class StallWatch {
 public:
  static constexpr double kPeriodMs = 1;
  static constexpr double kRecordMs = 2;  // lateness of a wake-up that counts as a stall
  // Above the harness's own timing threads (SCHED_FIFO 10, wakeup_priority.h) and the
  // kernel's threaded interrupts (50): only what the machine itself does comes first.
  static constexpr int kPriority = 90;

  static StallWatch& process();
  // Starts the threads, once; returns whether every CPU is watched.
  bool watch();
  bool watching() const;
  // "every CPU watched (SCHED_FIFO, 1 ms)" or why not.
  std::string note() const;
  // The stalls that overlap [from_ms, to_ms].
  std::vector<Stall> stalls(double from_ms, double to_ms) const;

  StallWatch(const StallWatch&) = delete;
  StallWatch& operator=(const StallWatch&) = delete;
  ~StallWatch();

 private:
  StallWatch() = default;
  void run(int cpu, std::stop_token stop);

  mutable std::mutex mutex_;
  bool started_ = false;
  int refused_ = 0;  // threads that could not pin or get SCHED_FIFO
  std::string note_ = "not started";
  std::vector<Stall> stalls_;
  std::vector<std::jthread> threads_;
};

}  // namespace kah
