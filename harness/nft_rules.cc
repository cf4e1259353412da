#include "harness/nft_rules.h"

#include <fmt/format.h>

namespace kah {
namespace {

constexpr const char* kNeighbourDiscovery =
    "icmpv6 type { nd-neighbor-solicit, nd-neighbor-advert, nd-router-solicit, nd-router-advert } accept";

std::string drop_chain(const char* chain, const char* hook) {
  return fmt::format(
      "  chain {0} {{\n"
      "    type filter hook {1} priority filter; policy accept;\n"
      "    {2}\n"
      "    counter name \"dropped_{0}\" drop\n"
      "  }}\n",
      chain, hook, kNeighbourDiscovery);
}

std::string fault_table(bool drop_input, bool drop_output) {
  std::string text = fmt::format("table {} {{\n", kFaultTable);
  if (drop_input) text += "  counter dropped_input { }\n" + drop_chain("input", "input");
  if (drop_output) text += "  counter dropped_output { }\n" + drop_chain("output", "output");
  return text + "}\n";
}

}  // namespace

std::string fault_ruleset(FaultKind kind) {
  switch (kind) {
    case FaultKind::blackhole: return fault_table(true, true);
    case FaultKind::drop_to_client: return fault_table(false, true);
    case FaultKind::drop_to_server: return fault_table(true, false);
    case FaultKind::none:
    case FaultKind::link_down:
    case FaultKind::peer_reboot:
    case FaultKind::peer_freeze: return "";
  }
  return "";
}

std::string probe_counter_name(std::uint16_t client_port) {
  return fmt::format("probes_{}", client_port);
}

std::string probe_counter_ruleset(const std::vector<ProbeCounter>& counters) {
  // A pure ACK carries no payload exactly when the IP payload is the TCP header
  // alone: IPv4 total length = 20 + 4*doff (Linux sends no IP options), IPv6
  // payload length = 4*doff. Linux's pure ACKs have doff 5, or 8 with timestamps.
  std::string text = fmt::format("table {} {{\n", kProbeTable);
  for (const auto& c : counters) text += fmt::format("  counter {} {{ }}\n", c.counter);
  text += "  chain output {\n    type filter hook output priority filter; policy accept;\n";
  for (const auto& c : counters) {
    for (int doff : {5, 8}) {
      const auto length = c.family == Family::ipv4
                              ? fmt::format("ip length {}", 20 + 4 * doff)
                              : fmt::format("ip6 length {}", 4 * doff);
      text += fmt::format(
          "    tcp sport {} tcp flags & (fin|syn|rst|psh) == 0 tcp doff {} {} counter name \"{}\"\n",
          c.client_port, doff, length, c.counter);
    }
  }
  return text + "  }\n}\n";
}

}  // namespace kah
