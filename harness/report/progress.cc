#include "harness/report/progress.h"

#include <fmt/format.h>

#include "harness/report/prediction.h"

namespace kah {

void Progress::case_started(const std::string& name) {
  std::lock_guard lock(mutex_);
  running_[name];
}

void Progress::expect(const std::string& case_name, std::string what, double at_monotonic_ms) {
  std::lock_guard lock(mutex_);
  running_[case_name].push_back({std::move(what), at_monotonic_ms});
}

void Progress::case_done(const std::string& name) {
  std::lock_guard lock(mutex_);
  running_.erase(name);
  ++done_;
}

std::string Progress::line(double now_monotonic_ms) const {
  std::lock_guard lock(mutex_);
  const std::string* next_case = nullptr;
  const Event* next = nullptr;
  for (const auto& [name, events] : running_)
    for (const auto& e : events)
      if (e.at_ms >= now_monotonic_ms && (next == nullptr || e.at_ms < next->at_ms)) {
        next = &e;
        next_case = &name;
      }
  auto text = fmt::format("{} running, {}/{} done", running_.size(), done_, total_);
  if (next != nullptr)
    text += fmt::format("; next: {} {} in {}", *next_case, next->what, human_duration(next->at_ms - now_monotonic_ms));
  return text;
}

}  // namespace kah
