// From a capture to a case (`kaharness analyze CAPTURE --to-case FILE`): captures written
// here by hand (conversation.h) for each ending and each refusal, one taken from a
// harness run (tests/data/to-case/), the choice of the flow, and the command line.
// Every case written is loaded back and checked against the timing model, as `run`
// would before running it.
#include <catch2/catch.hpp>

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include <fmt/format.h>

#include "cli_call.h"
#include "conversation.h"
#include "harness/case/case.h"
#include "harness/evidence/to_case.h"
#include "harness/run/load_checks.h"

using namespace kah;
using namespace kah::evidence;
using kah::test::Conversation;
using kah::test::through_pcap;

namespace {

bool has(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

// Idle 2 s, interval 1 s, count 3 on Linux: the last exchange at 11 ms (frame 5), probes
// (frames 7-9), then the client's RST (frame 10) when a fourth probe would be due.
Conversation blackhole(Family family, const std::string& client, const std::string& server) {
  Conversation c(family, client, server);
  c.handshake(0);
  c.client_data(10, 100);
  c.server_data(11, 50);
  c.client_ack(11.2);
  c.client_probe(11 + 2004.1, 0);
  c.client_probe(11 + 3004.1, 0);
  c.client_probe(11 + 4004.5, 0);
  c.client_rst(11 + 5005.2);
  return c;
}

Analysis analysis_of(const Conversation& c, const std::string& name) {
  return analyze(through_pcap(c, LinkType::ethernet, name));
}

// The case text as `run` sees it: loaded, then checked against the model (HZ 250).
Case checked(const std::string& text) {
  const Case c = parse_case(text, "from-capture.toml");
  LoadLimits limits;
  limits.kernel.hz = 250;
  check_case(c, limits);
  return c;
}

// opened(), then a probe at 2006 ms (frame 6) that the server answers (frame 7).
Conversation probe_answered() {
  Conversation c = kah::test::opened();
  c.client_probe(2006, 0);
  c.server_ack(2006.2);
  return c;
}

std::string refusal(const Conversation& c) {
  try {
    infer_case(analysis_of(c, "to-case-refused"), 0);
  } catch (const CaseInferenceError& e) {
    return e.what();
  }
  return "(not refused)";
}

std::string read_text(const std::filesystem::path& file) {
  std::ifstream in(file);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

}  // namespace

TEST_CASE("unanswered probes, then the client's RST: timeout, blackhole, idle, interval and count", "[to-case]") {
  const Analysis analysis = analysis_of(blackhole(Family::ipv4, "198.18.0.1", "198.18.0.2"), "to-case-blackhole");
  const CaseFromCapture c = infer_case(analysis, 0);
  CHECK(c.client.str() == "198.18.0.1:40001");
  CHECK(c.server.str() == "198.18.0.2:8080");
  CHECK(c.family == Family::ipv4);
  CHECK(c.idle_s == 2);
  CHECK(c.interval_s == 1);
  CHECK(c.count == 3);
  CHECK(c.outcome == ExpectedOutcome::timeout);
  CHECK(c.fault == FaultKind::blackhole);

  const std::string text = case_file_text(c, "field-capture");
  INFO(text);
  // What was inferred from what: frames and times from the capture's first segment.
  CHECK(has(text, "idle 2 s: 2004.1 ms from 198.18.0.1:40001's last received segment (frame 5 at 0.011 s)"));
  CHECK(has(text, "frame 7 at 2.015 s"));
  CHECK(has(text, "count 3: 3 probes unanswered (frames 7, 8, 9), then its RST (frame 10 at 5.016 s)"));
  CHECK(has(text, "user_timeout_ms: not written"));
  const Case loaded = checked(text);
  CHECK(loaded.name == "field-capture");
  REQUIRE(loaded.connections.size() == 1);
  CHECK(loaded.connections[0].family == Family::ipv4);
  CHECK(loaded.connections[0].keepalive.idle_s == 2);
  CHECK(loaded.connections[0].keepalive.interval_s == 1);
  CHECK(loaded.connections[0].keepalive.count == 3);
  REQUIRE(loaded.faults.size() == 1);
  CHECK(loaded.faults[0].kind == FaultKind::blackhole);
  CHECK(loaded.expect.outcome == ExpectedOutcome::timeout);
}

TEST_CASE("an IPv6 flow gives an IPv6 case", "[to-case]") {
  const auto c =
      infer_case(analysis_of(blackhole(Family::ipv6, "fd6b:6168:7265::1", "fd6b:6168:7265::2"), "to-case-v6"), 0);
  CHECK(c.family == Family::ipv6);
  CHECK(c.client.str() == "[fd6b:6168:7265::1]:40001");
  CHECK(checked(case_file_text(c, "v6")).connections.at(0).family == Family::ipv6);
}

TEST_CASE("a single unanswered probe: the interval is the gap from the probe to the RST", "[to-case]") {
  Conversation c = kah::test::opened();
  c.client_probe(6 + 30012, 0);
  c.client_rst(6 + 30012 + 5016);
  const auto inferred = infer_case(analyze(c.packets()), 0);
  CHECK(inferred.idle_s == 30);
  CHECK(inferred.interval_s == 5);
  CHECK(inferred.count == 1);
  CHECK(has(inferred.keepalive_evidence.at(1), "from its only probe"));
}

TEST_CASE("the peer's RST answering a probe: reset, peer-reboot; interval and count are not in the capture",
          "[to-case]") {
  Conversation c = kah::test::opened();
  c.client_probe(2025, 0);
  c.server_rst(2025.3, 777001);
  const auto inferred = infer_case(analyze(c.packets()), 0);
  CHECK(inferred.outcome == ExpectedOutcome::reset);
  CHECK(inferred.fault == FaultKind::peer_reboot);
  CHECK(inferred.idle_s == 2);
  CHECK_FALSE(inferred.interval_s);
  CHECK_FALSE(inferred.count);
  INFO(inferred.outcome_evidence);
  CHECK(has(inferred.outcome_evidence, "answered probe 1 (frame 6 at 2.025 s) with an RST (frame 7 at 2.025 s)"));
  const Case loaded = checked(case_file_text(inferred, "reboot"));
  CHECK(loaded.faults.at(0).kind == FaultKind::peer_reboot);
  CHECK_FALSE(loaded.connections.at(0).keepalive.count);
}

TEST_CASE("the peer's FIN while its kernel answers probes: eof, the server closes after the idle seen", "[to-case]") {
  Conversation c(Family::ipv4, "198.18.0.1", "198.18.0.2");
  c.handshake(0);
  c.client_data(5, 10);
  c.server_data(6, 10);
  c.client_ack(6.1);
  c.client_probe(6 + 1004, 0);
  c.server_ack(6 + 1004.2);
  c.client_probe(6 + 2008.4, 0);
  c.server_ack(6 + 2008.6);
  c.server_fin(6 + 3001);
  const auto inferred = infer_case(analyze(c.packets()), 0);
  CHECK(inferred.outcome == ExpectedOutcome::eof);
  CHECK(inferred.fault == FaultKind::none);
  CHECK(inferred.idle_s == 1);
  REQUIRE(inferred.idle_close_s);
  CHECK(*inferred.idle_close_s == Approx(3.0));
  const Case loaded = checked(case_file_text(inferred, "closed"));
  CHECK(loaded.server.idle_close_s == Approx(3.0));
  CHECK(loaded.expect.outcome == ExpectedOutcome::eof);
}

TEST_CASE("answered probes until the capture ends: alive, watched as long as the capture", "[to-case]") {
  Conversation c = kah::test::opened();
  c.client_probe(6 + 60010, 0);
  c.server_ack(6 + 60010.3);
  c.client_probe(6 + 120020.6, 0);
  c.server_ack(6 + 120020.9);
  const auto inferred = infer_case(analyze(c.packets()), 0);
  CHECK(inferred.outcome == ExpectedOutcome::alive);
  CHECK(inferred.idle_s == 60);
  CHECK(inferred.horizon_s == Approx(121));
  CHECK(checked(case_file_text(inferred, "alive")).horizon_s == Approx(121));
}

TEST_CASE("what a capture cannot say is refused, saying what is missing", "[to-case]") {
  SECTION("no probes") {
    Conversation c(Family::ipv4, "198.18.0.1", "198.18.0.2");
    c.handshake(0);
    c.client_data(5, 10);
    CHECK(has(refusal(c), "no keepalive probes in the capture"));
  }
  SECTION("the capture ends while the probes go unanswered") {
    Conversation c = kah::test::opened();
    c.client_probe(2006, 0);
    c.client_probe(3006, 0);
    CHECK(has(refusal(c), "the capture ends while 2 probes of 198.18.0.1:40001 go unanswered (frames 6, 7)"));
  }
  SECTION("no received segment before the probes: no idle time") {
    Conversation c(Family::ipv4, "198.18.0.1", "198.18.0.2");
    c.client_ack(0);
    c.client_probe(1000, 0);
    c.client_probe(2000, 0);
    c.client_rst(3000);
    CHECK(has(refusal(c), "the idle time cannot be inferred"));
  }
  SECTION("the prober closes the connection itself") {
    Conversation c = probe_answered();
    c.client_fin(2500);
    CHECK(has(refusal(c), "198.18.0.1:40001 closed the connection itself (FIN, frame 8 at 2.500 s)"));
  }
  SECTION("an RST from the peer that answers no probe") {
    Conversation c = probe_answered();
    c.server_rst(2500, 777001);
    CHECK(has(refusal(c), "the RST from 198.18.0.2:8080 (frame 8 at 2.500 s) does not answer a keepalive probe"));
  }
}

TEST_CASE("a keepalive setting is the roundest whole second within the timer wheel's lateness", "[to-case]") {
  CHECK(setting_seconds(2004.1) == 2);
  CHECK(setting_seconds(1990.0) == 2);     // a tick short: where the kernel's idle clock started
  CHECK(setting_seconds(45200) == 45);
  CHECK(setting_seconds(76500) == 75);     // 71.4-76.5 s: 75 is the only multiple of 5
  CHECK(setting_seconds(7331000) == 7200);  // the 2 h default, fired 131 s late (HZ 250, wheel level 5)
  CHECK(setting_seconds(59900) == 55);      // never early: not 60 s; 55 s fired 4.9 s late (HZ 100, level 3)
  CHECK(setting_seconds(300) == 1);         // below a second: the kernel's least
}

TEST_CASE("the flow to write: the only one, a number, or two endpoints in either order", "[to-case]") {
  Conversation one(Family::ipv4, "198.18.0.1", "198.18.0.2");
  Conversation two(Family::ipv6, "fd6b:6168:7265::3", "fd6b:6168:7265::2");
  one.handshake(0);
  two.handshake(0.05);
  Analysis analysis = analyze(kah::test::together(one, two));
  analysis.source = "two.pcap";
  REQUIRE(analysis.flows.size() == 2);

  CHECK(choose_flow(analysis, "2") == 1);
  CHECK(choose_flow(analysis, "198.18.0.2:8080-198.18.0.1:40001") == 0);
  CHECK(choose_flow(analysis, "[fd6b:6168:7265:0:0::3]:40001-[fd6b:6168:7265::2]:8080") == 1);
  const auto refused = [&](std::string_view spec) {
    try {
      choose_flow(analysis, spec);
    } catch (const CaseInferenceError& e) {
      return std::string(e.what());
    }
    return std::string("(chosen)");
  };
  const std::string several = refused("");
  CHECK(has(several, "the capture holds 2 TCP flows: choose one with --flow"));
  CHECK(has(several, "1  198.18.0.1:40001 <-> 198.18.0.2:8080  ipv4  0 probes by nobody, capture-end"));
  CHECK(has(several, "2  [fd6b:6168:7265::3]:40001 <-> [fd6b:6168:7265::2]:8080  ipv6"));
  CHECK(has(refused("3"), "--flow 3: the capture has flows 1 to 2"));
  CHECK(has(refused("198.18.0.9:1-198.18.0.2:8080"), "no such flow in the capture"));
  CHECK(has(refused("198.18.0.1:40001"), "expected a flow number or ADDR:PORT-ADDR:PORT"));
  CHECK(choose_flow(analyze(one.packets()), "") == 0);
}

TEST_CASE("a capture from a harness run: peer-power-off's client, IPv4", "[to-case]") {
  // `kaharness run cases/peer-power-off.toml --pcap DIR --pcap-all`, DIR/peer-power-off/client-v4.client.pcap.
  const auto file = std::filesystem::path(KAH_SOURCE_DIR) / "tests/data/to-case/peer-power-off.client-v4.client.pcap";
  const auto inferred = infer_case(analyze(read_pcap(file)), 0);
  CHECK(inferred.family == Family::ipv4);
  CHECK(inferred.idle_s == 2);
  CHECK(inferred.interval_s == 1);
  CHECK(inferred.count == 3);
  CHECK(inferred.outcome == ExpectedOutcome::timeout);
  CHECK(inferred.fault == FaultKind::blackhole);
  checked(case_file_text(inferred, "power-off-again"));
}

TEST_CASE("analyze --to-case: several flows need --flow (exit 2), the chosen one is written and loads", "[to-case][cli]") {
  const auto dir = std::filesystem::temp_directory_path() / fmt::format("kah-to-case-{}", ::getpid());
  std::filesystem::create_directories(dir);
  Conversation one = blackhole(Family::ipv4, "198.18.0.1", "198.18.0.2");
  Conversation two = blackhole(Family::ipv4, "198.18.0.3", "198.18.0.2");
  const auto pcap = dir / "two-flows.pcap";
  kah::test::write_pcap(kah::test::together(one, two), LinkType::ethernet, pcap);
  const auto out = dir / "Field Capture.toml";

  CHECK(kah::test::cli({"analyze", pcap.string(), "--to-case", out.string()}) == 2);
  CHECK_FALSE(std::filesystem::exists(out));
  CHECK(kah::test::cli({"analyze", pcap.string(), "--flow", "2"}) == 2);  // --flow needs --to-case
  CHECK(kah::test::cli({"analyze", pcap.string(), "--to-case", out.string(), "--flow", "9"}) == 2);
  CHECK(kah::test::cli({"analyze", pcap.string(), "--to-case", out.string(), "--flow", "198.18.0.3:40001-198.18.0.2:8080"}) == 0);
  const Case loaded = load_case(out);
  CHECK(loaded.name == "field-capture");
  CHECK(loaded.expect.outcome == ExpectedOutcome::timeout);
  CHECK(has(read_text(out), "flow 2: 198.18.0.3:40001 <-> 198.18.0.2:8080 (ipv4)"));
  std::filesystem::remove_all(dir);
}
