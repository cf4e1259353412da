// The model's middlebox, loss and application parts: what a router does with a
// forgotten flow, whether a conntrack entry outlives an idle period, the survival
// probability under random loss and the binomial test that judges it, an ICMP
// unreachable path, and an application's idle close. Figures checked on 6.18.
#include <catch2/catch.hpp>

#include <cmath>

#include "harness/model/application.h"
#include "harness/model/middlebox.h"
#include "harness/model/survival.h"
#include "harness/model/timing.h"

namespace {

using namespace kah::model;

Keepalive keepalive(int idle, int interval, int count) { return {true, idle, interval, count, 0}; }

Input idle_connection(int idle, int interval, int count) {
  Input in;
  in.keepalive = keepalive(idle, interval, count);
  in.kernel.hz = 250;
  in.armed_at_ms = -0.3;
  return in;
}

}  // namespace

TEST_CASE("a router that forgot a flow: loose picks it up, strict drops it, NAT alone leaks it", "[model][middlebox]") {
  CHECK(after_state_loss({.nat = true, .firewall = true, .loose = true}).path == PeerBehaviour::answers);
  CHECK(after_state_loss({.nat = false, .firewall = true, .loose = true}).path == PeerBehaviour::answers);
  CHECK(after_state_loss({.nat = true, .firewall = true, .loose = false}).path == PeerBehaviour::silent);
  CHECK(after_state_loss({.nat = false, .firewall = true, .loose = false}).path == PeerBehaviour::silent);
  // Untranslated, the segment reaches the server from the client's own address: RST.
  const auto leak = after_state_loss({.nat = true, .firewall = false, .loose = false});
  CHECK(leak.path == PeerBehaviour::rebooted);
  CHECK_THAT(leak.why, Catch::Matchers::Contains("untranslated"));
  CHECK(after_state_loss({.nat = false, .firewall = false, .loose = false}).path == PeerBehaviour::answers);
}

TEST_CASE("a conntrack entry survives gaps shorter than its timeout, with a tick of doubt", "[model][middlebox]") {
  const double tick = 4;
  // Keepalive every ~1 s against a 2 s timeout: kept.
  const auto kept = conntrack_fate({{0, 1}, {1000, 1040}, {2000, 2080}, {3000, 3120}}, 2000, tick);
  CHECK(kept.fate == EntryFate::kept);
  CHECK(kept.at_crossing == -1);
  // Nothing for 3 s against 2 s: the first segment after the gap finds no entry.
  const auto lost = conntrack_fate({{0, 1}, {3000, 3001}}, 2000, tick);
  CHECK(lost.fate == EntryFate::expired);
  CHECK(lost.at_crossing == 1);
  // A later gap decides just as well.
  const auto later = conntrack_fate({{0, 1}, {1000, 1040}, {4000, 4040}}, 2000, tick);
  CHECK(later.fate == EntryFate::expired);
  CHECK(later.at_crossing == 2);
  // Within a tick of the timeout, or a window straddling it: cannot tell.
  CHECK(conntrack_fate({{0, 1}, {1998, 1999}}, 2000, tick).fate == EntryFate::undecided);
  CHECK(conntrack_fate({{0, 1}, {1900, 2100}}, 2000, tick).fate == EntryFate::undecided);
  // No segment after the last one: nothing can find the entry gone.
  CHECK(conntrack_fate({{0, 1}}, 2000, tick).fate == EntryFate::kept);
}

TEST_CASE("survival under loss: one round, several rounds, and the horizon between them", "[model][loss]") {
  CHECK(round_trip_success(0.3) == Approx(0.49));
  CHECK(round_trip_success(0) == 1);

  const double q = 0.49;
  // The horizon that counts the first round only: count 5 dies with (1 - q)^5.
  const auto k5 = keepalive(2, 1, 5);
  const double h5 = survival_horizon_ms(k5, 7040);
  CHECK(h5 > 7040);
  CHECK(h5 < 9000);  // a second round aborts at 2 + 2 + 5 s at the earliest
  CHECK(keepalive_survival(k5, q, h5) == Approx(1 - std::pow(1 - q, 5)));
  CHECK(keepalive_survival(k5, q, h5) == Approx(0.9655).margin(0.0001));

  const auto k1 = keepalive(2, 1, 1);
  CHECK(keepalive_survival(k1, q, survival_horizon_ms(k1, 3040)) == Approx(q));

  // Two rounds fit before 3.5 s with idle 1, interval 1, count 1: aborts possible at
  // 2 s (probe at 1 s lost) and 3 s (answered at 1 s, probe at 2 s lost).
  CHECK(keepalive_survival(keepalive(1, 1, 1), q, 3500) == Approx(q * q));
  // Before the first possible abort nothing can have died.
  CHECK(keepalive_survival(k5, q, 6999) == 1);
  // A perfect path never dies; a dead one always does once a round completes.
  CHECK(keepalive_survival(k5, 1, 60000) == 1);
  CHECK(keepalive_survival(k5, 0, 7000) == 0);

  CHECK_THROWS_AS(keepalive_survival({true, 2, 1, 5, 4000}, q, 10000), std::invalid_argument);
  CHECK_THROWS_AS(keepalive_survival({false, 2, 1, 5, 0}, q, 10000), std::invalid_argument);
}

