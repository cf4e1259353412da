// socket_timers(): the kernel's view of each TCP socket's timer through sock_diag,
// checked against what the keepalive state machine must show on the running kernel:
// an idle connection's keepalive timer counting down from TCP_KEEPIDLE, the probe
// counter rising by one per unanswered probe with the timer re-armed at
// TCP_KEEPINTVL, and the retransmit timer taking over when data is unacknowledged.
// Needs root; the formatting tests at the top do not.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <catch2/catch.hpp>

#include <cerrno>
#include <chrono>
#include <functional>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "harness/clock/jiffies.h"
#include "harness/run/endpoints.h"
#include "netns/nft.h"
#include "netns/fd.h"
#include "netns/link.h"
#include "netns/namespace.h"
#include "netns/sockdiag.h"
#include "tests/integration/root_snapshot.h"

namespace {

using kah::UniqueFd;
using kah::netns::Namespace;
using kah::netns::SocketTimer;
using kah::netns::TimerKind;
using Clock = std::chrono::steady_clock;

double ms_since(Clock::time_point start) {
  return std::chrono::duration<double, std::milli>(Clock::now() - start).count();
}

sockaddr_storage endpoint(const std::string& address, std::uint16_t port, socklen_t& len) {
  sockaddr_storage ss{};
  if (address.find(':') != std::string::npos) {
    auto* sin6 = reinterpret_cast<sockaddr_in6*>(&ss);
    sin6->sin6_family = AF_INET6;
    sin6->sin6_port = htons(port);
    if (inet_pton(AF_INET6, address.c_str(), &sin6->sin6_addr) != 1) throw std::invalid_argument(address);
    len = sizeof(sockaddr_in6);
  } else {
    auto* sin = reinterpret_cast<sockaddr_in*>(&ss);
    sin->sin_family = AF_INET;
    sin->sin_port = htons(port);
    if (inet_pton(AF_INET, address.c_str(), &sin->sin_addr) != 1) throw std::invalid_argument(address);
    len = sizeof(sockaddr_in);
  }
  return ss;
}

std::uint16_t local_port(int fd) {
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  if (::getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len) != 0) kah::throw_errno("getsockname");
  return ntohs(ss.ss_family == AF_INET6 ? reinterpret_cast<sockaddr_in6*>(&ss)->sin6_port
                                        : reinterpret_cast<sockaddr_in*>(&ss)->sin_port);
}

std::uint32_t inode_of(int fd) {
  struct stat st {};
  if (::fstat(fd, &st) != 0) kah::throw_errno("fstat");
  return static_cast<std::uint32_t>(st.st_ino);
}

void set_int(int fd, int level, int name, int value) {
  if (::setsockopt(fd, level, name, &value, sizeof value) != 0) kah::throw_errno("setsockopt");
}

UniqueFd listen_in(const Namespace& ns, const std::string& address) {
  return ns.run([&] {
    socklen_t len = 0;
    sockaddr_storage ss = endpoint(address, 0, len);
    UniqueFd fd(::socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (!fd) kah::throw_errno("socket");
    if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&ss), len) != 0) kah::throw_errno("bind " + address);
    if (::listen(fd.get(), 16) != 0) kah::throw_errno("listen");
    return fd;
  });
}

// A blocking connect from inside `ns`; `configure` sets options before the handshake.
UniqueFd connect_from(const Namespace& ns, const std::string& address, std::uint16_t port,
                      const std::function<void(int)>& configure = {}) {
  return ns.run([&] {
    socklen_t len = 0;
    sockaddr_storage ss = endpoint(address, port, len);
    UniqueFd fd(::socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (!fd) kah::throw_errno("socket");
    const timeval three_seconds{3, 0};  // bounds the connect if the topology is broken
    if (::setsockopt(fd.get(), SOL_SOCKET, SO_SNDTIMEO, &three_seconds, sizeof three_seconds) != 0)
      kah::throw_errno("setsockopt");
    if (configure) configure(fd.get());
    if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&ss), len) != 0) kah::throw_errno("connect " + address);
    return fd;
  });
}

UniqueFd accept_one(const UniqueFd& listener) {
  UniqueFd fd(::accept4(listener.get(), nullptr, nullptr, SOCK_CLOEXEC));
  if (!fd) kah::throw_errno("accept");
  return fd;
}

std::optional<SocketTimer> find_local(const std::vector<SocketTimer>& timers, std::uint16_t port) {
  for (const auto& t : timers)
    if (t.local_port == port) return t;
  return std::nullopt;
}

