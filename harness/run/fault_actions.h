// Faults: what the harness does at the instant of a case's fault, one branch per
// kind (an exhaustive switch: a new kind does not compile until it is handled here).
// Server faults act in the server namespace or on its sockets; middlebox faults on
// the router of a routed topology.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "harness/case/case.h"
#include "harness/run/endpoints.h"
#include "harness/run/topology.h"
#include "netns/conntrack.h"

namespace kah {

// What a fault may act on besides the topology.
struct FaultTargets {
  std::vector<UniqueFd*> server_sockets;  // peer-reboot closes them silently (TCP_REPAIR)
  PeerProcess* peer_app = nullptr;        // peer-freeze stops it
  std::vector<netns::FlowTuple> flows;    // conntrack-expire deletes their entries on the router
};

// Applies `fault` now. Throws (with context) when it cannot, e.g. a flow the router
// has no conntrack entry for.
void apply_fault(const FaultSpec& fault, Topology& topology, FaultTargets& targets);

// The packet counters of the router's rules and of a router fault ("router.invalid",
// "fault.hit", ...), and for reject-icmp the client's OutOfWindowIcmps, as evidence
// of what the middlebox did; empty for a pair topology.
std::map<std::string, std::uint64_t> middlebox_counters(const Case& c, const Topology& topology);

}  // namespace kah
