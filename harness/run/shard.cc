#include "harness/run/shard.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include <fmt/format.h>

#include "harness/run/load_checks.h"

namespace kah {

namespace {

// When the case stops watching a connection: at the latest edge of its window when
// the model says it ends, at the horizon when it stays open (or may: random loss).
double predicted_end_ms(const NominalConnection& n) {
  const auto& p = n.forecast.prediction;
  if (p.outcome == model::Outcome::alive || n.forecast.survival || !p.window.bounded()) return n.forecast.horizon_ms;
  return std::min(p.window.latest_ms, n.forecast.horizon_ms);
}

}  // namespace

long shard_weight_ms(const Case& c) {
  const model::Kernel any_hz;  // HZ unknown: the same weight on every node
  const auto forecast = nominal_forecast(c, any_hz);
  double end_ms = 0;
  for (const auto& n : forecast.connections) end_ms = std::max(end_ms, predicted_end_ms(n));
  if (forecast.connections.empty()) end_ms = forecast.duration_ms;  // programs only: how long they are watched
  return std::lround(end_ms);
}

ShardPlan plan_shards(const std::vector<long>& weights_ms, const std::vector<std::string>& names, int count) {
  std::vector<std::size_t> heaviest_first(weights_ms.size());
  std::iota(heaviest_first.begin(), heaviest_first.end(), 0);
  std::stable_sort(heaviest_first.begin(), heaviest_first.end(), [&](std::size_t a, std::size_t b) {
    if (weights_ms[a] != weights_ms[b]) return weights_ms[a] > weights_ms[b];
    return names[a] < names[b];
  });
  ShardPlan plan;
  plan.shard_of.assign(weights_ms.size(), 0);
  plan.total_ms.assign(static_cast<std::size_t>(count), 0);
  for (const std::size_t i : heaviest_first) {
    // min_element returns the first of equal totals: the lower shard.
    const auto lightest = std::min_element(plan.total_ms.begin(), plan.total_ms.end());
    *lightest += weights_ms[i];
    plan.shard_of[i] = static_cast<int>(lightest - plan.total_ms.begin()) + 1;
  }
  return plan;
}

ShardPlan plan_shards(const std::vector<Case>& cases, int count) {
  std::vector<long> weights;
  std::vector<std::string> names;
  for (const auto& c : cases) {
    weights.push_back(shard_weight_ms(c));
    names.push_back(c.file.filename().string() + "/" + c.name);
  }
  return plan_shards(weights, names, count);
}

std::string describe_shard(const ShardPlan& plan, ShardSpec spec) {
  const auto mine = std::count(plan.shard_of.begin(), plan.shard_of.end(), spec.index);
  std::vector<std::string> totals;
  for (const long t : plan.total_ms) totals.push_back(fmt::format("{:.1f}", static_cast<double>(t) / 1000.0));
  return fmt::format("shard {}/{}: {} of {} cases, predicted {:.1f} s after the faults (shards 1-{}: {} s; "
                     "HZ unknown, as on every node)\n",
                     spec.index, spec.count, mine, plan.shard_of.size(),
                     static_cast<double>(plan.total_ms.at(static_cast<std::size_t>(spec.index - 1))) / 1000.0,
                     spec.count, fmt::join(totals, " "));
}

}  // namespace kah
