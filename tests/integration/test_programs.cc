// Real programs under test ([[program]]): a program runs in its host's namespace, is
// stopped with the case, and nothing of it survives the harness, SIGKILL included
// (checked by the pids recorded, never by name); a program that does not set what
// its configuration claims fails naming the setting; a wrong expectation about what
// it does fails quoting its output.
#include <catch2/catch.hpp>

#include <sched.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <thread>

#include <fcntl.h>
#include <fmt/format.h>

#include "harness/case/case.h"
#include "harness/clock/clock.h"
#include "harness/clock/jiffies.h"
#include "harness/report/report.h"
#include "harness/run/programs.h"
#include "harness/run/runner.h"
#include "netns/namespace.h"
#include "netns/process.h"

using namespace kah;
namespace fs = std::filesystem;
using Catch::Matchers::Contains;

namespace {

RunOptions options() {
  RunOptions o;
  o.kernel.hz = detect_hz().hz;
  return o;
}

// Gone: no such process, or a zombie nobody of ours will run again.
bool gone(pid_t pid) {
  std::ifstream stat(fmt::format("/proc/{}/stat", pid));
  std::string line;
  if (!std::getline(stat, line)) return true;
  const auto close = line.rfind(')');
  return close != std::string::npos && line.size() > close + 2 && line[close + 2] == 'Z';
}

bool all_gone_within(const std::vector<pid_t>& pids, std::chrono::milliseconds limit) {
  const auto until = std::chrono::steady_clock::now() + limit;
  for (;;) {
    if (std::all_of(pids.begin(), pids.end(), gone)) return true;
    if (std::chrono::steady_clock::now() > until) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

// kaharness ARGS, its output to /dev/null; in `net` when given.
pid_t start_harness(std::vector<std::string> args, const netns::Namespace* net = nullptr) {
  args.insert(args.begin(), KAH_BINARY);
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  const pid_t harness = ::fork();
  if (harness == 0) {
    const int null = ::open("/dev/null", O_WRONLY);
    ::dup2(null, 1);
    ::dup2(null, 2);
    if (net != nullptr && ::setns(net->fd(), CLONE_NEWNET) != 0) ::_exit(126);
    ::execv(KAH_BINARY, argv.data());
    ::_exit(127);
  }
  return harness;
}

// The harness's descendants (not itself), once there are `count` (up to 10 s).
std::string command_name(pid_t pid) {
  std::ifstream comm(fmt::format("/proc/{}/comm", pid));
  std::string name;
  std::getline(comm, name);
  return name;
}

// process_tree(root) once it holds at least `size` processes (root included), `sleeps`
// of them running sleep (the last one read if that never happens within 10 s). A
// script's short-lived subshell (`(setsid sleep 301 &)`) may be among them and gone a
// moment later: look at a sleeper (a_sleeper), never at whichever pid came last.
std::vector<pid_t> settled_tree(pid_t root, std::size_t size, int sleeps) {
  std::vector<pid_t> tree;
  for (int i = 0; i < 500; ++i) {
    tree = netns::process_tree(root);
    const auto sleeping =
        std::count_if(tree.begin(), tree.end(), [](pid_t pid) { return command_name(pid) == "sleep"; });
    if (tree.size() >= size && sleeping >= sleeps) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return tree;
}

// The harness's processes below it, once at least `count` of them, `sleeps` running sleep.
std::vector<pid_t> descendants_of(pid_t harness, std::size_t count, int sleeps) {
  auto descendants = settled_tree(harness, count + 1, sleeps);
  if (!descendants.empty()) descendants.erase(descendants.begin());  // the harness itself
  return descendants;
}

// One of `pids` running sleep (the program's own processes, not the keeper's).
pid_t a_sleeper(const std::vector<pid_t>& pids) {
  for (const pid_t pid : pids)
    if (command_name(pid) == "sleep") return pid;
  FAIL("no sleep among the processes");
  return 0;
}

ino_t netns_inode(const std::string& path) {
  struct stat st {};
  REQUIRE(::stat(path.c_str(), &st) == 0);
  return st.st_ino;
}

// A program that is a `sh -c SCRIPT`, run in `dir`.
Launch sh_launch(const std::string& name, const std::string& script, const fs::path& dir) {
  Launch launch;
  launch.name = name;
  launch.executable = "/bin/sh";
  launch.argv = {"sh", "-c", script};
  launch.workdir = dir;
  return launch;
}

}  // namespace

TEST_CASE("a program runs in its host's namespace and every process of it stops with it", "[programs]") {
  const auto ns = netns::Namespace::create("program-test");
  const auto dir = fs::temp_directory_path() / fmt::format("kah-program-test-{}", ::getpid());
  fs::create_directories(dir);
  Launch launch = sh_launch("sleepers", "sleep 1000 & echo started; sleep 1000", dir);
  launch.ns = &ns;
  auto program = RunningProgram::start(launch);
  REQUIRE(program->wait_for_line(std::regex("started"), monotonic_ms() + 5000));

  const auto pids = settled_tree(program->pid(), 5, 2);  // keeper, init, sh and two sleeps
  REQUIRE(pids.size() == 5);
  const auto program_ns = netns_inode(fmt::format("/proc/{}/ns/net", a_sleeper(pids)));
  CHECK(program_ns != netns_inode("/proc/self/ns/net"));
  CHECK(program_ns == netns_inode(fmt::format("/proc/self/fd/{}", ns.fd())));

  program->stop();
  REQUIRE(program->exit());
  CHECK(program->exit()->status == 128 + SIGTERM);  // sh dies of the SIGTERM passed down to its group
  CHECK(all_gone_within(pids, std::chrono::seconds(2)));
  fs::remove_all(dir);
}

// soak loaded-11 (50c611a): six programs of four cases, done 0.6-1.9 s apart, were
// all reaped at 8178-8192 ms into the run, and scanner's `exits_within_s = 6` failed.
// The keeper's reap comes at the end of a chain (program, init, the namespace's other
// processes, keeper); the init's report of reaping the program is the exit itself.
TEST_CASE("a program's exit is its init's or warden's reaping of it; it holds only its stdio", "[programs]") {
  const auto dir = fs::temp_directory_path() / fmt::format("kah-program-exit-{}", ::getpid());
  fs::create_directories(dir);
  const auto ns = netns::Namespace::create("program-exit");
  for (const bool pid_namespace : {true, false}) {
    INFO((pid_namespace ? "init in a PID namespace" : "warden"));
    Launch launch = sh_launch("lister", "exec ls /proc/self/fd", dir);
    launch.pid_namespace = pid_namespace;
    if (pid_namespace) launch.ns = &ns;
    auto program = RunningProgram::start(launch);
    const auto exit = program->wait_for_exit(monotonic_ms() + 5000);
    REQUIRE(exit);
    CHECK(exit->status == 0);
    CHECK(exit->at_ms >= program->started_ms());
    CHECK(exit->at_ms <= exit->reaped_ms);
    CHECK(exit->at_ms < exit->reaped_ms);  // two wake-ups apart, not the fallback
    // ls's own directory descriptor is 3; nothing of the harness's chain (its report pipe) follows.
    std::vector<std::string> fds;
    for (const auto& line : program->lines()) fds.push_back(line.text);
    CHECK(fds == std::vector<std::string>{"0", "1", "2", "3"});
  }
  fs::remove_all(dir);
}

TEST_CASE("no program survives a SIGKILL of the harness", "[programs]") {
  const auto dir = fs::temp_directory_path() / fmt::format("kah-program-kill-{}", ::getpid());
  fs::create_directories(dir);
  const auto file = dir / "long.toml";
  std::ofstream(file) << R"(name = "long-program"
horizon_s = 60
[[program]]
host = "server"
command = "sh -c 'sleep 1000 & sleep 1000'"
[program.expect]
alive = true
[expect]
outcome = "alive"
)";
  const pid_t harness = start_harness({"run", file.string()});
  const auto descendants = descendants_of(harness, 5, 2);  // keeper, init, sh, two sleeps
  REQUIRE(descendants.size() >= 5);
  ::kill(harness, SIGKILL);
  ::waitpid(harness, nullptr, 0);
  CHECK(all_gone_within(descendants, std::chrono::seconds(2)));
  fs::remove_all(dir);
}

TEST_CASE("a program that does not set what its configuration claims fails naming the setting", "[programs]") {
  // socat is told keepidle and keepintvl but not keepcnt: the namespace's 9 applies.
  const auto c = parse_case(R"(name = "socat-claims-count"
horizon_s = 1
[[program]]
name = "listener"
host = "server"
command = "socat -u TCP4-LISTEN:{port},reuseaddr OPEN:/dev/null"
port = 7001
ready = { port = 7001 }
[[program]]
name = "socat-client"
host = "client"
command = "socat -u TCP4:{server}:{port},keepalive,keepidle=2,keepintvl=1 OPEN:/dev/null"
connections = 1
[program.expect]
settings = { keepalive = true, idle = 2, interval = 1, count = 3 }
[expect]
outcome = "alive"
)",
                            fs::path(KAH_SOURCE_DIR) / "tests" / "claims.toml");
  if (c.programs[0].missing) {
    WARN("not run: " << *c.programs[0].missing);
    return;
  }
  const auto run = run_cases({c}, options());
  const auto& result = run.cases.at(0);
  INFO(console_case(result, true));
  CHECK(result.verdict == Verdict::fail);
  REQUIRE(result.programs.size() == 2);
  const auto& client = result.programs[1];
  CHECK(client.verdict == Verdict::fail);
  REQUIRE_FALSE(client.checks.empty());
  CHECK_THAT(client.checks[0].message, Contains("claims.toml:9:1: program socat-client"));
  CHECK_THAT(client.checks[0].message, Contains("TCP_KEEPCNT is 9, the configuration claims 3"));
  REQUIRE(client.sockets.size() == 1);
  CHECK(client.sockets[0].idle_s == 2);
  CHECK(client.sockets[0].interval_s == 1);
}

TEST_CASE("a wrong expectation about what a program does fails quoting its output", "[programs]") {
  const auto c = parse_case(R"(name = "program-exits-3"
horizon_s = 2
[[program]]
name = "service"
host = "client"
command = ["sh", "-c", "echo starting; echo 'fatal: no config in {workdir}' >&2; exit 3"]
[program.expect]
exit_code = 0
[expect]
outcome = "alive"
)",
                            "exits.toml");
  const auto run = run_cases({c}, options());
  const auto& result = run.cases.at(0);
  INFO(console_case(result, true));
  CHECK(result.verdict == Verdict::fail);
  REQUIRE(result.programs.size() == 1);
  const auto& p = result.programs[0];
  CHECK(p.exit_status == 3);
  REQUIRE(p.checks.size() == 1);
  CHECK_THAT(p.checks[0].message, Contains("exits.toml:3:1: program service: expected exit status 0, but it exited "
                                           "with status 3"));
  CHECK_THAT(p.checks[0].message, Contains("\"fatal: no config in /"));
  CHECK_THAT(p.checks[0].message, Contains("[stdout at"));
}

