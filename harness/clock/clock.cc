#include "harness/clock/clock.h"

#include <algorithm>
#include <ctime>
#include <limits>

namespace kah {
namespace {

std::int64_t now_ns(clockid_t clock) {
  timespec ts{};
  clock_gettime(clock, &ts);
  return static_cast<std::int64_t>(ts.tv_sec) * 1000000000 + ts.tv_nsec;
}

}  // namespace

double monotonic_ms() { return static_cast<double>(monotonic_ns()) / 1e6; }

std::int64_t monotonic_ns() { return now_ns(CLOCK_MONOTONIC); }

ClockOffset ClockOffset::measure(int triples) {
  ClockOffset best;
  std::int64_t best_width = std::numeric_limits<std::int64_t>::max();
  for (int i = 0; i < std::max(triples, 1); ++i) {
    const std::int64_t before = now_ns(CLOCK_MONOTONIC);
    const std::int64_t real = now_ns(CLOCK_REALTIME);
    const std::int64_t after = now_ns(CLOCK_MONOTONIC);
    const std::int64_t width = after - before;
    if (width < best_width) {
      best_width = width;
      // REALTIME was read somewhere in [before, after]: taking the middle is off by
      // at most half the width (plus the clocks' 1 ns resolution).
      best.realtime_minus_monotonic_ns = real - (before + width / 2);
      best.error_ns = width / 2 + 1;
    }
  }
  return best;
}

}  // namespace kah
