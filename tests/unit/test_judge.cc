// Verdicts and failure messages.
#include <catch2/catch.hpp>

#include <cerrno>

#include "harness/judge.h"

using namespace kah;

namespace {

ConnectionResult timeout_expected(double earliest, double latest) {
  ConnectionResult r;
  r.name = "c1-v4";
  r.where = {"cases/peer-power-off.toml", 12, 1};
  r.expected.outcome = ExpectedOutcome::timeout;
  r.expected.model_outcome = model::Outcome::timeout;
  r.expected.window = {earliest, latest};
  return r;
}

bool has(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

}  // namespace

TEST_CASE("a timeout inside the window passes", "[judge]") {
  auto r = timeout_expected(5004, 5300);
  r.observed = observed(ObservedOutcome::timeout, "ETIMEDOUT", 5090.6, 3);
  judge_connection(r);
  CHECK(r.verdict == Verdict::pass);
  CHECK(r.message.empty());
}

TEST_CASE("a late timeout fails and says where, the window and what happened", "[judge]") {
  auto r = timeout_expected(5004, 5300);
  r.observed = observed(ObservedOutcome::timeout, "ETIMEDOUT", 5400, 3);
  judge_connection(r);
  CHECK(r.verdict == Verdict::fail);
  CHECK(has(r.message, "cases/peer-power-off.toml:12:1: connection c1-v4"));
  CHECK(has(r.message, "too late"));
  CHECK(has(r.message, "[5004.0, 5300.0] ms"));
  CHECK(has(r.message, "timeout (ETIMEDOUT) at 5400.0 ms after 3 probes"));
}

TEST_CASE("an early timeout fails", "[judge]") {
  auto r = timeout_expected(5004, 5300);
  r.observed = observed(ObservedOutcome::timeout, "ETIMEDOUT", 4000, 2);
  judge_connection(r);
  CHECK(r.verdict == Verdict::fail);
  CHECK(has(r.message, "too early"));
}

TEST_CASE("a different outcome fails", "[judge]") {
  auto r = timeout_expected(5004, 5300);
  r.observed = observed(ObservedOutcome::alive, "", 6300, 4);
  judge_connection(r);
  CHECK(r.verdict == Verdict::fail);
  CHECK(has(r.message, "expected timeout within [5004.0, 5300.0] ms, observed still open at 6300.0 ms"));
}

TEST_CASE("an expectation the model contradicts fails even if the kernel agrees with it", "[judge]") {
  auto r = timeout_expected(5004, 5300);
  r.expected.outcome = ExpectedOutcome::reset;
  r.observed = observed(ObservedOutcome::timeout, "ETIMEDOUT", 5100, 3);
  judge_connection(r);
  CHECK(r.verdict == Verdict::fail);
  CHECK(has(r.message, "the case expects reset but the timing model predicts timeout"));
}

TEST_CASE("alive passes when nothing happened until the horizon", "[judge]") {
  ConnectionResult r;
  r.expected.outcome = ExpectedOutcome::alive;
  r.expected.model_outcome = model::Outcome::alive;
  r.expected.window = {6000, std::numeric_limits<double>::infinity()};
  r.observed = observed(ObservedOutcome::alive, "", 6000, 5);
  judge_connection(r);
  CHECK(r.verdict == Verdict::pass);
}

TEST_CASE("the case's own deadline is applied on top of the window", "[judge]") {
  auto r = timeout_expected(5004, 5300);
  r.expected.deadline_ms = 5050;
  r.observed = observed(ObservedOutcome::timeout, "ETIMEDOUT", 5090, 3);
  judge_connection(r);
  CHECK(r.verdict == Verdict::fail);
  CHECK(has(r.message, "misses the case's deadline of 5050.0 ms"));
}

TEST_CASE("socket errors map to outcomes", "[judge]") {
  CHECK(outcome_of(ETIMEDOUT, false) == ObservedOutcome::timeout);
  CHECK(outcome_of(ECONNRESET, false) == ObservedOutcome::reset);
  CHECK(outcome_of(EPIPE, false) == ObservedOutcome::reset);
  CHECK(outcome_of(EHOSTUNREACH, false) == ObservedOutcome::error);
  CHECK(outcome_of(0, true) == ObservedOutcome::eof);
  CHECK(errno_name(ETIMEDOUT) == "ETIMEDOUT");
  CHECK(errno_name(4242) == "errno 4242");
}

TEST_CASE("a case passes only if every connection passes; error beats fail", "[judge]") {
  std::vector<ConnectionResult> cs(3);
  for (auto& c : cs) c.verdict = Verdict::pass;
  CHECK(case_verdict(cs) == Verdict::pass);
  cs[1].verdict = Verdict::fail;
  CHECK(case_verdict(cs) == Verdict::fail);
  cs[2].verdict = Verdict::error;
  CHECK(case_verdict(cs) == Verdict::error);
}

TEST_CASE("a probe out of its window fails the connection even when the outcome was on time", "[judge]") {
  auto r = timeout_expected(5004, 5300);
  r.observed = observed(ObservedOutcome::timeout, "ETIMEDOUT", 5090, 3);
  r.evidence.probes_checked = true;
  evidence::ProbeCheck ok;
  ok.index = 0;
  ok.message = "probe 1 ok";
  evidence::ProbeCheck late;
  late.index = 1;
  late.verdict = evidence::ProbeVerdict::late;
  late.message = "probe 2 late: expected within [3004.0, 3260.0] ms, seen at 3402.5 ms";
  r.evidence.probe_checks = {ok, late};
  judge_connection(r);
  CHECK(r.verdict == Verdict::fail);
  CHECK(has(r.message, "probes did not follow the model: probe 2 late: expected within [3004.0, 3260.0] ms"));

  r.evidence.probes_checked = false;  // a fault that hides probes from the capture
  judge_connection(r);
  CHECK(r.verdict == Verdict::pass);
}