std::string text(const std::optional<SocketTimer>& t) {
  if (!t) return "<gone>";
  return std::string(kah::netns::tcp_state_name(t->state)) + " " + t->local + ":" + std::to_string(t->local_port) +
         " " + t->remote + ":" + std::to_string(t->remote_port) + " " + kah::netns::describe(*t);
}

// A client and a server namespace joined by a veth pair, IPv4 and IPv6 (ULA) addresses.
struct Pair {
  Namespace client = Namespace::create("sockdiag/client");
  Namespace server = Namespace::create("sockdiag/server");
  Pair() {
    kah::netns::create_veth_pair(client, "client0", server, "server0");
    kah::netns::set_link_up(client, "client0", true);
    kah::netns::set_link_up(server, "server0", true);
    kah::netns::add_address(client, "client0", {"198.18.0.1", 24});
    kah::netns::add_address(server, "server0", {"198.18.0.2", 24});
    kah::netns::add_address(client, "client0", {"fd6b:6168:0:1::1", 64});
    kah::netns::add_address(server, "server0", {"fd6b:6168:0:1::2", 64});
  }
};

}  // namespace

TEST_CASE("sockdiag: ss_duration and describe print timers as ss does", "[sockdiag]") {
  using kah::netns::ss_duration;
  CHECK(ss_duration(0) == "");
  CHECK(ss_duration(4) == "004ms");
  CHECK(ss_duration(50) == "050ms");
  CHECK(ss_duration(200) == "200ms");
  CHECK(ss_duration(999) == "999ms");
  CHECK(ss_duration(1000) == "1sec");
  CHECK(ss_duration(1004) == "1.004sec");
  CHECK(ss_duration(2996) == "2.996sec");
  CHECK(ss_duration(9999) == "9.999sec");
  CHECK(ss_duration(10000) == "10sec");
  CHECK(ss_duration(12345) == "12sec");
  CHECK(ss_duration(59999) == "59sec");
  CHECK(ss_duration(60000) == "1min");
  CHECK(ss_duration(65500) == "1min5sec");
  CHECK(ss_duration(599999) == "9min59sec");
  CHECK(ss_duration(600000) == "10min");
  CHECK(ss_duration(7199999) == "119min");

  SocketTimer t;
  CHECK(kah::netns::describe(t) == "");  // ss prints nothing when no timer is pending
  t.timer = TimerKind::keepalive;
  t.expires_ms = 12000;
  CHECK(kah::netns::describe(t) == "timer:(keepalive,12sec,0)");
  t.timer = TimerKind::on;
  t.expires_ms = 200;
  t.counter = 1;
  CHECK(kah::netns::describe(t) == "timer:(on,200ms,1)");
  t.timer = TimerKind::persist;
  t.expires_ms = 1600;
  t.counter = 3;
  CHECK(kah::netns::describe(t) == "timer:(persist,1.600sec,3)");
  CHECK(kah::netns::tcp_state_name(TCP_ESTABLISHED) == "ESTAB");
  CHECK(kah::netns::tcp_state_name(TCP_TIME_WAIT) == "TIME-WAIT");
}

TEST_CASE("sockdiag: socket_timers lists every TCP socket of both families except listeners", "[sockdiag][integration]") {
  const auto before = kah::test::RootSnapshot::take();
  {
    const Pair pair;
    CHECK(kah::netns::socket_timers(pair.client).empty());

    const UniqueFd l4 = listen_in(pair.server, "198.18.0.2");
    const UniqueFd l6 = listen_in(pair.server, "fd6b:6168:0:1::2");
    CHECK(kah::netns::socket_timers(pair.server).empty());  // listeners are left out

    const UniqueFd c4 = connect_from(pair.client, "198.18.0.2", local_port(l4.get()));
    const UniqueFd c6 = connect_from(pair.client, "fd6b:6168:0:1::2", local_port(l6.get()));
    const UniqueFd s4 = accept_one(l4);
    const UniqueFd s6 = accept_one(l6);

    const auto client = kah::netns::socket_timers(pair.client);
    REQUIRE(client.size() == 2);
    const auto v4 = find_local(client, local_port(c4.get()));
    const auto v6 = find_local(client, local_port(c6.get()));
    REQUIRE(v4);
    REQUIRE(v6);
    INFO(text(v4) << "\n" << text(v6));
    CHECK(v4->family == AF_INET);
    CHECK(v4->local == "198.18.0.1");
    CHECK(v4->remote == "198.18.0.2");
    CHECK(v4->remote_port == local_port(l4.get()));
    CHECK(v4->state == TCP_ESTABLISHED);
    CHECK(v4->inode == inode_of(c4.get()));
    CHECK(v6->family == AF_INET6);
    CHECK(v6->local == "fd6b:6168:0:1::1");
    CHECK(v6->remote == "fd6b:6168:0:1::2");
    CHECK(v6->remote_port == local_port(l6.get()));
    CHECK(v6->inode == inode_of(c6.get()));
    // No keepalive, nothing in flight: no timer, and ss would print none.
    CHECK(v4->timer == TimerKind::none);
    CHECK(kah::netns::describe(*v4).empty());

    const auto server = kah::netns::socket_timers(pair.server);
    CHECK(server.size() == 2);
    CHECK(find_local(server, local_port(l4.get())));
    CHECK(find_local(server, local_port(l6.get())));
  }
  const auto after = kah::test::RootSnapshot::take();
  REQUIRE(before.diff(after) == "");
}

