// The timing model: from keepalive settings, the kernel's HZ, the timer's arming
// history and the fault, the window in which each keepalive probe, the reset or
// the timeout must happen. Pure functions: no I/O, no clocks, no globals.
//
// Time origin: every time is in milliseconds from t_r = 0, the instant the tested
// (client) side received its last segment before the fault. The kernel's idle
// clock (tp->rcv_tstamp / icsk_ack.lrcvtime) starts there.
//
// Sources: ../shared/design/keepalive-timing.md, net/ipv4/tcp_timer.c,
// kernel/time/timer.c (timer wheel: a timer armed L jiffies ahead lands on the
// level whose granularity g = 8^n covers L and fires 1..g jiffies late).
//
// How windows are made: the model replays the kernel's timer chain in whole jiffies
// (which bucket each timer lands in, what the callback decides there) for every
// place t_r can sit on the jiffy grid, and a window is the hull of the instants that
// replay allows. Without a calibration that is every alignment modulo the coarsest
// granularity in the chain, so a window is as wide as the wheel's rounding makes it
// (about the sum of the granularities in the chain, plus one tick for where t_r falls
// inside its tick, plus the wake-up slack) and never a percentage. With a
// JiffyCalibration only the alignments the calibration allows are replayed.
// Assumption: a timer's callback runs in the tick of its bucket (the softirq is not
// a whole tick late), which holds on an idle machine; wakeup_slack_ms absorbs the rest.
// (On this project's VMs a firing is now and then exactly one tick late: harmless when it
// is the last one, inside the slack; an earlier one shifts the chain by a tick, which the
// next wheel bucket usually absorbs. The cause, from kernel/time/timer.c run_local_timers:
// a CPU's tick only raises the timer softirq once jiffies has reached the bucket, and
// jiffies is advanced by the tick of the CPU that keeps time; when the other CPU's tick
// runs first it sees the old jiffies and its timers wait a tick. With busy CPUs that was
// up to 40 % of the canary's firings (harness/clock_canary.h). The tick that advances
// jiffies can itself be late (1.15 ms seen with both cores overloaded): whatever reads
// jiffies in that gap counts from the previous jiffy, which Kernel::jiffies_lag_ms
// covers.)
#pragma once

#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <vector>

#include "harness/model/kernel_version.h"

