// The pieces of an interrupted run that need no namespace (issue 9, item 5): the
// verdicts, the summary and JSON, the exit codes, and the signal becoming a stop
// request. tests/integration/test_cli_process.cc signals a real run.
#include <catch2/catch.hpp>

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <string>
#include <vector>

#include "harness/cli/interrupt_guard.h"
#include "harness/judge/interrupt.h"
#include "harness/report/report.h"
#include "harness/cli/sweep.h"

using namespace kah;

namespace {

bool has(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

}  // namespace

TEST_CASE("an interrupted connection is alive so far; a finished failure keeps its case failed", "[interrupt]") {
  ConnectionResult open;
  open.name = "slow";
  open.expected.outcome = ExpectedOutcome::timeout;
  open.expected.window = {60000, 61000};
  mark_interrupted(open, 8123.4);
  CHECK(open.verdict == Verdict::interrupted);
  CHECK(open.observed.outcome == ObservedOutcome::alive);
  CHECK(open.observed.at_ms == 8123.4);
  CHECK(has(open.message, "alive so far"));
  CHECK(to_string(Verdict::interrupted) == "interrupted");

  ConnectionResult done;
  done.verdict = Verdict::pass;
  CHECK(interrupted_case_verdict({done, open}) == Verdict::interrupted);
  ConnectionResult failed;
  failed.verdict = Verdict::fail;
  CHECK(interrupted_case_verdict({failed, open}) == Verdict::fail);

  RunResult run;
  run.interrupted_by = "SIGINT";
  CaseResult c;
  c.name = "long";
  c.verdict = Verdict::interrupted;
  c.connections = {done, open};
  run.cases = {c};
  CHECK(has(console_summary(run), "1 interrupted"));
  CHECK(has(console_summary(run), "interrupted by SIGINT"));
  const auto j = result_json(run);
  CHECK(j["interrupted"] == "SIGINT");
  CHECK(j["cases"][0]["verdict"] == "interrupted");
  CHECK(j["cases"][0]["connections"][1]["verdict"] == "interrupted");
  CHECK(interrupted_exit_code(SIGINT) == 130);
  CHECK(interrupted_exit_code(SIGTERM) == 143);
}

TEST_CASE("the interrupt guard turns a signal into a stop request", "[interrupt]") {
  InterruptGuard guard;
  auto token = guard.token();
  CHECK_FALSE(token.stop_requested());
  ::raise(SIGTERM);
  for (int i = 0; i < 200 && !token.stop_requested(); ++i) ::usleep(5000);
  CHECK(token.stop_requested());
  CHECK(guard.signal() == SIGTERM);
}

TEST_CASE("a second signal exits at once with 128 + the signal", "[interrupt]") {
  const pid_t pid = ::fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    // The child stands for a run whose clean-up hangs: only the second signal ends it.
    InterruptGuard guard;
    ::raise(SIGINT);
    for (int i = 0; i < 200 && !guard.token().stop_requested(); ++i) ::usleep(5000);
    ::raise(SIGINT);
    ::sleep(30);
    ::_exit(0);
  }
  int status = 0;
  REQUIRE(::waitpid(pid, &status, 0) == pid);
  REQUIRE(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 130);
}

namespace {

// A connection that passed, inside its window [1000, 1010] ms.
ConnectionResult passed_at_1005() {
  ConnectionResult r;
  r.verdict = Verdict::pass;
  r.expected.window = {1000, 1010};
  r.observed.at_ms = 1005;
  return r;
}

// A sweep's run of one case of those connections.
RunResult one_case(Verdict v, std::vector<ConnectionResult> connections) {
  CaseResult c;
  c.verdict = v;
  c.connections = std::move(connections);
  RunResult run;
  run.cases = {c};
  return run;
}

}  // namespace

TEST_CASE("an interrupted sweep counts only the connections decided before the stop", "[interrupt][sweep]") {
  ConnectionResult open = passed_at_1005();
  mark_interrupted(open, 700);
  const auto s = summarize_sweep(one_case(Verdict::interrupted, {passed_at_1005(), open}));
  CHECK(s.connections == 1);
  CHECK(s.misses == 0);
}

TEST_CASE("a sweep counts connections not judged apart: neither hits nor misses", "[sweep]") {
  ConnectionResult held = passed_at_1005();
  held.observed.at_ms = 1016.5;
  held.verdict = Verdict::not_judged;
  held.message = "c: not judged: it came 6.5 ms late <CPU 1>";
  const auto run = one_case(Verdict::not_judged, {passed_at_1005(), held});
  const auto s = summarize_sweep(run);
  CHECK(s.connections == 1);
  CHECK(s.misses == 0);
  CHECK(s.not_judged == 1);
  CHECK(s.miss_messages == std::vector<std::string>{held.message});
  const auto text = describe_sweep(s, run);
  CHECK(text.find("connections not judged (late while the machine held a CPU or stepped the clock): 1") != std::string::npos);
  CHECK(text.find("  not passed: c: not judged: it came 6.5 ms late") != std::string::npos);
  CHECK(text.find("miss: c: not judged") == std::string::npos);  // it is no miss
}
