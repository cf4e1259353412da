// The classifier and the probe-by-probe check, on captures made here: a Linux-style
// run of 0-byte probes that ends in the client's RST, and a Windows-style run of 1-byte
// probes, each written to a pcap with PcapWriter and read back, as `kaharness analyze` would.
#include <catch2/catch.hpp>

#include <unistd.h>

#include <fmt/format.h>

#include "harness/run/capture_evidence.h"
#include "harness/evidence/classify.h"
#include "harness/evidence/pcap_file.h"
#include "harness/evidence/probe_check.h"
#include "conversation.h"

using namespace kah;
using namespace kah::evidence;
using kah::test::Conversation;
using kah::test::kT0;
using kah::test::through_pcap;

namespace {

std::vector<SegmentKind> kinds(const FlowAnalysis& f) {
  std::vector<SegmentKind> out;
  for (const auto& s : f.segments) out.push_back(s.kind);
  return out;
}

// Linux, idle 2 s, interval 1 s, count 4, peer silent after the last exchange at 11 ms.
Conversation linux_blackhole() {
  Conversation c(Family::ipv4, "198.18.0.1", "198.18.0.2");
  c.handshake(0);
  c.client_data(10, 100);
  c.server_data(11, 50);  // t_r: the client's last received segment
  c.client_ack(11.2);
  c.client_probe(11 + 2004.1, 0);
  c.client_probe(11 + 3004.1, 0);
  c.client_probe(11 + 4004.5, 0);
  c.client_probe(11 + 5005.5, 0);
  c.client_rst(11 + 6005.9);
  return c;
}

model::Prediction prediction_of(std::vector<model::Window> windows) {
  model::Prediction p;
  p.outcome = model::Outcome::timeout;
  for (std::size_t i = 0; i < windows.size(); ++i)
    p.probes.push_back({static_cast<int>(i), 2000.0 + 1000.0 * static_cast<double>(i), windows[i], true});
  return p;
}

}  // namespace

TEST_CASE("Linux 0-byte probes ending in the client's RST: labels and inferred settings", "[evidence][classify]") {
  const Capture capture = through_pcap(linux_blackhole(), LinkType::ethernet, "linux");
  const Analysis analysis = analyze(capture);
  REQUIRE(analysis.flows.size() == 1);
  const FlowAnalysis& f = analysis.flows[0];
  CHECK(f.a.str() == "198.18.0.1:40001");
  CHECK(f.b.str() == "198.18.0.2:8080");
  using K = SegmentKind;
  CHECK(kinds(f) == std::vector<K>{K::syn, K::syn, K::ack, K::data, K::data, K::ack, K::keepalive_probe,
                                   K::keepalive_probe, K::keepalive_probe, K::keepalive_probe, K::rst});
  REQUIRE(f.prober);
  CHECK(*f.prober == Side::a);
  REQUIRE(f.idle_ms);
  CHECK(*f.idle_ms == Approx(2004.1).epsilon(0).margin(1e-3));
  REQUIRE(f.interval_ms);
  CHECK(*f.interval_ms == Approx(1000.4).epsilon(0).margin(1e-3));  // gaps 1000.0, 1000.4, 1001.0
  CHECK(f.count == 4);
  CHECK(f.end == FlowEnd::reset_by_prober);
  CHECK(f.ended_by_rst());
  REQUIRE(f.runs.size() == 1);
  for (const auto& p : f.runs[0].probes) {
    CHECK(p.payload_len == 0);
    CHECK(p.answer == ProbeAnswer::none);
  }

  const std::string text = describe_analysis(analysis);
  CHECK_THAT(text, Catch::Contains("198.18.0.1:40001 <-> 198.18.0.2:8080 (ipv4)"));
  CHECK_THAT(text, Catch::Contains("idle 2004.1 ms, interval 1000.4 ms (median), 4 probes"));
  CHECK_THAT(text, Catch::Contains("ended: reset-by-prober at 6005.9 ms"));
  CHECK_THAT(text, Catch::Contains("      3        4004.5      1000.4    0  none"));

  const auto json = analysis_json(analysis);
  CHECK(json["frames"] == 11);
  CHECK(json["flows"][0]["keepalive"]["count"] == 4);
  CHECK(json["flows"][0]["end"] == "reset-by-prober");
  CHECK(json["flows"][0]["segments"][6]["kind"] == "keepalive-probe");
}

