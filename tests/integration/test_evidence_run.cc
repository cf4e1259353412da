// Evidence from real runs: the classifier on captures the harness made, and a
// probe whose timing is broken is reported probe by probe.
#include <catch2/catch.hpp>

#include <filesystem>

#include "harness/case/case.h"
#include "harness/evidence/pcap_file.h"
#include "harness/judge/judge.h"
#include "harness/clock/jiffies.h"
#include "harness/run/runner.h"
#include "passed.h"

using namespace kah;

namespace {

const char* kBlackhole = R"(
name = "evidence-blackhole"
description = "three unanswered probes, then the client's RST"
[[connection]]
name = "c1"
family = "both"
keepalive = { idle = 2, interval = 1, count = 3 }
[[fault]]
kind = "blackhole"
[expect]
outcome = "timeout"
)";

bool has(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

}  // namespace

TEST_CASE("captures of a real run are classified, written, and a shifted probe window fails", "[evidence]") {
  const auto dir = std::filesystem::temp_directory_path() / ("kah-evidence-" + std::to_string(getpid()));
  RunOptions options;
  options.kernel.hz = detect_hz().hz;
  options.pcap_dir = dir;
  options.pcap_all = true;
  options.kernel_trace = false;  // the capture's own timing: test_kernel_trace_run.cc has the trace's
  const auto run = run_cases({parse_case(kBlackhole, "evidence-blackhole.toml")}, options);
  REQUIRE(run.cases.size() == 1);
  REQUIRE(run.cases[0].connections.size() == 2);

  for (const auto& r : run.cases[0].connections) {
    INFO(r.name << ": " << r.message);
    CHECK(kah::test::passed_or_held(r.verdict, r.message));
    REQUIRE(r.evidence.flow);
    const auto& flow = *r.evidence.flow;
    CHECK(flow.count == 3);
    CHECK(flow.end == evidence::FlowEnd::reset_by_prober);
    REQUIRE(flow.idle_ms);
    CHECK(*flow.idle_ms >= 2000.0);
    CHECK(*flow.idle_ms <= 2000.0 + 32.0 + 5.0);  // idle 2 s: wheel level 1 at HZ=250 is 8 jiffies = 32 ms
    REQUIRE(flow.interval_ms);
    CHECK(*flow.interval_ms == Approx(1000.0).margin(40.0));
    CHECK(r.observed.timed_by == "capture");
    REQUIRE(r.evidence.probe_checks.size() == 3);

    // The written pcap holds the same flow.
    REQUIRE_FALSE(r.evidence.pcap_client.empty());
    const auto from_file = evidence::analyze(evidence::read_pcap(dir / r.evidence.pcap_client));
    REQUIRE(from_file.flows.size() == 1);
    CHECK(from_file.flows[0].count == 3);

    // Break probe 2's timing: a window 50 ms before where the kernel sent it.
    auto broken = r;
    auto& w = broken.prediction.probes.at(1).window;
    w.earliest_ms -= 50;
    w.latest_ms = w.earliest_ms + 1;
    broken.evidence.probe_checks =
        evidence::check_probes(flow, broken.prediction, broken.evidence.origin_realtime_ms);
    judge_connection(broken);
    INFO(broken.message);
    CHECK(broken.verdict == Verdict::fail);
    CHECK(has(broken.message, "probe 2 late"));
  }
  std::filesystem::remove_all(dir);
}

// An application's idle close: the EOF is timed by the server's FIN as the client's
// interface got it, not by the event loop (which read it 30-37 ms after the close()
// under ctest -j2, the receive softirq left to ksoftirqd), and its window counts from
// the harness's measured close().
TEST_CASE("an application close is timed by the peer's FIN in the capture", "[evidence]") {
  RunOptions options;
  options.kernel.hz = detect_hz().hz;
  options.kernel_trace = false;
  const auto run = run_cases({parse_case(R"(name = "evidence-idle-close"
[server]
idle_close_s = 1
[[connection]]
name = "c"
family = "both"
keepalive = { idle = 5, interval = 1, count = 3 }
[expect]
outcome = "eof"
)",
                                         "evidence-idle-close.toml")},
                             options);
  REQUIRE(run.cases.size() == 1);
  REQUIRE(run.cases[0].connections.size() == 2);
  for (const auto& r : run.cases[0].connections) {
    INFO(r.name << ": " << r.message);
    CHECK(kah::test::passed_or_held(r.verdict, r.message));
    CHECK(r.observed.timed_by == "capture");
    REQUIRE(r.observed.woke_at_ms);
    CHECK(*r.observed.woke_at_ms >= r.observed.at_ms);  // the event loop read it after it arrived
    CHECK(r.observed.at_ms >= r.expected.window.earliest_ms);  // not before the measured close()
    CHECK_THAT(r.prediction.steps.front(), Catch::Contains("(measured): the window counts from its close"));
  }
}
