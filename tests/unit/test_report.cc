// The result JSON: fields other tools read (architecture.md), and the ones issue 4 adds.
#include <catch2/catch.hpp>

#include <limits>

#include "harness/report.h"

using namespace kah;

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
  alive.observed = {ObservedOutcome::alive, "", 4000, 1};
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
