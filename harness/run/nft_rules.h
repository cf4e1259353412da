// The nftables rule text kaharness applies: faults at the server or the router, the
// router's NAT and firewall, probe counters at the client. Pure text generation
// (unit-tested); nft.h applies it.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "harness/case/case.h"

namespace kah {

// Table (family and name) that holds a fault's rules inside the server namespace.
inline constexpr const char* kFaultTable = "inet kaharness_fault";
// Table that counts keepalive probes inside the client namespace.
inline constexpr const char* kProbeTable = "inet kaharness_probes";
// The router's own configuration (NAT, firewall) inside the router namespace.
inline constexpr const char* kRouterTable = "inet kaharness_router";

// The firewall half of a fault, applied in the server namespace, or "" when the
// fault is not a firewall rule (none, link-down, peer-reboot, peer-freeze).
// Neighbour discovery stays allowed so IPv6 behaves like IPv4 (ARP is not in the
// inet family): the peer is gone at the IP layer, the link itself stays up.
std::string fault_ruleset(FaultKind kind);

// The router as a middlebox, or "" when it only forwards. `client_if`/`server_if` are
// its interfaces towards each side. NAT masquerades what leaves towards the server
// (IPv4 and IPv6: the inet family does NAT66 too); the firewall accepts established
// and related packets, drops invalid ones (no conntrack entry: a mid-stream segment
// the router does not know) and admits new flows from the client side only.
// Counters: "invalid" (dropped as invalid), "refused" (new, not from the client).
std::string router_ruleset(const RouterSpec& router, const std::string& client_if, const std::string& server_if);

// The router half of a middlebox fault, or "" when the fault is no rule
// (conntrack-expire acts through conntrack, conntrack-timeout does nothing, and the
// other kinds are not router faults). Applied in the router namespace in its own
// table, at a priority ahead of the router's firewall, so it decides first:
//  reject-rst   TCP from the client side is answered with a TCP reset;
//  reject-icmp  TCP from the client side is answered with ICMP host unreachable
//               (ICMPv6 address unreachable);
//  loss         TCP in both directions is dropped with `probability`, each packet on
//               its own draw (nft numgen random): a probe round trip then survives
//               with (1 - p)^2.
// Counter: "hit" (packets rejected or dropped).
std::string router_fault_ruleset(const FaultSpec& fault, const std::string& client_if);

// numgen range used for loss: a probability is applied as K out of this many.
inline constexpr std::uint32_t kLossScale = 1000000;
// K for probability p (rounded to the nearest 1 / kLossScale).
std::uint32_t loss_threshold(double probability);

// One connection whose keepalive probes are counted.
struct ProbeCounter {
  std::string counter;   // counter name in kProbeTable, e.g. "probes_40001"
  Family family;
  std::uint16_t client_port;
};

// Counts, per client port, the segments a keepalive probe is made of: a pure ACK
// (no SYN/FIN/RST/PSH) without payload. Applied once the connections are idle, so
// nothing else the client sends matches.
std::string probe_counter_ruleset(const std::vector<ProbeCounter>& counters);

std::string probe_counter_name(std::uint16_t client_port);

}  // namespace kah
