// The harness's time base. Every instant the harness records is CLOCK_MONOTONIC, in
// milliseconds (monotonic_ms); the kernel stamps captured packets in CLOCK_REALTIME,
// and ClockOffset relates the two. jiffies.h maps CLOCK_MONOTONIC onto the kernel's
// jiffies. docs/architecture.md, "The time base", says which clock times what.
//
// Stateless functions and a value type; safe from any thread.
#pragma once

#include <cstdint>

namespace kah {

// CLOCK_MONOTONIC, in ms and in ns.
double monotonic_ms();
std::int64_t monotonic_ns();

// CLOCK_REALTIME - CLOCK_MONOTONIC at one moment.
//
// Read as the tightest of several (MONOTONIC, REALTIME, MONOTONIC) triples, right
// within +-error_ns (half that bracket: tens of nanoseconds with the vDSO). NTP
// slewing changes the rate of both clocks alike and leaves the offset alone; only a
// step of the realtime clock (settimeofday, a leap second, chrony's makestep) moves
// it, which is why a capture measures it again when it stops (clock_step_ns).
struct ClockOffset {
  std::int64_t realtime_minus_monotonic_ns = 0;
  std::int64_t error_ns = 0;  // the true offset is within +-error_ns of the value

  // The best of `triples` readings: the one whose two MONOTONIC readings are
  // closest, i.e. the least disturbed by preemption.
  static ClockOffset measure(int triples = 16);

  std::int64_t to_monotonic_ns(std::int64_t realtime_ns) const { return realtime_ns - realtime_minus_monotonic_ns; }
  // A capture time (realtime ms since the epoch, as evidence::Packet::t_ms) as
  // CLOCK_MONOTONIC ms, the unit the runner records.
  double to_monotonic_ms(double realtime_ms) const {
    return realtime_ms - static_cast<double>(realtime_minus_monotonic_ns) / 1e6;
  }
};

}  // namespace kah