TEST_CASE("Windows 1-byte probes: answered while the peer lives, then unanswered", "[evidence][classify]") {
  Conversation c(Family::ipv6, "fd00:6b61:68::1", "fd00:6b61:68::2");
  c.handshake(0);
  c.client_data(5, 200);
  c.server_ack(5.3);
  // Healthy peer: each 1-byte probe is acknowledged, so the next one waits a full idle time.
  c.client_probe(5.3 + 7200, 1);
  c.server_ack(5.3 + 7200.4);
  c.client_probe(5.3 + 7200.4 + 7200, 1);
  c.server_ack(5.3 + 7200.4 + 7200.3);
  // The peer is gone: probes every second, nothing back; the capture stops.
  const double last_rx = 5.3 + 7200.4 + 7200.3;
  for (int k = 0; k < 5; ++k) c.client_probe(last_rx + 7200 + 1000.0 * k + 0.1 * k, 1);

  const Capture capture = through_pcap(c, LinkType::linux_sll2, "windows");
  REQUIRE(capture.packets.size() == 14);
  const Analysis analysis = analyze(capture);
  REQUIRE(analysis.flows.size() == 1);
  const FlowAnalysis& f = analysis.flows[0];
  CHECK(f.family == Family::ipv6);
  CHECK(f.a.str() == "[fd00:6b61:68::1]:40001");
  using K = SegmentKind;
  CHECK(kinds(f) == std::vector<K>{K::syn, K::syn, K::ack, K::data, K::ack, K::keepalive_probe, K::keepalive_ack,
                                   K::keepalive_probe, K::keepalive_ack, K::keepalive_probe, K::keepalive_probe,
                                   K::keepalive_probe, K::keepalive_probe, K::keepalive_probe});
  REQUIRE(f.runs.size() == 3);
  CHECK(f.runs[0].probes[0].answer == ProbeAnswer::ack);
  CHECK(*f.runs[0].probes[0].answered_ms - f.runs[0].probes[0].t_ms == Approx(0.4).epsilon(0).margin(1e-3));
  CHECK(f.runs[1].probes[0].answer == ProbeAnswer::ack);
  CHECK(f.count == 5);
  REQUIRE(f.idle_ms);
  CHECK(*f.idle_ms == Approx(7200).epsilon(0).margin(1e-3));
  REQUIRE(f.interval_ms);
  CHECK(*f.interval_ms == Approx(1000.1).epsilon(0).margin(1e-3));
  CHECK(f.end == FlowEnd::capture_end);
  CHECK_FALSE(f.ended_by_rst());
  CHECK(f.runs[2].probes[0].payload_len == 1);
  CHECK_THAT(describe_analysis(analysis), Catch::Contains("5 probes in the last run (1-byte)"));
}

TEST_CASE("a 1-byte retransmission of unacknowledged data is not a probe", "[evidence][classify]") {
  Conversation c(Family::ipv4, "198.18.0.1", "198.18.0.2");
  c.handshake(0);
  c.client_data(5, 1);
  c.client_retransmit_last(205);  // the RTO: same byte, never acknowledged
  c.client_retransmit_last(605);
  const FlowAnalysis f = analyze_flow(c.packets());
  CHECK(f.segments[4].kind == SegmentKind::retransmission);
  CHECK(f.segments[5].kind == SegmentKind::retransmission);
  CHECK_FALSE(f.prober);
  CHECK(f.runs.empty());
}

TEST_CASE("a 0-byte probe of a zero window is the persist timer, not keepalive", "[evidence][classify]") {
  Conversation c(Family::ipv4, "198.18.0.1", "198.18.0.2");
  c.handshake(0);
  c.server_window(0);
  c.client_data(5, 100);
  c.server_ack(5.2);
  c.client_probe(205, 0);
  const FlowAnalysis f = analyze_flow(c.packets());
  CHECK(f.segments.back().kind == SegmentKind::window_probe);
  CHECK_FALSE(f.prober);
}

TEST_CASE("a rebooted peer answers the probe with an RST", "[evidence][classify]") {
  Conversation c(Family::ipv4, "198.18.0.1", "198.18.0.2");
  c.handshake(0);
  c.client_data(5, 10);
  c.server_ack(6);
  c.client_probe(2025, 0);
  c.server_rst(2025.3, 777001);
  const FlowAnalysis f = analyze_flow(c.packets());
  REQUIRE(f.runs.size() == 1);
  CHECK(f.runs[0].probes[0].answer == ProbeAnswer::reset);
  CHECK(f.end == FlowEnd::reset_by_peer);
  CHECK(f.count == 1);
  CHECK(*f.idle_ms == Approx(2019).epsilon(0).margin(1e-3));
}

