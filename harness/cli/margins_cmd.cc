#include "harness/cli/margins_cmd.h"

#include <algorithm>
#include <filesystem>
#include <fstream>

#include <fmt/format.h>

#include "harness/report/margins.h"

namespace kah {

int margins_command(const std::vector<std::string>& files, const std::string& html) {
  std::vector<LabelledRun> runs;
  for (const auto& file : files) {
    std::ifstream in(file);
    if (!in) {
      fmt::print(stderr, "kaharness: cannot read {}\n", file);
      return 2;
    }
    try {
      runs.push_back({std::filesystem::path(file).stem().string(), run_result_from_json(nlohmann::json::parse(in))});
    } catch (const std::exception& e) {
      fmt::print(stderr, "kaharness: {}: not a result JSON: {}\n", file, e.what());
      return 2;
    }
  }
  fmt::print("{}", margins_text(runs));
  if (!html.empty()) {
    write_margins_html(runs, html, fmt::format("kaharness margins: {} run{}", runs.size(), runs.size() == 1 ? "" : "s"));
    fmt::print("margins page: {}\n", html);
  }
  const auto verdicts = false_verdicts(runs);
  return std::none_of(verdicts.begin(), verdicts.end(), [](const FalseVerdict& f) { return f.red(); }) ? 0 : 1;
}

}  // namespace kah
