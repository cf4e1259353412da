// Checks that need the timing model but no measurement, run on every case before
// anything is built (and all that `run --dry-run` does):
//  * the case's [expect] must agree with what the model predicts for its settings
//    (a case that expects reset where the model predicts timeout would only fail);
//  * the model must be able to answer at all (loss with TCP_USER_TIMEOUT,
//    [server] idle_close_s when the transport ends the connection too, a gap too
//    close to a conntrack timeout): plan.cc's forecast() refuses these;
//  * the case must fit the file descriptors the process can have (RLIMIT_NOFILE
//    raised to its hard limit), or it would die with EMFILE half-way;
//  * the case must end within --max-duration (a key left out falls back to the
//    sysctl: tcp_keepalive_time is 7200 s by default, hours of silence).
// The model is given the nominal inputs: the settings the case file states (or the
// namespace defaults it falls back to), the fault at t_r, no measured RTT or jiffy
// phase. Errors are CaseError, "file:line:col: error: ..." (exit 2).
#pragma once

#include <string>
#include <vector>

#include "harness/case/case.h"
#include "harness/model/timing.h"
#include "harness/plan/forecast.h"

namespace kah {

struct LoadLimits {
  model::Kernel kernel;          // HZ as the run will assume it
  double max_duration_s = 600;   // --max-duration; <= 0: not checked
  long fd_limit = 0;             // what RLIMIT_NOFILE can be raised to; <= 0: not checked
};

struct NominalConnection {
  const ConnectionSpec* spec = nullptr;
  Forecast forecast;
  std::string idle_from;  // where the keepalive idle comes from, e.g. "the net.ipv4.tcp_keepalive_time default"
};

struct CaseForecast {
  std::vector<NominalConnection> connections;
  double duration_ms = 0;  // the longest horizon: how long the case watches after the fault
  long fds = 0;            // file descriptors the case needs while it runs
  std::string backend = "netns";
  std::string skip;  // why that backend would skip it ("" it runs)
};

// The nominal forecast of every connection; throws CaseError when the model refuses.
CaseForecast nominal_forecast(const Case& c, const model::Kernel& kernel);
// Every check above; returns the forecast it made. Throws CaseError for the first problem.
CaseForecast check_case(const Case& c, const LoadLimits& limits);

// File descriptors a case needs: two per connection copy (client and server ends)
// and a few per case (listeners, captures, namespaces, netlink, nftables).
long fds_needed(const Case& c);
// File descriptors the process itself uses whatever runs.
inline constexpr long kBaseFds = 64;
// RLIMIT_NOFILE's hard limit: what raise_fd_limit() raises the soft limit to.
long fd_hard_limit();

// Cases run `jobs` at a time (0 = all): the ones that run together must fit the
// file descriptors too. Returns what is wrong ("" if nothing), with the --jobs that fits.
std::string run_fd_problem(const std::vector<CaseForecast>& cases, int jobs, long fd_limit);

// --jobs when not given: 0 (all at once) when every case fits the file descriptors
// together, else how many of the hungriest fit (at least 1).
int jobs_for_fd_limit(const std::vector<CaseForecast>& cases, long fd_limit);

// `run --dry-run`: per case the backend, the predicted duration and each
// connection's windows.
std::string describe_forecast(const Case& c, const CaseForecast& f);

}  // namespace kah
