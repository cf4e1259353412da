// What `kaharness validate` prints and writes: per scenario and family, the window
// predicted at the file's real values, what the run measured (at the real values or
// scaled, and then against the scaled case's own window), and the verdict; then the
// warnings and the scenarios refused. Text and JSON; the HTML report is the run's own.
#pragma once

#include <string>

#include <nlohmann/json.hpp>

#include "harness/judge/result.h"
#include "harness/sysctl/tuning.h"
#include "harness/validate/battery.h"

namespace kah::validate {

std::string verdict_table(const Battery& battery, const RunResult& run);
nlohmann::json validate_json(const sysctl::Tuning& tuning, const Battery& battery, const RunResult& run);

}  // namespace kah::validate
