#include "harness/run/endpoints.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <optional>
#include <string_view>
#include <stdexcept>

#include <fmt/format.h>

#include "harness/clock/jiffies.h"
#include "harness/clock/realtime_steps.h"
#include "harness/evidence/capture.h"
#include "harness/run/fork_gate.h"
#include "harness/run/watcher.h"

namespace kah {
namespace {

union SockAddr {
  sockaddr sa;
  sockaddr_in v4;
  sockaddr_in6 v6;
};

socklen_t make_address(Family family, const std::string& address, std::uint16_t port, SockAddr& out) {
  std::memset(&out, 0, sizeof out);
  if (family == Family::ipv4) {
    out.v4.sin_family = AF_INET;
    out.v4.sin_port = htons(port);
    if (inet_pton(AF_INET, address.c_str(), &out.v4.sin_addr) != 1)
      throw std::invalid_argument("not an IPv4 address: " + address);
    return sizeof out.v4;
  }
  out.v6.sin6_family = AF_INET6;
  out.v6.sin6_port = htons(port);
  if (inet_pton(AF_INET6, address.c_str(), &out.v6.sin6_addr) != 1)
    throw std::invalid_argument("not an IPv6 address: " + address);
  return sizeof out.v6;
}

int domain(Family family) { return family == Family::ipv4 ? AF_INET : AF_INET6; }

void set_int(int fd, int level, int option, int value, const char* what) {
  if (setsockopt(fd, level, option, &value, sizeof value) != 0)
    throw_errno(fmt::format("cannot set {} = {}", what, value));
}

int get_int(int fd, int level, int option, const char* what) {
  int value = 0;
  socklen_t len = sizeof value;
  if (getsockopt(fd, level, option, &value, &len) != 0) throw_errno(fmt::format("cannot read {}", what));
  return value;
}

// Retries on EINTR; throws on error or EOF.
void write_all(int fd, const char* data, std::size_t n, const char* what) {
  while (n > 0) {
    const ssize_t w = ::write(fd, data, n);
    if (w < 0 && errno == EINTR) continue;
    if (w < 0) throw_errno(what);
    data += w;
    n -= static_cast<std::size_t>(w);
  }
}

void read_exact(int fd, char* data, std::size_t n, const char* what) {
  while (n > 0) {
    const ssize_t r = ::read(fd, data, n);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) throw_errno(what);
    if (r == 0) throw std::runtime_error(fmt::format("{}: the peer closed the connection", what));
    data += r;
    n -= static_cast<std::size_t>(r);
  }
}

// Offset that turns run realtime (realtime_steps.h) into CLOCK_MONOTONIC.
double realtime_to_monotonic_ms() { return -RealtimeSteps::process().reference_ms(); }

// Reads exactly `n` bytes and returns the kernel's receive time of the last
// segment (SO_TIMESTAMPNS, set when the socket was made: CLOCK_REALTIME), in run
// realtime ms, as captures give it. A stamp a realtime step left ambiguous is kept
// as placed: the runner takes t_r from the capture's stamp of the same segment when
// the two differ (origin_from_capture), and the capture marks its own.
double read_timestamped(int fd, char* data, std::size_t n) {
  double received = 0;
  while (n > 0) {
    iovec iov{data, n};
    alignas(cmsghdr) char control[CMSG_SPACE(sizeof(timespec))];
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control;
    msg.msg_controllen = sizeof control;
    const ssize_t r = recvmsg(fd, &msg, 0);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) throw_errno("cannot read the server's reply");
    if (r == 0) throw std::runtime_error("the server closed the connection during the exchange");
    const double woke = monotonic_ms();
    bool stamped = false;
    for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr; c = CMSG_NXTHDR(&msg, c)) {
      if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_TIMESTAMPNS) {
        timespec ts{};
        std::memcpy(&ts, CMSG_DATA(c), sizeof ts);
        bool ambiguous = false;
        const std::int64_t run_ns = RealtimeSteps::process().checked().to_run_realtime(
            static_cast<std::int64_t>(ts.tv_sec) * 1000000000 + ts.tv_nsec, ambiguous);
        received = static_cast<double>(run_ns / 1000000000) * 1e3 + static_cast<double>(run_ns % 1000000000) / 1e6;
        stamped = true;
      }
    }
    // No kernel stamp: fall back to when we woke, as realtime (measured only then).
    if (!stamped) received = woke - realtime_to_monotonic_ms();
    data += r;
    n -= static_cast<std::size_t>(r);
  }
  return received;
}

}  // namespace

