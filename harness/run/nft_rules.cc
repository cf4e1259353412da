#include "harness/run/nft_rules.h"

#include <fmt/format.h>

#include "harness/fault/fault.h"

namespace kah {
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

std::string probe_counter_name(std::uint16_t client_port) {
  return fmt::format("probes_{}", client_port);
}

std::string probe_counter_ruleset(const std::vector<ProbeCounter>& counters, const std::string& table, bool owned,
                                  const std::string& names) {
  // A pure ACK carries no payload exactly when the IP payload is the TCP header
  // alone: IPv4 total length = 20 + 4*doff (Linux sends no IP options), IPv6
  // payload length = 4*doff. Linux's pure ACKs have doff 5, or 8 with timestamps.
  // One lookup per packet (client port -> named counter) instead of a rule per
  // connection: with hundreds of connections a linear rule list delays every probe
  // the timer softirq sends.
  std::string text = table_header(table, owned);
  for (const auto& c : counters) text += fmt::format("  counter {}{} {{ }}\n", names, c.counter);
  const std::string map = names + "probe_counter";
  text += fmt::format("  map {} {{\n    type inet_service : counter;\n", map);
  if (!counters.empty()) {
    text += "    elements = { ";
    for (std::size_t i = 0; i < counters.size(); ++i)
      text += fmt::format("{}{} : \"{}{}\"", i == 0 ? "" : ", ", counters[i].client_port, names, counters[i].counter);
    text += " }\n";
  }
  // Its own chain name: under the local backend a fault's chains share the table.
  text += fmt::format("  }}\n  chain {}probes {{\n    type filter hook output priority filter; policy accept;\n", names);
  for (int doff : {5, 8}) {
    text += fmt::format(
        "    tcp flags & (fin|syn|rst|psh) == 0 tcp doff {} ip length {} counter name tcp sport map @{}\n",
        doff, 20 + 4 * doff, map);
    text += fmt::format(
        "    tcp flags & (fin|syn|rst|psh) == 0 tcp doff {} ip6 length {} counter name tcp sport map @{}\n",
        doff, 4 * doff, map);
  }
  return text + "  }\n}\n";
}

}  // namespace kah
