// Capture stamps (CLOCK_REALTIME) placed across steps of the realtime clock, from the
// step a fresh clone's CI run measured: +17.5 ms mid-case, after which one offset
// put a FIN 4.9 ms after the EOF it caused.
#include <cstdint>

#include <catch2/catch.hpp>

#include "harness/clock/realtime_steps.h"

namespace {

using kah::ClockOffset;
using kah::StepLog;

constexpr std::int64_t kMs = 1'000'000;
// REALTIME - MONOTONIC before the step: a realistic epoch offset.
constexpr std::int64_t kOffset = 1'796'000'000'000 * kMs;
constexpr std::int64_t kStep = 17'500'009;  // as LiveCapture measured it (clock_step_ns)

ClockOffset offset(std::int64_t ns) { return {ns, 20}; }

std::int64_t at(double ms) { return static_cast<std::int64_t>(ms * 1e6); }

}  // namespace

TEST_CASE("realtime steps: without a step a stamp is the kernel's, to the nanosecond") {
  StepLog log(offset(kOffset));
  CHECK_FALSE(log.observe(at(100), at(100.001), offset(kOffset + 15)));  // within the readings' error
  CHECK(log.spans().size() == 1);
  const auto placed = log.place(at(987.7) + kOffset, at(1000));
  CHECK(placed.monotonic_ns == at(987.7));
  CHECK_FALSE(placed.ambiguous);
  CHECK(log.steps().empty());
}

TEST_CASE("realtime steps: the measured +17.5 ms step puts the FIN back before the EOF it caused") {
  // The connection's t = 0 is the reply's receive stamp; readings every 10 ms (the
  // watcher's period, or a capture drain); the step came between 980 and 985 ms.
  StepLog log(offset(kOffset));
  CHECK_FALSE(log.observe(at(980), at(980.002), offset(kOffset)));
  CHECK(log.observe(at(985), at(985.002), offset(kOffset + kStep)));
  REQUIRE(log.steps().size() == 1);
  CHECK(log.steps().front().by_ns == kStep);
  CHECK(log.steps().front().describe() == "+17.500 ms between CLOCK_MONOTONIC 980.000 and 985.002 ms");

  const std::int64_t reply_stamp = at(0) + kOffset;
  // The server's FIN, stamped at 987.7 ms, after the step; the EOF read at 1000.3 ms.
  // Counted from the reply's stamp with one offset, as before, the FIN came at
  // 1005.2 ms: after the EOF it caused.
  const std::int64_t fin_stamp = at(987.7) + kOffset + kStep;
  CHECK(fin_stamp - reply_stamp == at(1005.2) + 9);

  const auto reply = log.place(reply_stamp, at(0.1));
  const auto fin = log.place(fin_stamp, at(1000.3));
  CHECK_FALSE(reply.ambiguous);
  CHECK_FALSE(fin.ambiguous);
  CHECK(reply.monotonic_ns == at(0));
  CHECK(fin.monotonic_ns == at(987.7));
  CHECK(fin.monotonic_ns - reply.monotonic_ns < at(1000.3));

  // Inside the bracket too: a forward step longer than its bracket leaves no stamp
  // two ways to read.
  const auto before = log.place(at(983) + kOffset, at(990));
  const auto after = log.place(at(983) + kOffset + kStep, at(990));
  CHECK_FALSE(before.ambiguous);
  CHECK_FALSE(after.ambiguous);
  CHECK(before.monotonic_ns == at(983));
  CHECK(after.monotonic_ns == at(983));
}

TEST_CASE("realtime steps: a stamp that could lie on either side of a step is marked, not guessed") {
  SECTION("a backward step: the same realtime recurs") {
    StepLog log(offset(kOffset));
    log.observe(at(1000), at(1000.002), offset(kOffset));
    REQUIRE(log.observe(at(1002), at(1002.002), offset(kOffset - 5 * kMs)));
    // 1001 ms before the step and 1006 ms after it carry the same stamp.
    CHECK(log.place(at(1001) + kOffset, at(1010)).ambiguous);
    // Long before the step, or long after it, only one reading fits.
    const auto early = log.place(at(900) + kOffset, at(1010));
    CHECK_FALSE(early.ambiguous);
    CHECK(early.monotonic_ns == at(900));
    const auto late = log.place(at(1009) + kOffset - 5 * kMs, at(1010));
    CHECK_FALSE(late.ambiguous);
    CHECK(late.monotonic_ns == at(1009));
  }
  SECTION("a forward step shorter than the bracket it happened in") {
    StepLog log(offset(kOffset));
    log.observe(at(1000), at(1000.002), offset(kOffset));
    REQUIRE(log.observe(at(1200), at(1200.002), offset(kOffset + 2 * kMs)));
    CHECK(log.place(at(1100) + kOffset, at(1300)).ambiguous);
    CHECK_FALSE(log.place(at(1201) + kOffset + 2 * kMs, at(1300)).ambiguous);  // after the bracket: one reading
  }
}

// soak.sh idle-34: the guest agent stepped the realtime clock by +0.5 ms before the
// watcher's first check; the step's bracket began at -infinity, so every stamp taken
// before it could have been read with either offset, and six connections were "not
// judged". The log's first reading has an instant: the step came after it.
TEST_CASE("realtime steps: a step before the first check happened after the first reading") {
  constexpr std::int64_t kHalfMs = kMs / 2;
  StepLog log(offset(kOffset), at(50));
  REQUIRE(log.observe(at(1400), at(1400.002), offset(kOffset + kHalfMs)));
  REQUIRE(log.steps().size() == 1);
  CHECK(log.steps().front().after_ns == at(50));
  CHECK(log.steps().front().describe() == "+0.500 ms between CLOCK_MONOTONIC 50.000 and 1400.002 ms");
  // A probe stamped at 1018.2 ms: either offset fits inside a 1350 ms bracket.
  CHECK(log.place(at(1018.2) + kOffset, at(1500)).ambiguous);
  // One from before the first reading's instant can only be the first offset's.
  const auto before = log.place(at(40) + kOffset, at(1500));
  CHECK_FALSE(before.ambiguous);
  CHECK(before.monotonic_ns == at(40));

  SECTION("without the first reading's instant, even that one was ambiguous") {
    StepLog unknown(offset(kOffset));
    REQUIRE(unknown.observe(at(1400), at(1400.002), offset(kOffset + kHalfMs)));
    CHECK(unknown.place(at(40) + kOffset, at(1500)).ambiguous);
  }
}
