// Links, addresses and routes through libnl-route.
//
// Threading: each public function runs its work inside the target namespace with
// Namespace::run and opens its own NlSocket there, because an nl_sock is neither
// thread-safe nor movable between namespaces, and a link can only be addressed by
// name from a socket in the namespace that holds it. Every libnl object is held by
// a unique_ptr with libnl's own release function.
#include "netns/link.h"

#include <linux/if.h>
#include <linux/if_addr.h>
#include <linux/rtnetlink.h>
#include <netlink/addr.h>
#include <netlink/cache.h>
#include <netlink/handlers.h>
#include <netlink/msg.h>
#include <netlink/netlink.h>
#include <netlink/socket.h>
#include <netlink/route/addr.h>
#include <netlink/route/link.h>
#include <netlink/route/link/veth.h>
#include <netlink/route/nexthop.h>
#include <netlink/route/route.h>
#include <poll.h>
#include <sys/socket.h>

#include <fmt/format.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <memory>
#include <optional>
#include <stdexcept>

namespace kah::netns {
namespace {

template <class T, void (*Release)(T*)>
struct Releaser {
  void operator()(T* p) const noexcept { Release(p); }
};
using LinkPtr = std::unique_ptr<rtnl_link, Releaser<rtnl_link, rtnl_link_put>>;
using AddrPtr = std::unique_ptr<rtnl_addr, Releaser<rtnl_addr, rtnl_addr_put>>;
using NlAddrPtr = std::unique_ptr<nl_addr, Releaser<nl_addr, nl_addr_put>>;
using RoutePtr = std::unique_ptr<rtnl_route, Releaser<rtnl_route, rtnl_route_put>>;
using NexthopPtr = std::unique_ptr<rtnl_nexthop, Releaser<rtnl_nexthop, rtnl_route_nh_free>>;

template <class T>
T* not_null(T* p, const char* what) {
  if (p == nullptr) throw std::system_error(NLE_NOMEM, netlink_category(), fmt::format("cannot allocate {}", what));
  return p;
}

void check_ifname(const std::string& name) {
  if (name.empty() || name.size() >= IFNAMSIZ || name.find_first_of("/: \t\n") != std::string::npos) {
    throw std::invalid_argument(fmt::format("invalid interface name '{}'", name));
  }
}

int family_of(const IpPrefix& p) { return p.is_ipv6() ? AF_INET6 : AF_INET; }

NlAddrPtr parse_address(const std::string& text, int family) {
  nl_addr* raw = nullptr;
  const int rc = nl_addr_parse(text.c_str(), family, &raw);
  NlAddrPtr owned(raw);
  check_nl(rc, fmt::format("invalid address '{}'", text));
  return owned;
}

NlAddrPtr parse_prefix(const IpPrefix& p) {
  const int max_len = p.is_ipv6() ? 128 : 32;
  if (p.prefix_len < 0 || p.prefix_len > max_len) {
    throw std::invalid_argument(fmt::format("invalid prefix length in {}", p.str()));
  }
  return parse_address(p.str(), family_of(p));
}

// Looks the link up in the socket's namespace; -NLE_OBJ_NOTFOUND if absent.
int get_link(nl_sock* sock, const std::string& ifname, LinkPtr& out) {
  rtnl_link* raw = nullptr;
  const int rc = rtnl_link_get_kernel(sock, 0, ifname.c_str(), &raw);
  out.reset(raw);
  return rc;
}

LinkPtr require_link(nl_sock* sock, const std::string& ifname, const std::string& ns_label) {
  LinkPtr link;
  check_nl(get_link(sock, ifname, link), fmt::format("cannot find link {} in namespace {}", ifname, ns_label));
  return link;
}

// An IPv6 address added with NODAD can be bound at once, but the kernel joins its
// solicited-node multicast group later, from the DAD work queue. A neighbour
// solicitation arriving before that is dropped and the peer retries only after a
// second (seen with a dozen pairs built in parallel). For NODAD addresses the
// kernel announces RTM_NEWADDR only once that work is done, so waiting for the
// announcement makes the address reachable, not just bindable, when add_address
// returns. Subscribe before sending the request so the announcement cannot be missed.
class Ipv6AddressReady {
 public:
  Ipv6AddressReady(int ifindex, const nl_addr* local)
      : ifindex_(ifindex), local_(local), sock_(NlSocket::route()) {
    // Notifications carry sequence number 0; they are not answers to a request.
    nl_socket_disable_seq_check(sock_.get());
    check_nl(nl_socket_modify_cb(sock_.get(), NL_CB_VALID, NL_CB_CUSTOM, &Ipv6AddressReady::on_message, this),
             "cannot set netlink callback");
    check_nl(nl_socket_add_membership(sock_.get(), RTNLGRP_IPV6_IFADDR), "cannot subscribe to IPv6 address events");
  }
  Ipv6AddressReady(const Ipv6AddressReady&) = delete;
  Ipv6AddressReady& operator=(const Ipv6AddressReady&) = delete;

