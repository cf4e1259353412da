// `kaharness validate` without running anything: the battery built from a tuning
// (predicted at the file's values, scaled to fit --max-wait, the scaling stated), the
// NAT warnings, and the refusals of the example files (exit 2).
#include <catch2/catch.hpp>

#include "cli_call.h"

#include <algorithm>
#include <string>

#include "harness/sysctl/tuning.h"
#include "harness/validate/battery.h"

namespace {

using namespace kah::validate;
using Catch::Matchers::Contains;

const std::string kExamples = std::string(KAH_SOURCE_DIR) + "/examples/sysctl/";

BatteryOptions options_6_18(std::vector<double> nat = {}) {
  BatteryOptions o;
  o.kernel.hz = 250;
  o.kernel.version = kah::model::KernelVersion{6, 18};
  o.nat_timeouts_s = std::move(nat);
  return o;
}

Battery battery_of(const std::string& example, const BatteryOptions& o) {
  const auto tuning = kah::sysctl::load_tuning({kExamples + example}, o.kernel.version);
  REQUIRE(tuning.ok());
  return make_battery(tuning, o);
}

const Scenario& scenario(const Battery& b, const std::string& id) {
  const auto it = std::find_if(b.scenarios.begin(), b.scenarios.end(), [&](const Scenario& s) { return s.id == id; });
  REQUIRE(it != b.scenarios.end());
  return *it;
}

const kah::model::Prediction& predicted(const Scenario& s) { return s.predicted.connections.front().forecast.prediction; }

}  // namespace

TEST_CASE("validate: the kernel defaults are predicted at their real values and run scaled", "[validate]") {
  const auto b = battery_of("00-kernel-defaults.conf", options_6_18({350}));
  REQUIRE(b.refused.empty());
  const auto& silent = scenario(b, "silent-peer");
  // The figure for 7200/75/9 at HZ=250.
  CHECK(predicted(silent).window.earliest_ms == Approx(7881980).margin(1000));
  CHECK(predicted(silent).window.latest_ms == Approx(8013060).margin(1000));
  CHECK_THAT(silent.scaling, Contains("times /") && Contains("tcp_keepalive_time 7200 -> "));
  CHECK(silent.scaled.count == 9);  // a count is not a time: kept
  CHECK(silent.run.sysctls.at("client").at("net.ipv4.tcp_keepalive_time") == std::to_string(silent.scaled.idle_s));
  CHECK(silent.run.expect.outcome == kah::ExpectedOutcome::timeout);
  CHECK(scenario(b, "peer-reboot").run.expect.outcome == kah::ExpectedOutcome::reset);
  CHECK_THAT(scenario(b, "data-in-flight").scaling, Contains("cut short: tcp_retries2 15 -> "));
  CHECK(predicted(scenario(b, "connect")).nominal_ms == Approx(131000));
  // The NAT forgets the flow long before the first probe: the same timeout, found late.
  const auto& nat = scenario(b, "nat-350s");
  CHECK(nat.run.topology == kah::TopologyKind::routed);
  CHECK(nat.run.expect.outcome == kah::ExpectedOutcome::timeout);
  REQUIRE(b.warnings.size() == 1);
  CHECK_THAT(b.warnings[0], Contains("keepalive_time 7200 s exceeds the NAT timeout 350 s: idle flows die silently "
                                     "after 350 s"));
  // Every case that runs fits --max-wait.
  for (const auto& s : b.scenarios) CHECK(predicted(s).window.bounded());
}

TEST_CASE("validate: a fast-failover tuning runs at its real values; keepalive keeps the NAT open", "[validate]") {
  const auto b = battery_of("10-fast-failover.conf", options_6_18({350, 5}));
  for (const auto& s : b.scenarios) {
    INFO(s.id);
    CHECK(s.scaling.empty());
  }
  CHECK(scenario(b, "nat-350s").run.expect.outcome == kah::ExpectedOutcome::alive);
  CHECK(scenario(b, "nat-5s").run.expect.outcome == kah::ExpectedOutcome::timeout);
  REQUIRE(b.warnings.size() == 1);
  CHECK_THAT(b.warnings[0], Contains("NAT timeout 5 s"));
  // The file's glob reached both namespaces as conf.all and conf.default.
  CHECK(scenario(b, "silent-peer").run.sysctls.at("server").at("net.ipv4.conf.default.rp_filter") == "1");
}

TEST_CASE("validate: --user-timeout adds its scenario, scaled by dividing the timeout", "[validate]") {
  auto o = options_6_18();
  o.user_timeout_ms = 120000;
  const auto battery = battery_of("10-fast-failover.conf", o);  // kept: `s` refers into it
  const auto& s = scenario(battery, "user-timeout");
  CHECK(s.real.user_timeout_ms == 120000);
  CHECK(s.scaled.user_timeout_ms < 60000);
  CHECK_THAT(s.scaling, Contains("TCP_USER_TIMEOUT 120000 -> "));
  CHECK(s.run.connections.front().user_timeout_ms == s.scaled.user_timeout_ms);
}

TEST_CASE("validate: refusals exit 2 before anything runs", "[validate][cli]") {
  using kah::test::cli;
  CHECK(cli({"validate", kExamples + "30-typo.conf"}) == 2);
  CHECK(cli({"validate", kExamples + "20-machine-wide-key.conf"}) == 2);
  CHECK(cli({"validate", "--nat-timeout", "soon", kExamples + "10-fast-failover.conf"}) == 2);
  CHECK(cli({"validate", "/nonexistent/kaharness.conf"}) == 2);
  CHECK(cli({"validate", "--dry-run", "--hz", "250", "--nat-timeout", "350s", kExamples + "00-kernel-defaults.conf"}) == 0);
}

TEST_CASE("predict: --kernel and --sysctl", "[cli][predict]") {
  using kah::test::cli;
  CHECK(cli({"predict", "--kernel", "6.1", "--traffic", "connect", "--hz", "250"}) == 0);
  CHECK(cli({"predict", "--kernel", "6.18", "--traffic", "connect", "--hz", "250", "--json"}) == 0);
  CHECK(cli({"predict", "--kernel", "six"}) == 2);
  // The key came with 6.15: refused for 6.1, taken for 6.18.
  CHECK(cli({"predict", "--kernel", "6.1", "--traffic", "sending", "--sysctl", "net.ipv4.tcp_rto_max_ms=5000"}) == 2);
  CHECK(cli({"predict", "--kernel", "6.18", "--traffic", "sending", "--sysctl", "net.ipv4.tcp_rto_max_ms=5000"}) == 0);
  CHECK(cli({"predict", "--sysctl", "net.ipv4.tcp_keepalive_interval=5"}) == 2);
  CHECK(cli({"predict", "--sysctl-file", kExamples + "10-fast-failover.conf", "--hz", "250"}) == 0);
}
