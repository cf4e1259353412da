// Lateness the machine caused: a connection that failed only by being late, during
// gaps of one of the machine's CPUs (clock/stall_watch.h) at least as long.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "harness/clock/stall_watch.h"
#include "harness/judge/result.h"

namespace kah {

// A connection that failed only by being late, while the timers of some CPU may have
// waited (Stall::held_within_ms: a gap in which a SCHED_FIFO thread could not run) for
// at least that long (StallWatch) after the first late event was due (from its
// window's start: a stall before it delays nothing that came late) and before the last
// late one was seen: the kernel's timers could not run on time either, so it is not
// judged. Names the stall. (Gaps of 2-14 ms, often on both CPUs at once, come dozens
// of times in an idle library run here; a window's slack covers most of those.)
// `stalls`: those seen during the run (CLOCK_MONOTONIC); `origin_ms`: the connection's t = 0.
std::optional<std::string> stall_doubt(const ConnectionResult& r, double origin_ms, const std::vector<Stall>& stalls);

}  // namespace kah