TEST_CASE("a capture that starts while the connection is idle still finds the probes", "[evidence][classify]") {
  // No handshake, no data: SND.NXT is learnt from the peer's ACK of the first probe.
  Conversation c(Family::ipv4, "198.18.0.1", "198.18.0.2");
  c.client_probe(0, 0);
  c.server_ack(0.3);
  c.client_probe(2000.3, 0);
  c.client_probe(3000.3, 0);
  const FlowAnalysis f = analyze_flow(c.packets());
  CHECK(f.segments[1].kind == SegmentKind::ack);  // nothing yet says the first was a probe
  CHECK(f.segments[2].kind == SegmentKind::keepalive_probe);
  CHECK(f.segments[3].kind == SegmentKind::keepalive_probe);
  CHECK(f.count == 2);
  CHECK(*f.idle_ms == Approx(2000).epsilon(0).margin(1e-3));
}

TEST_CASE("flows are kept apart and found from either end", "[evidence][classify]") {
  Conversation one(Family::ipv4, "198.18.0.1", "198.18.0.2");
  Conversation two(Family::ipv4, "198.18.0.3", "198.18.0.2");
  one.handshake(0);
  two.handshake(0.05);
  std::vector<Packet> all = one.packets();
  all.insert(all.end(), two.packets().begin(), two.packets().end());
  const Analysis analysis = analyze(all);
  REQUIRE(analysis.flows.size() == 2);
  const auto* found = find_flow(analysis, {"198.18.0.2", 8080}, {"198.18.0.3", 40001});
  REQUIRE(found != nullptr);
  CHECK(found->a.addr == "198.18.0.3");
  CHECK(find_flow(analysis, {"198.18.0.9", 1}, {"198.18.0.2", 8080}) == nullptr);
  CHECK_THAT(describe_analysis(analysis), Catch::Contains("no keepalive probes"));
}

TEST_CASE("probes inside their windows check ok", "[evidence][probes]") {
  const FlowAnalysis f = analyze_flow(linux_blackhole().packets());
  const double origin = kT0 + 11;
  const auto checks =
      check_probes(f, prediction_of({{2004, 2260}, {3004, 3260}, {4004, 4260}, {5004, 5260}}), origin);
  REQUIRE(checks.size() == 4);
  CHECK(all_ok(checks));
  CHECK(*checks[1].seen_ms == Approx(3004.1).epsilon(0).margin(1e-3));
  CHECK(checks[1].message == "probe 2 ok: expected within [3004.0, 3260.0] ms, seen at 3004.1 ms");
}

TEST_CASE("a late probe is named with its window and the time it was seen", "[evidence][probes]") {
  Conversation c(Family::ipv4, "198.18.0.1", "198.18.0.2");
  c.handshake(0);
  c.server_data(10, 5);
  c.client_probe(10 + 2004.2, 0);
  c.client_probe(10 + 3402.5, 0);
  const auto checks = check_probes(analyze_flow(c.packets()), prediction_of({{2004, 2260}, {3004, 3260}}), kT0 + 10);
  REQUIRE(checks.size() == 2);
  CHECK(checks[0].verdict == ProbeVerdict::ok);
  CHECK(checks[1].verdict == ProbeVerdict::late);
  CHECK(checks[1].message == "probe 2 late: expected within [3004.0, 3260.0] ms, seen at 3402.5 ms");
  CHECK_FALSE(all_ok(checks));
}

