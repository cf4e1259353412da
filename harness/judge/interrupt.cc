#include "harness/judge/interrupt.h"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <stdexcept>

#include <fmt/format.h>

#include "harness/evidence/probe_check.h"

namespace kah {


void mark_interrupted(ConnectionResult& r, double at_ms) {
  r.observed.outcome = ObservedOutcome::alive;
  r.observed.errno_name.clear();
  r.observed.at_ms = at_ms;
  r.verdict = Verdict::interrupted;
  r.message = fmt::format("{}: connection {}: still open at {:.1f} ms when the run was interrupted (alive so far); "
                          "expected {} {}",
                          r.where.str(), r.name, at_ms, to_string(r.expected.outcome),
                          evidence::window_text(r.expected.window));
}

namespace {

CaseResult not_run(const Case& c, Verdict verdict) {
  CaseResult result;
  result.name = c.name;
  result.description = c.description.empty() ? c.name : c.description;
  result.file = c.file.string();
  result.verdict = verdict;
  return result;
}

}  // namespace

CaseResult interrupted_case(const Case& c) { return not_run(c, Verdict::interrupted); }

CaseResult skipped_case(const Case& c, std::string reason) {
  CaseResult result = not_run(c, Verdict::skip);
  result.reason = std::move(reason);
  return result;
}

Verdict interrupted_case_verdict(const std::vector<ConnectionResult>& connections) {
  Verdict v = Verdict::interrupted;
  for (const auto& r : connections) {
    if (r.verdict == Verdict::fail) v = Verdict::fail;
    if (r.verdict == Verdict::error && v != Verdict::fail) v = Verdict::error;
  }
  return v;
}

bool any_interrupted(const std::vector<ConnectionResult>& connections) {
  return std::any_of(connections.begin(), connections.end(),
                     [](const ConnectionResult& r) { return r.verdict == Verdict::interrupted; });
}

}  // namespace kah
