// Wake-up priority for the harness's timing threads: the event loop that sees a
// connection end (its instant is the verdict for ends without a packet: connect(),
// data in flight, EOF) and the scheduler that lands faults and closes idle connections
// on time. On a machine whose cores are busy (a CI runner, stress-ng), a thread of the
// normal class waits for the busy ones' time slices: ends seen 10-20 ms after the
// kernel decided, idle timeouts fired 17 ms late (measured by scripts/soak.sh). That is
// the harness's lateness, not the kernel's, so these two threads ask for SCHED_FIFO at
// a low priority: they run as soon as they are woken, ahead of every normal task.
// Nothing heavy runs on them (their callbacks are short), so they cannot starve the
// machine; the kernel's RT throttling bounds them anyway.
//
// Needs CAP_SYS_NICE or an RLIMIT_RTPRIO of at least kWakeupPriority (containers often
// have neither): then the thread stays in the normal class, and wakeup_priority()
// says why. KAHARNESS_NO_REALTIME=1 turns it off.
#pragma once

#include <string>

namespace kah {

inline constexpr int kWakeupPriority = 10;  // SCHED_FIFO 1..99; low: kernel threads keep theirs

// Moves the calling thread to SCHED_FIFO kWakeupPriority when allowed; records the
// outcome for wakeup_priority(). Never throws.
void raise_wakeup_priority();

// What the timing threads got, for people and the JSON: "SCHED_FIFO 10", or
// "normal (...why...)". "normal (not asked)" before any thread asked.
std::string wakeup_priority();

}  // namespace kah
