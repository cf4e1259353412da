// The kernel's own view of each TCP socket's timer, through sock_diag (libnl-idiag):
// which timer is pending (retransmit, keepalive, TIME-WAIT, zero-window probe), when
// it will fire, and the counter the kernel keeps with it — what `ss -tno` prints as
// timer:(keepalive,1sec,1). It shows the keepalive state machine from the inside
// (probes sent so far, when the next one is due) without a capture, and the same
// numbers a person gets from ss when reproducing a run by hand.
//
// Threading: each socket_timers() call opens its own sock_diag socket on a thread
// inside the namespace (Namespace::run), as for the rest of netns/; nothing is
// shared, so calls for different namespaces may run concurrently. SocketLookup keeps
// its socket for repeated questions about single connections.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "netns/namespace.h"

struct nl_sock;  // libnl

namespace kah::netns {

// The kernel's idiag_timer values (net/ipv4/inet_diag.c), named as ss names them,
// except that ss calls "none" "off" and prints nothing for it.
enum class TimerKind {
  none,       // no timer pending
  on,         // retransmission (also the tail-loss probe and RACK reordering timers)
  keepalive,  // sk_timer: keepalive, and also the FIN-WAIT-2 and SYN-ACK timers
  timewait,   // a TIME-WAIT socket's timer
  persist,    // zero-window probe (probe0)
  unknown,    // a value newer than this code
};

std::string_view to_string(TimerKind kind);

struct SocketTimer {
  int family = 0;  // AF_INET or AF_INET6
  std::string local;  // textual address, no brackets
  std::uint16_t local_port = 0;
  std::string remote;
  std::uint16_t remote_port = 0;
  int state = 0;  // TCP_ESTABLISHED, ... (netinet/tcp.h)
  std::uint32_t inode = 0;  // the socket's inode (fstat of its fd); 0 for TIME-WAIT
  TimerKind timer = TimerKind::none;
  // Until the timer fires, in ms, as the kernel computes it from jiffies (so in steps
  // of 1000/HZ ms); 0 when none is pending or when it is already overdue.
  std::uint32_t expires_ms = 0;
  // idiag_retrans. keepalive and persist: icsk_probes_out, the probes sent and not
  // answered so far; on: icsk_retransmits, the retransmissions of the head segment.
  int counter = 0;
};

// Every TCP socket of `ns` in any state except LISTEN, IPv4 and IPv6. Throws
// std::system_error (netlink_category) naming the namespace when the dump fails.
std::vector<SocketTimer> socket_timers(const Namespace& ns);
// The TCP listeners of `ns` (their local address and port), IPv4 and IPv6.
std::vector<SocketTimer> listening_sockets(const Namespace& ns);

// One sock_diag socket kept open in a namespace, for asking about one connection at a
// time: an exact request (the kernel looks the 4-tuple up in its hash tables, as for
// `ss` with a full filter, instead of walking every socket), so a watch can ask every
// few milliseconds without loading the machine. Measured under the local backend (all
// cases in one namespace, 700 sockets): dumps every 5 ms per program case kept
// tcp_diag_dump at 6-20 % of both CPUs. Made on a thread inside the namespace; used
// from one thread at a time.
class SocketLookup {
 public:
  explicit SocketLookup(const Namespace& ns);  // throws std::system_error naming the namespace
  SocketLookup(SocketLookup&&) noexcept;
  SocketLookup& operator=(SocketLookup&&) noexcept;
  ~SocketLookup();

  // The TCP socket whose local and remote ends are these (any state but LISTEN, also
  // TIME-WAIT), nullopt when the kernel has none. The kernel falls back to a listener
  // on the local port when the connection is gone; that is none too. Throws
  // std::system_error on other failures.
  std::optional<SocketTimer> find(int family, const std::string& local, std::uint16_t local_port,
                                  const std::string& remote, std::uint16_t remote_port);

 private:
  struct nl_sock* sock_ = nullptr;
  std::string label_;
};

// Pure formatting, as iproute2's ss prints it (misc/ss.c, print_ms_timer, with the
// July 2024 fix "ss: fix expired time format of timer"): "200ms", "050ms" (three
// digits below 1 s), "2.996sec" (1-9 s keep the ms), "12sec", "1min5sec",
// "12min"; "" for 0. Older ss (Debian 12's iproute2 6.1) prints "2.996ms" for 2996.
std::string ss_duration(std::uint32_t ms);
// "timer:(keepalive,2.996sec,0)"; "" when no timer is pending, as ss prints nothing then.
std::string describe(const SocketTimer& timer);
// ss's state column: "ESTAB", "SYN-SENT", "TIME-WAIT", ...
std::string_view tcp_state_name(int state);

}  // namespace kah::netns
