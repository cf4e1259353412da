// The command line of kaharness (in the library so tests can drive it). Parses arguments, loads and validates every case
// before anything is built, checks privileges, runs, reports, and maps the result
// to the contract's exit codes: 0 all passed, 1 a case failed, 2 bad input,
// 3 the environment cannot run it.
#include <sys/utsname.h>
#include <unistd.h>

#include <fnmatch.h>

#include <algorithm>
#include <cerrno>
#include <condition_variable>
#include <mutex>
#include <thread>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <optional>
#include <sstream>
#include <iostream>

#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include "harness/cli/cli.h"
#include "harness/case/case.h"
#include "harness/fault/fault.h"
#include "harness/run/backend.h"
#include "harness/run/environment.h"
#include "harness/cli/interrupt_guard.h"
#include "harness/judge/interrupt.h"
#include "harness/evidence/classify.h"
#include "harness/report/html_report.h"
#include "harness/report/junit.h"
#include "harness/evidence/pcap_file.h"
#include "harness/clock/jiffies.h"
#include "harness/report/prediction.h"
#include "harness/report/report.h"
#include "harness/report/progress.h"
#include "harness/run/runner.h"
#include "harness/run/shard.h"
#include "harness/clock/clock.h"
#include "harness/cli/sweep.h"
#include "harness/run/load_checks.h"
#include "harness/cli/output_paths.h"
#include "harness/cli/margins_cmd.h"
#include "harness/cli/to_case_cmd.h"
#include "harness/report/margins.h"
#include "harness/sysctl/known_keys.h"
#include "harness/sysctl/tuning.h"
#include "harness/validate/battery.h"
#include "harness/validate/verdict_table.h"
#include "netns/namespace.h"

namespace {

constexpr int kExitPass = 0;
constexpr int kExitBadInput = 2;
constexpr int kExitEnvironment = 3;
constexpr const char* kKeepPrefix = "kaharness-";

struct RunArgs {
  std::string backend = "auto";
  std::vector<std::string> paths;
  std::string json, junit, report, pcap, filter, shard;
  int jobs = 0;
  int hz = 0;
  bool keep = false;
  bool no_calibration = false;
  bool kernel_trace = false;
  bool pcap_all = false;
  bool no_capture = false;
  bool dry_run = false;
  bool force = false;
  bool in_place = false;
  bool fail_on_skip = false;
  bool fail_on_not_judged = false;
  bool keep_workdirs = false;
  std::vector<std::string> program_args;  // NAME=ARG, in order
  double max_duration_s = 600;
};

// What a person sees while a run goes on: each case as it ends, and the live progress
// line at the bottom of a terminal, redrawn a few times a second (nothing at all when
// stdout is not a terminal: CI logs stay clean).
class LiveLine : public kah::RunListener {
 public:
  LiveLine(std::size_t total_cases, bool enabled, bool verbose) : progress_(total_cases), verbose_(verbose) {
    if (enabled) thread_ = std::thread([this] { draw_until_stopped(); });
  }
  ~LiveLine() { stop(); }
  LiveLine(const LiveLine&) = delete;
  LiveLine& operator=(const LiveLine&) = delete;

  void case_started(const kah::Case& c) override { progress_.case_started(c.name); }
  void expect(const kah::Case& c, const std::string& what, double at_monotonic_ms) override {
    progress_.expect(c.name, what, at_monotonic_ms);
  }
  void case_done(const kah::CaseResult& result) override {
    progress_.case_done(result.name);
    print(kah::console_case(result, verbose_));
  }

  // Prints text above the live line.
  void print(const std::string& text) {
    std::lock_guard lock(mutex_);
    if (thread_.joinable()) fmt::print("\r\033[K");
    fmt::print("{}", text);
    std::fflush(stdout);
  }

  void stop() {
    {
      std::lock_guard lock(mutex_);
      if (!thread_.joinable() || stopping_) return;
      stopping_ = true;
    }
    wake_.notify_all();
    thread_.join();
    fmt::print("\r\033[K");
    std::fflush(stdout);
  }

 private:
  void draw_until_stopped() {
    std::unique_lock lock(mutex_);
    while (!stopping_) {
      fmt::print("\r\033[K{}", progress_.line(kah::monotonic_ms()));
      std::fflush(stdout);
      wake_.wait_for(lock, std::chrono::milliseconds(250));
    }
  }

