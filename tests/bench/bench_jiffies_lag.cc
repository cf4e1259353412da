// kah_bench_jiffies_lag: how late the kernel's jiffies can be after its tick's
// boundary, which Kernel::jiffies_lag_ms must cover (harness/model/timing.h).
//
// Each round takes 400 readings of /proc/timer_list ("now at" and jiffies, about
// 0.7 ms apart) and fits them into one tick grid (JiffyClock::fit); a reading whose
// jiffies is behind the grid at its instant was taken after a tick boundary whose
// interrupt had not yet advanced jiffies. Prints one line per round with a lag, and a
// summary: readings, lagging readings, the largest lag. Needs root. Not a CTest test.
//
//   kah_bench_jiffies_lag [ROUNDS]      (default 50, about 15 s)
#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>

#include "harness/clock/jiffies.h"

int main(int argc, char** argv) {
  const int rounds = argc > 1 ? std::atoi(argv[1]) : 50;
  const auto hz = kah::detect_hz().hz;
  if (!hz) {
    fmt::print(stderr, "kah_bench_jiffies_lag: HZ unknown on this kernel\n");
    return 3;
  }
  long readings = 0, lagging = 0;
  int unfitted = 0;
  double max_lag_ms = 0;
  for (int r = 0; r < rounds; ++r) {
    const auto samples = kah::read_jiffy_samples(400, std::chrono::microseconds(700));
    if (samples.empty()) {
      fmt::print(stderr, "kah_bench_jiffies_lag: /proc/timer_list cannot be read (run as root)\n");
      return 3;
    }
    const auto clock = kah::JiffyClock::fit(*hz, samples);
    if (!clock) {
      ++unfitted;
      continue;
    }
    readings += clock->readings();
    lagging += clock->lagging_readings();
    const double lag_ms = static_cast<double>(clock->max_lag_ns()) / 1e6;
    max_lag_ms = std::max(max_lag_ms, lag_ms);
    if (clock->lagging_readings() > 0)
      fmt::print("round {}: {} of {} readings lagging, up to {:.3f} ms\n", r, clock->lagging_readings(),
                 clock->readings(), lag_ms);
  }
  fmt::print("readings={} lagging={} max_lag_ms={:.3f} rounds_not_fitted={} hz={}\n", readings, lagging, max_lag_ms,
             unfitted, *hz);
}
