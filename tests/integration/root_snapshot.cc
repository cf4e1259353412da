// RootSnapshot: libnl dumps of links, addresses and routes, sysctl files, the
// nftables ruleset and /run/netns, normalised into sorted lines so that two
// snapshots compare with ==. Only stable attributes are kept (no counters,
// lifetimes or statistics), so an idle root namespace compares equal to itself.
#include "tests/integration/root_snapshot.h"

#include <arpa/inet.h>
#include <linux/rtnetlink.h>
#include <netlink/addr.h>
#include <netlink/cache.h>
#include <netlink/netlink.h>
#include <netlink/route/addr.h>
#include <netlink/route/link.h>
#include <netlink/route/nexthop.h>
#include <netlink/route/route.h>
#include <netlink/route/rtnl.h>
#include <nftables/libnftables.h>
#include <sys/socket.h>
#include <unistd.h>

#include <fmt/format.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <memory>
#include <mutex>
#include <stdexcept>

#include "netns/namespace.h"
#include "netns/netlink.h"

namespace kah::test {
namespace {

using netns::check_nl;

using netns::dump_cache;
using CachePtr = netns::NlCache;

struct NftFree {
  void operator()(nft_ctx* c) const noexcept { nft_ctx_free(c); }
};

template <class T, class Visit>
void for_each(nl_cache* cache, Visit visit) {
  for (nl_object* obj = nl_cache_get_first(cache); obj != nullptr; obj = nl_cache_get_next(obj)) {
    visit(reinterpret_cast<T*>(obj));
  }
}

std::string addr_str(const nl_addr* a) {
  if (a == nullptr) return "none";
  char buf[128];
  return nl_addr2str(a, buf, sizeof buf);
}

// The address alone: nl_addr2str appends the prefix length only when it is not
// the full width, which would make "a/24" and "a" differ in form, not in content.
std::string bare_addr(const nl_addr* a) {
  if (a == nullptr) return "none";
  char buf[INET6_ADDRSTRLEN] = {};
  if (inet_ntop(nl_addr_get_family(a), nl_addr_get_binary_addr(a), buf, sizeof buf) == nullptr) return addr_str(a);
  return buf;
}

std::string af_str(int family) {
  char buf[32];
  return nl_af2str(family, buf, sizeof buf);
}

std::string ifname(nl_cache* links, int index) {
  char buf[64];
  const char* name = rtnl_link_i2name(links, index, buf, sizeof buf);
  return name != nullptr ? std::string(name) : fmt::format("if{}", index);
}

std::string route_line(rtnl_route* r, nl_cache* links) {
  char type[32];
  char proto[32];
  char scope[32];
  const nl_addr* dst = rtnl_route_get_dst(r);
  std::string line = fmt::format(
      "{} table {} {} {} proto {} scope {} metric {} tos {}", af_str(rtnl_route_get_family(r)),
      rtnl_route_get_table(r), nl_rtntype2str(rtnl_route_get_type(r), type, sizeof type),
      dst == nullptr || nl_addr_get_len(dst) == 0 ? std::string("default") : addr_str(dst),
      rtnl_route_proto2str(rtnl_route_get_protocol(r), proto, sizeof proto),
      rtnl_scope2str(rtnl_route_get_scope(r), scope, sizeof scope), rtnl_route_get_priority(r),
      rtnl_route_get_tos(r));
  if (const nl_addr* src = rtnl_route_get_pref_src(r)) line += " src " + addr_str(src);
  const int n = rtnl_route_get_nnexthops(r);
  for (int i = 0; i < n; ++i) {
    rtnl_nexthop* nh = rtnl_route_nexthop_n(r, i);
    if (nh == nullptr) continue;
    if (const nl_addr* gw = rtnl_route_nh_get_gateway(nh)) line += " via " + addr_str(gw);
    line += " dev " + ifname(links, rtnl_route_nh_get_ifindex(nh));
  }
  return line;
}

std::string read_file(const std::filesystem::path& path) {
  std::ifstream in(path);
  if (!in) return "<unreadable>";
  std::string value((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  while (!value.empty() && (value.back() == '\n' || value.back() == ' ')) value.pop_back();
  return value;
}

// libnftables keeps process-global state (its interface cache): one call at a time.
std::mutex nft_mutex;

std::string list_nft_ruleset() {
  const std::lock_guard<std::mutex> lock(nft_mutex);
  std::unique_ptr<nft_ctx, NftFree> ctx(nft_ctx_new(NFT_CTX_DEFAULT));
  if (!ctx) throw std::runtime_error("cannot create nftables context");
  // Counter and quota values move with host traffic; the rules themselves must not.
  nft_ctx_output_set_flags(ctx.get(), NFT_CTX_OUTPUT_STATELESS);
  if (nft_ctx_buffer_output(ctx.get()) != 0 || nft_ctx_buffer_error(ctx.get()) != 0) {
    throw std::runtime_error("cannot buffer nftables output");
  }
  if (nft_run_cmd_from_buffer(ctx.get(), "list ruleset") != 0) {
    throw std::runtime_error(fmt::format("nft list ruleset failed: {}", nft_ctx_get_error_buffer(ctx.get())));
  }
  const char* out = nft_ctx_get_output_buffer(ctx.get());
  return out != nullptr ? out : "";
}

const char* const kSysctls[] = {
    "net.ipv4.tcp_keepalive_time", "net.ipv4.tcp_keepalive_intvl", "net.ipv4.tcp_keepalive_probes",
    "net.ipv4.tcp_retries2",       "net.ipv4.ip_forward",          "net.ipv6.conf.all.forwarding",
    "net.ipv6.conf.all.keep_addr_on_down",
    // What a routed topology's router and its faults write in their own namespace.
    "net.netfilter.nf_conntrack_tcp_loose", "net.netfilter.nf_conntrack_tcp_timeout_established",
    "net.ipv4.icmp_ratelimit", "net.ipv6.icmp.ratelimit",
};

void diff_lines(const char* kind, const std::vector<std::string>& before, const std::vector<std::string>& after,
                std::string& out) {
  std::vector<std::string> gone;
  std::vector<std::string> added;
  std::set_difference(before.begin(), before.end(), after.begin(), after.end(), std::back_inserter(gone));
  std::set_difference(after.begin(), after.end(), before.begin(), before.end(), std::back_inserter(added));
  for (const auto& l : gone) out += fmt::format("- {}: {}\n", kind, l);
  for (const auto& l : added) out += fmt::format("+ {}: {}\n", kind, l);
}

constexpr const char* kTestPinTag = "kahtest-";

}  // namespace

std::string test_pin_prefix() { return fmt::format("{}{}-", kTestPinTag, ::getpid()); }

RootSnapshot RootSnapshot::take() {
  RootSnapshot s;
  const auto sock = netns::NlSocket::route();

  const CachePtr links =
      dump_cache([&](nl_cache** c) { return rtnl_link_alloc_cache(sock.get(), AF_UNSPEC, c); }, "cannot dump links");
  for_each<rtnl_link>(links.get(), [&](rtnl_link* l) {
    char flags[256];
    rtnl_link_flags2str(static_cast<int>(rtnl_link_get_flags(l)), flags, sizeof flags);
    s.links.push_back(fmt::format("{} {} <{}>", rtnl_link_get_ifindex(l), rtnl_link_get_name(l), flags));
  });

  const CachePtr addrs = dump_cache([&](nl_cache** c) { return rtnl_addr_alloc_cache(sock.get(), c); }, "cannot dump addresses");
  for_each<rtnl_addr>(addrs.get(), [&](rtnl_addr* a) {
    s.addresses.push_back(fmt::format("{} {} {}/{}", ifname(links.get(), rtnl_addr_get_ifindex(a)),
                                      af_str(rtnl_addr_get_family(a)), bare_addr(rtnl_addr_get_local(a)),
                                      rtnl_addr_get_prefixlen(a)));
  });

  // AF_UNSPEC with no table filter: the kernel dumps every table (main, local, others).
  const CachePtr routes =
      dump_cache([&](nl_cache** c) { return rtnl_route_alloc_cache(sock.get(), AF_UNSPEC, 0, c); }, "cannot dump routes");
  for_each<rtnl_route>(routes.get(), [&](rtnl_route* r) { s.routes.push_back(route_line(r, links.get())); });

  for (const char* key : kSysctls) {
    s.sysctls.push_back(fmt::format("{} = {}", key, read_file(netns::sysctl_path(key))));
  }

  const std::filesystem::path pin_dir(netns::kPinDirectory);
  std::error_code ec;
  if (std::filesystem::is_directory(pin_dir, ec)) {
    const std::string own = test_pin_prefix();
    for (const auto& entry : std::filesystem::directory_iterator(pin_dir)) {
      const std::string name = entry.path().filename().string();
      const bool other_test = name.rfind(kTestPinTag, 0) == 0 && name.rfind(own, 0) != 0;
      if (!other_test) s.pins.push_back(entry.path().string());
    }
  }

  s.nft_ruleset = list_nft_ruleset();

  for (auto* v : {&s.links, &s.addresses, &s.routes, &s.sysctls, &s.pins}) std::sort(v->begin(), v->end());
  return s;
}

std::string RootSnapshot::diff(const RootSnapshot& after) const {
  std::string out;
  diff_lines("link", links, after.links, out);
  diff_lines("address", addresses, after.addresses, out);
  diff_lines("route", routes, after.routes, out);
  diff_lines("sysctl", sysctls, after.sysctls, out);
  diff_lines("/run/netns", pins, after.pins, out);
  if (nft_ruleset != after.nft_ruleset) {
    out += fmt::format("~ nft ruleset before:\n{}\n~ nft ruleset after:\n{}\n", nft_ruleset, after.nft_ruleset);
  }
  return out;
}

}  // namespace kah::test
