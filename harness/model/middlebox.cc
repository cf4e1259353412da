#include "harness/model/middlebox.h"

#include <fmt/format.h>

#include <algorithm>

namespace kah::model {

StateLoss after_state_loss(const Router& r) {
  if (r.loose)
    return {PeerBehaviour::answers,
            fmt::format("nf_conntrack_tcp_loose = 1: the router picks the flow up again from its next mid-stream "
                        "segment{}, so the peer's answers come back",
                        r.nat ? " and maps it to the same source port (it is free again)" : "")};
  if (r.firewall)
    return {PeerBehaviour::silent,
            "nf_conntrack_tcp_loose = 0: a segment without SYN starts no entry; conntrack calls it INVALID and the "
            "firewall drops it (ct state invalid drop), and every segment after it"};
  if (r.nat)
    return {PeerBehaviour::rebooted,
            "nf_conntrack_tcp_loose = 0 and no firewall: the INVALID segment is forwarded untranslated, from the "
            "client's own address; the server knows no such connection and answers with an RST carrying the "
            "client's rcv_nxt, which the client accepts"};
  return {PeerBehaviour::answers,
          "nf_conntrack_tcp_loose = 0, but nothing translates or drops the untracked segments: they pass unchanged"};
}

ConntrackFate conntrack_fate(const std::vector<Window>& crossings, double timeout_ms, double tick_ms) {
  for (std::size_t k = 1; k < crossings.size(); ++k) {
    const Window& before = crossings[k - 1];
    const Window& next = crossings[k];
    const double shortest = std::max(0.0, next.earliest_ms - before.latest_ms);
    const double longest = next.latest_ms - before.earliest_ms;
    if (shortest > timeout_ms + tick_ms)
      return {EntryFate::expired, static_cast<int>(k),
              fmt::format("the gap before segment {} is at least {:.1f} ms, longer than the {:.0f} ms timeout: the "
                          "entry has expired when it arrives",
                          k, shortest, timeout_ms)};
    if (longest >= timeout_ms - tick_ms)
      return {EntryFate::undecided, static_cast<int>(k),
              fmt::format("the gap before segment {} is {:.1f} .. {:.1f} ms, too close to the {:.0f} ms timeout to "
                          "tell whether the entry survives it",
                          k, shortest, longest, timeout_ms)};
  }
  return {EntryFate::kept, -1,
          fmt::format("every gap between the flow's segments is shorter than the {:.0f} ms timeout: each one "
                      "refreshes the entry in time",
                      timeout_ms)};
}

}  // namespace kah::model
