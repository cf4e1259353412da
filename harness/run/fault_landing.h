// Did the fault land before the connection could notice it was missing? A fault applied
// after the first keepalive probe left (and was answered) does not test what the model
// predicts: the answer moves the connection's idle clock, so a rebooted peer resets it a
// probe later and a silent one sees one probe more. That is the harness's failure to
// set the scene, not a kernel or model miss: the connection is reported as an error,
// with the instants measured.
#pragma once

#include <optional>
#include <string>

#include "harness/fault/fault.h"
#include "harness/model/timing.h"

namespace kah {

// When the fault was applied, in CLOCK_MONOTONIC ms: just before apply_fault() began,
// and just after it returned (the nft commit acknowledged, the sockets closed in repair
// mode, the link down): it is in effect from `done_ms` on at the latest.
struct FaultLanding {
  double begun_ms = 0;
  double done_ms = 0;
};

// Faults whose timing relative to the first probe decides the outcome.
bool fault_must_precede_probes(FaultKind kind);

// For an idle keepalive connection with origin (t_r) at `origin_ms` (monotonic): an
// error text when the fault may have landed after its first probe left, else nullopt.
// `first_probe_seen_ms`: the first probe after t_r in the capture (ms from t_r), if any;
// a probe seen after the fault was done proves it was in place in time.
std::optional<std::string> fault_landed_late(FaultKind kind, const FaultLanding& landing, double origin_ms,
                                             const model::Prediction& predicted,
                                             std::optional<double> first_probe_seen_ms);

}  // namespace kah
