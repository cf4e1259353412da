// Reporters: what a person reads on the console, and the result JSON that other
// tools read (keys fixed by the contract in docs/architecture.md; more may be added).
#pragma once

#include <nlohmann/json.hpp>
#include <string>

#include "harness/judge/result.h"

namespace kah {

// One block per case: a line per connection with verdict, outcome, time, window and
// probes; the failure message under each failed connection.
std::string console_case(const CaseResult& c, bool verbose);
// Totals: "12 cases: 11 passed, 1 failed, 0 errors — 24 connections — 9.8 s".
std::string console_summary(const RunResult& run);
// How the windows were calibrated, for the summary lines: "jiffies calibrated
// (timer_list)", "calibrated from timer-firings (evidence: jiffies exact or modulo 64)",
// "not calibrated: why".
std::string calibration_text(const RunResult& run);
// "kernel trace: 12 probes and 4 ends timed by the kernel, 0 ambiguous, 0 lost" or
// "kernel trace off: <why>".
std::string kernel_trace_text(const RunResult& run);

nlohmann::json result_json(const RunResult& run);

// What else makes a run red besides failures and errors.
struct RedAlso {
  bool skip = false;        // --fail-on-skip: a case the backend could not run
  bool not_judged = false;  // --fail-on-not-judged: a miss while the machine held the kernel
};

// Exit code of `kaharness run`: 0 all that ran passed, 1 a case failed (or could not
// run); a skipped case (the backend lacks what it needs) and a case not judged (late
// while the machine held a CPU or stepped the clock) fail only when `also` says so.
int exit_code(const RunResult& run, RedAlso also = {});

}  // namespace kah
