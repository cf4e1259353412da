#include "harness/evidence/kernel_timing.h"

#include <arpa/inet.h>
#include <sys/socket.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <map>
#include <set>

#include <fmt/format.h>

namespace kah::evidence {
namespace {

// The tracepoint's clock is CLOCK_MONOTONIC in ns; the harness's is the same in ms.
double ms(std::uint64_t ns) { return static_cast<double>(ns) / 1e6; }

// A probe's capture stamp and the callback's start share CLOCK_MONOTONIC only through
// the capture's ClockOffset (tens of ns); allow this much skew between them.
constexpr double kStampSkewMs = 0.1;
// The connect() bracket is read in user space around the call; the kernel's stamp of
// SYN_SENT lies inside it, give or take the clocks' reading cost.
constexpr double kBracketSkewMs = 0.05;

std::optional<std::array<std::uint8_t, 16>> address_bytes(Family f, const std::string& text) {
  std::array<std::uint8_t, 16> out{};
  if (::inet_pton(f == Family::ipv6 ? AF_INET6 : AF_INET, text.c_str(), out.data()) != 1) return std::nullopt;
  return out;
}

bool same_address(Family f, const std::array<std::uint8_t, 16>& a, const std::array<std::uint8_t, 16>& b) {
  return std::memcmp(a.data(), b.data(), f == Family::ipv6 ? 16 : 4) == 0;
}

std::uint16_t af_of(Family f) { return f == Family::ipv6 ? AF_INET6 : AF_INET; }

}  // namespace

SocketMatch match_socket(std::span<const netns::SockState> states, const TracedSocketKey& key) {
  SocketMatch m;
  const auto client = address_bytes(key.family, key.client_address);
  const auto server = address_bytes(key.family, key.server_address);
  if (!client || !server) {
    m.why_not = "addresses not understood";
    return m;
  }
  std::vector<const netns::SockState*> sorted;
  for (const auto& s : states) sorted.push_back(&s);
  std::stable_sort(sorted.begin(), sorted.end(),
                   [](const auto* a, const auto* b) { return a->time_ns < b->time_ns; });

  std::vector<SocketTrace> fits;
  for (std::size_t i = 0; i < sorted.size(); ++i) {
    const auto& syn = *sorted[i];
    const double at = ms(syn.time_ns);
    if (syn.newstate != kTcpSynSent || syn.pid != key.pid || syn.family != af_of(key.family) ||
        syn.dport != key.server_port || !same_address(key.family, syn.daddr, *server) ||
        at < key.connect_from_ms - kBracketSkewMs || at > key.connect_to_ms + kBracketSkewMs)
      continue;
    SocketTrace t;
    t.skaddr = syn.skaddr;
    t.from_ms = at;
    bool established = false;
    // What this socket did next (its address is reused once it is freed: stop at its end).
    for (std::size_t j = i + 1; j < sorted.size(); ++j) {
      const auto& e = *sorted[j];
      if (e.skaddr != syn.skaddr) continue;
      if (e.newstate == kTcpEstablished && e.oldstate == kTcpSynSent)
        established = e.sport == key.client_port && same_address(key.family, e.saddr, *client);
      if (e.newstate == kTcpClose || e.newstate == kTcpCloseWait) {
        t.end_ms = ms(e.time_ns);
        t.end_state = e.newstate;
        t.end_cpu = e.cpu;
        break;
      }
      if (e.newstate == kTcpSynSent) break;  // a new life at this address
    }
    // A connect() that never completed has no port to check: the bracket decides.
    if (key.client_port != 0 && !established) continue;
    fits.push_back(t);
  }
  if (fits.size() == 1) {
    m.socket = fits.front();
  } else if (fits.empty()) {
    m.why_not = "no socket went to SYN_SENT in this process inside the connect() call";
  } else {
    m.ambiguous = true;
    m.why_not = fmt::format("{} sockets fit the connection's addresses, ports and connect() call", fits.size());
  }
  return m;
}

namespace {

bool open_at(const SocketTrace& s, double t_ms) { return t_ms >= s.from_ms && (!s.end_ms || t_ms <= *s.end_ms + kCloseInCallbackMs); }

}  // namespace

std::vector<std::int64_t> timer_offset_candidates(const SocketTrace& s, std::span<const netns::TimerExpiry> timers,
                                                  std::uint64_t function, std::int64_t within) {
  std::vector<std::int64_t> out;
  for (const auto& t : timers) {
    if (t.function != function || !open_at(s, ms(t.time_ns))) continue;
    const auto diff = static_cast<std::int64_t>(t.timer - s.skaddr);
    if (t.timer >= s.skaddr && diff < within) out.push_back(diff);
  }
  return out;
}

std::optional<std::int64_t> learn_timer_offset(std::span<const std::int64_t> candidates) {
  std::map<std::int64_t, int> votes;
  for (auto c : candidates) ++votes[c];
  std::optional<std::int64_t> best;
  int best_n = 0, second_n = 0;
  for (const auto& [offset, n] : votes) {
    if (n > best_n) {
      second_n = best_n;
      best_n = n;
      best = offset;
    } else if (n > second_n) {
      second_n = n;
    }
  }
  if (best_n < 2 || best_n == second_n) return std::nullopt;
  return best;
}

std::vector<KernelFiring> firings_of(const SocketTrace& s, std::span<const netns::TimerExpiry> timers,
                                     std::uint64_t function, std::int64_t offset) {
  std::vector<KernelFiring> out;
  const auto timer = s.skaddr + static_cast<std::uint64_t>(offset);
  for (const auto& t : timers)
    if (t.function == function && t.timer == timer && open_at(s, ms(t.time_ns)))
      out.push_back({ms(t.time_ns), t.baseclk, t.now, t.cpu, t.function});
  std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.callback_ms < b.callback_ms; });
  return out;
}

