#include "harness/run/runner.h"

#include <sys/socket.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <optional>
#include <atomic>
#include <cmath>
#include <limits>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <map>
#include <set>
#include <thread>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "harness/clock/calibration_note.h"
#include "harness/clock/wakeup_priority.h"
#include "harness/clock/canary.h"
#include "harness/clock/clock.h"
#include "harness/clock/jiffies.h"
#include "harness/clock/realtime_steps.h"
#include "harness/clock/stall_watch.h"
#include "harness/evidence/capture.h"
#include "harness/fault/fault.h"
#include "harness/judge/interrupt.h"
#include "harness/judge/judge.h"
#include "harness/plan/forecast.h"
#include "harness/run/backend.h"
#include "harness/run/capture_evidence.h"
#include "harness/run/endpoints.h"
#include "harness/run/fault_actions.h"
#include "harness/run/fault_landing.h"
#include "harness/run/kernel_trace_loop.h"
#include "harness/run/nft_rules.h"
#include "harness/run/program_phase.h"
#include "harness/run/scheduler.h"
#include "harness/run/server_app.h"
#include "harness/run/stall_doubt.h"
#include "harness/run/topology.h"
#include "harness/run/watcher.h"
#include "netns/nft.h"
#include "netns/sockdiag.h"

// A case runs in phases, each a function below, in this order:
//
//   build       topology, captures, listeners                         -> CaseWorld
//   connect     client sockets, one exchange each, what they measured -> Tested connections
//   settle      idle on both sides; the peer process, server timers
//   inject      the fault, at measured instants; then probe counters   -> FaultLanding
//   send        what the client does after the fault (write, connect)
//   forecast    the model's input (model_input(), the one place it is built) and windows
//   wait        until every connection ended or the horizon            -> Ends, timer samples
//   collect     t_r from the capture, observations, what the captures saw -> ConnectionResults
//   judge       verdicts (a fault that landed late is a harness error), pcaps of what failed
//
// From connect to inject one case at a time holds the setup gate: each case must
// set its scene before its connections' first keepalive probe, often 1 s after the
// exchange, and a hundred cases setting up together on two cores stretched that
// past the first probe for a third of them (sweep -n 10000 --per-case 100). The
// waiting still overlaps.
namespace kah {
namespace {

constexpr double kIdleTimeoutMs = 2000;   // for the last ACK of the exchange to arrive
constexpr double kTimerSampleMs = 250;    // how often the kernel's timers are sampled
constexpr double kSameStampMs = 0.05;     // a capture stamp and an SO_TIMESTAMPNS stamp of one segment
// Data that stays unacknowledged once the peer is gone (Traffic::sending).
constexpr char kPayload[] = "data the peer never acknowledges";

const char* model_outcome_name(model::Outcome o) {
  switch (o) {
    case model::Outcome::timeout: return "timeout";
    case model::Outcome::reset: return "reset";
    case model::Outcome::alive: return "horizon";
    case model::Outcome::eof: return "eof";
  }
  return "?";
}

model::Traffic model_traffic(Traffic t) {
  switch (t) {
    case Traffic::idle: return model::Traffic::idle;
    case Traffic::sending: return model::Traffic::data_in_flight;
    case Traffic::connecting: return model::Traffic::connecting;
  }
  return model::Traffic::idle;
}

// When data (or a SYN) left: CLOCK_MONOTONIC just before the call and just after it
// returned; the kernel sent it in between.
struct Sent {
  std::optional<double> at_ms, by_ms;
};

// One tested connection: a copy of a [[connection]], with what was measured of it.
struct Tested {
  const ConnectionSpec* spec = nullptr;
  std::string name;
  UniqueFd client;
  Established link;  // empty for Traffic::connecting until after the fault
  std::uint16_t server_port = 0;  // its listener's
  EffectiveKeepalive keepalive;
  RetransmissionState socket;  // TCP_INFO after the exchange
  std::optional<IdleClock> idle_clock;  // read from the kernel once the fault is in place
  double origin_ms = 0;  // time zero of every window: the last received segment, or the connect() call
  std::optional<double> planned_send_ms;  // Traffic::sending: when the client writes
  Sent sent;
  // [server] idle_close_s: when the harness's server closed it (CLOCK_MONOTONIC; 0: not yet).
  std::shared_ptr<std::atomic<double>> server_closed = std::make_shared<std::atomic<double>>(0);
  Forecast forecast;
};

std::string copy_name(const ConnectionSpec& spec, int copy) {
  return spec.copies == 1 ? spec.name : fmt::format("{}#{}", spec.name, copy + 1);
}

// One case sets up at a time (see the top of this file).
std::mutex& setup_gate() {
  static std::mutex gate;
  return gate;
}

// Under the local backend every case shares the namespace's lo, so two cases whose
// programs use the same fixed port (redis's 6379, a server's 7001) cannot run at once:
// the second one's server finds the port taken, or its client reaches the first one's
// server. Such cases take their ports in turn, for their whole run (in ascending
// order: no two cases wait on each other).
std::vector<std::unique_lock<std::mutex>> hold_program_ports(const Case& c, Backend backend) {
  static std::mutex guard;
  static std::map<int, std::mutex> ports;
  std::set<int> wanted;
  if (backend == Backend::local)
    for (const auto& p : c.programs) {
      if (p.port) wanted.insert(*p.port);
      if (p.ready.port) wanted.insert(*p.ready.port);
    }
  std::vector<std::unique_lock<std::mutex>> held;
  for (const int port : wanted) {
    std::mutex* m = nullptr;
    {
      std::lock_guard lock(guard);
      m = &ports[port];
    }
    held.emplace_back(*m);
  }
  return held;
}

// ---- build ---------------------------------------------------------------------

// A case's two captures in the shared CaptureLoop: taken back at the end of the
// case, or removed on any early exit (an open capture keeps its namespace alive).
class CaptureGuard {
 public:
  CaptureGuard(evidence::CaptureLoop& loop, std::vector<evidence::LiveCapture> both) : loop_(loop) {
    for (auto& c : both) ids_.push_back(loop_.add(std::move(c)));
  }
  ~CaptureGuard() {
    if (!ids_.empty()) loop_.remove(ids_);
  }
  CaptureGuard(const CaptureGuard&) = delete;
  CaptureGuard& operator=(const CaptureGuard&) = delete;

