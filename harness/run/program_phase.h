// The [[program]]s of a case, phase by phase, beside the harness's own connections
// (runner.cc calls these in its phases):
//
//   start      each program in order in its host's namespace, each once the one
//              before it is ready (port listening, line printed, delay)      -> ProgramSet
//   find       before the fault: each program's connections to the other host (its
//              processes' socket inodes matched with sock_diag), and the keepalive
//              settings in force on each, read from the socket (pidfd_getfd)
//   forecast   the same model as for the harness's connections, from those settings
//   watch      after the fault: sock_diag every few ms, when each socket vanished
//   collect    t = 0 and the end from the program host's capture (the RST of a
//              timeout is the kernel's time); ConnectionResults, judged as any other
//   judge      what the program did ([program.expect]) -> ProgramResults
//
// Program times in ProgramResult are ms from the fault; connection times from each
// connection's t = 0, as everywhere.
#pragma once

#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

#include "harness/case/case.h"
#include "harness/evidence/classify.h"
#include "harness/evidence/packet.h"
#include "harness/judge/result.h"
#include "harness/plan/forecast.h"
#include "harness/run/endpoints.h"
#include "harness/run/programs.h"
#include "harness/run/topology.h"
#include "netns/sockdiag.h"

namespace kah {

class JiffyClock;

// The case's programs, running; stopped in reverse order when destroyed.
struct ProgramSet {
  std::vector<std::unique_ptr<RunningProgram>> running;  // Case::programs order
  std::vector<std::vector<std::string>> argv;            // as run
  std::vector<std::optional<double>> ready_ms;            // CLOCK_MONOTONIC
  ProgramSet() = default;
  ProgramSet(const ProgramSet&) = delete;
  ProgramSet& operator=(const ProgramSet&) = delete;
  ~ProgramSet();
};

// The values of the placeholders for `program` (program.h lists them).
Placeholders placeholders_for(const Case& c, const ProgramSpec& program, const Topology& topology,
                              const std::filesystem::path& workdir);

// The first missing executable of the case's programs, as a reason to skip it.
std::optional<std::string> missing_program(const Case& c);

// Starts the programs of `c` not yet in `set`, in order, each in `dir`/<name>/
// (created), up to the first one on `stop_at` (nullopt: all). Throws, naming the
// program and quoting its output, when one exits or is not ready in time.
void start_programs(const Case& c, const Topology& topology, const std::filesystem::path& dir, ProgramSet& set,
                    std::optional<Host> stop_at = std::nullopt);

// One connection of a program, judged like the harness's own.
struct ProgramConnection {
  std::size_t program = 0;  // index in Case::programs
  Host host = Host::server;  // where the program runs
  ConnectionSpec spec;      // name "<program>-<n>", family; where = the [[program]]
  netns::SocketTimer socket;  // local, remote, inode as sock_diag listed it
  EffectiveKeepalive keepalive;  // read from the socket
  RetransmissionState tcp;
  double origin_ms = 0;     // t = 0, CLOCK_MONOTONIC: from TCP_INFO, then from the capture
  double armed_at_ms = 0;   // relative to t = 0: when the keepalive timer was armed (0: unknown)
  Forecast forecast;
  std::optional<double> vanished_ms;  // the first sock_diag sample without it
  double last_seen_ms = 0;            // the last sample with it
};

// Waits (up to each program's ready timeout) until every program with `connections
// = N` has N TCP connections to the other host, and reads their settings. Throws
// naming the program when they do not come.
std::vector<ProgramConnection> find_program_connections(const Case& c, const Topology& topology,
                                                        const ProgramSet& set);

// The model's input and windows for each connection, from its settings and the fault;
// returns the latest horizon (CLOCK_MONOTONIC).
double forecast_program_connections(const Case& c, const Topology& topology, std::vector<ProgramConnection>& conns,
                                    double fault_at, const model::Kernel& kernel, const JiffyClock* clock,
                                    std::optional<double> keep_horizon_ms = std::nullopt);

// Samples sock_diag in the namespaces that hold program connections every few ms
// until destroyed, and records when each socket vanished (closed by the kernel or
// by the program).
class ProgramConnectionWatch {
 public:
  ProgramConnectionWatch(const Topology& topology, std::vector<ProgramConnection>& conns);
  ~ProgramConnectionWatch();
  ProgramConnectionWatch(const ProgramConnectionWatch&) = delete;
  ProgramConnectionWatch& operator=(const ProgramConnectionWatch&) = delete;
  bool all_ended() const;

 private:
  void sample();
  const Topology& topology_;
  std::vector<ProgramConnection>& conns_;
  mutable std::mutex mutex_;
  std::jthread thread_;
};

// How long after the fault the programs must be watched (CLOCK_MONOTONIC): their
// connections' horizon and every time their expectations name.
double program_watch_until(const Case& c, const std::vector<ProgramConnection>& conns, double fault_at);

// Once the captures are in: t = 0 and the timer's arming from the program host's
// capture (`host_packets`, realtime stamps; `to_realtime_ms` converts), then forecast
// again with the horizon kept.
void place_on_capture(ProgramConnection& conn, const std::vector<evidence::Packet>& host_packets,
                      double to_realtime_ms, double fault_at);

// The judged ConnectionResult of one program connection; `host_analysis` is the
// program host's capture, classified (nullptr: no capture).
ConnectionResult program_connection_result(const Case& c, const ProgramConnection& conn,
                                           const evidence::Analysis* host_analysis, double to_realtime_ms);

// What each program did, judged against its [program.expect].
std::vector<ProgramResult> program_results(const Case& c, const ProgramSet& set,
                                           const std::vector<ProgramConnection>& conns, double fault_at,
                                           double watch_until);

// "redis-server's connection from 198.18.0.1:40112: keepalive idle 2 s, ..." per connection.
std::vector<std::string> program_settings_lines(const Case& c, const std::vector<ProgramConnection>& conns);

}  // namespace kah
