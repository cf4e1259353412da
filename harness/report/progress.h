// Progress of a run for a person watching a terminal: which cases are running,
// how many are done, and the next event the model expects (a probe, a reset, a
// timeout) with the time left until it, so a two-hour real-time validation does
// not look hung. The runner reports into it; the CLI draws it. Thread-safe.
#pragma once

#include <map>
#include <mutex>
#include <string>
#include <vector>

namespace kah {

class Progress {
 public:
  explicit Progress(std::size_t total_cases) : total_(total_cases) {}

  void case_started(const std::string& name);
  // An event the model expects for a case, at CLOCK_MONOTONIC ms.
  void expect(const std::string& case_name, std::string what, double at_monotonic_ms);
  void case_done(const std::string& name);

  // One line: "3 running, 9/15 done; next: peer-power-off client-v4 probe 2 in 1.2 s".
  std::string line(double now_monotonic_ms) const;

 private:
  struct Event {
    std::string what;
    double at_ms;
  };
  mutable std::mutex mutex_;
  std::size_t total_;
  std::size_t done_ = 0;
  std::map<std::string, std::vector<Event>> running_;
};

}  // namespace kah
