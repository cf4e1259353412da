// Integration tests of live captures (harness/evidence/capture.h) on the running
// kernel: captures on both ends of a veth pair while a real connection with
// keepalive (idle 1 s, interval 1 s, count 2) idles against a healthy peer. The
// classifier must find the probes and their ACKs on both captures, the capture
// times must agree with CLOCK_MONOTONIC, the pcap written must read back the same,
// and nothing may be dropped. Needs root; the root namespace is unchanged after.
//
// The [.bench] test measures what capturing costs (scripts/bench-capture.sh runs
// it); it prints figures and asserts nothing about timing.
#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <net/if.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <map>
#include <span>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <limits>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "harness/run/endpoints.h"
#include "harness/evidence/capture.h"
#include "harness/evidence/classify.h"
#include "harness/evidence/pcap_file.h"
#include "harness/clock/jiffies.h"
#include "harness/model/timing.h"
#include "harness/run/topology.h"
#include "harness/run/watcher.h"
#include "netns/packet_socket.h"
#include "tests/integration/root_snapshot.h"

using namespace kah;
using namespace kah::evidence;
using kah::test::RootSnapshot;

namespace {

constexpr std::uint16_t kPort = 8080;
constexpr double kIdleMs = 1000;  // TCP_KEEPIDLE = 1, TCP_KEEPINTVL = 1
constexpr std::uint8_t kAckOnly = 0x10;

ConnectionSpec keepalive_spec(Family family) {
  ConnectionSpec spec;
  spec.name = "c1";
  spec.family = family;
  spec.keepalive.enabled = true;
  spec.keepalive.idle_s = 1;
  spec.keepalive.interval_s = 1;
  spec.keepalive.count = 2;
  return spec;
}

const char* family_name(Family f) { return f == Family::ipv4 ? "ipv4" : "ipv6"; }

// HZ values to allow for: the detected one, or every common one.
std::vector<int> hz_values() {
  static const std::optional<int> hz = detect_hz().hz;
  if (hz) return {*hz};
  return {std::begin(model::kCommonHz), std::end(model::kCommonHz)};
}

double longest_tick_ms() {
  const auto hzs = hz_values();
  return 1000.0 / *std::min_element(hzs.begin(), hzs.end());
}

// When a probe may leave, from the last segment its sender received, against a
// peer that answers: the kernel counts idle time in whole jiffies (so up to one tick
// early against the capture clock), the timer lands in a wheel bucket that fires up
// to g jiffies late (1 s = 250 jiffies at HZ=250: level 1, g = 8, 32 ms), a re-arm for
// the rest of the idle time costs at most one more tick, and the softirq may run a
// little late (the model's wake-up slack).
model::Window idle_window(double idle_ms) {
  model::Window w{std::numeric_limits<double>::infinity(), -std::numeric_limits<double>::infinity()};
  for (int hz : hz_values()) {
    const double tick = 1000.0 / hz;
    const auto late = model::wheel_lateness(model::msecs_to_jiffies(idle_ms, hz), hz);
    w.earliest_ms = std::min(w.earliest_ms, idle_ms - tick);
    const double latest = idle_ms + static_cast<double>(late.max + 1) * tick + model::Kernel{}.wakeup_slack_ms;
    w.latest_ms = std::max(w.latest_ms, latest);
  }
  return w;
}

void write_all(int fd, const char* data, std::size_t n) {
  while (n > 0) {
    const ssize_t w = ::write(fd, data, n);
    if (w < 0 && errno == EINTR) continue;
    if (w < 0) throw_errno("write");
    data += w;
    n -= static_cast<std::size_t>(w);
  }
}

void read_exact(int fd, char* data, std::size_t n) {
  while (n > 0) {
    const ssize_t r = ::read(fd, data, n);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) throw_errno("read");
    if (r == 0) throw std::runtime_error("the peer closed the connection");
    data += r;
    n -= static_cast<std::size_t>(r);
  }
}

tcp_info read_tcp_info(int fd) {
  tcp_info info{};
  socklen_t len = sizeof info;
  if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &info, &len) != 0) throw_errno("TCP_INFO");
  return info;
}