  kah::Progress progress_;
  bool verbose_ = false;
  std::mutex mutex_;
  std::condition_variable wake_;
  bool stopping_ = false;
  std::thread thread_;
};

struct SweepArgs {
  std::string backend = "auto";
  bool in_place = false;
  int connections = 500;
  int per_case = 25;
  std::uint64_t seed = 1;
  int hz = 0;
  bool no_calibration = false;
  bool kernel_trace = false;
  std::string json;
  std::string report;
};

struct AnalyzeArgs {
  std::string file;
  bool json = false;
  std::string to_case;  // --to-case FILE: write a case instead of the analysis
  std::string flow;     // --flow SPEC: which flow of the capture
};

// Writes a whole output file; an unwritable path is the user's input, so it throws
// CLI::ValidationError (exit 2) with the path and the reason.
void write_file(const std::string& path, const std::string& text) {
  std::ofstream out(path);
  out << text;
  out.close();
  if (!out) throw CLI::ValidationError(path, fmt::format("cannot write {}: {}", path, std::strerror(errno)));
}

// The fault kinds `predict` can answer without a case: those whose effect on the path
// is fixed (a router's NAT, timeout or random loss needs a case file).
std::vector<std::string> predictable_fault_names() {
  std::vector<std::string> names;
  for (const auto& row : kah::fault_kinds()) {
    if (row.path != kah::PathModel::fixed) continue;
    names.emplace_back(row.name);
    if (!row.alias.empty()) names.emplace_back(row.alias);
  }
  return names;
}

std::string predictable_faults_help() {
  std::string text = "what happens to the peer (default blackhole):";
  for (const auto& row : kah::fault_kinds())
    if (row.path == kah::PathModel::fixed) text += fmt::format("\n  {:<16} {}", row.name, row.what);
  return text;
}

// Options left out fall back to the sysctls (--sysctl, --sysctl-file), then to the
// kernel defaults.
struct PredictArgs {
  std::optional<int> idle, interval, count, retries2, syn_retries;
  int user_timeout_ms = 0, hz = 0;
  std::vector<std::string> sysctls;       // KEY=VALUE, in order
  std::vector<std::string> sysctl_files;  // sysctl.d files, in order (before --sysctl)
  std::string kernel;                     // X.Y; "" = the running kernel
  std::string fault = "blackhole";
  std::string traffic = "idle";
  bool json = false;
};

struct ValidateArgs {
  std::string backend = "auto";
  bool in_place = false;
  std::vector<std::string> files;
  std::vector<std::string> nat_timeouts;
  int user_timeout_ms = 0;
  double max_wait_s = 60;
  int hz = 0;
  bool no_calibration = false;
  bool dry_run = false;
  bool force = false;
  std::string json, junit, report;
};

// The backend `requested` ("auto": the first that works here), made ready before
// anything is built (libnftables would exit() without CAP_NET_ADMIN) and before any
// thread starts (entering a user namespace needs a single-threaded process). Says
// why each backend cannot run when none can.
std::optional<kah::Backend> enter_backend(const std::string& requested, bool in_place, const char* what) {
  const auto choice = kah::choose_backend(kah::backend_from_string(requested), in_place);
  if (!choice.backend) {
    fmt::print(stderr, "kaharness: this environment cannot run {} with backend {}:\n", what, requested);
    for (const auto& [backend, why] : choice.refused) fmt::print(stderr, "  {:<7} {}\n", kah::to_string(backend), why);
    return std::nullopt;
  }
  kah::use_backend(*choice.backend);
  return choice.backend;
}

// "backends here: netns 27/27, userns 27/27, local 12/27 (using netns)": how many of
// `cases` each backend can run on this machine, before anything is built.
std::string backends_here(const std::vector<kah::Case>& cases, const std::optional<kah::Backend>& chosen,
                          bool in_place) {
  std::string text;
  for (kah::Backend b : {kah::Backend::netns, kah::Backend::userns, kah::Backend::local}) {
    std::string figure = "cannot run here";
    if (!kah::refusal(b, in_place)) {
      const auto offers = kah::offers_of(b);
      const auto runnable = std::count_if(cases.begin(), cases.end(),
                                          [&](const kah::Case& c) { return !kah::skip_reason(c, b, offers); });
      figure = fmt::format("{}/{}", runnable, cases.size());
    }
    text += fmt::format("{}{} {}", text.empty() ? "" : ", ", kah::to_string(b), figure);
  }
  return fmt::format("backends here: {} ({})\n", text,
                     chosen ? "using " + kah::to_string(*chosen) : std::string("none can run them"));
}

// "K/N" with 1 <= K <= N.
kah::ShardSpec parse_shard(const std::string& text) {
  int k = 0, n = 0;
  char slash = 0;
  if (std::sscanf(text.c_str(), "%d%c%d", &k, &slash, &n) != 3 || slash != '/' || n < 1 || k < 1 || k > n)
    throw CLI::ValidationError("--shard", "expected K/N with 1 <= K <= N (K counts from 1), e.g. 2/4, found '" +
                                              text + "'");
  return {k, n};
}

// The running kernel's version (uname -r), which the model's version-dependent
// behaviours follow (harness/model/kernel_version.h).
std::optional<kah::model::KernelVersion> running_kernel_version() {
  struct utsname u {};
  if (uname(&u) != 0) return std::nullopt;
  return kah::model::parse_kernel_version(u.release);
}

kah::model::Kernel kernel_for(int hz_override, std::string& source) {
  kah::model::Kernel k;
  k.version = running_kernel_version();
  // One CPU: no other CPU's tick can beat the jiffies update.
  if (sysconf(_SC_NPROCESSORS_ONLN) == 1) k.late_ticks = 0;
  if (hz_override > 0) {
    k.hz = hz_override;
    source = "--hz";
    return k;
  }
  const auto hz = kah::detect_hz();
  k.hz = hz.hz;
  source = hz.source;
  return k;
}

// Prints each problem as a line on stderr; true when there was none.
template <typename Problems>
bool none_printed(const Problems& problems) {
  for (const auto& p : problems) fmt::print(stderr, "kaharness: {}\n", p);
  return problems.empty();
}

// The cases PATHs name, filtered; every bad file is reported (not only the first).
// Empty and `bad` set when any is bad.
std::vector<kah::Case> load_cases(const RunArgs& args, bool& bad) {
  std::vector<kah::Case> cases;
  std::vector<std::filesystem::path> paths(args.paths.begin(), args.paths.end());
  if (paths.empty()) paths.emplace_back("cases");
  std::vector<std::filesystem::path> files;
  try {
    files = kah::find_case_files(paths);
  } catch (const kah::CaseError& e) {
    fmt::print(stderr, "{}\n", e.what());
    bad = true;
    return {};
  }
  for (const auto& file : files) {
    try {
      cases.push_back(kah::load_case(file));
    } catch (const kah::CaseError& e) {
      fmt::print(stderr, "{}\n", e.what());
      bad = true;
    }
  }
  if (bad) return {};
  if (!args.filter.empty())
    std::erase_if(cases, [&](const kah::Case& c) { return fnmatch(args.filter.c_str(), c.name.c_str(), 0) != 0; });
  return cases;
}

// What the model says of each case, before anything is built: nullopt (the errors
// printed) when a case is refused.
std::optional<std::vector<kah::CaseForecast>> check_cases(const std::vector<kah::Case>& cases,
                                                          const kah::LoadLimits& limits) {
  bool bad = false;
  std::vector<kah::CaseForecast> forecasts;
  for (const auto& c : cases) {
    try {
      forecasts.push_back(kah::check_case(c, limits));
    } catch (const kah::CaseError& e) {
      fmt::print(stderr, "{}\n", e.what());
      bad = true;
    }
  }
  if (bad) return std::nullopt;
  return forecasts;
}

// --shard K/N: keeps this node's share of `cases` and returns the line that says
// which share and what the shares weigh ("" without --shard); nullopt, the error
// printed, when the model cannot weigh a case.
std::optional<std::string> keep_my_shard(std::vector<kah::Case>& cases, const std::optional<kah::ShardSpec>& shard) {
  if (!shard) return "";
  try {
    const auto plan = kah::plan_shards(cases, shard->count);
    kah::keep_shard(cases, plan, shard->index);
    return kah::describe_shard(plan, *shard);
  } catch (const kah::CaseError& e) {
    fmt::print(stderr, "{}\n", e.what());
    return std::nullopt;
  }
}

int dry_run(const std::vector<kah::Case>& cases, const std::vector<kah::CaseForecast>& forecasts, const RunArgs& args,
            const kah::LoadLimits& limits, const std::string& hz_source, const std::string& shard_line) {
  fmt::print("{}dry run: {} case{} checked, nothing built (HZ {} ({}), --max-duration {:g} s, file descriptors up to "
             "{})\n",
             shard_line, cases.size(), cases.size() == 1 ? "" : "s", limits.kernel.hz ? std::to_string(*limits.kernel.hz) : "unknown",
             hz_source, args.max_duration_s, limits.fd_limit > 0 ? std::to_string(limits.fd_limit) : "unlimited");
  for (std::size_t i = 0; i < cases.size(); ++i) fmt::print("{}", kah::describe_forecast(cases[i], forecasts[i]));
  return kExitPass;
}

// Writes every output asked for; one that cannot be written is reported and does
// not stop the others. False when any failed (precedence: final_exit_code).
bool write_outputs(const kah::RunResult& run, const RunArgs& args) {
  bool written = true;
  const auto attempt = [&](const auto& write) {
    try {
      write();
    } catch (const std::exception& e) {
      fmt::print(stderr, "kaharness: {}\n", e.what());
      written = false;
    }
  };
  if (!args.json.empty()) attempt([&] { write_file(args.json, kah::result_json(run).dump(2) + "\n"); });
  if (!args.junit.empty()) attempt([&] { write_file(args.junit, kah::junit_xml(run)); });
  if (!args.report.empty()) attempt([&] {
    kah::HtmlOptions html;
    html.pcap_dir = args.pcap;
    kah::write_html_report(run, args.report, html);
    fmt::print("report: {}/index.html\n", args.report);
  });
  return written;
}

// A shard with no case (more shards than cases): nothing to run, which passes; the
// outputs asked for are written empty, so CI finds the files it collects.
int run_empty_shard(const RunArgs& args, const std::string& shard_line) {
  fmt::print("{}nothing to run in this shard\n", shard_line);
  if (args.dry_run) return kExitPass;
  kah::RunResult nothing;
  nothing.backend = "none";  // none was entered
  return kah::final_exit_code(0, kExitPass, write_outputs(nothing, args));
}

kah::RunOptions run_options(const RunArgs& args, int jobs, const kah::model::Kernel& kernel, kah::Backend backend) {
  kah::RunOptions options;
  options.backend = backend;
  options.jobs = jobs;
  options.kernel = kernel;
  options.keep = args.keep;
  options.calibrate = !args.no_calibration;
  options.kernel_trace = args.kernel_trace;
  options.pcap_dir = args.pcap;
  options.pcap_all = args.pcap_all;
  options.capture = !args.no_capture;
  options.keep_prefix = fmt::format("{}{}", kKeepPrefix, getpid());
  options.keep_workdirs = args.keep_workdirs;
  for (const auto& a : args.program_args) {
    auto [name, arg] = kah::parse_program_arg(a);  // checked in run_command
    options.program_args[name].push_back(std::move(arg));
  }
  return options;
}

// Runs `cases`, a signal caught by `interrupt` stopping the wait (each case is judged
// on what it saw); says in the result which signal cut it short. `interrupt` stays with
// the caller, so a second signal still exits at once while the outputs are written.
kah::RunResult run_until_interrupted(const std::vector<kah::Case>& cases, kah::RunOptions& options,
                                     kah::InterruptGuard& interrupt, LiveLine& live, const std::string& hz_source) {
  options.stop = interrupt.token();
  auto run = kah::run_cases(cases, options);
  live.stop();
  run.hz_source = hz_source;
  if (const int signal = interrupt.signal(); signal != 0) run.interrupted_by = kah::signal_name(signal);
  return run;
}

int run_command(const RunArgs& args, bool verbose) {
  // Arguments and output paths first: nothing is loaded, measured or built before
  // the run could write what it is asked to.
  if (args.no_capture && !args.pcap.empty())
    throw CLI::ValidationError("--no-capture", "--pcap needs captures: drop one of the two");
  std::vector<std::string> output_problems;
  for (const auto& p : kah::check_output_paths({args.json, args.junit, args.report, args.pcap, args.force}))
    output_problems.push_back(p.str());
  if (!none_printed(output_problems)) return kExitBadInput;

  const auto shard = args.shard.empty() ? std::nullopt : std::optional(parse_shard(args.shard));

  bool bad = false;
  auto cases = load_cases(args, bad);
  if (bad) return kExitBadInput;
  for (const auto& a : args.program_args) {
    std::string name;
    try {
      name = kah::parse_program_arg(a).first;
    } catch (const std::invalid_argument& e) {
      throw CLI::ValidationError("--program-arg", e.what());
    }
    const bool known = std::any_of(cases.begin(), cases.end(), [&](const kah::Case& c) {
      return std::any_of(c.programs.begin(), c.programs.end(), [&](const auto& p) { return p.name == name; });
    });
    if (!known) throw CLI::ValidationError("--program-arg", fmt::format("no case here has a program named '{}'", name));
  }
  if (cases.empty()) {
    fmt::print(stderr, "kaharness: no case matches (paths: {}, filter: '{}')\n", fmt::join(args.paths, " "), args.filter);
    return kExitBadInput;
  }
  const auto shard_line = keep_my_shard(cases, shard);
  if (!shard_line) return kExitBadInput;
  if (cases.empty()) return run_empty_shard(args, *shard_line);
  std::string hz_source;
  const kah::LoadLimits limits{kernel_for(args.hz, hz_source), args.max_duration_s, kah::fd_hard_limit()};
  auto forecasts = check_cases(cases, limits);
  if (!forecasts) return kExitBadInput;
  // Without --jobs, as many cases at once as the file descriptors allow.
  const int jobs = args.jobs > 0 ? args.jobs : kah::jobs_for_fd_limit(*forecasts, limits.fd_limit);
  if (const auto problem = kah::run_fd_problem(*forecasts, jobs, limits.fd_limit); !problem.empty()) {
    fmt::print(stderr, "kaharness: {}\n", problem);
    return kExitBadInput;
  }
  if (args.dry_run) {
    // The backend a run would take here, found without entering it.
    const auto choice = kah::choose_backend(kah::backend_from_string(args.backend), args.in_place);
    fmt::print("{}", backends_here(cases, choice.backend, args.in_place));
    for (std::size_t i = 0; i < cases.size(); ++i) {
      auto& f = (*forecasts)[i];
      f.backend = choice.backend ? kah::to_string(*choice.backend) : "none here";
      if (choice.backend) f.skip = kah::skip_reason(cases[i], *choice.backend, kah::offers_of(*choice.backend)).value_or("");
    }
    return dry_run(cases, *forecasts, args, limits, hz_source, *shard_line);
  }
  const auto backend = enter_backend(args.backend, args.in_place, "cases");
  if (!backend) return kExitEnvironment;
  fmt::print("{}", backends_here(cases, backend, args.in_place));

  auto options = run_options(args, jobs, limits.kernel, *backend);
  LiveLine live(cases.size(), isatty(STDOUT_FILENO) == 1, verbose);
  options.listener = &live;
  fmt::print("{}running {} case{} ({} at a time{}), backend {}, HZ {} ({})\n", *shard_line, cases.size(), cases.size() == 1 ? "" : "s",
             jobs > 0 ? std::to_string(jobs) : "all",
             args.jobs == 0 && jobs > 0 ? ": what the file-descriptor limit allows" : "", kah::to_string(options.backend),
             options.kernel.hz ? std::to_string(*options.kernel.hz) : "unknown", hz_source);
  std::fflush(stdout);

  // SIGINT/SIGTERM from here on: stop waiting, judge what was seen, write it all.
  kah::InterruptGuard interrupt;
  auto run = run_until_interrupted(cases, options, interrupt, live, hz_source);
  const int signal = interrupt.signal();  // each case printed what it saw as it ended
  const bool written = write_outputs(run, args);
  fmt::print("{}", kah::console_summary(run));
  if (args.keep)
    fmt::print("namespaces kept under /run/netns/{}*; inspect with `ip netns exec NAME ...`, remove with `kaharness gc`\n",
               options.keep_prefix);
  std::fflush(stdout);
  return kah::final_exit_code(signal != 0 ? kah::interrupted_exit_code(signal) : 0,
                              kah::exit_code(run, {.skip = args.fail_on_skip, .not_judged = args.fail_on_not_judged}), written);
}

// The tuning `predict` reads: --sysctl-file FILEs in order, then the --sysctl
// KEY=VALUE pairs (a later one wins), checked for `kernel`. Refusals print with
// file:line ("--sysctl:N" for the Nth pair) and throw (exit 2).
kah::sysctl::Tuning predict_tuning(const PredictArgs& args, const std::optional<kah::model::KernelVersion>& kernel) {
  std::vector<std::pair<std::string, std::string>> texts;
  for (const auto& file : args.sysctl_files) {
    std::ifstream in(file);
    std::stringstream text;
    text << in.rdbuf();
    if (!in) throw CLI::ValidationError("--sysctl-file", fmt::format("cannot read {}: {}", file, std::strerror(errno)));
    texts.emplace_back(file, text.str());
  }
  std::string pairs;
  for (const auto& pair : args.sysctls) pairs += pair + "\n";
  if (!pairs.empty()) texts.emplace_back("--sysctl", pairs);
  auto tuning = kah::sysctl::read_tuning(texts, kernel);
  for (const auto& p : tuning.problems) fmt::print(stderr, "{}\n", p.str());
  if (!tuning.ok()) throw CLI::ValidationError("--sysctl", "refused: see the lines above");
  return tuning;
}

std::optional<kah::model::KernelVersion> predict_kernel(const PredictArgs& args) {
  if (args.kernel.empty()) return running_kernel_version();
  const auto v = kah::model::parse_kernel_version(args.kernel);
  if (!v) throw CLI::ValidationError("--kernel", fmt::format("expected X.Y (e.g. 6.1), found '{}'", args.kernel));
  return v;
}

std::string tuning_words(const kah::sysctl::Tuning& t) {
  std::string out;
  for (const auto& [key, setting] : t.settings)
    out += fmt::format("  {} = {} ({})\n", key, setting.value, setting.where.str());
  return out.empty() ? out : "Sysctls:\n" + out;
}

int predict_command(const PredictArgs& args) {
  kah::model::Input in;
  std::string hz_source;
  in.kernel = kernel_for(args.hz, hz_source);
  in.kernel.version = predict_kernel(args);
  const auto tuning = predict_tuning(args, in.kernel.version);
  kah::sysctl::apply_to(tuning, in);
  // Options given on the command line win over the sysctls.
  auto& k = in.keepalive;
  k = {true, args.idle.value_or(k.idle_s), args.interval.value_or(k.interval_s), args.count.value_or(k.count),
       args.user_timeout_ms};
  in.retransmission.retries2 = args.retries2.value_or(in.retransmission.retries2);
  in.retransmission.syn_retries = args.syn_retries.value_or(in.retransmission.syn_retries);
  const auto& fault = kah::fault_info(*kah::fault_kind_from_string(args.fault));
  in.peer = fault.peer;
  if (args.traffic == "sending") in.traffic = kah::model::Traffic::data_in_flight;
  if (args.traffic == "connect") {
    if (fault.peer != kah::model::PeerBehaviour::silent)
      throw CLI::ValidationError("--traffic connect", fmt::format("is modelled against a silent peer only, and \"{}\" "
                                                                  "is not one: use --fault blackhole",
                                                                  fault.name));
    in.traffic = kah::model::Traffic::connecting;
  }
  in.horizon_ms = 1000.0 * (3 * k.idle_s + k.count * k.interval_s);
  kah::model::Prediction prediction;
  try {
    prediction = kah::model::predict(in);
  } catch (const std::invalid_argument& e) {
    throw CLI::ValidationError("predict", e.what());
  }
  const std::string kernel_text = in.kernel.version ? in.kernel.version->str() : "unknown";
  const char* kernel_source = args.kernel.empty() ? "running" : "--kernel";
  if (args.json) {
    auto j = kah::prediction_json(in, prediction);
    j["hz_source"] = hz_source;
    j["kernel"] = in.kernel.version ? nlohmann::json(kernel_text) : nlohmann::json(nullptr);
    j["kernel_source"] = kernel_source;
    j["sysctls"] = kah::sysctl::namespace_sysctls(tuning);
    fmt::print("{}\n", j.dump(2));
  } else {
    fmt::print("HZ {} ({}), kernel {} ({})\n{}{}", in.kernel.hz ? std::to_string(*in.kernel.hz) : "unknown", hz_source,
               kernel_text, kernel_source, tuning_words(tuning), kah::describe_prediction(in, prediction));
  }
  return kExitPass;
}

// "350s", "350", "4min", "1h" -> seconds; nullopt for anything else.
std::optional<double> parse_seconds(const std::string& text) {
  char* end = nullptr;
  const double v = std::strtod(text.c_str(), &end);
  if (end == text.c_str() || !(v > 0)) return std::nullopt;
  const std::string unit(end);
  if (unit.empty() || unit == "s") return v;
  if (unit == "min" || unit == "m") return 60 * v;
  if (unit == "h") return 3600 * v;
  return std::nullopt;
}

kah::validate::BatteryOptions battery_options(const ValidateArgs& args, const kah::model::Kernel& kernel) {
  kah::validate::BatteryOptions o;
  for (const auto& text : args.nat_timeouts) {
    const auto s = parse_seconds(text);
    if (!s) throw CLI::ValidationError("--nat-timeout", fmt::format("expected a duration such as 350s, 4min, found '{}'", text));
    o.nat_timeouts_s.push_back(*s);
  }
  o.user_timeout_ms = args.user_timeout_ms;
  o.max_wait_s = args.max_wait_s;
  o.kernel = kernel;
  return o;
}

// Without a run: each scenario's prediction at the file's values and how it would run.
std::string describe_battery(const kah::validate::Battery& battery) {
  std::string out;
  for (const auto& s : battery.scenarios) {
    const auto& p = s.predicted.connections.front().forecast.prediction;
    out += fmt::format("{:<16} {}: predicted {} .. {}{}\n", s.id, s.title, kah::human_duration(p.window.earliest_ms),
                       kah::human_duration(p.window.latest_ms),
                       s.scaling.empty() ? std::string(", runs at these values") : "; runs scaled: " + s.scaling);
  }
  for (const auto& w : battery.warnings) out += fmt::format("warning: {}\n", w);
  for (const auto& r : battery.refused) out += fmt::format("not run: {}\n", r);
  return out;
}

int validate_command(const ValidateArgs& args, bool verbose) {
  std::vector<std::string> output_problems;
  for (const auto& p : kah::check_output_paths({args.json, args.junit, args.report, "", args.force}))
    output_problems.push_back(p.str());
  if (!none_printed(output_problems)) return kExitBadInput;
  std::string hz_source;
  const auto kernel = kernel_for(args.hz, hz_source);
  const std::vector<std::filesystem::path> files(args.files.begin(), args.files.end());
  const auto tuning = kah::sysctl::load_tuning(files, kernel.version);
  for (const auto& p : tuning.problems) fmt::print(stderr, "{}\n", p.str());
  if (!tuning.ok()) return kExitBadInput;
  const auto battery = kah::validate::make_battery(tuning, battery_options(args, kernel));
  if (args.dry_run || battery.scenarios.empty()) {
    fmt::print("{}", describe_battery(battery));
    return battery.scenarios.empty() ? kExitBadInput : kExitPass;
  }
  const auto backend = enter_backend(args.backend, args.in_place, "the battery");
  if (!backend) return kExitEnvironment;

  RunArgs run_args;
  run_args.no_calibration = args.no_calibration;
  auto options = run_options(run_args, 0, kernel, *backend);
  std::vector<kah::Case> cases;
  for (const auto& s : battery.scenarios) cases.push_back(s.run);
  LiveLine live(cases.size(), isatty(STDOUT_FILENO) == 1, verbose);
  options.listener = &live;
  fmt::print("validating {}: {} scenarios on IPv4 and IPv6, backend {}, HZ {} ({}), kernel {}\n",
             fmt::join(args.files, " "), cases.size(), kah::to_string(options.backend),
             kernel.hz ? std::to_string(*kernel.hz) : "unknown", hz_source,
             kernel.version ? kernel.version->str() : "unknown");
  std::fflush(stdout);
  kah::InterruptGuard interrupt;
  auto run = run_until_interrupted(cases, options, interrupt, live, hz_source);
  const int signal = interrupt.signal();
  fmt::print("{}", kah::validate::verdict_table(battery, run));
  RunArgs outputs;
  outputs.junit = args.junit;
  outputs.report = args.report;
  bool written = write_outputs(run, outputs);
  if (!args.json.empty()) {
    try {
      write_file(args.json, kah::validate::validate_json(tuning, battery, run).dump(2) + "\n");
    } catch (const std::exception& e) {
      fmt::print(stderr, "kaharness: {}\n", e.what());
      written = false;
    }
  }
  fmt::print("{}", kah::console_summary(run));
  std::fflush(stdout);
  return kah::final_exit_code(signal != 0 ? kah::interrupted_exit_code(signal) : 0, kah::exit_code(run), written);
}

int sweep_command(const SweepArgs& args) {
  const auto backend = enter_backend(args.backend, args.in_place, "the sweep");
  if (!backend) return kExitEnvironment;
  kah::RunOptions options;
  options.backend = *backend;
  std::string hz_source;
  options.kernel = kernel_for(args.hz, hz_source);
  options.calibrate = !args.no_calibration;
  options.kernel_trace = args.kernel_trace;
  const auto cases = kah::sweep_cases({args.connections, args.seed, args.per_case});
  fmt::print("sweep: {} connections in {} cases (seed {}), HZ {} ({})\n", args.connections, cases.size(), args.seed,
             options.kernel.hz ? std::to_string(*options.kernel.hz) : "unknown", hz_source);
  std::fflush(stdout);
  kah::InterruptGuard interrupt;  // as for run: stop, summarise what was decided, exit 130/143
  options.stop = interrupt.token();
  auto run = kah::run_cases(cases, options);
  run.hz_source = hz_source;
  const auto summary = kah::summarize_sweep(run);
  fmt::print("{}", kah::describe_sweep(summary, run));
  if (const int signal = interrupt.signal()) {
    run.interrupted_by = kah::signal_name(signal);
    fmt::print("interrupted by {}: only the {} connections decided by then are counted\n", run.interrupted_by,
               summary.connections);
  }
  if (!args.json.empty()) write_file(args.json, kah::sweep_json(summary, run).dump(2) + "\n");
  if (!args.report.empty())
    kah::write_margins_html({{"sweep", run}}, std::filesystem::path(args.report) / "index.html",
                            fmt::format("kaharness sweep: {} connections (seed {})", args.connections, args.seed));
  if (const int signal = interrupt.signal()) return kah::interrupted_exit_code(signal);
  return summary.misses == 0 && summary.errors == 0 ? kExitPass : 1;
}

int analyze_command(const AnalyzeArgs& args) {
  if (!args.to_case.empty()) return kah::to_case_command(args.file, args.to_case, args.flow);
  try {
    const auto capture = kah::evidence::read_pcap(args.file);
    const auto analysis = kah::evidence::analyze(capture);
    // A capture cut inside a frame: what is complete is analysed, and said to be partial.
    const std::string truncated =
        capture.truncated.empty() ? ""
                                  : fmt::format("the capture is truncated: analysed the {} complete frame{} before the "
                                                "cut ({})",
                                                capture.frames, capture.frames == 1 ? "" : "s", capture.truncated);
    if (args.json) {
      auto j = kah::evidence::analysis_json(analysis);
      j["truncated"] = truncated.empty() ? nlohmann::json(nullptr)
                                         : nlohmann::json{{"complete_frames", capture.frames}, {"why", capture.truncated}};
      fmt::print("{}\n", j.dump(2));
    } else {
      fmt::print("{}", kah::evidence::describe_analysis(analysis));
      if (!truncated.empty()) fmt::print("note: {}\n", truncated);
    }
    if (!truncated.empty()) fmt::print(stderr, "kaharness: {}: {}\n", args.file, truncated);
    return kExitPass;
  } catch (const kah::evidence::PcapError& e) {
    fmt::print(stderr, "kaharness: {}\n", e.what());
    return kExitBadInput;
  }
}

int check_env_command(const std::string& requested, bool in_place) {
  // Which backend a run would use, and why the others cannot run here.
  const auto choice = kah::choose_backend(kah::backend_from_string(requested), in_place);
  for (const auto& [backend, why] : choice.refused) fmt::print("no    backend {:<26} {}\n", kah::to_string(backend), why);
  if (!choice.backend) {
    fmt::print("\nkaharness cannot run cases here with backend {}: see the lines above.\n", requested);
    return kExitEnvironment;
  }
  fmt::print("ok    backend {:<26} {}\n", kah::to_string(*choice.backend),
             requested == "auto" ? "the first that works here (auto)" : "as asked");
  kah::use_backend(*choice.backend);
  const auto checks = kah::check_environment(*choice.backend);
  fmt::print("{}", kah::describe(checks));
  if (!kah::all_required_ok(checks)) {
    fmt::print("\nkaharness cannot run cases here: see the lines marked MISS.\n");
    return kExitEnvironment;
  }
  fmt::print("\nkaharness can run cases here, with backend {}.\n", kah::to_string(*choice.backend));
  return kExitPass;
}

int gc_command() {
  const auto removed = kah::netns::remove_pinned_namespaces(kKeepPrefix);
  for (const auto& name : removed) fmt::print("removed /run/netns/{}\n", name);
  fmt::print("{} namespace{} removed (only names starting with '{}')\n", removed.size(),
             removed.size() == 1 ? "" : "s", kKeepPrefix);
  return kExitPass;
}

}  // namespace

