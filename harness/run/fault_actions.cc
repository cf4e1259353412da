#include "harness/run/fault_actions.h"

#include <fmt/format.h>

#include <stdexcept>

#include "harness/run/nft_rules.h"
#include "netns/nft.h"

namespace kah {

void TopologyFaultActions::nft(Host host, const std::string& ruleset) { topology_.nft(host, ruleset); }

void TopologyFaultActions::write_sysctl(Host host, const std::string& key, const std::string& value) {
  topology_.ns(host).write_sysctl(key, value);
}

void TopologyFaultActions::set_link_up(Host host, bool up) { topology_.set_link_up(host, up); }

void TopologyFaultActions::close_server_sockets_silently() {
  for (UniqueFd* socket : targets_.server_sockets) close_silently(std::move(*socket));
}

void TopologyFaultActions::freeze_peer_process() {
  if (targets_.peer_app == nullptr) throw std::logic_error("a peer freeze without a peer process");
  targets_.peer_app->freeze();
}

void TopologyFaultActions::forget_flows_on_router() {
  const auto& router = topology_.ns(Host::router);
  for (const auto& flow : targets_.flows) {
    if (!netns::delete_conntrack(router, flow))
      throw std::runtime_error(fmt::format("the router has no conntrack entry for [{}]:{} -> [{}]:{} (does it track "
                                           "the flow?)",
                                           flow.source, flow.source_port, flow.destination, flow.destination_port));
  }
}

void apply_fault(const Fault& fault, Topology& topology, FaultTargets& targets) {
  TopologyFaultActions actions(topology, targets);
  apply_fault(fault, topology.rule_scope(targets.server_ports), actions);
}

std::map<std::string, std::uint64_t> middlebox_counters(const Case& c, const Topology& topology,
                                                       const std::vector<ServerPort>& server_ports) {
  std::map<std::string, std::uint64_t> out;
  if (c.topology != TopologyKind::routed) return out;
  const RuleScope scope = topology.rule_scope(server_ports);
  const FaultKindInfo& row = fault_info(c.faults.front().kind);
  if (row.acts_on == Host::router && row.rules != nullptr)
    for (const auto& [name, packets] : topology.nft_counters(Host::router, scope.table)) out["fault." + name] = packets;
  // On lo (no router) there is no router firewall, and the client's namespace-wide
  // netstat counts every program's ICMP errors, not the case's.
  if (scope.loopback) return out;
  if (c.router.firewall)
    for (const auto& [name, packets] : netns::nft_counters(topology.ns(Host::router), kRouterTable))
      out["router." + name] = packets;
  // How the client's kernel took ICMP errors: those for keepalive probes are out of window.
  if (row.path == PathModel::icmp_errors) {
    const auto netstat = topology.ns(Host::client).netstat();
    if (auto it = netstat.find("TcpExt.OutOfWindowIcmps"); it != netstat.end())
      out["client.OutOfWindowIcmps"] = it->second;
  }
  return out;
}

}  // namespace kah