void sleep_ms(double ms) { std::this_thread::sleep_for(std::chrono::microseconds(static_cast<long>(ms * 1000))); }

bool same_segment(const Packet& a, const Packet& b) {
  return a.frame == b.frame && a.family == b.family && a.src == b.src && a.dst == b.dst && a.sport == b.sport &&
         a.dport == b.dport && a.seq == b.seq && a.ack == b.ack && a.flags == b.flags &&
         a.payload_len == b.payload_len && a.window == b.window;
}

// What the test connection did, in CLOCK_MONOTONIC ms.
struct Timeline {
  Endpoint client, server;
  double pong_received_ms = 0;    // Established::last_received_ms: the runner's figure for the reply
  double data_send_from_ms = 0;   // monotonic_ms() right before write("data")...
  double data_send_to_ms = 0;     // ...and right after it returned
  double last_ack_ms = 0;         // the kernel's rcv_tstamp (TCP_INFO tcpi_last_ack_recv), jiffy resolution
  double last_ack_read_error_ms = 0;  // how long reading TCP_INFO took
};

// The nth (0-based) segment `from` sent with this much payload, or nullptr.
const Segment* data_segment(const FlowAnalysis& flow, Side from, std::uint32_t payload_len, std::size_t nth) {
  std::size_t seen = 0;
  for (const auto& s : flow.segments)
    if (s.from == from && s.packet.payload_len == payload_len && seen++ == nth) return &s;
  return nullptr;
}