  // Drained and closed: (client, server).
  std::pair<evidence::LiveCapture, evidence::LiveCapture> take() {
    auto both = loop_.remove(ids_);
    ids_.clear();
    return {std::move(both.at(0)), std::move(both.at(1))};
  }

 private:
  evidence::CaptureLoop& loop_;
  std::vector<evidence::CaptureLoop::Id> ids_;
};

struct CaseWorld {
  // Declared first, closed last: a listener holds its port, so no other case can bind
  // it or take it as a client's port while this case's rules (which match it) exist.
  // Under the local backend, with the listeners closed before the tables went, a case
  // that got the same port from bind(0) met the finished case's rules: a connect()
  // refused by its reject-rst, a rebooted peer's RST and a frozen peer's ACKs dropped
  // by its blackhole (3 of 6 runs of the emulated container beside a soak).
  std::map<Family, UniqueFd> listeners;
  std::unique_ptr<Topology> topology;
  std::optional<CaptureGuard> capture;
  std::map<Family, std::uint16_t> server_ports;  // the kernel picks them: no two cases share one
  // Backend local: the ports the case's server programs listen on (its [[program]]
  // port), which its fault rules and captures on the shared lo match too.
  std::vector<std::uint16_t> program_ports;

  // A server program may listen in either family: its port counts in both.
  std::vector<ServerPort> ports() const {
    std::vector<ServerPort> out;
    for (const auto& [family, port] : server_ports) out.push_back({family, port});
    for (const auto port : program_ports)
      for (const auto family : {Family::ipv4, Family::ipv6}) out.push_back({family, port});
    return out;
  }
};

// Only the case's own segments: on the local backend the captures share lo with
// every other case and program (each port in its own family: ServerPort).
evidence::CaptureOptions capture_options(const std::vector<ServerPort>& server_ports) {
  evidence::CaptureOptions options;
  options.filter.clear();
  for (const auto& p : server_ports)
    options.filter += fmt::format("{}({} and tcp port {})", options.filter.empty() ? "" : " or ",
                                  p.family == Family::ipv4 ? "ip" : "ip6", p.port);
  return options;
}

// Fills `w` (not movable: its captures are registered with the loop).
void build(const Case& c, evidence::CaptureLoop& captures, const RunOptions& options, CaseWorld& w) {
  w.topology = build_topology(c, options.backend);
  const auto& client_ns = w.topology->ns(Host::client);
  const auto& server_ns = w.topology->ns(Host::server);
  std::set<Family> families;
  for (const auto& spec : c.connections) families.insert(spec.family);
  // Listeners stay open: a rebooted peer is listening again and still answers a
  // segment of the forgotten connection with RST.
  for (auto f : families) {
    w.listeners[f] = open_listener(server_ns, f, w.topology->address(Host::server, f), 0);
    w.server_ports[f] = bound_port(w.listeners[f].get());
  }
  if (options.backend == Backend::local) {
    for (const auto& p : c.programs) {
      if (p.host != Host::server) continue;
      if (!p.port)
        throw std::runtime_error(fmt::format("{}: program {}: the local backend matches its faults and captures on lo "
                                             "by a server program's port; this one has no `port`",
                                             p.where.str(), p.name));
      w.program_ports.push_back(static_cast<std::uint16_t>(*p.port));
    }
  }
  // Captures on both ends of the link from before the first connection, so the
  // exchange, every probe and the end are all seen with kernel timestamps.
  if (options.capture)
    w.capture.emplace(captures, evidence::LiveCapture::open_all({{&client_ns, w.topology->interface(Host::client)},
                                                                 {&server_ns, w.topology->interface(Host::server)}},
                                                                capture_options(w.ports())));
}

// ---- connect ---------------------------------------------------------------------

std::vector<Tested> connect(const Case& c, CaseWorld& w) {
  const Exchange exchange = exchange_for(c.server);
  std::vector<Tested> tested;
  for (const auto& spec : c.connections) {
    auto sockets = open_client_sockets(w.topology->ns(Host::client), spec, spec.copies);
    for (int i = 0; i < spec.copies; ++i) {
      Tested t;
      t.spec = &spec;
      t.name = copy_name(spec, i);
      t.client = std::move(sockets[static_cast<std::size_t>(i)]);
      t.server_port = w.server_ports.at(spec.family);
      if (spec.traffic != Traffic::connecting) {
        t.link = establish(t.client.get(), w.listeners[spec.family].get(), spec.family,
                           w.topology->address(Host::server, spec.family), t.server_port, exchange);
        t.origin_ms = t.link.last_received_ms;
        t.socket = retransmission_state(t.client.get());
      }
      t.keepalive = read_keepalive(t.client.get());
      tested.push_back(std::move(t));
    }
  }
  return tested;
}

// ---- settle ----------------------------------------------------------------------

// Idle on both sides; the server's sockets handed to a process of their own when the
// fault needs one; the server application's idle timeout armed on `timeline`.
std::optional<PeerProcess> settle(const Case& c, std::vector<Tested>& tested, Scheduler& timeline) {
  for (auto& t : tested)
    if (t.link.server) wait_until_idle(t.link.server.get(), kIdleTimeoutMs);

  std::optional<PeerProcess> peer;
  if (fault_info(c.faults.front().kind).needs_peer_process) {
    std::vector<int> fds;
    for (const auto& t : tested)
      if (t.link.server) fds.push_back(t.link.server.get());
    peer = PeerProcess::spawn(fds);
    for (auto& t : tested) t.link.server.reset();  // only the peer process holds them now
  }
  if (c.server.idle_close_s)
    for (auto& t : tested)
      if (t.link.server)
        close_when_idle(timeline, std::move(t.link.server), t.link.server_activity_ms + 1000.0 * *c.server.idle_close_s,
                        t.server_closed);
  return peer;
}

// ---- inject ----------------------------------------------------------------------

// Applies the case's fault to everything it may act on; returns when it was applied.
FaultLanding inject(const Case& c, CaseWorld& w, std::vector<Tested>& tested, std::optional<PeerProcess>& peer) {
  FaultTargets targets;
  targets.server_ports = w.ports();
  if (peer) targets.peer_app = &*peer;
  const auto& topology = *w.topology;
  for (auto& t : tested) {
    if (t.link.server) targets.server_sockets.push_back(&t.link.server);
    if (t.link.client_port != 0)
      targets.flows.push_back({topology.address(Host::client, t.spec->family), t.link.client_port,
                               topology.address(Host::server, t.spec->family), t.server_port});
  }
  const double begun = monotonic_ms();
  apply_fault(c.faults.front(), *w.topology, targets);
  return {begun, monotonic_ms()};
}

// Where the kernel's idle clock of each connection starts: nothing reaches the client
// between its last segment and its first probe, so one reading after the fault holds
// for the keepalive chain. Read under the setup gate: no other case's setup competes;
// and no sooner than the kernel may still be taking in the last segment (the reading
// only counts when made after that: use_idle_clock()).
void read_kernel_idle_clocks(std::vector<Tested>& tested, const model::Kernel& kernel) {
  std::vector<int> fds;
  std::vector<std::size_t> which;
  double not_before = 0;
  for (std::size_t i = 0; i < tested.size(); ++i) {
    if (tested[i].spec->traffic == Traffic::connecting) continue;
    fds.push_back(tested[i].client.get());
    which.push_back(i);
    not_before = std::max(not_before, tested[i].origin_ms + std::max(0.0, kernel.receive_delay_ms));
  }
  if (const double wait = not_before - monotonic_ms(); wait > 0)
    std::this_thread::sleep_for(std::chrono::microseconds(static_cast<long>(wait * 1000) + 100));
  auto clocks = read_idle_clocks(fds);
  for (std::size_t k = 0; k < which.size(); ++k) tested[which[k]].idle_clock = clocks[k];
}

// Counts keepalive probes per connection. After the fault: every connection's first
// probe has to wait for the fault, and the counters are evidence only (the capture
// times each probe).
void count_probes(CaseWorld& w, const std::vector<Tested>& tested) {
  std::vector<ProbeCounter> counters;
  for (const auto& t : tested)
    if (t.link.client_port != 0)
      counters.push_back({probe_counter_name(t.spec->family, t.link.client_port), t.spec->family, t.link.client_port,
                          t.server_port});
  w.topology->nft(Host::client,
                  probe_counter_ruleset(counters, w.topology->probe_table(), w.topology->owns_tables(),
                                        w.topology->rule_names()));
}

// ---- send ------------------------------------------------------------------------

// When delayed writes (send_after_s) went out, filled on the Scheduler's thread.
struct DelayedWrites {
  std::mutex mutex;
  std::vector<Sent> sent;
};

// What the client does once the fault is in place: write now, write later (a request
// after an idle period: on `timeline`), or connect. `watch` starts watching one.
void send(std::vector<Tested>& tested, const Topology& topology, Scheduler& timeline,
          const std::shared_ptr<DelayedWrites>& delayed, const std::function<void(std::size_t)>& watch) {
  for (std::size_t i = 0; i < tested.size(); ++i) {
    auto& t = tested[i];
    const ConnectionSpec& spec = *t.spec;
    if (spec.traffic == Traffic::sending && spec.send_after_s) {
      t.planned_send_ms = t.origin_ms + 1000.0 * *spec.send_after_s;
      // A connection that has already ended just refuses it (MSG_NOSIGNAL: no SIGPIPE).
      timeline.at(*t.planned_send_ms, [fd = t.client.get(), delayed, i] {
        const double before = monotonic_ms();
        if (::send(fd, kPayload, sizeof kPayload, MSG_NOSIGNAL) < 0) return;
        const double after = monotonic_ms();
        std::lock_guard lock(delayed->mutex);
        delayed->sent[i] = {before, after};
      });
    } else if (spec.traffic == Traffic::sending) {
      t.planned_send_ms = monotonic_ms();
      if (::write(t.client.get(), kPayload, sizeof kPayload) < 0)
        throw_errno(fmt::format("connection {}: cannot write after the fault", t.name));
      t.sent = {t.planned_send_ms, monotonic_ms()};
    } else if (spec.traffic == Traffic::connecting) {
      t.origin_ms = monotonic_ms();
      start_connect(t.client.get(), spec.family, topology.address(Host::server, spec.family), t.server_port);
      t.sent = {t.origin_ms, monotonic_ms()};
      watch(i);
    }
  }
}

// ---- forecast --------------------------------------------------------------------

// The model's input for one connection: every value it sees, from what was
// measured. The one place it is assembled.
model::Input model_input(const Tested& t, const model::Retransmission& namespace_settings,
                         const model::Kernel& kernel, const JiffyClock* clock) {
  model::Input in;
  in.keepalive = model_keepalive(t.keepalive);
  in.kernel = kernel;
  if (clock != nullptr) in.kernel.calibration = clock->at(t.origin_ms);
  if (t.spec->traffic != Traffic::connecting) use_idle_clock(in, t.idle_clock, t.origin_ms);
  in.retransmission = namespace_settings;
  in.retransmission.first_rto_ms = std::max(namespace_settings.rto_min_ms, t.socket.rto_ms);
  in.retransmission.srtt_ms = t.socket.srtt_ms;
  in.retransmission.sack = t.socket.sack;
  in.retransmission.pacing_delay_jiffies = t.socket.paced ? 1 : 0;
  in.traffic = model_traffic(t.spec->traffic);
  if (t.spec->traffic != Traffic::connecting) {
    // The kernel armed the keepalive timer when the handshake completed, somewhere
    // between connect()'s call and its return (however long a loaded machine stretches it).
    in.armed_at_ms = t.link.established_ms - t.link.last_received_ms;
    in.armed_from_ms = t.link.connect_started_ms - t.link.last_received_ms;
  }
  // The kernel sent the data (the SYN) between the two readings: no more slack needed.
  if (t.sent.by_ms) in.sent_by_ms = *t.sent.by_ms - t.origin_ms;
  return in;
}

// What the run measured of the path and the server, in the model's time (from t_r).
ConnectionFacts facts_of(const Tested& t, double fault_at) {
  ConnectionFacts f;
  f.family = t.spec->family;
  f.fault_at_ms = fault_at - t.origin_ms;
  f.server_activity_ms = t.link.server_activity_ms - t.origin_ms;
  const auto send_at = t.sent.at_ms ? t.sent.at_ms : t.planned_send_ms;
  if (send_at && t.spec->traffic == Traffic::sending) f.send_at_ms = *send_at - t.origin_ms;
  if (const double closed = t.server_closed->load(); closed > 0) f.server_closed_ms = closed - t.origin_ms;
  return f;
}

// ---- wait ------------------------------------------------------------------------

// What the Watcher reports, shared with its callbacks (which may outlive a wait).
struct Ends {
  std::mutex mutex;
  std::condition_variable changed;
  std::vector<std::optional<SocketEnd>> ends;
  std::size_t open = 0;
};

// Samples what the kernel says of each client socket's timer (as `ss -o` shows it),
// matched to the connections by local port, in ms from each connection's origin.
class TimerSampler {
 public:
  TimerSampler(const netns::Namespace& client, const std::vector<Tested>& tested)
      : client_(client), tested_(tested), samples_(tested.size()) {
    for (std::size_t i = 0; i < tested.size(); ++i)
      if (tested[i].link.client_port != 0) by_port_[tested[i].link.client_port] = i;
  }