namespace {

// --backend and --in-place for the subcommands that build namespaces.
void add_backend_option(CLI::App* cmd, std::string& backend, bool& in_place) {
  cmd->add_option("--backend", backend,
                  "how to get network namespaces: auto (default: the first that works here), netns (root, or "
                  "CAP_SYS_ADMIN + CAP_NET_ADMIN), userns (no privileges: a user namespace first), local (only "
                  "CAP_NET_ADMIN + CAP_NET_RAW, as in a CI container: both ends on this namespace's lo, faults in nft "
                  "tables of its own; cases that need namespaces, sysctls or a link are skipped, saying why)")
      ->check(CLI::IsMember({"auto", "netns", "userns", "local"}));
  cmd->add_flag("--in-place", in_place,
                "let the local backend run in the host's initial network namespace (it refuses it otherwise: it "
                "changes nothing there but its own nft tables, yet shares lo with every program of the host)");
}

CLI::App* add_run(CLI::App& app, RunArgs& run, bool& verbose) {
  auto* cmd = app.add_subcommand("run", "run case files (TOML) and judge every connection");
  cmd->add_option("paths", run.paths, "case files or folders (default: cases/)");
  cmd->footer(
      "Before anything is built: --json/--junit/--report/--pcap are checked (exit 2 at once, naming the path and\n"
      "why), and every case is checked against the timing model (an expectation the model contradicts, more file\n"
      "descriptors than RLIMIT_NOFILE allows, longer than --max-duration: exit 2, file:line:col: error: ...).\n"
      "SIGINT/SIGTERM stop the run within a second: open connections get verdict 'interrupted', outputs and the\n"
      "summary are written with what was observed, exit 130/143. If an output cannot be written at the end, a\n"
      "failed case still exits 1 (the write error is printed); with every case passed it exits 2.\n"
      "A case the backend cannot run (backend local: routed topologies, [sysctl.*], link-down; IPv6 without ::1\n"
      "on lo) is skipped, saying what it needs and what the backend lacks; skips are no failure (exit 0 when all\n"
      "that ran passed) unless --fail-on-skip. The line 'backends here' says how many cases each backend can run.\n"
      "A connection that missed its window by coming late while the machine measurably held the kernel (a CPU's\n"
      "timer-watch thread woke that late, or the realtime clock stepped) gets verdict 'not-judged' (console DOUBT):\n"
      "the message names what was measured and the failure it would have been. It is not red unless\n"
      "--fail-on-not-judged; nothing early, no other outcome and no fault that landed late is ever excused.");
  cmd->add_option("--json", run.json, "write the result JSON to FILE")->type_name("FILE");
  cmd->add_option("--junit", run.junit, "write JUnit XML to FILE (one testsuite per case, one testcase per connection)")
      ->type_name("FILE");
  cmd->add_option("--report", run.report,
                      "write a self-contained HTML report (SVG timelines) to DIR/index.html; DIR must be new or empty "
                      "(or --force)")
      ->type_name("DIR");
  cmd->add_option("--pcap", run.pcap,
                      "write each failed connection's packets, both ends, to DIR/<case>/<connection>.{client,server}.pcap")
      ->type_name("DIR");
  cmd->add_flag("--no-capture", run.no_capture,
                    "do not capture packets: ends are timed by the event loop's wake-up, probes are not checked");
  cmd->add_flag("--pcap-all", run.pcap_all, "with --pcap: write every connection's packets, not only failures");
  cmd->add_option("--jobs,-j", run.jobs, "cases run at once (default: all that fit the file-descriptor limit; they mostly wait on timers)")
      ->check(CLI::Range(1, 100000));
  cmd->add_option("--filter", run.filter, "run only cases whose name matches GLOB, e.g. 'peer-*'")->type_name("GLOB");
  cmd->add_option("--shard", run.shard,
                  "run the K-th of N shares of the cases (after --filter), split by the model's predicted durations so "
                  "the shares finish together; every CI node computes the same split. K counts from 1, as GitLab's "
                  "CI_NODE_INDEX; Kubernetes' JOB_COMPLETION_INDEX counts from 0: pass $((JOB_COMPLETION_INDEX + 1)). "
                  "A share with no case passes. With --dry-run: the share's cases and predicted total")
      ->type_name("K/N");
  cmd->add_option("--hz", run.hz, "assume this CONFIG_HZ instead of detecting it")->check(CLI::IsMember({100, 250, 300, 1000}));
  cmd->add_flag("--no-calibration", run.no_calibration,
                    "do not relate jiffies to CLOCK_MONOTONIC: windows then cover every tick phase (wider)");
  cmd->add_flag("--kernel-trace", run.kernel_trace,
                "experimental: also time probes and ends by the kernel's tracepoints (root; see the README)");
  cmd->add_flag("--keep", run.keep, "keep the namespaces under /run/netns/kaharness-PID-* for inspection");
  cmd->add_option("--program-arg", run.program_args,
                  "append ARG to the command of the [[program]] named NAME (repeatable, in order; placeholders expand)")
      ->type_name("NAME=ARG");
  cmd->add_flag("--keep-workdirs", run.keep_workdirs,
                "keep every program's working directory ($TMPDIR/kaharness-PID-XXXXXX/<case>/); by default only those of "
                "cases that did not pass are kept");
  cmd->add_flag("-v,--verbose", verbose, "print every connection, not only failures");
  cmd->add_flag("--fail-on-skip", run.fail_on_skip,
                "exit 1 when a case was skipped (the backend lacks what it needs); by default skips are not failures");
  cmd->add_flag("--fail-on-not-judged", run.fail_on_not_judged,
                "exit 1 when a connection was not judged (late while the machine held a CPU or stepped the clock); by "
                "default not red");
  cmd->add_flag("--dry-run", run.dry_run,
                    "load and check every case (model, file descriptors, --max-duration), print each case's "
                    "backend, predicted duration and windows, build nothing (exit 0 or 2)");
  cmd->add_option("--max-duration", run.max_duration_s,
                      "refuse cases the model predicts to run longer than S seconds after the fault (default 600)")
      ->type_name("S")
      ->check(CLI::Validator(
          [](std::string& text) {
            char* end = nullptr;
            const double v = std::strtod(text.c_str(), &end);
            return end != text.c_str() && *end == '\0' && v > 0 && v < 1e9
                       ? std::string()
                       : "expected a number of seconds > 0, found '" + text.substr(0, 40) + "'";
          },
          "", "seconds"));
  cmd->add_flag("--force", run.force, "let --report write into a folder that already holds files");
  return cmd;
}

CLI::App* add_predict(CLI::App& app, PredictArgs& predict) {
  auto* cmd = app.add_subcommand("predict", "explain when the kernel declares a silent peer dead");
  cmd->footer("Settings left out come from --sysctl / --sysctl-file, else the kernel defaults (7200/75/9, retries2 15,\n"
              "syn_retries 6). The explanation says which behaviour comes from which kernel version.");
  cmd->add_option("--idle", predict.idle, "TCP_KEEPIDLE, seconds (default 7200)")->check(CLI::Range(1, 32767));
  cmd->add_option("--interval", predict.interval, "TCP_KEEPINTVL, seconds (default 75)")->check(CLI::Range(1, 32767));
  cmd->add_option("--count", predict.count, "TCP_KEEPCNT (default 9)")->check(CLI::Range(1, 127));
  cmd->add_option("--user-timeout", predict.user_timeout_ms, "TCP_USER_TIMEOUT, ms (default 0 = off)")
      ->check(CLI::Range(0, 2147483647));
  cmd->add_option("--fault", predict.fault, predictable_faults_help())
      ->check(CLI::IsMember(predictable_fault_names()));
  cmd->add_option("--traffic", predict.traffic,
                          "idle (keepalive owns the connection), sending (data in flight: retransmissions), "
                          "connect (SYN retries)")
      ->check(CLI::IsMember({"idle", "sending", "connect"}));
  cmd->add_option("--retries2", predict.retries2, "net.ipv4.tcp_retries2, for --traffic sending (default 15)")
      ->check(CLI::Range(0, 255));
  cmd->add_option("--syn-retries", predict.syn_retries,
                          "net.ipv4.tcp_syn_retries, for --traffic connect (default 6)")
      ->check(CLI::Range(1, 127));
  cmd->add_option("--sysctl", predict.sysctls,
                  "KEY=VALUE, repeatable: a namespace sysctl the model reads (tcp_keepalive_time/intvl/probes, "
                  "tcp_retries2, tcp_syn_retries, tcp_syn_linear_timeouts, tcp_rto_min_us, tcp_rto_max_ms, "
                  "tcp_early_retrans, tcp_sack); wins over --sysctl-file, loses to --idle etc.")
      ->type_name("KEY=VALUE");
  cmd->add_option("--sysctl-file", predict.sysctl_files, "a sysctl.d file (repeatable; a later one wins)")
      ->type_name("FILE");
  cmd->add_option("--kernel", predict.kernel,
                  "predict for kernel X.Y instead of the running one: linear SYN timeouts from 6.5, tcp_rto_min_us "
                  "from 6.11, tcp_rto_max_ms from 6.15, the TCP_USER_TIMEOUT fixes of 4.19 and 5.4")
      ->type_name("X.Y");
  cmd->add_option("--hz", predict.hz, "kernel HZ (default: detected)")->check(CLI::IsMember({100, 250, 300, 1000}));
  cmd->add_flag("--json", predict.json, "print JSON");
  return cmd;
}

std::string known_keys_help() {
  std::string text = "The keys kaharness knows (others are refused; 'machine' keys are refused too: they would change "
                     "the whole machine):";
  for (const auto& key : kah::sysctl::known_keys())
    text += fmt::format("\n  {:<52} {:<8} {}", key.name,
                        key.scope == kah::sysctl::Scope::machine ? "machine" : "netns", key.what);
  text += "\nCloud NAT idle timeouts worth a --nat-timeout:";
  for (const auto& nat : kah::validate::cloud_nat_defaults())
    text += fmt::format("\n  {:<36} {:>5} s  {}", nat.name, nat.timeout_s, nat.note);
  return text;
}

CLI::App* add_validate(CLI::App& app, ValidateArgs& v) {
  auto* cmd = app.add_subcommand(
      "validate", "prove what sysctl.d files give: a dead peer's detection time on IPv4 and IPv6, measured");
  cmd->add_option("files", v.files, "sysctl.d files (comments, '-' prefixes, globs; a later file wins)")
      ->required()
      ->check(CLI::ExistingFile);
  cmd->add_option("--nat-timeout", v.nat_timeouts,
                  "an idle flow through a strict NAT with this idle timeout, e.g. 350s, 4min (repeatable)")
      ->type_name("DURATION");
  cmd->add_option("--user-timeout", v.user_timeout_ms,
                  "TCP_USER_TIMEOUT (ms) the applications set: adds data in flight with it")
      ->check(CLI::Range(1, 2147483647));
  cmd->add_option("--max-wait", v.max_wait_s,
                  "seconds a scenario may run (default 60); longer ones are predicted at the file's values and run "
                  "scaled, the scaling stated")
      ->check(CLI::Range(5.0, 86400.0));
  cmd->add_option("--json", v.json, "write the table, warnings and the run's result JSON to FILE")->type_name("FILE");
  cmd->add_option("--junit", v.junit, "write JUnit XML to FILE")->type_name("FILE");
  cmd->add_option("--report", v.report, "write the HTML report (timelines of every scenario) to DIR/index.html")
      ->type_name("DIR");
  cmd->add_flag("--force", v.force, "let --report write into a folder that already holds files");
  cmd->add_option("--hz", v.hz, "assume this CONFIG_HZ instead of detecting it")->check(CLI::IsMember({100, 250, 300, 1000}));
  cmd->add_flag("--no-calibration", v.no_calibration, "phase-blind windows (no jiffies calibration)");
  cmd->add_flag("--dry-run", v.dry_run, "check the files and print each scenario's prediction and scaling; run nothing");
  cmd->footer(
      "Refused with exit 2 and file:line: unknown keys (with 'did you mean'), values out of range, keys this kernel\n"
      "does not have, keys that are not per network namespace. The rest is written only inside the test namespaces.\n"
      "Scenarios: silent peer, rebooted peer, data in flight, connect() to a dead host, one per --nat-timeout, and\n"
      "TCP_USER_TIMEOUT with --user-timeout. Exit codes as `run`.\n" +
      known_keys_help());
  return cmd;
}

CLI::App* add_sweep(CLI::App& app, SweepArgs& sweep) {
  auto* cmd = app.add_subcommand(
      "sweep", "measure the timing model: many real connections with random settings, misses and window widths");
  cmd->add_option("--connections,-n", sweep.connections, "how many connections (default 500)")
      ->check(CLI::Range(1, 100000));
  cmd->add_option("--per-case", sweep.per_case, "connections per namespace pair (default 25)")
      ->check(CLI::Range(1, 10000));
  cmd->add_option("--seed", sweep.seed, "random seed (default 1): the same seed gives the same settings");
  cmd->add_option("--hz", sweep.hz, "assume this CONFIG_HZ instead of detecting it")
      ->check(CLI::IsMember({100, 250, 300, 1000}));
  cmd->add_flag("--no-calibration", sweep.no_calibration, "phase-blind windows (no jiffies calibration)");
  cmd->add_flag("--kernel-trace", sweep.kernel_trace, "experimental: also time probes and ends by the kernel's tracepoints");
  cmd->add_option("--json", sweep.json, "write the figures as JSON to FILE")->type_name("FILE");
  cmd->add_option("--report", sweep.report, "write the margins page (where each end fell in its window) to DIR/index.html")
      ->type_name("DIR");
  return cmd;
}

CLI::App* add_analyze(CLI::App& app, AnalyzeArgs& analyze) {
  auto* cmd = app.add_subcommand(
      "analyze", "label keepalive probes, ACKs, RSTs and FINs in any pcap and infer idle, interval and count");
  cmd->add_option("file", analyze.file, "a pcap file (Ethernet, Linux cooked or raw IP)")
      ->required()
      ->check(CLI::ExistingFile);
  auto* json = cmd->add_flag("--json", analyze.json, "print JSON");
  auto* to_case = cmd->add_option("--to-case", analyze.to_case,
                                  "write a runnable case that reproduces one flow of the capture to FILE (below)")
                      ->type_name("FILE")
                      ->excludes(json);
  cmd->add_option("--flow", analyze.flow,
                  "with --to-case: the flow, as its number in the analysis (1, 2, ...) or its endpoints, e.g. "
                  "198.18.0.1:40112-198.18.0.2:7000 or [fd6b:6168:7265::1]:40112-[fd6b:6168:7265::2]:7000; "
                  "needed when the capture holds several")
      ->type_name("SPEC")
      ->needs(to_case);
  cmd->footer(
      "--to-case: the side that sent keepalive probes becomes the case's client, with the idle (its last received\n"
      "segment to its first probe), interval (probe spacing) and count (probes before its RST) it showed, in whole\n"
      "seconds, and the flow's family. How the flow ended gives the outcome and the fault:\n"
      "  probes unanswered, then the prober's RST   timeout, fault blackhole\n"
      "  the peer's RST answering a probe           reset, fault peer-reboot\n"
      "  the peer's FIN, probes answered            eof, no fault, the server closes after the idle seen\n"
      "  a probe answered, then the capture ends    alive, no fault, watched as long as the capture\n"
      "Comments in the case say what each value was inferred from (frame numbers, times). Refused, exit 2: no\n"
      "probes, the capture ends while probes go unanswered, an RST or FIN keepalive does not explain, several\n"
      "flows and no --flow (they are listed).");
  return cmd;
}

}  // namespace

