// Socket timers through libnl-idiag (NETLINK_SOCK_DIAG) and their ss-style text.
#include "netns/sockdiag.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <netlink/addr.h>
#include <netlink/cache.h>
#include <netlink/errno.h>
#include <netlink/idiag/idiagnl.h>
#include <netlink/idiag/msg.h>
#include <netlink/msg.h>
#include <netlink/socket.h>
#include <linux/inet_diag.h>
#include <linux/sock_diag.h>
#include <sys/socket.h>

#include <fmt/format.h>

#include <cstring>
#include <memory>
#include <stdexcept>
#include <system_error>
#include <utility>

#include "netns/netlink.h"

namespace kah::netns {
namespace {

struct SockFree {
  void operator()(nl_sock* sock) const noexcept { nl_socket_free(sock); }
};
using SockPtr = std::unique_ptr<nl_sock, SockFree>;

// idiag addresses always carry 16 bytes (inet_diag_sockid); an IPv4 one is the first 4.
std::string text(int family, const nl_addr* addr) {
  if (addr == nullptr) return "";
  char buf[INET6_ADDRSTRLEN] = {};
  if (inet_ntop(family, nl_addr_get_binary_addr(addr), buf, sizeof buf) == nullptr) return "";
  return buf;
}

TimerKind kind_of(std::uint8_t timer) {
  switch (timer) {
    case IDIAGNL_TIMER_OFF: return TimerKind::none;
    case IDIAGNL_TIMER_ON: return TimerKind::on;
    case IDIAGNL_TIMER_KEEPALIVE: return TimerKind::keepalive;
    case IDIAGNL_TIMER_TIMEWAIT: return TimerKind::timewait;
    case IDIAGNL_TIMER_PERSIST: return TimerKind::persist;
    default: return TimerKind::unknown;
  }
}

SocketTimer timer_of(idiagnl_msg* msg) {
  SocketTimer t;
  t.family = idiagnl_msg_get_family(msg);
  t.local = text(t.family, idiagnl_msg_get_src(msg));
  // libnl keeps the ports as the kernel sends them, in network byte order.
  t.local_port = ntohs(idiagnl_msg_get_sport(msg));
  t.remote = text(t.family, idiagnl_msg_get_dst(msg));
  t.remote_port = ntohs(idiagnl_msg_get_dport(msg));
  t.state = idiagnl_msg_get_state(msg);
  t.inode = idiagnl_msg_get_inode(msg);
  t.timer = kind_of(idiagnl_msg_get_timer(msg));
  t.expires_ms = idiagnl_msg_get_expires(msg);
  t.counter = idiagnl_msg_get_retrans(msg);
  return t;
}

}  // namespace

std::string_view to_string(TimerKind kind) {
  switch (kind) {
    case TimerKind::none: return "none";
    case TimerKind::on: return "on";
    case TimerKind::keepalive: return "keepalive";
    case TimerKind::timewait: return "timewait";
    case TimerKind::persist: return "persist";
    case TimerKind::unknown: return "unknown";
  }
  return "unknown";
}

namespace {

// Every TCP socket of `ns` whose state is in `states` (a mask of 1 << TCP_*).
std::vector<SocketTimer> dump(const Namespace& ns, int states) {
  const std::string what = fmt::format("cannot list TCP sockets in namespace {}", ns.label());
  return ns.run([&] {
    SockPtr sock(nl_socket_alloc());
    if (!sock) throw std::system_error(NLE_NOMEM, netlink_category(), what);
    check_nl(idiagnl_connect(sock.get()), what);
    // The timer, its expiry and its counter are in the fixed inet_diag_msg header, so
    // no extension is needed; libnl asks for extensions 1-8 anyway (it has no knob).
    // libnl sends the legacy TCPDIAG_GETSOCK request, for which the kernel ignores the
    // family and dumps both (inet_diag_dump_compat): one dump, AF_UNSPEC, says so.
    const NlCache cache = dump_cache(
        [&](nl_cache** out) { return idiagnl_msg_alloc_cache(sock.get(), AF_UNSPEC, states, out); }, what);
    std::vector<SocketTimer> timers;
    for (nl_object* obj = nl_cache_get_first(cache.get()); obj != nullptr; obj = nl_cache_get_next(obj))
      timers.push_back(timer_of(reinterpret_cast<idiagnl_msg*>(obj)));
    return timers;
  });
}

}  // namespace

std::vector<SocketTimer> socket_timers(const Namespace& ns) {
  // Every state but LISTEN: a listener has no peer and no timer worth showing.
  return dump(ns, IDIAGNL_SS_ALL & ~(1 << TCP_LISTEN));
}

std::vector<SocketTimer> listening_sockets(const Namespace& ns) { return dump(ns, 1 << TCP_LISTEN); }

SocketLookup::SocketLookup(const Namespace& ns) : label_(ns.label()) {
  const std::string what = fmt::format("cannot open a sock_diag socket in namespace {}", label_);
  sock_ = ns.run([&] {
    SockPtr sock(nl_socket_alloc());
    if (!sock) throw std::system_error(NLE_NOMEM, netlink_category(), what);
    check_nl(idiagnl_connect(sock.get()), what);
    nl_socket_disable_auto_ack(sock.get());  // an answer or an error, nothing after it
    return sock.release();
  });
}

SocketLookup::SocketLookup(SocketLookup&& other) noexcept
    : sock_(std::exchange(other.sock_, nullptr)), label_(std::move(other.label_)) {}

SocketLookup& SocketLookup::operator=(SocketLookup&& other) noexcept {
  if (this != &other) {
    if (sock_ != nullptr) nl_socket_free(sock_);
    sock_ = std::exchange(other.sock_, nullptr);
    label_ = std::move(other.label_);
  }
  return *this;
}

SocketLookup::~SocketLookup() {
  if (sock_ != nullptr) nl_socket_free(sock_);
}

namespace {

struct MsgFree {
  void operator()(nl_msg* msg) const noexcept { nlmsg_free(msg); }
};

// Copies a textual address into inet_diag_sockid's 16-byte field; false if unparsable.
bool put_address(int family, const std::string& text, __be32 (&out)[4]) {
  std::memset(out, 0, sizeof out);
  return inet_pton(family, text.c_str(), out) == 1;
}

int on_found(nl_msg* msg, void* arg) {
  auto* found = static_cast<std::optional<SocketTimer>*>(arg);
  idiagnl_msg* parsed = nullptr;
  if (idiagnl_msg_parse(nlmsg_hdr(msg), &parsed) < 0) return NL_SKIP;
  *found = timer_of(parsed);
  idiagnl_msg_put(parsed);
  return NL_OK;
}

}  // namespace

std::optional<SocketTimer> SocketLookup::find(int family, const std::string& local, std::uint16_t local_port,
                                              const std::string& remote, std::uint16_t remote_port) {
  const std::string what = fmt::format("cannot look up TCP socket [{}]:{} -> [{}]:{} in namespace {}", local,
                                       local_port, remote, remote_port, label_);
  inet_diag_req_v2 req{};
  req.sdiag_family = static_cast<std::uint8_t>(family);
  req.sdiag_protocol = IPPROTO_TCP;
  req.idiag_states = static_cast<std::uint32_t>(IDIAGNL_SS_ALL & ~(1 << TCP_LISTEN));
  req.id.idiag_sport = htons(local_port);
  req.id.idiag_dport = htons(remote_port);
  req.id.idiag_cookie[0] = INET_DIAG_NOCOOKIE;
  req.id.idiag_cookie[1] = INET_DIAG_NOCOOKIE;
  if (!put_address(family, local, req.id.idiag_src) || !put_address(family, remote, req.id.idiag_dst))
    throw std::invalid_argument(what + ": not an address of its family");
  std::unique_ptr<nl_msg, MsgFree> msg(nlmsg_alloc_simple(SOCK_DIAG_BY_FAMILY, NLM_F_REQUEST));
  if (!msg) throw std::system_error(NLE_NOMEM, netlink_category(), what);
  check_nl(nlmsg_append(msg.get(), &req, sizeof req, NLMSG_ALIGNTO), what);
  check_nl(nl_send_auto(sock_, msg.get()), what);
  std::optional<SocketTimer> found;
  check_nl(nl_socket_modify_cb(sock_, NL_CB_VALID, NL_CB_CUSTOM, on_found, &found), what);
  const int rc = nl_recvmsgs_default(sock_);
  // The kernel answers ENOENT for no such socket (libnl: NLE_OBJ_NOTFOUND).
  if (rc == -NLE_OBJ_NOTFOUND) return std::nullopt;
  check_nl(rc, what);
  if (found && (found->state == TCP_LISTEN || found->local_port != local_port || found->remote_port != remote_port))
    return std::nullopt;
  return found;
}

std::string ss_duration(std::uint32_t ms) {
  // ss's rules: minutes drop the ms, and from 10 minutes on the seconds too; from
  // 10 s the ms go; 1-9 s keep them as decimals of "sec"; below 1 s three digits of "ms".
  const std::uint32_t minutes = ms / 60000;
  std::uint32_t secs = ms / 1000 % 60;
  std::uint32_t msecs = ms % 1000;
  std::string out;
  if (minutes != 0) {
    msecs = 0;
    out = fmt::format("{}min", minutes);
    if (minutes > 9) secs = 0;
  }
  if (secs != 0) {
    if (secs > 9) msecs = 0;
    out += fmt::format("{}{}", secs, msecs != 0 ? "." : "sec");
  }
  if (msecs != 0) out += fmt::format("{:03}{}", msecs, secs != 0 ? "sec" : "ms");
  return out;
}

std::string describe(const SocketTimer& timer) {
  if (timer.timer == TimerKind::none) return "";
  return fmt::format("timer:({},{},{})", to_string(timer.timer), ss_duration(timer.expires_ms), timer.counter);
}

std::string_view tcp_state_name(int state) {
  switch (state) {
    case TCP_ESTABLISHED: return "ESTAB";
    case TCP_SYN_SENT: return "SYN-SENT";
    case TCP_SYN_RECV: return "SYN-RECV";
    case TCP_FIN_WAIT1: return "FIN-WAIT-1";
    case TCP_FIN_WAIT2: return "FIN-WAIT-2";
    case TCP_TIME_WAIT: return "TIME-WAIT";
    case TCP_CLOSE: return "UNCONN";
    case TCP_CLOSE_WAIT: return "CLOSE-WAIT";
    case TCP_LAST_ACK: return "LAST-ACK";
    case TCP_LISTEN: return "LISTEN";
    case TCP_CLOSING: return "CLOSING";
    default: return "UNKNOWN";
  }
}

}  // namespace kah::netns