// Backend local: no PID namespace, the warden kills what the program left, daemonized
// processes included (they re-parent to it, a child subreaper).
TEST_CASE("a program held by a warden stops with everything it daemonized", "[programs][local]") {
  const auto dir = fs::temp_directory_path() / fmt::format("kah-warden-test-{}", ::getpid());
  fs::create_directories(dir);
  Launch launch = sh_launch("daemonizer", "sleep 300 & (setsid sleep 301 &); echo started; exec sleep 302", dir);
  launch.pid_namespace = false;
  auto program = RunningProgram::start(launch);
  REQUIRE(program->wait_for_line(std::regex("started"), monotonic_ms() + 5000));

  // keeper, warden and three sleeps (the program's own, exec'd, among them)
  const auto pids = settled_tree(program->pid(), 5, 3);
  REQUIRE(pids.size() >= 5);
  CHECK(netns_inode(fmt::format("/proc/{}/ns/net", a_sleeper(pids))) == netns_inode("/proc/self/ns/net"));
  CHECK(netns_inode(fmt::format("/proc/{}/ns/pid", a_sleeper(pids))) == netns_inode("/proc/self/ns/pid"));

  program->stop();
  REQUIRE(program->exit());
  CHECK(program->exit()->status == 128 + SIGTERM);  // sleep 302 dies of the SIGTERM passed to its group
  CHECK(all_gone_within(pids, std::chrono::seconds(2)));  // setsid sleep 301 too, not in that group
  fs::remove_all(dir);
}