int kah::cli_main(int argc, const char* const* argv) {
  CLI::App app{
      "kaharness: proves on the running kernel when and how TCP keepalive detects a dead peer.\n"
      "It builds private network namespaces, opens real keepalive connections, injects a fault\n"
      "(blackhole, lost probes or ACKs, unplugged link, rebooted or frozen peer) and checks that\n"
      "the kernel ends each connection inside the window the timing model predicts.\n"
      "Exit codes: 0 all cases passed, 1 a case failed, 2 bad input, 3 the environment cannot run it,\n"
      "130/143 the run was stopped by SIGINT/SIGTERM (outputs still written; a second signal exits at once).\n"
      "When several apply the first of 130/143, 1, 2 wins: a failed case is never hidden by an output\n"
      "that could not be written at the end (that is printed, and alone gives 2)."};
  app.require_subcommand(1);
  bool verbose = false;
  app.add_flag("-v,--verbose", verbose, "print every connection and debug logs");

  RunArgs run;
  auto* run_cmd = add_run(app, run, verbose);
  add_backend_option(run_cmd, run.backend, run.in_place);
  PredictArgs predict;
  auto* predict_cmd = add_predict(app, predict);
  ValidateArgs validate;
  auto* validate_cmd = add_validate(app, validate);
  add_backend_option(validate_cmd, validate.backend, validate.in_place);
  SweepArgs sweep;
  auto* sweep_cmd = add_sweep(app, sweep);
  add_backend_option(sweep_cmd, sweep.backend, sweep.in_place);

  std::vector<std::string> margins_files;
  std::string margins_html;
  auto* margins_cmd = app.add_subcommand(
      "margins", "false verdicts and margins to the window edges over result JSONs (run --json), and a page of them");
  margins_cmd->add_option("files", margins_files, "result JSON files, one per run")->required()->check(CLI::ExistingFile);
  margins_cmd->add_option("--html", margins_html, "write the margins page to FILE")->type_name("FILE");
  margins_cmd->footer(
      "Exit 0: no false verdict (connections not judged are listed apart and are not red), 1: a false verdict,\n"
      "2: a file is not a result JSON.");

  AnalyzeArgs analyze;
  auto* analyze_cmd = add_analyze(app, analyze);
  auto* env_cmd = app.add_subcommand("check-env", "check privileges, namespaces, veth, nftables, kernel and HZ");
  auto* gc_cmd = app.add_subcommand("gc", "remove namespaces kept by `run --keep` (namespace bind mounts named kaharness-*, nothing else)");

  std::string env_backend = "auto";
  bool env_in_place = false;
  add_backend_option(env_cmd, env_backend, env_in_place);

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int code = app.exit(e);
    return code == 0 ? kExitPass : kExitBadInput;
  }
  if (!spdlog::get("kaharness")) spdlog::set_default_logger(spdlog::stderr_color_mt("kaharness"));
  spdlog::set_level(verbose ? spdlog::level::debug : spdlog::level::warn);

  try {
    if (*run_cmd) return run_command(run, verbose);
    if (*predict_cmd) return predict_command(predict);
    if (*validate_cmd) return validate_command(validate, verbose);
    if (*analyze_cmd) return analyze_command(analyze);
    if (*sweep_cmd) return sweep_command(sweep);
    if (*margins_cmd) return kah::margins_command(margins_files, margins_html);
    if (*env_cmd) return check_env_command(env_backend, env_in_place);
    if (*gc_cmd) return gc_command();
  } catch (const CLI::ValidationError& e) {
    fmt::print(stderr, "kaharness: {}\n", e.what());
    return kExitBadInput;
  } catch (const std::exception& e) {
    fmt::print(stderr, "kaharness: {}\n", e.what());
    return kExitEnvironment;
  }
  return kExitBadInput;
}
