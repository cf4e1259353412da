// Links and addresses inside namespaces, through libnl-route. Every function opens
// its netlink socket inside the target namespace (Namespace::run), so nothing is
// ever created in, or moved through, the caller's namespace.
#pragma once

#include <string>
#include <vector>

#include "netns/namespace.h"

namespace kah::netns {

// An interface address with prefix length: "198.18.0.1/24" or "fd6b:6168:0:1::1/64".
struct IpPrefix {
  std::string address;  // textual, no prefix length
  int prefix_len = 0;
  bool is_ipv6() const;
  std::string str() const;  // "addr/len"
};

// Creates a veth pair with end `name_a` inside `a` and `name_b` inside `b` in one
// RTM_NEWLINK request (NLM_F_CREATE|NLM_F_EXCL). Both ends stay down.
void create_veth_pair(const Namespace& a, const std::string& name_a,
                      const Namespace& b, const std::string& name_b);

// Adds an address to an interface. IPv6 addresses get IFA_F_NODAD so they are usable at once.
void add_address(const Namespace& ns, const std::string& ifname, const IpPrefix& prefix);

// Sets the administrative state of an interface (IFF_UP).
void set_link_up(const Namespace& ns, const std::string& ifname, bool up);

// Adds a route to `destination` via `gateway` (for routed topologies). Only
// on-link or gateway routes to project prefixes; never a default route.
void add_route(const Namespace& ns, const IpPrefix& destination, const std::string& gateway);

// Names of all links in the namespace (for checks and tests).
std::vector<std::string> list_links(const Namespace& ns);

}  // namespace kah::netns
