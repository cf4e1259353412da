#include "harness/report/report.h"

#include <cmath>
#include <limits>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "harness/judge/program_judge.h"

namespace kah {
namespace {

std::string window_text(const model::Window& w) {
  if (!w.bounded()) return fmt::format("[{:.1f} ms, never]", w.earliest_ms);
  return fmt::format("[{:.1f}, {:.1f}] ms", w.earliest_ms, w.latest_ms);
}

const char* verdict_tag(Verdict v) {
  switch (v) {
    case Verdict::pass: return "PASS ";
    case Verdict::fail: return "FAIL ";
    case Verdict::error: return "ERROR";
    case Verdict::skip: return "SKIP ";
    case Verdict::interrupted: return "INTR ";
    case Verdict::not_judged: return "DOUBT";
  }
  return "?    ";
}

// Milliseconds to one decimal (0.1 ms is below what any clock here resolves).
double round1(double v) { return std::isfinite(v) ? std::round(v * 10.0) / 10.0 : v; }

// JSON has no infinity: a window without an end has "latest_ms": null.
nlohmann::json number_or_null(double v) { return std::isfinite(v) ? nlohmann::json(v) : nlohmann::json(nullptr); }

nlohmann::json settings_json(const model::Input& in) {
  const auto& k = in.keepalive;
  return {{"keepalive", k.enabled},
          {"idle_s", k.idle_s},
          {"interval_s", k.interval_s},
          {"count", k.count},
          {"user_timeout_ms", k.user_timeout_ms}};
}

// What the model was given besides the settings (measured per connection) and how it
// reasoned: enough to replay a verdict from the JSON alone.
nlohmann::json model_json(const model::Input& in, const model::Prediction& p) {
  const auto& rt = in.retransmission;
  nlohmann::json j = {{"armed_at_ms", in.armed_at_ms},
                      {"receive_delay_ms", in.kernel.receive_delay_ms},
                      {"first_rto_ms", rt.first_rto_ms},
                      {"srtt_ms", rt.srtt_ms},
                      {"sack", rt.sack},
                      {"pacing_delay_jiffies", rt.pacing_delay_jiffies},
                      {"early_retrans", rt.early_retrans},
                      {"retries2", rt.retries2},
                      {"horizon_ms", in.horizon_ms},
                      {"steps", p.steps}};
  if (in.traffic == model::Traffic::data_in_flight) j["data_sent_at_ms"] = in.data_sent_at_ms;
  if (in.sent_by_ms) j["sent_by_ms"] = *in.sent_by_ms;
  if (in.armed_from_ms) j["armed_from_ms"] = *in.armed_from_ms;
  j["jiffies_lag_ms"] = in.kernel.jiffies_lag_ms;
  j["late_ticks"] = in.kernel.late_ticks;
  if (const auto& c = in.kernel.calibration) {
    j["calibration"] = {{"jiffies_at_origin", c->jiffies_at_origin},
                        {"origin_phase", c->origin_phase},
                        {"phase_uncertainty", c->phase_uncertainty}};
    if (c->idle_clock_jiffies) j["calibration"]["idle_clock_jiffies"] = *c->idle_clock_jiffies;
  }
  return j;
}

nlohmann::json probe_checks_json(const CaptureFindings& ev) {
  if (!ev.probes_checked) return nullptr;
  nlohmann::json checks = nlohmann::json::array();
  for (const auto& c : ev.probe_checks) {
    nlohmann::json j = {{"index", c.index}, {"verdict", evidence::to_string(c.verdict)}};
    if (c.seen_ms) j["seen_ms"] = round1(*c.seen_ms);
    j["timed_by"] = c.seen_ms ? nlohmann::json(c.timed_by) : nlohmann::json(nullptr);
    if (c.bucket_ms) j["bucket_ms"] = std::round(*c.bucket_ms * 1000) / 1000;
    if (c.softirq_late_ms) j["softirq_late_ms"] = std::round(*c.softirq_late_ms * 1000) / 1000;
    if (c.expected) {
      j["earliest_ms"] = round1(c.expected->earliest_ms);
      j["latest_ms"] = number_or_null(round1(c.expected->latest_ms));
    }
    checks.push_back(std::move(j));
  }
  return checks;
}

}  // namespace

namespace {

// Each program: the settings read from its sockets (always: they are what a user
// came to see), and what it did against [program.expect] (failures, or all with -v).
std::string console_programs(const CaseResult& c, bool verbose) {
  std::string out;
  for (const auto& p : c.programs) {
    const std::string exit = p.exit_status ? fmt::format("exited with status {} at {:.3f} s", *p.exit_status,
                                                         *p.exited_ms / 1000.0)
                                           : "running at the horizon";
    out += fmt::format("  {} program {} on the {} (pid {}): {}\n", verdict_tag(p.verdict), p.name, p.host, p.pid, exit);
    for (const auto& s : p.sockets)
      out += fmt::format("        {}'s connection {} {}: {}\n", p.name, p.host == "server" ? "from" : "to", s.remote,
                         describe_settings(s));
    for (const auto& check : p.checks)
      if (verbose || check.verdict != Verdict::pass)
        out += fmt::format("        {} {}: {}\n", verdict_tag(check.verdict), check.what, check.message);
  }
  return out;
}

}  // namespace

std::string console_case(const CaseResult& c, bool verbose) {
  std::string out = fmt::format("{} {}  ({}, {:.1f} s)\n", verdict_tag(c.verdict), c.name, c.file, c.wall_ms / 1000.0);
  if (!c.error.empty()) out += fmt::format("      {}\n", c.error);
  if (!c.reason.empty()) out += fmt::format("      {}\n", c.reason);
  for (const auto& r : c.connections) {
    if (!verbose && r.verdict == Verdict::pass && c.verdict == Verdict::pass) continue;
    const auto& o = r.observed;
    out += fmt::format("  {} {:<14} {:<7} {:<10} at {:>9.1f} ms  expected {} {}  probes {}\n",
                       verdict_tag(r.verdict), r.name, to_string(o.outcome),
                       o.errno_name.empty() ? "-" : o.errno_name, o.at_ms, to_string(r.expected.outcome),
                       window_text(r.expected.window), o.probes);
    if (!r.message.empty()) out += fmt::format("        {}\n", r.message);
  }
  for (const auto& s : c.survival) {
    out += fmt::format("  {} {:<14} {} of {} alive, expected {:.4f} -> accept [{}, {}] (false-failure rate {:.1e})\n",
                       verdict_tag(s.verdict), s.connection, s.alive, s.copies, s.model, s.accept_lo, s.accept_hi,
                       s.false_failure);
    if (!s.message.empty()) out += fmt::format("        {}\n", s.message);
  }
  out += console_programs(c, verbose);
  if (verbose && !c.counters.empty()) {
    std::string list;
    for (const auto& [name, packets] : c.counters) list += fmt::format("{}{} = {}", list.empty() ? "" : ", ", name, packets);
    out += fmt::format("  middlebox counters: {}\n", list);
  }
  return out;
}

std::string calibration_text(const RunResult& run) {
  if (run.calibration == "timer_list") return "jiffies calibrated (timer_list)";
  if (run.calibrated) return fmt::format("calibrated from {} ({})", run.calibration, run.calibration_note);
  return run.calibration_note.empty() ? "not calibrated" : fmt::format("not calibrated: {}", run.calibration_note);
}

std::string kernel_trace_text(const RunResult& run) {
  const auto& k = run.kernel_trace;
  if (!k.on) return fmt::format("kernel trace off: {}", k.note.empty() ? "not requested" : k.note);
  std::string out = fmt::format("kernel trace: {} probes and {} ends timed by the kernel; {} connections matched, {} "
                                "ambiguous, {} not found; {} samples lost",
                                k.probes_timed, k.ends_timed, k.matched, k.ambiguous, k.unmatched, k.lost);
  if (k.offset_mismatches > 0) out += fmt::format("; {} timer-offset mismatches", k.offset_mismatches);
  if (!k.timer_callbacks_per_cpu.empty()) {
    std::string per_cpu, silent;
    std::uint64_t total = 0;
    for (const auto& [cpu, n] : k.timer_callbacks_per_cpu) {
      per_cpu += fmt::format("{}{}: {}", per_cpu.empty() ? "" : ", ", cpu, n);
      if (n == 0) silent += fmt::format("{}{}", silent.empty() ? "" : ", ", cpu);
      total += n;
    }
    out += fmt::format("; timer callbacks per CPU {}", per_cpu);
    if (total > 0 && !silent.empty())
      out += fmt::format(" (none from CPU {}: if the kernel does not hand that CPU's tracepoints to perf, what ran "
                         "there keeps the capture's timing)",
                         silent);
  }
  if (!k.note.empty()) out += fmt::format(" ({})", k.note);
  return out;
}

std::string console_summary(const RunResult& run) {
  int passed = 0, failed = 0, errors = 0, skipped = 0, interrupted = 0, not_judged = 0, connections = 0;
  for (const auto& c : run.cases) {
    connections += static_cast<int>(c.connections.size());
    passed += c.verdict == Verdict::pass;
    failed += c.verdict == Verdict::fail;
    errors += c.verdict == Verdict::error;
    skipped += c.verdict == Verdict::skip;
    interrupted += c.verdict == Verdict::interrupted;
    not_judged += c.verdict == Verdict::not_judged;
  }
  std::string out = fmt::format(
      "{} cases: {} passed, {} failed, {} errors, {} skipped{}{}; {} connections; {:.1f} s (kernel {}, HZ {}, backend {}, "
      "{})\n",
      run.cases.size(), passed, failed, errors, skipped, interrupted ? fmt::format(", {} interrupted", interrupted) : "",
      not_judged ? fmt::format(", {} not judged (the machine held the kernel: not red unless --fail-on-not-judged)",
                               not_judged)
                 : "",
      connections, run.wall_ms / 1000.0, run.kernel, run.hz ? std::to_string(*run.hz) : std::string("unknown"),
      run.backend,
      calibration_text(run));
  if (run.kernel_trace.on || !run.kernel_trace.note.empty()) out += kernel_trace_text(run) + "\n";
  if (run.wakeup_priority.rfind("normal (", 0) == 0 && run.wakeup_priority != "normal (not asked)")
    out += fmt::format("timing threads at {} priority: on a busy machine ends may be seen, and idle timeouts fire, late\n",
                       run.wakeup_priority);
  if (!run.realtime_steps.empty())
    out += fmt::format("the realtime clock stepped during the run ({}): capture stamps were placed across it\n",
                       fmt::join(run.realtime_steps, "; "));
  if (!run.interrupted_by.empty())
    out += fmt::format("interrupted by {}: connections still open were alive so far (verdict interrupted)\n",
                       run.interrupted_by);
  return out;
}

namespace {

// One connection: the contract's keys (expected, observed, verdict) and what was added since.
nlohmann::json connection_json(const ConnectionResult& r) {
  nlohmann::json probes = nlohmann::json::array();
  for (const auto& p : r.prediction.probes)
    probes.push_back({{"index", p.index},
                      {"nominal_ms", p.nominal_ms},
                      {"earliest_ms", round1(p.window.earliest_ms)},
                      {"latest_ms", number_or_null(round1(p.window.latest_ms))}});
  nlohmann::json j = {
      {"name", r.name},
      {"family", to_string(r.family)},
      {"expected",
       {{"outcome", to_string(r.expected.outcome)},
        {"earliest_ms", round1(r.expected.window.earliest_ms)},
        {"latest_ms", number_or_null(round1(r.expected.window.latest_ms))},
        {"nominal_ms", r.prediction.nominal_ms},
        {"errno", r.expected.errno_name ? nlohmann::json(*r.expected.errno_name)
                  : r.expected.model_errno.empty() ? nlohmann::json(nullptr)
                                                   : nlohmann::json(r.expected.model_errno)},
        {"probes", probes}}},
      {"observed",
       {{"outcome", to_string(r.observed.outcome)},
        {"errno", r.observed.errno_name.empty() ? nlohmann::json(nullptr) : nlohmann::json(r.observed.errno_name)},
        {"at_ms", round1(r.observed.at_ms)},
        {"timed_by", r.observed.timed_by},
        {"probes", r.observed.probes},
        {"probe_checks", probe_checks_json(r.evidence)}}},
      {"verdict", to_string(r.verdict)},
      {"settings", settings_json(r.model_input)},
  };
  j["model"] = model_json(r.model_input, r.prediction);
  if (r.expected.deadline_ms) j["expected"]["deadline_ms"] = *r.expected.deadline_ms;
  if (r.expected.survival) j["expected"]["survival"] = *r.expected.survival;
  if (!r.message.empty()) j["message"] = r.message;
  if (r.evidence.fault_ms) j["observed"]["fault_at_ms"] = round1(*r.evidence.fault_ms);
  if (r.evidence.origin_in_run_ms) j["observed"]["t0_in_run_ms"] = round1(*r.evidence.origin_in_run_ms);
  if (r.observed.woke_at_ms) j["observed"]["woke_at_ms"] = round1(*r.observed.woke_at_ms);
  if (r.observed.open_until_ms) j["observed"]["open_until_ms"] = round1(*r.observed.open_until_ms);
  if (r.observed.captured_at_ms) j["observed"]["captured_at_ms"] = round1(*r.observed.captured_at_ms);
  if (const auto& k = r.observed.kernel_end) {
    auto& jk = j["observed"]["kernel_trace"] = {{"event", k->event}, {"at_ms", std::round(k->at_ms * 1000) / 1000},
                                                {"state", k->state == evidence::kTcpCloseWait ? "CLOSE_WAIT" : "CLOSE"}};
    if (k->baseclk) jk["baseclk"] = *k->baseclk;
    if (k->callback_ms) jk["callback_ms"] = std::round(*k->callback_ms * 1000) / 1000;
    if (k->softirq_late_ms) jk["softirq_late_ms"] = std::round(*k->softirq_late_ms * 1000) / 1000;
  }
  if (!r.evidence.timer_samples.empty()) {
    auto& samples = j["observed"]["kernel_timer"] = nlohmann::json::array();
    for (const auto& t : r.evidence.timer_samples)
      samples.push_back({{"t_ms", round1(t.t_ms)}, {"kind", t.kind}, {"expires_in_ms", t.expires_in_ms},
                         {"probes", t.probes}});
  }
  if (!r.evidence.pcap_client.empty())
    j["pcap"] = {{"client", r.evidence.pcap_client}, {"server", r.evidence.pcap_server}};
  return j;
}

nlohmann::json survival_json(const SurvivalResult& s) {
  nlohmann::json js = {{"connection", s.connection},
                       {"copies", s.copies},
                       {"alive", s.alive},
                       {"expected", s.model},
                       {"accept", {s.accept_lo, s.accept_hi}},
                       {"false_failure_rate", s.false_failure},
                       {"verdict", to_string(s.verdict)}};
  if (s.stated) js["stated"] = *s.stated;
  if (!s.message.empty()) js["message"] = s.message;
  return js;
}

nlohmann::json kernel_trace_json(const evidence::KernelTraceStatus& k) {
  const auto optional = [](const std::optional<std::int64_t>& v) { return v ? nlohmann::json(*v) : nlohmann::json(nullptr); };
  nlohmann::json per_cpu = nlohmann::json::object();
  for (const auto& [cpu, n] : k.timer_callbacks_per_cpu) per_cpu[std::to_string(cpu)] = n;
  return {{"on", k.on},
          {"note", k.note.empty() ? nlohmann::json(nullptr) : nlohmann::json(k.note)},
          {"lost", k.lost},
          {"matched", k.matched},
          {"ambiguous", k.ambiguous},
          {"unmatched", k.unmatched},
          {"offset_mismatches", k.offset_mismatches},
          {"keepalive_timer_offset", optional(k.keepalive_timer_offset)},
          {"retransmit_timer_offset", optional(k.retransmit_timer_offset)},
          {"probes_timed", k.probes_timed},
          {"ends_timed", k.ends_timed},
          {"timer_callbacks_per_cpu", per_cpu}};
}

// A program: what ran, what it did (times in ms from the fault), the settings read
// from its sockets, its last output lines and the files holding all of it.
nlohmann::json program_json(const ProgramResult& p) {
  nlohmann::json sockets = nlohmann::json::array();
  for (const auto& s : p.sockets)
    sockets.push_back({{"connection", s.connection}, {"local", s.local}, {"remote", s.remote},
                       {"keepalive", s.keepalive}, {"idle_s", s.idle_s}, {"interval_s", s.interval_s},
                       {"count", s.count}, {"user_timeout_ms", s.user_timeout_ms}, {"text", describe_settings(s)}});
  nlohmann::json output = nlohmann::json::array();
  for (const auto& line : p.output)
    output.push_back({{"at_ms", round1(line.at_ms)}, {"stream", line.stream}, {"text", line.text}});
  nlohmann::json checks = nlohmann::json::array();
  for (const auto& check : p.checks)
    checks.push_back({{"what", check.what}, {"verdict", to_string(check.verdict)}, {"message", check.message}});
  nlohmann::json j = {{"name", p.name}, {"host", p.host}, {"command", p.command}, {"where", p.where.str()},
                      {"pid", p.pid}, {"started_ms", round1(p.started_ms)}, {"verdict", to_string(p.verdict)},
                      {"settings", sockets}, {"output", output}, {"checks", checks},
                      {"stdout_file", p.stdout_file}, {"stderr_file", p.stderr_file},
                      {"stopped_by_harness", p.stopped_by_harness}};
  if (p.ready_ms) j["ready_ms"] = round1(*p.ready_ms);
  if (p.exit_status) j["exit_status"] = *p.exit_status;
  if (p.exited_ms) j["exited_ms"] = round1(*p.exited_ms);
  if (p.keeper_reaped_ms) j["keeper_reaped_ms"] = round1(*p.keeper_reaped_ms);
  if (p.last_received_ms) j["last_received_ms"] = round1(*p.last_received_ms);
  return j;
}

nlohmann::json case_json(const CaseResult& c) {
  nlohmann::json conns = nlohmann::json::array();
  for (const auto& r : c.connections) conns.push_back(connection_json(r));
  nlohmann::json jc = {{"name", c.name}, {"description", c.description.empty() ? c.name : c.description},
                       {"file", c.file}, {"verdict", to_string(c.verdict)},
                       {"wall_ms", round1(c.wall_ms)}, {"connections", conns}};
  if (!c.error.empty()) jc["error"] = c.error;
  if (!c.reason.empty()) jc["reason"] = c.reason;
  if (!c.survival.empty()) {
    nlohmann::json survival = nlohmann::json::array();
    for (const auto& s : c.survival) survival.push_back(survival_json(s));
    jc["survival"] = std::move(survival);
  }
  if (!c.counters.empty()) jc["middlebox_counters"] = c.counters;
  if (!c.programs.empty()) {
    nlohmann::json programs = nlohmann::json::array();
    for (const auto& p : c.programs) programs.push_back(program_json(p));
    jc["programs"] = std::move(programs);
  }
  return jc;
}

}  // namespace

nlohmann::json result_json(const RunResult& run) {
  nlohmann::json cases = nlohmann::json::array();
  for (const auto& c : run.cases) cases.push_back(case_json(c));
  return {{"kernel", run.kernel},
          {"hz", run.hz ? nlohmann::json(*run.hz) : nlohmann::json(nullptr)},
          {"hz_source", run.hz_source},
          {"backend", run.backend},
          {"calibrated", run.calibrated},
          {"calibration", run.calibration},
          {"calibration_note", run.calibration_note.empty() ? nlohmann::json(nullptr) : nlohmann::json(run.calibration_note)},
          {"kernel_trace", kernel_trace_json(run.kernel_trace)},
          {"wakeup_priority", run.wakeup_priority},
          {"realtime_steps", run.realtime_steps},
          {"stall_watch", run.stall_watch},
          {"machine_stalls", run.machine_stalls},
          {"interrupted", run.interrupted_by.empty() ? nlohmann::json(nullptr) : nlohmann::json(run.interrupted_by)},
          {"wall_ms", round1(run.wall_ms)},
          {"cases", cases}};
}

int exit_code(const RunResult& run, RedAlso also) {
  for (const auto& c : run.cases)
    if (c.verdict == Verdict::fail || c.verdict == Verdict::error || (also.skip && c.verdict == Verdict::skip) ||
        (also.not_judged && c.verdict == Verdict::not_judged))
      return 1;
  return 0;
}

}  // namespace kah