TEST_CASE("under local, no program process survives a SIGKILL of the harness", "[programs][local]") {
  const auto ns = netns::Namespace::create("warden-kill");  // local refuses the initial namespace
  const auto dir = fs::temp_directory_path() / fmt::format("kah-warden-kill-{}", ::getpid());
  fs::create_directories(dir);
  const auto file = dir / "long.toml";
  std::ofstream(file) << R"(name = "long-program-local"
horizon_s = 60
[[program]]
host = "server"
command = "sh -c 'sleep 300 & (setsid sleep 301 &); exec sleep 302'"
port = 7009
[program.expect]
alive = true
[expect]
outcome = "alive"
)";
  // --in-place: a namespace of the test's own, which local cannot always tell from the
  // host's from here (the host's PID namespace, /proc/1/ns/net unreadable).
  const pid_t harness =
      start_harness({"run", file.string(), "--backend", "local", "--in-place", "--no-calibration"}, &ns);
  const auto descendants = descendants_of(harness, 5, 3);  // keeper, warden, three sleeps
  REQUIRE(descendants.size() >= 5);
  // No PID namespace holds them: they are in ours, where nothing else would kill them.
  CHECK(netns_inode(fmt::format("/proc/{}/ns/pid", a_sleeper(descendants))) == netns_inode("/proc/self/ns/pid"));
  ::kill(harness, SIGKILL);
  ::waitpid(harness, nullptr, 0);
  CHECK(all_gone_within(descendants, std::chrono::seconds(2)));
  fs::remove_all(dir);
}
