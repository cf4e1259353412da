// The result JSON: fields other tools read (docs/architecture.md), and the ones added since.
#include <catch2/catch.hpp>

#include <limits>

#include "harness/report/junit.h"
#include "harness/report/report.h"

using namespace kah;

namespace {

RunResult sample_run() {
  RunResult run;
  run.kernel = "6.18.44";
  run.hz = 250;
  CaseResult c;
  c.name = "peer-blackhole";
  c.file = "cases/peer-blackhole.toml";
  c.verdict = Verdict::pass;
  ConnectionResult timeout;
  timeout.name = "c1";
  timeout.family = Family::ipv4;
  timeout.expected.outcome = ExpectedOutcome::timeout;
  timeout.expected.window = {5000.04, 5300.0};
  timeout.observed = observed(ObservedOutcome::timeout, "ETIMEDOUT", 5090.64, 3);
  timeout.verdict = Verdict::pass;
  ConnectionResult alive;
  alive.name = "c2";
  alive.family = Family::ipv6;
  alive.expected.outcome = ExpectedOutcome::alive;
  alive.expected.window = {6000, std::numeric_limits<double>::infinity()};
  alive.observed = observed(ObservedOutcome::alive, "", 6000, 4);
  alive.verdict = Verdict::pass;
  c.connections = {timeout, alive};
  run.cases.push_back(c);
  return run;
}

}  // namespace

TEST_CASE("result JSON has the contract's keys and values", "[report]") {
  const auto j = result_json(sample_run());
  CHECK(j.at("kernel") == "6.18.44");
  CHECK(j.at("hz") == 250);
  const auto& c = j.at("cases").at(0);
  CHECK(c.at("name") == "peer-blackhole");
  CHECK(c.at("file") == "cases/peer-blackhole.toml");
  CHECK(c.at("verdict") == "pass");
  const auto& conn = c.at("connections").at(0);
  CHECK(conn.at("name") == "c1");
  CHECK(conn.at("family") == "ipv4");
  CHECK(conn.at("expected").at("outcome") == "timeout");
  CHECK(conn.at("expected").at("earliest_ms") == 5000.0);
  CHECK(conn.at("expected").at("latest_ms") == 5300.0);
  CHECK(conn.at("observed").at("outcome") == "timeout");
  CHECK(conn.at("observed").at("errno") == "ETIMEDOUT");
  CHECK(conn.at("observed").at("at_ms") == 5090.6);
  CHECK(conn.at("observed").at("probes") == 3);
  CHECK(conn.at("verdict") == "pass");
}

TEST_CASE("a window without an end is null in JSON, and an alive connection has no errno", "[report]") {
  const auto j = result_json(sample_run());
  const auto& alive = j.at("cases").at(0).at("connections").at(1);
  CHECK(alive.at("expected").at("latest_ms").is_null());
  CHECK(alive.at("expected").at("earliest_ms") == 6000.0);
  CHECK(alive.at("observed").at("errno").is_null());
  CHECK(alive.at("observed").at("outcome") == "alive");
}

TEST_CASE("exit code is 1 when any case failed or could not run", "[report]") {
  auto run = sample_run();
  CHECK(exit_code(run) == 0);
  run.cases[0].verdict = Verdict::fail;
  CHECK(exit_code(run) == 1);
  run.cases[0].verdict = Verdict::error;
  CHECK(exit_code(run) == 1);
}

TEST_CASE("a case not judged: DOUBT on the console, counted, JSON not-judged, JUnit skipped, exit 0 unless asked",
          "[report]") {
  auto run = sample_run();
  auto& c = run.cases[0];
  c.connections[0].verdict = Verdict::not_judged;
  c.connections[0].message = "cases/peer-blackhole.toml:9:1: connection c1: not judged: it came 6.5 ms late <CPU 1>";
  c.verdict = Verdict::not_judged;
  CHECK(console_case(c, false).find("DOUBT peer-blackhole") != std::string::npos);
  CHECK(console_case(c, false).find("not judged: it came 6.5 ms late") != std::string::npos);
  CHECK(console_summary(run).find("0 passed, 0 failed, 0 errors, 0 skipped, 1 not judged") != std::string::npos);
  const auto j = result_json(run);
  CHECK(j.at("cases").at(0).at("verdict") == "not-judged");
  CHECK(j.at("cases").at(0).at("connections").at(0).at("verdict") == "not-judged");
  const auto xml = junit_xml(run);
  CHECK(xml.find("<skipped message=\"cases/peer-blackhole.toml:9:1: connection c1: not judged") != std::string::npos);
  CHECK(xml.find("failures=\"0\" errors=\"0\"") != std::string::npos);
  CHECK(exit_code(run) == 0);
  CHECK(exit_code(run, {.not_judged = true}) == 1);
  CHECK(exit_code(run, {.skip = true}) == 0);
  c.connections[1].verdict = Verdict::fail;
  c.verdict = Verdict::fail;
  CHECK(exit_code(run) == 1);  // a failure beside it is red as ever
}

