#include <catch2/catch.hpp>

#include "harness/run/fault_landing.h"

namespace {

using kah::FaultKind;
using kah::FaultLanding;
using kah::fault_landed_late;

kah::model::Prediction first_probe_at(double earliest, double latest) {
  kah::model::Prediction p;
  p.probes.push_back({0, 1000, {earliest, latest}, true});
  return p;
}

}  // namespace

TEST_CASE("a fault that lands after the first probe left is a harness error", "[fault]") {
  // sweep -n 10000 --per-case 100 --seed 11, connection s0063 (blackhole, idle 1 s), with
  // a hundred cases setting up at once: the nft commit began 1001.5 ms after t_r and
  // returned at 1077.3 ms; the capture shows probe 1 at 1030.4 ms, answered. Judged, it
  // was "one probe more than the model": not the kernel's doing.
  const double origin = 50'000;
  const auto prediction = first_probe_at(1025.2, 1032.4);
  const FaultLanding late{origin + 1001.5, origin + 1077.3};
  const auto error = fault_landed_late(FaultKind::blackhole, late, origin, prediction, 1030.4);
  REQUIRE(error);
  CHECK(*error ==
        "harness error, not a kernel or model miss: the fault was applied from 1001.5 ms to 1077.3 ms after t_r, but "
        "the first probe left at 1030.4 ms: the connection met the fault after its idle clock had moved");
  SECTION("without a capture the window decides") {
    const auto blind = fault_landed_late(FaultKind::link_down, late, origin, prediction, std::nullopt);
    REQUIRE(blind);
    CHECK_THAT(*blind, Catch::Contains("could leave from 1025.2 ms"));
  }
  SECTION("in place before the window opens") {
    const FaultLanding early{origin + 300.0, origin + 420.0};
    CHECK_FALSE(fault_landed_late(FaultKind::peer_reboot, early, origin, prediction, 1030.4));
  }
  SECTION("the capture shows the probe left after the fault was in place") {
    CHECK_FALSE(fault_landed_late(FaultKind::blackhole, late, origin, prediction, 1078.0));
  }
  SECTION("faults the harness does not time do not count") {
    CHECK_FALSE(fault_landed_late(FaultKind::none, late, origin, prediction, 1030.4));
    CHECK_FALSE(fault_landed_late(FaultKind::peer_freeze, late, origin, prediction, 1030.4));
    CHECK_FALSE(fault_landed_late(FaultKind::conntrack_timeout, late, origin, prediction, 1030.4));
  }
  SECTION("connections without probes (data in flight) are not judged by it") {
    CHECK_FALSE(fault_landed_late(FaultKind::blackhole, late, origin, kah::model::Prediction{}, std::nullopt));
  }
}
