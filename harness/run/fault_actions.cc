#include "harness/run/fault_actions.h"

#include <fmt/format.h>

#include <stdexcept>

#include "netns/nft.h"
#include "harness/run/nft_rules.h"

namespace kah {
namespace {

void expire_flows(const netns::Namespace& router, const std::vector<netns::FlowTuple>& flows) {
  for (const auto& flow : flows) {
    if (!netns::delete_conntrack(router, flow))
      throw std::runtime_error(fmt::format(
          "conntrack-expire: the router has no entry for [{}]:{} -> [{}]:{} (does it track the flow?)", flow.source,
          flow.source_port, flow.destination, flow.destination_port));
  }
}

}  // namespace

void apply_fault(const FaultSpec& fault, Topology& topology, FaultTargets& targets) {
  switch (fault.kind) {
    case FaultKind::none: return;
    case FaultKind::blackhole:
    case FaultKind::drop_to_client:
    case FaultKind::drop_to_server:
      netns::nft_apply(topology.ns(Host::server), fault_ruleset(fault.kind));
      return;
    case FaultKind::link_down: topology.set_link_up(Host::server, false); return;
    case FaultKind::peer_reboot:
      for (UniqueFd* socket : targets.server_sockets) close_silently(std::move(*socket));
      return;
    case FaultKind::peer_freeze:
      if (targets.peer_app == nullptr) throw std::logic_error("peer-freeze without a peer process");
      targets.peer_app->freeze();
      return;
    case FaultKind::conntrack_expire: expire_flows(topology.ns(Host::router), targets.flows); return;
    case FaultKind::conntrack_timeout: return;  // the router's own timeout does it
    case FaultKind::reject_icmp:
      // Every rejected segment gets its ICMP error: with the kernel's default rate
      // limit (1/s after a burst of 6 per destination) which retransmissions are
      // answered, and so (IPv4, RFC 6069) how the RTO backs off, would depend on timing.
      topology.ns(Host::router).write_sysctl("net.ipv4.icmp_ratelimit", "0");
      topology.ns(Host::router).write_sysctl("net.ipv6.icmp.ratelimit", "0");
      netns::nft_apply(topology.ns(Host::router), router_fault_ruleset(fault, kRouterClientSide));
      return;
    case FaultKind::reject_rst:
    case FaultKind::loss: netns::nft_apply(topology.ns(Host::router), router_fault_ruleset(fault, kRouterClientSide)); return;
  }
}

std::map<std::string, std::uint64_t> middlebox_counters(const Case& c, const Topology& topology) {
  std::map<std::string, std::uint64_t> out;
  if (c.topology != TopologyKind::routed) return out;
  const auto& router = topology.ns(Host::router);
  if (c.router.firewall)
    for (const auto& [name, packets] : netns::nft_counters(router, kRouterTable)) out["router." + name] = packets;
  const bool fault_table = !c.faults.empty() && !router_fault_ruleset(c.faults.front(), kRouterClientSide).empty();
  if (fault_table)
    for (const auto& [name, packets] : netns::nft_counters(router, kFaultTable)) out["fault." + name] = packets;
  // How the client's kernel took ICMP errors: those for keepalive probes are out of window.
  if (c.faults.front().kind == FaultKind::reject_icmp) {
    const auto netstat = topology.ns(Host::client).netstat();
    if (auto it = netstat.find("TcpExt.OutOfWindowIcmps"); it != netstat.end())
      out["client.OutOfWindowIcmps"] = it->second;
  }
  return out;
}

}  // namespace kah