TEST_CASE("result JSON: an open-ended window is null; survival and middlebox evidence", "[report]") {
  RunResult run;
  run.kernel = "6.18";
  run.hz = 250;
  CaseResult c;
  c.name = "lossy";
  c.file = "cases/lossy.toml";
  c.verdict = Verdict::pass;
  ConnectionResult alive;
  alive.name = "c1-v4#1";
  alive.expected.outcome = ExpectedOutcome::timeout;
  alive.expected.window = {4000, std::numeric_limits<double>::infinity()};
  alive.expected.model_errno = "ETIMEDOUT";
  alive.expected.survival = 0.49;
  alive.observed = observed(ObservedOutcome::alive, "", 4000, 1);
  alive.verdict = Verdict::pass;
  c.connections.push_back(alive);
  SurvivalResult s;
  s.connection = "c1-v4";
  s.copies = 80;
  s.alive = 39;
  s.model = 0.49;
  s.stated = 0.49;
  s.accept_lo = 18;
  s.accept_hi = 61;
  s.verdict = Verdict::pass;
  c.survival.push_back(s);
  c.counters["fault.hit"] = 150;
  run.cases.push_back(c);

  const auto j = result_json(run);
  const auto& jc = j.at("cases").at(0);
  const auto& conn = jc.at("connections").at(0);
  CHECK(conn.at("expected").at("latest_ms").is_null());
  CHECK(conn.at("expected").at("earliest_ms") == 4000.0);
  CHECK(conn.at("expected").at("errno") == "ETIMEDOUT");
  CHECK(conn.at("expected").at("survival") == 0.49);
  CHECK(conn.at("observed").at("errno").is_null());
  CHECK(jc.at("survival").at(0).at("alive") == 39);
  CHECK(jc.at("survival").at(0).at("accept") == nlohmann::json::array({18, 61}));
  CHECK(jc.at("survival").at(0).at("stated") == 0.49);
  CHECK(jc.at("middlebox_counters").at("fault.hit") == 150);
  CHECK(console_case(c, true).find("39 of 80 alive, expected 0.4900 -> accept [18, 61]") != std::string::npos);
}

TEST_CASE("a run says how its windows were calibrated, and why not", "[report]") {
  auto run = sample_run();
  // Calibration failed: the summary says so and why, beside calibrated = false.
  run.calibration_note = "/proc/timer_list cannot be read (not root, or masked); timer-firings canary: Operation not permitted";
  auto j = result_json(run);
  CHECK(j["calibrated"] == false);
  CHECK(j["calibration"] == "none");
  CHECK(j["calibration_note"] == run.calibration_note);
  CHECK(console_summary(run).find("not calibrated: /proc/timer_list cannot be read") != std::string::npos);
  // From timer firings: phase and jiffies modulo 64, said in both.
  run.calibrated = true;
  run.calibration = "timer-firings";
  run.calibration_note = "/proc/timer_list cannot be read (not root, or masked): 24 keepalive timer firings; jiffies known modulo 64";
  j = result_json(run);
  CHECK(j["calibration"] == "timer-firings");
  CHECK(console_summary(run).find("calibrated from timer-firings (/proc/timer_list cannot be read") != std::string::npos);
  run.calibration = "timer_list";
  run.calibration_note.clear();
  CHECK(console_summary(run).find("jiffies calibrated (timer_list)") != std::string::npos);
}

TEST_CASE("the kernel trace says how many timer callbacks each CPU delivered, and names a silent one", "[report]") {
  auto run = sample_run();
  run.kernel_trace.on = true;
  run.kernel_trace.timer_callbacks_per_cpu = {{0, 24}, {1, 0}};
  const auto j = result_json(run);
  CHECK(j["kernel_trace"]["timer_callbacks_per_cpu"]["0"] == 24);
  CHECK(j["kernel_trace"]["timer_callbacks_per_cpu"]["1"] == 0);
  const auto text = kernel_trace_text(run);
  CHECK(text.find("timer callbacks per CPU 0: 24, 1: 0") != std::string::npos);
  CHECK(text.find("none from CPU 1") != std::string::npos);
  // Both delivered: nothing named.
  run.kernel_trace.timer_callbacks_per_cpu = {{0, 24}, {1, 3}};
  CHECK(kernel_trace_text(run).find("none from") == std::string::npos);
}

// Lining a connection up with the fault and the run's machine_stalls from the JSON
// alone: last round a soak failure could not be placed against the CPU gaps of its run.
TEST_CASE("result JSON: where t = 0 lies, against the fault and the run's start; a program's idle start",
          "[report]") {
  auto run = sample_run();
  auto& r = run.cases[0].connections[0];
  r.evidence.fault_ms = 1249.44;
  r.evidence.origin_in_run_ms = 7012.36;
  ProgramResult curl;
  curl.name = "curl-v4";
  curl.last_received_ms = -1249.44;
  run.cases[0].programs.push_back(curl);
  const auto j = result_json(run);
  const auto& c = j.at("cases").at(0);
  CHECK(c.at("connections").at(0).at("observed").at("fault_at_ms") == 1249.4);
  CHECK(c.at("connections").at(0).at("observed").at("t0_in_run_ms") == 7012.4);
  CHECK_FALSE(c.at("connections").at(1).at("observed").contains("t0_in_run_ms"));
  CHECK(c.at("programs").at(0).at("last_received_ms") == -1249.4);
}
