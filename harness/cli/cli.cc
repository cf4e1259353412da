// The command line of kaharness (in the library so tests can drive it). Parses arguments, loads and validates every case
// before anything is built, checks privileges, runs, reports, and maps the result
// to the contract's exit codes: 0 all passed, 1 a case failed, 2 bad input,
// 3 the environment cannot run it.
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
#include "harness/clock/clock.h"
#include "harness/cli/sweep.h"
#include "harness/run/load_checks.h"
#include "harness/cli/output_paths.h"
#include "harness/cli/margins_cmd.h"
#include "harness/report/margins.h"
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
  bool pcap_all = false;
  bool no_capture = false;
  bool dry_run = false;
  bool force = false;
  bool in_place = false;
  bool fail_on_skip = false;
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
  std::string json;
  std::string report;
};

struct AnalyzeArgs {
  std::string file;
  bool json = false;
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

struct PredictArgs {
  int idle = 7200, interval = 75, count = 9, user_timeout_ms = 0, hz = 0;
  int retries2 = 15, syn_retries = 6;
  std::string fault = "blackhole";
  std::string traffic = "idle";
  bool json = false;
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

// "K/N" -> (K, N) with 1 <= K <= N.
std::pair<int, int> parse_shard(const std::string& text) {
  int k = 0, n = 0;
  char slash = 0;
  if (std::sscanf(text.c_str(), "%d%c%d", &k, &slash, &n) != 3 || slash != '/' || n < 1 || k < 1 || k > n)
    throw CLI::ValidationError("--shard", "expected K/N with 1 <= K <= N, e.g. 2/4, found '" + text + "'");
  return {k, n};
}

kah::model::Kernel kernel_for(int hz_override, std::string& source) {
  kah::model::Kernel k;
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

// The cases PATHs name, filtered and sharded; every bad file is reported (not only
// the first). Empty and `bad` set when any is bad.
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
  if (!args.shard.empty()) {
    const auto [k, n] = parse_shard(args.shard);
    std::vector<kah::Case> mine;
    for (std::size_t i = 0; i < cases.size(); ++i)
      if (static_cast<int>(i % static_cast<std::size_t>(n)) == k - 1) mine.push_back(std::move(cases[i]));
    cases = std::move(mine);
  }
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

int dry_run(const std::vector<kah::Case>& cases, const std::vector<kah::CaseForecast>& forecasts, const RunArgs& args,
            const kah::LoadLimits& limits, const std::string& hz_source) {
  fmt::print("dry run: {} case{} checked, nothing built (HZ {} ({}), --max-duration {:g} s, file descriptors up to "
             "{})\n",
             cases.size(), cases.size() == 1 ? "" : "s", limits.kernel.hz ? std::to_string(*limits.kernel.hz) : "unknown",
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

kah::RunOptions run_options(const RunArgs& args, int jobs, const kah::model::Kernel& kernel, kah::Backend backend) {
  kah::RunOptions options;
  options.backend = backend;
  options.jobs = jobs;
  options.kernel = kernel;
  options.keep = args.keep;
  options.calibrate = !args.no_calibration;
  options.pcap_dir = args.pcap;
  options.pcap_all = args.pcap_all;
  options.capture = !args.no_capture;
  options.keep_prefix = fmt::format("{}{}", kKeepPrefix, getpid());
  return options;
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

  bool bad = false;
  auto cases = load_cases(args, bad);
  if (bad) return kExitBadInput;
  if (cases.empty()) {
    fmt::print(stderr, "kaharness: no case matches (paths: {}, filter: '{}')\n", fmt::join(args.paths, " "), args.filter);
    return kExitBadInput;
  }
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
    return dry_run(cases, *forecasts, args, limits, hz_source);
  }
  const auto backend = enter_backend(args.backend, args.in_place, "cases");
  if (!backend) return kExitEnvironment;
  fmt::print("{}", backends_here(cases, backend, args.in_place));

  auto options = run_options(args, jobs, limits.kernel, *backend);
  LiveLine live(cases.size(), isatty(STDOUT_FILENO) == 1, verbose);
  options.listener = &live;
  fmt::print("running {} case{} ({} at a time{}), backend {}, HZ {} ({})\n", cases.size(), cases.size() == 1 ? "" : "s",
             jobs > 0 ? std::to_string(jobs) : "all",
             args.jobs == 0 && jobs > 0 ? ": what the file-descriptor limit allows" : "", kah::to_string(options.backend),
             options.kernel.hz ? std::to_string(*options.kernel.hz) : "unknown", hz_source);
  std::fflush(stdout);

  // SIGINT/SIGTERM from here on: stop waiting, judge what was seen, write it all.
  kah::InterruptGuard interrupt;
  options.stop = interrupt.token();
  auto run = kah::run_cases(cases, options);
  live.stop();
  run.hz_source = hz_source;
  const int signal = interrupt.signal();
  if (signal != 0) run.interrupted_by = kah::signal_name(signal);  // each case printed what it saw as it ended
  const bool written = write_outputs(run, args);
  fmt::print("{}", kah::console_summary(run));
  if (args.keep)
    fmt::print("namespaces kept under /run/netns/{}*; inspect with `ip netns exec NAME ...`, remove with `kaharness gc`\n",
               options.keep_prefix);
  std::fflush(stdout);
  return kah::final_exit_code(signal != 0 ? kah::interrupted_exit_code(signal) : 0,
                              kah::exit_code(run, args.fail_on_skip), written);
}

int predict_command(const PredictArgs& args) {
  kah::model::Input in;
  in.keepalive = {true, args.idle, args.interval, args.count, args.user_timeout_ms};
  std::string hz_source;
  in.kernel = kernel_for(args.hz, hz_source);
  const auto& fault = kah::fault_info(*kah::fault_kind_from_string(args.fault));
  in.peer = fault.peer;
  in.retransmission.retries2 = args.retries2;
  in.retransmission.syn_retries = args.syn_retries;
  if (args.traffic == "sending") in.traffic = kah::model::Traffic::data_in_flight;
  if (args.traffic == "connect") {
    if (fault.peer != kah::model::PeerBehaviour::silent)
      throw CLI::ValidationError("--traffic connect", fmt::format("is modelled against a silent peer only, and \"{}\" "
                                                                  "is not one: use --fault blackhole",
                                                                  fault.name));
    in.traffic = kah::model::Traffic::connecting;
  }
  in.horizon_ms = 1000.0 * (3 * args.idle + args.count * args.interval);
  const auto prediction = kah::model::predict(in);
  if (args.json) {
    auto j = kah::prediction_json(in, prediction);
    j["hz_source"] = hz_source;
    fmt::print("{}\n", j.dump(2));
  } else {
    fmt::print("HZ {} ({})\n{}", in.kernel.hz ? std::to_string(*in.kernel.hz) : "unknown", hz_source,
               kah::describe_prediction(in, prediction));
  }
  return kExitPass;
}

int sweep_command(const SweepArgs& args) {
  const auto backend = enter_backend(args.backend, args.in_place, "the sweep");
  if (!backend) return kExitEnvironment;
  kah::RunOptions options;
  options.backend = *backend;
  std::string hz_source;
  options.kernel = kernel_for(args.hz, hz_source);
  options.calibrate = !args.no_calibration;
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
      "that ran passed) unless --fail-on-skip. The line 'backends here' says how many cases each backend can run.");
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
  cmd->add_option("--shard", run.shard, "run the K-th of N equal shares of the cases, e.g. 1/4")->type_name("K/N");
  cmd->add_option("--hz", run.hz, "assume this CONFIG_HZ instead of detecting it")->check(CLI::IsMember({100, 250, 300, 1000}));
  cmd->add_flag("--no-calibration", run.no_calibration,
                    "do not relate jiffies to CLOCK_MONOTONIC: windows then cover every tick phase (wider)");
  cmd->add_flag("--keep", run.keep, "keep the namespaces under /run/netns/kaharness-PID-* for inspection");
  cmd->add_flag("-v,--verbose", verbose, "print every connection, not only failures");
  cmd->add_flag("--fail-on-skip", run.fail_on_skip,
                "exit 1 when a case was skipped (the backend lacks what it needs); by default skips are not failures");
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
  cmd->add_option("--hz", predict.hz, "kernel HZ (default: detected)")->check(CLI::IsMember({100, 250, 300, 1000}));
  cmd->add_flag("--json", predict.json, "print JSON");
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
  cmd->add_flag("--json", analyze.json, "print JSON");
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
  SweepArgs sweep;
  auto* sweep_cmd = add_sweep(app, sweep);
  add_backend_option(sweep_cmd, sweep.backend, sweep.in_place);

  std::vector<std::string> margins_files;
  std::string margins_html;
  auto* margins_cmd = app.add_subcommand(
      "margins", "false verdicts and margins to the window edges over result JSONs (run --json), and a page of them");
  margins_cmd->add_option("files", margins_files, "result JSON files, one per run")->required()->check(CLI::ExistingFile);
  margins_cmd->add_option("--html", margins_html, "write the margins page to FILE")->type_name("FILE");

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
