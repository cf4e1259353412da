// A run that cannot calibrate says why (issue 9, item 8): in a user namespace
// /proc/timer_list cannot be read, and the summary and JSON now say so.
#include <catch2/catch.hpp>

#include <optional>
#include <string>

#include "harness/clock/calibration_note.h"
#include "harness/report/report.h"

using namespace kah;

namespace {

bool has(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

}  // namespace

TEST_CASE("a user namespace is recognised from uid_map, and the summary says why windows are wide", "[calibration]") {
  CHECK_FALSE(in_user_namespace("         0          0 4294967295\n"));
  CHECK(in_user_namespace("         0       1000          1\n"));
  CHECK(in_user_namespace("         0     100000      65536\n"));
  CHECK_FALSE(in_user_namespace(""));
  CHECK(has(why_not_calibrated(true, 250, true), "user namespace"));
  CHECK(has(why_not_calibrated(false, 250, false), "--no-calibration"));
  CHECK(has(why_not_calibrated(true, std::nullopt, false), "HZ unknown"));

  RunResult run;
  run.hz = 250;
  run.calibrated = false;
  run.calibration_note = why_not_calibrated(true, 250, true);
  CHECK(has(console_summary(run), "not calibrated: running in a user namespace"));
  CHECK(result_json(run)["calibration_note"].get<std::string>() == run.calibration_note);
}
