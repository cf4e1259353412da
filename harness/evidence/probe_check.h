// Probe-by-probe checking: each keepalive probe the model expects, matched by its
// position to the probe the capture shows, and judged against the model's window for
// it. The outcome verdict (judge.h) says whether the connection ended when it should;
// this says which probe went wrong when it did not, as packetdrill does for each event.
//
// Pure. Times in ProbeCheck are ms from the origin (the tested side's last received
// segment, t_r = 0 in model/timing.h); the observed flow holds capture times.
#pragma once

#include <limits>
#include <optional>
#include <string>
#include <vector>

#include "harness/evidence/classify.h"
#include "harness/model/timing.h"

namespace kah::evidence {

enum class ProbeVerdict {
  ok,       // inside its window, or an uncertain probe that was not sent
  early,    // before its window
  late,     // after its window
  missing,  // expected, not in the capture
  extra,    // in the capture, not expected
};
std::string to_string(ProbeVerdict v);

struct ProbeCheck {
  int index = 0;                          // 0-based, as model::ProbeWindow::index
  ProbeVerdict verdict = ProbeVerdict::ok;
  std::optional<model::Window> expected;  // none for an extra probe
  bool certain = true;                    // the model's ProbeWindow::certain
  std::optional<double> seen_ms;          // none for a missing probe
  ProbeAnswer answer = ProbeAnswer::none; // how the seen probe was answered
  // "probe 2 late: expected within [3004.0, 3260.0] ms, seen at 3402.5 ms" (probes
  // numbered from 1, as people count them).
  std::string message;
  // Which clock judged it: "capture" (the probe's capture stamp) or "kernel-trace" (the
  // tick boundary of the wheel bucket the keepalive timer ran for: kernel_timing.h).
  std::string timed_by = "capture";
  std::optional<double> bucket_ms;        // kernel-trace: that boundary, from the origin
  std::optional<double> softirq_late_ms;  // kernel-trace: the callback's start minus the boundary
};

// Checks the probes `observed.prober` sent at or after origin_ms (a capture time)
// against predicted.probes. With no prober in the flow, every expected probe is missing.
// `until_ms` (a capture time) is when observing the connection stopped: probes seen
// after it are not counted, and an expected probe whose window does not end before it
// cannot be called missing (it may leave just after the capture stopped).
std::vector<ProbeCheck> check_probes(const FlowAnalysis& observed, const model::Prediction& predicted, double origin_ms,
                                     double until_ms = std::numeric_limits<double>::infinity());

// True when no check is early, late, missing or extra.
bool all_ok(const std::vector<ProbeCheck>& checks);

// "within [3004.0, 3260.0] ms", or "after 3004.0 ms" for a window without an end.
std::string window_text(const model::Window& w);

}  // namespace kah::evidence