  void wait(std::chrono::milliseconds timeout, const std::string& what) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (!ready_) {
      const auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0) {
        throw std::system_error(ETIMEDOUT, std::generic_category(),
                                fmt::format("{}: kernel did not finish configuring the address", what));
      }
      pollfd p{nl_socket_get_fd(sock_.get()), POLLIN, 0};
      const int n = ::poll(&p, 1, static_cast<int>(left.count()));
      if (n < 0 && errno != EINTR) {
        const int err = errno;
        throw_errno(err, what);
      }
      if (n > 0) check_nl(nl_recvmsgs_default(sock_.get()), what);
    }
  }

 private:
  static int on_message(nl_msg* msg, void* self) {
    if (nlmsg_hdr(msg)->nlmsg_type == RTM_NEWADDR) nl_msg_parse(msg, &Ipv6AddressReady::on_object, self);
    return NL_OK;
  }
  static void on_object(nl_object* obj, void* arg) {
    auto* self = static_cast<Ipv6AddressReady*>(arg);
    auto* addr = reinterpret_cast<rtnl_addr*>(obj);
    const nl_addr* local = rtnl_addr_get_local(addr);
    if (rtnl_addr_get_ifindex(addr) != self->ifindex_ || local == nullptr) return;
    if ((rtnl_addr_get_flags(addr) & IFA_F_TENTATIVE) != 0) return;
    const unsigned len = nl_addr_get_len(local);
    if (len == nl_addr_get_len(self->local_) &&
        std::memcmp(nl_addr_get_binary_addr(local), nl_addr_get_binary_addr(self->local_), len) == 0) {
      self->ready_ = true;
    }
  }

  int ifindex_;
  const nl_addr* local_;
  bool ready_ = false;
  NlSocket sock_;
};

}  // namespace

bool IpPrefix::is_ipv6() const { return address.find(':') != std::string::npos; }

std::string IpPrefix::str() const { return fmt::format("{}/{}", address, prefix_len); }

void create_veth_pair(const Namespace& a, const std::string& name_a, const Namespace& b, const std::string& name_b) {
  check_ifname(name_a);
  check_ifname(name_b);
  const std::string what =
      fmt::format("cannot create veth pair {}<->{} (namespaces {}/{})", name_a, name_b, a.label(), b.label());
  a.run([&] {
    const NlSocket sock = NlSocket::route();
    LinkPtr link(not_null(rtnl_link_veth_alloc(), "veth link"));
    // get_peer takes a reference on the peer, which the veth link also owns.
    LinkPtr peer(not_null(rtnl_link_veth_get_peer(link.get()), "veth peer"));
    rtnl_link_set_name(link.get(), name_a.c_str());
    rtnl_link_set_name(peer.get(), name_b.c_str());
    // Both ends carry their destination, so the kernel creates them in place:
    // nothing appears in the caller's namespace even for an instant.
    rtnl_link_set_ns_fd(link.get(), a.fd());
    rtnl_link_set_ns_fd(peer.get(), b.fd());
    check_nl(rtnl_link_add(sock.get(), link.get(), NLM_F_CREATE | NLM_F_EXCL), what);
    LinkPtr check;
    if (get_link(sock.get(), name_a, check) < 0) {
      throw std::runtime_error(fmt::format("{}: {} is not in namespace {} after creation", what, name_a, a.label()));
    }
  });
  b.run([&] {
    const NlSocket sock = NlSocket::route();
    LinkPtr check;
    if (get_link(sock.get(), name_b, check) < 0 || !rtnl_link_is_veth(check.get())) {
      throw std::runtime_error(fmt::format("{}: {} is not in namespace {} after creation", what, name_b, b.label()));
    }
  });
}

