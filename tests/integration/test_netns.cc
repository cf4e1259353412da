// Integration tests of netns/: real namespaces, veth pairs, addresses, routes,
// sysctls and pins on the running kernel. Needs root (CAP_SYS_ADMIN + CAP_NET_ADMIN).
// Every test that builds something takes a RootSnapshot before and after and
// requires them equal: the root namespace is never changed.
#include <arpa/inet.h>
#include <fcntl.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <fmt/format.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <optional>
#include <stdexcept>
#include <system_error>
#include <thread>
#include <vector>

#include "netns/fd.h"
#include "netns/link.h"
#include "netns/namespace.h"
#include "tests/integration/root_snapshot.h"

namespace {

using kah::UniqueFd;
using kah::netns::IpPrefix;
using kah::netns::Namespace;
using Clock = std::chrono::steady_clock;

struct Endpoint {
  sockaddr_storage ss{};
  socklen_t len = 0;
};

Endpoint endpoint(const std::string& address, uint16_t port) {
  Endpoint e;
  if (address.find(':') != std::string::npos) {
    auto* sin6 = reinterpret_cast<sockaddr_in6*>(&e.ss);
    sin6->sin6_family = AF_INET6;
    sin6->sin6_port = htons(port);
    if (inet_pton(AF_INET6, address.c_str(), &sin6->sin6_addr) != 1) throw std::invalid_argument(address);
    e.len = sizeof(sockaddr_in6);
  } else {
    auto* sin = reinterpret_cast<sockaddr_in*>(&e.ss);
    sin->sin_family = AF_INET;
    sin->sin_port = htons(port);
    if (inet_pton(AF_INET, address.c_str(), &sin->sin_addr) != 1) throw std::invalid_argument(address);
    e.len = sizeof(sockaddr_in);
  }
  return e;
}

struct Listener {
  UniqueFd fd;
  uint16_t port = 0;
};

// The socket is created inside `ns` and stays there; it is used from this thread.
Listener listen_in(const Namespace& ns, const std::string& address) {
  return ns.run([&] {
    Endpoint e = endpoint(address, 0);
    UniqueFd fd(::socket(e.ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (!fd) kah::throw_errno("socket");
    if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&e.ss), e.len) != 0) kah::throw_errno("bind " + address);
    if (::listen(fd.get(), 16) != 0) kah::throw_errno("listen");
    if (::getsockname(fd.get(), reinterpret_cast<sockaddr*>(&e.ss), &e.len) != 0) kah::throw_errno("getsockname");
    const uint16_t port = ntohs(e.ss.ss_family == AF_INET6 ? reinterpret_cast<sockaddr_in6*>(&e.ss)->sin6_port
                                                           : reinterpret_cast<sockaddr_in*>(&e.ss)->sin_port);
    return Listener{std::move(fd), port};
  });
}

struct ConnectResult {
  int error = 0;  // 0: connected; otherwise errno (ETIMEDOUT when the deadline passed)
  UniqueFd fd;
};

