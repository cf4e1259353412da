// A case's fault applied to a real topology: FaultActions (harness/fault/fault.h)
// implemented on the namespaces, sockets and peer process of one case. The table of
// fault kinds says what each kind does; this file only knows how to do each thing.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "harness/case/case.h"
#include "harness/fault/fault.h"
#include "harness/run/endpoints.h"
#include "harness/run/topology.h"
#include "netns/conntrack.h"

namespace kah {

// What a fault may act on besides the topology.
struct FaultTargets {
  std::vector<UniqueFd*> server_sockets;  // a reboot closes them silently (TCP_REPAIR)
  PeerProcess* peer_app = nullptr;        // a freeze stops it
  std::vector<netns::FlowTuple> flows;    // forgetting flows deletes their entries on the router
  std::vector<ServerPort> server_ports;  // the case's: rules on a shared namespace match them
};

class TopologyFaultActions final : public FaultActions {
 public:
  TopologyFaultActions(Topology& topology, FaultTargets& targets) : topology_(topology), targets_(targets) {}

  void nft(Host host, const std::string& ruleset) override;
  void write_sysctl(Host host, const std::string& key, const std::string& value) override;
  void set_link_up(Host host, bool up) override;
  void close_server_sockets_silently() override;
  void freeze_peer_process() override;
  void forget_flows_on_router() override;

 private:
  Topology& topology_;
  FaultTargets& targets_;
};

// Applies the case's fault now. Throws (with context) when it cannot, e.g. a flow
// the router has no conntrack entry for.
void apply_fault(const Fault& fault, Topology& topology, FaultTargets& targets);

// The packet counters of the router's rules and of a fault's rules on the router
// ("router.invalid", "fault.hit", ...), and the client's OutOfWindowIcmps, as
// evidence of what the middlebox did; empty for a pair topology. On lo standing in
// for the router (backend local), the fault's counters only. `server_ports`: the
// case's, which scope its rules there.
std::map<std::string, std::uint64_t> middlebox_counters(const Case& c, const Topology& topology,
                                                       const std::vector<ServerPort>& server_ports);

}  // namespace kah
