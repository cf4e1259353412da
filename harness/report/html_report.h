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
// Everything comes from RunResult: the model's windows, the observed outcome, and
// what the capture saw of each connection (ConnectionResult::evidence).
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

#include "harness/judge/result.h"

namespace kah {

struct HtmlOptions {
  std::string title = "kaharness report";
  // Where --pcap wrote the captures and where the page goes: a connection's pcap link
  // (CaptureFindings::pcap_client, relative to pcap_dir) is made relative to report_dir.
  std::filesystem::path pcap_dir, report_dir;
};

// Capture time of t = 0 for a connection: the client's last received segment before
// the fault, or, without one, the last received segment of the flow's last probe run
// (the same instant when the peer went silent).
std::optional<double> origin_of(const CaptureFindings& evidence);

// The text of index.html.
std::string html_report(const RunResult& run, const HtmlOptions& options = {});
// Writes dir/index.html, creating dir. Throws std::system_error naming the file.
void write_html_report(const RunResult& run, const std::filesystem::path& dir, HtmlOptions options = {});

}  // namespace kah
