#include "harness/clock_canary.h"

#include <arpa/inet.h>
#include <linux/if_packet.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <netinet/in.h>
#include <netinet/ip.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <ctime>
#include <limits>
#include <map>
#include <optional>
#include <thread>

#include <fmt/format.h>

#include "harness/model/timing.h"
#include "netns/fd.h"
#include "netns/namespace.h"

namespace kah {
namespace {

constexpr int kConnections = 12;
constexpr std::int64_t kConnectSpacingNs = 37'000'000;  // spreads them over wheel buckets

std::int64_t now_ns(clockid_t clock) {
  timespec ts{};
  clock_gettime(clock, &ts);
  return static_cast<std::int64_t>(ts.tv_sec) * 1000000000 + ts.tv_nsec;
}

// CLOCK_REALTIME - CLOCK_MONOTONIC, from the tightest of a few bracketed readings.
std::int64_t realtime_offset_ns() {
  std::int64_t best_span = std::numeric_limits<std::int64_t>::max(), offset = 0;
  for (int i = 0; i < 16; ++i) {
    const std::int64_t before = now_ns(CLOCK_MONOTONIC);
    const std::int64_t real = now_ns(CLOCK_REALTIME);
    const std::int64_t after = now_ns(CLOCK_MONOTONIC);
    if (after - before < best_span) best_span = after - before, offset = real - (before + (after - before) / 2);
  }
  return offset;
}

void set_int(int fd, int level, int option, int value, const char* what) {
  if (setsockopt(fd, level, option, &value, sizeof value) != 0) throw_errno(what);
}

struct Canary {
  UniqueFd tap;       // AF_PACKET on lo: every frame leaving, stamped by the kernel
  UniqueFd listener;  // 127.0.0.1, the healthy peer
  std::uint16_t port = 0;
};

// A keepalive probe: an IPv4 TCP segment, ACK only, no payload. Returns its source
// port, or 0.
std::uint16_t probe_source_port(const unsigned char* frame, std::size_t len) {
  if (len < sizeof(ether_header) + sizeof(iphdr)) return 0;
  ether_header e{};
  std::memcpy(&e, frame, sizeof e);
  if (ntohs(e.ether_type) != ETHERTYPE_IP) return 0;
  const unsigned char* ip = frame + sizeof(ether_header);
  iphdr h{};
  std::memcpy(&h, ip, sizeof h);
  if (h.version != 4 || h.protocol != IPPROTO_TCP) return 0;
  const std::size_t ihl = std::size_t{h.ihl} * 4;
  if (len < sizeof(ether_header) + ihl + sizeof(tcphdr)) return 0;
  tcphdr t{};
  std::memcpy(&t, ip + ihl, sizeof t);
  const std::size_t payload = ntohs(h.tot_len) - ihl - std::size_t{t.doff} * 4;
  if (payload != 0 || t.syn || t.fin || t.rst || !t.ack) return 0;
  return ntohs(t.source);
}

}  // namespace

CanaryResult watch_keepalive_firings(int hz) {
  CanaryResult out;
  if (hz <= 0) {
    out.error = "HZ unknown";
    return out;
  }
  try {
    // The shortest whole-second idle on wheel level 2 (>= LVL_START(2) = 504 jiffies),
    // for jiffies modulo 64; half the connections use 1 s, for more (finer) firings.
    const int long_idle_s = (504 + hz - 1) / hz;
    const std::uint64_t tick_ns = (1000000000ULL + static_cast<std::uint64_t>(hz) / 2) / static_cast<std::uint64_t>(hz);

    const auto ns = netns::Namespace::create("clock-canary");
    Canary canary = ns.run([] {
      Canary c;
      // ETH_P_ALL: protocol-bound packet sockets only see frames coming in, not leaving.
      c.tap = UniqueFd(::socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC | SOCK_NONBLOCK, htons(ETH_P_ALL)));
      if (!c.tap) throw_errno("AF_PACKET socket");
      sockaddr_ll ll{};
      ll.sll_family = AF_PACKET;
      ll.sll_protocol = htons(ETH_P_ALL);
      ll.sll_ifindex = static_cast<int>(if_nametoindex("lo"));
      if (::bind(c.tap.get(), reinterpret_cast<const sockaddr*>(&ll), sizeof ll) != 0) throw_errno("bind AF_PACKET to lo");
      set_int(c.tap.get(), SOL_SOCKET, SO_TIMESTAMPNS, 1, "SO_TIMESTAMPNS");

      c.listener = UniqueFd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
      if (!c.listener) throw_errno("listener socket");
      sockaddr_in a{};
      a.sin_family = AF_INET;
      a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
      if (::bind(c.listener.get(), reinterpret_cast<const sockaddr*>(&a), sizeof a) != 0) throw_errno("bind listener");
      if (::listen(c.listener.get(), kConnections) != 0) throw_errno("listen");
      socklen_t alen = sizeof a;
      if (::getsockname(c.listener.get(), reinterpret_cast<sockaddr*>(&a), &alen) != 0) throw_errno("getsockname");
      c.port = ntohs(a.sin_port);
      return c;
    });

    struct Watched {
      std::uint64_t first_granularity = 1;  // the idle timer, armed at establishment
      std::uint64_t later_granularity = 1;  // re-armed for the interval from its callback
      int probes = 0;
    };
    std::map<std::uint16_t, Watched> watched;
    std::vector<UniqueFd> sockets;
    for (int i = 0; i < kConnections; ++i) {
      const int idle_s = i % 2 == 0 ? long_idle_s : 1;
      UniqueFd client = ns.run([] {
        UniqueFd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
        if (!fd) throw_errno("canary client socket");
        return fd;
      });
      set_int(client.get(), SOL_SOCKET, SO_KEEPALIVE, 1, "SO_KEEPALIVE");
      set_int(client.get(), IPPROTO_TCP, TCP_KEEPIDLE, idle_s, "TCP_KEEPIDLE");
      set_int(client.get(), IPPROTO_TCP, TCP_KEEPINTVL, 1, "TCP_KEEPINTVL");
      set_int(client.get(), IPPROTO_TCP, TCP_KEEPCNT, 9, "TCP_KEEPCNT");
      sockaddr_in a{};
      a.sin_family = AF_INET;
      a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
      a.sin_port = htons(canary.port);
      if (::connect(client.get(), reinterpret_cast<const sockaddr*>(&a), sizeof a) != 0) throw_errno("canary connect");
      socklen_t alen = sizeof a;
      if (::getsockname(client.get(), reinterpret_cast<sockaddr*>(&a), &alen) != 0) throw_errno("getsockname");
      UniqueFd server(::accept4(canary.listener.get(), nullptr, nullptr, SOCK_CLOEXEC));
      if (!server) throw_errno("canary accept");
      const auto idle_j = static_cast<std::uint64_t>(idle_s) * static_cast<std::uint64_t>(hz);
      const auto interval_j = static_cast<std::uint64_t>(hz);
      watched[ntohs(a.sin_port)] = {model::wheel_granularity(idle_j, hz), model::wheel_granularity(interval_j - 1, hz), 0};
      sockets.push_back(std::move(client));
      sockets.push_back(std::move(server));
      std::this_thread::sleep_for(std::chrono::nanoseconds(kConnectSpacingNs));
    }

    // Until the long timers have fired (their idle plus a whole bucket of lateness).
    const std::int64_t start = now_ns(CLOCK_MONOTONIC);
    const std::int64_t until =
        start + static_cast<std::int64_t>(long_idle_s) * 1000000000 + 64 * static_cast<std::int64_t>(tick_ns) + 100'000'000;
    const std::int64_t offset = realtime_offset_ns();
    std::array<unsigned char, 2048> frame{};
    std::array<char, CMSG_SPACE(sizeof(timespec))> control{};
    for (std::int64_t now = start; now < until; now = now_ns(CLOCK_MONOTONIC)) {
      pollfd p{canary.tap.get(), POLLIN, 0};
      const int wait_ms = static_cast<int>(std::min<std::int64_t>((until - now) / 1000000 + 1, 200));
      if (::poll(&p, 1, wait_ms) < 0 && errno != EINTR) throw_errno("poll canary tap");
      for (;;) {
        sockaddr_ll from{};
        iovec iov{frame.data(), frame.size()};
        msghdr msg{};
        msg.msg_name = &from;
        msg.msg_namelen = sizeof from;
        msg.msg_iov = &iov;
        msg.msg_iovlen = 1;
        msg.msg_control = control.data();
        msg.msg_controllen = control.size();
        const ssize_t n = ::recvmsg(canary.tap.get(), &msg, 0);
        if (n < 0) {
          if (errno == EINTR) continue;
          if (errno == EAGAIN || errno == EWOULDBLOCK) break;
          throw_errno("recvmsg canary tap");
        }
        if (from.sll_pkttype != PACKET_OUTGOING) continue;  // loopback shows each frame twice
        const std::uint16_t port = probe_source_port(frame.data(), static_cast<std::size_t>(n));
        const auto w = watched.find(port);
        if (w == watched.end()) continue;
        std::optional<std::int64_t> stamp;
        for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr; c = CMSG_NXTHDR(&msg, c))
          if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_TIMESTAMPNS) {
            timespec ts{};
            std::memcpy(&ts, CMSG_DATA(c), sizeof ts);
            stamp = static_cast<std::int64_t>(ts.tv_sec) * 1000000000 + ts.tv_nsec - offset;
          }
        // Handshakes left before `start`; the earliest timer fires 1 s after the first
        // connection, itself less than 1 s before `start`.
        if (!stamp || *stamp < start) continue;
        out.firings.push_back({*stamp, w->second.probes++ == 0 ? w->second.first_granularity : w->second.later_granularity});
      }
    }
    if (out.firings.empty()) out.error = "no keepalive probe was seen leaving the canary";
  } catch (const std::exception& e) {
    out.firings.clear();
    out.error = fmt::format("timer-firings canary: {}", e.what());
  }
  return out;
}

