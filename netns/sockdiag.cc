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
#include <netlink/socket.h>
#include <sys/socket.h>

#include <fmt/format.h>

#include <memory>
#include <system_error>

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
