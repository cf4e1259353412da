#include "harness/run/load_checks.h"

#include <sys/resource.h>

#include <algorithm>
#include <functional>
#include <stdexcept>

#include <fmt/format.h>

#include "harness/evidence/probe_check.h"
#include "harness/judge/judge.h"

namespace kah {
namespace {

constexpr long kFdsPerCase = 16;  // listeners, two captures, namespace fds, netlink and nftables handles

model::Traffic nominal_traffic(Traffic t) {
  switch (t) {
    case Traffic::idle: return model::Traffic::idle;
    case Traffic::sending: return model::Traffic::data_in_flight;
    case Traffic::connecting: return model::Traffic::connecting;
  }
  return model::Traffic::idle;
}

// A client sysctl the case sets, else the value a fresh namespace starts with.
int client_sysctl(const Case& c, const std::string& name, int fallback) {
  const auto host = c.sysctls.find("client");
  if (host == c.sysctls.end()) return fallback;
  const auto it = host->second.find(name);
  if (it == host->second.end()) return fallback;
  return std::stoi(it->second);
}

bool sets_client_sysctl(const Case& c, const std::string& name) {
  const auto host = c.sysctls.find("client");
  return host != c.sysctls.end() && host->second.count(name) != 0;
}

std::string idle_origin(const Case& c, const ConnectionSpec& spec) {
  if (!spec.keepalive.enabled) return "keepalive off";
  if (spec.keepalive.idle_s) return fmt::format("keepalive idle = {} s", *spec.keepalive.idle_s);
  constexpr const char* kName = "net.ipv4.tcp_keepalive_time";
  if (sets_client_sysctl(c, kName))
    return fmt::format("keepalive idle from {} = {} s in [sysctl.client]", kName, client_sysctl(c, kName, 7200));
  return fmt::format("keepalive idle left out: it falls back to the {} default, 7200 s", kName);
}

model::Input nominal_input(const Case& c, const ConnectionSpec& spec, const model::Kernel& kernel) {
  model::Input in;
  in.keepalive.enabled = spec.keepalive.enabled;
  in.keepalive.idle_s = spec.keepalive.idle_s.value_or(client_sysctl(c, "net.ipv4.tcp_keepalive_time", 7200));
  in.keepalive.interval_s = spec.keepalive.interval_s.value_or(client_sysctl(c, "net.ipv4.tcp_keepalive_intvl", 75));
  in.keepalive.count = spec.keepalive.count.value_or(client_sysctl(c, "net.ipv4.tcp_keepalive_probes", 9));
  in.keepalive.user_timeout_ms = spec.user_timeout_ms;
  in.kernel = kernel;
  in.kernel.calibration.reset();
  in.retransmission.retries2 = client_sysctl(c, "net.ipv4.tcp_retries2", 15);
  in.retransmission.syn_retries = client_sysctl(c, "net.ipv4.tcp_syn_retries", 6);
  in.retransmission.sack = client_sysctl(c, "net.ipv4.tcp_sack", 1) != 0;
  in.retransmission.syn_linear_timeouts = client_sysctl(c, "net.ipv4.tcp_syn_linear_timeouts", 4);
  in.retransmission.rto_min_ms = client_sysctl(c, "net.ipv4.tcp_rto_min_us", 200000) / 1000.0;
  in.retransmission.rto_max_ms = client_sysctl(c, "net.ipv4.tcp_rto_max_ms", 120000);
  in.traffic = nominal_traffic(spec.traffic);
  return in;
}

ConnectionFacts nominal_facts(const ConnectionSpec& spec) {
  ConnectionFacts f;
  f.family = spec.family;
  f.fault_at_ms = 0;
  f.server_activity_ms = 0;
  if (spec.traffic == Traffic::sending) f.send_at_ms = spec.send_after_s ? 1000.0 * *spec.send_after_s : 0.0;
  return f;
}

// The two questions plan.cc's forecast() cannot answer, asked here with positions.
void check_modelled(const Case& c, const ConnectionSpec& spec) {
  const FaultKind kind = c.faults.empty() ? FaultKind::none : c.faults.front().kind;
  if (fault_info(kind).path == PathModel::random_loss) {
    if (spec.user_timeout_ms > 0)
      throw CaseError(spec.where, fmt::format("fault \"loss\" is modelled without TCP_USER_TIMEOUT; connection '{}' "
                                              "sets user_timeout_ms = {}: drop it, or put the connection in a case "
                                              "without random loss",
                                              spec.name, spec.user_timeout_ms));
    if (spec.traffic != Traffic::idle || !spec.keepalive.enabled)
      throw CaseError(spec.where, fmt::format("fault \"{}\" is modelled for idle connections probed by keepalive; "
                                              "connection '{}' has {}",
                                              to_string(kind), spec.name,
                                              spec.keepalive.enabled ? fmt::format("traffic = \"{}\"", to_string(spec.traffic))
                                                                     : std::string("keepalive = false")));
  }
}

void check_application_close(const Case& c, const ConnectionSpec& spec, const model::Input& in) {
  if (!c.server.idle_close_s) return;
  model::Input transport = in;
  transport.peer = fault_info(c.faults.empty() ? FaultKind::none : c.faults.front().kind).peer;
  const auto p = model::predict(transport);
  if (p.outcome == model::Outcome::alive) return;
  throw CaseError(c.server.where,
                  fmt::format("[server] idle_close_s = {} s: the transport ends connection '{}' too (the model "
                              "predicts {} in {}): not modelled; put the application close and the transport's end "
                              "in separate cases",
                              *c.server.idle_close_s, spec.name, to_string(expected_outcome(p.outcome)),
                              evidence::window_text(p.window)));
}

// How long the programs of a case are watched after the fault, before their sockets
// are read: what program_phase.cc falls back to (horizon_s, else 5 s), or longer when a
// program's expectation reaches further (its declared keepalive detection, an output
// or exit window).
double programs_duration_ms(const Case& c) {
  if (c.programs.empty()) return 0;
  double seconds = c.horizon_s.value_or(5);
  for (const auto& p : c.programs) {
    const auto& e = p.expect;
    if (e.settings.idle_s && e.settings.interval_s && e.settings.count)
      seconds = std::max(seconds, static_cast<double>(*e.settings.idle_s + *e.settings.interval_s * *e.settings.count));
    if (e.output_to_s) seconds = std::max(seconds, *e.output_to_s);
    if (e.exits_within_s) seconds = std::max(seconds, *e.exits_within_s);
  }
  return 1000 * seconds;
}

}  // namespace

long fds_needed(const Case& c) {
  long copies = 0;
  for (const auto& spec : c.connections) copies += spec.copies;
  return 2 * copies + kFdsPerCase;
}

long fd_hard_limit() {
  rlimit limit{};
  if (getrlimit(RLIMIT_NOFILE, &limit) != 0) return 0;
  if (limit.rlim_max == RLIM_INFINITY) return 0;
  return static_cast<long>(limit.rlim_max);
}

CaseForecast nominal_forecast(const Case& c, const model::Kernel& kernel) {
  CaseForecast out;
  out.fds = fds_needed(c);
  for (const auto& spec : c.connections) {
    check_modelled(c, spec);
    const auto in = nominal_input(c, spec, kernel);
    check_application_close(c, spec, in);
    NominalConnection n;
    n.spec = &spec;
    n.idle_from = idle_origin(c, spec);
    try {
      n.forecast = forecast(c, spec, in, nominal_facts(spec));
    } catch (const std::invalid_argument& e) {
      throw CaseError(spec.where, fmt::format("connection '{}': the timing model cannot judge it: {}", spec.name, e.what()));
    }
    out.duration_ms = std::max(out.duration_ms, n.forecast.horizon_ms);
    out.connections.push_back(std::move(n));
  }
  out.duration_ms = std::max(out.duration_ms, programs_duration_ms(c));
  return out;
}

CaseForecast check_case(const Case& c, const LoadLimits& limits) {
  auto f = nominal_forecast(c, limits.kernel);
  for (const auto& n : f.connections) {
    const auto& p = n.forecast.prediction;
    if (p.outcome != to_model(c.expect.outcome))
      throw CaseError(c.expect.where,
                      fmt::format("the case expects {} but the timing model predicts {} for connection '{}' ({}, "
                                  "fault \"{}\"): the run could only fail; fix [expect] outcome or the settings",
                                  to_string(c.expect.outcome), to_string(expected_outcome(p.outcome)), n.spec->name, n.idle_from,
                                  to_string(c.faults.empty() ? FaultKind::none : c.faults.front().kind)));
    if (c.expect.errno_name && !p.errno_name.empty() && *c.expect.errno_name != p.errno_name)
      throw CaseError(c.expect.where, fmt::format("the case expects {} but the timing model predicts {} for "
                                                  "connection '{}': the run could only fail",
                                                  *c.expect.errno_name, p.errno_name, n.spec->name));
  }
  if (limits.fd_limit > 0 && f.fds + kBaseFds > limits.fd_limit) {
    const auto biggest = std::max_element(c.connections.begin(), c.connections.end(),
                                          [](const auto& a, const auto& b) { return a.copies < b.copies; });
    throw CaseError(biggest->where,
                    fmt::format("case '{}' needs {} file descriptors (2 per connection copy, {} for the case, {} for "
                                "the harness) but RLIMIT_NOFILE can only be raised to {} here: lower 'copies' or "
                                "raise the hard limit (ulimit -Hn)",
                                c.name, f.fds + kBaseFds, kFdsPerCase, kBaseFds, limits.fd_limit));
  }
  if (limits.max_duration_s > 0 && f.duration_ms > 1000.0 * limits.max_duration_s && f.connections.empty())
    throw CaseError(c.where, fmt::format("case '{}' watches its programs for {:.1f} s after the fault (horizon_s, or "
                                         "what [program.expect] declares), longer than --max-duration {:g} s",
                                         c.name, f.duration_ms / 1000.0, limits.max_duration_s));
  if (limits.max_duration_s > 0 && f.duration_ms > 1000.0 * limits.max_duration_s) {
    const auto longest = std::max_element(f.connections.begin(), f.connections.end(), [](const auto& a, const auto& b) {
      return a.forecast.horizon_ms < b.forecast.horizon_ms;
    });
    throw CaseError(longest->spec->where,
                    fmt::format("case '{}' is predicted to take {:.1f} s (connection '{}': {}), longer than "
                                "--max-duration {:g} s: set the keepalive timers in the case, or raise --max-duration",
                                c.name, f.duration_ms / 1000.0, longest->spec->name, longest->idle_from,
                                limits.max_duration_s));
  }
  return f;
}

namespace {

// The cases' descriptor needs, hungriest first: the worst that can run together.
std::vector<long> fds_hungriest_first(const std::vector<CaseForecast>& cases) {
  std::vector<long> fds;
  for (const auto& c : cases) fds.push_back(c.fds);
  std::sort(fds.begin(), fds.end(), std::greater<>());
  return fds;
}

// How many of the hungriest cases fit `fd_limit` together.
std::size_t cases_that_fit(const std::vector<long>& hungriest_first, long fd_limit) {
  std::size_t fits = 0;
  for (long sum = kBaseFds; fits < hungriest_first.size() && sum + hungriest_first[fits] <= fd_limit; ++fits)
    sum += hungriest_first[fits];
  return fits;
}

}  // namespace

int jobs_for_fd_limit(const std::vector<CaseForecast>& cases, long fd_limit) {
  if (fd_limit <= 0 || cases.empty()) return 0;
  const auto fds = fds_hungriest_first(cases);
  const std::size_t fits = cases_that_fit(fds, fd_limit);
  return fits >= fds.size() ? 0 : static_cast<int>(std::max<std::size_t>(fits, 1));
}

std::string run_fd_problem(const std::vector<CaseForecast>& cases, int jobs, long fd_limit) {
  if (fd_limit <= 0 || cases.empty()) return "";
  const auto fds = fds_hungriest_first(cases);
  const std::size_t together = jobs > 0 ? std::min(fds.size(), static_cast<std::size_t>(jobs)) : fds.size();
  long need = kBaseFds;
  for (std::size_t i = 0; i < together; ++i) need += fds[i];
  if (need <= fd_limit) return "";
  const std::size_t fits = cases_that_fit(fds, fd_limit);
  return fmt::format("the {} cases that run at once need {} file descriptors but RLIMIT_NOFILE can only be raised to "
                     "{} here: run at most {} at once (--jobs {}), or raise the hard limit (ulimit -Hn)",
                     together, need, fd_limit, std::max<std::size_t>(fits, 1), std::max<std::size_t>(fits, 1));
}

std::string describe_forecast(const Case& c, const CaseForecast& f) {
  if (!f.skip.empty()) return fmt::format("{}  ({})  backend {}: SKIP {}\n", c.name, c.file.string(), f.backend, f.skip);
  std::string out = fmt::format("{}  ({})  backend {}, predicted {:.1f} s after the fault, {} file descriptors\n",
                                c.name, c.file.string(), f.backend, f.duration_ms / 1000.0, f.fds + kBaseFds);
  for (const auto& n : f.connections) {
    const auto& p = n.forecast.prediction;
    out += fmt::format("  {:<14} {:<7} {:<10} {} (nominal {:.1f} ms), {} probe window{}, watched to {:.1f} s",
                       n.spec->name, to_string(expected_outcome(p.outcome)), p.errno_name.empty() ? "-" : p.errno_name,
                       evidence::window_text(p.window), p.nominal_ms, p.probes.size(),
                       p.probes.size() == 1 ? "" : "s", n.forecast.horizon_ms / 1000.0);
    if (n.spec->copies > 1) out += fmt::format(", {} copies", n.spec->copies);
    if (n.forecast.survival) out += fmt::format(", survival {:.4f}", *n.forecast.survival);
    out += "\n";
  }
  return out;
}

}  // namespace kah
