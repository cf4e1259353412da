// The two ends of a tested connection: the client socket under test, and the
// server side that plays the peer (a listener, the accepted sockets, and for
// peer-freeze a separate process that holds them).
//
// Sockets are created inside their namespace (Namespace::run) and then used from
// the caller's thread: a socket keeps its namespace for life.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "harness/case/case.h"
#include "harness/model/timing.h"
#include "netns/fd.h"
#include "netns/namespace.h"

namespace kah {

// A TCP listener bound to address:port inside `ns`.
UniqueFd open_listener(const netns::Namespace& ns, Family family, const std::string& address,
                       std::uint16_t port);

// The port a socket is bound to (a listener bound to port 0: the one the kernel picked).
std::uint16_t bound_port(int fd);

// Creates `n` client sockets of `family` inside `ns` with the keepalive options of
// `spec` already set, so the keepalive timer is armed when the connection is established.
std::vector<UniqueFd> open_client_sockets(const netns::Namespace& ns, const ConnectionSpec& spec,
                                          int n);

// A connection after its one exchange of data.
struct Established {
  UniqueFd server;               // the accepted socket
  std::uint16_t client_port = 0;
  double connect_started_ms = 0; // CLOCK_MONOTONIC just before connect()
  double established_ms = 0;     // CLOCK_MONOTONIC when connect() returned (the kernel
                                 // armed the keepalive timer in between)
  double last_received_ms = 0;   // CLOCK_MONOTONIC (kernel receive timestamp) of the reply
  double last_received_realtime_ms = 0;  // the same stamp as the kernel gave it: CLOCK_REALTIME, as captures
  double server_activity_ms = 0; // CLOCK_MONOTONIC just after the server application wrote the reply
};

// The one request and reply that open a tested connection (both sides are ours, so
// each reads exactly the other's length).
struct Exchange {
  std::string request = "ping";
  std::string reply = "pong";
};

// connect() -> accept() -> request -> reply: the client's last received segment
// is the reply; the client ACKs it at once (TCP_QUICKACK).
Established establish(int client, int listener, Family family, const std::string& server_address,
                      std::uint16_t port, const Exchange& exchange = {});

// Starts a non-blocking connect() (for Traffic::connecting: the outcome is watched
// like any other connection's end).
void start_connect(int client, Family family, const std::string& server_address, std::uint16_t port);

// What the retransmission timer will start from (TCP_INFO), read before the fault.
struct RetransmissionState {
  double rto_ms = 0;   // tcpi_rto
  double srtt_ms = 0;  // tcpi_rtt
  bool sack = false;   // SACK negotiated (tcpi_options & TCPI_OPT_SACK): decides the tail-loss probe
  // TCP pacing on (TCP_CONGESTION is bbr, which asks for internal pacing when no fq
  // qdisc paces the flow): the arms made for new data then add a pacing delay of one
  // jiffy (model::Retransmission::pacing_delay_jiffies).
  bool paced = false;
};
RetransmissionState retransmission_state(int socket);

// Where the kernel's keepalive idle clock of a socket starts, read from the kernel
// itself: jiffies (from /proc/timer_list, root only) at the reading, and how long
// before it the socket last received anything (TCP_INFO: the smaller of
// tcpi_last_data_recv and tcpi_last_ack_recv, i.e. the later of icsk_ack.lrcvtime and
// rcv_tstamp, which is what tcp_keepalive_timer() counts elapsed time from).
struct IdleClock {
  std::uint64_t jiffies_now = 0;
  std::uint32_t ms_since_received = 0;  // whole jiffies, in ms (jiffies_to_msecs)
  double read_ms = 0;                   // CLOCK_MONOTONIC, just before the reading
  // The jiffy it counts from, with the kernel's HZ.
  std::uint64_t counted_from(int hz) const;
};
// How long ago (ms, whole jiffies) the socket last received anything: keepalive's idle
// clock counts from the later of the last data (icsk_ack.lrcvtime) and the last ACK
// (rcv_tstamp). Throws when TCP_INFO cannot be read.
std::uint32_t ms_since_last_received(int socket);
// One pass over `sockets` between two readings of jiffies, repeated (a few times at
// most) until jiffies did not move during the pass, so every value is exact. Empty
// entries: the socket could not be read, or jiffies cannot be (not root), or it kept moving.
std::vector<std::optional<IdleClock>> read_idle_clocks(const std::vector<int>& sockets);
// Sets in.kernel.calibration->idle_clock_jiffies from `clock` when the calibration knows
// jiffies themselves and the reading was made after the kernel took in the segment at
// t = 0 (`origin_ms`, CLOCK_MONOTONIC: a segment received after the reading would have
// moved the kernel's clock past it) and before the first keepalive probe could have
// left (the peer's answer to it moves the clock on).
void use_idle_clock(model::Input& in, const std::optional<IdleClock>& clock, double origin_ms);

// The namespace's retransmission sysctls (tcp_retries2, tcp_syn_retries,
// tcp_early_retrans), as its sockets' kernel will use them.
model::Retransmission namespace_retransmission(const netns::Namespace& ns);

// Waits until the server has no unacknowledged data on `server` (the client's last
// ACK arrived), so the connection is idle on both sides. Throws after timeout_ms.
void wait_until_idle(int server, double timeout_ms);

// Closes a socket without sending anything (TCP_REPAIR): the peer's kernel forgets
// the connection silently, as in a reboot. Needs CAP_NET_ADMIN.
void close_silently(UniqueFd socket);

// Effective keepalive settings the kernel uses for this socket (TCP_KEEPIDLE etc.
// read back: the socket value, or the namespace sysctl when the option is unset).
struct EffectiveKeepalive {
  bool enabled = false;
  int idle_s = 0, interval_s = 0, count = 0, user_timeout_ms = 0;
};
EffectiveKeepalive read_keepalive(int socket);
// The same as the timing model takes it.
model::Keepalive model_keepalive(const EffectiveKeepalive& k);

// The peer's application as a separate process holding the accepted sockets; it
// dies with the harness (PR_SET_PDEATHSIG) and is tracked by pid only.
class PeerProcess {
 public:
  // Forks a child that keeps `sockets` open and waits; the caller closes its copies.
  static PeerProcess spawn(const std::vector<int>& sockets);
  PeerProcess(PeerProcess&& other) noexcept;
  PeerProcess& operator=(PeerProcess&& other) noexcept;
  PeerProcess(const PeerProcess&) = delete;
  PeerProcess& operator=(const PeerProcess&) = delete;
  ~PeerProcess();  // SIGKILL and reap

  void freeze();  // SIGSTOP
  pid_t pid() const noexcept { return pid_; }

 private:
  explicit PeerProcess(pid_t pid) noexcept : pid_(pid) {}
  void kill_and_reap() noexcept;
  pid_t pid_ = -1;
};

}  // namespace kah
