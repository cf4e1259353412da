// Stopping a run on SIGINT or SIGTERM without losing what it observed.
//
// InterruptGuard turns the first SIGINT/SIGTERM into a stop request (a
// std::stop_token the run's wait loops observe, RunOptions::stop): the cases
// that are waiting stop waiting, judge what they saw, and tear down their
// namespaces, captures and child processes as on any other return (RAII); the
// CLI then writes its outputs and exits 128 + the signal (130, 143). A second
// signal exits at once (_exit): the kernel still frees the anonymous namespaces,
// and child processes die with the harness (PR_SET_PDEATHSIG).
//
// The signal handler only stores the signal number and writes one byte to a pipe
// (async-signal-safe); a helper thread reads the pipe and requests the stop.
// One guard at a time per process; the previous handlers are restored when it ends.
#pragma once

#include <atomic>
#include <stop_token>
#include <string>
#include <thread>

#include "harness/result.h"

namespace kah {

class InterruptGuard {
 public:
  InterruptGuard();   // installs the handlers for SIGINT and SIGTERM
  ~InterruptGuard();  // restores the previous handlers
  InterruptGuard(const InterruptGuard&) = delete;
  InterruptGuard& operator=(const InterruptGuard&) = delete;

  std::stop_token token() const { return source_.get_token(); }
  // The first signal received, 0 if none.
  int signal() const;

 private:
  std::stop_source source_;
  int pipe_[2] = {-1, -1};
  std::thread reader_;
};

// The exit code of a run stopped by `signal`: 128 + signal (130 for SIGINT, 143 for SIGTERM).
int interrupted_exit_code(int signal);
// "SIGINT", "SIGTERM", "signal N".
std::string signal_name(int signal);

// A connection still open when the run was stopped, `at_ms` from its origin: it is
// alive so far, which is neither a pass nor a failure.
void mark_interrupted(ConnectionResult& r, double at_ms);
// A case that had not started when the run was stopped.
CaseResult interrupted_case(const Case& c);
// The verdict of a case the stop cut short: a connection that already failed (or
// errored) keeps the case failed, so an interrupt never hides a failure; otherwise
// it is `interrupted`.
Verdict interrupted_case_verdict(const std::vector<ConnectionResult>& connections);
// Whether the stop left any connection undecided (otherwise the case is judged as usual).
bool any_interrupted(const std::vector<ConnectionResult>& connections);

}  // namespace kah
