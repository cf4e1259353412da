#include "harness/run/program_phase.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <limits>
#include <regex>
#include <set>

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <spdlog/spdlog.h>

#include "harness/clock/clock.h"
#include "harness/clock/jiffies.h"
#include "harness/judge/interrupt.h"
#include "harness/judge/judge.h"
#include "harness/judge/program_judge.h"
#include "harness/run/capture_evidence.h"
#include "netns/process.h"

namespace kah {
namespace {

constexpr int kDefaultPort = 7000;         // the harness's own listener port, when no program names one
constexpr double kStampRoundingMs = 0.001;  // a capture stamp's conversion error, rounded up (capture.h)
constexpr double kPollMs = 5;              // sock_diag sampling of program connections after the fault
constexpr double kStartPollMs = 20;        // while waiting for a port or a connection
constexpr std::size_t kOutputKept = 30;    // lines of a program's output in the results
constexpr double kExpectationSlackMs = 500;  // watched past the last instant an expectation names

void sleep_ms(double ms) { std::this_thread::sleep_for(std::chrono::microseconds(static_cast<long>(ms * 1000))); }

[[noreturn]] void program_failed(const ProgramSpec& p, const std::string& what) {
  throw std::runtime_error(fmt::format("{}: program {}: {}", p.where.str(), p.name, what));
}

Host other_host(Host h) { return h == Host::client ? Host::server : Host::client; }

std::string endpoint(const std::string& address, std::uint16_t port) {
  return address.find(':') != std::string::npos ? fmt::format("[{}]:{}", address, port)
                                                : fmt::format("{}:{}", address, port);
}

std::string why_it_stopped(const RunningProgram& program) {
  const auto exit = program.exit();
  if (!exit) return "";
  return fmt::format("it exited with status {}; its last output: {}", exit->status, program.tail(5));
}

void wait_for_port(const ProgramSpec& p, const RunningProgram& program, const netns::Namespace& ns, double deadline,
                   const std::stop_token& stop) {
  for (;;) {
    throw_if_stopped(stop);
    for (const auto& s : netns::listening_sockets(ns))
      if (s.local_port == *p.ready.port) return;
    if (program.exit()) program_failed(p, fmt::format("exited before port {} listened: {}", *p.ready.port,
                                                      why_it_stopped(program)));
    if (monotonic_ms() > deadline)
      program_failed(p, fmt::format("port {} did not listen within {} s (ready.timeout_s); its last output: {}",
                                    *p.ready.port, p.ready.timeout_s, program.tail(5)));
    sleep_ms(kStartPollMs);
  }
}

// The ready line, looked for in slices so that a stop is seen within kStopSliceMs.
bool wait_for_ready_line(const ProgramSpec& p, const RunningProgram& program, double deadline,
                         const std::stop_token& stop) {
  constexpr double kStopSliceMs = 100;
  const std::regex pattern(*p.ready.line);
  for (;;) {
    throw_if_stopped(stop);
    const double slice = std::min(deadline, monotonic_ms() + kStopSliceMs);
    if (program.wait_for_line(pattern, slice)) return true;
    if (program.exit() || slice >= deadline) return false;
  }
}

void wait_until_ready(const ProgramSpec& p, const RunningProgram& program, const netns::Namespace& ns,
                      const std::stop_token& stop) {
  const double deadline = monotonic_ms() + 1000 * p.ready.timeout_s;
  if (p.ready.port) wait_for_port(p, program, ns, deadline, stop);
  if (p.ready.line && !wait_for_ready_line(p, program, deadline, stop)) {
    if (program.exit())
      program_failed(p, fmt::format("exited before a line matched \"{}\": {}", *p.ready.line, why_it_stopped(program)));
    program_failed(p, fmt::format("no line matched \"{}\" within {} s (ready.timeout_s); its last output: {}",
                                  *p.ready.line, p.ready.timeout_s, program.tail(5)));
  }
  if (p.ready.delay_ms > 0) sleep_ms(p.ready.delay_ms);
  if (program.exit()) program_failed(p, fmt::format("exited while starting: {}", why_it_stopped(program)));
}

// Whether `ns` is the namespace the harness runs in (backend local: both hosts on its
// lo). Its programs are then held by a warden, without setns or a PID namespace.
bool is_own_namespace(const netns::Namespace& ns) {
  struct stat own {}, host {};
  if (::stat("/proc/thread-self/ns/net", &own) != 0) throw_errno("cannot read /proc/thread-self/ns/net");
  if (::fstat(ns.fd(), &host) != 0) throw_errno(fmt::format("cannot read namespace {}", ns.label()));
  return own.st_dev == host.st_dev && own.st_ino == host.st_ino;
}

// Which port a program's judged connections use when both hosts share one namespace
// (and one address): a server program's own port, a client program's server port.
struct PortMatch {
  bool local = true;
  std::uint16_t port = 0;
};

// The program's established connections to `peer_addresses`, by the inodes its
// processes hold (and by `port`, when given).
std::vector<std::pair<netns::SocketTimer, netns::HeldSocket>> connections_of(
    const RunningProgram& program, const netns::Namespace& ns, const std::set<std::string>& peer_addresses,
    std::optional<PortMatch> port) {
  std::map<std::uint64_t, netns::HeldSocket> held;
  for (const auto& h : netns::sockets_held(netns::process_tree(program.pid()))) held.emplace(h.inode, h);
  std::vector<std::pair<netns::SocketTimer, netns::HeldSocket>> found;
  for (const auto& s : netns::socket_timers(ns)) {
    const auto it = held.find(s.inode);
    if (port && (port->local ? s.local_port : s.remote_port) != port->port) continue;
    if (s.state == TCP_ESTABLISHED && it != held.end() && peer_addresses.contains(s.remote))
      found.emplace_back(s, it->second);
  }
  std::sort(found.begin(), found.end(), [](const auto& a, const auto& b) {
    return std::tie(a.first.local_port, a.first.remote_port) < std::tie(b.first.local_port, b.first.remote_port);
  });
  return found;
}

ProgramConnection read_connection(std::size_t index, const ProgramSpec& p, int n, const netns::SocketTimer& socket,
                                  const netns::HeldSocket& held) {
  ProgramConnection conn;
  conn.program = index;
  conn.host = p.host;
  conn.spec.name = fmt::format("{}-{}", p.name, n);
  conn.spec.family = socket.family == AF_INET6 ? Family::ipv6 : Family::ipv4;
  conn.spec.where = p.where;
  conn.socket = socket;
  // Borrowed only for these reads: holding it would keep the socket open past the
  // program's own close().
  const UniqueFd fd = netns::borrow_fd(held);
  conn.keepalive = read_keepalive(fd.get());
  conn.tcp = retransmission_state(fd.get());
  conn.origin_ms = monotonic_ms() - ms_since_last_received(fd.get());
  conn.idle_clock = read_idle_clocks({fd.get()}).front();
  return conn;
}

}  // namespace

ProgramSet::~ProgramSet() {
  for (auto it = running.rbegin(); it != running.rend(); ++it)
    if (*it) {
      if (stop.stop_requested()) (*it)->stop(kStoppedGraceMs);
      else (*it)->stop();
    }
}

Placeholders placeholders_for(const Case& c, const ProgramSpec& program, const Topology& topology,
                              const std::filesystem::path& workdir) {
  int port = kDefaultPort;
  if (program.port) {
    port = *program.port;
  } else {
    for (const auto& other : c.programs)
      if (other.host == Host::server && other.port) {
        port = *other.port;
        break;
      }
  }
  return {
      {"server", topology.address(Host::server, program.family)},
      {"client", topology.address(Host::client, program.family)},
      {"server4", topology.address(Host::server, Family::ipv4)},
      {"server6", topology.address(Host::server, Family::ipv6)},
      {"client4", topology.address(Host::client, Family::ipv4)},
      {"client6", topology.address(Host::client, Family::ipv6)},
      {"port", std::to_string(port)},
      {"family", program.family == Family::ipv6 ? "6" : "4"},
      {"workdir", workdir.string()},
      {"name", program.name},
  };
}

std::optional<std::string> missing_program(const Case& c) {
  for (const auto& p : c.programs)
    if (p.missing) return p.missing;
  return std::nullopt;
}

std::size_t programs_before_setup(const Case& c) {
  std::size_t i = 0;
  while (i < c.programs.size() && c.programs[i].host != Host::client) ++i;
  return i;
}

void start_programs(const Case& c, const Topology& topology, const std::filesystem::path& dir, ProgramSet& set,
                    const ProgramArgs& extra, const std::stop_token& stop, std::size_t from, std::size_t to) {
  for (std::size_t i = from; i < std::min(to, c.programs.size()); ++i) {
    throw_if_stopped(stop);
    const auto& p = c.programs[i];
    const auto workdir = dir / p.name;
    std::filesystem::create_directories(workdir);
    const auto values = placeholders_for(c, p, topology, workdir);
    Launch launch;
    launch.name = p.name;
    try {
      for (const auto& word : p.command) launch.argv.push_back(expand_placeholders(word, values));
      if (const auto more = extra.find(p.name); more != extra.end())
        for (const auto& word : more->second) launch.argv.push_back(expand_placeholders(word, values));
      for (const auto& [key, value] : p.env) launch.env[key] = expand_placeholders(value, values);
    } catch (const std::invalid_argument& e) {
      program_failed(p, e.what());
    }
    launch.executable = p.executable;
    if (launch.executable.empty()) {
      const auto found = find_executable(launch.argv.front(), "", c.file.parent_path());
      if (!found) program_failed(p, missing_executable_message(launch.argv.front()));
      launch.executable = *found;
    }
    launch.workdir = workdir;
    launch.ns = &topology.ns(p.host);
    launch.pid_namespace = !is_own_namespace(*launch.ns);
    spdlog::debug("{}: starting {} on the {}: {}", c.name, p.name, to_string(p.host), fmt::join(launch.argv, " "));
    set.argv.push_back(launch.argv);
    set.running.push_back(RunningProgram::start(launch));
    wait_until_ready(p, *set.running.back(), topology.ns(p.host), stop);
    set.ready_ms.push_back(monotonic_ms());
  }
}

std::vector<ProgramConnection> find_program_connections(const Case& c, const Topology& topology,
                                                        const ProgramSet& set, const std::stop_token& stop) {
  std::vector<ProgramConnection> conns;
  for (std::size_t i = 0; i < c.programs.size(); ++i) {
    const auto& p = c.programs[i];
    if (p.connections == 0) continue;
    const auto& program = *set.running[i];
    const auto& ns = topology.ns(p.host);
    const Host peer = other_host(p.host);
    const std::set<std::string> peer_addresses = {topology.address(peer, Family::ipv4),
                                                  topology.address(peer, Family::ipv6)};
    // One namespace for both hosts (local): the peer's address is the program's own,
    // so the port tells its connections to the other host from any other.
    std::optional<PortMatch> port;
    if (&ns == &topology.ns(peer)) {
      const auto values = placeholders_for(c, p, topology, {});
      port = PortMatch{p.host == Host::server, static_cast<std::uint16_t>(std::stoi(values.at("port")))};
    }
    const double deadline = monotonic_ms() + 1000 * p.ready.timeout_s;
    auto found = connections_of(program, ns, peer_addresses, port);
    while (found.size() < static_cast<std::size_t>(p.connections)) {
      throw_if_stopped(stop);
      if (program.exit() || monotonic_ms() > deadline)
        program_failed(p, fmt::format("expected {} connection(s) to the {}, found {} {}; its last output: {}",
                                      p.connections, to_string(peer), found.size(),
                                      program.exit() ? "before it exited" : fmt::format("within {} s", p.ready.timeout_s),
                                      program.tail(5)));
      sleep_ms(kStartPollMs);
      found = connections_of(program, ns, peer_addresses, port);
    }
    for (int n = 0; n < p.connections; ++n) {
      const auto& [socket, held] = found[static_cast<std::size_t>(n)];
      conns.push_back(read_connection(i, p, n + 1, socket, held));
    }
  }
  return conns;
}

double forecast_program_connections(const Case& c, const Topology& topology, std::vector<ProgramConnection>& conns,
                                    double fault_at, const model::Kernel& kernel, const JiffyClock* clock,
                                    std::optional<double> keep_horizon_ms) {
  double until = 0;
  for (auto& conn : conns) {
    const Host host = conn.host;
    model::Input in;
    in.keepalive = model_keepalive(conn.keepalive);
    in.kernel = kernel;
    // Before the capture places t = 0, TCP_INFO gives it in whole jiffies.
    const bool placed = conn.armed_at_ms != 0;
    if (clock != nullptr && placed) {
      in.kernel.calibration = clock->at(conn.origin_ms);
      use_idle_clock(in, conn.idle_clock, conn.origin_ms);
    }
    if (!placed) in.kernel.receive_delay_ms = std::max(in.kernel.receive_delay_ms, 1000.0 / kernel.hz.value_or(100));
    const auto namespace_settings = namespace_retransmission(topology.ns(host));
    in.retransmission = namespace_settings;
    in.retransmission.first_rto_ms = std::max(namespace_settings.rto_min_ms, conn.tcp.rto_ms);
    in.retransmission.srtt_ms = conn.tcp.srtt_ms;
    in.retransmission.sack = conn.tcp.sack;
    in.retransmission.pacing_delay_jiffies = conn.tcp.paced ? 1 : 0;
    in.traffic = model::Traffic::idle;
    in.armed_at_ms = conn.armed_at_ms;
    ConnectionFacts facts;
    facts.family = conn.spec.family;
    facts.fault_at_ms = fault_at - conn.origin_ms;
    if (keep_horizon_ms) facts.horizon_ms = *keep_horizon_ms - conn.origin_ms;
    if (conn.data_sent_ms) {
      // The program wrote into the fault: its data stays unacknowledged and the
      // retransmission timer decides. The capture stamps the segment on its way out;
      // the kernel arms the timer right after sending it.
      in.traffic = model::Traffic::data_in_flight;
      conn.spec.traffic = Traffic::sending;
      facts.send_at_ms = *conn.data_sent_ms - conn.origin_ms;
      in.sent_by_ms = *facts.send_at_ms + in.kernel.receive_delay_ms;
    }
    // A server program that closes idle connections: its peers read EOF (its last
    // write left at most half a round trip before this side received it).
    Case with_close;
    const Case* modelled = &c;
    if (const auto idle_close = peer_idle_close_s(c, host, conn.socket.remote_port)) {
      with_close = c;
      with_close.server.idle_close_s = *idle_close;
      facts.server_activity_ms = -in.kernel.rtt_ms / 2;
      modelled = &with_close;
      // Once the capture shows the server's FIN: the program closed then, as the
      // harness's own server application's close() is measured. Its timer is its own,
      // not the kernel's (scanner-stale-connection's Python server closed 48 ms late
      // with two runs on the machine): the window counts from the FIN, and the steps
      // say how late it was. A FIN before its idle timeout is not taken: the window
      // stays the timer's, and the early end fails.
      // The EOF is timed by that same FIN, converted from realtime in another order of
      // operations: the close counts from 1 us before it (a realtime ms double resolves
      // 0.24 us; capture.h), or the EOF could land a rounding before its own window.
      const double due = facts.server_activity_ms + 1000.0 * *idle_close;
      if (conn.fin && !conn.fin->by_local && conn.fin->t_ms - conn.origin_ms >= due)
        facts.server_closed_ms = conn.fin->t_ms - conn.origin_ms - kStampRoundingMs;
    }
    conn.forecast = forecast(*modelled, conn.spec, in, facts);
    until = std::max(until, conn.origin_ms + conn.forecast.horizon_ms);
  }
  return until;
}

bool is_orphan_of(const netns::SocketTimer& s, const netns::SocketTimer& conn) {
  const bool closing = s.state == TCP_FIN_WAIT1 || s.state == TCP_FIN_WAIT2 || s.state == TCP_CLOSING ||
                       s.state == TCP_LAST_ACK || s.state == TCP_TIME_WAIT;
  return closing && s.inode == 0 && s.local == conn.local && s.local_port == conn.local_port &&
         s.remote == conn.remote && s.remote_port == conn.remote_port;
}

ProgramConnectionWatch::ProgramConnectionWatch(const Topology& topology, std::vector<ProgramConnection>& conns)
    : topology_(topology), conns_(conns) {
  for (const auto& conn : conns_)
    if (!lookups_.contains(conn.host)) lookups_.emplace(conn.host, netns::SocketLookup(topology_.ns(conn.host)));
  thread_ = std::jthread([this](std::stop_token stop) {
    while (!stop.stop_requested() && !all_ended()) {
      sample();
      sleep_ms(kPollMs);
    }
  });
}

ProgramConnectionWatch::~ProgramConnectionWatch() {
  thread_.request_stop();
  if (thread_.joinable()) thread_.join();
}

bool ProgramConnectionWatch::all_ended() const {
  std::lock_guard lock(mutex_);
  return std::all_of(conns_.begin(), conns_.end(), [](const ProgramConnection& c) { return c.vanished_ms.has_value(); });
}

void ProgramConnectionWatch::sample() {
  // The watched connections never change and only this thread writes them: read them
  // without the lock, write under it.
  for (std::size_t i = 0; i < conns_.size(); ++i) {
    const ProgramConnection& conn = conns_[i];
    if (conn.vanished_ms) continue;
    const auto& s = conn.socket;
    // The answer shows the socket at some instant inside the request: present means
    // present at its start at the latest, absent means gone by its end at the earliest.
    const double before = monotonic_ms();
    std::optional<netns::SocketTimer> found;
    try {
      found = lookups_.at(conn.host).find(s.family, s.local, s.local_port, s.remote, s.remote_port);
    } catch (const std::exception& e) {
      spdlog::debug("{}: sock_diag: {}", conn.spec.name, e.what());
      continue;  // asked again next round
    }
    const double after = monotonic_ms();
    // A socket the kernel has ended (tcp_done(): ETIMEDOUT, a reset) stays in state
    // CLOSE until the program closes its descriptor, which a busy program may do a
    // second later (psql under the local backend): the connection ended when it left
    // every other state. The same 4-tuple with another inode is another socket.
    const bool open = found && found->inode != 0 && found->inode == s.inode && found->state != TCP_CLOSE;
    std::lock_guard lock(mutex_);
    auto& mine = conns_[i];
    if (open) {
      mine.last_seen_ms = before;
      continue;
    }
    mine.vanished_ms = after;
    mine.orphaned = found && is_orphan_of(*found, s);
  }
}

double program_watch_until(const Case& c, const std::vector<ProgramConnection>& conns, double fault_at) {
  double until = 0;
  for (const auto& conn : conns) until = std::max(until, conn.origin_ms + conn.forecast.horizon_ms);
  for (std::size_t i = 0; i < c.programs.size(); ++i) {
    const auto& e = c.programs[i].expect;
    // What its times count from: the fault, or its connections' earliest last
    // received segment (the fault when none was found: it is judged an error then).
    std::optional<double> from;
    if (e.counted_from == CountedFrom::last_received)
      for (const auto& conn : conns)
        if (conn.program == i) from = from ? std::min(*from, conn.origin_ms) : conn.origin_ms;
    for (const auto s : {e.exits_within_s, e.output_to_s})
      if (s) until = std::max(until, from.value_or(fault_at) + 1000 * *s + kExpectationSlackMs);
  }
  if (until == 0) until = fault_at + 1000 * c.horizon_s.value_or(5);
  return until;
}

namespace {

bool sent_by(const evidence::Packet& p, const netns::SocketTimer& s) {
  return p.src == s.local && p.sport == s.local_port && p.dst == s.remote && p.dport == s.remote_port;
}

bool received_by(const evidence::Packet& p, const netns::SocketTimer& s) {
  return p.dst == s.local && p.dport == s.local_port && p.src == s.remote && p.sport == s.remote_port;
}

}  // namespace

std::optional<ConnectionClose> first_fin(const std::vector<evidence::Packet>& packets, const netns::SocketTimer& s) {
  for (const auto& p : packets) {
    const bool local = sent_by(p, s);
    if (!local && !received_by(p, s)) continue;
    if (p.has(evidence::tcp_flag::rst)) return std::nullopt;
    if (p.has(evidence::tcp_flag::fin)) return ConnectionClose{local, p.t_ms};
  }
  return std::nullopt;
}

// The first data the program's side sent after `after_ms` that the peer never
// acknowledged: data it did acknowledge went out before the fault took effect (a rule
// can land a while after its commit began: under the local backend a full run's cases
// contend for libnftables), and the connection lived on to its next write.
std::optional<double> first_data_sent(const std::vector<evidence::Packet>& packets, const netns::SocketTimer& s,
                                      double after_ms, double before_ms) {
  for (const auto& p : packets) {
    if (!sent_by(p, s) || p.payload_len == 0 || p.has(evidence::tcp_flag::rst) || p.t_ms <= after_ms ||
        p.t_ms >= before_ms)
      continue;
    const std::uint32_t end = p.seq + p.payload_len;
    const bool acknowledged = std::any_of(packets.begin(), packets.end(), [&](const evidence::Packet& r) {
      return received_by(r, s) && r.t_ms > p.t_ms && r.has(evidence::tcp_flag::ack) &&
             static_cast<std::int32_t>(r.ack - end) >= 0;
    });
    if (!acknowledged) return p.t_ms;
  }
  return std::nullopt;
}

std::optional<double> peer_idle_close_s(const Case& c, Host host, std::uint16_t remote_port) {
  if (host != Host::client) return std::nullopt;
  for (const auto& p : c.programs)
    if (p.host == Host::server && p.idle_close_s && p.port && *p.port == remote_port) return p.idle_close_s;
  return std::nullopt;
}

void place_on_capture(ProgramConnection& conn, const std::vector<evidence::Packet>& host_packets,
                      double to_realtime_ms, double fault_at) {
  const auto& s = conn.socket;
  // How it ended (a FIN before any RST) and whether the program's side sent data into
  // the fault before that: data sent after the connection ended is not in flight.
  if (const auto fin = first_fin(host_packets, s)) conn.fin = ConnectionClose{fin->by_local, fin->t_ms - to_realtime_ms};
  const double ended = conn.fin ? conn.fin->t_ms + to_realtime_ms : std::numeric_limits<double>::infinity();
  const auto sent = first_data_sent(host_packets, s, fault_at + to_realtime_ms, ended);
  if (sent) conn.data_sent_ms = *sent - to_realtime_ms;
  // t = 0: the last segment received before the fault, or before the data sent into it
  // when answers to earlier data came after the fault's commit began.
  const double received_until = std::max(fault_at + to_realtime_ms, sent.value_or(0));
  std::optional<double> first, last;
  for (const auto& p : host_packets) {
    if (!received_by(p, s) || p.has(evidence::tcp_flag::rst) || p.t_ms > received_until) continue;
    // The handshake's last segment for this side: the SYN-ACK (client) or the ACK of it (server).
    const bool bare_syn = p.has(evidence::tcp_flag::syn) && !p.has(evidence::tcp_flag::ack);
    if (!first && !bare_syn) first = p.t_ms;
    if (!last || p.t_ms > *last) last = p.t_ms;
  }
  if (!last || !first) return;
  conn.origin_ms = *last - to_realtime_ms;
  // The program set its keepalive options right after the handshake (as the programs
  // of cases/programs/ do): the timer then runs from the handshake's last segment.
  // Exactly 0 means "unknown" to the model; a connection idle since its handshake has
  // the timer armed at t = 0 itself, which a tiny offset keeps distinct.
  conn.armed_at_ms = std::min(*first - *last, -1e-6);
}

ConnectionResult program_connection_result(const Case& c, const ProgramConnection& conn,
                                           const evidence::Analysis* host_analysis, double to_realtime_ms) {
  ConnectionResult r;
  r.name = conn.spec.name;
  r.family = conn.spec.family;
  r.where = conn.spec.where;
  r.model_input = conn.forecast.input;
  r.prediction = conn.forecast.prediction;
  r.expected.outcome = c.expect.outcome;
  r.expected.deadline_ms = c.expect.deadline_ms;
  r.expected.model_outcome = r.prediction.outcome;
  r.expected.window = r.prediction.window;
  r.expected.errno_name = c.expect.errno_name;
  r.expected.model_errno = r.prediction.errno_name;
  const auto& s = conn.socket;
  const FlowKey key{conn.spec.family, s.local, s.remote, s.local_port, s.remote_port};
  const evidence::FlowAnalysis* flow =
      host_analysis ? evidence::find_flow(*host_analysis, {s.local, s.local_port}, {s.remote, s.remote_port}) : nullptr;
  if (conn.fin) {
    // A FIN before any RST: the program (closed) or its peer's application (eof)
    // ended the connection; the capture times it.
    r.observed.outcome = conn.fin->by_local ? ObservedOutcome::closed : ObservedOutcome::eof;
    r.observed.at_ms = conn.fin->t_ms - conn.origin_ms;
    r.observed.timed_by = "capture";
  } else if (conn.vanished_ms && conn.orphaned) {
    // The program closed it with its FIN still queued (behind unacknowledged data):
    // timed by the sock_diag sample that first listed it as an orphan.
    r.observed.outcome = ObservedOutcome::closed;
    r.observed.at_ms = *conn.vanished_ms - conn.origin_ms;
    r.observed.timed_by = "sock_diag";
    if (conn.last_seen_ms > 0) r.observed.open_until_ms = conn.last_seen_ms - conn.origin_ms;
  } else if (conn.vanished_ms) {
    // Gone from sock_diag: the capture says how (the kernel's RST when keepalive gave
    // up, or the peer's RST).
    const auto end = flow ? flow->end : evidence::FlowEnd::capture_end;
    r.observed.outcome = end == evidence::FlowEnd::reset_by_peer ? ObservedOutcome::reset
                         : end == evidence::FlowEnd::closed      ? ObservedOutcome::error
                                                                 : ObservedOutcome::timeout;
    // No RST and no FIN at all, and no orphan left: the kernel's retransmission timer
    // gave up (it sends nothing then, unlike keepalive). Under the faults judged for
    // programs no ICMP error can stand in for the error: ETIMEDOUT.
    const bool silent_end = flow != nullptr && end == evidence::FlowEnd::capture_end;
    r.observed.errno_name = end == evidence::FlowEnd::reset_by_peer                       ? "ECONNRESET"
                            : end == evidence::FlowEnd::reset_by_prober || silent_end ? "ETIMEDOUT"
                                                                                          : "";
    r.observed.at_ms = *conn.vanished_ms - conn.origin_ms;
    r.observed.timed_by = "sock_diag";
    if (conn.last_seen_ms > 0) r.observed.open_until_ms = conn.last_seen_ms - conn.origin_ms;
  } else {
    r.observed.outcome = ObservedOutcome::alive;
    r.observed.at_ms = conn.forecast.horizon_ms;
  }
  if (host_analysis != nullptr) {
    const bool schedule_known = r.prediction.outcome != model::Outcome::eof;
    attach_capture_evidence(r, *host_analysis, key, conn.origin_ms + to_realtime_ms, schedule_known);
  }
  judge_connection(r);
  return r;
}

std::vector<ProgramResult> program_results(const Case& c, const ProgramSet& set,
                                           const std::vector<ProgramConnection>& conns, const FaultLanding& landing,
                                           double watch_until, std::optional<double> stopped_at) {
  const double fault_at = landing.begun_ms;
  std::vector<ProgramResult> results;
  for (std::size_t i = 0; i < c.programs.size() && i < set.running.size(); ++i) {
    const auto& spec = c.programs[i];
    const auto& program = *set.running[i];
    ProgramResult r;
    r.name = spec.name;
    r.host = to_string(spec.host);
    r.command = set.argv[i];
    r.where = spec.where;
    r.pid = program.pid();
    r.started_ms = program.started_ms() - fault_at;
    if (i < set.ready_ms.size() && set.ready_ms[i]) r.ready_ms = *set.ready_ms[i] - fault_at;
    if (const auto exit = program.exit()) {
      r.exit_status = exit->status;
      r.exited_ms = exit->at_ms - fault_at;
      r.keeper_reaped_ms = exit->reaped_ms - fault_at;
    }
    r.stopped_by_harness = !r.exit_status;
    for (const auto& conn : conns) {
      if (conn.program != i) continue;
      const double received = conn.origin_ms - fault_at;
      r.last_received_ms = r.last_received_ms ? std::min(*r.last_received_ms, received) : received;
      const auto& s = conn.socket;
      r.sockets.push_back({conn.spec.name, endpoint(s.local, s.local_port), endpoint(s.remote, s.remote_port),
                           conn.keepalive.enabled, conn.keepalive.idle_s, conn.keepalive.interval_s,
                           conn.keepalive.count, conn.keepalive.user_timeout_ms});
    }
    for (const auto& line : program.lines()) r.output.push_back({line.at_ms - fault_at, line.stream, line.text});
    r.stdout_file = program.stdout_file().string();
    r.stderr_file = program.stderr_file().string();
    judge_program(r, spec.expect, watch_until - fault_at, landing.done_ms - landing.begun_ms);
    // Stopped before its horizon while still running: what it was still to do (a line,
    // its exit) is not known. (A failure already certain then, an early line say, is
    // not told apart here: the program reads as interrupted.)
    if (stopped_at && !r.exit_status && r.verdict == Verdict::fail) r.verdict = Verdict::interrupted;
    if (r.output.size() > kOutputKept) r.output.erase(r.output.begin(), r.output.end() - kOutputKept);
    results.push_back(std::move(r));
  }
  return results;
}

std::vector<std::string> program_settings_lines(const Case& c, const std::vector<ProgramConnection>& conns) {
  std::vector<std::string> lines;
  for (const auto& conn : conns) {
    const auto& p = c.programs[conn.program];
    const auto& s = conn.socket;
    SocketSettings settings{conn.spec.name, "", "", conn.keepalive.enabled, conn.keepalive.idle_s,
                            conn.keepalive.interval_s, conn.keepalive.count, conn.keepalive.user_timeout_ms};
    lines.push_back(fmt::format("{}'s connection {} {}: {}", p.name, p.host == Host::server ? "from" : "to",
                                endpoint(s.remote, s.remote_port), describe_settings(settings)));
  }
  return lines;
}

}  // namespace kah
