// The run loop: builds each case's topology, opens its connections, waits until
// they are idle, injects the fault, and observes what the kernel does, with one
// Watcher (one event loop) for the connections of every running case.
//
// Threading: each running case has one orchestration thread (at most `jobs`);
// the orchestration threads block on timers, the Watcher thread sees every socket.
// An exception while running a case becomes that case's `error` verdict.
#pragma once

#include <filesystem>
#include <stop_token>
#include <string>
#include <vector>

#include "harness/case/case.h"
#include "harness/model/timing.h"
#include "harness/judge/result.h"
#include "harness/run/backend.h"

namespace kah {

class Watcher;

// Told what a run is doing, for a person watching it (the CLI draws a progress line
// and prints each case as it ends). Called from the cases' threads: case_started and
// case_done one at a time across the run; expect concurrently.
class RunListener {
 public:
  virtual ~RunListener() = default;
  virtual void case_started(const Case& c) { (void)c; }
  // An event the model expects for a case, at CLOCK_MONOTONIC ms.
  virtual void expect(const Case& c, const std::string& what, double at_monotonic_ms) {
    (void)c, (void)what, (void)at_monotonic_ms;
  }
  virtual void case_done(const CaseResult& result) { (void)result; }
};

struct RunOptions {
  Backend backend = Backend::netns;  // the backend in use: what a topology is built of, what cases it skips
  int jobs = 0;                 // cases at once; 0 = all of them
  model::Kernel kernel;         // HZ, slack: what the model assumes of this kernel
  // Relate jiffies to CLOCK_MONOTONIC (root reads /proc/timer_list) so each timer's
  // tick is known and windows shrink to about one tick. Needs a known HZ.
  bool calibrate = true;
  // Time probes and ends by the kernel's tracepoints (timer_expire_entry: the wheel
  // bucket a timer ran for; inet_sock_set_state: when a socket closed), where the
  // machine allows perf_event_open; else, and with false, by captures and wake-ups.
  // Off by default: experimental (`--kernel-trace`). In repeated runs of the same two
  // cases it timed anywhere from none to all of their probes and ends (README).
  bool kernel_trace = false;
  bool keep = false;            // pin the namespaces under keep_prefix for inspection
  // Where to write each connection's pcaps (both ends); empty: nowhere. Written for
  // every connection that did not pass, and for all with pcap_all.
  std::filesystem::path pcap_dir;
  // Capture both ends of every link (kernel times for ends, probe checks, pcaps).
  bool capture = true;
  bool pcap_all = false;
  std::string keep_prefix;      // run-specific, e.g. "kah-1234"
  RunListener* listener = nullptr;  // told what runs and what the model expects next
  ProgramArgs program_args;         // appended to the named programs' commands (--program-arg)
  // The programs' working directories ($TMPDIR/kaharness-<pid>/<case>/): removed when
  // their case passed (or was skipped); kept when it failed or could not run, or
  // always with keep_workdirs (--keep-workdirs).
  bool keep_workdirs = false;
  // A stop request (SIGINT/SIGTERM, see judge/interrupt.h): waiting cases stop waiting
  // and judge what they saw (open connections: Verdict::interrupted); cases not
  // started are not started.
  std::stop_token stop;
};

class JiffyClock;
class KernelTraceLoop;
namespace evidence {
class CaptureLoop;
}
// `clock`: the jiffies calibration, when there is one; `trace`: the kernel's
// tracepoints, when they run (kernel_trace_loop.h).
CaseResult run_case(const Case& c, Watcher& watcher, evidence::CaptureLoop& captures, const RunOptions& options,
                    const JiffyClock* clock, KernelTraceLoop* trace = nullptr);
RunResult run_cases(const std::vector<Case>& cases, const RunOptions& options);

}  // namespace kah
