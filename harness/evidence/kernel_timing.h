// What the kernel's own trace says of one connection (netns/kernel_trace.h): which
// traced socket is its client socket, the firings of that socket's timers, the
// instant it closed; and the judgement of probes and ends by the wheel bucket each
// timer ran for instead of by when the timer softirq got round to running it.
//
// Why: the model predicts which jiffy's wheel bucket a keepalive (or retransmission)
// timer fires in. On a loaded machine the timer softirq can run that bucket
// milliseconds late (deferred to ksoftirqd): a capture stamp cannot tell that from a
// wrong bucket, the tracepoint timer:timer_expire_entry can (`baseclk` is the
// bucket's jiffy, the sample's time is when the callback started).
//
// Which part of a window is timer lateness. A model window is
// [span.lo, span.hi + slack_of(kernel)] with slack_of = wakeup_slack_ms +
// receive_delay_ms (harness/model/timing.cc). The span is the hull of the tick
// boundaries of the bucket jiffies the replay allows, for every phase t_r may have.
// receive_delay_ms is the model's doubt about which jiffy the kernel counted from (it
// stamped rcv_tstamp after the instant the harness measured): a question of which
// bucket, so it stays in the check. wakeup_slack_ms is "softirq and wake-up latency
// allowed after a timer fires": exactly what the trace measures. So a kernel-timed
// instant (the boundary of the bucket's jiffy) must lie in
// [earliest, latest - wakeup_slack_ms]; the measured lateness (callback - boundary) is
// reported beside it and never excuses a wrong bucket.
//
// Matching. The tracepoints have no network namespace, and every namespace pair of a
// run uses the same addresses, so a 4-tuple can repeat. A client socket is the one
// that went to SYN_SENT in the harness's own process (connect() runs there), inside
// the bracket of its connect() call, towards the server's address and port, and (for
// an established connection) reached ESTABLISHED with the client's port; more than
// one such socket is ambiguous and the connection keeps capture timing. A socket's
// keepalive timer is sk->sk_timer, inside struct sock: timer - skaddr is one offset
// for every TCP socket of a kernel, learned from the data (learn_timer_offset), never
// assumed.
//
// Pure: events in, values out. Instants are CLOCK_MONOTONIC ms unless a field says
// "from the origin" (t = 0 of the connection, model/timing.h).
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "harness/case/case.h"
#include "harness/evidence/probe_check.h"
#include "netns/kernel_trace.h"

