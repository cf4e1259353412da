#include "harness/clock/canary.h"
#include "harness/clock/clock.h"
#include "harness/clock/realtime_steps.h"

#include <arpa/inet.h>
#include <linux/if_addr.h>
#include <linux/if_packet.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
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
#include <stdexcept>
#include <thread>

#include <fmt/format.h>

#include "harness/model/timing.h"
#include "netns/fd.h"
#include "netns/namespace.h"
#include "netns/packet_socket.h"

namespace kah {
namespace {

constexpr int kConnections = 12;
constexpr std::int64_t kConnectSpacingNs = 37'000'000;  // spreads them over wheel buckets

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

// rtnetlink without its macros (they use C casts): 4-byte aligned headers and attributes.
constexpr std::size_t align4(std::size_t n) { return (n + 3) & ~std::size_t{3}; }
constexpr std::size_t kNlHeader = align4(sizeof(nlmsghdr));
constexpr std::size_t kRtaHeader = align4(sizeof(rtattr));

// Sends one rtnetlink request and reads until its ack (or the end of a dump), handing
// each other message (header, payload, payload length) to `each`. Throws on an error.
template <class Each>
void netlink_exchange(int fd, const void* request, std::size_t length, Each&& each) {
  if (::send(fd, request, length, 0) < 0) throw_errno("netlink send");
  std::array<char, 16384> buffer{};
  for (;;) {
    const ssize_t n = ::recv(fd, buffer.data(), buffer.size(), 0);
    if (n < 0) {
      if (errno == EINTR) continue;
      throw_errno("netlink recv");
    }
    std::size_t at = 0;
    while (at + sizeof(nlmsghdr) <= static_cast<std::size_t>(n)) {
      nlmsghdr h{};
      std::memcpy(&h, buffer.data() + at, sizeof h);
      if (h.nlmsg_len < sizeof h || at + h.nlmsg_len > static_cast<std::size_t>(n)) break;
      const char* payload = buffer.data() + at + kNlHeader;
      const std::size_t payload_len = h.nlmsg_len - kNlHeader;
      if (h.nlmsg_type == NLMSG_DONE) return;
      if (h.nlmsg_type == NLMSG_ERROR) {
        nlmsgerr e{};
        std::memcpy(&e, payload, std::min(sizeof e, payload_len));
        if (e.error != 0) throw_errno(-e.error, "netlink request");
        return;  // the ack
      }
      each(h, payload, payload_len);
      at += align4(h.nlmsg_len);
    }
  }
}

// Adds fd6b:6168:7265:ff::1/128 to the canary's loopback (ULA, nowhere else) and reads
// back its creation stamp: jiffies when the kernel created it, as hundredths.
JiffiesStamp address_stamp(const netns::Namespace& ns) {
  UniqueFd nl = ns.run([] {
    UniqueFd fd(::socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE));
    if (!fd) throw_errno("rtnetlink socket");
    return fd;
  });
  in6_addr address{};
  inet_pton(AF_INET6, "fd6b:6168:7265:ff::1", &address);
  std::array<char, 128> add{};
  ifaddrmsg a{};
  a.ifa_family = AF_INET6;
  a.ifa_prefixlen = 128;
  a.ifa_flags = IFA_F_NODAD;
  a.ifa_index = 1;  // lo, always 1 in a new namespace
  rtattr local{};
  local.rta_type = IFA_LOCAL;
  local.rta_len = static_cast<unsigned short>(kRtaHeader + sizeof address);
  nlmsghdr h{};
  h.nlmsg_type = RTM_NEWADDR;
  h.nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL;
  h.nlmsg_len = static_cast<std::uint32_t>(kNlHeader + align4(sizeof a) + align4(local.rta_len));
  std::memcpy(add.data(), &h, sizeof h);
  std::memcpy(add.data() + kNlHeader, &a, sizeof a);
  std::memcpy(add.data() + kNlHeader + align4(sizeof a), &local, sizeof local);
  std::memcpy(add.data() + kNlHeader + align4(sizeof a) + kRtaHeader, &address, sizeof address);
  JiffiesStamp stamp;
  stamp.from_ns = monotonic_ns();
  netlink_exchange(nl.get(), add.data(), h.nlmsg_len, [](const nlmsghdr&, const char*, std::size_t) {});
  stamp.to_ns = monotonic_ns();