CalibrationChoice calibrate_jiffies(int hz) {
  CalibrationChoice choice;
  const bool readable = !read_jiffy_samples(1, std::chrono::microseconds(0)).empty();
  if (readable) {
    choice.clock = JiffyClock::measure(hz);
    if (choice.clock) {
      if (choice.clock->lagging_readings() > 0)
        choice.note = fmt::format("{} of {} readings showed jiffies up to {:.2f} ms late (late ticks)",
                                  choice.clock->lagging_readings(), choice.clock->readings(),
                                  static_cast<double>(choice.clock->max_lag_ns()) / 1e6);
      return choice;
    }
  }
  const std::string why = readable ? "/proc/timer_list readings did not fit one clock"
                                   : "/proc/timer_list cannot be read (not root, or masked)";
  const auto canary = watch_keepalive_firings(hz);
  choice.clock = JiffyClock::from_timer_firings(hz, canary.firings);
  if (choice.clock) {
    choice.note = fmt::format("{}: {} keepalive timer firings; jiffies known modulo {}", why, canary.firings.size(),
                              choice.clock->jiffies_modulus());
    return choice;
  }
  choice.note = fmt::format("{}; {}", why,
                            canary.error.empty()
                                ? fmt::format("{} timer firings did not give the tick", canary.firings.size())
                                : canary.error);
  return choice;
}

}  // namespace kah
