// Netlink plumbing shared by netns/: an RAII nl_sock and an error category for
// libnl's negative NLE_* codes (message from nl_geterror()).
// An NlSocket is bound to the namespace of the thread that created it and is not
// thread-safe: create one per thread, per namespace.
#pragma once

#include <system_error>
#include <string>

struct nl_sock;

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

}  // namespace kah::netns