// Everything one capture must show; `client_end` is true for the capture on the
// client's veth end (the client's segments are sent there, the server's received).
void check_capture(LiveCapture& capture, const Timeline& t, bool client_end) {
  INFO("capture on " << capture.where());
  INFO(fmt::format("errors: {}", fmt::join(capture.errors(), "; ")));
  CHECK(capture.errors().empty());
  const auto stats = capture.stats();
  INFO("received " << stats.received << ", dropped " << stats.dropped << ", interface dropped " << stats.if_dropped);
  CHECK(stats.lossless());
  CHECK(capture.clock_ambiguous_frames() == 0);

  const auto analysis = analyze(capture.to_capture());
  INFO(describe_analysis(analysis));
  const FlowAnalysis* flow = find_flow(analysis, t.client, t.server);
  REQUIRE(flow != nullptr);
  CHECK(flow->a.port == t.client.port);  // the capture holds the handshake: the client opened it
  REQUIRE(flow->prober.has_value());
  CHECK(*flow->prober == Side::a);
  CHECK(flow->end == FlowEnd::capture_end);

  // 3.5 s of idling: probes at ~1, ~2 and ~3 s, each answered.
  const auto probes = flow->probes_of(Side::a);
  CHECK(probes.size() >= 2);
  CHECK(probes.size() <= 4);
  std::size_t acks = 0;
  for (const auto& s : flow->segments) acks += s.kind == SegmentKind::keepalive_ack ? 1 : 0;
  CHECK(acks == probes.size());
  for (const auto& p : probes) {
    CHECK(p.answer == ProbeAnswer::ack);
    CHECK(p.payload_len == 0);
    REQUIRE(p.answered_ms.has_value());
    CHECK(*p.answered_ms - p.t_ms >= 0);
    CHECK(*p.answered_ms - p.t_ms < 1.0);  // a veth round trip: tens of microseconds
  }

  // The idle time, from every run (each answered probe starts a new one).
  const auto window = idle_window(kIdleMs);
  INFO(fmt::format("idle window [{:.1f}, {:.1f}] ms", window.earliest_ms, window.latest_ms));
  REQUIRE(flow->idle_ms.has_value());
  CHECK(window.contains(*flow->idle_ms));
  std::string idles;
  for (const auto& run : flow->runs) {
    REQUIRE(run.last_rx_ms.has_value());
    const double idle = run.probes.front().t_ms - *run.last_rx_ms;
    idles += fmt::format(" {:.3f}", idle);
    CHECK(window.contains(idle));
  }

  // Capture times against CLOCK_MONOTONIC.
  const auto clock = capture.clock();
  const double conversion_error_ms = static_cast<double>(clock.error_ns) / 1e6 + 0.001;  // + Packet::t_ms rounding
  const Segment* data = data_segment(*flow, Side::a, 4, 1);  // "ping" is the first 4-byte segment, "data" the second
  REQUIRE(data != nullptr);
  const double data_ms = clock.to_monotonic_ms(data->packet.t_ms);
  const Segment* pong = data_segment(*flow, Side::b, 4, 0);
  REQUIRE(pong != nullptr);
  const double pong_ms = clock.to_monotonic_ms(pong->packet.t_ms);
  const double last_ack_ms = clock.to_monotonic_ms(*probes.back().answered_ms);
  const double tick = longest_tick_ms();
  std::printf(
      "%s, %s: clock offset error %.3f us; \"data\" stamped %.1f us after write() began, %.1f us before it "
      "returned (write() took %.1f us); the reply stamped %.1f us before the runner's receive time; last "
      "keepalive ACK %+.0f us from the kernel's rcv_tstamp (jiffy resolution); idle per run (ms):%s\n",
      capture.where().c_str(), client_end ? "client end" : "server end", static_cast<double>(clock.error_ns) / 1e3,
      (data_ms - t.data_send_from_ms) * 1e3, (t.data_send_to_ms - data_ms) * 1e3,
      (t.data_send_to_ms - t.data_send_from_ms) * 1e3, (t.pong_received_ms - pong_ms) * 1e3,
      (last_ack_ms - t.last_ack_ms) * 1e3, idles.c_str());
  if (client_end) {
    // veth transmits inside write(): the client's end stamps the segment before write() returns.
    CHECK(data_ms >= t.data_send_from_ms - conversion_error_ms);
    CHECK(data_ms <= t.data_send_to_ms + conversion_error_ms);
    // The reply was stamped on arrival, before the runner's receive time (the
    // socket's own kernel stamp or, without one, the time read() returned).
    CHECK(pong_ms <= t.pong_received_ms + 1.0);
  } else {
    // The server's end stamps it when the receive softirq runs: after it was sent,
    // normally still inside write(), at worst one tick later.
    CHECK(data_ms >= t.data_send_from_ms - conversion_error_ms);
    CHECK(data_ms <= t.data_send_to_ms + tick);
  }
  // The kernel's rcv_tstamp is a jiffy, and TCP_INFO gives now - it in whole ms: the
  // ACK's true arrival is within one tick (+1 ms) of the figure derived from it.
  CHECK(std::abs(last_ack_ms - t.last_ack_ms) <= tick + 1.0 + t.last_ack_read_error_ms);

  // Written to a file and read back: the same frames and segments. PcapWriter takes
  // times as double ms, which holds ~0.25 us at today's epoch.
  const auto file = std::filesystem::temp_directory_path() /
                    fmt::format("kah-test-capture-{}-{}.pcap", ::getpid(), client_end ? "client" : "server");
  capture.write_pcap(file);
  const auto back = read_pcap(file);
  std::filesystem::remove(file);
  const auto live = capture.to_capture();
  CHECK(back.link == live.link);
  CHECK(back.frames == live.frames);
  REQUIRE(back.packets.size() == live.packets.size());
  double worst_us = 0;
  for (std::size_t i = 0; i < live.packets.size(); ++i) {
    CHECK(same_segment(back.packets[i], live.packets[i]));
    worst_us = std::max(worst_us, std::abs(back.packets[i].t_ms - live.packets[i].t_ms) * 1e3);
  }
  CHECK(worst_us <= 0.5);
}

