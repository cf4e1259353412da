// Links and addresses inside namespaces, through libnl-route. Every function opens
// its netlink socket inside the target namespace (Namespace::run), so nothing is
// ever created in, or moved through, the caller's namespace.
#pragma once

#include <string>
#include <vector>

#include "netns/namespace.h"
#include "netns/netlink.h"

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

// Adds an address to an interface. IPv6 addresses get IFA_F_NODAD, and the call
// returns only once the kernel has announced the address (RTM_NEWADDR), which it does
// after joining the solicited-node group: the address is then reachable at once.
// Bring both ends of the link up first: IPv6 routes added while the link is down (the
// prefix route, and ff00::/8 that neighbour solicitations need) stay dead until the
// kernel's link watcher marks the link ready, up to a second later, and neighbour
// discovery then loses 1-2 s (measured on 6.18). Order: pair, both ends up, addresses.
void add_address(const Namespace& ns, const std::string& ifname, const IpPrefix& prefix);

// Sets the administrative state of an interface (IFF_UP). Setting it down flushes its
// IPv6 addresses unless net.ipv6.conf.all.keep_addr_on_down=1 in the namespace; IPv4
// addresses survive, their routes come back with the link.
void set_link_up(const Namespace& ns, const std::string& ifname, bool up);
// The same through a socket the caller already holds inside the namespace (used by
// Namespace::create to bring loopback up on the thread that made the namespace).
// `ns_label` is for messages only.
void set_link_up(const NlSocket& sock, const std::string& ns_label, const std::string& ifname, bool up);

// Adds a route to `destination` via `gateway` (for routed topologies). Only
// on-link or gateway routes to project prefixes; a default route (prefix length 0)
// is refused with std::invalid_argument.
void add_route(const Namespace& ns, const IpPrefix& destination, const std::string& gateway);

// Names of all links in the namespace (for checks and tests).
std::vector<std::string> list_links(const Namespace& ns);

}  // namespace kah::netns
