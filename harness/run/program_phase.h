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
#include <limits>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <stop_token>
#include <thread>
#include <vector>

#include "harness/case/case.h"
#include "harness/evidence/classify.h"
#include "harness/evidence/packet.h"
#include "harness/judge/result.h"
#include "harness/plan/forecast.h"
#include "harness/run/endpoints.h"
#include "harness/run/fault_landing.h"
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
  // The run's stop: once requested, the programs get kStoppedGraceMs between SIGTERM
  // and SIGKILL instead of RunningProgram's 2 s (postgres, say, waits for its clients
  // on SIGTERM), so an interrupted run exits within a second.
  std::stop_token stop;
  static constexpr double kStoppedGraceMs = 200;
  ProgramSet() = default;
  explicit ProgramSet(std::stop_token s) : stop(std::move(s)) {}
  ProgramSet(const ProgramSet&) = delete;
  ProgramSet& operator=(const ProgramSet&) = delete;
  ~ProgramSet();
};

// The values of the placeholders for `program` (program.h lists them).
Placeholders placeholders_for(const Case& c, const ProgramSpec& program, const Topology& topology,
                              const std::filesystem::path& workdir);

// The first missing executable of the case's programs, as a reason to skip it.
std::optional<std::string> missing_program(const Case& c);

// Starts the programs of `c` with indices [from, to), in order, each in
// `dir`/<name>/ (created), with `extra`'s arguments for its name appended to its
// command. Throws, naming the program and quoting its output, when one exits or is not
// ready in time.
// Throws StoppedBeforeFault (judge/interrupt.h) once `stop` is requested, within 0.1 s.
void start_programs(const Case& c, const Topology& topology, const std::filesystem::path& dir, ProgramSet& set,
                    const ProgramArgs& extra, const std::stop_token& stop, std::size_t from = 0,
                    std::size_t to = std::numeric_limits<std::size_t>::max());

// The programs that start before the case's setup turn: those before the first program
// on the client. Servers may take seconds to be ready (initdb); a client program opens
// the connections whose first probe the fault must come before, so it starts in the
// case's turn, right before the fault (cases waiting for their turn would otherwise
// have their client programs idle on, and expectations "after the fault" come early).
std::size_t programs_before_setup(const Case& c);

// One connection of a program, judged like the harness's own.

// A FIN that ended a connection, seen in a capture: which side sent it, and when
// (the capture's clock).
struct ConnectionClose {
  bool by_local = false;  // the program's own side (else the peer)
  double t_ms = 0;
};

// The connection local:local_port <-> remote:remote_port in `packets` (one host's
// capture, in time order): the first FIN, when it came before any RST of the
// connection; nullopt when an RST came first or neither came.
std::optional<ConnectionClose> first_fin(const std::vector<evidence::Packet>& packets, const netns::SocketTimer& s);

// The capture time of the first segment carrying data that `s`'s side sent after
// `after_ms` and before `before_ms` (capture clock), or nullopt.
std::optional<double> first_data_sent(const std::vector<evidence::Packet>& packets, const netns::SocketTimer& s,
                                      double after_ms, double before_ms);

// `s` (a sock_diag entry) is what is left of `conn` after its program closed it: the
// same address pair, no inode (an orphan), a closing state.
bool is_orphan_of(const netns::SocketTimer& s, const netns::SocketTimer& conn);

// The idle timeout of the server program that `conn` (a client program's connection)
// talks to: its `idle_close_s`, matched by the connection's remote port.
std::optional<double> peer_idle_close_s(const Case& c, Host host, std::uint16_t remote_port);
struct ProgramConnection {
  std::size_t program = 0;  // index in Case::programs
  Host host = Host::server;  // where the program runs
  ConnectionSpec spec;      // name "<program>-<n>", family; where = the [[program]]
  netns::SocketTimer socket;  // local, remote, inode as sock_diag listed it
  EffectiveKeepalive keepalive;  // read from the socket
  RetransmissionState tcp;
  // Where the kernel's idle clock starts, read with the settings (before the fault): used
  // only when the capture puts t = 0 before that reading (use_idle_clock()).
  std::optional<IdleClock> idle_clock;
  double origin_ms = 0;     // t = 0, CLOCK_MONOTONIC: from TCP_INFO, then from the capture
  double armed_at_ms = 0;   // relative to t = 0: when the keepalive timer was armed (0: unknown)
  Forecast forecast;
  std::optional<double> vanished_ms;  // the first sock_diag sample without it
  double last_seen_ms = 0;            // the last sample with it
  // In that sample its address pair was still listed, without an inode, in a closing
  // state (FIN-WAIT-1, ...): the program closed it (the socket lives on as an orphan)
  // before the kernel ended it. A FIN stuck behind unacknowledged data never reaches
  // the capture; this is how such a close is seen.
  bool orphaned = false;
  // From the capture (CLOCK_MONOTONIC): the first segment with data the program's side
  // sent after the fault (then the retransmission timer owns the connection, not
  // keepalive), and the first FIN of the connection when it came before any RST.
  std::optional<double> data_sent_ms;
  std::optional<ConnectionClose> fin;
};

// Waits (up to each program's ready timeout) until every program with `connections
// = N` has N TCP connections to the other host, and reads their settings. Throws
// naming the program when they do not come.
// Throws StoppedBeforeFault once `stop` is requested.
std::vector<ProgramConnection> find_program_connections(const Case& c, const Topology& topology,
                                                        const ProgramSet& set, const std::stop_token& stop);

// The model's input and windows for each connection, from its settings and the fault;
// returns the latest horizon (CLOCK_MONOTONIC).
double forecast_program_connections(const Case& c, const Topology& topology, std::vector<ProgramConnection>& conns,
                                    double fault_at, const model::Kernel& kernel, const JiffyClock* clock,
                                    std::optional<double> keep_horizon_ms = std::nullopt);

// Asks sock_diag about each program connection every few ms (an exact lookup of its
// 4-tuple, netns::SocketLookup) until destroyed, and records when each socket
// vanished (closed by the kernel or by the program).
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
  std::map<Host, netns::SocketLookup> lookups_;  // one per host that holds a watched connection
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

// What each program did, judged against its [program.expect], in times from when the
// fault began to be applied (landing.begun_ms); a timing check only the fault's slow
// landing failed is an error (judge_program).
// `stopped_at`: when the run was stopped before watch_until (a program still running
// then and failing reads as interrupted).
std::vector<ProgramResult> program_results(const Case& c, const ProgramSet& set,
                                           const std::vector<ProgramConnection>& conns, const FaultLanding& landing,
                                           double watch_until, std::optional<double> stopped_at);

// "redis-server's connection from 198.18.0.1:40112: keepalive idle 2 s, ..." per connection.
std::vector<std::string> program_settings_lines(const Case& c, const std::vector<ProgramConnection>& conns);

}  // namespace kah
