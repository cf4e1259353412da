// Random loss in the model: the chance that a keepalive connection survives a lossy
// path, and the binomial test that judges many copies against it. Pure functions.
//
// Each probe round trip succeeds independently with probability `answered` (a
// router that drops each packet with p, in both directions: (1 - p)^2). Probing
// follows the keepalive timer (timing.h): the first probe at idle after t_r; an
// answered probe at time a restarts the idle clock and the next probe goes out at
// a + max(idle, interval); unanswered, the next one interval later; `count`
// unanswered in a row abort the connection one interval after the last of them.
// Times are nominal (whole seconds, no timer lateness): choose the horizon away from
// the nominal abort instants (survival_horizon_ms does).
#pragma once

#include <cstdint>

#include "harness/model/timing.h"

namespace kah::model {

// Probability that one probe round trip succeeds when each packet is lost with
// `loss` in each direction.
double round_trip_success(double loss);

// Probability that the connection is still open at `horizon_ms` (from t_r). Needs
// keepalive enabled and no TCP_USER_TIMEOUT (std::invalid_argument otherwise).
double keepalive_survival(const Keepalive& keepalive, double answered, double horizon_ms);

// A horizon that counts the connections that die in the first round of probes (no
// answer to any of `count` probes) and none of a later round: halfway between the
// latest first-round abort `first_abort_latest_ms` (from the timing model) and the
// earliest nominal abort of a second round.
double survival_horizon_ms(const Keepalive& keepalive, double first_abort_latest_ms);

// Two-sided acceptance region [lo, hi] for the number of successes of
// Binomial(n, p): the largest lo and smallest hi with P(X < lo) <= alpha/2 and
// P(X > hi) <= alpha/2, so a correct model fails with probability at most alpha.
struct AcceptanceRegion {
  int lo = 0;
  int hi = 0;
  double false_failure = 0;  // P(X < lo) + P(X > hi) under the model: <= alpha
};
AcceptanceRegion binomial_acceptance(int n, double p, double alpha);

// P(X <= k) for X ~ Binomial(n, p).
double binomial_cdf(int k, int n, double p);

// The false-failure rate the harness allows a statistical verdict.
inline constexpr double kFalseFailureRate = 1e-6;

}  // namespace kah::model