TEST_CASE("binomial acceptance regions hold at most alpha outside them", "[model][loss]") {
  // Textbook: Binomial(100, 0.5) at 5 %: [40, 60].
  const auto textbook = binomial_acceptance(100, 0.5, 0.05);
  CHECK(textbook.lo == 40);
  CHECK(textbook.hi == 60);
  CHECK(textbook.false_failure <= 0.05);
  // The regions the lossy-path cases use (checked with exact arithmetic elsewhere).
  const auto half = binomial_acceptance(80, 0.49, kFalseFailureRate);
  CHECK(half.lo == 18);
  CHECK(half.hi == 61);
  CHECK(half.false_failure <= kFalseFailureRate);
  CHECK(half.false_failure == Approx(4.475e-7).epsilon(0.001));
  const auto most = binomial_acceptance(80, 0.9655, kFalseFailureRate);
  CHECK(most.lo == 66);
  CHECK(most.hi == 80);
  // Too few copies to ever fail at 1e-6: everything is accepted.
  const auto tiny = binomial_acceptance(10, 0.5, kFalseFailureRate);
  CHECK(tiny.lo == 0);
  CHECK(tiny.hi == 10);
  // Certain outcomes.
  CHECK(binomial_acceptance(20, 1.0, kFalseFailureRate).lo == 20);
  CHECK(binomial_acceptance(20, 0.0, kFalseFailureRate).hi == 0);

  CHECK(binomial_cdf(-1, 10, 0.5) == 0);
  CHECK(binomial_cdf(10, 10, 0.5) == 1);
  CHECK(binomial_cdf(5, 10, 0.5) == Approx(0.623046875));
  CHECK_THROWS_AS(binomial_acceptance(10, 1.5, 0.01), std::invalid_argument);
}

TEST_CASE("an unreachable path: keepalive ignores the ICMP errors, data in flight reports them", "[model][icmp]") {
  auto silent = idle_connection(2, 1, 2);
  silent.peer = PeerBehaviour::silent;
  auto unreachable = silent;
  unreachable.peer = PeerBehaviour::unreachable;
  const auto a = predict(silent);
  const auto b = predict(unreachable);
  CHECK(b.outcome == Outcome::timeout);
  CHECK(b.errno_name == "ETIMEDOUT");  // measured: OutOfWindowIcmps counts the probes' errors
  CHECK(b.window.earliest_ms == a.window.earliest_ms);
  CHECK(b.window.latest_ms == a.window.latest_ms);

  Input data = idle_connection(2, 1, 2);
  data.keepalive.enabled = false;
  data.traffic = Traffic::data_in_flight;
  data.retransmission.retries2 = 3;
  data.retransmission.first_rto_ms = 204;
  data.data_sent_at_ms = 10;
  data.peer = PeerBehaviour::unreachable;
  const auto v6 = predict(data);  // no RFC 6069 revert: the silent chain's timing
  CHECK(v6.errno_name == "EHOSTUNREACH");
  data.peer = PeerBehaviour::silent;
  const auto dead = predict(data);
  CHECK(dead.errno_name == "ETIMEDOUT");
  CHECK(v6.window.earliest_ms == dead.window.earliest_ms);
  CHECK(v6.window.latest_ms == dead.window.latest_ms);
  // IPv4: the RTO stays at its base; the abort comes within about one RTO of
  // retrans_stamp + 3 s. Measured: 3.0-3.1 s after the first retransmission, vs
  // about 6.1 s for IPv6.
  data.peer = PeerBehaviour::unreachable;
  data.icmp_reverts_backoff = true;
  const auto v4 = predict(data);
  CHECK(v4.errno_name == "EHOSTUNREACH");
  REQUIRE_FALSE(v4.retransmissions.empty());
  const auto first = v4.retransmissions.front().window;
  CHECK(v4.window.earliest_ms >= first.earliest_ms + 3000 - 5);
  CHECK(v4.window.latest_ms <= first.latest_ms + 3000 + 260);
  CHECK(v4.window.latest_ms < v6.window.earliest_ms);

  Input connecting;
  connecting.traffic = Traffic::connecting;
  connecting.peer = PeerBehaviour::unreachable;
  CHECK_THROWS_AS(predict(connecting), std::invalid_argument);
}

TEST_CASE("an application's idle close: EOF at its deadline, never before", "[model][application]") {
  Kernel k;
  k.hz = 250;
  const auto p = predict_application_close({-0.4, 3000, 20}, k);
  CHECK(p.outcome == Outcome::eof);
  CHECK(p.errno_name.empty());
  CHECK(p.window.earliest_ms == Approx(2999.6));
  CHECK(p.window.latest_ms == Approx(2999.6 + 20 + k.rtt_ms + k.wakeup_slack_ms));
  CHECK_THAT(p.steps.back(), Catch::Matchers::Contains("keepalive does not help"));
}
