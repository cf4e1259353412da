// --shard K/N: cases shared out by predicted duration so the shards finish together,
// the same split on every CI node (issue 10, item 4). No privileges: nothing is built.
#include <catch2/catch.hpp>

#include "cli_call.h"

#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <numeric>
#include <string>
#include <vector>

#include "harness/case/case.h"
#include "harness/run/shard.h"

using namespace kah;

namespace {

const std::string kCases = std::string(KAH_SOURCE_DIR) + "/cases";

std::vector<Case> library() {
  std::vector<Case> cases;
  for (const auto& file : find_case_files({kCases})) cases.push_back(load_case(file));
  return cases;
}

std::vector<std::string> names_of(const std::vector<Case>& cases) {
  std::vector<std::string> names;
  for (const auto& c : cases) names.push_back(c.name);
  return names;
}

}  // namespace

TEST_CASE("shards: the longest case first into the lightest shard, ties by name, then the lower shard", "[shard]") {
  // 5 -> 1; 4 -> 2; 3 "a" -> 2 (4 < 5); 3 "b" -> 1 (5 < 7); 3 "c" -> 2 (7 < 8).
  const auto plan = plan_shards({3, 5, 3, 4, 3}, {"c", "x", "a", "y", "b"}, 2);
  CHECK(plan.shard_of == std::vector<int>{2, 1, 2, 2, 1});
  CHECK(plan.total_ms == std::vector<long>{8, 10});
  // Equal totals go to the lower shard; a shard may stay empty.
  CHECK(plan_shards({1, 1}, {"a", "b"}, 3).shard_of == std::vector<int>{1, 2});
  CHECK(plan_shards({1, 1}, {"a", "b"}, 3).total_ms == std::vector<long>{1, 1, 0});
}

TEST_CASE("shards: the split depends on the cases only, not on the order they were found in", "[shard]") {
  auto cases = library();
  const auto forward = plan_shards(cases, 4);
  std::map<std::string, int> shard_by_name;
  for (std::size_t i = 0; i < cases.size(); ++i) shard_by_name[cases[i].name] = forward.shard_of[i];
  std::reverse(cases.begin(), cases.end());
  const auto backward = plan_shards(cases, 4);
  for (std::size_t i = 0; i < cases.size(); ++i) {
    INFO(cases[i].name);
    CHECK(backward.shard_of[i] == shard_by_name[cases[i].name]);
  }
  CHECK(backward.total_ms == forward.total_ms);
}

TEST_CASE("shards: every case of the library in exactly one shard, for 1 to 30 shards", "[shard]") {
  const auto cases = library();
  for (int n = 1; n <= 30; ++n) {
    const auto plan = plan_shards(cases, n);
    std::vector<std::string> seen;
    for (int k = 1; k <= n; ++k) {
      auto mine = cases;
      keep_shard(mine, plan, k);
      for (auto& name : names_of(mine)) seen.push_back(name);
    }
    std::sort(seen.begin(), seen.end());
    auto all = names_of(cases);
    std::sort(all.begin(), all.end());
    INFO(n << " shards");
    CHECK(seen == all);
  }
}

TEST_CASE("shards: the library's shards weigh within one case of each other", "[shard]") {
  const auto cases = library();
  std::vector<long> weights;
  for (const auto& c : cases) weights.push_back(shard_weight_ms(c));
  const long heaviest = *std::max_element(weights.begin(), weights.end());
  for (int n = 2; n <= 6; ++n) {
    const auto plan = plan_shards(cases, n);
    const auto [lightest, slowest] = std::minmax_element(plan.total_ms.begin(), plan.total_ms.end());
    INFO(n << " shards: " << describe_shard(plan, {1, n}));
    // Longest-processing-time first: the last case put in the slowest shard went to
    // the lightest one then, so the spread is at most one case's weight.
    CHECK(*slowest - *lightest <= heaviest);
    CHECK(std::accumulate(plan.total_ms.begin(), plan.total_ms.end(), 0L) ==
          std::accumulate(weights.begin(), weights.end(), 0L));
  }
}

TEST_CASE("shards: by weight, not by count: one long case gets a shard to itself", "[shard]") {
  // Equal counts (case i in shard i mod 2 + 1, as --shard did before) would put the
  // 60 s case with two others: 62 s against 2 s.
  const auto plan = plan_shards({60000, 1000, 1000, 1000, 1000}, {"long", "a", "b", "c", "d"}, 2);
  CHECK(plan.shard_of == std::vector<int>{1, 2, 2, 2, 2});
  CHECK(plan.total_ms == std::vector<long>{60000, 4000});
}

TEST_CASE("shards: describe_shard names the shard, its share of the cases and every shard's total", "[shard]") {
  const auto plan = plan_shards({1500, 2500, 1000}, {"a", "b", "c"}, 2);
  CHECK(describe_shard(plan, {1, 2}) ==
        "shard 1/2: 1 of 3 cases, predicted 2.5 s after the faults (shards 1-2: 2.5 2.5 s; HZ unknown, as on every "
        "node)\n");
}

TEST_CASE("run --shard: K/N checked, --dry-run shows a shard, an empty shard passes with empty outputs", "[shard][cli]") {
  using kah::test::cli;
  CHECK(cli({"run", "--dry-run", "--shard", "2/4", kCases}) == 0);
  CHECK(cli({"run", "--dry-run", "--shard", "0/4", kCases}) == 2);
  CHECK(cli({"run", "--dry-run", "--shard", "4/3", kCases}) == 2);
  CHECK(cli({"run", "--dry-run", "--shard", "1/0", kCases}) == 2);
  // More shards than cases: the last shards have none; nothing to run passes, and the
  // files CI collects exist.
  const auto dir = std::filesystem::temp_directory_path() / ("kah-shard-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  const auto one_case = kCases + "/peer-reboot.toml";
  CHECK(cli({"run", "--shard", "2/2", "--json", (dir / "r.json").string(), "--junit", (dir / "j.xml").string(),
             one_case}) == 0);
  std::ifstream json(dir / "r.json");
  const std::string text((std::istreambuf_iterator<char>(json)), std::istreambuf_iterator<char>());
  CHECK(text.find("\"cases\": []") != std::string::npos);
  CHECK(std::filesystem::exists(dir / "j.xml"));
  std::filesystem::remove_all(dir);
}
