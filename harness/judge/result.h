// What a run produced: per connection the expectation (outcome and window from the
// model), the observation, and the verdict. Plain values, filled by the runner and
// the judge, read by the reporters.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "harness/case/case.h"
#include "harness/evidence/classify.h"
#include "harness/evidence/kernel_timing.h"
#include "harness/evidence/timer_sample.h"
#include "harness/evidence/probe_check.h"
#include "harness/model/timing.h"

namespace kah {

// interrupted: the run was stopped (SIGINT/SIGTERM) before this was decided.
// not_judged: the observation missed the model's window, but the machine measurably kept
// the kernel from running on time then (a CPU held, the realtime clock stepped): neither
// a pass nor a kernel/model difference, so it does not make the run red unless asked
// (`--fail-on-not-judged`). The harness's own failures (a fault that landed late) are errors.
enum class Verdict { pass, fail, error, skip, interrupted, not_judged };
std::string to_string(Verdict v);

// closed: the program on this side closed the connection itself (its FIN), before any
// end by the kernel (programs' connections only).
enum class ObservedOutcome { timeout, reset, alive, eof, error, closed };
std::string to_string(ObservedOutcome o);

struct Expected {
  ExpectedOutcome outcome = ExpectedOutcome::alive;
  model::Window window;                   // from the model (alive: [horizon, inf))
  std::optional<double> deadline_ms;      // the case's own requirement
  std::optional<model::Outcome> model_outcome;  // what the model predicts for this connection
  std::optional<std::string> errno_name;  // the case's [expect] errno
  std::string model_errno;                // what the model predicts the application reads ("" = nothing)
  // Random faults: the model's probability that the connection is still open at the
  // horizon. Staying open is then as good as ending inside the window; the share
  // that stays open is judged over the copies (SurvivalResult).
  std::optional<double> survival;
};

struct Observed {
  ObservedOutcome outcome = ObservedOutcome::alive;
  std::string errno_name;   // "ETIMEDOUT", "ECONNRESET", ... ("" when alive or eof)
  double at_ms = 0;         // from the last segment received before the fault; horizon when alive
  int probes = 0;           // keepalive probes the client sent after the fault
  // Where at_ms comes from: "kernel-trace" (the kernel's tracepoints: the bucket of
  // the timer in whose callback the socket closed, or the state change itself; see
  // kernel_end), "capture" (the kernel's stamp of the RST that ended the connection),
  // "wakeup" (when the event loop saw the error: late by scheduling) or,
  // for a program's connection, "sock_diag" (the first sample that no longer listed it).
  std::string timed_by = "wakeup";
  std::optional<double> woke_at_ms;  // when the event loop saw the end, for comparison
  // timed_by "sock_diag": the last sample that still listed the connection, from t_r.
  // The end lies in (open_until_ms, at_ms]; how long that is depends on how promptly
  // the sampling thread ran, so it is judged as that interval, not as a point.
  std::optional<double> open_until_ms;
  std::optional<double> captured_at_ms;  // the RST's capture stamp, when kernel-trace timed it
  std::optional<evidence::KernelEnd> kernel_end;  // set with timed_by "kernel-trace"
};

// An observation as tests and tools write one down.
inline Observed observed(ObservedOutcome outcome, std::string errno_name, double at_ms, int probes) {
  Observed o;
  o.outcome = outcome;
  o.errno_name = std::move(errno_name);
  o.at_ms = at_ms;
  o.probes = probes;
  return o;
}

// What the captures show of one connection.
struct CaptureFindings {
  std::optional<evidence::FlowAnalysis> flow;     // classified, both directions, client's end
  std::vector<evidence::ProbeCheck> probe_checks;  // each expected probe against its window
  bool probes_checked = false;  // false when the fault hides probes from the capture
  double origin_realtime_ms = 0;                   // t = 0 in capture time
  std::optional<double> fault_ms;                  // when the fault was applied, from t = 0
  // t = 0 on CLOCK_MONOTONIC (ms), and as ms from the run's start: the clock of the
  // run's machine_stalls, to line a connection up with them.
  std::optional<double> origin_monotonic_ms, origin_in_run_ms;
  std::string pcap_client, pcap_server;            // relative to --pcap DIR; empty: not written
  // The kernel's view of the client socket's timer (sock_diag, as `ss -o`), sampled.
  std::vector<evidence::TimerSample> timer_samples;
};

struct ConnectionResult {
  std::string name;     // "c1-v4", or "c1-v4#2" for the second copy
  Family family = Family::ipv4;
  SourcePos where;      // the [[connection]] in the case file
  Expected expected;
  Observed observed;
  model::Input model_input;  // the settings the kernel used, as the model saw them
  model::Prediction prediction;
  CaptureFindings evidence;
  Verdict verdict = Verdict::error;
  std::string message;  // why it failed, or "" when it passed
};

// Random faults: how many copies of one connection (one family) are still open at
// the horizon, against the model's survival probability, by a two-sided binomial
// test whose false-failure rate is at most model::kFalseFailureRate.
struct SurvivalResult {
  std::string connection;  // "c1-v4": the copies "c1-v4#1" .. "#n"
  SourcePos where;         // the [[connection]]
  int copies = 0;
  int alive = 0;
  double model = 0;               // P(alive) from the model
  std::optional<double> stated;   // [expect] survival
  int accept_lo = 0, accept_hi = 0;  // `alive` must fall in [lo, hi]
  double false_failure = 0;       // P(outside [lo, hi]) were the model right
  Verdict verdict = Verdict::error;
  std::string message;
};

// The keepalive settings in force on one of a program's sockets, as read from the
// socket itself (pidfd_getfd + getsockopt; a key the program did not set reads as
// the namespace's sysctl).
struct SocketSettings {
  std::string connection;  // the ConnectionResult's name
  std::string local, remote;  // "198.18.0.1:40112"
  bool keepalive = false;
  int idle_s = 0, interval_s = 0, count = 0, user_timeout_ms = 0;
};

// One output line of a program, in ms from the fault (negative: before it).
struct ProgramLine {
  double at_ms = 0;
  std::string stream;  // "stdout" or "stderr"
  std::string text;
};

// One expectation about what a program did ([program.expect]), judged.
struct ProgramCheck {
  std::string what;  // "exit_code", "exits_within_s", "output", "alive", "settings"
  Verdict verdict = Verdict::error;
  std::string message;  // what was expected and what happened (its output quoted)
};

// A real program of the case: what it did and how that was judged. Its connections
// are judged as ConnectionResults of the case (named "<program>-<n>").
struct ProgramResult {
  std::string name;
  std::string host;  // "client" or "server"
  std::vector<std::string> command;  // as run (placeholders expanded)
  SourcePos where;
  int pid = 0;  // its keeper (every process of it descends from it)
  double started_ms = 0;  // from the fault (negative)
  std::optional<double> ready_ms;
  std::optional<int> exit_status;  // 128 + N: killed by signal N
  std::optional<double> exited_ms;  // when its parent in the harness's chain (init, warden) reaped it
  std::optional<double> keeper_reaped_ms;  // when the harness reaped the chain's top (the keeper)
  // The earliest last segment its judged connections received before the fault, from
  // the fault (negative: that long before it); unknown without connections.
  std::optional<double> last_received_ms;
  bool stopped_by_harness = false;  // still running at the end: SIGTERM (then SIGKILL)
  std::vector<SocketSettings> sockets;
  std::vector<ProgramLine> output;  // the last lines (all of them are in the files)
  std::string stdout_file, stderr_file;
  std::vector<ProgramCheck> checks;
  Verdict verdict = Verdict::pass;
};

struct CaseResult {
  std::string name;
  std::string description;  // the case's, or its name when it has none
  std::string file;
  Verdict verdict = Verdict::error;
  std::string error;    // set when the case could not run (verdict error)
  // Set when the case was skipped (verdict skip): what it needs that the backend lacks.
  std::string reason;
  double wall_ms = 0;
  std::vector<ConnectionResult> connections;
  std::vector<SurvivalResult> survival;           // random faults only
  std::map<std::string, std::uint64_t> counters;  // middlebox evidence: "router.invalid", "fault.hit"
  std::vector<ProgramResult> programs;            // the case's [[program]]s, in order
};

struct RunResult {
  std::string kernel;
  std::optional<int> hz;
  std::string hz_source;
  std::string backend = "netns";  // how the namespaces were had: netns, userns or local
  bool calibrated = false;  // windows used the jiffies calibration
  // How: "timer_list" (jiffies read from /proc/timer_list), "timer-firings" (the tick's
  // phase from a canary's timers, jiffies modulo their granularity) or "none"; and why
  // (or why not: --no-calibration, HZ unknown, nothing to read it from).
  std::string calibration = "none";
  std::string calibration_note;
  // Kernel tracepoints (timer_expire_entry, inet_sock_set_state): on or why not, and
  // what they timed.
  evidence::KernelTraceStatus kernel_trace;
  // The scheduling class of the threads that time ends and land timeouts
  // (clock/wakeup_priority.h): "SCHED_FIFO 10", or "normal (why)".
  std::string wakeup_priority;
  // Steps of the realtime clock seen during the run (clock/realtime_steps.h), e.g.
  // "+17.500 ms between CLOCK_MONOTONIC 1234.567 and 1236.001 ms". Capture stamps
  // were placed across them.
  std::vector<std::string> realtime_steps;
  // Whether stalls of the machine's CPUs were watched (clock/stall_watch.h): "every CPU
  // watched (...)" or why not; and the stalls seen during the run, e.g. "CPU 1: 88.0 ms
  // from 4075.3 ms into the run". A late connection whose lateness a stall covers is not
  // judged (verdict error, naming it).
  std::string stall_watch;
  std::vector<std::string> machine_stalls;
  // The signal that stopped the run ("SIGINT", "SIGTERM"); "" when it ran to the end.
  std::string interrupted_by;
  double wall_ms = 0;
  std::vector<CaseResult> cases;
};

}  // namespace kah
