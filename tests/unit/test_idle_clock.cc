// IdleClock: where the kernel's keepalive idle clock starts, from TCP_INFO's
// "ms since last received" against jiffies, and when a run may hand it to the model.
#include <catch2/catch.hpp>

#include "harness/model/timing.h"
#include "harness/run/endpoints.h"

namespace {

using kah::IdleClock;
using kah::model::Input;
using kah::model::JiffyCalibration;

}  // namespace

TEST_CASE("IdleClock::counted_from: whole jiffies back from the reading, at every HZ", "[idle_clock]") {
  // jiffies_to_msecs(): 4 ms per jiffy at HZ=250, 10 at 100, 1 at 1000, 3.33 (rounded up) at 300.
  CHECK(IdleClock{1000500, 2000, 0}.counted_from(250) == 1000000);
  CHECK(IdleClock{1000500, 5000, 0}.counted_from(100) == 1000000);
  CHECK(IdleClock{1000500, 500, 0}.counted_from(1000) == 1000000);
  CHECK(IdleClock{1000500, 1667, 0}.counted_from(300) == 1000000);  // 500 jiffies at HZ=300
  CHECK(IdleClock{1000500, 4, 0}.counted_from(250) == 1000499);
  CHECK(IdleClock{1000500, 0, 0}.counted_from(250) == 1000500);
}

TEST_CASE("use_idle_clock: only with jiffies known and a reading after t_r's segment was taken in",
          "[idle_clock]") {
  const IdleClock read{4306167728, 1996, 2000.0};  // jiffies, ms since received, read at (monotonic ms)
  const auto fresh = [] {
    Input in;
    in.kernel.hz = 250;
    in.kernel.receive_delay_ms = 1;
    in.kernel.calibration = JiffyCalibration{4306167229, 0.81, 0.02};
    return in;
  };
  SECTION("read after t = 0 plus the receive delay: the kernel's jiffy is used") {
    auto in = fresh();
    kah::use_idle_clock(in, read, 1998.5);
    REQUIRE(in.kernel.calibration->idle_clock_jiffies);
    CHECK(*in.kernel.calibration->idle_clock_jiffies == 4306167728 - 499);
  }
  SECTION("t = 0 within the receive delay before the reading (or after it): not used") {
    auto in = fresh();
    kah::use_idle_clock(in, read, 1999.2);
    CHECK_FALSE(in.kernel.calibration->idle_clock_jiffies);
    kah::use_idle_clock(in, read, 2003);
    CHECK_FALSE(in.kernel.calibration->idle_clock_jiffies);
  }
  SECTION("read once the first probe could have gone (idle 2 s after t = 0): not used") {
    auto in = fresh();
    in.keepalive.idle_s = 2;
    kah::use_idle_clock(in, read, -1.0);  // read 2001 ms after t = 0
    CHECK_FALSE(in.kernel.calibration->idle_clock_jiffies);
    in.keepalive.idle_s = 3;
    kah::use_idle_clock(in, read, -1.0);
    CHECK(in.kernel.calibration->idle_clock_jiffies);
  }
  SECTION("jiffies known only modulo 64 (timer firings), no calibration, HZ unknown: not used") {
    auto modulo = fresh();
    modulo.kernel.calibration->jiffies_modulus = 64;
    kah::use_idle_clock(modulo, read, 0);
    CHECK_FALSE(modulo.kernel.calibration->idle_clock_jiffies);
    auto none = fresh();
    none.kernel.calibration.reset();
    kah::use_idle_clock(none, read, 0);
    CHECK_FALSE(none.kernel.calibration);
    auto unknown = fresh();
    unknown.kernel.hz.reset();
    kah::use_idle_clock(unknown, read, 0);
    CHECK_FALSE(unknown.kernel.calibration->idle_clock_jiffies);
  }
  SECTION("no reading: nothing changes") {
    auto in = fresh();
    kah::use_idle_clock(in, std::nullopt, 0);
    CHECK_FALSE(in.kernel.calibration->idle_clock_jiffies);
  }
}
