// Verdicts and failure messages.
#include <catch2/catch.hpp>

#include <cerrno>
#include <limits>

#include "harness/judge/judge.h"

using namespace kah;

namespace {

// A connection the case expects to end as `outcome`, the model predicting `predicted`
// within [earliest, latest].
ConnectionResult outcome_expected(ExpectedOutcome outcome, model::Outcome predicted, double earliest, double latest) {
  ConnectionResult r;
  r.name = "c1-v4";
  r.where = {"cases/peer-power-off.toml", 12, 1};
  r.expected.outcome = outcome;
  r.expected.model_outcome = predicted;
  r.expected.window = {earliest, latest};
  return r;
}

ConnectionResult timeout_expected(double earliest, double latest) {
  return outcome_expected(ExpectedOutcome::timeout, model::Outcome::timeout, earliest, latest);
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
  // A soft error (ICMP) is what the kernel reports when its timer gives up.
  CHECK(outcome_of(EHOSTUNREACH, false) == ObservedOutcome::timeout);
  CHECK(outcome_of(ENETUNREACH, false) == ObservedOutcome::timeout);
  CHECK(outcome_of(EPROTO, false) == ObservedOutcome::error);
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

// CI on f16a652 went red for this: haproxy-dead-backend's probe 2, due in [3043.1,
// 3053.3] ms, left at 3059.9 ms, when a 16.8 ms gap of CPU 1 ended. The harness had
// measured the gap; the run was red all the same, as if kernel and model disagreed.
TEST_CASE("a late connection the machine held is not judged: kept apart from failures, never above them", "[judge]") {
  auto r = timeout_expected(5091.1, 5101.3);
  r.observed = observed(ObservedOutcome::timeout, "ETIMEDOUT", 5091.4, 0);
  r.verdict = Verdict::fail;
  r.message = "cases/programs/haproxy-dead-backend.toml:31:1: connection haproxy-1: probe 2 late: expected within "
              "[3043.1, 3053.3] ms, seen at 3059.9 ms";
  const auto failure = r.message;
  mark_not_judged(r, "cases/programs/haproxy-dead-backend.toml:31:1: connection haproxy-1",
                  "it came 6.5 ms late while the timers of CPU 1 may have waited for 16.7 ms in all");
  CHECK(r.verdict == Verdict::not_judged);
  CHECK(to_string(r.verdict) == "not-judged");
  CHECK(r.message == "cases/programs/haproxy-dead-backend.toml:31:1: connection haproxy-1: not judged: it came 6.5 ms "
                     "late while the timers of CPU 1 may have waited for 16.7 ms in all; the failure it would have "
                     "been: " + failure);

  std::vector<ConnectionResult> cs(3);
  for (auto& c : cs) c.verdict = Verdict::pass;
  cs[0] = r;
  CHECK(case_verdict(cs) == Verdict::not_judged);
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

TEST_CASE("errno: the case's, the model's and the observed one must agree", "[judge]") {
  auto r = timeout_expected(4000, 4100);
  r.expected.model_errno = "ETIMEDOUT";
  r.observed = observed(ObservedOutcome::timeout, "EHOSTUNREACH", 4050, 2);
  judge_connection(r);
  CHECK(r.verdict == Verdict::fail);
  CHECK(has(r.message, "expected timeout with ETIMEDOUT, observed timeout (EHOSTUNREACH)"));

  r.expected.errno_name = "EHOSTUNREACH";  // the case disagrees with the model
  judge_connection(r);
  CHECK(r.verdict == Verdict::fail);
  CHECK(has(r.message, "the case expects EHOSTUNREACH but the timing model predicts ETIMEDOUT"));

  r.expected.model_errno = "EHOSTUNREACH";
  judge_connection(r);
  CHECK(r.verdict == Verdict::pass);
}

TEST_CASE("under random loss a connection may live; the copies are judged together", "[judge][loss]") {
  std::vector<ConnectionResult> copies;
  for (int i = 0; i < 80; ++i) {
    auto r = timeout_expected(3000, 3050);
    r.name = "c1-v4#" + std::to_string(i + 1);
    r.expected.model_errno = "ETIMEDOUT";
    r.expected.survival = 0.49;
    if (i < 40) r.observed = observed(ObservedOutcome::alive, "", 4000, 1);
    else r.observed = observed(ObservedOutcome::timeout, "ETIMEDOUT", 3020, 1);
    judge_connection(r);
    CHECK(r.verdict == Verdict::pass);
    copies.push_back(r);
  }
  auto survival = judge_copies(copies, 0.49);
  REQUIRE(survival.size() == 1);
  CHECK(survival[0].connection == "c1-v4");
  CHECK(survival[0].copies == 80);
  CHECK(survival[0].alive == 40);
  CHECK(survival[0].accept_lo == 18);
  CHECK(survival[0].accept_hi == 61);
  CHECK(survival[0].verdict == Verdict::pass);
  CHECK(case_verdict(copies, survival) == Verdict::pass);

  // The same observations against a model that says almost all survive.
  for (auto& r : copies) r.expected.survival = 0.9655;
  survival = judge_copies(copies, 0.9655);
  CHECK(survival[0].verdict == Verdict::fail);
  CHECK(has(survival[0].message, "40 of 80 still open, outside [66, 80]"));
  CHECK(case_verdict(copies, survival) == Verdict::fail);

  // A stated survival that is not the model's.
  for (auto& r : copies) r.expected.survival = 0.49;
  survival = judge_copies(copies, 0.9);
  CHECK(survival[0].verdict == Verdict::fail);
  CHECK(has(survival[0].message, "the case states survival 0.9 but the model computes 0.4900"));

  // A copy that dies outside the window still fails on its own.
  copies[79].observed.at_ms = 5000;
  judge_connection(copies[79]);
  CHECK(copies[79].verdict == Verdict::fail);
}

TEST_CASE("eof is an outcome of its own", "[judge]") {
  auto r = outcome_expected(ExpectedOutcome::eof, model::Outcome::eof, 3000, 3026);
  r.observed = observed(ObservedOutcome::eof, "", 3000.2, 0);
  judge_connection(r);
  CHECK(r.verdict == Verdict::pass);
  r.observed = observed(ObservedOutcome::alive, "", 6000, 0);
  judge_connection(r);
  CHECK(r.verdict == Verdict::fail);
  CHECK(has(r.message, "expected eof within [3000.0, 3026.0] ms, observed still open"));
}

TEST_CASE("an end seen by the event loop's wake-up may trail the window by the wake-up allowance", "[judge]") {
  auto r = timeout_expected(5004, 5300);
  r.observed = observed(ObservedOutcome::timeout, "ETIMEDOUT", 5300 + kWakeupAllowanceMs - 1, 3);
  r.observed.timed_by = "wakeup";
  judge_connection(r);
  CHECK(r.verdict == Verdict::pass);

  r.observed.timed_by = "capture";  // the kernel's own stamp gets no allowance
  judge_connection(r);
  CHECK(r.verdict == Verdict::fail);
  CHECK(has(r.message, "too late"));

  r.observed.timed_by = "wakeup";
  r.observed.at_ms = 5300 + kWakeupAllowanceMs + 1;
  judge_connection(r);
  CHECK(r.verdict == Verdict::fail);
  CHECK(has(r.message, "(+10 ms for the event loop's wake-up)"));
}

TEST_CASE("closed: the program must close its connection before the kernel's earliest end", "[judge][program]") {
  auto r = outcome_expected(ExpectedOutcome::closed, model::Outcome::timeout, 924000, 925100);
  r.observed = observed(ObservedOutcome::closed, "", 4012.5, 0);
  judge_connection(r);
  CHECK(r.verdict == Verdict::pass);
  CHECK(r.message.empty());

  // The kernel's window opened first: it could have ended the connection before the program did.
  r.expected.window = {3000, 3010};
  judge_connection(r);
  CHECK(r.verdict == Verdict::fail);
  CHECK(has(r.message, "the program closed the connection at 4012.5 ms, not before the kernel's timeout within "
                       "[3000.0, 3010.0] ms: the kernel could have ended it first"));

  // The kernel ended it (its RST), the program never closed.
  r.expected.window = {924000, 925100};
  r.observed = observed(ObservedOutcome::timeout, "ETIMEDOUT", 924050, 0);
  judge_connection(r);
  CHECK(r.verdict == Verdict::fail);
  CHECK(has(r.message, "expected the program to close the connection before the kernel's timeout"));
  CHECK(has(r.message, "observed timeout (ETIMEDOUT) at 924050.0 ms"));

  // A kernel that keeps the connection open: any close by the program comes first.
  r.expected.model_outcome = model::Outcome::alive;
  r.expected.window = {9000, std::numeric_limits<double>::infinity()};
  r.observed = observed(ObservedOutcome::closed, "", 4012.5, 0);
  judge_connection(r);
  CHECK(r.verdict == Verdict::pass);
  CHECK(to_string(ObservedOutcome::closed) == "closed");
}

TEST_CASE("an end sampled by sock_diag is judged as the interval between two samples", "[judge][program]") {
  auto r = timeout_expected(4414.4, 4432.6);
  r.observed = observed(ObservedOutcome::timeout, "ETIMEDOUT", 4450.5, 0);
  r.observed.timed_by = "sock_diag";
  r.observed.open_until_ms = 4425.0;  // still listed then: the end may lie inside the window
  judge_connection(r);
  CHECK(r.verdict == Verdict::pass);

  r.observed.open_until_ms = 4440.0;  // listed after the window closed: the kernel was late
  judge_connection(r);
  CHECK(r.verdict == Verdict::fail);
  CHECK(has(r.message, "timeout 7.4 ms too late: expected within [4414.4, 4432.6] ms (sock_diag still listed it "
                       "at 4440.0 ms)"));

  // Gone by a sample before the window opened: early, whatever the interval.
  r.observed.at_ms = 4410.0;
  r.observed.open_until_ms = 4405.0;
  judge_connection(r);
  CHECK(r.verdict == Verdict::fail);
  CHECK(has(r.message, "too early"));
}
