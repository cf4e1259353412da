// The run loop: builds each case's topology, opens its connections, waits until
// they are idle, injects the fault, and observes what the kernel does, with one
// Watcher (one event loop) for the connections of every running case.
//
// Threading: each running case has one orchestration thread (at most `jobs`);
// the orchestration threads block on timers, the Watcher thread sees every socket.
// An exception while running a case becomes that case's `error` verdict.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "harness/case.h"
#include "harness/model/timing.h"
#include "harness/result.h"

namespace kah {

class Watcher;

struct RunOptions {
  int jobs = 0;                 // cases at once; 0 = all of them
  model::Kernel kernel;         // HZ, slack: what the model assumes of this kernel
  bool keep = false;            // pin the namespaces under keep_prefix for inspection
  std::string keep_prefix;      // run-specific, e.g. "kah-1234"
  // Called (from the case's thread, serialised) when a case starts and ends.
  std::function<void(const Case&)> on_case_start;
  std::function<void(const CaseResult&)> on_case_done;
};

CaseResult run_case(const Case& c, Watcher& watcher, const RunOptions& options);
RunResult run_cases(const std::vector<Case>& cases, const RunOptions& options);

}  // namespace kah