ConnectResult connect_from(const Namespace& ns, const std::string& address, uint16_t port,
                           std::chrono::milliseconds timeout = std::chrono::milliseconds(3000)) {
  return ns.run([&] {
    Endpoint e = endpoint(address, port);
    ConnectResult r;
    r.fd.reset(::socket(e.ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
    if (!r.fd) kah::throw_errno("socket");
    if (::connect(r.fd.get(), reinterpret_cast<sockaddr*>(&e.ss), e.len) == 0) return r;
    if (errno != EINPROGRESS) {
      r.error = errno;
      return r;
    }
    pollfd p{r.fd.get(), POLLOUT, 0};
    const int n = ::poll(&p, 1, static_cast<int>(timeout.count()));
    if (n == 0) {
      r.error = ETIMEDOUT;
      return r;
    }
    int err = 0;
    socklen_t len = sizeof err;
    if (::getsockopt(r.fd.get(), SOL_SOCKET, SO_ERROR, &err, &len) != 0) kah::throw_errno("getsockopt");
    r.error = err;
    return r;
  });
}

// Accepts one connection (the listener is in another namespace: that is fine, a
// socket keeps its namespace and can be used from any thread).
std::string accept_peer(const Listener& l) {
  pollfd p{l.fd.get(), POLLIN, 0};
  if (::poll(&p, 1, 3000) != 1) return "<no connection>";
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  UniqueFd conn(::accept4(l.fd.get(), reinterpret_cast<sockaddr*>(&ss), &len, SOCK_CLOEXEC));
  if (!conn) kah::throw_errno("accept");
  char buf[INET6_ADDRSTRLEN] = {};
  const void* src = ss.ss_family == AF_INET6 ? static_cast<const void*>(&reinterpret_cast<sockaddr_in6*>(&ss)->sin6_addr)
                                             : static_cast<const void*>(&reinterpret_cast<sockaddr_in*>(&ss)->sin_addr);
  inet_ntop(ss.ss_family, src, buf, sizeof buf);
  return buf;
}

// Listens to link notifications in the calling thread's (root) namespace: a veth
// created in the root namespace and moved, even for an instant, shows up here.
class LinkEvents {
 public:
  LinkEvents() : fd_(::socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC | SOCK_NONBLOCK, NETLINK_ROUTE)) {
    if (!fd_) kah::throw_errno("netlink socket");
    sockaddr_nl sa{};
    sa.nl_family = AF_NETLINK;
    sa.nl_groups = RTMGRP_LINK;
    if (::bind(fd_.get(), reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0) kah::throw_errno("bind netlink");
  }
  // Names of links created or deleted since construction (or the last call).
  std::vector<std::string> drain() {
    std::vector<std::string> names;
    alignas(nlmsghdr) char buf[65536];
    for (;;) {
      const ssize_t n = ::recv(fd_.get(), buf, sizeof buf, 0);
      if (n < 0) {
        if (errno == EAGAIN) return names;
        if (errno == ENOBUFS) {  // overrun: report it rather than miss events
          names.emplace_back("<events lost>");
          continue;
        }
        kah::throw_errno("recv netlink");
      }
      size_t off = 0;
      while (off + sizeof(nlmsghdr) <= static_cast<size_t>(n)) {
        const auto* h = reinterpret_cast<const nlmsghdr*>(buf + off);
        if (h->nlmsg_len < sizeof(nlmsghdr) || off + h->nlmsg_len > static_cast<size_t>(n)) break;
        if (h->nlmsg_type == RTM_NEWLINK || h->nlmsg_type == RTM_DELLINK) names.push_back(link_name(h));
        off += NLMSG_ALIGN(h->nlmsg_len);
      }
    }
  }

 private:
  static std::string link_name(const nlmsghdr* h) {
    const char* base = reinterpret_cast<const char*>(h);
    size_t off = NLMSG_HDRLEN + NLMSG_ALIGN(sizeof(ifinfomsg));
    while (off + sizeof(rtattr) <= h->nlmsg_len) {
      const auto* a = reinterpret_cast<const rtattr*>(base + off);
      if (a->rta_len < sizeof(rtattr)) break;
      if (a->rta_type == IFLA_IFNAME) return std::string(base + off + RTA_LENGTH(0));
      off += RTA_ALIGN(a->rta_len);
    }
    return "<unnamed>";
  }
  UniqueFd fd_;
};

bool contains(const std::vector<std::string>& v, const std::string& s) {
  return std::find(v.begin(), v.end(), s) != v.end();
}

std::string read_root_file(const std::string& path) {
  std::ifstream in(path);
  std::string value;
  std::getline(in, value);
  return value;
}

// Removes this process's test pins, and /run/netns if it was absent before and is
// empty now, even when a REQUIRE fails half-way. (Two test processes pinning at
// once can leave an empty /run/netns behind; harmless, iproute2 makes it too.)
struct PinCleanup {
  bool dir_existed = std::filesystem::exists(kah::netns::kPinDirectory);
  ~PinCleanup() {
    try {
      kah::netns::remove_pinned_namespaces(kah::test::test_pin_prefix());
      if (!dir_existed) std::filesystem::remove(kah::netns::kPinDirectory);  // only if empty
    } catch (const std::exception&) {
    }
  }
};

}  // namespace

TEST_CASE("sysctl_path maps net.* keys and refuses everything else", "[netns]") {
  using kah::netns::sysctl_path;
  CHECK(sysctl_path("net.ipv4.tcp_keepalive_time") == "/proc/sys/net/ipv4/tcp_keepalive_time");
  CHECK(sysctl_path("net.ipv6.conf.all.keep_addr_on_down") == "/proc/sys/net/ipv6/conf/all/keep_addr_on_down");
  for (const char* bad : {"kernel.hostname", "net", "net.", "network.x", ".net.ipv4", "net.ipv4/../../kernel/x",
                          "net.ipv4..tcp", "net/ipv4/tcp_keepalive_time", "net.ipv4.", "vm.swappiness"}) {
    INFO(bad);
    CHECK_THROWS_AS(sysctl_path(bad), std::invalid_argument);
  }
}

TEST_CASE("two namespaces joined by a veth pair carry TCP over IPv4 and IPv6", "[netns][integration]") {
  const auto before = kah::test::RootSnapshot::take();
  LinkEvents root_events;
  const auto root_inode = Namespace::current().inode();
  {
    const Namespace client = Namespace::create("test/client");
    const Namespace server = Namespace::create("test/server");
    CHECK(client.inode() != root_inode);
    CHECK(client.inode() != server.inode());
    CHECK(Namespace::current().inode() == root_inode);  // the caller never moved

    // Loopback is up in a new namespace.
    {
      const Listener lo = listen_in(client, "127.0.0.1");
      CHECK(connect_from(client, "127.0.0.1", lo.port).error == 0);
      const Listener lo6 = listen_in(client, "::1");
      CHECK(connect_from(client, "::1", lo6.port).error == 0);
    }

    kah::netns::create_veth_pair(client, "client0", server, "server0");
    const auto client_links = kah::netns::list_links(client);
    const auto server_links = kah::netns::list_links(server);
    CHECK(contains(client_links, "client0"));
    CHECK(contains(client_links, "lo"));
    CHECK_FALSE(contains(client_links, "server0"));
    CHECK(contains(server_links, "server0"));
    CHECK_FALSE(contains(server_links, "client0"));

    SECTION("creating the same pair again fails with context") {
      try {
        kah::netns::create_veth_pair(client, "client0", server, "server0");
        FAIL("second create_veth_pair succeeded");
      } catch (const std::system_error& e) {
        CHECK_THAT(e.what(), Catch::StartsWith("cannot create veth pair client0<->server0 "
                                               "(namespaces test/client/test/server): "));
        CHECK(e.code() == std::errc::file_exists);
      }
    }

    SECTION("addresses, links, routes") {
      // Links first, then addresses (see add_address in link.h for why).
      const auto up_at = Clock::now();
      kah::netns::set_link_up(client, "client0", true);
      kah::netns::set_link_up(server, "server0", true);
      kah::netns::add_address(client, "client0", {"198.18.0.1", 24});
      kah::netns::add_address(server, "server0", {"198.18.0.2", 24});
      kah::netns::add_address(client, "client0", {"fd6b:6168:0:1::1", 64});
      kah::netns::add_address(server, "server0", {"fd6b:6168:0:1::2", 64});

      // Bound to the new address right away: a tentative (DAD) address would fail
      // here with EADDRNOTAVAIL, and the connect would wait for DAD to finish.
      const Listener l6 = listen_in(server, "fd6b:6168:0:1::2");
      const ConnectResult c6 = connect_from(client, "fd6b:6168:0:1::2", l6.port);
      const auto ipv6_ready = Clock::now() - up_at;
      CHECK(c6.error == 0);
      CHECK(accept_peer(l6) == "fd6b:6168:0:1::1");
      // DAD alone takes a full second (one probe, RetransTimer 1 s).
      CHECK(ipv6_ready < std::chrono::milliseconds(500));

      const Listener l4 = listen_in(server, "198.18.0.2");
      const ConnectResult c4 = connect_from(client, "198.18.0.2", l4.port);
      CHECK(c4.error == 0);
      CHECK(accept_peer(l4) == "198.18.0.1");

      // Routed prefixes: the server owns addresses on its loopback outside the link
      // prefix, and the client reaches them through a gateway route.
      kah::netns::add_address(server, "lo", {"198.19.1.1", 32});
      kah::netns::add_address(server, "lo", {"fd6b:6168:0:2::1", 128});
      kah::netns::add_route(client, {"198.19.1.0", 24}, "198.18.0.2");
      kah::netns::add_route(client, {"fd6b:6168:0:2::", 64}, "fd6b:6168:0:1::2");
      CHECK_THROWS_AS(kah::netns::add_route(client, {"0.0.0.0", 0}, "198.18.0.2"), std::invalid_argument);
      CHECK_THROWS_AS(kah::netns::add_route(client, {"::", 0}, "fd6b:6168:0:1::2"), std::invalid_argument);
      {
        const Listener r4 = listen_in(server, "198.19.1.1");
        CHECK(connect_from(client, "198.19.1.1", r4.port).error == 0);
        const Listener r6 = listen_in(server, "fd6b:6168:0:2::1");
        CHECK(connect_from(client, "fd6b:6168:0:2::1", r6.port).error == 0);
      }

      // Link down: the client's routes to the link go away; nothing gets through.
      // keep_addr_on_down keeps the IPv6 address through the flap (it is flushed otherwise).
      client.write_sysctl("net.ipv6.conf.all.keep_addr_on_down", "1");
      kah::netns::set_link_up(client, "client0", false);
      const ConnectResult down4 = connect_from(client, "198.18.0.2", l4.port, std::chrono::milliseconds(1000));
      const ConnectResult down6 = connect_from(client, "fd6b:6168:0:1::2", l6.port, std::chrono::milliseconds(1000));
      INFO("IPv4 after link down: " << std::strerror(down4.error) << ", IPv6: " << std::strerror(down6.error));
      CHECK(down4.error != 0);
      CHECK(down6.error != 0);

      // Back up: reachable again over both families.
      kah::netns::set_link_up(client, "client0", true);
      CHECK(connect_from(client, "198.18.0.2", l4.port).error == 0);
      CHECK(connect_from(client, "fd6b:6168:0:1::2", l6.port).error == 0);
    }

    SECTION("errors name the link and the namespace") {
      try {
        kah::netns::set_link_up(client, "nosuch0", true);
        FAIL("set_link_up on a missing link succeeded");
      } catch (const std::system_error& e) {
        CHECK_THAT(e.what(), Catch::Contains("nosuch0") && Catch::Contains("test/client"));
      }
      CHECK_THROWS_AS(kah::netns::add_address(client, "client0", {"198.18.0.1", 33}), std::invalid_argument);
      CHECK_THROWS_AS(kah::netns::add_address(client, "client0", {"not-an-address", 24}), std::invalid_argument);
    }
  }
  // Not a single link came or went in the root namespace, not even for an instant.
  CHECK(root_events.drain() == std::vector<std::string>{});
  const auto after = kah::test::RootSnapshot::take();
  REQUIRE(before.diff(after) == "");
}

TEST_CASE("sysctls are written inside the namespace only", "[netns][integration]") {
  const auto before = kah::test::RootSnapshot::take();
  const std::string root_path = "/proc/sys/net/ipv4/tcp_keepalive_time";
  const std::string root_value = read_root_file(root_path);
  {
    const Namespace ns = Namespace::create("test/sysctl");
    const std::string value = root_value == "1234" ? "4321" : "1234";
    ns.write_sysctl("net.ipv4.tcp_keepalive_time", value);
    CHECK(ns.read_sysctl("net.ipv4.tcp_keepalive_time") == value);
    CHECK(read_root_file(root_path) == root_value);
    CHECK(Namespace::current().read_sysctl("net.ipv4.tcp_keepalive_time") == root_value);

    CHECK_THROWS_AS(ns.write_sysctl("kernel.hostname", "pwned"), std::invalid_argument);
    CHECK_THROWS_AS(ns.read_sysctl("kernel.hostname"), std::invalid_argument);
    try {
      ns.write_sysctl("net.ipv4.tcp_keepalive_time", "abc");
      FAIL("invalid sysctl value accepted");
    } catch (const std::system_error& e) {
      CHECK_THAT(e.what(), Catch::StartsWith("cannot write sysctl net.ipv4.tcp_keepalive_time = abc in namespace "
                                             "test/sysctl: "));
    }
    try {
      (void)ns.read_sysctl("net.ipv4.no_such_key");
      FAIL("missing sysctl read");
    } catch (const std::system_error& e) {
      CHECK(e.code() == std::errc::no_such_file_or_directory);
    }
  }
  CHECK(read_root_file(root_path) == root_value);
  const auto after = kah::test::RootSnapshot::take();
  REQUIRE(before.diff(after) == "");
}

TEST_CASE("a namespace's links vanish when the Namespace object dies", "[netns][integration]") {
  const auto before = kah::test::RootSnapshot::take();
  const Namespace root = Namespace::current("root");
  const auto root_links = kah::netns::list_links(root);
  {
    const Namespace keeper = Namespace::create("test/keeper");
    // The same listener the other tests point at the root namespace, here pointed
    // at keeper: it must see the pair arrive (so an empty drain() means something).
    LinkEvents keeper_events = keeper.run([] { return LinkEvents(); });
    {
      const Namespace doomed = Namespace::create("test/doomed");
      kah::netns::create_veth_pair(doomed, "doomed0", keeper, "keep0");
      CHECK(contains(keeper_events.drain(), "keep0"));
      CHECK(contains(kah::netns::list_links(doomed), "doomed0"));
      CHECK(contains(kah::netns::list_links(keeper), "keep0"));
      CHECK(kah::netns::list_links(root) == root_links);
    }
    // The kernel tears a namespace down asynchronously (cleanup_net), and a
    // veth pair dies with either end's namespace.
    const auto deadline = Clock::now() + std::chrono::seconds(10);
    while (contains(kah::netns::list_links(keeper), "keep0") && Clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    CHECK_FALSE(contains(kah::netns::list_links(keeper), "keep0"));
  }
  CHECK(kah::netns::list_links(root) == root_links);
  const auto after = kah::test::RootSnapshot::take();
  REQUIRE(before.diff(after) == "");
}

TEST_CASE("run() enters the namespace on its own thread, concurrently and with exceptions", "[netns][integration]") {
  const auto root_inode = Namespace::current().inode();
  const Namespace ns = Namespace::create("test/run");
  const auto ns_inode = ns.inode();

  auto inode_here = [] {
    struct stat st {};
    if (::stat("/proc/thread-self/ns/net", &st) != 0) kah::throw_errno("stat");
    return static_cast<unsigned long>(st.st_ino);
  };
  CHECK(ns.run(inode_here) == ns_inode);
  CHECK(inode_here() == root_inode);

  std::atomic<int> right{0};
  std::atomic<int> wrong{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 16; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 20; ++i) {
        try {
          (ns.run(inode_here) == ns_inode && inode_here() == root_inode ? right : wrong)++;
        } catch (...) {
          wrong++;
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  CHECK(right == 16 * 20);
  CHECK(wrong == 0);

  CHECK_THROWS_WITH(ns.run([]() -> int { throw std::runtime_error("from inside"); }), "from inside");
  CHECK(ns.run([] { return std::string("value"); }) == "value");
}

TEST_CASE("pins: moves leave one owner; gc removes its prefix and nothing else", "[netns][integration]") {
  const auto before = kah::test::RootSnapshot::take();
  {
    PinCleanup cleanup;
    const std::string prefix = kah::test::test_pin_prefix();
    const std::filesystem::path dir(kah::netns::kPinDirectory);
    auto pinned_inode = [&](const std::string& name) -> std::optional<unsigned long> {
      struct stat st {};
      if (::stat((dir / name).c_str(), &st) != 0) return std::nullopt;
      return static_cast<unsigned long>(st.st_ino);
    };

    SECTION("move construction and assignment") {
      std::optional<Namespace> a = Namespace::create("test/pin-a");
      const auto inode_a = a->inode();
      a->pin(prefix + "a");
      CHECK(pinned_inode(prefix + "a") == inode_a);  // the mount shows the namespace's inode
      CHECK_THROWS_AS(a->pin(prefix + "again"), std::logic_error);

      std::optional<Namespace> b(std::move(*a));
      CHECK(a->fd() == -1);
      a.reset();  // the moved-from object must not unmount b's pin
      CHECK(pinned_inode(prefix + "a") == inode_a);

      std::optional<Namespace> c = Namespace::create("test/pin-c");
      c->pin(prefix + "c");
      *c = std::move(*b);  // c's own pin goes, b's pin moves to c
      CHECK_FALSE(pinned_inode(prefix + "c"));
      CHECK(pinned_inode(prefix + "a") == inode_a);
      CHECK(c->label() == "test/pin-a");
      b.reset();
      CHECK(pinned_inode(prefix + "a") == inode_a);
      c.reset();
      CHECK_FALSE(pinned_inode(prefix + "a"));
    }

    SECTION("released pins outlive the object; gc removes exactly its prefix") {
      CHECK_THROWS_AS(kah::netns::remove_pinned_namespaces(""), std::invalid_argument);
      CHECK_THROWS_AS(kah::netns::remove_pinned_namespaces("kah"), std::invalid_argument);
      CHECK_THROWS_AS(kah::netns::remove_pinned_namespaces("kaht/x"), std::invalid_argument);
      {
        Namespace n1 = Namespace::create("test/gc1");
        Namespace n2 = Namespace::create("test/gc2");
        Namespace other = Namespace::create("test/other");
        n1.pin(prefix + "gc-1");
        n2.pin(prefix + "gc-2");
        other.pin(prefix + "other");
        CHECK(n1.release_pin() == dir / (prefix + "gc-1"));
        CHECK(n2.release_pin());
        CHECK(other.release_pin());
        CHECK_FALSE(n1.release_pin());
      }
      CHECK(pinned_inode(prefix + "gc-1"));
      CHECK(pinned_inode(prefix + "other"));
      // The snapshot sees pins (proves the final comparison is not vacuous).
      CHECK_THAT(before.diff(kah::test::RootSnapshot::take()), Catch::Contains(prefix + "other"));
      const auto removed = kah::netns::remove_pinned_namespaces(prefix + "gc-");
      CHECK(removed == std::vector<std::string>{prefix + "gc-1", prefix + "gc-2"});
      CHECK_FALSE(pinned_inode(prefix + "gc-1"));
      CHECK_FALSE(pinned_inode(prefix + "gc-2"));
      CHECK(pinned_inode(prefix + "other"));
      CHECK(kah::netns::remove_pinned_namespaces(prefix + "other") == std::vector<std::string>{prefix + "other"});
      CHECK(kah::netns::remove_pinned_namespaces(prefix).empty());
    }
  }
  const auto after = kah::test::RootSnapshot::take();
  REQUIRE(before.diff(after) == "");
}

TEST_CASE("many topologies can be built concurrently", "[netns][integration]") {
  const auto before = kah::test::RootSnapshot::take();
  LinkEvents root_events;
  constexpr int kPairs = 12;
  std::atomic<int> connected{0};
  std::vector<std::string> errors(kPairs);
  {
    std::vector<std::thread> threads;
    for (int i = 0; i < kPairs; ++i) {
      threads.emplace_back([&, i] {
        try {
          const Namespace c = Namespace::create(fmt::format("test/c{}", i));
          const Namespace s = Namespace::create(fmt::format("test/s{}", i));
          kah::netns::create_veth_pair(c, "client0", s, "server0");
          kah::netns::set_link_up(c, "client0", true);
          kah::netns::set_link_up(s, "server0", true);
          // The same addresses everywhere: each pair lives in its own namespaces.
          kah::netns::add_address(c, "client0", {"fd6b:6168:0:1::1", 64});
          kah::netns::add_address(s, "server0", {"fd6b:6168:0:1::2", 64});
          const Listener l = listen_in(s, "fd6b:6168:0:1::2");
          // A lost neighbour solicitation costs a full second (add_address waits
          // for the kernel to finish the address so that it cannot happen).
          const auto start = Clock::now();
          const ConnectResult r = connect_from(c, "fd6b:6168:0:1::2", l.port);
          if (r.error == 0 && Clock::now() - start < std::chrono::milliseconds(500)) connected++;
        } catch (const std::exception& e) {
          errors[static_cast<size_t>(i)] = e.what();
        }
      });
    }
    for (auto& t : threads) t.join();
  }
  for (const auto& e : errors) CHECK(e == "");
  CHECK(connected == kPairs);
  CHECK(root_events.drain() == std::vector<std::string>{});
  const auto after = kah::test::RootSnapshot::take();
  REQUIRE(before.diff(after) == "");
}
