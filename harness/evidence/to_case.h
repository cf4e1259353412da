// From a field capture to a runnable case (`kaharness analyze CAPTURE --to-case FILE`):
// what one flow's packets say about the keepalive settings of the side that probed and
// about how the connection ended, written as a case file that reproduces it, with
// comments that say what was inferred from which frames.
//
// The side that probed becomes the case's client (kaharness sets keepalive on its
// client). From the prober's last probe run (classify.h):
//   idle      its last received segment -> its first probe
//   interval  the spacing of its unanswered probes (or its only probe -> its RST)
//   count     the probes it sent before its own RST
// and the ending, which gives the outcome and the fault that reproduces it:
//   probes unanswered, then the prober's RST  -> timeout, blackhole
//   the peer's RST answering a probe          -> reset, peer-reboot
//   the peer's FIN                            -> eof, no fault ([server] idle_close_s)
//   a probe answered, then the capture ends   -> alive, no fault (horizon_s)
// Anything else (no probes, no idle time, probes still unanswered at the end of the
// capture, an RST or FIN that keepalive did not cause) throws CaseInferenceError
// saying what is missing. TCP_USER_TIMEOUT is never inferred: on an idle connection it
// ends keepalive at a probe time, which a capture cannot tell from TCP_KEEPCNT.
//
// Pure: an Analysis in, values and text out.
#pragma once

#include <cstddef>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "harness/case/case.h"
#include "harness/evidence/classify.h"

namespace kah::evidence {

// The capture cannot give what a case needs, or --flow does not name one of its flows:
// the message says which flow, what is missing and where the capture shows it.
class CaseInferenceError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// The flow `spec` names: "" (the capture's only flow), a 1-based number as
// describe_analysis() prints it, or its two endpoints in either order,
// "198.18.0.1:40112-198.18.0.2:7000" or "[fd6b:6168:7265::1]:40112-[fd6b:6168:7265::2]:7000".
// Throws CaseInferenceError listing the flows when it names none, or when spec is
// empty and there are several.
std::size_t choose_flow(const Analysis& analysis, std::string_view spec);
// One line per flow: number, endpoints, family, probes, end.
std::string list_flows(const Analysis& analysis);

// A keepalive setting in whole seconds (the kernel's unit) from the time its timer
// took, an idle time or the gap between two probes: the roundest whole number of
// seconds (a multiple of 3600, 600, 60, 10 or 5 before any other, the nearest to the
// measurement among equals) that the timer wheel could have made into the measurement.
// The wheel fires a timer late, never early, by up to its level's granularity at the
// kernel's HZ (unknown here: the largest over the common ones), and the keepalive timer
// re-arms from its own callback, so probe gaps are late too; the measurement may look
// up to two jiffies at HZ 100 (20 ms) short (where the kernel's idle clock started, a
// tick's shift). None in range (a non-Linux prober): the nearest whole second, at least 1.
int setting_seconds(double measured_ms);
// The largest lateness (ms) the timer wheel gives a timer of this length, over the common HZ.
double wheel_lateness_ms(double length_ms);

struct CaseFromCapture {
  std::string source;       // the capture file
  std::size_t flow = 0;     // index into Analysis::flows
  Endpoint client, server;  // the prober, and its peer
  Family family = Family::ipv4;
  std::optional<int> idle_s, interval_s, count;  // unset: not seen; the namespace sysctl applies
  ExpectedOutcome outcome = ExpectedOutcome::alive;
  FaultKind fault = FaultKind::none;
  std::optional<double> idle_close_s;  // eof: the peer application closed after this long idle
  std::optional<double> horizon_s;     // alive: how long the capture watched after the last data
  // What each value was inferred from (frame numbers, times in seconds from the
  // capture's first TCP segment), or why it was not: one sentence each, written as
  // comments above the key they set.
  std::vector<std::string> keepalive_evidence;  // idle, interval, count, user timeout
  std::string outcome_evidence;                 // outcome, fault, idle_close_s or horizon_s
};

// Throws CaseInferenceError when the flow does not show what a case needs.
CaseFromCapture infer_case(const Analysis& analysis, std::size_t flow);

// The case file: a header that names the capture and the flow, each inference as a
// comment above the key it set, name = `name` (a case-file slug).
std::string case_file_text(const CaseFromCapture& c, std::string_view name);

}  // namespace kah::evidence