void capture_keepalive(Family family) {
  const auto before = RootSnapshot::take();
  {
    auto topology = build_pair_topology(fmt::format("capture-{}", family_name(family)), {});
    const auto& client_ns = topology->ns(Host::client);
    const auto& server_ns = topology->ns(Host::server);
    CaptureLoop loop;
    auto opened = LiveCapture::open_all({{&client_ns, "veth-c"}, {&server_ns, "veth-s"}});
    REQUIRE(opened.size() == 2);
    const auto client_capture = loop.add(std::move(opened[0]));
    const auto server_capture = loop.add(std::move(opened[1]));
    CHECK(loop.size() == 2);

    Timeline t;
    t.client.addr = topology->address(Host::client, family);
    t.server = {topology->address(Host::server, family), kPort};
    const auto listener = open_listener(server_ns, family, t.server.addr, kPort);
    auto clients = open_client_sockets(client_ns, keepalive_spec(family), 1);
    const int client = clients[0].get();
    const auto established = establish(client, listener.get(), family, t.server.addr, kPort);
    t.client.port = established.client_port;
    t.pong_received_ms = established.last_received_ms;

    char buf[4];
    t.data_send_from_ms = monotonic_ms();
    write_all(client, "data", 4);
    t.data_send_to_ms = monotonic_ms();
    read_exact(established.server.get(), buf, 4);
    wait_until_idle(client, 1000);

    sleep_ms(3500);  // probes at ~1, ~2 and ~3 s; the next one is due at ~4 s
    const double read_from = monotonic_ms();
    const auto info = read_tcp_info(client);
    const double read_to = monotonic_ms();
    t.last_ack_ms = (read_from + read_to) / 2 - info.tcpi_last_ack_recv;
    t.last_ack_read_error_ms = (read_to - read_from) / 2;

    CHECK(loop.frame_count(client_capture) > 0);
    auto on_client = loop.remove(client_capture);
    auto on_server = loop.remove(server_capture);
    CHECK(loop.size() == 0);
    CHECK_FALSE(on_client.is_open());
    check_capture(on_client, t, true);
    check_capture(on_server, t, false);
  }
  CHECK(before.diff(RootSnapshot::take()) == "");
}

}  // namespace

TEST_CASE("captures on both ends see keepalive probes and their ACKs (IPv4)", "[capture]") {
  capture_keepalive(Family::ipv4);
}

TEST_CASE("captures on both ends see keepalive probes and their ACKs (IPv6)", "[capture]") {
  capture_keepalive(Family::ipv6);
}

