// Netlink plumbing shared by netns/: an RAII nl_sock and an error category for
// libnl's negative NLE_* codes (message from nl_geterror()).
// An NlSocket is bound to the namespace of the thread that created it and is not
// thread-safe: create one per thread, per namespace.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <system_error>

struct nl_sock;
struct nl_cache;

namespace kah::netns {

const std::error_category& netlink_category();

// Throws std::system_error{-code, netlink_category(), what} when code < 0.
void check_nl(int code, const std::string& what);

class NlSocket {
 public:
  // Allocates and connects a NETLINK_ROUTE socket in the calling thread's namespace.
  static NlSocket route();
  // The same for NETLINK_NETFILTER (conntrack tables, through libnl-nf).
  static NlSocket netfilter();
  NlSocket(NlSocket&& other) noexcept;
  NlSocket& operator=(NlSocket&& other) noexcept;
  NlSocket(const NlSocket&) = delete;
  NlSocket& operator=(const NlSocket&) = delete;
  ~NlSocket();
  nl_sock* get() const noexcept { return sock_; }

 private:
  explicit NlSocket(nl_sock* s) noexcept : sock_(s) {}
  nl_sock* sock_ = nullptr;
};

struct NlCacheFree {
  void operator()(nl_cache* cache) const noexcept;
};
using NlCache = std::unique_ptr<nl_cache, NlCacheFree>;

// Fills a cache with a dump (`fill` is e.g. rtnl_link_alloc_cache bound to a socket).
// A dump that races with a change in the namespace comes back marked inconsistent
// (NLE_DUMP_INTR, the kernel's NLM_F_DUMP_INTR) and is asked again, a few times.
// Throws std::system_error with `what` otherwise.
NlCache dump_cache(const std::function<int(nl_cache**)>& fill, const std::string& what);

}  // namespace kah::netns