  void sample() {
    const double now = monotonic_ms();
    std::vector<netns::SocketTimer> timers;
    try {
      timers = netns::socket_timers(client_);
    } catch (const std::exception& e) {
      spdlog::debug("{}: cannot sample socket timers: {}", client_.label(), e.what());
      return;  // evidence only: a missed sample is no failure of the case
    }
    for (const auto& t : timers) {
      const auto it = by_port_.find(t.local_port);
      if (it == by_port_.end()) continue;
      samples_[it->second].push_back({now - tested_[it->second].origin_ms, std::string(netns::to_string(t.timer)),
                                      static_cast<double>(t.expires_ms), t.counter});
    }
  }

  std::vector<std::vector<evidence::TimerSample>> take() { return std::move(samples_); }

 private:
  const netns::Namespace& client_;
  const std::vector<Tested>& tested_;
  std::map<std::uint16_t, std::size_t> by_port_;
  std::vector<std::vector<evidence::TimerSample>> samples_;
};

struct Waited {
  std::vector<std::vector<evidence::TimerSample>> samples;  // per connection
  std::optional<double> stopped_at_ms;  // set when a stop request cut the wait short
};

// Waits for every connection to end or `until_ms`, sampling the kernel's view of the
// client sockets' timers (sock_diag) on the way; a stop request wakes it.
Waited wait(Ends& ends, const netns::Namespace& client, const std::vector<Tested>& tested, double until_ms,
            std::stop_token stop) {
  TimerSampler sampler(client, tested);
  Waited waited;
  std::stop_callback wake_on_stop(stop, [&ends] {
    std::lock_guard wake_lock(ends.mutex);
    ends.changed.notify_all();
  });
  std::unique_lock lock(ends.mutex);
  double next_sample = monotonic_ms();
  while (ends.open > 0) {
    if (stop.stop_requested()) {
      waited.stopped_at_ms = monotonic_ms();
      break;
    }
    const double now = monotonic_ms();
    const double left = until_ms - now;
    if (left <= 0) break;
    if (now >= next_sample) {
      lock.unlock();
      sampler.sample();
      lock.lock();
      next_sample = now + kTimerSampleMs;
      continue;
    }
    const double wait = std::min(left, next_sample - now);
    ends.changed.wait_for(lock, std::chrono::microseconds(static_cast<long>(wait * 1000)));
  }
  waited.samples = sampler.take();
  return waited;
}

// ---- collect ---------------------------------------------------------------------

FlowKey flow_key(const Tested& t, const Topology& topology) {
  const Family f = t.spec->family;
  return {f, topology.address(Host::client, f), topology.address(Host::server, f), t.link.client_port, t.server_port};
}

// Expectation and observation of one connection, before judging.
ConnectionResult observe(const Case& c, const Tested& t, const std::optional<SocketEnd>& end, int probes) {
  ConnectionResult r;
  r.name = t.name;
  r.family = t.spec->family;
  r.where = t.spec->where;
  r.model_input = t.forecast.input;
  const auto& prediction = t.forecast.prediction;
  r.prediction = prediction;
  r.expected.outcome = c.expect.outcome;
  r.expected.deadline_ms = c.expect.deadline_ms;
  r.expected.model_outcome = prediction.outcome;
  r.expected.window = prediction.window;
  r.expected.errno_name = c.expect.errno_name;
  r.expected.model_errno = prediction.errno_name;
  r.expected.survival = t.forecast.survival;
  if (end) {
    r.observed.outcome = outcome_of(end->so_error, end->eof);
    r.observed.errno_name = errno_name(end->so_error);
    r.observed.at_ms = end->at_ms - t.origin_ms;
  } else {
    r.observed.outcome = ObservedOutcome::alive;
    r.observed.at_ms = t.forecast.horizon_ms;
  }
  r.observed.probes = probes;
  return r;
}

// Takes the case's captures back and classifies them, up to the horizon.
std::optional<CaseCaptures> analyze(CaseWorld& w, double watch_until) {
  if (!w.capture) return std::nullopt;
  auto [client_capture, server_capture] = w.capture->take();
  return analyze_captures(std::move(client_capture), std::move(server_capture),
                          watch_until + RealtimeSteps::process().reference_ms());
}

// The kernel's idle clock starts at the last segment the client received before the
// fault, as the capture stamps it: under loss a retransmitted reply (its first copy's
// ACK lost) comes later than the copy the exchange read, and a reply read without a
// kernel stamp was timed by the wake-up. Moves t = 0 there and returns by how much
// (the connection must then be forecast again); nullopt when it stays.
std::optional<double> origin_from_capture(Tested& t, const CaseCaptures& seen, const Topology& topology,
                                          double fault_at) {
  if (t.spec->traffic == Traffic::connecting || t.link.client_port == 0) return std::nullopt;
  const double to_realtime = t.link.last_received_realtime_ms - t.link.last_received_ms;
  const auto last = last_received_before(seen.client.packets(), flow_key(t, topology), fault_at + to_realtime);
  if (!last || std::abs(*last - t.link.last_received_realtime_ms) < kSameStampMs) return std::nullopt;
  const double shift = *last - t.link.last_received_realtime_ms;
  spdlog::debug("{}: t_r moved by {:.3f} ms to the last data segment the client received", t.name, shift);
  t.link.last_received_realtime_ms = *last;
  t.link.last_received_ms += shift;
  t.origin_ms += shift;
  return shift;
}

// The case's observations, with what the captures saw of each connection.
std::vector<ConnectionResult> collect(const Case& c, CaseWorld& w, const std::vector<Tested>& tested, Ends& ends,
                                      Waited waited, double fault_at, const std::optional<CaseCaptures>& seen) {
  const auto& topology = *w.topology;
  const auto probes = topology.nft_counters(Host::client, topology.probe_table());
  const bool probes_visible = !fault_info(c.faults.front().kind).hides_probes;
  std::vector<ConnectionResult> results;
  std::lock_guard lock(ends.mutex);
  for (std::size_t i = 0; i < tested.size(); ++i) {
    const auto& t = tested[i];
    const auto counted = probes.find(probe_counter_name(t.spec->family, t.link.client_port));
    const int n = t.link.client_port != 0 && counted != probes.end() ? static_cast<int>(counted->second) : 0;
    auto r = observe(c, t, ends.ends[i], n);
    // Open when a stop came, before its own horizon: alive so far, not decided.
    const auto& stopped = waited.stopped_at_ms;
    const bool still_open = !ends.ends[i] && stopped && *stopped < t.origin_ms + t.forecast.horizon_ms;
    if (still_open) mark_interrupted(r, *stopped - t.origin_ms);
    if (seen && t.link.client_port != 0) {
      // The model lists every probe only for an idle connection that keepalive
      // ends or keeps; data in flight and application closes have no schedule.
      const bool schedule_known = t.forecast.input.traffic == model::Traffic::idle &&
                                  t.forecast.prediction.outcome != model::Outcome::eof;
      attach_capture_evidence(r, *seen, flow_key(t, topology), t.link.last_received_realtime_ms,
                              schedule_known && probes_visible && !still_open);
      r.evidence.fault_ms = fault_at - t.origin_ms;
    }
    r.evidence.timer_samples = std::move(waited.samples.at(i));
    r.evidence.origin_monotonic_ms = t.origin_ms;
    results.push_back(std::move(r));
  }
  return results;
}

// The client socket of a connection, as the kernel's trace may show it: connect() ran
// in this process between the two readings around it.
std::optional<evidence::TracedSocketKey> traced_key(const Tested& t, const Topology& topology) {
  evidence::TracedSocketKey k;
  const Family f = t.spec->family;
  k.family = f;
  k.client_address = topology.address(Host::client, f);
  k.server_address = topology.address(Host::server, f);
  k.server_port = t.server_port;
  k.pid = static_cast<std::uint32_t>(::getpid());
  if (t.link.client_port != 0) {
    k.client_port = t.link.client_port;
    k.connect_from_ms = t.link.connect_started_ms;
    k.connect_to_ms = t.link.established_ms;
  } else if (t.sent.at_ms && t.sent.by_ms) {
    k.connect_from_ms = *t.sent.at_ms;
    k.connect_to_ms = *t.sent.by_ms;
  } else {
    return std::nullopt;
  }
  return k;
}

// Re-times probes and ends by the kernel's own events, where the trace runs.
void attach_kernel_timing(std::vector<ConnectionResult>& results, const std::vector<Tested>& tested,
                          const Topology& topology, KernelTraceLoop* trace, const JiffyClock* clock) {
  if (trace == nullptr || !trace->on()) return;
  std::vector<KernelTraceLoop::Connection> connections;
  double from = std::numeric_limits<double>::infinity();
  for (std::size_t i = 0; i < tested.size(); ++i) {
    auto key = traced_key(tested[i], topology);
    if (key) from = std::min(from, key->connect_from_ms);
    connections.push_back({&results[i], std::move(key), tested[i].origin_ms});
  }
  if (from == std::numeric_limits<double>::infinity()) return;
  trace->attach(connections, clock, from - 1);
}

// ---- judge -----------------------------------------------------------------------


// A failure the machine may have caused is not judged: capture stamps a realtime step
// left ambiguous, or lateness while a CPU's timers were held (stall_doubt.h).
void doubt_failure(ConnectionResult& r, const SourcePos& where, const std::string& name,
                   const std::optional<CaseCaptures>& seen, const FlowKey& key, double origin_ms) {
  if (r.verdict != Verdict::fail) return;
  std::optional<std::string> doubt;
  if (seen) doubt = clock_step_doubt(*seen, key);
  if (!doubt) doubt = stall_doubt(r, origin_ms, StallWatch::process().stalls(origin_ms, monotonic_ms()));
  if (doubt) mark_not_judged(r, fmt::format("{}: connection {}", where.str(), name), *doubt);
}

void judge(CaseResult& result, const Case& c, const Topology& topology, const std::vector<Tested>& tested,
           const FaultLanding& landing, const std::optional<CaseCaptures>& seen, const RunOptions& options) {
  for (std::size_t i = 0; i < result.connections.size(); ++i) {
    auto& r = result.connections[i];
    if (r.verdict == Verdict::interrupted) continue;  // not decided: nothing to judge
    judge_connection(r);
    std::optional<double> first_probe_seen;
    if (r.evidence.probes_checked && !r.evidence.probe_checks.empty())
      first_probe_seen = r.evidence.probe_checks.front().seen_ms;
    if (auto late = fault_landed_late(c.faults.front().kind, landing, tested[i].origin_ms, r.prediction,
                                      first_probe_seen)) {
      r.verdict = Verdict::error;
      r.message = fmt::format("{}: connection {}: {}", tested[i].spec->where.str(), tested[i].name, *late);
    }
    doubt_failure(r, tested[i].spec->where, tested[i].name, seen, flow_key(tested[i], topology), tested[i].origin_ms);
    const bool write = !options.pcap_dir.empty() && (options.pcap_all || r.verdict != Verdict::pass);
    if (seen && tested[i].link.client_port != 0 && write)
      write_connection_pcaps(r, *seen, flow_key(tested[i], topology), options.pcap_dir, c.name);
  }
  if (any_interrupted(result.connections)) {
    result.verdict = interrupted_case_verdict(result.connections);  // copies are not judged half-way
    return;
  }
  result.survival = judge_copies(result.connections, c.expect.survival);
  result.verdict = case_verdict(result.connections, result.survival);
}

// Tells the listener what the model expects next of each connection.
void announce(const Case& c, const std::vector<Tested>& tested, RunListener* listener) {
  if (listener == nullptr) return;
  for (const auto& t : tested) {
    const auto& prediction = t.forecast.prediction;
    for (const auto& p : prediction.probes)
      listener->expect(c, fmt::format("{} probe {}", t.name, p.index + 1), t.origin_ms + p.window.earliest_ms);
    listener->expect(c, fmt::format("{} {}", t.name, model_outcome_name(prediction.outcome)),
                     t.origin_ms + prediction.window.earliest_ms);
  }
}

// ---- programs ----------------------------------------------------------------------

// Where a case's programs keep their working directories and output: one directory
// per run, made once. Not named by the pid alone: two runs in two containers (PID
// namespaces) that share $TMPDIR can have the same pid, and the second one's initdb
// then found the first one's data directory.
std::filesystem::path program_run_dir() {
  static const std::filesystem::path dir = [] {
    std::string name = (std::filesystem::temp_directory_path() / fmt::format("kaharness-{}-XXXXXX", ::getpid())).string();
    if (::mkdtemp(name.data()) == nullptr) throw_errno("cannot make the programs' run directory " + name);
    // Programs may run as another user (postgres refuses root): they must reach their own.
    std::filesystem::permissions(name, std::filesystem::perms::owner_all | std::filesystem::perms::group_read |
                                           std::filesystem::perms::group_exec | std::filesystem::perms::others_read |
                                           std::filesystem::perms::others_exec);
    return std::filesystem::path(name);
  }();
  return dir;
}

std::filesystem::path program_dir(const Case& c) { return program_run_dir() / c.name; }

// A passed case's program output is not worth keeping; a failed one's is the evidence.
void remove_program_dir(const Case& c, const CaseResult& result, const RunOptions& options) {
  const bool passed = result.verdict == Verdict::pass || result.verdict == Verdict::skip;
  if (c.programs.empty() || options.keep_workdirs || !passed) return;
  std::error_code ignored;
  std::filesystem::remove_all(program_dir(c), ignored);
  std::filesystem::remove(program_run_dir(), ignored);  // only once empty: the last case's
}

// Until `until_ms`, a stop request, or every program connection ended with each
// program's expectations decided (it exited, or it has none that needs the horizon).
void wait_for_programs(const Case& c, const ProgramSet& set, const ProgramConnectionWatch& watch, double until_ms,
                       std::stop_token stop) {
  const auto decided = [&] {
    for (std::size_t i = 0; i < c.programs.size(); ++i) {
      const auto& e = c.programs[i].expect;
      const bool needs_time = e.alive || e.exit_code || e.exits_within_s || e.output;
      if (needs_time && !set.running[i]->exit()) return false;
    }
    return watch.all_ended();
  };
  while (!stop.stop_requested() && monotonic_ms() < until_ms && !decided())
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
}

// Program connections judged from the program host's capture, then what each program did.
void collect_programs(const Case& c, CaseResult& result, const Topology& topology, const ProgramSet& set,
                      std::vector<ProgramConnection>& conns, const std::optional<CaseCaptures>& seen,
                      const FaultLanding& landing, double until, const RunOptions& options, const JiffyClock* clock,
                      std::optional<double> stopped_at) {
  const double fault_at = landing.begun_ms;
  const double to_realtime = RealtimeSteps::process().reference_ms();
  std::map<Host, evidence::Analysis> analyses;
  if (seen) {
    for (const Host host : {Host::client, Host::server}) {
      auto packets = (host == Host::client ? seen->client : seen->server).packets();
      for (auto& conn : conns)
        if (conn.host == host) place_on_capture(conn, packets, to_realtime, fault_at);
      std::erase_if(packets, [&](const evidence::Packet& p) { return p.t_ms > until + to_realtime; });
      analyses[host] = evidence::analyze(packets);
    }
    // Stopped: `until` is the stop, not the horizon; the windows keep their own horizon
    // (else every connection still open would read as alive at it, not interrupted).
    forecast_program_connections(c, topology, conns, fault_at, options.kernel, clock,
                                 stopped_at ? std::nullopt : std::optional<double>(until));
  }
  for (const auto& conn : conns) {
    auto r = program_connection_result(c, conn, seen ? &analyses[conn.host] : nullptr, to_realtime);
    r.evidence.fault_ms = fault_at - conn.origin_ms;
    r.evidence.origin_monotonic_ms = conn.origin_ms;
    if (stopped_at && !conn.vanished_ms && *stopped_at < conn.origin_ms + conn.forecast.horizon_ms)
      mark_interrupted(r, *stopped_at - conn.origin_ms);
    // A program's connection is made when the program starts, before the case waits
    // its turn to set up: under load the fault can land after the first probe, as for
    // the harness's own connections (fault_landing.h), and that is the harness's
    // failure to set the scene, not the kernel's or the model's.
    std::optional<double> first_probe_seen;
    if (r.evidence.probes_checked && !r.evidence.probe_checks.empty())
      first_probe_seen = r.evidence.probe_checks.front().seen_ms;
    if (r.verdict != Verdict::interrupted)
      if (auto late = fault_landed_late(c.faults.front().kind, landing, conn.origin_ms, r.prediction, first_probe_seen)) {
        r.verdict = Verdict::error;
        r.message = fmt::format("{}: connection {}: {}", conn.spec.where.str(), conn.spec.name, *late);
      }
    doubt_failure(r, conn.spec.where, conn.spec.name, seen,
                  {conn.spec.family, conn.socket.local, conn.socket.remote, conn.socket.local_port,
                   conn.socket.remote_port},
                  conn.origin_ms);
    result.connections.push_back(std::move(r));
  }
  result.programs = program_results(c, set, conns, landing, until, stopped_at);
  for (const auto& line : program_settings_lines(c, conns)) spdlog::info("{}: {}", c.name, line);
}

// Every phase of one case; throws when the case cannot run.
void run_phases(const Case& c, CaseResult& result, Watcher& watcher, evidence::CaptureLoop& captures,
                const RunOptions& options, const JiffyClock* clock, KernelTraceLoop* trace) {
  // Held until the case's world is gone, its fault rules with it: on the shared lo a
  // rule left behind matches the next case on the same ports.
  const auto ports = hold_program_ports(c, options.backend);
  CaseWorld world;
  build(c, captures, options, world);
  // Stopped (reverse order) before the topology goes. Server programs start before the
  // gate (they may take seconds to be ready), client programs in the case's turn.
  const auto stop = options.stop;
  ProgramSet programs(stop);
  const std::size_t before_setup = programs_before_setup(c);
  start_programs(c, *world.topology, program_dir(c), programs, options.program_args, stop, 0, before_setup);
  std::unique_lock setup(setup_gate());
  throw_if_stopped(stop);  // the cases queued at the gate when the run was stopped go no further
  start_programs(c, *world.topology, program_dir(c), programs, options.program_args, stop, before_setup);
  auto tested = connect(c, world);
  // Timers of the harness process (server idle timeouts, delayed writes). Declared
  // after the connections, so it stops before their sockets close.
  Scheduler timeline;
  auto peer = settle(c, tested, timeline);

  auto ends = std::make_shared<Ends>();
  ends->ends.resize(tested.size());
  ends->open = tested.size();
  const auto watch = [&](std::size_t i) {
    watcher.watch(tested[i].client.get(), [ends, i](const SocketEnd& end) {
      std::lock_guard lock(ends->mutex);
      ends->ends[i] = end;
      --ends->open;
      ends->changed.notify_all();
    });
  };
  for (std::size_t i = 0; i < tested.size(); ++i)
    if (tested[i].spec->traffic != Traffic::connecting) watch(i);

  auto program_conns = find_program_connections(c, *world.topology, programs, stop);
  throw_if_stopped(stop);
  const FaultLanding landing = inject(c, world, tested, peer);
  if (clock != nullptr) read_kernel_idle_clocks(tested, options.kernel);
  setup.unlock();
  const double fault_at = landing.begun_ms;
  spdlog::debug("{}: {} applied in {:.1f} ms", c.name, to_string(c.faults.front().kind), landing.done_ms - fault_at);
  count_probes(world, tested);
  auto delayed = std::make_shared<DelayedWrites>();
  delayed->sent.resize(tested.size());
  send(tested, *world.topology, timeline, delayed, watch);

  const auto retransmission = namespace_retransmission(world.topology->ns(Host::client));
  double watch_until = 0;
  for (auto& t : tested) {
    t.forecast = forecast(c, *t.spec, model_input(t, retransmission, options.kernel, clock), facts_of(t, fault_at));
    watch_until = std::max(watch_until, t.origin_ms + t.forecast.horizon_ms);
  }
  announce(c, tested, options.listener);
  forecast_program_connections(c, *world.topology, program_conns, fault_at, options.kernel, clock);
  const double program_until = programs.running.empty() ? 0 : program_watch_until(c, program_conns, fault_at);
  std::optional<ProgramConnectionWatch> program_watch;
  if (!programs.running.empty()) program_watch.emplace(*world.topology, program_conns);

  auto waited = wait(*ends, world.topology->ns(Host::client), tested, watch_until, options.stop);
  if (program_watch) {
    wait_for_programs(c, programs, *program_watch, program_until, options.stop);
    if (options.stop.stop_requested() && !waited.stopped_at_ms) waited.stopped_at_ms = monotonic_ms();
    program_watch.reset();
  }
  for (auto& t : tested) watcher.forget(t.client.get());
  if (auto failure = timeline.failure()) std::rethrow_exception(failure);
  // A delayed write went out a little after its planned instant, or the server's idle
  // close came after its timer's deadline: judge against the window for the actual
  // instant (the horizon stays).
  {
    std::lock_guard lock(delayed->mutex);
    for (std::size_t i = 0; i < tested.size(); ++i) {
      auto& t = tested[i];
      if (!delayed->sent[i].at_ms && t.server_closed->load() == 0) continue;
      if (delayed->sent[i].at_ms) t.sent = delayed->sent[i];
      auto facts = facts_of(t, fault_at);
      facts.horizon_ms = t.forecast.horizon_ms;
      t.forecast = forecast(c, *t.spec, model_input(t, retransmission, options.kernel, clock), facts);
    }
  }

  const auto seen = analyze(world, waited.stopped_at_ms.value_or(std::max(watch_until, program_until)));
  for (auto& t : tested) {
    const auto shift = seen ? origin_from_capture(t, *seen, *world.topology, fault_at) : std::nullopt;
    if (!shift) continue;
    auto facts = facts_of(t, fault_at);
    facts.horizon_ms = t.forecast.horizon_ms - *shift;
    t.forecast = forecast(c, *t.spec, model_input(t, retransmission, options.kernel, clock), facts);
  }
  result.connections = collect(c, world, tested, *ends, std::move(waited), fault_at, seen);
  attach_kernel_timing(result.connections, tested, *world.topology, trace, clock);
  result.counters = middlebox_counters(c, *world.topology, world.ports());
  judge(result, c, *world.topology, tested, landing, seen, options);
  if (!programs.running.empty()) {
    collect_programs(c, result, *world.topology, programs, program_conns, seen, landing,
                     waited.stopped_at_ms.value_or(program_until), options, clock, waited.stopped_at_ms);
    if (!any_interrupted(result.connections)) result.verdict = case_verdict(result.connections, result.survival);
    for (const auto& p : result.programs)
      if (p.verdict != Verdict::pass && result.verdict == Verdict::pass) result.verdict = p.verdict;
  }
  if (options.keep) world.topology->keep(fmt::format("{}-{}", options.keep_prefix, c.name));
}

}  // namespace

CaseResult run_case(const Case& c, Watcher& watcher, evidence::CaptureLoop& captures, const RunOptions& options,
                    const JiffyClock* clock, KernelTraceLoop* trace) {
  CaseResult result;
  result.name = c.name;
  result.description = c.description.empty() ? c.name : c.description;
  result.file = c.file.string();
  const double started = monotonic_ms();
  try {
    if (auto missing = missing_program(c)) {
      result.verdict = Verdict::skip;
      result.reason = *missing;
    } else {
      run_phases(c, result, watcher, captures, options, clock, trace);
    }
  } catch (const StoppedBeforeFault&) {
    result = interrupted_case(c);
  } catch (const std::exception& e) {
    result.verdict = Verdict::error;
    result.error = fmt::format("{}: case {} could not run: {}", c.where.str(), c.name, e.what());
  }
  remove_program_dir(c, result, options);
  result.wall_ms = monotonic_ms() - started;
  return result;
}

RunResult run_cases(const std::vector<Case>& cases, const RunOptions& options) {
  RunResult run;
  utsname u{};
  if (uname(&u) == 0) run.kernel = u.release;
  run.hz = options.kernel.hz;
  run.backend = to_string(options.backend);
  run.cases.resize(cases.size());
  const double started = monotonic_ms();

  raise_fd_limit();
  // Capture stamps are CLOCK_REALTIME: watch for steps of it from here on.
  RealtimeSteps::process().watch();
  const std::int64_t steps_since = monotonic_ns();
  // A CPU the machine stops running makes every timer on it late: watched, so such
  // lateness is told apart from the kernel's and the model's.
  StallWatch::process().watch(options.kernel.hz.value_or(100));  // HZ unknown: the fewest ticks, the fewest stops
  run.stall_watch = StallWatch::process().note();
  std::optional<JiffyClock> clock;
  if (options.calibrate && options.kernel.hz) {
    // The local backend has no namespace of its own for the canary: it runs on lo.
    auto choice = calibrate_jiffies(*options.kernel.hz, options.backend == Backend::local ? CanaryPlace::here
                                                                                           : CanaryPlace::own_namespace);
    clock = std::move(choice.clock);
    run.calibration_note = std::move(choice.note);
  }
  run.calibrated = clock.has_value();
  run.calibration = clock ? clock->method() : "none";
  if (clock && !clock->from_timer_firings() && !clock->grid_known())
    run.calibration_note +=
        std::string(run.calibration_note.empty() ? "" : "; ") +
        "/proc/timer_list shows no tick timer: the earliest tick boundary is fitted from jiffies readings, "
        "which a quick tick can precede by tens of microseconds";
  if (!clock && run.calibration_note.empty())
    run.calibration_note = why_not_calibrated(options.calibrate, options.kernel.hz, in_user_namespace());

  // Before any case connects: the trace must see every socket's SYN_SENT.
  std::optional<KernelTraceLoop> trace;
  if (options.kernel_trace) trace.emplace();
  else run.kernel_trace.note = "off (experimental: --kernel-trace turns it on)";

  const Offers offers = offers_of(options.backend);
  Watcher watcher;
  evidence::CaptureLoop captures;
  std::mutex report_mutex;
  std::atomic<std::size_t> next{0};
  const auto jobs = options.jobs > 0 ? std::min<std::size_t>(static_cast<std::size_t>(options.jobs), cases.size())
                                     : cases.size();
  std::vector<std::thread> workers;
  for (std::size_t w = 0; w < jobs; ++w) {
    workers.emplace_back([&] {
      for (std::size_t i = next++; i < cases.size(); i = next++) {
        if (options.stop.stop_requested()) {
          run.cases[i] = interrupted_case(cases[i]);
          continue;
        }
        if (auto why = skip_reason(cases[i], options.backend, offers)) {
          run.cases[i] = skipped_case(cases[i], std::move(*why));
          if (options.listener != nullptr) {
            std::lock_guard lock(report_mutex);
            options.listener->case_done(run.cases[i]);
          }
          continue;
        }
        if (options.listener != nullptr) {
          std::lock_guard lock(report_mutex);
          options.listener->case_started(cases[i]);
        }
        run.cases[i] = run_case(cases[i], watcher, captures, options, clock ? &*clock : nullptr,
                                trace ? &*trace : nullptr);
        if (options.listener != nullptr) {
          std::lock_guard lock(report_mutex);
          options.listener->case_done(run.cases[i]);
        }
      }
    });
  }
  for (auto& t : workers) t.join();
  if (trace) run.kernel_trace = trace->status();
  run.wall_ms = monotonic_ms() - started;
  run.wakeup_priority = wakeup_priority();
  for (const auto& step : RealtimeSteps::process().steps(steps_since)) run.realtime_steps.push_back(step.describe());
  for (auto& c : run.cases)
    for (auto& r : c.connections)
      if (r.evidence.origin_monotonic_ms) r.evidence.origin_in_run_ms = *r.evidence.origin_monotonic_ms - started;
  for (const auto& s : StallWatch::process().stalls(started, monotonic_ms()))
    run.machine_stalls.push_back(
        fmt::format("CPU {}: {:.1f} ms from {:.1f} ms into the run ({})", s.cpu, s.length_ms(), s.from_ms - started,
                    s.describe()));
  return run;
}

}  // namespace kah
