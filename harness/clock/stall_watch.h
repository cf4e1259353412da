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
// comes more than kRecordMs late is a gap on that CPU. A gap has two causes that a
// thread cannot tell apart by itself: the CPU stopped (the host ran something else, or
// interrupts were off), which holds back its timers too; or it ran kernel code that
// does not yield to a waiting task (this kernel is built with preemption "none": a
// namespace's setup, say, runs 20-40 ms like that), during which ticks go on. The CPU's
// count of local timer interrupts (/proc/interrupts LOC, read every 10 ms and again
// after a gap) tells them apart: a gap that took at most one interrupt where ticks
// would have taken several is a stop (Stall::stopped); one that took fewer than its
// ticks did not run for the ticks it missed (Stall::missed_ms). Ticks going on does not
// mean timers ran on time, nor does a stop mean nothing ran (Stall::held_within_ms
// has the measurements): every gap accounts for a late timer (run/stall_doubt.h). It needs CAP_SYS_NICE for
// SCHED_FIFO; without it (a container, a user namespace) nothing is watched and note()
// says so. Cost: 1000 short wake-ups per second per CPU, 100 reads of /proc/interrupts.
//
// StallWatch::process() is the process's one watch; watch() starts it. Thread-safe.
#pragma once

#include <sched.h>

#include <cstdint>
#include <mutex>
#include <optional>
#include <stop_token>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace kah {

// A CPU that ran nothing of the guest from from_ms to to_ms (CLOCK_MONOTONIC).
struct Stall {
  Stall() = default;
  Stall(int c, double from, double to, bool stop = false) : cpu(c), from_ms(from), to_ms(to), stopped(stop) {}

  int cpu = 0;
  double from_ms = 0;
  double to_ms = 0;
  // The CPU took no more than one timer interrupt in it: it looked stopped. False:
  // ticks went on, the CPU looked busy in the kernel. Unknown (no interrupt count
  // readable): false. Which it was does not say whether its timers ran (held_within_ms).
  bool stopped = false;
  // The local timer interrupts it took in the gap (LOC: ticks, and the hrtimers of any
  // task, this watch's own 1 ms sleeps among them), and the tick length (ms), when
  // counted. A CPU busy in the kernel takes at least every tick; fewer interrupts than
  // ticks means that for the ticks it did not take it did not run at all, or ran with
  // interrupts off.
  std::optional<double> interrupts;
  double tick_ms = 0;

  double length_ms() const { return to_ms - from_ms; }
  // How long the gap went without timer interrupts: all of it for a stop; else the
  // ticks it took none for (two aside: the one that ended the gap, and one for where
  // the count's edges fell); 0 when not counted. For the description only.
  double missed_ms() const;
  // How long within [from, to] this CPU's timers may have waited: all of the gap that
  // lies in it, whatever its kind. Neither kind says whether timers ran. Measured in
  // one soak of 100 idle library runs (da8ac1e): 219 keepalive probes left while both
  // CPUs were in gaps classed as stops; and twice timers due in a "busy" gap ran only
  // at its end: in idle-16, 160 keepalive callbacks due at 4382.8 ms into the run sent
  // their probes in spurts at 4387.5, 4391, 4394.3 and 4397.2-4397.7 ms (141 of them),
  // the end of a 23.0 ms gap of their CPU with 12 timer interrupts in it (the other CPU
  // ran on; a batch of 160 takes 0.1-1.2 ms in other runs); in a later soak's idle-41,
  // user-timeout-short's two aborts, due from 4064.5 ms, came at 4088.4 ms, the very
  // end of a 23.1 ms gap with 16 timer interrupts that began 0.8 ms after they were due.
  double held_within_ms(double from, double to) const;
  // "stopped: no timer interrupt", "busy in the kernel, 312 timer interrupts in it",
  // "ran in part: 12 timer interrupts in 310 ticks' time, 1184.0 ms not run".
  std::string describe() const;
};

// The local timer interrupts of `cpu` in a /proc/interrupts text (its "LOC:" line, in
// the column the header gives CPU<cpu>: offline CPUs have none).
std::optional<std::uint64_t> local_timer_interrupts(std::string_view proc_interrupts, int cpu);
// The CPUs in a set, in order (what sched_getaffinity() allows: the CPUs watched).
std::vector<int> cpus_of(const cpu_set_t& set);
// Whether a gap of `gap_ms` inside an interval of `interval_ms` (the last count before
// it to the count after it) that took `interrupts` local timer interrupts was a stop:
// at most one interrupt in the gap, counting every other tick of the interval as taken.
bool gap_was_stop(double gap_ms, double interval_ms, std::uint64_t interrupts, int hz);
// The interrupts of those that fell in the gap, on the same count (at least 0).
double ticks_in_gap(double gap_ms, double interval_ms, std::uint64_t interrupts, int hz);

// The CPU whose timers may have waited longest within [from_ms, to_ms]: each stall's
// Stall::held_within_ms, a CPU's stalls added up (cpu -1, 0 ms: none did).
struct CpuStalled {
  int cpu = -1;
  double ms = 0;
};
CpuStalled most_stalled(const std::vector<Stall>& stalls, double from_ms, double to_ms);
// most_stalled(...).ms.
double stalled_ms(const std::vector<Stall>& stalls, double from_ms, double to_ms);

class StallWatch {
 public:
  static constexpr double kPeriodMs = 1;
  static constexpr double kRecordMs = 2;  // lateness of a wake-up that counts as a stall
  // Above the harness's own timing threads (SCHED_FIFO 10, wakeup_priority.h) and the
  // kernel's threaded interrupts (50): only what the machine itself does comes first.
  static constexpr int kPriority = 90;

  static StallWatch& process();
  // Starts the threads, once (`hz`: the kernel's, for the ticks a gap should have
  // taken); returns whether every CPU is watched.
  bool watch(int hz);
  bool watching() const;
  // "every CPU this process may use watched (2: 0,1; SCHED_FIFO, 1 ms)" or why not.
  std::string note() const;
  // The stalls that overlap [from_ms, to_ms].
  std::vector<Stall> stalls(double from_ms, double to_ms) const;

  StallWatch(const StallWatch&) = delete;
  StallWatch& operator=(const StallWatch&) = delete;
  ~StallWatch();

 private:
  StallWatch() = default;
  void run(int cpu, int hz, std::stop_token stop);

  mutable std::mutex mutex_;
  bool started_ = false;
  int refused_ = 0;  // threads that could not pin or get SCHED_FIFO
  std::string note_ = "not started";
  std::vector<Stall> stalls_;
  std::vector<std::jthread> threads_;
};

}  // namespace kah
