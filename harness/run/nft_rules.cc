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

const char* nfproto_name(Family family) { return family == Family::ipv4 ? "ipv4" : "ipv6"; }

std::string probe_counter_name(Family family, std::uint16_t client_port) {
  return fmt::format("probes_{}_{}", family == Family::ipv4 ? "v4" : "v6", client_port);
}

std::string probe_counter_ruleset(const std::vector<ProbeCounter>& counters, const std::string& table, bool owned,
                                  const std::string& names) {
  // A pure ACK carries no payload exactly when the IP payload is the TCP header
  // alone: IPv4 total length = 20 + 4*doff (Linux sends no IP options), IPv6
  // payload length = 4*doff. Linux's pure ACKs have doff 5, or 8 with timestamps.
  // One lookup per packet (connection -> named counter) instead of a rule per
  // connection: with hundreds of connections a linear rule list delays every probe
  // the timer softirq sends.
  std::string text = table_header(table, owned);
  for (const auto& c : counters) text += fmt::format("  counter {}{} {{ }}\n", names, c.counter);
  const std::string map = names + "probe_counter";
  text += fmt::format("  map {} {{\n    type nf_proto . inet_service . inet_service : counter;\n", map);
  if (!counters.empty()) {
    text += "    elements = { ";
    for (std::size_t i = 0; i < counters.size(); ++i) {
      const auto& k = counters[i];
      text += fmt::format("{}{} . {} . {} : \"{}{}\"", i == 0 ? "" : ", ", nfproto_name(k.family), k.client_port,
                          k.server_port, names, k.counter);
    }
    text += " }\n";
  }
  // Its own chain name: under the local backend a fault's chains share the table.
  text += fmt::format("  }}\n  chain {}probes {{\n    type filter hook output priority filter; policy accept;\n", names);
  const std::string lookup = fmt::format("counter name meta nfproto . tcp sport . tcp dport map @{}", map);
  for (int doff : {5, 8}) {
    text += fmt::format("    tcp flags & (fin|syn|rst|psh) == 0 tcp doff {} ip length {} {}\n", doff, 20 + 4 * doff, lookup);
    text += fmt::format("    tcp flags & (fin|syn|rst|psh) == 0 tcp doff {} ip6 length {} {}\n", doff, 4 * doff, lookup);
  }
  return text + "  }\n}\n";
}

}  // namespace kah
