#include "harness/run/kernel_trace_loop.h"

#include <poll.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "harness/clock/jiffies.h"

namespace kah {
namespace {

constexpr int kPollMs = 50;  // the reader's longest sleep: rings are 256 KiB each

// The callback's jiffies (`now`) and the jiffy the calibration puts its start in may
// differ by the tick that advances jiffies being late (a jiffy, rarely two: the kernel
// forces the update after MAX_STALLED_JIFFIES); more means the map is wrong.
constexpr std::int64_t kMaxJiffyDisagreement = 2;

}  // namespace

KernelTraceLoop::KernelTraceLoop() {
  const auto keepalive = netns::kernel_symbol("tcp_keepalive_timer");
  const auto retransmit = netns::kernel_symbol("tcp_write_timer");
  if (!keepalive || !retransmit) {
    status_.note = "tcp_keepalive_timer / tcp_write_timer not in /proc/kallsyms (not root, or kptr_restrict)";
    return;
  }
  keepalive_fn_ = *keepalive;
  retransmit_fn_ = *retransmit;
  const auto filter = fmt::format("function == 0x{:x} || function == 0x{:x}", keepalive_fn_, retransmit_fn_);
  try {
    auto trace = netns::KernelTrace::open({{"timer", "timer_expire_entry", filter}, {"sock", "inet_sock_set_state", ""}});
    decoder_.emplace(trace.formats().at(0), trace.formats().at(1));
    for (const int cpu : trace.cpus()) status_.timer_callbacks_per_cpu[cpu] = 0;
    user_space_filter_ = !trace.refused_filters().empty();
    if (user_space_filter_) status_.note = "the kernel refused the timer filter: filtered in user space";
    trace_ = std::make_unique<netns::KernelTrace>(std::move(trace));
  } catch (const std::exception& e) {  // TraceUnavailable, or a format without the fields
    status_.note = e.what();
    return;
  }
  status_.on = true;
  reader_ = std::thread([this] { read_until_stopped(); });
}

KernelTraceLoop::~KernelTraceLoop() {
  if (reader_.joinable()) {
    {
      std::lock_guard lock(stop_mutex_);
      stop_ = true;
    }
    stop_cv_.notify_all();
    reader_.join();
  }
}

evidence::KernelTraceStatus KernelTraceLoop::status() const {
  std::lock_guard lock(mutex_);
  return status_;
}

void KernelTraceLoop::drain_locked() {
  trace_->drain([&](const netns::TraceRecord& record) {
    if (const auto* lost = std::get_if<netns::TraceLost>(&record)) {
      status_.lost += lost->lost;
      return;
    }
    const auto* sample = std::get_if<netns::TraceSample>(&record);
    if (sample == nullptr) return;
    const auto event = decoder_->decode(*sample);
    if (!event) return;
    if (const auto* t = std::get_if<netns::TimerExpiry>(&*event)) {
      if (user_space_filter_ && t->function != keepalive_fn_ && t->function != retransmit_fn_) return;
      ++status_.timer_callbacks_per_cpu[static_cast<int>(t->cpu)];
      timers_.push_back(*t);
    } else {
      states_.push_back(std::get<netns::SockState>(*event));
    }
  });
}

void KernelTraceLoop::read_until_stopped() {
  std::vector<pollfd> fds;
  for (int fd : trace_->fds()) fds.push_back({fd, POLLIN, 0});
  for (;;) {
    {
      std::unique_lock lock(stop_mutex_);
      if (stop_) return;
    }
    ::poll(fds.data(), fds.size(), kPollMs);
    std::lock_guard lock(mutex_);
    try {
      drain_locked();
    } catch (const std::exception& e) {  // a record that does not decode: stop tracing, say why
      spdlog::warn("kernel trace: {}", e.what());
      status_.note = fmt::format("stopped reading: {}", e.what());
      return;
    }
  }
}

namespace {
// How long a case waits for the CLOSE of a socket whose end it has seen, and how often it looks.
constexpr double kEndWaitMs = 50;
constexpr double kEndPollMs = 2;
}  // namespace

void KernelTraceLoop::attach(std::vector<Connection>& connections, const JiffyClock* clock, double from_ms) {
  if (!on()) return;
  std::vector<netns::SockState> states;
  std::vector<netns::TimerExpiry> timers;
  std::vector<std::optional<evidence::SocketTrace>> sockets(connections.size());
  int matched = 0, ambiguous = 0, unmatched = 0;
  // The kernel wakes the application (sk_error_report) before it moves the socket to
  // CLOSE (tcp_done), so a case can get here before that change is in a ring, or read
  // out of it: a connection that ended but whose socket shows no end yet is looked for
  // again, for up to kEndWaitMs.
  const auto ended = [&](std::size_t i) {
    const auto& r = *connections[i].result;
    return r.verdict != Verdict::interrupted && r.observed.outcome != ObservedOutcome::alive;
  };
  for (double waited = 0;; waited += kEndPollMs) {
    states.clear();
    timers.clear();
    {
      std::lock_guard lock(mutex_);
      drain_locked();
      const auto since = static_cast<std::uint64_t>(std::max(0.0, from_ms) * 1e6);
      for (const auto& s : states_)
        if (s.time_ns >= since) states.push_back(s);
      for (const auto& t : timers_)
        if (t.time_ns >= since) timers.push_back(t);
    }
    matched = ambiguous = unmatched = 0;
    bool missing_end = false;
    for (std::size_t i = 0; i < connections.size(); ++i) {
      sockets[i].reset();
      if (!connections[i].key) continue;
      auto m = evidence::match_socket(states, *connections[i].key);
      if (m.socket) {
        sockets[i] = m.socket;
        ++matched;
        missing_end = missing_end || (ended(i) && !m.socket->end_ms);
      } else {
        (m.ambiguous ? ambiguous : unmatched) += 1;
        if (waited == 0) spdlog::debug("{}: kernel trace: {}", connections[i].result->name, m.why_not);
      }
    }
    if (!missing_end || waited >= kEndWaitMs) break;
    ::usleep(static_cast<useconds_t>(kEndPollMs * 1000));
  }

  // timer - skaddr. Each socket votes once for every distance at which a timer of that
  // callback fired above it while it was open: its own timer, at the same distance
  // for every socket, and now and then a neighbour's (sockets of one slab lie next to
  // each other). The votes of the whole run decide; a case whose own sockets agree on
  // another distance and never on the run's is not timed by those timers, and counted.
  int mismatches = 0;
  const auto offset_for = [&](std::uint64_t function, std::vector<std::int64_t>& pooled,
                              std::optional<std::int64_t>& learned_by_run) -> std::optional<std::int64_t> {
    std::vector<std::int64_t> votes;
    for (const auto& s : sockets)
      if (s) {
        auto c = evidence::timer_offset_candidates(*s, timers, function);
        std::sort(c.begin(), c.end());
        c.erase(std::unique(c.begin(), c.end()), c.end());
        votes.insert(votes.end(), c.begin(), c.end());
      }
    const auto by_case = evidence::learn_timer_offset(votes);
    std::lock_guard lock(mutex_);
    pooled.insert(pooled.end(), votes.begin(), votes.end());
    if (!learned_by_run) learned_by_run = evidence::learn_timer_offset(pooled);
    // A neighbour's timer can out-vote a case's own when that callback fired only for
    // the neighbour (tcp_write_timer on idle connections): only a case with none of its
    // votes at the run's distance contradicts it.
    const bool seen_at_run_offset =
        learned_by_run && std::find(votes.begin(), votes.end(), *learned_by_run) != votes.end();
    if (by_case && learned_by_run && *by_case != *learned_by_run && !seen_at_run_offset) {
      ++mismatches;
      spdlog::warn("kernel trace: timer offset {} in this case, {} in the run: its timers not used", *by_case,
                   *learned_by_run);
      return std::nullopt;
    }
    return learned_by_run;
  };
  const auto keepalive_offset = offset_for(keepalive_fn_, keepalive_votes_, status_.keepalive_timer_offset);
  const auto retransmit_offset = offset_for(retransmit_fn_, retransmit_votes_, status_.retransmit_timer_offset);

  const bool jiffies_known = clock != nullptr && clock->jiffies_modulus() == 0;
  const double tick_ms = clock != nullptr ? static_cast<double>(clock->tick_ns()) / 1e6 : 4.0;
  int probes_timed = 0, ends_timed = 0;
  for (std::size_t i = 0; i < connections.size(); ++i) {
    if (!sockets[i]) continue;
    auto& r = *connections[i].result;
    const auto& socket = *sockets[i];
    const double origin = connections[i].origin_ms;
    std::vector<evidence::KernelFiring> keepalive, retransmit;
    if (keepalive_offset) keepalive = evidence::firings_of(socket, timers, keepalive_fn_, *keepalive_offset);
    if (retransmit_offset) retransmit = evidence::firings_of(socket, timers, retransmit_fn_, *retransmit_offset);
    // The calibration must put each callback in the jiffy the kernel read then.
    bool map_agrees = jiffies_known;
    for (const auto* list : {&keepalive, &retransmit})
      for (const auto& f : *list)
        if (map_agrees) {
          const auto mapped = static_cast<std::int64_t>(clock->at(f.callback_ms).jiffies_at_origin);
          if (std::llabs(mapped - static_cast<std::int64_t>(f.now)) > kMaxJiffyDisagreement) {
            spdlog::warn("{}: kernel trace: the calibration puts a callback in jiffy {}, the kernel read {}: "
                         "buckets not used", r.name, mapped, f.now);
            map_agrees = false;
          }
        }
    const evidence::JiffyBoundary boundary = [&](std::uint64_t jiffy) -> std::optional<double> {
      if (!map_agrees) return std::nullopt;
      return clock->boundary_ms(jiffy);
    };
    if (r.evidence.probes_checked)
      probes_timed += evidence::time_probes_by_kernel(r.evidence.probe_checks, keepalive, origin, boundary,
                                                      r.model_input.kernel.wakeup_slack_ms + r.prediction.late_tick_ms, tick_ms);
    if (r.verdict == Verdict::interrupted || r.observed.outcome == ObservedOutcome::alive) continue;
    // A reset is the peer's RST arriving, not a timer of ours: only its state change.
    std::vector<evidence::NamedFirings> named;
    if (r.observed.outcome != ObservedOutcome::reset)
      named = {{"keepalive-timer", keepalive}, {"retransmit-timer", retransmit}};
    const auto end = evidence::kernel_end(socket, named, origin, boundary);
    if (!end) continue;
    // The capture's RST stamp is the kernel's too; only a bucket improves on it.
    if (r.observed.timed_by == "capture" && !end->bucket()) continue;
    if (r.observed.timed_by == "capture") r.observed.captured_at_ms = r.observed.at_ms;
    if (r.observed.timed_by == "wakeup" && !r.observed.woke_at_ms) r.observed.woke_at_ms = r.observed.at_ms;
    r.observed.at_ms = end->at_ms;
    r.observed.timed_by = "kernel-trace";
    r.observed.kernel_end = end;
    ++ends_timed;
  }

  std::lock_guard lock(mutex_);
  status_.matched += matched;
  status_.ambiguous += ambiguous;
  status_.unmatched += unmatched;
  status_.offset_mismatches += mismatches;
  status_.probes_timed += probes_timed;
  status_.ends_timed += ends_timed;
}

}  // namespace kah