  std::array<char, 64> dump{};
  ifaddrmsg all{};
  all.ifa_family = AF_INET6;
  nlmsghdr d{};
  d.nlmsg_type = RTM_GETADDR;
  d.nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
  d.nlmsg_len = static_cast<std::uint32_t>(kNlHeader + align4(sizeof all));
  std::memcpy(dump.data(), &d, sizeof d);
  std::memcpy(dump.data() + kNlHeader, &all, sizeof all);
  bool found = false;
  netlink_exchange(nl.get(), dump.data(), d.nlmsg_len, [&](const nlmsghdr& m, const char* payload, std::size_t len) {
    if (m.nlmsg_type != RTM_NEWADDR || len < align4(sizeof(ifaddrmsg))) return;
    bool ours = false;
    std::optional<std::uint32_t> cstamp;
    for (std::size_t at = align4(sizeof(ifaddrmsg)); at + sizeof(rtattr) <= len;) {
      rtattr r{};
      std::memcpy(&r, payload + at, sizeof r);
      if (r.rta_len < sizeof r || at + r.rta_len > len) break;
      const char* data = payload + at + kRtaHeader;
      const std::size_t size = r.rta_len - kRtaHeader;
      if ((r.rta_type == IFA_ADDRESS || r.rta_type == IFA_LOCAL) && size == sizeof address)
        ours = ours || std::memcmp(data, &address, sizeof address) == 0;
      if (r.rta_type == IFA_CACHEINFO && size >= sizeof(ifa_cacheinfo)) {
        ifa_cacheinfo info{};
        std::memcpy(&info, data, sizeof info);
        cstamp = info.cstamp;
      }
      at += align4(r.rta_len);
    }
    if (ours && cstamp) stamp.hundredths = *cstamp, found = true;
  });
  if (!found) throw std::runtime_error("the canary's address has no creation stamp");
  return stamp;
}

// The canary's own end: a tap that sees the probes leave, stamped by the kernel, and
// a listener on loopback that plays the healthy peer.
Canary open_canary(const netns::Namespace& ns) {
  return ns.run([] {
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
}

// A connection whose keepalive timer is watched, with the wheel granularity of each of
// its arms: how much a firing's instant tells about the tick depends on it.
struct Watched {
  std::uint64_t first_granularity = 1;  // the idle timer, armed at establishment
  std::uint64_t later_granularity = 1;  // re-armed for the interval from its callback
  int probes = 0;
};

// Connections whose timers land on known wheel levels, spaced so they spread over the
// buckets; the sockets are kept open until the firings have been seen.
void connect_watched(const netns::Namespace& ns, const Canary& canary, int hz, int long_idle_s,
                     std::map<std::uint16_t, Watched>& watched, std::vector<UniqueFd>& sockets) {
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
}

// Reads every frame queued on the tap; each probe from a watched connection, sent
// after `start`, is one timer firing, at the kernel's stamp on CLOCK_MONOTONIC (the
// instant the timer's callback sent it, free of our own wake-up latency).
void drain_tap(const Canary& canary, std::int64_t start, std::map<std::uint16_t, Watched>& watched,
               CanaryResult& out) {
  std::array<std::uint8_t, 2048> frame{};
  const std::int64_t offset = RealtimeSteps::process().reference().realtime_minus_monotonic_ns;
  while (const auto read = netns::read_packet_frame(canary.tap.get(), frame)) {
    if (read->pkttype != PACKET_OUTGOING) continue;  // loopback shows each frame twice
    const std::uint16_t port = probe_source_port(frame.data(), read->length);
    const auto w = watched.find(port);
    if (w == watched.end()) continue;
    if (!read->realtime_ns) continue;
    // Placed across any step of the realtime clock; a firing a step left ambiguous
    // is not used.
    bool ambiguous = false;
    const std::int64_t stamp =
        RealtimeSteps::process().checked().to_run_realtime(*read->realtime_ns, ambiguous) - offset;
    if (ambiguous) continue;
    // Handshakes left before `start`; the earliest timer fires 1 s after the first
    // connection, itself less than 1 s before `start`.
    if (stamp < start) continue;
    out.firings.push_back({stamp, w->second.probes++ == 0 ? w->second.first_granularity : w->second.later_granularity});
  }
}

// The firings are read as they come, over the whole wait, so that each one keeps the
// kernel's stamp and the probe count that tells its wheel level.
void collect_firings(const Canary& canary, int hz, int long_idle_s, std::map<std::uint16_t, Watched>& watched,
                     CanaryResult& out) {
  const std::uint64_t tick_ns = (1000000000ULL + static_cast<std::uint64_t>(hz) / 2) / static_cast<std::uint64_t>(hz);
  // Until the long timers have fired (their idle plus a whole bucket of lateness).
  const std::int64_t start = monotonic_ns();
  const std::int64_t until =
      start + static_cast<std::int64_t>(long_idle_s) * 1000000000 + 64 * static_cast<std::int64_t>(tick_ns) + 100'000'000;
  for (std::int64_t now = start; now < until; now = monotonic_ns()) {
    pollfd p{canary.tap.get(), POLLIN, 0};
    const int wait_ms = static_cast<int>(std::min<std::int64_t>((until - now) / 1000000 + 1, 200));
    if (::poll(&p, 1, wait_ms) < 0 && errno != EINTR) throw_errno("poll canary tap");
    drain_tap(canary, start, watched, out);
  }
}

}  // namespace

CanaryResult watch_keepalive_firings(int hz, CanaryPlace place) {
  CanaryResult out;
  if (hz <= 0) {
    out.error = "HZ unknown";
    return out;
  }
  try {
    // The shortest whole-second idle on wheel level 2 (>= LVL_START(2) = 504 jiffies),
    // for jiffies modulo 64; half the connections use 1 s, for more (finer) firings.
    const int long_idle_s = (504 + hz - 1) / hz;

    const auto ns = place == CanaryPlace::here ? netns::Namespace::current("clock-canary on this namespace's lo")
                                               : netns::Namespace::create("clock-canary");
    const Canary canary = open_canary(ns);
    std::map<std::uint16_t, Watched> watched;
    std::vector<UniqueFd> sockets;
    connect_watched(ns, canary, hz, long_idle_s, watched, sockets);
    collect_firings(canary, hz, long_idle_s, watched, out);
    if (out.firings.empty()) out.error = "no keepalive probe was seen leaving the canary";
    if (place == CanaryPlace::here) {
      if (!out.firings.empty())
        out.error = "no jiffies stamp: the canary shares this namespace's lo and adds no address to it";
      return out;
    }
    try {
      out.stamp = address_stamp(ns);
    } catch (const std::exception& e) {
      out.error = fmt::format("no jiffies stamp: {}", e.what());
    }
  } catch (const std::exception& e) {
    out.firings.clear();
    out.error = fmt::format("timer-firings canary: {}", e.what());
  }
  return out;
}

CalibrationChoice calibrate_jiffies(int hz, CanaryPlace place) {
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
  const auto canary = watch_keepalive_firings(hz, place);
  choice.clock = JiffyClock::from_timer_firings(hz, canary.firings);
  if (choice.clock) {
    if (canary.stamp)
      if (auto exact = choice.clock->anchored(canary.stamp->from_ns, canary.stamp->to_ns, canary.stamp->hundredths))
        choice.clock = std::move(exact);
    choice.note = choice.clock->jiffies_modulus() == 0
                      ? fmt::format("{}: {} keepalive timer firings, jiffies from an address's creation stamp", why,
                                    canary.firings.size())
                      : fmt::format("{}: {} keepalive timer firings; jiffies known modulo {}{}", why,
                                    canary.firings.size(), choice.clock->jiffies_modulus(),
                                    canary.error.empty() ? "" : fmt::format(" ({})", canary.error));
    return choice;
  }
  choice.note = fmt::format("{}; {}", why,
                            canary.error.empty()
                                ? fmt::format("{} timer firings did not give the tick", canary.firings.size())
                                : canary.error);
  return choice;
}

}  // namespace kah
