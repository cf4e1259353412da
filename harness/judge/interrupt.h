// The verdicts of a run stopped on SIGINT or SIGTERM (cli/interrupt_guard.h turns
// the signal into a stop request): connections still open are alive so far, which
// is neither a pass nor a failure, and an interrupt never hides a failure.
#pragma once

#include <atomic>
#include <stdexcept>
#include <stop_token>
#include <string>
#include <thread>

#include "harness/judge/result.h"

namespace kah {

// A connection still open when the run was stopped, `at_ms` from its origin: it is
// alive so far, which is neither a pass nor a failure.
void mark_interrupted(ConnectionResult& r, double at_ms);
// A case that had not started when the run was stopped.
CaseResult interrupted_case(const Case& c);
// Thrown where a case sets up (waiting for its turn, its programs, their connections)
// once the run is stopped: nothing was injected yet, so the case reads as not started
// (interrupted_case), and the run does not wait for a setup nobody will use.
struct StoppedBeforeFault : std::runtime_error {
  StoppedBeforeFault() : std::runtime_error("the run was stopped before this case's fault") {}
};
// Throws StoppedBeforeFault when `stop` was requested.
inline void throw_if_stopped(const std::stop_token& stop) {
  if (stop.stop_requested()) throw StoppedBeforeFault();
}
// A case not run because the backend lacks something it needs (verdict skip).
CaseResult skipped_case(const Case& c, std::string reason);
// The verdict of a case the stop cut short: a connection that already failed (or
// errored) keeps the case failed, so an interrupt never hides a failure; otherwise
// it is `interrupted`.
Verdict interrupted_case_verdict(const std::vector<ConnectionResult>& connections);
// Whether the stop left any connection undecided (otherwise the case is judged as usual).
bool any_interrupted(const std::vector<ConnectionResult>& connections);

}  // namespace kah