TEST_CASE("sockdiag: socket_timers shows the keepalive timer, its probe counter and the retransmit timer",
          "[sockdiag][integration]") {
  const auto before = kah::test::RootSnapshot::take();
  {
    const Pair pair;
    const UniqueFd listener = listen_in(pair.server, "198.18.0.2");
    const std::uint16_t port = local_port(listener.get());
    const auto keepalive = [](int fd) {
      set_int(fd, SOL_SOCKET, SO_KEEPALIVE, 1);
      set_int(fd, IPPROTO_TCP, TCP_KEEPIDLE, 3);
      set_int(fd, IPPROTO_TCP, TCP_KEEPINTVL, 1);
      set_int(fd, IPPROTO_TCP, TCP_KEEPCNT, 2);
    };
    const UniqueFd idle = connect_from(pair.client, "198.18.0.2", port, keepalive);
    const auto established = Clock::now();  // the SYN-ACK, the last segment idle receives
    const UniqueFd busy = connect_from(pair.client, "198.18.0.2", port);
    const UniqueFd idle_peer = accept_one(listener);
    const UniqueFd busy_peer = accept_one(listener);
    const std::uint16_t idle_port = local_port(idle.get());
    const std::uint16_t busy_port = local_port(busy.get());
    const auto sample = [&](std::uint16_t p) { return find_local(kah::netns::socket_timers(pair.client), p); };

    // Right after the handshake: the keepalive timer counts down from TCP_KEEPIDLE. The
    // kernel reports the requested expiry (the wheel's lateness comes on top only when
    // it fires), so at most 3000 ms and no less than 3000 ms minus the time since.
    {
      const auto t = sample(idle_port);
      const double elapsed = ms_since(established);
      INFO(text(t) << " " << elapsed << " ms after the handshake");
      REQUIRE(t);
      CHECK(t->timer == TimerKind::keepalive);
      CHECK(t->counter == 0);
      CHECK(t->expires_ms <= 3000);
      CHECK(static_cast<double>(t->expires_ms) >= 3000 - elapsed - 20);
      const auto b = sample(busy_port);
      INFO(text(b));
      REQUIRE(b);
      CHECK(b->timer == TimerKind::none);
    }

    // The peer goes silent: its namespace drops everything it receives. (Setting its
    // link down instead takes the client's carrier with it: the client's data then
    // never leaves, nothing is in flight, and the kernel arms the zero-window probe
    // timer, timer:(persist,...), not the retransmit timer.)
    kah::netns::nft_apply(pair.server,
                   "add table inet sockdiag\n"
                   "add chain inet sockdiag input { type filter hook input priority 0; policy drop; }\n");

    // Unacknowledged data: the retransmit timer ("on") replaces any other, and its
    // counter is the number of retransmissions so far.
    const char byte = 'x';
    REQUIRE(::send(busy.get(), &byte, 1, MSG_NOSIGNAL) == 1);
    {
      const auto b = sample(busy_port);
      INFO(text(b));
      REQUIRE(b);
      CHECK(b->timer == TimerKind::on);
      CHECK(b->counter == 0);
      CHECK(b->expires_ms <= 3000);  // RTO (at most the initial 1 s, backed off) or tail-loss probe
      std::optional<SocketTimer> retransmitted;
      const auto deadline = Clock::now() + std::chrono::seconds(3);
      while (Clock::now() < deadline) {
        retransmitted = sample(busy_port);
        if (retransmitted && retransmitted->counter >= 1) break;
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
      }
      INFO(text(retransmitted));
      REQUIRE(retransmitted);
      CHECK(retransmitted->timer == TimerKind::on);
      CHECK(retransmitted->counter >= 1);
      CHECK_THAT(kah::netns::describe(*retransmitted), Catch::StartsWith("timer:(on,"));
    }

    // The idle connection: each unanswered probe raises the counter by one and re-arms
    // the timer at TCP_KEEPINTVL; the first comes TCP_KEEPIDLE after the handshake,
    // late by at most the timer wheel's granularity (256 ms at HZ=250 for a 3 s timer).
    std::vector<double> probe_at;
    std::optional<SocketTimer> last;
    const auto deadline = established + std::chrono::seconds(8);
    while (Clock::now() < deadline) {
      const auto t = sample(idle_port);
      const double at = ms_since(established);
      if (!t) break;  // the kernel gave up
      if (t->counter > static_cast<int>(probe_at.size())) {
        INFO(text(t) << " at " << at << " ms");
        CHECK(t->timer == TimerKind::keepalive);
        CHECK(t->counter == static_cast<int>(probe_at.size()) + 1);
        CHECK(t->expires_ms <= 1000);
        CHECK(t->expires_ms >= 900);  // sampled every ~10 ms
        probe_at.push_back(at);
      }
      last = t;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    const double gone_at = ms_since(established);
    INFO("last seen: " << text(last));
    REQUIRE(probe_at.size() == 2);
    CHECK(probe_at[0] >= 2990);
    CHECK(probe_at[0] <= 3000 + 256 + 100);
    CHECK(probe_at[1] - probe_at[0] >= 990);
    CHECK(probe_at[1] - probe_at[0] <= 1000 + 32 + 100);
    // TCP_KEEPCNT = 2 probes unanswered: the next expiry ends the connection.
    CHECK(gone_at < 8000);
    int err = 0;
    socklen_t len = sizeof err;
    REQUIRE(::getsockopt(idle.get(), SOL_SOCKET, SO_ERROR, &err, &len) == 0);
    CHECK(err == ETIMEDOUT);
  }
  const auto after = kah::test::RootSnapshot::take();
  REQUIRE(before.diff(after) == "");
}

TEST_CASE("idle clock: TCP_INFO against jiffies gives the jiffy the client last received in",
          "[sockdiag][integration][clock]") {
  if (::geteuid() != 0 || ::access("/proc/timer_list", R_OK) != 0) {
    WARN("needs root and /proc/timer_list: skipped");
    return;
  }
  const auto hz = kah::detect_hz().hz;
  REQUIRE(hz);
  Pair pair;
  const auto listener = listen_in(pair.server, "198.18.0.2");
  const auto client = connect_from(pair.client, "198.18.0.2", local_port(listener.get()));
  const auto server = accept_one(listener);

  // The kernel stamps the segment (icsk_ack.lrcvtime) between the jiffies read before
  // the server's write and after the client's read; nothing reaches the client after it.
  const auto exchange = [&] {
    const auto from = kah::read_jiffies();
    REQUIRE(::send(server.get(), "x", 1, 0) == 1);
    char byte = 0;
    REQUIRE(::recv(client.get(), &byte, 1, 0) == 1);
    const auto to = kah::read_jiffies();
    REQUIRE(from);
    REQUIRE(to);
    return std::pair{*from, *to};
  };
  const auto [from, to] = exchange();
  std::this_thread::sleep_for(std::chrono::milliseconds(60));
  const auto first = kah::read_idle_clocks({client.get()});
  REQUIRE(first.size() == 1);
  REQUIRE(first[0]);
  const auto counted = first[0]->counted_from(*hz);
  INFO("exchange between jiffies " << from << " and " << to << ", read " << first[0]->jiffies_now << " - "
                                   << first[0]->ms_since_received << " ms -> " << counted);
  CHECK(counted >= from);
  CHECK(counted <= to);
  CHECK(first[0]->ms_since_received >= 60);

  // Another segment moves it: the clock follows the last one received, not the first.
  const auto [from2, to2] = exchange();
  const auto second = kah::read_idle_clocks({client.get()});
  REQUIRE(second[0]);
  CHECK(second[0]->counted_from(*hz) >= from2);
  CHECK(second[0]->counted_from(*hz) <= to2);
  CHECK(second[0]->counted_from(*hz) > counted);
}
