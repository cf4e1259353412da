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
#pragma once

#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <vector>

namespace kah::model {

enum class Outcome { timeout, reset, alive };

// What the peer (or the path to it) does once the fault is applied.
enum class PeerBehaviour {
  answers,   // healthy peer, or frozen application: its kernel ACKs every probe
  silent,    // nothing comes back: blackhole, lost replies, lost probes, link down
  rebooted,  // the peer lost the connection state: it answers the first segment with RST
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
  double first_rto_ms = 200;   // RTO of the first data retransmission (srtt-based; >= rto_min)
};

// Relates the kernel's jiffies to CLOCK_MONOTONIC when the run could measure it
// (root reads /proc/timer_list). With it, each timer's bucket is known exactly.
struct JiffyCalibration {
  std::uint64_t jiffies_at_origin = 0;  // value of jiffies at t_r = 0
  double origin_phase = 0;  // fraction of a tick already elapsed at t_r, in [0, 1)
  double phase_uncertainty = 1;  // how far origin_phase may be off, in ticks
};

struct Kernel {
  std::optional<int> hz;          // CONFIG_HZ; unknown -> union over 100, 250, 300, 1000
  double wakeup_slack_ms = 5;     // softirq and user-space wake-up latency allowed after a timer fires
  double rtt_ms = 1;              // round trip to the peer (reset arrives one RTT after the probe)
  std::optional<JiffyCalibration> calibration;
};

struct Input {
  Keepalive keepalive;
  Retransmission retransmission;
  Kernel kernel;
  PeerBehaviour peer = PeerBehaviour::silent;
  Traffic traffic = Traffic::idle;
  // When the keepalive timer was last armed (connection established, or option set),
  // relative to t_r. Normally slightly negative: armed at establishment, just before
  // the last data arrived. 0 if unknown.
  double armed_at_ms = 0;
  // For Traffic::data_in_flight: when the first unacknowledged segment was sent, relative to t_r.
  double data_sent_at_ms = 0;
  // How long the run watches; a connection still open then is "alive".
  double horizon_ms = 0;
};

struct ProbeWindow {
  int index = 0;            // 0-based
  double nominal_ms = 0;    // idle + index * interval (no lateness)
  Window window;            // when the probe leaves the client
};

struct Prediction {
  Outcome outcome = Outcome::alive;
  // timeout/reset: when the application sees the error. alive: [horizon, +inf).
  Window window;
  double nominal_ms = 0;              // the textbook figure (no timer lateness)
  std::vector<ProbeWindow> probes;    // every probe expected before the outcome (or the horizon)
  bool rst_sent = false;              // does the client send an RST when it gives up
  std::vector<std::string> steps;     // human explanation, one line per step
};

Prediction predict(const Input& input);

// Helpers exposed for tests and `kaharness predict`.
// Wheel granularity (jiffies) of a timer armed `delay_jiffies` ahead.
std::uint64_t wheel_granularity(std::uint64_t delay_jiffies);
// Bounds of the lateness (jiffies) of such a timer: [1, g] for an unknown phase.
// tcp_model_timeout(): the retransmission-abort time in ms.
double retransmission_timeout_ms(int boundary, double rto_base_ms, double rto_max_ms);

}  // namespace kah::model