namespace kah::evidence {

// include/net/tcp_states.h
inline constexpr int kTcpEstablished = 1;
inline constexpr int kTcpSynSent = 2;
inline constexpr int kTcpClose = 7;
inline constexpr int kTcpCloseWait = 8;

// A client socket as the harness knows it.
struct TracedSocketKey {
  Family family = Family::ipv4;
  std::string client_address, server_address;  // as the topology writes them
  std::uint16_t client_port = 0;  // 0: never established (a connect() to a silent peer)
  std::uint16_t server_port = 0;
  std::uint32_t pid = 0;          // the harness process: connect() ran in it
  double connect_from_ms = 0;     // CLOCK_MONOTONIC just before connect() ...
  double connect_to_ms = 0;       // ... and once it returned (or the handshake completed)
};

struct SocketTrace {
  std::uint64_t skaddr = 0;
  double from_ms = 0;            // SYN_SENT
  std::optional<double> end_ms;  // the first change to CLOSE or CLOSE_WAIT after it
  int end_state = 0;
  std::uint32_t end_cpu = 0;
};

struct SocketMatch {
  std::optional<SocketTrace> socket;
  bool ambiguous = false;  // more than one socket fits the key
  std::string why_not;     // when there is no socket
};

// The client socket in `states` (any order).
SocketMatch match_socket(std::span<const netns::SockState> states, const TracedSocketKey& key);

// One firing of a timer of a matched socket.
struct KernelFiring {
  double callback_ms = 0;  // CLOCK_MONOTONIC: the callback started
  std::uint64_t baseclk = 0;  // the wheel bucket's jiffy
  std::uint64_t now = 0;      // jiffies when the callback started
  std::uint32_t cpu = 0;
  std::uint64_t function = 0;
};

// Sockets' timers are found this far above their skaddr at most (struct sock is
// smaller than this).
inline constexpr std::int64_t kTimerWithinBytes = 4096;

// timer - skaddr for each firing of `function` while `s` was open whose timer lies in
// [skaddr, skaddr + within): the true offset, and neighbours' timers that happen to lie
// close above.
std::vector<std::int64_t> timer_offset_candidates(const SocketTrace& s, std::span<const netns::TimerExpiry> timers,
                                                  std::uint64_t function, std::int64_t within = kTimerWithinBytes);
// The offset most candidates share: at least 2 of them, and more than any other value.
std::optional<std::int64_t> learn_timer_offset(std::span<const std::int64_t> candidates);
// The firings of s's timer at skaddr + offset while it was open, in time order.
std::vector<KernelFiring> firings_of(const SocketTrace& s, std::span<const netns::TimerExpiry> timers,
                                     std::uint64_t function, std::int64_t offset);

// Jiffy -> the CLOCK_MONOTONIC ms at which jiffies reaches it (JiffyClock::boundary_ms);
// nullopt when jiffies itself is not known.
using JiffyBoundary = std::function<std::optional<double>(std::uint64_t)>;

// Re-judges each probe the capture saw by the firing that sent it (the last firing
// that started at most one tick before the probe's stamp): its bucket's boundary must
// lie in [earliest, latest - wakeup_slack_ms] (see the top of this file). Probes with
// no such firing, or no known boundary, keep their capture verdict. `origin_ms`: t = 0
// in CLOCK_MONOTONIC. Returns how many probes the kernel timed.
int time_probes_by_kernel(std::vector<ProbeCheck>& checks, std::span<const KernelFiring> firings, double origin_ms,
                          const JiffyBoundary& boundary, double wakeup_slack_ms, double tick_ms);

// The kernel's instant for a connection's end.
struct KernelEnd {
  // "keepalive-timer" / "retransmit-timer": the socket closed inside that timer's
  // callback, and at_ms is its bucket's boundary; "state-change": at_ms is the
  // change to CLOSE (or CLOSE_WAIT: the peer's FIN) itself.
  std::string event;
  double at_ms = 0;  // from the origin
  int state = 0;     // CLOSE or CLOSE_WAIT
  std::optional<std::uint64_t> baseclk;
  std::optional<double> callback_ms;      // from the origin
  std::optional<double> softirq_late_ms;  // callback - bucket boundary
  bool bucket() const { return baseclk.has_value(); }
};

// A firing and the name of its timer, for kernel_end().
struct NamedFirings {
  std::string event;  // "keepalive-timer"
  std::span<const KernelFiring> firings;
};

// The socket's end as the kernel timed it: the bucket of the timer in whose callback it
// closed (same CPU, within kCloseInCallbackMs of the callback's start, the socket's last
// firing before the close), when its boundary is known; else the state change; nullopt
// when the trace saw no end.
std::optional<KernelEnd> kernel_end(const SocketTrace& s, std::span<const NamedFirings> timers, double origin_ms,
                                    const JiffyBoundary& boundary);
inline constexpr double kCloseInCallbackMs = 0.5;

// What a run's tracing did, for the summary and the JSON.
struct KernelTraceStatus {
  bool on = false;
  std::string note;  // why not, or what was refused ("filter refused: in user space")
  std::uint64_t lost = 0;        // samples the kernel dropped (PERF_RECORD_LOST)
  int matched = 0;               // connections whose socket was found
  int ambiguous = 0;             // more than one socket fitted: capture timing
  int unmatched = 0;             // no socket fitted
  int offset_mismatches = 0;     // a case's sockets showed another timer offset than the run's
  std::optional<std::int64_t> keepalive_timer_offset;  // timer - skaddr, learned
  std::optional<std::int64_t> retransmit_timer_offset;
  int probes_timed = 0, ends_timed = 0;  // by kernel-trace
  // The traced keepalive and retransmission callbacks each online CPU delivered. A CPU
  // with none while others had many points at a kernel that does not hand that CPU's
  // tracepoints to perf: on this project's 6.18 guest, none came from CPU 1's timer
  // softirq; a run pinned to CPU 0 had every probe and end kernel-timed (4 of 4 runs),
  // pinned to CPU 1 none (0 of 4). Such probes and ends keep the capture's timing.
  std::map<int, std::uint64_t> timer_callbacks_per_cpu;
};

}  // namespace kah::evidence
