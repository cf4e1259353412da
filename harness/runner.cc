#include "harness/runner.h"

#include <sys/socket.h>
#include <sys/utsname.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <set>
#include <thread>

#include <unistd.h>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "harness/capture_evidence.h"
#include "harness/clock_canary.h"
#include "harness/endpoints.h"
#include "harness/evidence/capture.h"
#include "harness/faults.h"
#include "harness/judge.h"
#include "harness/kernel_info.h"
#include "harness/nft.h"
#include "harness/nft_rules.h"
#include "harness/plan.h"
#include "harness/progress.h"
#include "harness/scheduler.h"
#include "harness/server_app.h"
#include "harness/topology.h"
#include "harness/watcher.h"
#include "netns/sockdiag.h"

namespace kah {
namespace {

const char* model_outcome_name(model::Outcome o) {
  switch (o) {
    case model::Outcome::timeout: return "timeout";
    case model::Outcome::reset: return "reset";
    case model::Outcome::alive: return "horizon";
    case model::Outcome::eof: return "eof";
  }
  return "?";
}

constexpr std::uint16_t kServerPort = 7000;
constexpr double kIdleTimeoutMs = 2000;       // for the last ACK of the exchange to arrive

// One tested connection: a copy of a [[connection]].
struct Instance {
  const ConnectionSpec* spec = nullptr;
  std::string name;
  UniqueFd client;
  Established link;  // empty for Traffic::connecting until after the fault
  EffectiveKeepalive keepalive;
  double origin_ms = 0;  // time zero of every window: the last received segment, or the connect() call
  model::Input model_input;
  Forecast forecast;
};

// When delayed writes (send_after_s) actually went out, filled on the Scheduler's thread.
struct SentTimes {
  std::mutex mutex;
  std::vector<std::optional<double>> at_ms;  // just before send()
  std::vector<std::optional<double>> by_ms;  // just after it returned: the kernel sent it in between
};

// What the Watcher reports, shared with its callbacks (which may outlive a wait).
struct Ends {
  std::mutex mutex;
  std::condition_variable changed;
  std::vector<std::optional<SocketEnd>> ends;
  std::size_t open = 0;
};

std::string instance_name(const ConnectionSpec& spec, int copy) {
  return spec.copies == 1 ? spec.name : fmt::format("{}#{}", spec.name, copy + 1);
}

model::Traffic model_traffic(Traffic t) {
  switch (t) {
    case Traffic::idle: return model::Traffic::idle;
    case Traffic::sending: return model::Traffic::data_in_flight;
    case Traffic::connecting: return model::Traffic::connecting;
  }
  return model::Traffic::idle;
}

// The socket's side of the model's input; the path's side comes from plan.h.
model::Input model_input(const Instance& inst, const model::Kernel& kernel,
                         const model::Retransmission& retransmission) {
  model::Input in;
  in.keepalive.enabled = inst.keepalive.enabled;
  in.keepalive.idle_s = inst.keepalive.idle_s;
  in.keepalive.interval_s = inst.keepalive.interval_s;
  in.keepalive.count = inst.keepalive.count;
  in.keepalive.user_timeout_ms = inst.keepalive.user_timeout_ms;
  in.kernel = kernel;
  in.retransmission = retransmission;
  in.traffic = model_traffic(inst.spec->traffic);
  if (inst.spec->traffic != Traffic::connecting) {
    in.armed_at_ms = inst.link.established_ms - inst.link.last_received_ms;
    // The kernel armed the keepalive timer when the handshake completed, somewhere
    // between connect()'s call and its return; a loaded machine can stretch that
    // bracket past the model's default uncertainty, and the arming jiffy with it.
    in.kernel.receive_delay_ms =
        std::max(in.kernel.receive_delay_ms, inst.link.established_ms - inst.link.connect_started_ms);
  }
  return in;
}

// The namespace's retransmission settings, as the client's kernel will use them.
model::Retransmission retransmission_settings(const netns::Namespace& client) {
  model::Retransmission r;
  r.retries2 = std::stoi(client.read_sysctl("net.ipv4.tcp_retries2"));
  r.syn_retries = std::stoi(client.read_sysctl("net.ipv4.tcp_syn_retries"));
  r.early_retrans = std::stoi(client.read_sysctl("net.ipv4.tcp_early_retrans"));
  return r;
}

// Data that stays unacknowledged once the peer is gone (Traffic::sending).
constexpr char kPayload[] = "data the peer never acknowledges";

// What a fault acts on: the server's sockets, the peer process, the flows.
FaultTargets fault_targets(std::vector<Instance>& instances, std::optional<PeerProcess>& peer_app,
                           const Topology& topology) {
  FaultTargets t;
  if (peer_app) t.peer_app = &*peer_app;
  for (auto& inst : instances) {
    if (inst.link.server) t.server_sockets.push_back(&inst.link.server);
    if (inst.link.client_port != 0)
      t.flows.push_back({topology.address(Host::client, inst.spec->family), inst.link.client_port,
                         topology.address(Host::server, inst.spec->family), kServerPort});
  }
  return t;
}

// Writes the payload at `when_ms` (a request after an idle period); a connection that
// has already ended just refuses it (MSG_NOSIGNAL: no SIGPIPE).
void schedule_write(Scheduler& scheduler, int fd, double when_ms, std::shared_ptr<SentTimes> sent, std::size_t i) {
  scheduler.at(when_ms, [fd, sent, i] {
    const double before = monotonic_ms();
    if (::send(fd, kPayload, sizeof kPayload, MSG_NOSIGNAL) < 0) return;
    const double after = monotonic_ms();
    std::lock_guard lock(sent->mutex);
    sent->at_ms[i] = before;
    sent->by_ms[i] = after;
  });
}

ConnectionFacts facts_of(const Instance& inst, double fault_at, std::optional<double> send_at) {
  ConnectionFacts f;
  f.family = inst.spec->family;
  f.fault_at_ms = fault_at - inst.origin_ms;
  f.server_activity_ms = inst.link.server_activity_ms - inst.origin_ms;
  if (send_at) f.send_at_ms = *send_at - inst.origin_ms;
  return f;
}

constexpr double kTimerSampleMs = 250;  // how often the kernel's timers are sampled

// Samples what the kernel says of each client socket's timer (as `ss -o` shows it),
// matched to the connections by local port, in ms from each connection's origin.
class TimerSampler {
 public:
  TimerSampler(const netns::Namespace& client, const std::vector<Instance>& instances)
      : client_(client), instances_(instances), samples_(instances.size()) {
    for (std::size_t i = 0; i < instances.size(); ++i)
      if (instances[i].link.client_port != 0) by_port_[instances[i].link.client_port] = i;
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
      samples_[it->second].push_back({now - instances_[it->second].origin_ms, std::string(netns::to_string(t.timer)),
                                      static_cast<double>(t.expires_ms), t.counter});
    }
  }