TEST_CASE("early, missing, extra and uncertain probes", "[evidence][probes]") {
  const FlowAnalysis f = analyze_flow(linux_blackhole().packets());
  const double origin = kT0 + 11;
  SECTION("early") {
    const auto checks = check_probes(f, prediction_of({{2100, 2260}, {3004, 3260}, {4004, 4260}, {5004, 5260}}), origin);
    CHECK(checks[0].verdict == ProbeVerdict::early);
    CHECK(checks[0].message == "probe 1 early: expected within [2100.0, 2260.0] ms, seen at 2004.1 ms");
  }
  SECTION("one more expected than sent") {
    const auto checks = check_probes(
        f, prediction_of({{2004, 2260}, {3004, 3260}, {4004, 4260}, {5004, 5260}, {6004, 6260}}), origin);
    REQUIRE(checks.size() == 5);
    CHECK(checks[4].verdict == ProbeVerdict::missing);
    CHECK(checks[4].message == "probe 5 missing: expected within [6004.0, 6260.0] ms, not seen");
  }
  SECTION("an uncertain probe may be absent") {
    auto prediction = prediction_of({{2004, 2260}, {3004, 3260}, {4004, 4260}, {5004, 5260}, {6004, 6260}});
    prediction.probes[4].certain = false;
    const auto checks = check_probes(f, prediction, origin);
    CHECK(checks[4].verdict == ProbeVerdict::ok);
    CHECK(all_ok(checks));
  }
  SECTION("one more sent than expected") {
    const auto checks = check_probes(f, prediction_of({{2004, 2260}, {3004, 3260}, {4004, 4260}}), origin);
    REQUIRE(checks.size() == 4);
    CHECK(checks[3].verdict == ProbeVerdict::extra);
    CHECK_FALSE(checks[3].expected);
    CHECK(checks[3].message == "probe 4 not expected: seen at 5005.5 ms, the model predicts 3 probes");
  }
  SECTION("probes before the origin are not counted") {
    // With origin just after the second probe, the model's first probe is the capture's third.
    const auto checks = check_probes(f, prediction_of({{1000, 1100}, {2000, 2100}}), kT0 + 11 + 3004.2);
    REQUIRE(checks.size() == 2);
    CHECK(*checks[0].seen_ms == Approx(1000.3).epsilon(0).margin(1e-3));
  }
  SECTION("no capture of probes at all") {
    Conversation quiet(Family::ipv4, "198.18.0.1", "198.18.0.2");
    quiet.handshake(0);
    const auto checks = check_probes(analyze_flow(quiet.packets()), prediction_of({{2004, 2260}}), kT0);
    REQUIRE(checks.size() == 1);
    CHECK(checks[0].verdict == ProbeVerdict::missing);
  }
}

TEST_CASE("a probe whose window runs past the end of observation is not called missing", "[evidence][probes]") {
  // peer-alive, as reported: idle 1, interval 1, the answered probes one a second; the
  // horizon (end of observation) at 5122.6 ms falls inside probe 5's window
  // [5118.3, 5125.5] ms, and the probe had not left yet.
  Conversation c(Family::ipv4, "198.18.0.1", "198.18.0.2");
  c.handshake(0);
  c.server_data(10, 5);
  for (int k = 0; k < 4; ++k) {
    c.client_probe(10 + 1020.1 + 1024.0 * k, 0);
    c.server_ack(10 + 1020.4 + 1024.0 * k);
  }
  const FlowAnalysis f = analyze_flow(c.packets());
  const auto prediction =
      prediction_of({{1018.3, 1025.5}, {2042.3, 2049.5}, {3066.3, 3073.5}, {4090.3, 4097.5}, {5118.3, 5125.5}});
  const double origin = kT0 + 10;
  const auto before = check_probes(f, prediction, origin);  // no end of observation given: missing
  CHECK(before[4].verdict == ProbeVerdict::missing);
  const auto checks = check_probes(f, prediction, origin, origin + 5122.6);
  REQUIRE(checks.size() == 5);
  CHECK(all_ok(checks));
  CHECK(checks[4].message == "probe 5 not judged: expected within [5118.3, 5125.5] ms, observation stopped at 5122.6 ms");
  SECTION("a window that ends before observation stops still counts") {
    const auto late = check_probes(f, prediction, origin, origin + 5125.6);
    CHECK(late[4].verdict == ProbeVerdict::missing);
  }
  SECTION("a probe seen after observation stopped is not this connection's evidence") {
    Conversation more = c;
    more.client_probe(10 + 5123.0, 0);
    const auto cut = check_probes(analyze_flow(more.packets()), prediction_of({{1018.3, 1025.5}, {2042.3, 2049.5},
                                  {3066.3, 3073.5}, {4090.3, 4097.5}}), origin, origin + 5122.6);
    CHECK(all_ok(cut));
  }
}