namespace kah::model {

// eof: the peer's application closed the connection (FIN). predict() never returns
// it (no timer of the tested socket is involved); see application.h.
enum class Outcome { timeout, reset, alive, eof };

// What the peer (or the path to it) does once the fault is applied.
enum class PeerBehaviour {
  answers,   // healthy peer, or frozen application: its kernel ACKs every probe
  silent,    // nothing comes back: blackhole, lost replies, lost probes, link down
  rebooted,  // the peer lost the connection state: it answers the first segment with RST
  // Every segment is answered with ICMP host unreachable (a rejecting router). An
  // error for a keepalive probe is dropped as out of window (the probe's sequence
  // number is snd_una - 1, tcp_v4_err/tcp_v6_err want [snd_una, snd_nxt]): keepalive
  // ends as with a silent peer, ETIMEDOUT. An error for data is kept as the socket's
  // soft error, which the retransmission timer reports when it gives up: EHOSTUNREACH.
  unreachable,
};

// What the tested connection is doing when the fault hits.
enum class Traffic {
  idle,            // nothing to send: the keepalive timer owns the connection
  data_in_flight,  // the client keeps writing: the retransmission timer owns it
  connecting,      // connect() to a silent peer: SYN retransmissions
};

struct Window {
  double earliest_ms = 0;
  double latest_ms = std::numeric_limits<double>::infinity();
  bool contains(double t_ms) const { return t_ms >= earliest_ms && t_ms <= latest_ms; }
  double width_ms() const { return latest_ms - earliest_ms; }
  bool bounded() const { return latest_ms != std::numeric_limits<double>::infinity(); }
};

// Effective settings of the socket (socket option if set, else the namespace sysctl).
struct Keepalive {
  bool enabled = true;        // SO_KEEPALIVE
  int idle_s = 7200;          // TCP_KEEPIDLE / net.ipv4.tcp_keepalive_time
  int interval_s = 75;        // TCP_KEEPINTVL / net.ipv4.tcp_keepalive_intvl
  int count = 9;              // TCP_KEEPCNT / net.ipv4.tcp_keepalive_probes
  int user_timeout_ms = 0;    // TCP_USER_TIMEOUT, 0 = off
};

// Retransmission settings (per namespace) for Traffic::data_in_flight / connecting.
struct Retransmission {
  int retries2 = 15;           // net.ipv4.tcp_retries2
  int syn_retries = 6;         // net.ipv4.tcp_syn_retries
  double rto_min_ms = 200;     // TCP_RTO_MIN
  double rto_max_ms = 120000;  // TCP_RTO_MAX
  double initial_rto_ms = 1000;  // TCP_TIMEOUT_INIT (SYN)
  // RTO of the first data retransmission (srtt-based; >= rto_min). Read it from
  // TCP_INFO (tcpi_rto) before the fault: a LAN peer gives 204 ms (51 jiffies at
  // HZ=250), not 200, and that shifts the whole doubling chain onto other buckets
  // (a tcp_retries2 = 15 abort moves by ~3 s).
  double first_rto_ms = 200;
  // net.ipv4.tcp_syn_linear_timeouts (kernels >= 6.5, default 4): the first N SYN
  // retransmissions keep the initial RTO instead of doubling it, and add N to the
  // number of SYN retransmissions allowed. 0 on older kernels.
  int syn_linear_timeouts = 4;
  // Tail-loss probe (net/ipv4/tcp_output.c tcp_schedule_loss_probe): when the data goes
  // out, the retransmission timer is armed for a probe timeout PTO instead of the RTO if
  // net.ipv4.tcp_early_retrans is 3 or 4 and SACK was negotiated (and the connection is
  // not in loss recovery, which a fresh write on an idle connection never is).
  //   PTO = usecs_to_jiffies(2 * srtt + (packets_out == 1 ? rto_min : 2 ms)),
  //         TCP_TIMEOUT_INIT (1 s) without an RTT sample,
  //   clamped to the time left until the RTO (tcp_rto_delta_us: first_rto, the data was
  //   just sent).
  // A LAN peer (srtt well under 1 ms) gives PTO = RTO: the probe fires exactly when the
  // first RTO would have. tcp_send_loss_probe() retransmits the last segment with
  // __tcp_retransmit_skb(), which does not set retrans_stamp, and re-arms a full RTO from
  // its callback (tcp_rearm_rto()), so the first real retransmission (the one that starts
  // the abort clock) comes one RTO after the probe. Deterministic: no guess involved.
  int early_retrans = 3;      // net.ipv4.tcp_early_retrans of the client's namespace (default 3)
  bool sack = true;           // SACK negotiated: TCP_INFO tcpi_options & TCPI_OPT_SACK (Linux peers: yes)
  int packets_out = 1;        // segments unacknowledged once the write has gone out (one small write: 1)
  // Smoothed RTT before the fault: TCP_INFO tcpi_rtt / 1000 (tcpi_rtt is in us). 0 = no RTT
  // sample (the probe then waits TCP_TIMEOUT_INIT). Only matters when 2 * srtt + rto_min
  // is shorter than first_rto, i.e. on a path whose RTT varies a lot.
  double srtt_ms = 0.05;
  // Internal pacing (sk_pacing_status != SK_PACING_NONE: BBR sets it when no fq qdisc
  // paces the flow, as on the harness's veths; cubic and reno leave it off). Since 6.15
  // (include/net/tcp.h tcp_reset_xmit_timer(..., pace_delay)) the arms made for new
  // data add tcp_pacing_delay(sk) to their delay: tcp_rearm_rto() (the first RTO when
  // data leaves an idle connection, and the re-arm after a tail-loss probe) and
  // tcp_schedule_loss_probe(); tcp_retransmit_timer()'s own re-arms do not. Measured
  // here (6.18, HZ=250, BBR, a 33-byte write to a silent path, 11 captures): the probe and
  // the first retransmission came 53 jiffies after the write and after the probe where
  // cubic gives 52 (51 + the wheel's rounding) in most runs, 52 in others, sometimes one
  // arm each way on the same connection; the doubled RTOs after them matched icsk_rto =
  // 51 exactly. So each paced arm is 0 or 1 jiffy longer: the most tcp_pacing_delay()
  // adds here. 0 = not paced.
  int pacing_delay_jiffies = 0;
};

// Relates the kernel's jiffies to CLOCK_MONOTONIC when the run could measure it
// (root reads /proc/timer_list: kah::JiffyClock in harness/kernel_info.h). With it,
// each timer's bucket is known exactly and windows shrink to about a tick.
struct JiffyCalibration {
  std::uint64_t jiffies_at_origin = 0;  // value of jiffies at t_r = 0
  double origin_phase = 0;  // fraction of a tick already elapsed at t_r, in [0, 1)
  double phase_uncertainty = 1;  // how far origin_phase may be off, in ticks
  // 0: jiffies_at_origin is the kernel's value (read from /proc/timer_list). Otherwise it
  // is known only modulo this power of 8 (1: only the phase): a calibration from timer
  // firings sees where ticks fall and which jiffies are multiples of the granularity of
  // the timers it watched, not jiffies itself. A wheel bucket's rounding depends on
  // jiffies modulo its granularity, so chains with coarser timers than that are replayed
  // for every value the calibration leaves open.
  std::uint64_t jiffies_modulus = 0;
  // The jiffy the kernel's idle clock counts from (the later of icsk_ack.lrcvtime and
  // rcv_tstamp), when the run read it from the socket: TCP_INFO's tcpi_last_data_recv and
  // tcpi_last_ack_recv (jiffies before the reading) against jiffies read from
  // /proc/timer_list on both sides of it. Set (only with jiffies_modulus 0), the keepalive
  // chain hangs on this jiffy alone, however late the jiffies update ran when the last
  // segment came: Kernel::jiffies_lag_ms and receive_delay_ms then play no part in where
  // it starts. (Measured under full load: the kernel counted from the jiffy before the one
  // t_r - jiffies_lag_ms allows, and probe 1 left 3.9 ms before the window.)
  std::optional<std::uint64_t> idle_clock_jiffies = std::nullopt;
};

struct Kernel {
  std::optional<int> hz;          // CONFIG_HZ; unknown -> union over 100, 250, 300, 1000
  double wakeup_slack_ms = 5;     // softirq and user-space wake-up latency allowed after a timer fires
  // The kernel stamps rcv_tstamp (and arms timers) when its softirq processes a
  // segment, which can be this long after the instant the harness measured for it
  // (the packet's timestamp), and the measured arming instant may be off by as much
  // either way. It decides which jiffy the kernel counts from, so it matters most
  // with a calibration (seen here under load: 0.6 ms, one jiffy later than the
  // timestamp said).
  double receive_delay_ms = 1;
  // jiffies is advanced by the tick interrupt of the CPU that keeps time, at or after
  // each tick's boundary: when that tick runs late, code reading jiffies just after a
  // boundary still sees the previous jiffy (rcv_tstamp, a timer's arming, a SYN's
  // stamp) and counts from a tick earlier than the instant says. Measured by
  // scripts/bench-jiffies-lag.sh (/proc/timer_list readings against the fitted tick
  // grid); see the README for the figures this default comes from.
  double jiffies_lag_ms = 1.2;
  // Ticks a timer's callback may run after its bucket's own tick. With more than one CPU,
  // a CPU's tick can run before the CPU that keeps time has advanced jiffies for that
  // same tick; run_local_timers() (kernel/time/timer.c) raises the timer softirq only
  // once jiffies has reached the bucket, so the timer waits for that CPU's next tick.
  // Seen in up to 40 % of firings with both CPUs busy (harness/clock/canary.h). 0 on a
  // machine with one CPU. Added to the end of every timer-fired window (not absorbed by
  // the wake-up slack, which is a tick or more at HZ 100..250).
  int late_ticks = 1;
  double rtt_ms = 1;              // round trip to the peer (reset arrives one RTT after the probe)
  std::optional<JiffyCalibration> calibration;
  // Which timer behaviours exist (kernel_version.h): unset = a current kernel, every
  // behaviour the table knows. Before 6.5 Retransmission::syn_linear_timeouts is taken
  // as 0 (the sysctl does not exist); tcp_rto_min_us / tcp_rto_max_ms other than the
  // defaults are refused before 6.11 / 6.15.
  std::optional<KernelVersion> version;
};

struct Input {
  Keepalive keepalive;
  Retransmission retransmission;
  Kernel kernel;
  PeerBehaviour peer = PeerBehaviour::silent;
  Traffic traffic = Traffic::idle;
  // When the keepalive timer was last armed for a full idle period (connection
  // established, or SO_KEEPALIVE switched on), relative to t_r. Normally slightly
  // negative: armed at establishment, just before the last data arrived. 0 if unknown.
  // If TCP_KEEPIDLE is set after connect(), it re-arms the timer for what is left of
  // the idle time: give the instant of the last segment received before that
  // setsockopt (the timer then expires at that instant + idle). At or before -idle,
  // the timer has been cycling with the traffic and only its bound is known.
  // For Traffic::connecting there is no t_r: times count from the first SYN (connect()).
  double armed_at_ms = 0;
  // The earliest instant that arming can have happened, relative to t_r: the connect()
  // call whose return armed_at_ms is (the client's timer is armed in tcp_finish_connect()
  // while connect() waits). Set, the arming lies in [armed_from_ms, armed_at_ms]; unset,
  // within Kernel::receive_delay_ms of armed_at_ms.
  std::optional<double> armed_from_ms;
  // For Traffic::data_in_flight: when the first unacknowledged segment was sent, relative to t_r
  // (the clock read just before the write()).
  double data_sent_at_ms = 0;
  // Traffic::data_in_flight and connecting: the clock read right after the write() (the
  // connect()) that sent the data (the SYN) returned, relative to t_r. The kernel sent it and
  // armed the retransmission timer between data_sent_at_ms (0 for connect()) and this; with
  // a jiffies calibration that decides the jiffy the whole chain hangs on, so a tight pair
  // of readings keeps the window about one tick wide. Unset: up to
  // Kernel::receive_delay_ms after the send began.
  std::optional<double> sent_by_ms;
  // How long the run watches; a connection still open then is "alive".
  double horizon_ms = 0;
  // PeerBehaviour::unreachable with data in flight, IPv4: each ICMP unreachable for the
  // retransmitted head undoes one RTO backoff (RFC 6069, tcp_ld_RTO_revert(); IPv6 has
  // no such code). With every retransmission answered (no ICMP rate limit on the
  // sender of the errors) the RTO stays at its base: one retransmission per RTO until
  // the time-based abort, instead of a doubling chain.
  bool icmp_reverts_backoff = false;
};

struct ProbeWindow {
  int index = 0;            // 0-based
  double nominal_ms = 0;    // idle + index * interval (no lateness)
  Window window;            // when the probe leaves the client
  // false: sent only for some alignments of the timer wheel (with TCP_USER_TIMEOUT the
  // firing that crosses the timeout may come one period earlier or later).
  bool certain = true;
};

struct Prediction {
  Outcome outcome = Outcome::alive;
  // timeout/reset: when the application sees the error. alive: [horizon, +inf).
  Window window;
  double nominal_ms = 0;              // the textbook figure (no timer lateness)
  std::vector<ProbeWindow> probes;    // every probe expected before the outcome (or the horizon)
  bool rst_sent = false;              // does the client send an RST when it gives up
  std::string errno_name;             // what the application reads: "ETIMEDOUT", "ECONNRESET", ...; "" if alive
  std::vector<std::string> steps;     // human explanation, one line per step
  // Traffic::data_in_flight: the RTO retransmissions (index 0 = the first, which starts
  // retrans_stamp); Traffic::connecting: the SYN retransmissions. Empty when idle.
  // Their nominal_ms are the textbook chain (no lateness, no tail-loss probe).
  std::vector<ProbeWindow> retransmissions;
  // Traffic::data_in_flight with a tail-loss probe (Retransmission::early_retrans, sack):
  // when the probe (a copy of the last segment, not counted as a retransmission) leaves.
  // nominal_ms: the send plus the PTO.
  std::optional<ProbeWindow> loss_probe;
  std::vector<int> hz_values;         // the HZ values the windows cover (several when HZ is unknown)
  // What the ends of the timer-fired windows allow after the latest bucket: Kernel::late_ticks
  // ticks (of the longest tick covered), then the wake-up slack and the receive delay.
  double late_tick_ms = 0;
};

Prediction predict(const Input& input);

// The input as the kernel of input.kernel.version sees it: what that version lacks is
// taken out (no tcp_syn_linear_timeouts before 6.5). predict() works on this; callers
// that describe the input (the textbook figure) use it too.
Input for_kernel(const Input& input);

// Helpers exposed for tests and `kaharness predict`.
// The HZ values the model covers when the kernel's is unknown.
inline constexpr int kCommonHz[] = {100, 250, 300, 1000};
// Wheel level (0..8; 0..7 at HZ=100) of a timer armed `delay_jiffies` ahead of the wheel's clock.
int wheel_level(std::uint64_t delay_jiffies, int hz = 1000);
// Wheel granularity (jiffies) of a timer armed `delay_jiffies` ahead: 8^level.
std::uint64_t wheel_granularity(std::uint64_t delay_jiffies);
std::uint64_t wheel_granularity(std::uint64_t delay_jiffies, int hz);
// Bounds of the lateness (jiffies) of such a timer: [1, g] for an unknown phase.
struct JiffyRange {
  std::uint64_t min = 0;
  std::uint64_t max = 0;
};
JiffyRange wheel_lateness(std::uint64_t delay_jiffies, int hz = 1000);
// calc_wheel_index(): the jiffy a timer with this absolute expiry runs in, when it is
// enqueued while the wheel's clock reads `clk` (jiffies, or jiffies + 1 from inside a
// timer callback).
std::uint64_t bucket_expiry(std::uint64_t expires, std::uint64_t clk, int hz);
// Period (jiffies) of a timer that re-arms itself for `delay_jiffies` from its own
// callback: a fixed g - (delay mod g) late each time. 30000 jiffies at HZ=250 -> 30208.
std::uint64_t self_rearm_period(std::uint64_t delay_jiffies, int hz);
// msecs_to_jiffies(): rounds up.
std::uint64_t msecs_to_jiffies(double ms, int hz);
// tcp_model_timeout(): the retransmission-abort time in ms.
double retransmission_timeout_ms(int boundary, double rto_base_ms, double rto_max_ms);
// tcp_schedule_loss_probe(): the delay (jiffies) the retransmission timer is armed for when
// data goes out, if that timer is a tail-loss probe; nullopt when no probe is scheduled
// (tcp_early_retrans not 3 or 4, no SACK, or nothing in flight). 51 jiffies for the
// harness's LAN connections at HZ=250 (srtt ~0.05 ms, RTO 204 ms): the RTO's own delay.
std::optional<std::uint64_t> loss_probe_jiffies(const Retransmission& rt, int hz);

}  // namespace kah::model