  std::vector<std::vector<evidence::TimerSample>> take() { return std::move(samples_); }

 private:
  const netns::Namespace& client_;
  const std::vector<Instance>& instances_;
  std::map<std::uint16_t, std::size_t> by_port_;
  std::vector<std::vector<evidence::TimerSample>> samples_;
};

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

}  // namespace

CaseResult run_case(const Case& c, Watcher& watcher, evidence::CaptureLoop& captures, const RunOptions& options,
                    const JiffyClock* clock) {
  CaseResult result;
  result.name = c.name;
  result.file = c.file.string();
  const double started = monotonic_ms();
  try {
    const FaultSpec fault = c.faults.empty() ? FaultSpec{} : c.faults.front();
    auto topology = build_topology(c);
    const auto& client_ns = topology->ns(Host::client);
    const auto& server_ns = topology->ns(Host::server);
    // Captures on both ends of the link from before the first connection, so the
    // exchange, every probe and the end are all seen with kernel timestamps.
    std::optional<CaptureGuard> capture;
    if (options.capture)
      capture.emplace(captures, evidence::LiveCapture::open_all({{&client_ns, topology->interface(Host::client)},
                                                                {&server_ns, topology->interface(Host::server)}}));

    std::set<Family> families;
    for (const auto& spec : c.connections) families.insert(spec.family);
    // Listeners stay open: a rebooted peer is listening again and still answers a
    // segment of the forgotten connection with RST.
    std::map<Family, UniqueFd> listeners;
    for (auto f : families)
      listeners[f] = open_listener(server_ns, f, topology->address(Host::server, f), kServerPort);

    const Exchange exchange = exchange_for(c.server);
    std::vector<Instance> instances;
    for (const auto& spec : c.connections) {
      auto sockets = open_client_sockets(client_ns, spec, spec.copies);
      for (int i = 0; i < spec.copies; ++i) {
        Instance inst;
        inst.spec = &spec;
        inst.name = instance_name(spec, i);
        inst.client = std::move(sockets[static_cast<std::size_t>(i)]);
        if (spec.traffic != Traffic::connecting) {
          inst.link = establish(inst.client.get(), listeners[spec.family].get(), spec.family,
                                topology->address(Host::server, spec.family), kServerPort, exchange);
          inst.origin_ms = inst.link.last_received_ms;
          const auto state = retransmission_state(inst.client.get());
          auto& r = inst.model_input.retransmission;
          r.first_rto_ms = state.rto_ms;
          r.srtt_ms = state.srtt_ms;
          r.sack = state.sack;
        }
        inst.keepalive = read_keepalive(inst.client.get());
        instances.push_back(std::move(inst));
      }
    }
    for (auto& inst : instances)
      if (inst.link.server) wait_until_idle(inst.link.server.get(), kIdleTimeoutMs);

    std::vector<ProbeCounter> counters;
    for (const auto& inst : instances)
      if (inst.link.client_port != 0)
        counters.push_back({probe_counter_name(inst.link.client_port), inst.spec->family, inst.link.client_port});
    nft_apply(client_ns, probe_counter_ruleset(counters));

    std::optional<PeerProcess> peer_app;
    if (fault.kind == FaultKind::peer_freeze) {
      std::vector<int> fds;
      for (const auto& inst : instances)
        if (inst.link.server) fds.push_back(inst.link.server.get());
      peer_app = PeerProcess::spawn(fds);
      for (auto& inst : instances) inst.link.server.reset();  // only the peer process holds them now
    }

    // Timers of the harness process: the server application's idle timeout, requests
    // after an idle period. Declared after the instances, so it stops before their
    // sockets close.
    Scheduler timeline;
    if (c.server.idle_close_s)
      for (auto& inst : instances)
        if (inst.link.server)
          close_when_idle(timeline, std::move(inst.link.server),
                          inst.link.server_activity_ms + 1000.0 * *c.server.idle_close_s);

    const auto retransmission = retransmission_settings(client_ns);
    for (auto& inst : instances) {
      // Namespace settings, plus what this socket measured (RTO, srtt, SACK).
      const auto& measured = inst.model_input.retransmission;
      auto settings = retransmission;
      settings.first_rto_ms = std::max(settings.rto_min_ms, measured.first_rto_ms);
      settings.srtt_ms = measured.srtt_ms;
      settings.sack = measured.sack;
      inst.model_input = model_input(inst, options.kernel, settings);
      if (clock != nullptr && inst.spec->traffic != Traffic::connecting)
        inst.model_input.kernel.calibration = clock->at(inst.origin_ms);
    }
    auto ends = std::make_shared<Ends>();
    ends->ends.resize(instances.size());
    ends->open = instances.size();
    const auto watch = [&](std::size_t i) {
      watcher.watch(instances[i].client.get(), [ends, i](const SocketEnd& end) {
        std::lock_guard lock(ends->mutex);
        ends->ends[i] = end;
        --ends->open;
        ends->changed.notify_all();
      });
    };
    for (std::size_t i = 0; i < instances.size(); ++i)
      if (instances[i].spec->traffic != Traffic::connecting) watch(i);

    const double fault_at = monotonic_ms();
    auto targets = fault_targets(instances, peer_app, *topology);
    apply_fault(fault, *topology, targets);
    spdlog::debug("{}: {} applied at +{:.1f} ms", c.name, to_string(fault.kind), fault_at - started);

    auto sent = std::make_shared<SentTimes>();
    sent->at_ms.resize(instances.size());
    sent->by_ms.resize(instances.size());
    std::vector<std::optional<double>> planned_send(instances.size());
    for (std::size_t i = 0; i < instances.size(); ++i) {
      auto& inst = instances[i];
      if (inst.spec->traffic == Traffic::sending && inst.spec->send_after_s) {
        planned_send[i] = inst.origin_ms + 1000.0 * *inst.spec->send_after_s;
        schedule_write(timeline, inst.client.get(), *planned_send[i], sent, i);
      } else if (inst.spec->traffic == Traffic::sending) {
        planned_send[i] = monotonic_ms();
        if (::write(inst.client.get(), kPayload, sizeof kPayload) < 0)
          throw_errno(fmt::format("connection {}: cannot write after the fault", inst.name));
        // The kernel sent it between the two readings: the model needs no more slack.
        inst.model_input.sent_by_ms = monotonic_ms() - inst.origin_ms;
      } else if (inst.spec->traffic == Traffic::connecting) {
        inst.origin_ms = monotonic_ms();
        if (clock != nullptr) inst.model_input.kernel.calibration = clock->at(inst.origin_ms);
        start_connect(inst.client.get(), inst.spec->family, topology->address(Host::server, inst.spec->family),
                      kServerPort);
        inst.model_input.sent_by_ms = monotonic_ms() - inst.origin_ms;
        watch(i);
      }
    }

    double watch_until = 0;
    std::vector<std::vector<evidence::TimerSample>> samples;
    if (options.progress != nullptr) options.progress->case_started(c.name);
    for (std::size_t i = 0; i < instances.size(); ++i) {
      auto& inst = instances[i];
      inst.forecast = forecast(c, *inst.spec, inst.model_input, facts_of(inst, fault_at, planned_send[i]));
      watch_until = std::max(watch_until, inst.origin_ms + inst.forecast.horizon_ms);
      if (options.progress != nullptr) {
        const auto& prediction = inst.forecast.prediction;
        for (const auto& p : prediction.probes)
          options.progress->expect(c.name, fmt::format("{} probe {}", inst.name, p.index + 1),
                                   inst.origin_ms + p.window.earliest_ms);
        options.progress->expect(c.name, fmt::format("{} {}", inst.name, model_outcome_name(prediction.outcome)),
                                 inst.origin_ms + prediction.window.earliest_ms);
      }
    }
    {
      // Wait for every connection to end or the horizon, sampling the kernel's view
      // of the client sockets' timers (sock_diag) on the way.
      TimerSampler sampler(client_ns, instances);
      std::unique_lock lock(ends->mutex);
      double next_sample = monotonic_ms();
      while (ends->open > 0) {
        const double now = monotonic_ms();
        const double left = watch_until - now;
        if (left <= 0) break;
        if (now >= next_sample) {
          lock.unlock();
          sampler.sample();
          lock.lock();
          next_sample = now + kTimerSampleMs;
          continue;
        }
        const double wait = std::min(left, next_sample - now);
        ends->changed.wait_for(lock, std::chrono::microseconds(static_cast<long>(wait * 1000)));
      }
      samples = sampler.take();
    }
    for (auto& inst : instances) watcher.forget(inst.client.get());
    if (auto failure = timeline.failure()) std::rethrow_exception(failure);
    // A delayed write went out a little after its planned instant: judge against the
    // window for the actual one (the horizon stays).
    {
      std::lock_guard lock(sent->mutex);
      for (std::size_t i = 0; i < instances.size(); ++i) {
        auto& inst = instances[i];
        if (!inst.spec->send_after_s || !sent->at_ms[i]) continue;
        auto facts = facts_of(inst, fault_at, sent->at_ms[i]);
        facts.horizon_ms = inst.forecast.horizon_ms;
        inst.model_input.sent_by_ms = *sent->by_ms[i] - inst.origin_ms;
        inst.forecast = forecast(c, *inst.spec, inst.model_input, facts);
      }
    }

    const auto probes = nft_counters(client_ns, kProbeTable);
    std::optional<CaseCaptures> seen;
    if (capture) {
      const auto offset = evidence::ClockOffset::measure();
      auto [client_capture, server_capture] = capture->take();
      seen = analyze_captures(std::move(client_capture), std::move(server_capture),
                              watch_until + static_cast<double>(offset.realtime_minus_monotonic_ns) / 1e6);
    }
    // An unplugged link drops probes before the capture point: they cannot be checked.
    const bool link_unplugged = fault.kind == FaultKind::link_down;
    result.counters = middlebox_counters(c, *topology);
    std::lock_guard lock(ends->mutex);
    for (std::size_t i = 0; i < instances.size(); ++i) {
      const auto& inst = instances[i];
      ConnectionResult r;
      r.name = inst.name;
      r.family = inst.spec->family;
      r.where = inst.spec->where;
      r.model_input = inst.forecast.input;
      const auto& prediction = inst.forecast.prediction;
      r.prediction = prediction;
      r.expected.outcome = c.expect.outcome;
      r.expected.deadline_ms = c.expect.deadline_ms;
      r.expected.model_outcome = prediction.outcome;
      r.expected.window = prediction.window;
      r.expected.errno_name = c.expect.errno_name;
      r.expected.model_errno = prediction.errno_name;
      r.expected.survival = inst.forecast.survival;
      if (const auto& end = ends->ends[i]) {
        r.observed.outcome = outcome_of(end->so_error, end->eof);
        r.observed.errno_name = errno_name(end->so_error);
        r.observed.at_ms = end->at_ms - inst.origin_ms;
      } else {
        r.observed.outcome = ObservedOutcome::alive;
        r.observed.at_ms = inst.forecast.horizon_ms;
      }
      if (auto it = probes.find(probe_counter_name(inst.link.client_port));
          inst.link.client_port != 0 && it != probes.end())
        r.observed.probes = static_cast<int>(it->second);
      const FlowKey key{inst.spec->family, topology->address(Host::client, inst.spec->family),
                        topology->address(Host::server, inst.spec->family), inst.link.client_port, kServerPort};
      const bool captured = seen && inst.link.client_port != 0;
      if (captured) {
        // The model lists every probe only for an idle connection that keepalive
        // ends or keeps; data in flight and application closes have no schedule.
        const bool schedule_known = inst.forecast.input.traffic == model::Traffic::idle &&
                                    inst.forecast.prediction.outcome != model::Outcome::eof;
        attach_capture_evidence(r, *seen, key, inst.link.last_received_realtime_ms,
                                schedule_known && !link_unplugged);
        r.evidence.fault_ms = fault_at - inst.origin_ms;
      }
      r.evidence.timer_samples = std::move(samples.at(i));
      judge_connection(r);
      if (captured && !options.pcap_dir.empty() && (options.pcap_all || r.verdict != Verdict::pass))
        write_connection_pcaps(r, *seen, key, options.pcap_dir, c.name);
      result.connections.push_back(std::move(r));
    }
    result.survival = judge_copies(result.connections, c.expect.survival);
    result.verdict = case_verdict(result.connections, result.survival);
    if (options.keep) topology->keep(fmt::format("{}-{}", options.keep_prefix, c.name));
  } catch (const std::exception& e) {
    result.verdict = Verdict::error;
    result.error = fmt::format("{}: case {} could not run: {}", c.where.str(), c.name, e.what());
  }
  result.wall_ms = monotonic_ms() - started;
  return result;
}