TEST_CASE("t_r is the last data segment the client received before the fault", "[evidence][origin]") {
  // The reply's ACK is lost on a lossy path: the server sends the reply again (its
  // tail-loss probe, 204 ms later on these veths) and the client's kernel counts its
  // idle time from the copy (tcp_ack() stamps rcv_tstamp for it), while the exchange
  // read the first copy. An answered keepalive probe is not a new t_r (a fault that
  // came too late is fault_landing.h's business), nor is anything after the fault.
  Conversation c(Family::ipv4, "198.18.0.1", "198.18.0.2");
  c.handshake(0);
  c.client_data(10, 4);
  c.server_data(10.3, 4);   // the reply the application read
  c.server_data(214.3, 4);  // the same reply again: the client's ACK was lost
  c.client_ack(214.4);
  c.client_probe(2214.4, 0);
  c.server_ack(2214.6);
  c.server_data(2300, 4);
  const kah::FlowKey key{Family::ipv4, "198.18.0.1", "198.18.0.2", 40001, 8080};
  CHECK(*kah::last_received_before(c.packets(), key, kT0 + 1000) == Approx(kT0 + 214.3).epsilon(0).margin(1e-6));
  CHECK(*kah::last_received_before(c.packets(), key, kT0 + 100) == Approx(kT0 + 10.3).epsilon(0).margin(1e-6));
  CHECK(*kah::last_received_before(c.packets(), key, kT0 + 2250) == Approx(kT0 + 214.3).epsilon(0).margin(1e-6));
  const kah::FlowKey other{Family::ipv4, "198.18.0.1", "198.18.0.2", 40002, 8080};
  CHECK_FALSE(kah::last_received_before(c.packets(), other, kT0 + 1000));
}

TEST_CASE("a probe just past its window's edge says so with enough decimals", "[evidence][probes]") {
  // user-timeout-long, as reported: "probe 3 late: expected within [4074.4, 4081.6] ms,
  // seen at 4081.6 ms" (the comparison is at full precision; the text hid it).
  Conversation c(Family::ipv4, "198.18.0.1", "198.18.0.2");
  c.handshake(0);
  c.server_data(10, 5);
  c.client_probe(10 + 4081.64, 0);
  const auto checks = check_probes(analyze_flow(c.packets()), prediction_of({{4074.4, 4081.58}}), kT0 + 10);
  REQUIRE(checks.size() == 1);
  CHECK(checks[0].verdict == ProbeVerdict::late);
  CHECK(checks[0].message == "probe 1 late: expected within [4074.4, 4081.6] ms, seen at 4081.64 ms");
}

// soak.sh idle-30/31: a guest agent stepped the realtime clock +0.5 ms every 100 ms;
// stamps in a step's bracket were ambiguous, and every failure of the case was then
// "not judged", whichever connection the ambiguous stamps belonged to.
TEST_CASE("clock step doubt: only this connection's ambiguous stamps excuse its failure", "[evidence][clock]") {
  const kah::FlowKey key{Family::ipv4, "198.18.0.1", "198.18.0.2", 40001, 8080};
  const auto segment = [](std::uint16_t sport, std::uint16_t dport, bool ambiguous, Family f = Family::ipv4) {
    Packet p;
    p.family = f;
    p.sport = sport;
    p.dport = dport;
    p.clock_ambiguous = ambiguous;
    return p;
  };
  std::vector<kah::ClockStep> steps;
  for (int i = 0; i < 62; ++i) steps.push_back({500'000, 1'000'000'000LL + i * 100'000'000LL, 1'009'000'000LL + i * 100'000'000LL});
  // Another connection of the case (port 40002), and this one's IPv6 twin: not ours.
  const std::vector<Packet> others = {segment(40002, 8080, true), segment(8080, 40002, true),
                                      segment(40001, 8080, true, Family::ipv6), segment(40001, 8080, false)};
  CHECK_FALSE(kah::clock_step_doubt(others, {}, key, steps));
  // One of its probes on the client, and the server's copy of it.
  const auto doubt = kah::clock_step_doubt({segment(40001, 8080, true)}, {segment(8080, 40001, true)}, key, steps);
  REQUIRE(doubt);
  CHECK_THAT(*doubt, Catch::Contains("2 of this connection's capture stamps"));
  // 62 steps: three named, the rest summed, not 62 brackets in one message.
  CHECK_THAT(*doubt, Catch::StartsWith("the realtime clock stepped (+0.500 ms between CLOCK_MONOTONIC 1000.000 and "
                                       "1009.000 ms; +0.500 ms between"));
  CHECK_THAT(*doubt, Catch::Contains("; and 59 more, +31.000 ms in all)"));
}