// The local backend captures on lo, where both copies of a frame pass the tap. A
// burst of keepalive probes sent by one timer tick is the case it got wrong with
// libpcap (which keeps the incoming copy, stamped when NET_RX delivers it after the
// whole burst was sent): each probe must be there once, stamped as it left.
TEST_CASE("on lo a capture keeps each frame once, stamped as it leaves, also in a burst of probes", "[capture][local]") {
  constexpr int kConnections = 100;
  const auto ns = netns::Namespace::create("capture-lo");
  // A reference tap with both copies and their kernel stamps (CLOCK_REALTIME ns).
  const UniqueFd tap = ns.run([] {
    UniqueFd fd(::socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC | SOCK_NONBLOCK, htons(ETH_P_ALL)));
    if (!fd) throw_errno("AF_PACKET");
    sockaddr_ll ll{};
    ll.sll_family = AF_PACKET;
    ll.sll_protocol = htons(ETH_P_ALL);
    ll.sll_ifindex = static_cast<int>(if_nametoindex("lo"));
    if (::bind(fd.get(), reinterpret_cast<const sockaddr*>(&ll), sizeof ll) != 0) throw_errno("bind");
    const int on = 1, bytes = 1 << 24;
    if (::setsockopt(fd.get(), SOL_SOCKET, SO_TIMESTAMPNS, &on, sizeof on) != 0) throw_errno("SO_TIMESTAMPNS");
    if (::setsockopt(fd.get(), SOL_SOCKET, SO_RCVBUFFORCE, &bytes, sizeof bytes) != 0) throw_errno("SO_RCVBUFFORCE");
    return fd;
  });
  const auto listener = open_listener(ns, Family::ipv4, "127.0.0.1", kPort);
  CaptureOptions options;
  options.filter = fmt::format("tcp port {}", kPort);
  CaptureLoop loop;
  const auto id = loop.add(LiveCapture::open(ns, "lo", options));
  ConnectionSpec spec = keepalive_spec(Family::ipv4);
  spec.keepalive.count = 9;
  auto clients = open_client_sockets(ns, spec, kConnections);
  std::vector<UniqueFd> servers;
  for (auto& c : clients) servers.push_back(establish(c.get(), listener.get(), Family::ipv4, "127.0.0.1", kPort).server);
  sleep_ms(1600);  // the first probes leave at ~1 s, in a few ticks' bursts
  auto capture = loop.remove(id);
  INFO(fmt::format("errors: {}", fmt::join(capture.errors(), "; ")));
  CHECK(capture.errors().empty());
  CHECK(capture.stats().lossless());

  // The reference tap: the stamps of each client's pure ACKs towards the server (the
  // handshake's last segment, then its probes), outgoing and incoming copies apart.
  std::map<std::uint16_t, std::vector<std::int64_t>> outgoing, incoming;
  std::array<std::uint8_t, 256> buffer{};
  while (const auto read = netns::read_packet_frame(tap.get(), buffer)) {
    const auto packet = decode_frame(LinkType::ethernet, std::span(buffer.data(), read->length), 0);
    if (!packet || packet->dport != kPort || packet->payload_len != 0 || packet->flags != kAckOnly) continue;
    REQUIRE(read->realtime_ns.has_value());
    (read->pkttype == PACKET_OUTGOING ? outgoing : incoming)[packet->sport].push_back(*read->realtime_ns);
  }
  std::map<std::uint16_t, std::vector<std::int64_t>> seen;
  for (const auto& frame : capture.frames()) {
    const auto packet = decode_frame(LinkType::ethernet, frame.bytes, frame.t_ms());
    if (packet && packet->dport == kPort && packet->payload_len == 0 && packet->flags == kAckOnly)
      seen[packet->sport].push_back(frame.t_ns);
  }
  REQUIRE(seen.size() == kConnections);
  // Each stamp is its outgoing copy's (the two taps stamp one clone each, in the same
  // loop of dev_queue_xmit_nit: microseconds apart), never the incoming copy's.
  std::int64_t worst_ns = 0, burst_lag_ns = 0;
  for (const auto& [port, stamps] : seen) {
    INFO("client port " << port);
    REQUIRE(outgoing[port].size() == stamps.size());  // once each
    REQUIRE(incoming[port].size() == stamps.size());
    CHECK(stamps.size() >= 2);  // the handshake's ACK and at least the first probe
    for (std::size_t i = 0; i < stamps.size(); ++i) {
      worst_ns = std::max(worst_ns, static_cast<std::int64_t>(std::llabs(stamps[i] - outgoing[port][i])));
      burst_lag_ns = std::max(burst_lag_ns, incoming[port][i] - outgoing[port][i]);
    }
  }
  std::printf("lo, %d connections: capture stamps within %.1f us of the outgoing copies; incoming copies up to %.1f us "
              "later\n",
              kConnections, static_cast<double>(worst_ns) / 1e3, static_cast<double>(burst_lag_ns) / 1e3);
  CHECK(worst_ns < 50'000);
}

TEST_CASE("a capture that cannot open says where and why", "[capture]") {
  const auto ns = netns::Namespace::create("capture-errors/client");
  try {
    LiveCapture::open(ns, "nosuch0");
    FAIL("opening a capture on a missing interface succeeded");
  } catch (const CaptureError& e) {
    const std::string msg = e.what();
    INFO(msg);
    CHECK(msg.find("nosuch0") != std::string::npos);
    CHECK(msg.find("capture-errors/client") != std::string::npos);
    CHECK(msg.find("pcap_activate") != std::string::npos);
  }
  // All or none: the failure is the missing interface, and the capture on lo is closed.
  CHECK_THROWS_WITH(LiveCapture::open_all({{&ns, "lo"}, {&ns, "nosuch0"}}), Catch::Contains("nosuch0"));
  CaptureOptions bad;
  bad.filter = "tcp and nonsense";
  CHECK_THROWS_WITH(LiveCapture::open(ns, "lo", bad), Catch::Contains("pcap_compile") && Catch::Contains("nonsense"));
}