UniqueFd open_listener(const netns::Namespace& ns, Family family, const std::string& address,
                       std::uint16_t port) {
  return ns.run([&] {
    UniqueFd fd(socket(domain(family), SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (!fd) throw_errno("cannot create the listening socket in " + ns.label());
    set_int(fd.get(), SOL_SOCKET, SO_REUSEADDR, 1, "SO_REUSEADDR");
    SockAddr addr;
    const auto len = make_address(family, address, port, addr);
    if (bind(fd.get(), &addr.sa, len) != 0)
      throw_errno(fmt::format("cannot bind the listener to [{}]:{} in {}", address, port, ns.label()));
    if (listen(fd.get(), SOMAXCONN) != 0) throw_errno("cannot listen in " + ns.label());
    return move_above(std::move(fd));
  });
}

std::uint16_t bound_port(int fd) {
  SockAddr addr;
  socklen_t len = sizeof addr;
  if (getsockname(fd, &addr.sa, &len) != 0) throw_errno("getsockname");
  return ntohs(addr.sa.sa_family == AF_INET6 ? addr.v6.sin6_port : addr.v4.sin_port);
}

std::vector<UniqueFd> open_client_sockets(const netns::Namespace& ns, const ConnectionSpec& spec, int n) {
  return ns.run([&] {
    std::vector<UniqueFd> sockets;
    sockets.reserve(static_cast<std::size_t>(n));
    for (int i = 0; i < n; ++i) {
      UniqueFd fd(socket(domain(spec.family), SOCK_STREAM | SOCK_CLOEXEC, 0));
      if (!fd) throw_errno("cannot create a client socket in " + ns.label());
      const auto& ka = spec.keepalive;
      set_int(fd.get(), SOL_SOCKET, SO_KEEPALIVE, ka.enabled ? 1 : 0, "SO_KEEPALIVE");
      if (ka.idle_s) set_int(fd.get(), IPPROTO_TCP, TCP_KEEPIDLE, *ka.idle_s, "TCP_KEEPIDLE");
      if (ka.interval_s) set_int(fd.get(), IPPROTO_TCP, TCP_KEEPINTVL, *ka.interval_s, "TCP_KEEPINTVL");
      if (ka.count) set_int(fd.get(), IPPROTO_TCP, TCP_KEEPCNT, *ka.count, "TCP_KEEPCNT");
      if (spec.user_timeout_ms > 0)
        set_int(fd.get(), IPPROTO_TCP, TCP_USER_TIMEOUT, spec.user_timeout_ms, "TCP_USER_TIMEOUT");
      // Receive stamps on from the start: the kernel stamps a segment on arrival only if
      // some socket wants stamps then (net_enable_timestamp() switches the static key on
      // from a work queue), and a reply that arrived before SO_TIMESTAMPNS was set would
      // be read without a stamp, timed by the wake-up instead: t_r too late.
      set_int(fd.get(), SOL_SOCKET, SO_TIMESTAMPNS, 1, "SO_TIMESTAMPNS");
      sockets.push_back(move_above(std::move(fd)));
    }
    return sockets;
  });
}

Established establish(int client, int listener, Family family, const std::string& server_address,
                      std::uint16_t port, const Exchange& exchange) {
  SockAddr addr;
  const auto len = make_address(family, server_address, port, addr);
  Established e;
  e.connect_started_ms = monotonic_ms();
  while (connect(client, &addr.sa, len) != 0) {
    if (errno == EINTR) continue;
    throw_errno(fmt::format("cannot connect to [{}]:{}", server_address, port));
  }
  e.established_ms = monotonic_ms();
  e.server = UniqueFd(accept4(listener, nullptr, nullptr, SOCK_CLOEXEC));
  if (!e.server) throw_errno("cannot accept the connection");
  e.server = move_above(std::move(e.server));

  SockAddr local;
  socklen_t local_len = sizeof local;
  if (getsockname(client, &local.sa, &local_len) != 0) throw_errno("getsockname");
  e.client_port = ntohs(family == Family::ipv4 ? local.v4.sin_port : local.v6.sin6_port);

  std::string buf(std::max(exchange.request.size(), exchange.reply.size()), '\0');
  write_all(client, exchange.request.data(), exchange.request.size(), "cannot send the request");
  read_exact(e.server.get(), buf.data(), exchange.request.size(), "cannot read the request on the server");
  if (buf.compare(0, exchange.request.size(), exchange.request) != 0)
    throw std::runtime_error("the server read a different request than the client sent");
  // Quick ACK: the client acknowledges the reply at once, so nothing is left
  // unacknowledged when the fault hits.
  set_int(client, IPPROTO_TCP, TCP_QUICKACK, 1, "TCP_QUICKACK");
  write_all(e.server.get(), exchange.reply.data(), exchange.reply.size(), "cannot send the reply");
  e.server_activity_ms = monotonic_ms();
  e.last_received_realtime_ms = read_timestamped(client, buf.data(), exchange.reply.size());
  e.last_received_ms = e.last_received_realtime_ms + realtime_to_monotonic_ms();
  if (buf.compare(0, exchange.reply.size(), exchange.reply) != 0)
    throw std::runtime_error("the client read a different reply than the server sent");
  set_int(client, IPPROTO_TCP, TCP_QUICKACK, 1, "TCP_QUICKACK");
  return e;
}

void start_connect(int client, Family family, const std::string& server_address, std::uint16_t port) {
  const int flags = fcntl(client, F_GETFL);
  if (flags < 0 || fcntl(client, F_SETFL, flags | O_NONBLOCK) != 0) throw_errno("cannot make the socket non-blocking");
  SockAddr addr;
  const auto len = make_address(family, server_address, port, addr);
  if (connect(client, &addr.sa, len) != 0 && errno != EINPROGRESS)
    throw_errno(fmt::format("cannot start connecting to [{}]:{}", server_address, port));
}

RetransmissionState retransmission_state(int socket) {
  tcp_info info{};
  socklen_t len = sizeof info;
  if (getsockopt(socket, IPPROTO_TCP, TCP_INFO, &info, &len) != 0) throw_errno("cannot read TCP_INFO");
  char cc[16] = {};  // TCP_CA_NAME_MAX
  socklen_t cc_len = sizeof cc;
  if (getsockopt(socket, IPPROTO_TCP, TCP_CONGESTION, cc, &cc_len) != 0) throw_errno("cannot read TCP_CONGESTION");
  const bool paced = std::string(cc, strnlen(cc, cc_len)) == "bbr";
  return {info.tcpi_rto / 1000.0, info.tcpi_rtt / 1000.0, (info.tcpi_options & TCPI_OPT_SACK) != 0, paced};
}

std::uint64_t IdleClock::counted_from(int hz) const {
  // jiffies_to_msecs() is exact at HZ 100, 250 and 1000 and rounds at 300: the nearest
  // whole jiffy is the one it came from.
  const auto ticks = static_cast<std::uint64_t>(std::llround(ms_since_received * hz / 1000.0));
  return jiffies_now - ticks;
}

namespace {

// ms_since_last_received(), empty (errno set) when TCP_INFO cannot be read.
std::optional<std::uint32_t> read_ms_since_received(int socket) {
  tcp_info info{};
  socklen_t len = sizeof info;
  if (getsockopt(socket, IPPROTO_TCP, TCP_INFO, &info, &len) != 0) return std::nullopt;
  return std::min(info.tcpi_last_data_recv, info.tcpi_last_ack_recv);
}

}  // namespace

std::uint32_t ms_since_last_received(int socket) {
  const auto ms = read_ms_since_received(socket);
  if (!ms) throw_errno("cannot read TCP_INFO");
  return *ms;
}

std::vector<std::optional<IdleClock>> read_idle_clocks(const std::vector<int>& sockets) {
  constexpr int kPasses = 4;  // a pass takes ~2 us per socket; a jiffy is 1..10 ms
  std::vector<std::optional<IdleClock>> clocks(sockets.size());
  for (int pass = 0; pass < kPasses; ++pass) {
    const double read_ms = monotonic_ms();
    const auto before = read_jiffies();
    if (!before) return clocks;
    std::vector<std::optional<std::uint32_t>> since(sockets.size());
    for (std::size_t i = 0; i < sockets.size(); ++i) since[i] = read_ms_since_received(sockets[i]);
    if (read_jiffies() != before) continue;
    for (std::size_t i = 0; i < sockets.size(); ++i)
      if (since[i]) clocks[i] = IdleClock{*before, *since[i], read_ms};
    return clocks;
  }
  return clocks;
}

void use_idle_clock(model::Input& in, const std::optional<IdleClock>& clock, double origin_ms) {
  auto& calibration = in.kernel.calibration;
  if (!clock || !calibration || calibration->jiffies_modulus != 0 || !in.kernel.hz) return;
  if (clock->read_ms <= origin_ms + std::max(0.0, in.kernel.receive_delay_ms)) return;
  // Read after the first probe could have gone out, its answer may have moved rcv_tstamp
  // (measured under load: a fault that landed after probe 1 of a frozen peer, and the
  // reading was that ACK's jiffy, 253 after t_r's).
  if (clock->read_ms >= origin_ms + 1000.0 * in.keepalive.idle_s) return;
  calibration->idle_clock_jiffies = clock->counted_from(*in.kernel.hz);
}

void wait_until_idle(int server, double timeout_ms) {
  const double give_up = monotonic_ms() + timeout_ms;
  for (;;) {
    tcp_info info{};
    socklen_t len = sizeof info;
    if (getsockopt(server, IPPROTO_TCP, TCP_INFO, &info, &len) != 0) throw_errno("cannot read TCP_INFO");
    if (info.tcpi_unacked == 0) return;
    if (monotonic_ms() > give_up)
      throw std::runtime_error(fmt::format(
          "the connection did not become idle within {} ms ({} segments unacknowledged)", timeout_ms,
          info.tcpi_unacked));
    timespec pause{0, 1'000'000};
    nanosleep(&pause, nullptr);
  }
}

void close_silently(UniqueFd socket) {
  set_int(socket.get(), IPPROTO_TCP, TCP_REPAIR, 1, "TCP_REPAIR (needs CAP_NET_ADMIN)");
  const auto gate = hold_for_close();  // gone now, not when a forked child lets go (fork_gate.h)
  socket.close();
}

namespace {

// A sysctl that came with a later kernel than some (tcp_syn_linear_timeouts: 6.5,
// tcp_rto_min_us: 6.11, tcp_rto_max_ms: 6.15; harness/model/kernel_version.h): its
// value, or nullopt where this kernel has no such key (which keys exist does not
// depend on the namespace).
std::optional<double> newer_sysctl(const netns::Namespace& ns, std::string_view key) {
  if (!std::filesystem::exists(netns::sysctl_path(key))) return std::nullopt;
  return std::stod(ns.read_sysctl(key));
}

}  // namespace

model::Retransmission namespace_retransmission(const netns::Namespace& ns) {
  model::Retransmission r;
  r.retries2 = std::stoi(ns.read_sysctl("net.ipv4.tcp_retries2"));
  r.syn_retries = std::stoi(ns.read_sysctl("net.ipv4.tcp_syn_retries"));
  r.early_retrans = std::stoi(ns.read_sysctl("net.ipv4.tcp_early_retrans"));
  r.syn_linear_timeouts = static_cast<int>(newer_sysctl(ns, "net.ipv4.tcp_syn_linear_timeouts").value_or(0));
  r.rto_min_ms = newer_sysctl(ns, "net.ipv4.tcp_rto_min_us").value_or(1000 * r.rto_min_ms) / 1000;
  r.rto_max_ms = newer_sysctl(ns, "net.ipv4.tcp_rto_max_ms").value_or(r.rto_max_ms);
  return r;
}

model::Keepalive model_keepalive(const EffectiveKeepalive& k) {
  return {k.enabled, k.idle_s, k.interval_s, k.count, k.user_timeout_ms};
}

EffectiveKeepalive read_keepalive(int socket) {
  EffectiveKeepalive k;
  k.enabled = get_int(socket, SOL_SOCKET, SO_KEEPALIVE, "SO_KEEPALIVE") != 0;
  k.idle_s = get_int(socket, IPPROTO_TCP, TCP_KEEPIDLE, "TCP_KEEPIDLE");
  k.interval_s = get_int(socket, IPPROTO_TCP, TCP_KEEPINTVL, "TCP_KEEPINTVL");
  k.count = get_int(socket, IPPROTO_TCP, TCP_KEEPCNT, "TCP_KEEPCNT");
  k.user_timeout_ms = get_int(socket, IPPROTO_TCP, TCP_USER_TIMEOUT, "TCP_USER_TIMEOUT");
  return k;
}

PeerProcess PeerProcess::spawn(const std::vector<int>& sockets) {
  // The child must hold only its own sockets: an inherited copy of another case's
  // socket would keep that socket alive after its case closed it (a peer-reboot
  // would then reset nothing). The parent waits until the child has closed the rest,
  // so a SIGSTOP right after spawn() cannot freeze the child with them still open.
  int ready[2];
  if (pipe2(ready, O_CLOEXEC) != 0) throw_errno("cannot create a pipe for the peer application");
  UniqueFd ready_read(ready[0]), ready_write(ready[1]);
  std::vector<unsigned> keep(sockets.begin(), sockets.end());
  keep.push_back(static_cast<unsigned>(ready[1]));
  std::sort(keep.begin(), keep.end());  // before fork: the child must not allocate
  const pid_t parent = getpid();
  auto gate = hold_for_fork();  // until the child has closed what it inherited (fork_gate.h)
  const pid_t pid = fork();
  if (pid < 0) throw_errno("cannot fork the peer application");
  if (pid == 0) {
    // Child of a multi-threaded parent: async-signal-safe calls only.
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) _exit(0);
    unsigned next = 0;  // stdin/out/err go too: the child says nothing
    for (unsigned fd : keep) {
      if (fd > next) close_range(next, fd - 1, 0);
      next = fd + 1;
    }
    close_range(next, ~0U, 0);
    const char byte = 1;
    if (::write(ready[1], &byte, 1) != 1) _exit(1);
    close(ready[1]);
    for (;;) pause();
  }
  PeerProcess child(pid);
  ready_write.reset();
  char byte = 0;
  ssize_t n;
  while ((n = ::read(ready_read.get(), &byte, 1)) < 0 && errno == EINTR) {
  }
  if (n != 1) throw std::runtime_error(fmt::format("the peer application (pid {}) did not start", pid));
  return child;
}

PeerProcess::PeerProcess(PeerProcess&& other) noexcept : pid_(std::exchange(other.pid_, -1)) {}

PeerProcess& PeerProcess::operator=(PeerProcess&& other) noexcept {
  if (this != &other) {
    kill_and_reap();
    pid_ = std::exchange(other.pid_, -1);
  }
  return *this;
}

PeerProcess::~PeerProcess() { kill_and_reap(); }

void PeerProcess::freeze() {
  if (kill(pid_, SIGSTOP) != 0) throw_errno(fmt::format("cannot stop the peer application (pid {})", pid_));
}

void PeerProcess::kill_and_reap() noexcept {
  if (pid_ <= 0) return;
  kill(pid_, SIGKILL);
  while (waitpid(pid_, nullptr, 0) < 0 && errno == EINTR) {
  }
  pid_ = -1;
}

}  // namespace kah
