// The nftables rule text kaharness applies: faults at the server, probe counters at
// the client. Pure text generation (unit-tested); nft.h applies it.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "harness/case.h"

namespace kah {

// Table (family and name) that holds a fault's rules inside the server namespace.
inline constexpr const char* kFaultTable = "inet kaharness_fault";
// Table that counts keepalive probes inside the client namespace.
inline constexpr const char* kProbeTable = "inet kaharness_probes";

// The firewall half of a fault, applied in the server namespace, or "" when the
// fault is not a firewall rule (none, link-down, peer-reboot, peer-freeze).
// Neighbour discovery stays allowed so IPv6 behaves like IPv4 (ARP is not in the
// inet family): the peer is gone at the IP layer, the link itself stays up.
std::string fault_ruleset(FaultKind kind);

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
