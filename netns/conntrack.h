// Connection tracking inside a namespace, through libnl-nf (ctnetlink). A router
// namespace that does NAT or stateful filtering keeps one entry per flow; deleting
// it is how a middlebox "forgets" a connection (an expired NAT mapping, a rebooted
// firewall) without waiting for its timeout.
//
// Threading: each call opens its own NETLINK_NETFILTER socket on a thread inside the
// namespace (Namespace::run), as for the rest of netns/; nothing is shared.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "netns/namespace.h"

namespace kah::netns {

// One direction of a TCP flow, as conntrack keys it.
struct FlowTuple {
  std::string source;  // textual address, IPv4 or IPv6
  std::uint16_t source_port = 0;
  std::string destination;
  std::uint16_t destination_port = 0;
  bool operator==(const FlowTuple&) const = default;
};

struct ConntrackEntry {
  FlowTuple original;  // as the first packet went
  FlowTuple reply;     // as the answers come back (differs from original under NAT)
  int tcp_state = 0;   // TCP_CONNTRACK_* (3 = ESTABLISHED)
  std::uint32_t timeout_s = 0;  // seconds left
};

// Deletes the TCP entry whose original tuple is `flow` in `ns`; false when there was
// none (already expired, or never tracked).
bool delete_conntrack(const Namespace& ns, const FlowTuple& flow);

// Every TCP entry of `ns` (for tests and inspection).
std::vector<ConntrackEntry> list_conntrack(const Namespace& ns);

}  // namespace kah::netns