RunResult run_cases(const std::vector<Case>& cases, const RunOptions& options) {
  RunResult run;
  utsname u{};
  if (uname(&u) == 0) run.kernel = u.release;
  run.hz = options.kernel.hz;
  run.cases.resize(cases.size());
  const double started = monotonic_ms();

  raise_fd_limit();
  std::optional<JiffyClock> clock;
  if (options.calibrate && options.kernel.hz) {
    auto choice = calibrate_jiffies(*options.kernel.hz);
    clock = std::move(choice.clock);
    run.calibration_note = std::move(choice.note);
  } else {
    run.calibration_note = options.calibrate ? "HZ unknown" : "--no-calibration";
  }
  run.calibrated = clock.has_value();
  run.calibration = clock ? clock->method() : "none";

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
        if (options.on_case_start) {
          std::lock_guard lock(report_mutex);
          options.on_case_start(cases[i]);
        }
        run.cases[i] = run_case(cases[i], watcher, captures, options, clock ? &*clock : nullptr);
        if (options.progress != nullptr) options.progress->case_done(cases[i].name);
        if (options.on_case_done) {
          std::lock_guard lock(report_mutex);
          options.on_case_done(run.cases[i]);
        }
      }
    });
  }
  for (auto& t : workers) t.join();
  run.wall_ms = monotonic_ms() - started;
  return run;
}

}  // namespace kah
