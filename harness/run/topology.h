// Topology: the hosts a case runs on and the links between them.
//
// The declaration (which hosts, which addresses) is apart from its construction,
// and construction sits behind a small interface so a second backend (loopback in
// the current namespace, for containers without CAP_SYS_ADMIN) can follow.
// Teardown is the reverse of construction and is done by the kernel when the
// namespace descriptors close, so a crash or SIGKILL leaks nothing.
//
// Two shapes: "pair" (client and server on one veth link) and "routed" (client -
// router - server on two links, the router a middlebox: forwarding, and as the case
// asks, NAT, a stateful firewall and conntrack settings).
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "harness/case/case.h"
#include "harness/fault/fault.h"
#include "harness/run/backend.h"
#include "netns/namespace.h"

namespace kah {

// A port the case's server listens on, with its family. On a shared namespace (backend
// local) a port number alone does not name the case's segments: the kernel lets a
// listener on ::1 take the port an IPv4 connection on 127.0.0.1 already uses as its
// source (and the reverse), so two cases running at once can hold the same number in
// different families (measured on 6.18 with two sockets).
struct ServerPort {
  Family family;
  std::uint16_t port;
};

class Topology {
 public:
  virtual ~Topology() = default;
  // Throws std::logic_error for a host the topology does not have (the pair's router).
  virtual const netns::Namespace& ns(Host host) const = 0;
  // The address of the client or server for `family`, without prefix length: the one
  // the other end connects to (the router has one per side and is no endpoint).
  virtual std::string address(Host host, Family family) const = 0;
  // The host's end of its link (where captures are taken).
  virtual std::string interface(Host host) const = 0;
  // Plugs or unplugs the client's or server's end of its link.
  virtual void set_link_up(Host host, bool up) = 0;
  // Pins every namespace at /run/netns/<prefix>-<host> and keeps them (--keep).
  virtual std::vector<std::string> keep(const std::string& prefix) = 0;

  // Firewall rules for `host`, and the named counters of one of its tables. By
  // default in the host's namespace (the case's own); the local topology keeps them
  // in tables of its own (local_topology.h).
  virtual void nft(Host host, const std::string& ruleset);
  virtual std::map<std::string, std::uint64_t> nft_counters(Host host, const std::string& family_and_table) const;
  // Where a fault's rules go and what they match, for a case whose server listens on
  // `server_ports`. By default kFaultTable and everything (the namespace is the case's).
  virtual RuleScope rule_scope(const std::vector<ServerPort>& server_ports) const;
  // The table (family and name) that counts the client's keepalive probes, and whether
  // it is made with `flags owner` (RuleScope::owned).
  virtual std::string probe_table() const;
  virtual bool owns_tables() const { return false; }
  // The prefix of every name the case's rules declare in those tables (RuleScope::names).
  virtual std::string rule_names() const { return ""; }
};

// Per-host sysctls, as in Case::sysctls ("client" / "server").
using HostSysctls = std::map<std::string, std::map<std::string, std::string>>;

// "pair": client and server on one veth link, IPv4 198.18.0.1/.2 and IPv6
// fd6b:6168:7265::1/::2, no default route. `label` names the namespaces in messages.
std::unique_ptr<Topology> build_pair_topology(const std::string& label, const HostSysctls& sysctls);

// The router's interfaces in a routed topology (nft rules match on them).
inline constexpr const char* kRouterClientSide = "r-c";  // towards the client, 198.18.1.254
inline constexpr const char* kRouterServerSide = "r-s";  // towards the server, 198.18.2.254

// "routed": client 198.18.1.1/24 (fd6b:6168:7265:1::1/64) - router .1.254 | .2.254
// (…:1::fe | …:2::fe) - server 198.18.2.1/24 (fd6b:6168:7265:2::1/64). Client and
// server route the other side's prefix via the router, no default routes; forwarding
// is on in the router namespace only. The router's NAT and firewall (nft) and its
// conntrack sysctls are in place before the first connection, so they see its SYN.
std::unique_ptr<Topology> build_routed_topology(const std::string& label, const HostSysctls& sysctls,
                                                const RouterSpec& router);

// The topology a case asks for, on `backend` (netns and userns: namespaces of its
// own; local: loopback in the process's namespace, local_topology.h).
std::unique_ptr<Topology> build_topology(const Case& c, Backend backend);

}  // namespace kah
