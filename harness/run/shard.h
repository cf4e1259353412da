// --shard K/N: the K-th of N parts of a case list, split so the parts take about as
// long to run. Every CI node computes the split on its own (GitLab `parallel`, a
// GitHub Actions matrix, a Kubernetes Indexed Job), so it depends only on the case
// files: each case weighs how long the timing model predicts it watches after the
// fault, with HZ unknown (the same on every kernel, whatever HZ this node has), in
// whole milliseconds; the heaviest case goes first into the lightest shard
// (longest-processing-time first), ties broken by file name, then by the lower
// shard number. Every node must load the same files with the same --filter.
#pragma once

#include <string>
#include <vector>

#include "harness/case/case.h"

namespace kah {

// K of N, K from 1 (as CI_NODE_INDEX counts; JOB_COMPLETION_INDEX counts from 0).
struct ShardSpec {
  int index = 1;
  int count = 1;
};

// What a case weighs when cases are shared out, in whole milliseconds after the
// fault, with HZ unknown: when its last connection is predicted to end (the latest
// edge of its window), or the horizon for one that stays open (or may: random
// loss). The run stops watching a case then. Throws CaseError when the model cannot
// judge the case (as the load checks do).
long shard_weight_ms(const Case& c);

struct ShardPlan {
  std::vector<int> shard_of;            // per case given, its shard, 1..N
  std::vector<long> total_ms;           // per shard (index 0 = shard 1), the sum of its cases' weights
};

// Shares out cases with these weights and (file) names: longest first into the
// shard with the least so far; equal weights by name, equal totals to the lower shard.
ShardPlan plan_shards(const std::vector<long>& weights_ms, const std::vector<std::string>& names, int count);
// The same for cases, by shard_weight_ms() and file name.
ShardPlan plan_shards(const std::vector<Case>& cases, int count);

// Keeps the items (cases, or what was computed per case) of shard `index` (1..N), in order.
template <typename T>
void keep_shard(std::vector<T>& items, const ShardPlan& plan, int index) {
  std::vector<T> kept;
  for (std::size_t i = 0; i < items.size(); ++i)
    if (plan.shard_of.at(i) == index) kept.push_back(std::move(items[i]));
  items = std::move(kept);
}

// "shard 2/4: 7 of 27 cases, predicted 41.5 s after the faults (shards 1-4: 41.3 41.5 40.9 41.0 s; ...)".
std::string describe_shard(const ShardPlan& plan, ShardSpec spec);

}  // namespace kah
