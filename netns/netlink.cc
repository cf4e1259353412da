// Netlink plumbing: the NLE_* error category and the NlSocket owner.
// libnl maps kernel errnos to its own small code space (NLE_*) and loses the
// original errno; default_error_condition() maps the codes callers act on back to
// std::errc so that, e.g., "not permitted" can be told apart from "bad input".
#include "netns/netlink.h"

#include <netlink/errno.h>
#include <netlink/cache.h>
#include <netlink/netlink.h>
#include <netlink/socket.h>

#include <cerrno>
#include <utility>

namespace kah::netns {
namespace {

class NetlinkCategory final : public std::error_category {
 public:
  const char* name() const noexcept override { return "netlink"; }

  // nl_geterror returns static strings, so it is safe from any thread.
  std::string message(int code) const override { return nl_geterror(code); }

  std::error_condition default_error_condition(int code) const noexcept override {
    switch (code) {
      case NLE_INTR: return std::errc::interrupted;
      case NLE_AGAIN: return std::errc::resource_unavailable_try_again;
      case NLE_NOMEM: return std::errc::not_enough_memory;
      case NLE_EXIST: return std::errc::file_exists;
      case NLE_INVAL: return std::errc::invalid_argument;
      case NLE_RANGE: return std::errc::result_out_of_range;
      case NLE_OPNOTSUPP: return std::errc::operation_not_supported;
      case NLE_AF_NOSUPPORT: return std::errc::address_family_not_supported;
      case NLE_OBJ_NOTFOUND: return std::errc::no_such_file_or_directory;
      case NLE_BUSY: return std::errc::device_or_resource_busy;
      case NLE_NOACCESS: return std::errc::permission_denied;
      case NLE_PERM: return std::errc::operation_not_permitted;
      case NLE_NODEV: return std::errc::no_such_device;
      default: return {code, *this};
    }
  }
};

}  // namespace

const std::error_category& netlink_category() {
  static const NetlinkCategory category;
  return category;
}

void check_nl(int code, const std::string& what) {
  if (code < 0) throw std::system_error(-code, netlink_category(), what);
}

NlSocket NlSocket::route() {
  nl_sock* sock = nl_socket_alloc();
  if (sock == nullptr) throw std::system_error(NLE_NOMEM, netlink_category(), "cannot allocate netlink socket");
  NlSocket owner(sock);
  check_nl(nl_connect(sock, NETLINK_ROUTE), "cannot connect NETLINK_ROUTE socket");
  return owner;
}

NlSocket NlSocket::netfilter() {
  nl_sock* sock = nl_socket_alloc();
  if (sock == nullptr) throw std::system_error(NLE_NOMEM, netlink_category(), "cannot allocate netlink socket");
  NlSocket owner(sock);
  check_nl(nl_connect(sock, NETLINK_NETFILTER), "cannot connect NETLINK_NETFILTER socket");
  return owner;
}

NlSocket::NlSocket(NlSocket&& other) noexcept : sock_(std::exchange(other.sock_, nullptr)) {}

NlSocket& NlSocket::operator=(NlSocket&& other) noexcept {
  if (this != &other) {
    if (sock_ != nullptr) nl_socket_free(sock_);
    sock_ = std::exchange(other.sock_, nullptr);
  }
  return *this;
}

// nl_socket_free also closes the fd and returns the local port to libnl's pool.
NlSocket::~NlSocket() {
  if (sock_ != nullptr) nl_socket_free(sock_);
}

void NlCacheFree::operator()(nl_cache* cache) const noexcept { nl_cache_free(cache); }

NlCache dump_cache(const std::function<int(nl_cache**)>& fill, const std::string& what) {
  int rc = 0;
  for (int attempt = 0; attempt < 5; ++attempt) {
    nl_cache* raw = nullptr;
    rc = fill(&raw);
    NlCache cache(raw);
    if (rc >= 0) return cache;
    if (rc != -NLE_DUMP_INTR) break;
  }
  check_nl(rc, what);
  return {};
}

}  // namespace kah::netns
