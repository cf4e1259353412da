// Stopping a run on SIGINT or SIGTERM without losing what it observed.
//
// InterruptGuard turns the first SIGINT/SIGTERM into a stop request (a
// std::stop_token the run's wait loops observe, RunOptions::stop): the cases
// that are waiting stop waiting, judge what they saw (judge/interrupt.h), and tear
// down their namespaces, captures and child processes as on any other return
// (RAII); the CLI then writes its outputs and exits 128 + the signal (130, 143). A
// second signal exits at once (_exit): the kernel still frees the anonymous
// namespaces, and child processes die with the harness (PR_SET_PDEATHSIG).
//
// The signal handler only stores the signal number and writes one byte to a pipe
// (async-signal-safe); a helper thread reads the pipe and requests the stop.
// One guard at a time per process; the previous handlers are restored when it ends.
#pragma once

#include <stop_token>
#include <string>
#include <thread>

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

// The exit code of a run stopped by `signal`: 128 + signal (130 for SIGINT, 143 for SIGTERM).
int interrupted_exit_code(int signal);
// "SIGINT", "SIGTERM", "signal N".
std::string signal_name(int signal);

}  // namespace kah
