// The nftables rule text of a topology: the router's NAT and firewall, and probe
// counters at the client (a fault's own rules are in its row of harness/fault/).
// Pure text generation (unit-tested); netns/nft.h applies it.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "harness/case/case.h"

namespace kah {

// Table that counts keepalive probes inside the client namespace.
inline constexpr const char* kProbeTable = "inet kaharness_probes";
// The router's own configuration (NAT, firewall) inside the router namespace.
inline constexpr const char* kRouterTable = "inet kaharness_router";

// The router as a middlebox, or "" when it only forwards. `client_if`/`server_if` are
// its interfaces towards each side. NAT masquerades what leaves towards the server
// (IPv4 and IPv6: the inet family does NAT66 too); the firewall accepts established
// and related packets, drops invalid ones (no conntrack entry: a mid-stream segment
// the router does not know) and admits new flows from the client side only.
// Counters: "invalid" (dropped as invalid), "refused" (new, not from the client).
std::string router_ruleset(const RouterSpec& router, const std::string& client_if, const std::string& server_if);

// One connection whose keepalive probes are counted.
struct ProbeCounter {
  std::string counter;   // counter name in kProbeTable, e.g. "probes_v4_40001"
  Family family;
  std::uint16_t client_port;
  std::uint16_t server_port;
};

// Counts, per connection (family, client port, server port: one client port number
// can be an IPv4 and an IPv6 connection's, or two connections' to different servers
// in a namespace shared with other cases), the segments a keepalive probe is made of: a pure ACK
// (no SYN/FIN/RST/PSH) without payload. Applied once the connections are idle, so
// nothing else the client sends matches.
// `table`: kProbeTable in a namespace of the case's own, else the table the local
// backend shares among cases, made with `flags owner` (`owned`), in which every name
// the ruleset declares (counters, map, chain) starts with `names` (RuleScope::names).
std::string probe_counter_ruleset(const std::vector<ProbeCounter>& counters, const std::string& table = kProbeTable,
                                  bool owned = false, const std::string& names = "");

std::string probe_counter_name(Family family, std::uint16_t client_port);

// The family as nft's `meta nfproto` names it: "ipv4" or "ipv6".
const char* nfproto_name(Family family);

}  // namespace kah
