// kah_bench_topology: what one two-host topology costs through kaharness's own
// netns/ layer (scripts/bench-topology.sh runs it beside iproute2 and Mininet).
//
// One topology is what build_pair_topology() makes, minus the harness's sysctls:
// two anonymous namespaces held by fds (loopback up), one veth pair created with
// both ends already in their namespaces (one RTM_NEWLINK), both ends up, then
// IPv4 + IPv6 addresses (the IPv6 ones NODAD, returned once the kernel announced
// them).
//
// Teardown is closing the two namespace fds, and the kernel frees the namespaces
// (and the veth in them) afterwards, on its own worker (cleanup_net): a close
// returns in microseconds. So that the figure says what the kernel did, teardown is
// timed as: close a's fd, wait until the veth's other end has vanished from b
// (the kernel has torn a down, veth included), close b's fd. `close_ms` is the
// caller's part alone (the two closes).
//
// Prints one line per topology, "build_ms=<ms> teardown_ms=<ms> close_ms=<ms>", for
// the script to take medians of. Needs root (CAP_SYS_ADMIN + CAP_NET_ADMIN). Not a
// CTest test.
//
//   kah_bench_topology [N]      (default 20)
#include <fmt/format.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <algorithm>
#include <exception>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>

#include "netns/link.h"
#include "netns/namespace.h"

namespace {

using Clock = std::chrono::steady_clock;

double ms_since(Clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
}

// The addresses of the harness's pair topology, inside their own namespaces.
struct Topo {
  kah::netns::Namespace a;
  kah::netns::Namespace b;
};

Topo build(int i) {
  Topo t{kah::netns::Namespace::create(fmt::format("kahbench-{}/a", i)),
         kah::netns::Namespace::create(fmt::format("kahbench-{}/b", i))};
  kah::netns::create_veth_pair(t.a, "kahbench-a", t.b, "kahbench-b");
  kah::netns::set_link_up(t.a, "kahbench-a", true);
  kah::netns::set_link_up(t.b, "kahbench-b", true);
  kah::netns::add_address(t.a, "kahbench-a", {"198.18.0.1", 24});
  kah::netns::add_address(t.a, "kahbench-a", {"fd6b:6168:7265::1", 64});
  kah::netns::add_address(t.b, "kahbench-b", {"198.18.0.2", 24});
  kah::netns::add_address(t.b, "kahbench-b", {"fd6b:6168:7265::2", 64});
  return t;
}

bool has_link(const kah::netns::Namespace& ns, const std::string& name) {
  const auto links = kah::netns::list_links(ns);
  return std::find(links.begin(), links.end(), name) != links.end();
}

struct Teardown {
  double total_ms;
  double close_ms;
};

Teardown tear_down(std::optional<Topo>& t) {
  // Moved out so each fd can be closed on its own.
  auto a = std::make_optional(std::move(t->a));
  auto b = std::make_optional(std::move(t->b));
  t.reset();
  const auto t0 = Clock::now();
  a.reset();
  const double close_a = ms_since(t0);
  while (has_link(*b, "kahbench-b")) {
    if (ms_since(t0) > 10000) throw std::runtime_error("the veth outlived its namespace by 10 s");
    std::this_thread::sleep_for(std::chrono::microseconds(200));
  }
  const auto t1 = Clock::now();
  b.reset();
  return {ms_since(t0), close_a + ms_since(t1)};
}

}  // namespace

int main(int argc, char** argv) {
  const int n = argc > 1 ? std::atoi(argv[1]) : 20;
  if (n <= 0) {
    std::fprintf(stderr, "usage: kah_bench_topology [N > 0]\n");
    return 2;
  }
  try {
    for (int i = 0; i < n; ++i) {
      auto t0 = Clock::now();
      std::optional<Topo> t(build(i));
      const double build_ms = ms_since(t0);
      const auto td = tear_down(t);
      std::printf("build_ms=%.3f teardown_ms=%.3f close_ms=%.3f\n", build_ms, td.total_ms, td.close_ms);
      std::fflush(stdout);
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "kah_bench_topology: %s\n", e.what());
    return 3;
  }
  return 0;
}
