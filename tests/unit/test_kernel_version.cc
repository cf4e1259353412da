// Kernel-version behaviours in the timing model: the table, version parsing, and the
// golden connect() schedules of 6.1 (exponential SYN backoff) and 6.18 (4 linear
// timeouts first), which `kaharness predict --kernel` prints.
#include <catch2/catch.hpp>

#include <algorithm>
#include <string>

#include "harness/model/kernel_version.h"
#include "harness/model/timing.h"

namespace {

using namespace kah::model;

Input connect_on(const char* version) {
  Input in;
  in.kernel.hz = 250;
  in.kernel.version = parse_kernel_version(version);
  in.traffic = Traffic::connecting;
  return in;
}

bool says(const Prediction& p, const std::string& text) {
  return std::any_of(p.steps.begin(), p.steps.end(), [&](const std::string& s) { return s.find(text) != std::string::npos; });
}

}  // namespace

TEST_CASE("kernel versions: uname releases and X.Y parse, anything else does not", "[model][kernel]") {
  CHECK(parse_kernel_version("6.1") == KernelVersion{6, 1});
  CHECK(parse_kernel_version("6.18.44") == KernelVersion{6, 18});
  CHECK(parse_kernel_version("6.1.0-28-cloud-amd64") == KernelVersion{6, 1});
  CHECK(parse_kernel_version("4.19") < parse_kernel_version("4.20"));
  CHECK(parse_kernel_version("5.4") < parse_kernel_version("5.11"));  // numeric, not text
  CHECK_FALSE(parse_kernel_version("6"));
  CHECK_FALSE(parse_kernel_version("six.one"));
  CHECK_FALSE(parse_kernel_version("6.1x"));
  CHECK_FALSE(parse_kernel_version(""));
}

TEST_CASE("kernel versions: each behaviour from its version, every one on an unknown kernel", "[model][kernel]") {
  CHECK_FALSE(has(KernelVersion{6, 4}, Behaviour::syn_linear_timeouts));
  CHECK(has(KernelVersion{6, 5}, Behaviour::syn_linear_timeouts));
  CHECK_FALSE(has(KernelVersion{6, 10}, Behaviour::rto_min_us_sysctl));
  CHECK(has(KernelVersion{6, 11}, Behaviour::rto_min_us_sysctl));
  CHECK_FALSE(has(KernelVersion{6, 14}, Behaviour::rto_max_ms_sysctl));
  CHECK(has(KernelVersion{6, 15}, Behaviour::rto_max_ms_sysctl));
  CHECK_FALSE(has(KernelVersion{4, 18}, Behaviour::user_timeout_clamps_rto));
  CHECK(has(KernelVersion{4, 19}, Behaviour::user_timeout_clamps_rto));
  CHECK_FALSE(has(KernelVersion{5, 3}, Behaviour::user_timeout_in_syn_sent));
  CHECK(has(KernelVersion{5, 11}, Behaviour::user_timeout_ends_zero_window));
  CHECK(has(std::nullopt, Behaviour::rto_max_ms_sysctl));
  // Oldest first, every behaviour once.
  const auto& rows = kernel_behaviours();
  CHECK(std::is_sorted(rows.begin(), rows.end(), [](const auto& a, const auto& b) { return a.since < b.since; }));
  CHECK(rows.size() == 6);
}

TEST_CASE("golden: connect() to a silent host on 6.1 and on 6.18", "[model][kernel]") {
  SECTION("6.1: SYNs at 1, 3, 7, 15, 31, 63 s, ETIMEDOUT near 127 s (no linear timeouts before 6.5)") {
    const auto p = predict(connect_on("6.1"));  // the input keeps the 6.18 default of 4: the version drops it
    REQUIRE(p.retransmissions.size() == 6);
    const double nominal[] = {1000, 3000, 7000, 15000, 31000, 63000};
    for (std::size_t k = 0; k < 6; ++k) CHECK(p.retransmissions[k].nominal_ms == Approx(nominal[k]));
    CHECK(p.nominal_ms == Approx(127000));
    CHECK(p.window.earliest_ms >= 127000 - 1);
    CHECK(p.window.latest_ms <= 127000 + 4 * 1232 + 6);
    CHECK(says(p, "kernel 6.1: not yet: net.ipv4.tcp_syn_linear_timeouts"));
    CHECK(says(p, "ccce324dabfe"));
  }
  SECTION("6.18: SYNs at 1, 2, 3, 4, 5, 7, 11, 19, 35, 67 s, ETIMEDOUT at 131 s nominal (134.75 s measured)") {
    const auto p = predict(connect_on("6.18"));
    REQUIRE(p.retransmissions.size() == 10);
    const double nominal[] = {1000, 2000, 3000, 4000, 5000, 7000, 11000, 19000, 35000, 67000};
    for (std::size_t k = 0; k < 10; ++k) CHECK(p.retransmissions[k].nominal_ms == Approx(nominal[k]));
    CHECK(p.nominal_ms == Approx(131000));
    CHECK(p.window.contains(134750.9));
    CHECK(says(p, "kernel 6.18: net.ipv4.tcp_syn_linear_timeouts"));
  }
}

TEST_CASE("kernel versions: what an older kernel cannot do is refused, not guessed", "[model][kernel]") {
  Input in;
  in.kernel.hz = 250;
  in.traffic = Traffic::data_in_flight;
  in.retransmission.rto_max_ms = 10000;
  in.kernel.version = KernelVersion{6, 14};
  CHECK_THROWS_WITH(predict(in), Catch::Contains("no net.ipv4.tcp_rto_max_ms (from 6.15)"));
  in.kernel.version = KernelVersion{6, 15};
  CHECK_NOTHROW(predict(in));
  in.retransmission.rto_min_ms = 50;
  in.kernel.version = KernelVersion{6, 10};
  in.retransmission.rto_max_ms = 120000;
  CHECK_THROWS_WITH(predict(in), Catch::Contains("no net.ipv4.tcp_rto_min_us (from 6.11)"));

  auto syn = connect_on("5.3");
  syn.keepalive.user_timeout_ms = 5000;
  CHECK_THROWS_WITH(predict(syn), Catch::Contains("before 5.4"));
  // 5.4 and later: the RTO after the SYN sent at 3 s is clamped to the 2 s left, so
  // connect() ends near 5 s instead of at the 7 s firing (no linear timeouts before 6.5).
  syn.kernel.version = KernelVersion{5, 4};
  const auto p = predict(syn);
  // Receive delay, jiffies lag, and a tick: the callback that clamps may read the TCP
  // clock after the next tick while jiffies has not reached it (Kernel::late_ticks).
  CHECK(p.window.earliest_ms >= 5000 - 1 - 1.2 - 4);
  CHECK(p.window.latest_ms < 6000);
}

TEST_CASE("kernel versions: before 4.19 the user timeout does not clamp the RTO", "[model][kernel]") {
  // Data in flight, TCP_USER_TIMEOUT 3 s: 4.19 clamps the RTO to what is left, so the
  // abort is near 3 s after the first retransmission; 4.14 waits for the next doubled
  // RTO firing past it.
  Input in;
  in.kernel.hz = 250;
  in.traffic = Traffic::data_in_flight;
  in.keepalive.user_timeout_ms = 3000;
  in.kernel.version = KernelVersion{4, 19};
  const auto clamped = predict(in);
  in.kernel.version = KernelVersion{4, 14};
  const auto unclamped = predict(in);
  CHECK(unclamped.window.earliest_ms > clamped.window.latest_ms);
  CHECK(says(clamped, "b701a99e431d"));
}
