// Connection tracking through libnl-nf: delete one flow's entry, list the table.
#include "netns/conntrack.h"

#include <netinet/in.h>
#include <netlink/addr.h>
#include <netlink/cache.h>
#include <netlink/errno.h>
#include <netlink/netfilter/ct.h>
#include <sys/socket.h>

#include <fmt/format.h>

#include <memory>
#include <stdexcept>

#include "netns/netlink.h"

namespace kah::netns {
namespace {

struct CtPut {
  void operator()(nfnl_ct* ct) const noexcept { nfnl_ct_put(ct); }
};
struct AddrPut {
  void operator()(nl_addr* a) const noexcept { nl_addr_put(a); }
};
using CtPtr = std::unique_ptr<nfnl_ct, CtPut>;
using AddrPtr = std::unique_ptr<nl_addr, AddrPut>;

int family_of(const std::string& address) { return address.find(':') != std::string::npos ? AF_INET6 : AF_INET; }

AddrPtr parse(const std::string& address) {
  nl_addr* raw = nullptr;
  const int rc = nl_addr_parse(address.c_str(), family_of(address), &raw);
  AddrPtr owned(raw);
  if (rc < 0) throw std::invalid_argument(fmt::format("not an IP address: '{}'", address));
  return owned;
}

std::string text(const nl_addr* a) {
  if (a == nullptr) return "";
  char buf[128];
  // The bare address: a host address carries no "/len" suffix.
  return nl_addr2str(a, buf, sizeof buf);
}

FlowTuple tuple_of(const nfnl_ct* ct, int reply) {
  return {text(nfnl_ct_get_src(ct, reply)), nfnl_ct_get_src_port(ct, reply), text(nfnl_ct_get_dst(ct, reply)),
          nfnl_ct_get_dst_port(ct, reply)};
}

std::string describe(const FlowTuple& f) {
  return fmt::format("tcp [{}]:{} -> [{}]:{}", f.source, f.source_port, f.destination, f.destination_port);
}

}  // namespace

bool delete_conntrack(const Namespace& ns, const FlowTuple& flow) {
  const std::string what = fmt::format("cannot delete the conntrack entry {} in namespace {}", describe(flow), ns.label());
  if (family_of(flow.source) != family_of(flow.destination))
    throw std::invalid_argument(what + ": the addresses are of different families");
  const AddrPtr src = parse(flow.source);
  const AddrPtr dst = parse(flow.destination);
  return ns.run([&] {
    const NlSocket sock = NlSocket::netfilter();
    CtPtr ct(nfnl_ct_alloc());
    if (!ct) throw std::system_error(NLE_NOMEM, netlink_category(), what);
    // The kernel finds the entry by its complete original tuple (ctnetlink_del_conntrack).
    nfnl_ct_set_family(ct.get(), static_cast<uint8_t>(family_of(flow.source)));
    nfnl_ct_set_proto(ct.get(), IPPROTO_TCP);
    check_nl(nfnl_ct_set_src(ct.get(), 0, src.get()), what);  // takes its own reference
    check_nl(nfnl_ct_set_dst(ct.get(), 0, dst.get()), what);
    nfnl_ct_set_src_port(ct.get(), 0, flow.source_port);
    nfnl_ct_set_dst_port(ct.get(), 0, flow.destination_port);
    const int rc = nfnl_ct_del(sock.get(), ct.get(), 0);
    if (rc == -NLE_OBJ_NOTFOUND) return false;
    check_nl(rc, what);
    return true;
  });
}

std::vector<ConntrackEntry> list_conntrack(const Namespace& ns) {
  return ns.run([&] {
    const NlSocket sock = NlSocket::netfilter();
    const NlCache cache = dump_cache([&](nl_cache** out) { return nfnl_ct_alloc_cache(sock.get(), out); },
                                     fmt::format("cannot list conntrack entries in namespace {}", ns.label()));
    std::vector<ConntrackEntry> entries;
    for (nl_object* obj = nl_cache_get_first(cache.get()); obj != nullptr; obj = nl_cache_get_next(obj)) {
      const auto* ct = reinterpret_cast<const nfnl_ct*>(obj);
      if (nfnl_ct_get_proto(ct) != IPPROTO_TCP) continue;
      entries.push_back({tuple_of(ct, 0), tuple_of(ct, 1), nfnl_ct_get_tcp_state(ct), nfnl_ct_get_timeout(ct)});
    }
    return entries;
  });
}

}  // namespace kah::netns
