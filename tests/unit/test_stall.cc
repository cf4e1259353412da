// Machine stalls: how long a CPU ran nothing within an interval, and which failures
// a stall may account for (only lateness).
#include <unistd.h>

#include <optional>
#include <utility>
#include <vector>

#include <catch2/catch.hpp>

#include "harness/clock/stall_watch.h"
#include "harness/judge/judge.h"
#include "harness/run/stall_doubt.h"

namespace {

using namespace kah;

// A connection that expected a timeout within `window`, saw one at `at_ms` and was
// failed; its probes checked.
ConnectionResult failed_timeout(model::Window window, double at_ms, std::vector<evidence::ProbeCheck> probes) {
  ConnectionResult r;
  r.verdict = Verdict::fail;
  r.expected.outcome = ExpectedOutcome::timeout;
  r.expected.model_outcome = model::Outcome::timeout;
  r.expected.window = window;
  r.observed.outcome = ObservedOutcome::timeout;
  r.observed.at_ms = at_ms;
  r.evidence.probes_checked = true;
  r.evidence.probe_checks = std::move(probes);
  return r;
}

// Probe index + 1, expected within [lo, hi], seen at `seen` (none: missing).
evidence::ProbeCheck probe(int index, double lo, double hi, std::optional<double> seen,
                           evidence::ProbeVerdict v = evidence::ProbeVerdict::ok) {
  evidence::ProbeCheck c;
  c.index = index;
  c.expected = model::Window{lo, hi};
  c.seen_ms = seen;
  c.verdict = v;
  return c;
}

// nginx-vanished-client nginx-1, scripts/soak.sh loaded run (both cores busy): probes 1
// and 2 inside their windows, probe 3 at 4164.9 ms against [4074.4, 4084.5], and the
// timeout, re-armed from that late callback, at 5194.5 ms against [5098.4, 5108.5].
ConnectionResult late_nginx() {
  return failed_timeout({5098.4, 5108.5}, 5194.5,
                        {probe(0, 2026.4, 2036.5, 2030.5), probe(1, 3050.4, 3060.5, 3050.5),
                         probe(2, 4074.4, 4084.5, 4164.9, evidence::ProbeVerdict::late)});
}

// haproxy-dead-client haproxy-2 (idle 2 s, interval 1 s, TCP_USER_TIMEOUT 3500 ms), the
// first soak's idle-25 run: probe 1 in its window, then both CPUs in a 1.24 s gap; the
// timer due to send probe 2 ([3027.3, 3037.4] ms) fired at 3901.6 ms, found the user
// timeout passed and aborted: ETIMEDOUT 149.7 ms before [4051.3, 4061.4].
ConnectionResult user_timeout_abort_from_late_firing() {
  auto r = failed_timeout({4051.3, 4061.4}, 3901.6,
                          {probe(0, 2003.3, 2013.4, 2003.4),
                           probe(1, 3027.3, 3037.4, std::nullopt, evidence::ProbeVerdict::missing)});
  r.model_input.traffic = model::Traffic::idle;
  r.model_input.keepalive.user_timeout_ms = 3500;
  return r;
}

}  // namespace

TEST_CASE("lateness_only: how late a connection that was only late was", "[stall]") {
  auto r = late_nginx();
  REQUIRE(lateness_only(r));
  CHECK(*lateness_only(r) == Approx(86.0));  // the end, 5194.5 - 5108.5

  SECTION("an early probe is not lateness") {
    r.evidence.probe_checks[0].verdict = evidence::ProbeVerdict::early;
    CHECK_FALSE(lateness_only(r));
  }
  SECTION("a missing probe is not lateness") {
    r.evidence.probe_checks[2].verdict = evidence::ProbeVerdict::missing;
    r.evidence.probe_checks[2].seen_ms.reset();
    CHECK_FALSE(lateness_only(r));
  }
  SECTION("another outcome is not lateness") {
    r.observed.outcome = ObservedOutcome::reset;
    CHECK_FALSE(lateness_only(r));
  }
  SECTION("an early end is not lateness") {
    r.observed.at_ms = 5090;
    CHECK_FALSE(lateness_only(r));
  }
  SECTION("a case the model contradicts is not lateness") {
    r.expected.model_outcome = model::Outcome::reset;
    CHECK_FALSE(lateness_only(r));
  }
  SECTION("a pass has none") {
    r.verdict = Verdict::pass;
    CHECK_FALSE(lateness_only(r));
  }
}