int time_probes_by_kernel(std::vector<ProbeCheck>& checks, std::span<const KernelFiring> firings, double origin_ms,
                          const JiffyBoundary& boundary, double wakeup_slack_ms, double tick_ms) {
  int timed = 0;
  for (auto& c : checks) {
    if (!c.seen_ms) continue;
    // The probe leaves from inside the callback: the last firing that started before
    // its stamp, at most a tick before it.
    const KernelFiring* sent_by = nullptr;
    for (const auto& f : firings) {
      const double rel = f.callback_ms - origin_ms;
      if (rel <= *c.seen_ms + kStampSkewMs && *c.seen_ms - rel <= tick_ms) sent_by = &f;
    }
    if (sent_by == nullptr) continue;
    const auto at = boundary(sent_by->baseclk);
    if (!at) continue;
    const double bucket = *at - origin_ms;
    c.timed_by = "kernel-trace";
    c.bucket_ms = bucket;
    c.softirq_late_ms = sent_by->callback_ms - *at;
    ++timed;
    if (!c.expected || c.verdict == ProbeVerdict::extra) continue;
    const int number = c.index + 1;
    const auto& w = *c.expected;
    const double latest = w.latest_ms - wakeup_slack_ms;
    const auto seen = fmt::format("its timer's bucket (jiffy {}) starts at {:.2f} ms; the softirq ran it {:.2f} ms "
                                  "later, the probe was seen at {:.1f} ms",
                                  sent_by->baseclk, bucket, *c.softirq_late_ms, *c.seen_ms);
    if (bucket < w.earliest_ms) {
      c.verdict = ProbeVerdict::early;
      c.message = fmt::format("probe {} early: expected {}, {}", number, window_text(w), seen);
    } else if (bucket > latest) {
      c.verdict = ProbeVerdict::late;
      c.message = fmt::format("probe {} late: expected a bucket within [{:.1f}, {:.1f}] ms ({} less the {:.0f} ms "
                              "wake-up slack), {}",
                              number, w.earliest_ms, latest, window_text(w), wakeup_slack_ms, seen);
    } else {
      c.verdict = ProbeVerdict::ok;
      c.message = fmt::format("probe {} ok: expected {}, {}", number, window_text(w), seen);
    }
  }
  return timed;
}

std::optional<KernelEnd> kernel_end(const SocketTrace& s, std::span<const NamedFirings> timers, double origin_ms,
                                    const JiffyBoundary& boundary) {
  if (!s.end_ms) return std::nullopt;
  KernelEnd end;
  end.state = s.end_state;
  end.event = "state-change";
  end.at_ms = *s.end_ms - origin_ms;
  // The socket's last firing before its close, of any traced timer.
  const KernelFiring* last = nullptr;
  const std::string* event = nullptr;
  for (const auto& named : timers)
    for (const auto& f : named.firings)
      if (f.callback_ms <= *s.end_ms && (last == nullptr || f.callback_ms > last->callback_ms)) {
        last = &f;
        event = &named.event;
      }
  if (last == nullptr || last->cpu != s.end_cpu || *s.end_ms - last->callback_ms > kCloseInCallbackMs) return end;
  const auto at = boundary(last->baseclk);
  if (!at) return end;
  end.event = *event;
  end.at_ms = *at - origin_ms;
  end.baseclk = last->baseclk;
  end.callback_ms = last->callback_ms - origin_ms;
  end.softirq_late_ms = last->callback_ms - *at;
  return end;
}

}  // namespace kah::evidence
