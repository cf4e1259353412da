#include "harness/run/topology.h"

#include <fmt/format.h>

#include <stdexcept>

#include "netns/nft.h"
#include "harness/run/local_topology.h"
#include "harness/run/nft_rules.h"
#include "netns/link.h"

namespace kah {

namespace {

struct HostPlan {
  Host host;
  const char* ifname;
  const char* ipv4;
  const char* ipv6;
};

// Both ends of every case use the same addresses: each case has namespaces of its own.
constexpr HostPlan kClient{Host::client, "veth-c", "198.18.0.1", "fd6b:6168:7265::1"};
constexpr HostPlan kServer{Host::server, "veth-s", "198.18.0.2", "fd6b:6168:7265::2"};

// Settings every test namespace gets before a case's own sysctls: no DAD delay for
// IPv6, and no router solicitations or autoconfiguration (nothing to talk to).
const std::map<std::string, std::string> kBaseSysctls{
    {"net.ipv6.conf.all.accept_dad", "0"},
    {"net.ipv6.conf.default.accept_dad", "0"},
    {"net.ipv6.conf.default.accept_ra", "0"},
    {"net.ipv6.conf.default.router_solicitations", "0"},
    // An unplugged link (link-down fault) must keep its IPv6 addresses, as IPv4 does,
    // so the peer is unreachable for the same reason in both families.
    {"net.ipv6.conf.all.keep_addr_on_down", "1"},
    {"net.ipv6.conf.default.keep_addr_on_down", "1"},
};

// The base settings, then the case's own for this host.
void configure(const netns::Namespace& n, Host host, const HostSysctls& sysctls) {
  for (const auto& [key, value] : kBaseSysctls) n.write_sysctl(key, value);
  if (auto it = sysctls.find(to_string(host)); it != sysctls.end())
    for (const auto& [key, value] : it->second) n.write_sysctl(key, value);
}

std::string keep_one(netns::Namespace& n, const std::string& prefix, Host host) {
  const auto name = fmt::format("{}-{}", prefix, to_string(host));
  n.pin(name);
  n.release_pin();
  return name;
}

[[noreturn]] void no_such_host(const char* topology, Host host, const char* what) {
  throw std::logic_error(fmt::format("the {} topology has no {} for host {}", topology, what, to_string(host)));
}

class PairTopology final : public Topology {
 public:
  PairTopology(const std::string& label, const HostSysctls& sysctls)
      : client_(netns::Namespace::create(label + "/client")),
        server_(netns::Namespace::create(label + "/server")) {
    for (const auto* plan : {&kClient, &kServer}) configure(ns(plan->host), plan->host, sysctls);
    // Links up before addresses: IPv6 routes added to a down link (the multicast route
    // neighbour discovery needs among them) stay unusable until the link is ready,
    // which costs the first IPv6 connection one to two seconds.
    netns::create_veth_pair(client_, kClient.ifname, server_, kServer.ifname);
    for (const auto* plan : {&kClient, &kServer}) netns::set_link_up(ns(plan->host), plan->ifname, true);
    for (const auto* plan : {&kClient, &kServer}) {
      const auto& n = ns(plan->host);
      netns::add_address(n, plan->ifname, {plan->ipv4, 24});
      netns::add_address(n, plan->ifname, {plan->ipv6, 64});
    }
  }

  const netns::Namespace& ns(Host host) const override {
    switch (host) {
      case Host::client: return client_;
      case Host::server: return server_;
      case Host::router: break;
    }
    no_such_host("pair", host, "namespace");
  }

  std::string address(Host host, Family family) const override {
    if (host == Host::router) no_such_host("pair", host, "address");
    const auto& plan = host == Host::client ? kClient : kServer;
    return family == Family::ipv4 ? plan.ipv4 : plan.ipv6;
  }

  std::string interface(Host host) const override {
    if (host == Host::router) no_such_host("pair", host, "link");
    return host == Host::client ? kClient.ifname : kServer.ifname;
  }

  void set_link_up(Host host, bool up) override {
    if (host == Host::router) no_such_host("pair", host, "link");
    const auto& plan = host == Host::client ? kClient : kServer;
    netns::set_link_up(ns(host), plan.ifname, up);
  }

  std::vector<std::string> keep(const std::string& prefix) override {
    return {keep_one(client_, prefix, Host::client), keep_one(server_, prefix, Host::server)};
  }

