#include "harness/validate/verdict_table.h"

#include <fmt/format.h>

#include "harness/report/prediction.h"
#include "harness/report/report.h"

namespace kah::validate {
namespace {

const CaseResult* result_of(const RunResult& run, const Scenario& s) {
  for (const auto& c : run.cases)
    if (c.name == s.run.name) return &c;
  return nullptr;
}

std::string window_words(const model::Window& w) {
  if (!w.bounded()) return fmt::format("from {}", human_duration(w.earliest_ms));
  return fmt::format("{} .. {}", human_duration(w.earliest_ms), human_duration(w.latest_ms));
}

std::string predicted_words(const Scenario& s) {
  const auto& p = s.predicted.connections.front().forecast.prediction;
  if (p.outcome == model::Outcome::alive) return fmt::format("alive (watched {})", human_duration(p.window.earliest_ms));
  return fmt::format("{} {}", to_string(expected_outcome(p.outcome)), window_words(p.window));
}

std::string measured_words(const ConnectionResult& r, bool scaled) {
  const std::string what = r.observed.outcome == ObservedOutcome::alive
                               ? fmt::format("alive at {}", human_duration(r.observed.at_ms))
                               : fmt::format("{} at {}", to_string(r.observed.outcome), human_duration(r.observed.at_ms));
  return fmt::format("{} ({}window {})", what, scaled ? "scaled, " : "", window_words(r.expected.window));
}

}  // namespace

std::string verdict_table(const Battery& battery, const RunResult& run) {
  std::string out = fmt::format("{:<16} {:<5} {:<44} {:<60} {}\n", "scenario", "fam", "predicted at the file's values",
                                "measured", "verdict");
  for (const auto& s : battery.scenarios) {
    const CaseResult* c = result_of(run, s);
    if (c == nullptr || c->connections.empty()) {
      out += fmt::format("{:<16} {:<5} {:<44} {:<60} {}\n", s.id, "-", predicted_words(s),
                         c == nullptr ? "not run" : c->error, c == nullptr ? "skip" : to_string(c->verdict));
      continue;
    }
    for (const auto& r : c->connections)
      out += fmt::format("{:<16} {:<5} {:<44} {:<60} {}\n", s.id, to_string(r.family), predicted_words(s),
                         measured_words(r, !s.scaling.empty()), to_string(r.verdict));
  }
  out += "predicted: the file's values with nominal inputs (the first RTO at tcp_rto_min, any timer phase); measured: "
         "judged against the window for what the run measured (the RTO from TCP_INFO, the jiffies calibration)\n";
  for (const auto& s : battery.scenarios)
    if (!s.scaling.empty()) out += fmt::format("scaled {}: {}\n", s.id, s.scaling);
  for (const auto& w : battery.warnings) out += fmt::format("warning: {}\n", w);
  for (const auto& r : battery.refused) out += fmt::format("not run: {}\n", r);
  return out;
}

nlohmann::json validate_json(const sysctl::Tuning& tuning, const Battery& battery, const RunResult& run) {
  nlohmann::json j;
  j["files"] = tuning.files;
  j["sysctls"] = sysctl::namespace_sysctls(tuning);
  j["warnings"] = battery.warnings;
  j["refused"] = battery.refused;
  j["scenarios"] = nlohmann::json::array();
  for (const auto& s : battery.scenarios) {
    const auto& p = s.predicted.connections.front().forecast.prediction;
    nlohmann::json row{{"id", s.id},
                       {"case", s.run.name},
                       {"title", s.title},
                       {"scaling", s.scaling.empty() ? nlohmann::json(nullptr) : nlohmann::json(s.scaling)},
                       {"predicted",
                        {{"outcome", to_string(expected_outcome(p.outcome))},
                         {"nominal_ms", p.nominal_ms},
                         {"earliest_ms", p.window.earliest_ms},
                         {"latest_ms", p.window.bounded() ? nlohmann::json(p.window.latest_ms) : nlohmann::json(nullptr)}}}};
    if (const CaseResult* c = result_of(run, s)) row["verdict"] = to_string(c->verdict);
    j["scenarios"].push_back(row);
  }
  j["run"] = result_json(run);  // the measured side: the result JSON's contract, unchanged
  return j;
}

}  // namespace kah::validate
