// The case library on the real kernel: every case in cases/ passes on IPv4 and
// IPv6, a wrong expectation fails with a message that says where and why, and the
// root namespace is the same afterwards.
#include <catch2/catch.hpp>

#include <filesystem>

#include "harness/case/case.h"
#include "harness/clock/jiffies.h"
#include "harness/report/report.h"
#include "harness/run/runner.h"
#include "root_snapshot.h"
#include "passed.h"

using namespace kah;
using kah::test::RootSnapshot;

namespace {

RunOptions options() {
  RunOptions o;
  o.kernel.hz = detect_hz().hz;
  return o;
}

std::string failures(const RunResult& run) {
  std::string out;
  for (const auto& c : run.cases)
    if (c.verdict != Verdict::pass) out += console_case(c, true);
  return out;
}

bool has(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

}  // namespace

TEST_CASE("every case in cases/ passes and the root namespace is unchanged", "[cases][slow][library]") {
  const auto before = RootSnapshot::take();
  std::vector<Case> cases;
  for (const auto& file : find_case_files({std::filesystem::path(KAH_SOURCE_DIR) / "cases"}))
    cases.push_back(load_case(file));
  REQUIRE(cases.size() >= 12);

  const auto run = run_cases(cases, options());
  INFO(failures(run));
  INFO(console_summary(run));
  for (const auto& c : run.cases) {
    CHECK(kah::test::passed_or_held(c.verdict, c.name));
    bool v4 = false, v6 = false;
    for (const auto& r : c.connections) (r.family == Family::ipv4 ? v4 : v6) = true;
    CHECK(v4);
    CHECK(v6);
  }
  CHECK(exit_code(run) == 0);
  CHECK(before.diff(RootSnapshot::take()) == "");
}

TEST_CASE("a wrong expectation fails with the file, the connection, the window and what happened", "[cases]") {
  const auto c = parse_case(R"(
name = "wrong-window"
description = "blackhole, but the expectation claims the peer is fine"
[[connection]]
name = "c1"
family = "ipv4"
keepalive = { idle = 1, interval = 1, count = 1 }
[[fault]]
kind = "blackhole"
[expect]
outcome = "alive"
)",
                            "wrong-window.toml");
  const auto run = run_cases({c}, options());
  REQUIRE(run.cases.size() == 1);
  const auto& result = run.cases[0];
  CHECK(result.verdict == Verdict::fail);
  REQUIRE(result.connections.size() == 1);
  const auto& msg = result.connections[0].message;
  INFO(msg);
  CHECK(has(msg, "wrong-window.toml:"));
  CHECK(has(msg, "connection c1"));
  CHECK(has(msg, "the case expects alive but the timing model predicts timeout"));
  CHECK(has(msg, "observed timeout (ETIMEDOUT)"));
  CHECK(exit_code(run) == 1);
}

TEST_CASE("a deadline tighter than the kernel can meet fails", "[cases]") {
  const auto c = parse_case(R"(
name = "tight-deadline"
description = "the kernel needs idle + count * interval = 2 s; the case demands 1.5 s"
[[connection]]
name = "c1"
family = "ipv6"
keepalive = { idle = 1, interval = 1, count = 1 }
[[fault]]
kind = "blackhole"
[expect]
outcome = "timeout"
deadline_ms = 1500
)",
                            "tight-deadline.toml");
  const auto run = run_cases({c}, options());
  REQUIRE(run.cases.size() == 1);
  REQUIRE(run.cases[0].connections.size() == 1);
  const auto& r = run.cases[0].connections[0];
  INFO(r.message);
  CHECK(r.observed.outcome == ObservedOutcome::timeout);
  CHECK(r.verdict == Verdict::fail);
  CHECK(has(r.message, "misses the case's deadline of 1500.0 ms"));
}