TEST_CASE("lateness_only: a firing so late that the user timeout aborts it is lateness, however early the end",
          "[stall]") {
  auto r = user_timeout_abort_from_late_firing();
  REQUIRE(lateness_only(r));
  CHECK(*lateness_only(r) == Approx(864.2));  // 3901.6 - 3037.4: probe 2's firing
  REQUIRE(late_firing_abort(r) == &r.evidence.probe_checks[1]);
  SECTION("without a user timeout the late firing would have probed: an early end is not lateness") {
    r.model_input.keepalive.user_timeout_ms = 0;
    CHECK_FALSE(lateness_only(r));
  }
  SECTION("an end before the user timeout has passed is not lateness") {
    r.observed.at_ms = 3400;
    CHECK_FALSE(lateness_only(r));
  }
  SECTION("an end before the missing probe was due is not lateness") {
    r.observed.at_ms = 3030;
    r.model_input.keepalive.user_timeout_ms = 3000;
    CHECK_FALSE(lateness_only(r));
  }
  SECTION("with no probe out the user timeout cannot abort: a missing probe 1 is not lateness") {
    r.evidence.probe_checks.erase(r.evidence.probe_checks.begin());
    r.evidence.probe_checks[0].index = 0;
    CHECK_FALSE(lateness_only(r));
  }
  SECTION("a missing probe followed by a seen one is not lateness") {
    evidence::ProbeCheck p3;
    p3.index = 2;
    p3.expected = model::Window{3500, 3600};
    p3.seen_ms = 3550;
    r.evidence.probe_checks.push_back(p3);
    CHECK_FALSE(lateness_only(r));
  }
  SECTION("another outcome is not lateness") {
    r.observed.outcome = ObservedOutcome::reset;
    CHECK_FALSE(lateness_only(r));
  }
}

TEST_CASE("stalled_ms: the most one CPU lost within an interval", "[stall]") {
  // Stops: all of each did not run. (A gap that took its ticks counts for nothing: stall_doubt's test.)
  const std::vector<Stall> stalls = {
      {1, 4076.0, 4160.0, true}, {1, 100.0, 103.0, true}, {0, 4000.0, 4011.2, true}, {0, 9000, 9050, true}};
  CHECK(stalled_ms(stalls, 0, 5200) == Approx(87.0));  // CPU 1: 84 + 3
  CHECK(stalled_ms(stalls, 4100, 5200) == Approx(60.0));  // clipped
  CHECK(stalled_ms(stalls, 4000, 4050) == Approx(11.2));  // CPU 0's; CPU 1's begins after 4050
  CHECK(stalled_ms(stalls, 5000, 8000) == Approx(0.0));
  CHECK(stalled_ms({}, 0, 1e9) == Approx(0.0));
}

TEST_CASE("StallWatch on this machine: every CPU watched as root", "[stall][live]") {
  auto& watch = StallWatch::process();
  const bool all = watch.watch(250);
  if (::geteuid() != 0) {
    WARN("not root: " << watch.note());
    return;
  }
  INFO(watch.note());
  CHECK(all);
  CHECK(watch.watching());
  CHECK(watch.note().rfind("every CPU this process may use watched", 0) == 0);
}

