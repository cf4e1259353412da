// Margins: how far inside its window each observation fell, over one run or many (a
// soak, a sweep). A connection that passes by 0.3 ms today fails after the next kernel
// or load change; these figures show the drift before the verdicts do.
//
// For every connection whose window is bounded (not expected alive) and that ended or
// failed (verdict pass or fail; a copy that passed by staying open through a random
// fault has no edge to be near): the margin to the earliest edge (observed -
// earliest) and to the latest edge (latest - observed), in ms and in % of the window's
// width; negative means outside. A miss is an observation outside the model's window
// or a connection whose verdict is not pass. The judge allows an end timed by the event
// loop's wake-up (not a capture stamp) 10 ms past the window, so a miss here can
// still be a pass: it is drawn because it is how close the model came to failing.
//
// `kaharness margins FILE.json...` (scripts/soak.sh) prints margins_text() and writes
// margins_html(); `kaharness sweep --report DIR` writes the same page. Everything comes
// from RunResult: results read back from the result JSON (run_result_from_json) or
// straight from a run.
//
// The page is self-contained (inline CSS and SVG, no scripts, fonts or network) and
// keeps to XML syntax, as the HTML report does.
#pragma once

#include <filesystem>
#include <limits>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "harness/judge/result.h"

namespace kah {

// One run, named for the tables ("idle-3", a file's stem).
struct LabelledRun {
  std::string label;
  RunResult run;
};

// The part of the result JSON the margins read back: per case its name, file and
// verdict; per connection its name, family, expected outcome and window, observed
// outcome, errno, time and probes, verdict and message; per program its name, verdict
// and checks. Throws
// nlohmann::json::exception or std::invalid_argument on JSON that is not a result.
RunResult run_result_from_json(const nlohmann::json& j);

struct Observation {
  std::string run, case_name;
  std::string connection;  // copies folded: "c1-v4#2" -> "c1-v4"
  double earliest_ms = 0, latest_ms = 0, at_ms = 0;
  Verdict verdict = Verdict::pass;

  double to_earliest_ms() const { return at_ms - earliest_ms; }
  double to_latest_ms() const { return latest_ms - at_ms; }
  double width_ms() const { return latest_ms - earliest_ms; }
  // In % of the window's width (a zero-width window: 0 % inside, +-inf outside).
  double to_earliest_pct() const;
  double to_latest_pct() const;
  bool inside() const { return at_ms >= earliest_ms && at_ms <= latest_ms; }
  bool miss() const { return !inside() || verdict != Verdict::pass; }
};

// Every observation with a bounded window, in the order of the runs.
std::vector<Observation> observations(const std::vector<LabelledRun>& runs);

// A connection whose verdict is not pass (any outcome, window or not), or a program
// whose expectations did not all pass (connection "program <name>", the message of
// its first check with that verdict). One not judged (late while the machine held the
// kernel) is listed too, but it did not make its run red.
struct FalseVerdict {
  std::string run, case_name, connection;  // connection as named in the run
  Verdict verdict = Verdict::fail;
  std::string message;
  bool red() const { return verdict != Verdict::not_judged; }
};
std::vector<FalseVerdict> false_verdicts(const std::vector<LabelledRun>& runs);

// Per case and connection: the smallest margin seen to each edge and the run it was
// seen in; sorted by the smaller of the two, closest first.
struct EdgeMargins {
  std::string case_name, connection;
  int observations = 0, misses = 0;
  double to_earliest_ms = std::numeric_limits<double>::infinity();
  double to_latest_ms = std::numeric_limits<double>::infinity();
  std::string earliest_run, latest_run;
};
std::vector<EdgeMargins> smallest_margins(const std::vector<Observation>& obs);

// Counts of values per bin, inside and missed apart. Bin i is [edges[i], edges[i+1]);
// the first edge is -inf and the last +inf, so every value lands in one bin.
struct Histogram {
  std::vector<double> edges;
  std::vector<int> inside, misses;
  int total() const;
};
Histogram make_histogram(const std::vector<Observation>& obs, double (Observation::*margin)() const,
                         std::vector<double> edges);
// The bins the page uses: ms in log steps (<0, 0, 1, 2, 5, ... 5000+), % in tenths
// (<0, 0-10, ... 90-100, >100).
std::vector<double> ms_edges();
std::vector<double> pct_edges();

// The tables as text, as scripts/soak.sh prints them.
std::string margins_text(const std::vector<LabelledRun>& runs);
// The page.
std::string margins_html(const std::vector<LabelledRun>& runs, const std::string& title = "kaharness margins");
// Writes the page to `file`, creating its folder. Throws std::system_error naming the file.
void write_margins_html(const std::vector<LabelledRun>& runs, const std::filesystem::path& file,
                        const std::string& title = "kaharness margins");

}  // namespace kah
