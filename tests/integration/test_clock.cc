// The two jiffies calibrations on the running kernel: the canary's keepalive timer
// firings (what a container or a non-root run has) against /proc/timer_list (root).
// Needs root: a namespace for the canary, and timer_list to compare with.
#include <unistd.h>

#include <catch2/catch.hpp>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "harness/clock/canary.h"
#include "harness/clock/jiffies.h"

namespace {

using namespace kah;

}  // namespace

TEST_CASE("timer firings give the tick /proc/timer_list gives", "[clock][live]") {
  if (geteuid() != 0 || access("/proc/timer_list", R_OK) != 0) {
    WARN("needs root and /proc/timer_list: skipped");
    return;
  }
  const auto hz = detect_hz();
  REQUIRE(hz.hz);
  const auto canary = watch_keepalive_firings(*hz.hz);
  INFO(canary.error);
  REQUIRE(canary.firings.size() >= 4);
  const auto reference = JiffyClock::measure(*hz.hz);
  REQUIRE(reference);
  const auto fired = JiffyClock::from_timer_firings(*hz.hz, canary.firings);
  REQUIRE(fired);
  CHECK(fired->jiffies_modulus() == 64);

  // Each firing is stamped after its tick's boundary (the one timer_list places), by the
  // way from the tick to the packet tap; a firing a whole tick late counts from its tick.
  const double tick = static_cast<double>(reference->tick_ns());
  std::vector<double> latency_us;
  for (const auto& f : canary.firings) {
    const auto c = reference->at(static_cast<double>(f.monotonic_ns) / 1e6);
    latency_us.push_back(c.origin_phase * tick / 1e3);
    if (std::getenv("KAH_CLOCK_DEBUG") != nullptr)
      std::fprintf(stderr, "firing at %.6f ms: jiffy %llu (mod 64: %llu), phase %.1f us (mod TICK_NSEC: %.1f us), granularity %llu\n",
                   static_cast<double>(f.monotonic_ns) / 1e6, static_cast<unsigned long long>(c.jiffies_at_origin),
                   static_cast<unsigned long long>(c.jiffies_at_origin % 64), c.origin_phase * tick / 1e3,
                   static_cast<double>(f.monotonic_ns % reference->tick_ns()) / 1e3,
                   static_cast<unsigned long long>(f.granularity));
  }
  std::sort(latency_us.begin(), latency_us.end());
  std::fprintf(stderr, "timer firings: %zu, stamped after their tick's boundary (us): min %.1f median %.1f max %.1f\n",
               latency_us.size(), latency_us.front(), latency_us[latency_us.size() / 2], latency_us.back());
  // The earliest firing is the one the phase comes from: within the latency allowed.
  CHECK(latency_us.front() * 1e3 <= static_cast<double>(JiffyClock::kFiringLatencyNs) +
                                        reference->uncertainty_ticks() * tick);

  // With the address's creation stamp, jiffies itself: the same as timer_list's.
  REQUIRE(canary.stamp);
  const auto exact = fired->anchored(canary.stamp->from_ns, canary.stamp->to_ns, canary.stamp->hundredths);
  REQUIRE(exact);
  CHECK(exact->jiffies_modulus() == 0);
  CHECK(std::string(exact->method()) == "timer-firings");
  {
    const double t = static_cast<double>(canary.firings.back().monotonic_ns) / 1e6 + 2.0;
    const auto a = reference->at(t);
    const auto b = exact->at(t);
    const double x = static_cast<double>(a.jiffies_at_origin) + a.origin_phase;
    const double y = static_cast<double>(b.jiffies_at_origin) + b.origin_phase;
    INFO("timer_list " << a.jiffies_at_origin << " + " << a.origin_phase << ", firings and stamp "
                       << b.jiffies_at_origin << " + " << b.origin_phase);
    CHECK(std::abs(x - y) <= a.phase_uncertainty + b.phase_uncertainty);
  }

  // The two boundaries agree within their uncertainties, and jiffies modulo 64 agrees.
  for (const double later_ms : {0.0, 1.3, 5000.7}) {
    const double t = static_cast<double>(canary.firings.back().monotonic_ns) / 1e6 + later_ms;
    const auto a = reference->at(t);
    const auto b = fired->at(t);
    const double x = static_cast<double>(a.jiffies_at_origin % 64) + a.origin_phase;
    double y = static_cast<double>(b.jiffies_at_origin % 64) + b.origin_phase;
    if (y - x > 32) y -= 64;
    if (x - y > 32) y += 64;
    INFO("timer_list " << a.jiffies_at_origin % 64 << " + " << a.origin_phase << " (± " << a.phase_uncertainty
                       << "), firings " << b.jiffies_at_origin % 64 << " + " << b.origin_phase << " (± "
                       << b.phase_uncertainty << ")");
    CHECK(std::abs(x - y) <= a.phase_uncertainty + b.phase_uncertainty);
  }
}