TEST_CASE("stall_doubt: a late connection is not judged only when a long enough stall came after it was due",
          "[stall]") {
  const auto r = late_nginx();  // 86.0 ms late; probe 3 due from 4074.4 ms
  const double origin = 100000;  // CLOCK_MONOTONIC of t = 0
  SECTION("CPU 1 stopped 88 ms from probe 3's bucket: not judged, and the message names it") {
    const auto doubt = stall_doubt(r, origin, {{1, origin + 4076.0, origin + 4164.0, true}, {0, origin + 50, origin + 60, true}});
    REQUIRE(doubt);
    CHECK_THAT(*doubt, Catch::Contains("86.0 ms late") && Catch::Contains("CPU 1") && Catch::Contains("88.0 ms"));
  }
  SECTION("the same stall before probe 3 was due explains nothing") {
    CHECK_FALSE(stall_doubt(r, origin, {{1, origin + 3900.0, origin + 3988.0, true}}));
  }
  SECTION("a stall shorter than the lateness explains nothing") {
    CHECK_FALSE(stall_doubt(r, origin, {{1, origin + 4076.0, origin + 4150.0, true}}));
  }
  SECTION("two CPUs' stalls are not added up") {
    CHECK_FALSE(stall_doubt(r, origin, {{1, origin + 4076.0, origin + 4120.0, true}, {0, origin + 4120.0, origin + 4164.0, true}}));
  }
  SECTION("no stall: judged as it is") { CHECK_FALSE(stall_doubt(r, origin, {})); }
  SECTION("a gap in which the CPU took its ticks holds timers back as a stop does") {
    // Soak idle-16 and idle-41: timers due in such gaps ran at their end (stall_watch.h).
    Stall busy{1, origin + 4076.0, origin + 4164.0, false};
    busy.tick_ms = 4;
    busy.interrupts = 22;
    const auto doubt = stall_doubt(r, origin, {busy});
    REQUIRE(doubt);
    CHECK_THAT(*doubt, Catch::Contains("for 88.0 ms in all") &&
                           Catch::Contains("busy in the kernel, 22 timer interrupts in it"));
    busy.to_ms = origin + 4150.0;  // 74 ms: less than the 86 ms it was late
    CHECK_FALSE(stall_doubt(r, origin, {busy}));
  }
  SECTION("a stop after the last late event explains nothing") {
    auto early_end = r;  // only probe 3 late (80.4 ms), the end inside its window
    early_end.observed.at_ms = 5100.0;
    CHECK(lateness_only(early_end));
    CHECK_FALSE(stall_doubt(early_end, origin, {{1, origin + 4200.0, origin + 4300.0, true}}));
    CHECK(stall_doubt(early_end, origin, {{1, origin + 4080.0, origin + 4164.0, true}}));
  }
  SECTION("an early probe is judged whatever the stalls") {
    auto early = r;
    early.evidence.probe_checks[0].verdict = evidence::ProbeVerdict::early;
    CHECK_FALSE(stall_doubt(early, origin, {{1, origin, origin + 6000, true}}));
  }
}

TEST_CASE("stall_doubt: a user-timeout abort from a late firing is not judged when a CPU's timers may have waited that long",
          "[stall]") {
  const auto r = user_timeout_abort_from_late_firing();  // 864.2 ms late from probe 2's window
  const double origin = 100000;
  SECTION("CPU 0 stopped from 2900 to 3900 ms: 872.7 ms of it after probe 2 was due") {
    const auto doubt = stall_doubt(r, origin, {{0, origin + 2900.0, origin + 3900.0, true}});
    REQUIRE(doubt);
    CHECK_THAT(*doubt, Catch::Contains("the timer due to send probe 2 fired 864.2 ms late and, the user timeout "
                                       "having passed, aborted") &&
                           Catch::Contains("for 872.7 ms in all"));
  }
  SECTION("a gap with its ticks taken counts too") {
    Stall gap{0, origin + 3028.0, origin + 3901.0, false};
    gap.tick_ms = 4;
    gap.interrupts = 225;
    CHECK(stall_doubt(r, origin, {gap}));
  }
  SECTION("a stop shorter than the firing's lateness explains nothing") {
    CHECK_FALSE(stall_doubt(r, origin, {{1, origin + 3030.0, origin + 3800.0, true}}));
  }
}

// user-timeout-short client-v4 (idle 2 s, interval 1 s, TCP_USER_TIMEOUT 3500 ms), soak
// idle-41 on a1dbc67: probes 1 and 2 in their windows, the abort due in [4064.5, 4074.6]
// ms came at 4088.4 ms, the very end of a gap of CPU 1 from 4065.3 ms that took 16 timer
// interrupts in 23.1 ms. The rule of a1dbc67 counted such a gap only when it began
// before the abort was due, and failed the connection.
TEST_CASE("measured (soak idle-41): a user timeout's abort released at the end of a busy gap is not judged",
          "[stall]") {
  const auto r =
      failed_timeout({4064.5, 4074.6}, 4088.4, {probe(0, 2016.5, 2026.6, 2016.6), probe(1, 3040.5, 3050.6, 3040.6)});
  REQUIRE(lateness_only(r));
  CHECK(*lateness_only(r) == Approx(13.8));
  const double origin = 1126.9;  // t = 0, 1126.9 ms into the run
  Stall gap{1, origin + 4065.3, origin + 4088.4, false};
  gap.tick_ms = 4;
  gap.interrupts = 16;
  const auto doubt = stall_doubt(r, origin, {gap});
  REQUIRE(doubt);
  CHECK_THAT(*doubt, Catch::Contains("it came 13.8 ms late while the timers of CPU 1 may have waited for 23.1 ms"));
}