 private:
  netns::Namespace client_;
  netns::Namespace server_;
};

// One end of a routed link: a host's interface and addresses, and where the router is.
struct RoutedSide {
  Host host;
  const char* ifname;
  const char* router_ifname;
  netns::IpPrefix ipv4, router_ipv4;
  netns::IpPrefix ipv6, router_ipv6;
  // The other side's prefixes, routed via this side's router address.
  netns::IpPrefix far_ipv4, far_ipv6;
};

const RoutedSide kRoutedClient{Host::client,
                               "veth-c",
                               kRouterClientSide,
                               {"198.18.1.1", 24},
                               {"198.18.1.254", 24},
                               {"fd6b:6168:7265:1::1", 64},
                               {"fd6b:6168:7265:1::fe", 64},
                               {"198.18.2.0", 24},
                               {"fd6b:6168:7265:2::", 64}};
const RoutedSide kRoutedServer{Host::server,
                               "veth-s",
                               kRouterServerSide,
                               {"198.18.2.1", 24},
                               {"198.18.2.254", 24},
                               {"fd6b:6168:7265:2::1", 64},
                               {"fd6b:6168:7265:2::fe", 64},
                               {"198.18.1.0", 24},
                               {"fd6b:6168:7265:1::", 64}};

// Forwarding, and the conntrack settings the case gives; all per namespace.
std::map<std::string, std::string> router_sysctls(const RouterSpec& r) {
  std::map<std::string, std::string> out{
      {"net.ipv4.ip_forward", "1"},
      // Also sets default.forwarding, so the interfaces made afterwards forward too.
      {"net.ipv6.conf.all.forwarding", "1"},
  };
  if (r.conntrack_loose) out["net.netfilter.nf_conntrack_tcp_loose"] = std::to_string(*r.conntrack_loose ? 1 : 0);
  if (r.established_timeout_s)
    out["net.netfilter.nf_conntrack_tcp_timeout_established"] = std::to_string(*r.established_timeout_s);
  return out;
}

class RoutedTopology final : public Topology {
 public:
  RoutedTopology(const std::string& label, const HostSysctls& sysctls, const RouterSpec& spec)
      : client_(netns::Namespace::create(label + "/client")),
        router_(netns::Namespace::create(label + "/router")),
        server_(netns::Namespace::create(label + "/server")) {
    for (Host h : {Host::client, Host::router, Host::server}) configure(ns(h), h, sysctls);
    for (const auto& [key, value] : router_sysctls(spec)) router_.write_sysctl(key, value);
    // The middlebox is in place before anything crosses it: conntrack and NAT must see
    // each connection's SYN, as a real one does.
    const std::string rules = router_ruleset(spec, kRouterClientSide, kRouterServerSide);
    if (!rules.empty()) netns::nft_apply(router_, rules);

    for (const RoutedSide* side : {&kRoutedClient, &kRoutedServer}) {
      const auto& host = ns(side->host);
      netns::create_veth_pair(host, side->ifname, router_, side->router_ifname);
      netns::set_link_up(host, side->ifname, true);
      netns::set_link_up(router_, side->router_ifname, true);
    }
    for (const RoutedSide* side : {&kRoutedClient, &kRoutedServer}) {
      const auto& host = ns(side->host);
      netns::add_address(host, side->ifname, side->ipv4);
      netns::add_address(host, side->ifname, side->ipv6);
      netns::add_address(router_, side->router_ifname, side->router_ipv4);
      netns::add_address(router_, side->router_ifname, side->router_ipv6);
    }
    for (const RoutedSide* side : {&kRoutedClient, &kRoutedServer}) {
      netns::add_route(ns(side->host), side->far_ipv4, side->router_ipv4.address);
      netns::add_route(ns(side->host), side->far_ipv6, side->router_ipv6.address);
    }
  }

  const netns::Namespace& ns(Host host) const override {
    switch (host) {
      case Host::client: return client_;
      case Host::server: return server_;
      case Host::router: return router_;
    }
    no_such_host("routed", host, "namespace");
  }

  std::string address(Host host, Family family) const override {
    if (host == Host::router) no_such_host("routed", host, "single address");
    const auto& side = host == Host::client ? kRoutedClient : kRoutedServer;
    return family == Family::ipv4 ? side.ipv4.address : side.ipv6.address;
  }

  std::string interface(Host host) const override {
    if (host == Host::router) no_such_host("routed", host, "single link");
    return (host == Host::client ? kRoutedClient : kRoutedServer).ifname;
  }

  void set_link_up(Host host, bool up) override {
    if (host == Host::router) no_such_host("routed", host, "single link");
    const auto& side = host == Host::client ? kRoutedClient : kRoutedServer;
    netns::set_link_up(ns(host), side.ifname, up);
  }

  std::vector<std::string> keep(const std::string& prefix) override {
    return {keep_one(client_, prefix, Host::client), keep_one(router_, prefix, Host::router),
            keep_one(server_, prefix, Host::server)};
  }

 private:
  netns::Namespace client_;
  netns::Namespace router_;
  netns::Namespace server_;
};

}  // namespace

void Topology::nft(Host host, const std::string& ruleset) { netns::nft_apply(ns(host), ruleset); }

std::map<std::string, std::uint64_t> Topology::nft_counters(Host host, const std::string& family_and_table) const {
  return netns::nft_counters(ns(host), family_and_table);
}

RuleScope Topology::rule_scope(const std::vector<ServerPort>&) const {
  return own_namespace_scope(kRouterClientSide);
}

std::string Topology::probe_table() const { return kProbeTable; }

std::unique_ptr<Topology> build_pair_topology(const std::string& label, const HostSysctls& sysctls) {
  return std::make_unique<PairTopology>(label, sysctls);
}

std::unique_ptr<Topology> build_routed_topology(const std::string& label, const HostSysctls& sysctls,
                                                const RouterSpec& router) {
  return std::make_unique<RoutedTopology>(label, sysctls, router);
}

std::unique_ptr<Topology> build_topology(const Case& c, Backend backend) {
  if (backend == Backend::local) return build_local_topology(c);
  switch (c.topology) {
    case TopologyKind::pair: return build_pair_topology(c.name, c.sysctls);
    case TopologyKind::routed: return build_routed_topology(c.name, c.sysctls, c.router);
  }
  throw std::logic_error("unknown topology");
}

}  // namespace kah
