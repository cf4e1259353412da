#include "harness/model/survival.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <stdexcept>

namespace kah::model {
namespace {

double log_pmf(int k, int n, double p) {
  return std::lgamma(n + 1.0) - std::lgamma(k + 1.0) - std::lgamma(n - k + 1.0) + k * std::log(p) +
         (n - k) * std::log1p(-p);
}

double pmf(int k, int n, double p) {
  if (p <= 0) return k == 0 ? 1 : 0;
  if (p >= 1) return k == n ? 1 : 0;
  return std::exp(log_pmf(k, n, p));
}

// P(X > k), summed from the top so that tiny tails keep their precision.
double upper_tail(int k, int n, double p) {
  double sum = 0;
  for (int i = n; i > k; --i) sum += pmf(i, n, p);
  return sum;
}

// Survival from a round whose first probe goes out at `first_ms`: memoised on it
// (rounds start on whole seconds, so few distinct values exist).
class Rounds {
 public:
  Rounds(const Keepalive& k, double answered, double horizon_ms)
      : idle_ms_(1000.0 * k.idle_s),
        interval_ms_(1000.0 * k.interval_s),
        count_(k.count),
        answered_(answered),
        horizon_ms_(horizon_ms) {}

  double from(double first_ms) {
    // This round's abort, if every probe goes unanswered; later rounds abort later.
    if (first_ms + count_ * interval_ms_ > horizon_ms_) return 1;
    if (auto it = memo_.find(first_ms); it != memo_.end()) return it->second;
    double survive = 0;
    double all_lost_so_far = 1;
    for (int j = 0; j < count_; ++j) {
      // Probe j is the first answered one: the idle clock restarts at its answer.
      const double answered_at = first_ms + j * interval_ms_;
      survive += all_lost_so_far * answered_ * from(answered_at + std::max(idle_ms_, interval_ms_));
      all_lost_so_far *= 1 - answered_;
    }
    memo_[first_ms] = survive;
    return survive;
  }

  double start() { return from(idle_ms_); }

 private:
  double idle_ms_, interval_ms_;
  int count_;
  double answered_, horizon_ms_;
  std::map<double, double> memo_;
};

}  // namespace

double round_trip_success(double loss) { return (1 - loss) * (1 - loss); }

double keepalive_survival(const Keepalive& k, double answered, double horizon_ms) {
  if (!k.enabled) throw std::invalid_argument("keepalive_survival: keepalive is off, nothing probes");
  if (k.user_timeout_ms > 0)
    throw std::invalid_argument("keepalive_survival: TCP_USER_TIMEOUT replaces the probe count; not modelled");
  if (k.idle_s < 1 || k.interval_s < 1 || k.count < 1)
    throw std::invalid_argument("keepalive_survival: idle, interval and count must be at least 1");
  if (!(answered >= 0 && answered <= 1))
    throw std::invalid_argument(fmt::format("keepalive_survival: {} is not a probability", answered));
  return Rounds(k, answered, horizon_ms).start();
}

double survival_horizon_ms(const Keepalive& k, double first_abort_latest_ms) {
  const double first_nominal = 1000.0 * (k.idle_s + k.count * k.interval_s);
  const double second_nominal = first_nominal + 1000.0 * std::max(k.idle_s, k.interval_s);
  return (std::max(first_abort_latest_ms, first_nominal) + second_nominal) / 2;
}

double binomial_cdf(int k, int n, double p) {
  if (k < 0) return 0;
  if (k >= n) return 1;
  double sum = 0;
  for (int i = 0; i <= k; ++i) sum += pmf(i, n, p);
  return std::min(1.0, sum);
}

AcceptanceRegion binomial_acceptance(int n, double p, double alpha) {
  if (n < 0 || !(p >= 0 && p <= 1) || !(alpha > 0 && alpha < 1))
    throw std::invalid_argument(fmt::format("binomial_acceptance: bad arguments n={} p={} alpha={}", n, p, alpha));
  AcceptanceRegion r;
  r.lo = 0;
  while (r.lo < n && binomial_cdf(r.lo, n, p) <= alpha / 2) ++r.lo;  // P(X < lo + 1) still small enough
  r.hi = n;
  while (r.hi > 0 && upper_tail(r.hi - 1, n, p) <= alpha / 2) --r.hi;
  r.false_failure = binomial_cdf(r.lo - 1, n, p) + upper_tail(r.hi, n, p);
  return r;
}

}  // namespace kah::model