TEST_CASE("a capture survives its link going down and up, and a loop drains on stop", "[capture]") {
  auto topology = build_pair_topology("capture-link", {});
  CaptureLoop loop;
  const auto id = loop.add(LiveCapture::open(topology->ns(Host::client), "veth-c"));
  topology->set_link_up(Host::client, false);
  sleep_ms(100);
  topology->set_link_up(Host::client, true);
  sleep_ms(100);
  // An error left pending on the socket would wake the loop for ever: it must be idle.
  const double cpu_before = loop.cpu_ms();
  sleep_ms(200);
  CHECK(loop.cpu_ms() - cpu_before < 100);

  const auto listener = open_listener(topology->ns(Host::server), Family::ipv4, "198.18.0.2", kPort);
  auto clients = open_client_sockets(topology->ns(Host::client), keepalive_spec(Family::ipv4), 1);
  const auto established = establish(clients[0].get(), listener.get(), Family::ipv4, "198.18.0.2", kPort);
  // stop() ends the thread and drains what is left; remove() still hands it back.
  loop.stop();
  CHECK_THROWS_AS(loop.add(LiveCapture::open(topology->ns(Host::server), "veth-s")), std::logic_error);
  auto capture = loop.remove(id);
  INFO(fmt::format("errors: {}", fmt::join(capture.errors(), "; ")));
  CHECK(capture.errors().empty());  // down and up again is no failure
  const auto packets = capture.packets();
  INFO(packets.size() << " segments");
  // Handshake, ping, pong and their ACKs all reached the capture.
  CHECK(packets.size() >= 6);
  CHECK(std::any_of(packets.begin(), packets.end(), [&](const Packet& p) {
    return p.sport == established.client_port && p.has(tcp_flag::syn);
  }));
  CHECK(capture.stats().lossless());
}

TEST_CASE("a capture whose interface is deleted says so, then stops", "[capture]") {
  auto topology = build_pair_topology("capture-gone", {});
  auto capture = LiveCapture::open(topology->ns(Host::client), "veth-c");
  // The capture keeps the client namespace alive; closing the server's deletes the
  // veth pair, veth-c with it (the kernel does it in the background).
  topology.reset();
  for (int i = 0; i < 200 && capture.errors().empty(); ++i) {
    capture.drain();
    sleep_ms(50);
  }
  REQUIRE(capture.errors().size() == 1);
  CHECK_THAT(capture.errors()[0], Catch::StartsWith("capture-gone/client/veth-c: pcap_dispatch failed at") &&
                                      Catch::Contains("disappeared"));
  // Every read fails from now on; the third in a row stops it.
  capture.drain();
  capture.drain();
  CHECK_FALSE(capture.is_open());
  CHECK(capture.errors().size() == 2);
  CHECK_THAT(capture.errors().back(), Catch::Contains("3 reads failed in a row; capture stopped"));
}

