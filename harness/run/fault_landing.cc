#include "harness/run/fault_landing.h"

#include <fmt/format.h>

namespace kah {

bool fault_must_precede_probes(FaultKind kind) { return fault_info(kind).must_precede_probes; }

std::optional<std::string> fault_landed_late(FaultKind kind, const FaultLanding& landing, double origin_ms,
                                             const model::Prediction& predicted,
                                             std::optional<double> first_probe_seen_ms) {
  if (!fault_must_precede_probes(kind) || predicted.probes.empty()) return std::nullopt;
  const double done = landing.done_ms - origin_ms;
  const double begun = landing.begun_ms - origin_ms;
  const double earliest = predicted.probes.front().window.earliest_ms;
  if (done < earliest) return std::nullopt;                               // in place before any probe could leave
  if (first_probe_seen_ms && *first_probe_seen_ms > done) return std::nullopt;  // the capture shows it was
  const std::string probe =
      first_probe_seen_ms ? fmt::format("the first probe left at {:.1f} ms", *first_probe_seen_ms)
                          : fmt::format("the first probe could leave from {:.1f} ms (no capture shows when it did)",
                                        earliest);
  return fmt::format(
      "harness error, not a kernel or model miss: the fault was applied from {:.1f} ms to {:.1f} ms after t_r, but {}: "
      "the connection met the fault after its idle clock had moved",
      begun, done, probe);
}

}  // namespace kah
