#include "harness/topology.h"

#include <fmt/format.h>

#include "netns/link.h"

namespace kah {

std::string to_string(Host h) {
  switch (h) {
    case Host::client: return "client";
    case Host::server: return "server";
  }
  return "?";
}

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

class PairTopology final : public Topology {
 public:
  PairTopology(const std::string& label, const HostSysctls& sysctls)
      : client_(netns::Namespace::create(label + "/client")),
        server_(netns::Namespace::create(label + "/server")) {
    for (const auto* plan : {&kClient, &kServer}) {
      const auto& n = ns(plan->host);
      for (const auto& [key, value] : kBaseSysctls) n.write_sysctl(key, value);
      if (auto it = sysctls.find(to_string(plan->host)); it != sysctls.end())
        for (const auto& [key, value] : it->second) n.write_sysctl(key, value);
    }
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
    return host == Host::client ? client_ : server_;
  }

  std::string address(Host host, Family family) const override {
    const auto& plan = host == Host::client ? kClient : kServer;
    return family == Family::ipv4 ? plan.ipv4 : plan.ipv6;
  }

  std::string interface(Host host) const override {
    return host == Host::client ? kClient.ifname : kServer.ifname;
  }

  void set_link_up(Host host, bool up) override {
    const auto& plan = host == Host::client ? kClient : kServer;
    netns::set_link_up(ns(host), plan.ifname, up);
  }

  std::vector<std::string> keep(const std::string& prefix) override {
    std::vector<std::string> names;
    for (auto* n : {&client_, &server_}) {
      const auto name = fmt::format("{}-{}", prefix, n == &client_ ? "client" : "server");
      n->pin(name);
      n->release_pin();
      names.push_back(name);
    }
    return names;
  }

 private:
  netns::Namespace client_;
  netns::Namespace server_;
};

}  // namespace

std::unique_ptr<Topology> build_pair_topology(const std::string& label, const HostSysctls& sysctls) {
  return std::make_unique<PairTopology>(label, sysctls);
}

}  // namespace kah