// scripts/bench-capture.sh: what capturing costs, for KAH_BENCH_PAIRS pairs of
// namespaces (default 20) with KAH_BENCH_CONNECTIONS connections each (default 10),
// each connection doing KAH_BENCH_ROUNDS request/reply rounds (default 20) and then
// idling 3.5 s with keepalive probes every second. Prints figures; asserts nothing
// about them.
namespace {

int env_int(const char* name, int fallback) {
  const char* v = std::getenv(name);
  return v != nullptr && *v != '\0' ? std::atoi(v) : fallback;
}

double ms(const timeval& tv) { return static_cast<double>(tv.tv_sec) * 1e3 + static_cast<double>(tv.tv_usec) / 1e3; }

rusage usage_now() {
  rusage r{};
  getrusage(RUSAGE_SELF, &r);
  return r;
}

struct BenchFigures {
  double wall_ms = 0, cpu_ms = 0, user_ms = 0, sys_ms = 0;
  double open_ms = 0, remove_ms = 0, collect_ms = 0, loop_cpu_ms = 0;
  std::size_t frames = 0, probes = 0, drops = 0, captures = 0;
};

BenchFigures bench_once(bool capture, int pairs, int per_pair, int rounds) {
  std::vector<std::unique_ptr<Topology>> topologies;
  for (int i = 0; i < pairs; ++i) topologies.push_back(build_pair_topology(fmt::format("bench-{}", i), {}));

  BenchFigures f;
  const auto start = usage_now();
  const double t0 = monotonic_ms();
  CaptureLoop loop;
  std::vector<CaptureLoop::Id> ids;
  if (capture) {
    std::vector<LiveCapture::Target> targets;
    for (const auto& t : topologies) {
      targets.push_back({&t->ns(Host::client), "veth-c"});
      targets.push_back({&t->ns(Host::server), "veth-s"});
    }
    for (auto& c : LiveCapture::open_all(targets)) ids.push_back(loop.add(std::move(c)));
  }
  f.open_ms = monotonic_ms() - t0;

  std::vector<UniqueFd> keep;
  for (const auto& t : topologies) {
    const auto listener = open_listener(t->ns(Host::server), Family::ipv4, "198.18.0.2", kPort);
    auto clients = open_client_sockets(t->ns(Host::client), keepalive_spec(Family::ipv4), per_pair);
    for (auto& c : clients) {
      auto e = establish(c.get(), listener.get(), Family::ipv4, "198.18.0.2", kPort);
      char buf[4];
      for (int r = 0; r < rounds; ++r) {
        write_all(c.get(), "req.", 4);
        read_exact(e.server.get(), buf, 4);
        write_all(e.server.get(), "rep.", 4);
        read_exact(c.get(), buf, 4);
      }
      keep.push_back(std::move(c));
      keep.push_back(std::move(e.server));
    }
  }
  sleep_ms(3500);
  keep.clear();  // FIN exchanges: still captured
  sleep_ms(50);

  const double t1 = monotonic_ms();
  auto removed = loop.remove(ids);
  f.remove_ms = monotonic_ms() - t1;
  for (auto& c : removed) {
    const auto stats = c.stats();
    f.drops += stats.dropped + stats.if_dropped;
    f.frames += c.frames().size();
    const auto analysis = analyze(c.to_capture());
    for (const auto& flow : analysis.flows)
      if (flow.prober) f.probes += flow.probes_of(*flow.prober).size();
  }
  f.collect_ms = monotonic_ms() - t1;
  f.loop_cpu_ms = loop.cpu_ms();
  f.captures = ids.size();
  loop.stop();

  const auto end = usage_now();
  f.wall_ms = monotonic_ms() - t0;
  f.user_ms = ms(end.ru_utime) - ms(start.ru_utime);
  f.sys_ms = ms(end.ru_stime) - ms(start.ru_stime);
  f.cpu_ms = f.user_ms + f.sys_ms;
  return f;
}

}  // namespace

TEST_CASE("capture overhead: keepalive connections with and without captures", "[.bench]") {
  const int pairs = env_int("KAH_BENCH_PAIRS", 20);
  const int per_pair = env_int("KAH_BENCH_CONNECTIONS", 10);
  const int rounds = env_int("KAH_BENCH_ROUNDS", 20);
  const int repeats = env_int("KAH_BENCH_REPEATS", 2);
  std::printf("capture overhead: %d pairs x %d connections = %d connections, %d request/reply rounds each, "
              "then 3.5 s idle with keepalive 1/1/2 (3 probes each)\n",
              pairs, per_pair, pairs * per_pair, rounds);
  std::printf("%-8s %9s %9s %9s %9s %9s %9s %9s %10s %8s %7s %6s\n", "mode", "wall ms", "cpu ms", "user ms",
              "sys ms", "open ms", "loop ms", "remove ms", "analyse ms", "frames", "probes", "drops");
  for (int r = 0; r < repeats; ++r) {
    for (bool capture : {false, true}) {
      const auto f = bench_once(capture, pairs, per_pair, rounds);
      std::printf("%-8s %9.1f %9.1f %9.1f %9.1f %9.1f %9.1f %9.1f %10.1f %8zu %7zu %6zu\n",
                  capture ? "capture" : "none", f.wall_ms, f.cpu_ms, f.user_ms, f.sys_ms, f.open_ms, f.loop_cpu_ms,
                  f.remove_ms, f.collect_ms - f.remove_ms, f.frames, f.probes, f.drops);
      std::fflush(stdout);
    }
  }
  std::printf("wall, cpu: the whole phase (open captures, connections, 3.5 s idle, remove and analyse captures); "
              "cpu = getrusage(RUSAGE_SELF) user + sys of all threads (softirq work is charged to whichever task it "
              "interrupts); loop = CPU of the capture loop's thread; open = LiveCapture::open_all(every capture); "
              "remove = CaptureLoop::remove(every capture); analyse = decode + classify every capture\n");
}

