// The HTML report (`kaharness run --report DIR`): one self-contained index.html (inline
// CSS and SVG; no scripts, fonts or anything fetched over the network, so it opens
// from a CI artifact or a mail attachment) with, per case and connection, a timeline:
// t = 0 at the last segment the client received, the fault, every probe the capture
// shows (sent, ACKed, lost, answered by a reset), the model's probe windows and
// outcome window as shaded bands, and the observed timeout, reset or horizon as a
// marker; when the runner sampled it, the kernel's own timer for the socket (a lane
// "kernel timer": each sample, and a thin line to when the kernel says the timer will
// fire); then the probe-by-probe check and a link to the capture.
//
// RunResult alone gives the model's windows and the observed outcome; what only the
// capture knows (each probe's time and answer) comes in ReportExtras.
//
// The page keeps to XML syntax (void elements self-closed, everything escaped), so
// tests and `xmllint` can check it as a document, and SVG tooltips (<title>) carry the
// exact times without any script.
#pragma once

#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "harness/evidence/classify.h"
#include "harness/evidence/timer_sample.h"
#include "harness/result.h"

namespace kah::evidence {

// One sample of the kernel's timer for the connection's socket (netns::socket_timers,
// as `ss -o` shows it), taken by the runner during the observation.


// What the capture (and the kernel) says about one connection.
struct ConnectionEvidence {
  std::optional<FlowAnalysis> flow;  // the connection's flow, classified (analyze_flow / find_flow)
  // Capture time of t = 0, the client's last received segment before the fault. Unset:
  // the flow's last probe run's last received segment, which is the same instant when
  // the peer went silent.
  std::optional<double> origin_ms;
  std::optional<double> fault_ms;    // when the fault was applied, ms from t = 0
  std::filesystem::path pcap;        // the capture file, relative to the report folder; empty: none
  // In time order; empty: no "kernel timer" lane.
  std::vector<TimerSample> timer_samples;
};

struct ReportExtras {
  std::string title = "kaharness report";
  // Keyed by (case name, connection name), the names in RunResult.
  std::map<std::pair<std::string, std::string>, ConnectionEvidence> connections;

  const ConnectionEvidence* find(const std::string& case_name, const std::string& connection) const;
};

// The capture time of t = 0 for this evidence, if it can be known.
std::optional<double> origin_of(const ConnectionEvidence& evidence);

// The text of index.html.
std::string html_report(const RunResult& run, const ReportExtras& extras);
// Writes dir/index.html, creating dir. Throws std::system_error naming the file.
void write_html_report(const RunResult& run, const std::filesystem::path& dir, const ReportExtras& extras);

}  // namespace kah::evidence
