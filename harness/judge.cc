#include "harness/judge.h"

#include <cerrno>

#include <fmt/format.h>

namespace kah {

std::string to_string(Verdict v) {
  switch (v) {
    case Verdict::pass: return "pass";
    case Verdict::fail: return "fail";
    case Verdict::error: return "error";
    case Verdict::skip: return "skip";
  }
  return "?";
}

std::string to_string(ObservedOutcome o) {
  switch (o) {
    case ObservedOutcome::timeout: return "timeout";
    case ObservedOutcome::reset: return "reset";
    case ObservedOutcome::alive: return "alive";
    case ObservedOutcome::eof: return "eof";
    case ObservedOutcome::error: return "error";
  }
  return "?";
}

std::string errno_name(int error) {
  switch (error) {
    case 0: return "";
    case ETIMEDOUT: return "ETIMEDOUT";
    case ECONNRESET: return "ECONNRESET";
    case EPIPE: return "EPIPE";
    case EHOSTUNREACH: return "EHOSTUNREACH";
    case ENETUNREACH: return "ENETUNREACH";
    case ECONNREFUSED: return "ECONNREFUSED";
    case ECONNABORTED: return "ECONNABORTED";
    case EPROTO: return "EPROTO";
    default: return fmt::format("errno {}", error);
  }
}

ObservedOutcome outcome_of(int so_error, bool eof) {
  switch (so_error) {
    case 0: return eof ? ObservedOutcome::eof : ObservedOutcome::alive;
    case ETIMEDOUT: return ObservedOutcome::timeout;
    case ECONNRESET:
    case EPIPE: return ObservedOutcome::reset;
    default: return ObservedOutcome::error;
  }
}

model::Outcome to_model(ExpectedOutcome o) {
  switch (o) {
    case ExpectedOutcome::timeout: return model::Outcome::timeout;
    case ExpectedOutcome::reset: return model::Outcome::reset;
    case ExpectedOutcome::alive: return model::Outcome::alive;
  }
  return model::Outcome::alive;
}

namespace {

ExpectedOutcome from_model(model::Outcome o) {
  switch (o) {
    case model::Outcome::timeout: return ExpectedOutcome::timeout;
    case model::Outcome::reset: return ExpectedOutcome::reset;
    case model::Outcome::alive: return ExpectedOutcome::alive;
  }
  return ExpectedOutcome::alive;
}

std::string describe_window(const model::Window& w) {
  if (!w.bounded()) return fmt::format("after {:.1f} ms", w.earliest_ms);
  return fmt::format("within [{:.1f}, {:.1f}] ms", w.earliest_ms, w.latest_ms);
}

std::string describe_observed(const Observed& o) {
  switch (o.outcome) {
    case ObservedOutcome::alive: return fmt::format("still open at {:.1f} ms (the horizon)", o.at_ms);
    case ObservedOutcome::eof: return fmt::format("eof (the peer closed) at {:.1f} ms", o.at_ms);
    case ObservedOutcome::timeout:
    case ObservedOutcome::reset:
    case ObservedOutcome::error:
      return fmt::format("{} ({}) at {:.1f} ms after {} probe{}", to_string(o.outcome), o.errno_name,
                         o.at_ms, o.probes, o.probes == 1 ? "" : "s");
  }
  return "?";
}

}  // namespace

// (file-local) The first probe the capture shows out of its window (or missing, or extra), or "".
static std::string probe_problem(const CaptureFindings& ev) {
  if (!ev.probes_checked) return "";
  for (const auto& c : ev.probe_checks)
    if (c.verdict != evidence::ProbeVerdict::ok) return c.message;
  return "";
}

void judge_connection(ConnectionResult& r) {
  const auto where = fmt::format("{}: connection {}", r.where.str(), r.name);
  const auto expected_outcome = to_string(r.expected.outcome);
  const auto probes = probe_problem(r.evidence);
  const auto fail = [&](std::string why) {
    r.verdict = Verdict::fail;
    r.message = fmt::format("{}: {}", where, why);
    if (!probes.empty()) r.message += fmt::format("; the capture shows {}", probes);
  };

  if (r.expected.model_outcome && *r.expected.model_outcome != to_model(r.expected.outcome)) {
    const auto predicted = to_string(from_model(*r.expected.model_outcome));
    return fail(fmt::format(
        "the case expects {} but the timing model predicts {} for these settings; observed {}",
        expected_outcome, predicted, describe_observed(r.observed)));
  }
  const bool outcome_matches = to_string(r.observed.outcome) == expected_outcome;
  if (!outcome_matches)
    return fail(fmt::format("expected {} {}, observed {}", expected_outcome,
                            describe_window(r.expected.window), describe_observed(r.observed)));
  if (r.observed.outcome != ObservedOutcome::alive && !r.expected.window.contains(r.observed.at_ms)) {
    const char* side = r.observed.at_ms < r.expected.window.earliest_ms ? "early" : "late";
    return fail(fmt::format("{} {:.1f} ms too {}: expected {}, observed {}", expected_outcome,
                            side[0] == 'e' ? r.expected.window.earliest_ms - r.observed.at_ms
                                           : r.observed.at_ms - r.expected.window.latest_ms,
                            side, describe_window(r.expected.window), describe_observed(r.observed)));
  }
  if (r.expected.deadline_ms && r.observed.outcome != ObservedOutcome::alive &&
      r.observed.at_ms > *r.expected.deadline_ms)
    return fail(fmt::format("{} at {:.1f} ms misses the case's deadline of {:.1f} ms", expected_outcome,
                            r.observed.at_ms, *r.expected.deadline_ms));
  if (!probes.empty()) {
    r.verdict = Verdict::fail;
    r.message = fmt::format("{}: {} as expected, but the probes did not follow the model: {}", where,
                            expected_outcome, probes);
    return;
  }
  r.verdict = Verdict::pass;
  r.message.clear();
}

Verdict case_verdict(const std::vector<ConnectionResult>& connections) {
  Verdict v = Verdict::pass;
  for (const auto& c : connections) {
    if (c.verdict == Verdict::error) return Verdict::error;
    if (c.verdict == Verdict::fail) v = Verdict::fail;
  }
  return v;
}

}  // namespace kah
