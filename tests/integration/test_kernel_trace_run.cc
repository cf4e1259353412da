// Kernel-timed probes and ends on a real run: with the tracepoints on, every probe
// and the end of a small keepalive case are timed by the kernel's trace, and the
// bucket instants agree with the capture (a callback never runs before its tick, and
// the probe leaves from inside it).
#include <catch2/catch.hpp>

#include <unistd.h>

#include "harness/case/case.h"
#include "harness/clock/jiffies.h"
#include "harness/judge/judge.h"
#include "harness/run/runner.h"
#include "passed.h"

using namespace kah;

namespace {

const char* kBlackhole = R"(
name = "kernel-trace-blackhole"
description = "three unanswered probes, then the client gives up"
[[connection]]
name = "c1"
family = "both"
keepalive = { idle = 1, interval = 1, count = 2 }
[[fault]]
kind = "blackhole"
[expect]
outcome = "timeout"
)";

// Data in flight to a silent peer: the end has no RST; its instant comes from the
// retransmission timer's bucket (or the state change).
const char* kSending = R"(
name = "kernel-trace-sending"
[[connection]]
name = "c1"
family = "ipv4"
keepalive = { idle = 1, interval = 1, count = 1 }
user_timeout_ms = 600
traffic = "sending"
[[fault]]
kind = "blackhole"
[expect]
outcome = "timeout"
)";

// perf_event_open on tracepoints and /proc/timer_list need root.
bool root_or_warn() {
  if (geteuid() == 0) return true;
  WARN("needs root (perf_event_open on tracepoints, /proc/timer_list): skipped");
  return false;
}

// The blackhole case, with the trace on or off.
RunResult run_blackhole(bool kernel_trace, const char* also = nullptr) {
  RunOptions options;
  options.kernel.hz = detect_hz().hz;
  options.kernel_trace = kernel_trace;
  std::vector<Case> cases{parse_case(kBlackhole, "kernel-trace-blackhole.toml")};
  if (also != nullptr) cases.push_back(parse_case(also, "kernel-trace-sending.toml"));
  return run_cases(cases, options);
}

}  // namespace

// Hidden ([.]: not registered with CTest) while the feature is experimental: repeated
// runs of these two cases had anywhere from none to all of their probes and ends
// kernel-timed. The cause is the kernel of this project's machine (a 6.18 guest): it
// hands perf no tracepoint from CPU 1's timer softirq. Pinned with `taskset -c 0`
// this test's blackhole case had 4 of 4 probes and 2 of 2 ends kernel-timed in 4 of 4
// runs; pinned to CPU 1, none in 4 of 4 (kernel_trace.timer_callbacks_per_cpu shows
// it). Run it by hand:
//   taskset -c 0 build/tests/kah_integration_tests "[kernel-trace]"
TEST_CASE("with the kernel trace, probes and ends are timed by their timers' buckets", "[kernel-trace][.]") {
  if (!root_or_warn()) return;
  const auto run = run_blackhole(true, kSending);
  INFO("kernel trace: " << run.kernel_trace.note);
  REQUIRE(run.kernel_trace.on);
  if (run.calibration != "timer_list") {
    WARN("jiffies not known (" << run.calibration << "): no bucket instants, skipped");
    return;
  }
  CHECK(run.kernel_trace.lost == 0);
  CHECK(run.kernel_trace.ambiguous == 0);
  CHECK(run.kernel_trace.keepalive_timer_offset.has_value());
  REQUIRE(run.cases.size() == 2);

  REQUIRE(run.cases[0].connections.size() == 2);
  for (const auto& r : run.cases[0].connections) {
    INFO(r.name << ": " << r.message);
    CHECK(kah::test::passed_or_held(r.verdict, r.message));
    REQUIRE(r.evidence.probe_checks.size() == 2);
    for (const auto& c : r.evidence.probe_checks) {
      INFO(c.message);
      CHECK(c.timed_by == "kernel-trace");
      REQUIRE(c.bucket_ms);
      REQUIRE(c.seen_ms);
      REQUIRE(c.softirq_late_ms);
      // Never before its tick; the probe leaves from inside the callback.
      CHECK(*c.softirq_late_ms >= 0);
      CHECK(*c.bucket_ms <= *c.seen_ms);
      CHECK(*c.seen_ms - *c.bucket_ms == Approx(*c.softirq_late_ms).margin(1.0));
    }
    CHECK(r.observed.timed_by == "kernel-trace");
    REQUIRE(r.observed.kernel_end);
    CHECK(r.observed.kernel_end->event == "keepalive-timer");
    REQUIRE(r.observed.captured_at_ms);  // the client's RST, for comparison
    CHECK(r.observed.at_ms <= *r.observed.captured_at_ms);
    CHECK(*r.observed.kernel_end->softirq_late_ms >= 0);
  }

  REQUIRE(run.cases[1].connections.size() == 1);
  const auto& sending = run.cases[1].connections[0];
  INFO(sending.name << ": " << sending.message);
  CHECK(kah::test::passed_or_held(sending.verdict, sending.message));
  CHECK(sending.observed.timed_by == "kernel-trace");
  REQUIRE(sending.observed.kernel_end);
  REQUIRE(sending.observed.woke_at_ms);
  CHECK(sending.observed.at_ms <= *sending.observed.woke_at_ms);
}

TEST_CASE("with the kernel trace off (the default) the run says so", "[kernel-trace]") {
  if (!root_or_warn()) return;
  const auto run = run_blackhole(false);
  CHECK_FALSE(run.kernel_trace.on);
  CHECK(run.kernel_trace.note == "off (experimental: --kernel-trace turns it on)");
  for (const auto& r : run.cases.at(0).connections) {
    CHECK(r.observed.timed_by != "kernel-trace");
    for (const auto& c : r.evidence.probe_checks) CHECK(c.timed_by == "capture");
  }
}
