#include "harness/validate/battery.h"

#include <algorithm>
#include <cmath>
#include <optional>

#include <fmt/format.h>


namespace kah::validate {
namespace {

// Past this many attempts a scenario that still does not fit is refused, not run.
constexpr int kMaxScalingSteps = 2000;

struct KindInfo {
  ScenarioKind kind;
  const char* id;
  const char* title;
};

constexpr KindInfo kKinds[] = {
    {ScenarioKind::silent_peer, "silent-peer", "silent peer: keepalive on with the file's defaults, nothing answers"},
    {ScenarioKind::peer_reboot, "peer-reboot", "rebooted peer: it lost the connection and answers the probe with RST"},
    {ScenarioKind::data_in_flight, "data-in-flight", "data in flight to a dead peer: tcp_retries2 decides"},
    {ScenarioKind::connect, "connect", "connect() to a dead host: tcp_syn_retries decides"},
    {ScenarioKind::nat, "nat", "an idle keepalive flow through a strict NAT that forgets idle flows"},
    {ScenarioKind::user_timeout, "user-timeout", "data in flight to a dead peer with TCP_USER_TIMEOUT"},
};

const KindInfo& info(ScenarioKind k) {
  return *std::find_if(std::begin(kKinds), std::end(kKinds), [k](const KindInfo& i) { return i.kind == k; });
}

bool keepalive_timed(ScenarioKind k) {
  return k == ScenarioKind::silent_peer || k == ScenarioKind::peer_reboot || k == ScenarioKind::nat;
}

Knobs knobs_of(const sysctl::Tuning& t) {
  model::Input in;
  sysctl::apply_to(t, in);
  Knobs k;
  k.idle_s = in.keepalive.idle_s;
  k.interval_s = in.keepalive.interval_s;
  k.count = in.keepalive.count;
  k.retries2 = in.retransmission.retries2;
  k.syn_retries = in.retransmission.syn_retries;
  return k;
}

// The case for one scenario with these values; [expect] is filled in from the model later.
Case scenario_case(ScenarioKind kind, const std::string& id, const sysctl::Tuning& t, const Knobs& k) {
  Case c;
  c.name = "validate-" + id;
  c.description = info(kind).title;
  c.file = t.files.empty() ? "" : t.files.front();
  c.where = SourcePos{c.file.string(), 1, 0};
  auto sysctls = sysctl::namespace_sysctls(t);
  sysctls["net.ipv4.tcp_keepalive_time"] = std::to_string(k.idle_s);
  sysctls["net.ipv4.tcp_keepalive_intvl"] = std::to_string(k.interval_s);
  sysctls["net.ipv4.tcp_keepalive_probes"] = std::to_string(k.count);
  sysctls["net.ipv4.tcp_retries2"] = std::to_string(k.retries2);
  sysctls["net.ipv4.tcp_syn_retries"] = std::to_string(k.syn_retries);
  c.sysctls["client"] = sysctls;
  c.sysctls["server"] = sysctls;

  ConnectionSpec spec;
  spec.name = "c";
  spec.where = c.where;
  if (kind == ScenarioKind::data_in_flight || kind == ScenarioKind::user_timeout) spec.traffic = Traffic::sending;
  if (kind == ScenarioKind::connect) spec.traffic = Traffic::connecting;
  if (kind == ScenarioKind::user_timeout) spec.user_timeout_ms = k.user_timeout_ms;
  for (Family f : {Family::ipv4, Family::ipv6}) {
    spec.family = f;
    c.connections.push_back(spec);
  }

  FaultSpec fault;
  fault.kind = kind == ScenarioKind::peer_reboot ? FaultKind::peer_reboot
               : kind == ScenarioKind::nat      ? FaultKind::conntrack_timeout
                                                : FaultKind::blackhole;
  fault.where = c.where;
  c.faults.push_back(fault);
  if (kind == ScenarioKind::nat) {
    c.topology = TopologyKind::routed;
    c.router.nat = true;
    c.router.firewall = true;
    c.router.conntrack_loose = false;
    c.router.established_timeout_s = k.nat_timeout_s;
  }
  c.expect.where = c.where;
  return c;
}

// The scenario's values `step` steps smaller: times divided by step + 1 (whole
// seconds, at least 1), or retransmission counts lowered by `step`.
Knobs shrink(ScenarioKind kind, const Knobs& real, int step) {
  Knobs k = real;
  const double f = step + 1;
  const auto divided = [f](int s) { return std::max(1, static_cast<int>(std::lround(s / f))); };
  if (keepalive_timed(kind)) {
    k.idle_s = divided(real.idle_s);
    k.interval_s = divided(real.interval_s);
    k.nat_timeout_s = real.nat_timeout_s > 0 ? divided(real.nat_timeout_s) : 0;
  }
  if (kind == ScenarioKind::data_in_flight) k.retries2 = std::max(1, real.retries2 - step);
  if (kind == ScenarioKind::connect) k.syn_retries = std::max(1, real.syn_retries - step);
  if (kind == ScenarioKind::user_timeout) k.user_timeout_ms = std::max(1, static_cast<int>(std::lround(real.user_timeout_ms / f)));
  return k;
}

// What scaling changed, in words: "times ÷150: tcp_keepalive_time 7200 -> 48 s, ...".
std::string scaling_words(ScenarioKind kind, const Knobs& real, const Knobs& k, int step) {
  std::vector<std::string> parts;
  const auto changed = [&](const char* name, int from, int to, const char* unit) {
    if (from != to) parts.push_back(fmt::format("{} {} -> {}{}", name, from, to, unit));
  };
  changed("tcp_keepalive_time", real.idle_s, k.idle_s, " s");
  changed("tcp_keepalive_intvl", real.interval_s, k.interval_s, " s");
  changed("NAT timeout", real.nat_timeout_s, k.nat_timeout_s, " s");
  changed("tcp_retries2", real.retries2, k.retries2, "");
  changed("tcp_syn_retries", real.syn_retries, k.syn_retries, "");
  changed("TCP_USER_TIMEOUT", real.user_timeout_ms, k.user_timeout_ms, " ms");
  const std::string list = fmt::format("{}", fmt::join(parts, ", "));
  if (kind == ScenarioKind::data_in_flight || kind == ScenarioKind::connect)
    return fmt::format("cut short: {} (the RTO chain is the kernel's own; the same chain, fewer retransmissions)", list);
  return fmt::format("times /{}: {} (whole seconds, at least 1 s)", step + 1, list);
}

CaseForecast forecast_with_expectation(Case& c, const model::Kernel& kernel) {
  auto f = nominal_forecast(c, kernel);
  c.expect.outcome = expected_outcome(f.connections.front().forecast.prediction.outcome);
  return f;
}

// Builds the scenario: predicted at the real values, then the case that runs.
std::optional<Scenario> make_scenario(ScenarioKind kind, const std::string& id, const sysctl::Tuning& t,
                                      const Knobs& real, const BatteryOptions& o, std::vector<std::string>& refused) {
  Scenario s;
  s.kind = kind;
  s.id = id;
  s.title = info(kind).title;
  s.real = real;
  s.run = scenario_case(kind, id, t, real);
  try {
    s.predicted = forecast_with_expectation(s.run, o.kernel);
  } catch (const CaseError& e) {
    refused.push_back(fmt::format("{}: the timing model cannot judge it at the file's values: {}", id, e.message()));
    return std::nullopt;
  }
  s.scaled = real;
  const double limit_ms = 1000.0 * o.max_wait_s;
  if (s.predicted.duration_ms <= limit_ms) return s;
  // A first guess at the factor, then one step at a time until the case fits.
  const int first = keepalive_timed(kind) || kind == ScenarioKind::user_timeout
                        ? std::max(1, static_cast<int>(s.predicted.duration_ms / limit_ms) - 1)
                        : 1;
  std::string last_error;
  for (int step = first; step < first + kMaxScalingSteps; ++step) {
    const Knobs k = shrink(kind, real, step);
    Case c = scenario_case(kind, id, t, k);
    try {
      if (forecast_with_expectation(c, o.kernel).duration_ms > limit_ms) continue;
    } catch (const CaseError& e) {
      last_error = e.message();  // e.g. a gap rounded too close to the NAT timeout: try the next factor
      continue;
    }
    s.scaled = k;
    s.scaling = scaling_words(kind, real, k, step);
    s.run = std::move(c);
    return s;
  }
  refused.push_back(fmt::format("{}: does not fit --max-wait {:g} s even scaled{}", id, o.max_wait_s,
                                last_error.empty() ? "" : ": " + last_error));
  return std::nullopt;
}

void nat_warnings(const Knobs& real, const std::vector<double>& nat_timeouts, std::vector<std::string>& warnings) {
  for (double nat : nat_timeouts)
    if (real.idle_s >= nat)
      warnings.push_back(fmt::format(
          "keepalive_time {} s exceeds the NAT timeout {:g} s: idle flows die silently after {:g} s, and the kernel "
          "only learns of it from the first probe, at {} s (set net.ipv4.tcp_keepalive_time below {:g} s)",
          real.idle_s, nat, nat, real.idle_s, nat));
}

}  // namespace

Battery make_battery(const sysctl::Tuning& tuning, const BatteryOptions& options) {
  Battery b;
  const Knobs real = knobs_of(tuning);
  if (!tuning.settings.count("net.ipv4.tcp_keepalive_time"))
    b.warnings.push_back("the files leave net.ipv4.tcp_keepalive_time out: a new namespace (a container) starts at the "
                         "kernel default, 7200 s, whatever the host has");
  nat_warnings(real, options.nat_timeouts_s, b.warnings);
  const auto add = [&](ScenarioKind kind, const std::string& id, const Knobs& k) {
    if (auto s = make_scenario(kind, id, tuning, k, options, b.refused)) b.scenarios.push_back(std::move(*s));
  };
  for (ScenarioKind kind : {ScenarioKind::silent_peer, ScenarioKind::peer_reboot, ScenarioKind::data_in_flight,
                            ScenarioKind::connect})
    add(kind, info(kind).id, real);
  for (double nat : options.nat_timeouts_s) {
    Knobs k = real;
    k.nat_timeout_s = static_cast<int>(std::lround(nat));
    add(ScenarioKind::nat, fmt::format("nat-{}s", k.nat_timeout_s), k);
  }
  if (options.user_timeout_ms > 0) {
    Knobs k = real;
    k.user_timeout_ms = options.user_timeout_ms;
    add(ScenarioKind::user_timeout, "user-timeout", k);
  }
  return b;
}

const std::vector<CloudNat>& cloud_nat_defaults() {
  static const std::vector<CloudNat> rows = {
      {"AWS NAT gateway", 350, "idle TCP flows are dropped after 350 s (fixed)"},
      {"AWS Network Load Balancer", 350, "TCP idle timeout, 350 s by default (60-6000 s configurable)"},
      {"Azure NAT gateway / Load Balancer", 240, "TCP idle timeout 4 min by default (4-120 min)"},
      {"GCP Cloud NAT", 1200, "established TCP connection idle timeout, 1200 s by default"},
  };
  return rows;
}

}  // namespace kah::validate
