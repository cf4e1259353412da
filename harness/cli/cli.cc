// The command line of kaharness (in the library so tests can drive it). Parses arguments, loads and validates every case
// before anything is built, checks privileges, runs, reports, and maps the result
// to the contract's exit codes: 0 all passed, 1 a case failed, 2 bad input,
// 3 the environment cannot run it.
#include <unistd.h>

#include <fnmatch.h>

#include <cerrno>
#include <condition_variable>
#include <mutex>
#include <thread>
#include <cstdio>
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
#include "harness/run/environment.h"
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
#include "harness/cli/margins_cmd.h"
#include "harness/report/margins.h"
#include "netns/namespace.h"

namespace {

constexpr int kExitPass = 0;
constexpr int kExitBadInput = 2;
constexpr int kExitEnvironment = 3;
constexpr const char* kKeepPrefix = "kaharness-";

struct RunArgs {
  std::vector<std::string> paths;
  std::string json, junit, report, pcap, filter, shard;
  int jobs = 0;
  int hz = 0;
  bool keep = false;
  bool no_calibration = false;
  bool pcap_all = false;
  bool no_capture = false;
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

// Checked before anything is built (libnftables would exit() without CAP_NET_ADMIN);
// says what is missing when it is.
bool privileged_enough(const char* what) {
  const auto privileges = kah::check_privileges();
  if (kah::all_required_ok(privileges)) return true;
  fmt::print(stderr, "kaharness: this environment cannot run {}:\n{}", what, kah::describe(privileges));
  return false;
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

int run_command(const RunArgs& args, bool verbose) {
  std::vector<kah::Case> cases;
  try {
    std::vector<std::filesystem::path> paths(args.paths.begin(), args.paths.end());
    if (paths.empty()) paths.emplace_back("cases");
    for (const auto& file : kah::find_case_files(paths)) cases.push_back(kah::load_case(file));
  } catch (const kah::CaseError& e) {
    fmt::print(stderr, "{}\n", e.what());
    return kExitBadInput;
  }
  if (!args.filter.empty())
    std::erase_if(cases, [&](const kah::Case& c) { return fnmatch(args.filter.c_str(), c.name.c_str(), 0) != 0; });
  if (!args.shard.empty()) {
    const auto [k, n] = parse_shard(args.shard);
    std::vector<kah::Case> mine;
    for (std::size_t i = 0; i < cases.size(); ++i)
      if (static_cast<int>(i % static_cast<std::size_t>(n)) == k - 1) mine.push_back(std::move(cases[i]));
    cases = std::move(mine);
  }
  if (cases.empty()) {
    fmt::print(stderr, "kaharness: no case matches (paths: {}, filter: '{}')\n", fmt::join(args.paths, " "), args.filter);
    return kExitBadInput;
  }
  if (!privileged_enough("cases")) return kExitEnvironment;

  kah::RunOptions options;
  options.jobs = args.jobs;
  std::string hz_source;
  options.kernel = kernel_for(args.hz, hz_source);
  options.keep = args.keep;
  options.calibrate = !args.no_calibration;
  options.pcap_dir = args.pcap;
  options.pcap_all = args.pcap_all;
  options.capture = !args.no_capture;
  if (args.no_capture && !args.pcap.empty())
    throw CLI::ValidationError("--no-capture", "--pcap needs captures: drop one of the two");
  options.keep_prefix = fmt::format("{}{}", kKeepPrefix, getpid());
  LiveLine live(cases.size(), isatty(STDOUT_FILENO) == 1, verbose);
  options.listener = &live;
  fmt::print("running {} case{} ({} at a time), HZ {} ({})\n", cases.size(), cases.size() == 1 ? "" : "s",
             args.jobs > 0 ? std::to_string(args.jobs) : "all",
             options.kernel.hz ? std::to_string(*options.kernel.hz) : "unknown", hz_source);
  std::fflush(stdout);

  auto run = kah::run_cases(cases, options);
  live.stop();
  run.hz_source = hz_source;
  fmt::print("{}", kah::console_summary(run));
  if (args.keep)
    fmt::print("namespaces kept under /run/netns/{}*; inspect with `ip netns exec NAME ...`, remove with `kaharness gc`\n",
               options.keep_prefix);
  if (!args.json.empty()) write_file(args.json, kah::result_json(run).dump(2) + "\n");
  if (!args.junit.empty()) write_file(args.junit, kah::junit_xml(run));
  if (!args.report.empty()) {
    kah::HtmlOptions html;
    html.pcap_dir = args.pcap;
    kah::write_html_report(run, args.report, html);
    fmt::print("report: {}/index.html\n", args.report);
  }
  return kah::exit_code(run);
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
  if (!privileged_enough("the sweep")) return kExitEnvironment;
  kah::RunOptions options;
  std::string hz_source;
  options.kernel = kernel_for(args.hz, hz_source);
  options.calibrate = !args.no_calibration;
  const auto cases = kah::sweep_cases({args.connections, args.seed, args.per_case});
  fmt::print("sweep: {} connections in {} cases (seed {}), HZ {} ({})\n", args.connections, cases.size(), args.seed,
             options.kernel.hz ? std::to_string(*options.kernel.hz) : "unknown", hz_source);
  std::fflush(stdout);
  auto run = kah::run_cases(cases, options);
  run.hz_source = hz_source;
  const auto summary = kah::summarize_sweep(run);
  fmt::print("{}", kah::describe_sweep(summary, run));
  if (!args.json.empty()) write_file(args.json, kah::sweep_json(summary, run).dump(2) + "\n");
  if (!args.report.empty())
    kah::write_margins_html({{"sweep", run}}, std::filesystem::path(args.report) / "index.html",
                            fmt::format("kaharness sweep: {} connections (seed {})", args.connections, args.seed));
  return summary.misses == 0 && summary.errors == 0 ? kExitPass : 1;
}

int analyze_command(const AnalyzeArgs& args) {
  try {
    const auto analysis = kah::evidence::analyze(kah::evidence::read_pcap(args.file));
    if (args.json) fmt::print("{}\n", kah::evidence::analysis_json(analysis).dump(2));
    else fmt::print("{}", kah::evidence::describe_analysis(analysis));
    return kExitPass;
  } catch (const kah::evidence::PcapError& e) {
    fmt::print(stderr, "kaharness: {}\n", e.what());
    return kExitBadInput;
  }
}

int check_env_command() {
  const auto checks = kah::check_environment();
  fmt::print("{}", kah::describe(checks));
  if (!kah::all_required_ok(checks)) {
    fmt::print("\nkaharness cannot run cases here: see the lines marked MISS.\n");
    return kExitEnvironment;
  }
  fmt::print("\nkaharness can run cases here.\n");
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

int kah::cli_main(int argc, const char* const* argv) {
  CLI::App app{
      "kaharness: proves on the running kernel when and how TCP keepalive detects a dead peer.\n"
      "It builds private network namespaces, opens real keepalive connections, injects a fault\n"
      "(blackhole, lost probes or ACKs, unplugged link, rebooted or frozen peer) and checks that\n"
      "the kernel ends each connection inside the window the timing model predicts.\n"
      "Exit codes: 0 all cases passed, 1 a case failed, 2 bad input, 3 the environment cannot run it."};
  app.require_subcommand(1);
  bool verbose = false;
  app.add_flag("-v,--verbose", verbose, "print every connection and debug logs");

  RunArgs run;
  auto* run_cmd = app.add_subcommand("run", "run case files (TOML) and judge every connection");
  run_cmd->add_option("paths", run.paths, "case files or folders (default: cases/)");
  run_cmd->add_option("--json", run.json, "write the result JSON to FILE")->type_name("FILE");
  run_cmd->add_option("--junit", run.junit, "write JUnit XML to FILE (one testsuite per case, one testcase per connection)")
      ->type_name("FILE");
  run_cmd->add_option("--report", run.report, "write a self-contained HTML report (SVG timelines) to DIR/index.html")
      ->type_name("DIR");
  run_cmd->add_option("--pcap", run.pcap,
                      "write each failed connection's packets, both ends, to DIR/<case>/<connection>.{client,server}.pcap")
      ->type_name("DIR");
  run_cmd->add_flag("--no-capture", run.no_capture,
                    "do not capture packets: ends are timed by the event loop's wake-up, probes are not checked");
  run_cmd->add_flag("--pcap-all", run.pcap_all, "with --pcap: write every connection's packets, not only failures");
  run_cmd->add_option("--jobs,-j", run.jobs, "cases run at once (default: all; they mostly wait on timers)")
      ->check(CLI::Range(1, 100000));
  run_cmd->add_option("--filter", run.filter, "run only cases whose name matches GLOB, e.g. 'peer-*'")->type_name("GLOB");
  run_cmd->add_option("--shard", run.shard, "run the K-th of N equal shares of the cases, e.g. 1/4")->type_name("K/N");
  run_cmd->add_option("--hz", run.hz, "assume this CONFIG_HZ instead of detecting it")->check(CLI::IsMember({100, 250, 300, 1000}));
  run_cmd->add_flag("--no-calibration", run.no_calibration,
                    "do not relate jiffies to CLOCK_MONOTONIC: windows then cover every tick phase (wider)");
  run_cmd->add_flag("--keep", run.keep, "keep the namespaces under /run/netns/kaharness-PID-* for inspection");
  run_cmd->add_flag("-v,--verbose", verbose, "print every connection, not only failures");

  PredictArgs predict;
  auto* predict_cmd = app.add_subcommand("predict", "explain when the kernel declares a silent peer dead");
  predict_cmd->add_option("--idle", predict.idle, "TCP_KEEPIDLE, seconds (default 7200)")->check(CLI::Range(1, 32767));
  predict_cmd->add_option("--interval", predict.interval, "TCP_KEEPINTVL, seconds (default 75)")->check(CLI::Range(1, 32767));
  predict_cmd->add_option("--count", predict.count, "TCP_KEEPCNT (default 9)")->check(CLI::Range(1, 127));
  predict_cmd->add_option("--user-timeout", predict.user_timeout_ms, "TCP_USER_TIMEOUT, ms (default 0 = off)")
      ->check(CLI::Range(0, 2147483647));
  predict_cmd->add_option("--fault", predict.fault, predictable_faults_help())
      ->check(CLI::IsMember(predictable_fault_names()));
  predict_cmd->add_option("--traffic", predict.traffic,
                          "idle (keepalive owns the connection), sending (data in flight: retransmissions), "
                          "connect (SYN retries)")
      ->check(CLI::IsMember({"idle", "sending", "connect"}));
  predict_cmd->add_option("--retries2", predict.retries2, "net.ipv4.tcp_retries2, for --traffic sending (default 15)")
      ->check(CLI::Range(0, 255));
  predict_cmd->add_option("--syn-retries", predict.syn_retries,
                          "net.ipv4.tcp_syn_retries, for --traffic connect (default 6)")
      ->check(CLI::Range(1, 127));
  predict_cmd->add_option("--hz", predict.hz, "kernel HZ (default: detected)")->check(CLI::IsMember({100, 250, 300, 1000}));
  predict_cmd->add_flag("--json", predict.json, "print JSON");

  SweepArgs sweep;
  auto* sweep_cmd = app.add_subcommand(
      "sweep", "measure the timing model: many real connections with random settings, misses and window widths");
  sweep_cmd->add_option("--connections,-n", sweep.connections, "how many connections (default 500)")
      ->check(CLI::Range(1, 100000));
  sweep_cmd->add_option("--per-case", sweep.per_case, "connections per namespace pair (default 25)")
      ->check(CLI::Range(1, 10000));
  sweep_cmd->add_option("--seed", sweep.seed, "random seed (default 1): the same seed gives the same settings");
  sweep_cmd->add_option("--hz", sweep.hz, "assume this CONFIG_HZ instead of detecting it")
      ->check(CLI::IsMember({100, 250, 300, 1000}));
  sweep_cmd->add_flag("--no-calibration", sweep.no_calibration, "phase-blind windows (no jiffies calibration)");
  sweep_cmd->add_option("--json", sweep.json, "write the figures as JSON to FILE")->type_name("FILE");
  sweep_cmd->add_option("--report", sweep.report,
                        "write the margins page (where each end fell in its window) to DIR/index.html")
      ->type_name("DIR");

  std::vector<std::string> margins_files;
  std::string margins_html;
  auto* margins_cmd = app.add_subcommand(
      "margins", "false verdicts and margins to the window edges over result JSONs (run --json), and a page of them");
  margins_cmd->add_option("files", margins_files, "result JSON files, one per run")->required()->check(CLI::ExistingFile);
  margins_cmd->add_option("--html", margins_html, "write the margins page to FILE")->type_name("FILE");

  AnalyzeArgs analyze;
  auto* analyze_cmd = app.add_subcommand(
      "analyze", "label keepalive probes, ACKs, RSTs and FINs in any pcap and infer idle, interval and count");
  analyze_cmd->add_option("file", analyze.file, "a pcap file (Ethernet, Linux cooked or raw IP)")
      ->required()
      ->check(CLI::ExistingFile);
  analyze_cmd->add_flag("--json", analyze.json, "print JSON");

  auto* env_cmd = app.add_subcommand("check-env", "check privileges, namespaces, veth, nftables, kernel and HZ");
  auto* gc_cmd = app.add_subcommand("gc", "remove namespaces kept by `run --keep` (names kaharness-*, nothing else)");

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
    if (*env_cmd) return check_env_command();
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
