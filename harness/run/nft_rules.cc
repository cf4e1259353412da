#include "harness/run/nft_rules.h"

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
    case FaultKind::peer_freeze:
    case FaultKind::conntrack_expire:
    case FaultKind::conntrack_timeout:
    case FaultKind::reject_rst:
    case FaultKind::reject_icmp:
    case FaultKind::loss: return "";
  }
  return "";
}

std::string router_ruleset(const RouterSpec& router, const std::string& client_if, const std::string& server_if) {
  if (!router.nat && !router.firewall) return "";
  std::string text = fmt::format("table {} {{\n", kRouterTable);
  if (router.firewall) {
    text += fmt::format(
        "  counter invalid {{ }}\n"
        "  counter refused {{ }}\n"
        "  chain forward {{\n"
        "    type filter hook forward priority filter; policy accept;\n"
        "    ct state established,related accept\n"
        "    ct state invalid counter name \"invalid\" drop\n"
        "    iifname \"{0}\" oifname \"{1}\" ct state new accept\n"
        "    counter name \"refused\" drop\n"
        "  }}\n",
        client_if, server_if);
  }
  if (router.nat) {
    text += fmt::format(
        "  chain postrouting {{\n"
        "    type nat hook postrouting priority srcnat; policy accept;\n"
        "    oifname \"{}\" masquerade\n"
        "  }}\n",
        server_if);
  }
  return text + "}\n";
}

std::uint32_t loss_threshold(double probability) {
  const double k = probability * kLossScale + 0.5;
  if (!(k >= 0)) return 0;
  if (k >= kLossScale) return kLossScale;
  return static_cast<std::uint32_t>(k);
}

std::string router_fault_ruleset(const FaultSpec& fault, const std::string& client_if) {
  std::string rule;
  switch (fault.kind) {
    case FaultKind::reject_rst:
      rule = fmt::format("iifname \"{}\" meta l4proto tcp counter name \"hit\" reject with tcp reset", client_if);
      break;
    case FaultKind::reject_icmp:
      // icmpx: ICMP host-unreachable for IPv4, ICMPv6 address-unreachable for IPv6.
      rule = fmt::format("iifname \"{}\" meta l4proto tcp counter name \"hit\" reject with icmpx type host-unreachable",
                         client_if);
      break;
    case FaultKind::loss:
      rule = fmt::format("meta l4proto tcp numgen random mod {} < {} counter name \"hit\" drop", kLossScale,
                         loss_threshold(fault.probability.value_or(0)));
      break;
    case FaultKind::none:
    case FaultKind::blackhole:
    case FaultKind::drop_to_client:
    case FaultKind::drop_to_server:
    case FaultKind::link_down:
    case FaultKind::peer_reboot:
    case FaultKind::peer_freeze:
    case FaultKind::conntrack_expire:
    case FaultKind::conntrack_timeout: return "";
  }
  return fmt::format(
      "table {} {{\n"
      "  counter hit {{ }}\n"
      "  chain forward {{\n"
      "    type filter hook forward priority filter - 10; policy accept;\n"
      "    {}\n"
      "  }}\n"
      "}}\n",
      kFaultTable, rule);
}

std::string probe_counter_name(std::uint16_t client_port) {
  return fmt::format("probes_{}", client_port);
}

std::string probe_counter_ruleset(const std::vector<ProbeCounter>& counters) {
  // A pure ACK carries no payload exactly when the IP payload is the TCP header
  // alone: IPv4 total length = 20 + 4*doff (Linux sends no IP options), IPv6
  // payload length = 4*doff. Linux's pure ACKs have doff 5, or 8 with timestamps.
  // One lookup per packet (client port -> named counter) instead of a rule per
  // connection: with hundreds of connections a linear rule list delays every probe
  // the timer softirq sends.
  std::string text = fmt::format("table {} {{\n", kProbeTable);
  for (const auto& c : counters) text += fmt::format("  counter {} {{ }}\n", c.counter);
  text += "  map probe_counter {\n    type inet_service : counter;\n";
  if (!counters.empty()) {
    text += "    elements = { ";
    for (std::size_t i = 0; i < counters.size(); ++i)
      text += fmt::format("{}{} : \"{}\"", i == 0 ? "" : ", ", counters[i].client_port, counters[i].counter);
    text += " }\n";
  }
  text += "  }\n  chain output {\n    type filter hook output priority filter; policy accept;\n";
  for (int doff : {5, 8}) {
    text += fmt::format(
        "    tcp flags & (fin|syn|rst|psh) == 0 tcp doff {} ip length {} counter name tcp sport map @probe_counter\n",
        doff, 20 + 4 * doff);
    text += fmt::format(
        "    tcp flags & (fin|syn|rst|psh) == 0 tcp doff {} ip6 length {} counter name tcp sport map @probe_counter\n",
        doff, 4 * doff);
  }
  return text + "  }\n}\n";
}

}  // namespace kah