void add_address(const Namespace& ns, const std::string& ifname, const IpPrefix& prefix) {
  check_ifname(ifname);
  const std::string what = fmt::format("cannot add address {} to {} in namespace {}", prefix.str(), ifname, ns.label());
  const NlAddrPtr local = [&] {
    try {
      return parse_prefix(prefix);
    } catch (const std::system_error& e) {
      throw std::invalid_argument(fmt::format("{}: {}", what, e.what()));
    }
  }();
  ns.run([&] {
    const NlSocket sock = NlSocket::route();
    const LinkPtr link = require_link(sock.get(), ifname, ns.label());
    AddrPtr addr(not_null(rtnl_addr_alloc(), "address"));
    rtnl_addr_set_ifindex(addr.get(), rtnl_link_get_ifindex(link.get()));
    check_nl(rtnl_addr_set_local(addr.get(), local.get()), what);
    // Without NODAD the address stays "tentative" for about a second after the
    // link comes up: bind() fails with EADDRNOTAVAIL and connects stall. The
    // namespaces are private, so there is no one to collide with.
    std::optional<Ipv6AddressReady> ready;
    if (prefix.is_ipv6()) {
      rtnl_addr_set_flags(addr.get(), IFA_F_NODAD);
      ready.emplace(rtnl_link_get_ifindex(link.get()), local.get());
    }
    check_nl(rtnl_addr_add(sock.get(), addr.get(), NLM_F_EXCL), what);
    if (ready) ready->wait(std::chrono::seconds(5), what);
  });
}

void set_link_up(const NlSocket& sock, const std::string& ns_label, const std::string& ifname, bool up) {
  check_ifname(ifname);
  const std::string what = fmt::format("cannot set link {} {} in namespace {}", ifname, up ? "up" : "down", ns_label);
  const LinkPtr orig = require_link(sock.get(), ifname, ns_label);
  LinkPtr change(not_null(rtnl_link_alloc(), "link"));
  if (up) {
    rtnl_link_set_flags(change.get(), IFF_UP);
  } else {
    rtnl_link_unset_flags(change.get(), IFF_UP);
  }
  check_nl(rtnl_link_change(sock.get(), orig.get(), change.get(), 0), what);
}

void set_link_up(const Namespace& ns, const std::string& ifname, bool up) {
  ns.run([&] { set_link_up(NlSocket::route(), ns.label(), ifname, up); });
}

void add_route(const Namespace& ns, const IpPrefix& destination, const std::string& gateway) {
  const std::string what =
      fmt::format("cannot add route {} via {} in namespace {}", destination.str(), gateway, ns.label());
  // A default route would be the one way a test packet could head for the host's
  // uplink if a topology were ever wired to it; refuse it outright.
  if (destination.prefix_len == 0) throw std::invalid_argument(what + ": default routes are not allowed");
  NlAddrPtr dst;
  NlAddrPtr gw;
  try {
    dst = parse_prefix(destination);
    gw = parse_address(gateway, family_of(destination));
  } catch (const std::system_error& e) {
    throw std::invalid_argument(fmt::format("{}: {}", what, e.what()));
  }
  ns.run([&] {
    const NlSocket sock = NlSocket::route();
    RoutePtr route(not_null(rtnl_route_alloc(), "route"));
    check_nl(rtnl_route_set_family(route.get(), static_cast<uint8_t>(family_of(destination))), what);
    check_nl(rtnl_route_set_dst(route.get(), dst.get()), what);
    rtnl_route_set_table(route.get(), RT_TABLE_MAIN);
    rtnl_route_set_protocol(route.get(), RTPROT_STATIC);
    rtnl_route_set_scope(route.get(), RT_SCOPE_UNIVERSE);
    NexthopPtr nh(not_null(rtnl_route_nh_alloc(), "nexthop"));
    rtnl_route_nh_set_gateway(nh.get(), gw.get());
    // The route takes ownership of the nexthop and frees it with itself.
    rtnl_route_add_nexthop(route.get(), nh.release());
    check_nl(rtnl_route_add(sock.get(), route.get(), NLM_F_EXCL), what);
  });
}

std::vector<std::string> list_links(const Namespace& ns) {
  return ns.run([&] {
    const NlSocket sock = NlSocket::route();
    const NlCache cache =
        dump_cache([&](nl_cache** out) { return rtnl_link_alloc_cache(sock.get(), AF_UNSPEC, out); },
                    fmt::format("cannot list links in namespace {}", ns.label()));
    std::vector<std::string> names;
    for (nl_object* obj = nl_cache_get_first(cache.get()); obj != nullptr; obj = nl_cache_get_next(obj)) {
      const char* name = rtnl_link_get_name(reinterpret_cast<rtnl_link*>(obj));
      if (name != nullptr) names.emplace_back(name);
    }
    return names;
  });
}

}  // namespace kah::netns