TEST_CASE("local_timer_interrupts: the LOC line of /proc/interrupts, per CPU", "[stall]") {
  const std::string text =
      "           CPU0       CPU1       \n"
      "  0:         39          0   IO-APIC   2-edge      timer\n"
      "NMI:          0          0   Non-maskable interrupts\n"
      "LOC:   16618003   17027417   Local timer interrupts\n"
      "SPU:          0          0   Spurious interrupts\n";
  CHECK(local_timer_interrupts(text, 0) == 16618003u);
  CHECK(local_timer_interrupts(text, 1) == 17027417u);
  CHECK_FALSE(local_timer_interrupts(text, 2));
  CHECK_FALSE(local_timer_interrupts("CPU0\nNMI: 0\n", 0));
}

TEST_CASE("local_timer_interrupts: the header's column, not the CPU's number, with a CPU offline", "[stall]") {
  const std::string text =
      "           CPU0       CPU1       CPU3       \n"
      "NMI:          0          0          0   Non-maskable interrupts\n"
      "LOC:        100        200        300   Local timer interrupts\n";
  CHECK(local_timer_interrupts(text, 1) == 200u);
  CHECK(local_timer_interrupts(text, 3) == 300u);
  CHECK_FALSE(local_timer_interrupts(text, 2));  // offline: no column
}

TEST_CASE("cpus_of: the CPUs a cpuset allows, in order", "[stall]") {
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(2, &set);
  CPU_SET(5, &set);
  CHECK(cpus_of(set) == std::vector<int>{2, 5});
}

TEST_CASE("Stall: the time a gap's CPU surely did not run, and how a run names it", "[stall]") {
  Stall s{0, 1000, 2240, false};  // 1240 ms, as both CPUs in one idle soak run
  CHECK(s.missed_ms() == 0);      // not counted: nothing known
  CHECK(s.describe() == "busy in the kernel, timer interrupts not counted");
  s.tick_ms = 4;
  s.interrupts = 308;
  CHECK(s.missed_ms() == 0);
  CHECK(s.describe() == "busy in the kernel, 308 timer interrupts in it");
  s.interrupts = 12;
  CHECK(s.missed_ms() == Approx(1184));
  CHECK(s.describe() == "ran in part: 12 timer interrupts in 310 ticks' time, 1184.0 ms not run");
  s.stopped = true;
  s.interrupts = 0;
  CHECK(s.missed_ms() == 1240);
  CHECK(s.describe() == "stopped: no timer interrupt");
  // ticks_in_gap: a 40 ms gap in a 48 ms interval at HZ 250, 13 interrupts: 2 outside
  // it, 1 for the wake-up, 10 in it.
  CHECK(ticks_in_gap(40, 48, 13, 250) == 10);
  CHECK(ticks_in_gap(40, 48, 1, 250) == 0);
}

TEST_CASE("gap_was_stop: a gap that took no more than one timer interrupt", "[stall]") {
  // HZ=250. A 40 ms gap in a 48 ms interval: 2 ticks outside it, one for the wake-up.
  CHECK(gap_was_stop(40, 48, 3, 250));       // none in the gap: stopped
  CHECK(gap_was_stop(40, 48, 4, 250));       // one: stopped (a tick at its edge)
  CHECK_FALSE(gap_was_stop(40, 48, 13, 250));  // ten ticks in it: ticks ran, busy in the kernel
  CHECK_FALSE(gap_was_stop(40, 48, 6, 250));
  CHECK_FALSE(gap_was_stop(5, 12, 0, 250));  // shorter than two ticks: cannot tell, not a stop
}
