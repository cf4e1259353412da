// The local backend where CI runs it: a container that grants CAP_NET_ADMIN and
// CAP_NET_RAW but not CAP_SYS_ADMIN. Each test emulates one, as a container runtime
// builds it: a fresh network namespace (anonymous, held by an fd, lo brought up
// through the netns library), its own PID and mount namespaces with /proc/timer_list
// hidden (an empty file bound over it, as Docker masks it), CAP_SYS_ADMIN dropped
// from the bounding, permitted, effective and inheritable sets, and a seccomp filter
// that refuses new namespaces and setns (what Docker's default profile does without
// CAP_SYS_ADMIN). The real binary then runs the case library there with `--backend
// auto`: it must choose local, run and pass what local can run, skip the rest with a
// reason, and leave that namespace as it found it, also when SIGKILLed mid-run.
#include <catch2/catch.hpp>

#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <cstddef>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "netns/namespace.h"
#include "netns/nft.h"
#include "contained.h"
#include "root_snapshot.h"

#include "read_text.h"

namespace fs = std::filesystem;
namespace netns = kah::netns;

namespace {

using kah::test::read_text;

// A scratch folder with the binary, the case library and an empty file to hide
// /proc/timer_list with; removed at the end.
struct Stage {
  fs::path dir;
  Stage() {
    std::string tmpl = (fs::temp_directory_path() / "kah-local-XXXXXX").string();
    dir = ::mkdtemp(tmpl.data());
    fs::copy_file(KAH_BINARY, dir / "kaharness");
    fs::copy(fs::path(KAH_SOURCE_DIR) / "cases", dir / "cases", fs::copy_options::recursive);  // programs/ too
    std::ofstream(dir / "empty").close();
  }
  ~Stage() {
    std::error_code ec;
    fs::remove_all(dir, ec);
  }
};

// `kaharness ARGS` in the emulated container joined to `net`.
kah::test::Contained start_contained(const Stage& stage, const netns::Namespace& net,
                                     const std::vector<std::string>& args) {
  kah::test::ContainerSpec spec;
  spec.argv = {(stage.dir / "kaharness").string()};
  spec.argv.insert(spec.argv.end(), args.begin(), args.end());
  spec.directory = stage.dir;
  spec.empty_file = stage.dir / "empty";
  spec.out = stage.dir / "stdout";
  spec.err = stage.dir / "stderr";
  return kah::test::start_contained(net, spec);
}

// `kaharness ARGS` in the emulated container joined to `net`, run to its end.
struct ContainedRun {
  int code = -1;
  std::string out, err;
};
ContainedRun run_contained(const Stage& stage, const netns::Namespace& net, const std::vector<std::string>& args) {
  const auto c = start_contained(stage, net, args);
  const int code = kah::test::wait_exit(c.runtime);
  return {code, read_text(stage.dir / "stdout"), read_text(stage.dir / "stderr")};
}

// What the harness could leave in the container's namespace: links, addresses,
// routes, sysctls, the nft ruleset.
kah::test::RootSnapshot snapshot(const netns::Namespace& net) {
  return net.run([] { return kah::test::RootSnapshot::take(); });
}

// The container's network namespace, as a runtime makes it: new, lo up, nothing else.
netns::Namespace container_namespace() { return netns::Namespace::create("emulated-container"); }

// 23 of 36 (`run cases` finds cases/programs/ too): the routed cases among them have
// a router lo stands in for (reject-rst, reject-icmp, loss; harness/case/needs.h
// router_needed()); the program cases' programs are held by wardens.
const std::set<std::string> kRunOnLoopback{
    "redis-vanished-client", "socat-client-blackhole", "haproxy-dead-backend", "nginx-vanished-client",
    "postgres-client-blackhole", "scanner-stale-connection",
    "ack-lost",           "app-idle-timeout",   "data-in-flight-user-timeout", "firewall-reject-icmp",
    "firewall-reject-rst", "http-keepalive-timeout", "keepalive-off",          "lossy-path-count-1",
    "lossy-path-count-5", "peer-alive",         "peer-app-frozen",             "peer-firewall-rst",
    "peer-power-off",     "peer-reboot",        "probes-lost",                 "user-timeout-long",
    "user-timeout-short"};

}  // namespace

TEST_CASE("in an emulated CAP_NET_ADMIN-only container, auto chooses local, runs what it can, skips the rest",
          "[backend][local][library]") {
  const auto net = container_namespace();
  const auto before = snapshot(net);
  Stage stage;
  const auto run = run_contained(stage, net, {"run", "cases", "--json", "out.json"});
  INFO(kah::test::not_passed(run.out) << run.err);
  REQUIRE(run.code == 0);
  CHECK(run.out.find("backends here: netns cannot run here, userns cannot run here, local ") != std::string::npos);
  const auto json = nlohmann::json::parse(read_text(stage.dir / "out.json"));
  CHECK(json["backend"] == "local");
  // /proc/timer_list hidden: the canary on lo gives the tick, jiffies modulo 64.
  CHECK(json["calibration"] == "timer-firings");

  std::set<std::string> ran, skipped;
  for (const auto& k : json["cases"]) {
    const std::string name = k["name"];
    INFO(name << ": " << k.dump(1).substr(0, 2000));
    if (k["verdict"] == "skip") {
      skipped.insert(name);
      CHECK(k["reason"].get<std::string>().find("; backend local ") != std::string::npos);
    } else {
      ran.insert(name);
      CHECK(k["verdict"] == "pass");
    }
  }
  CHECK(ran == kRunOnLoopback);
  CHECK(ran.size() + skipped.size() == json["cases"].size());
  CHECK(snapshot(net).diff(before).empty());
}

// The real-program cases local runs: both hosts on lo, each program held by a warden
// (harness/run/programs.h) instead of a PID namespace.
const std::set<std::string> kProgramsOnLoopback{"redis-vanished-client",  "socat-client-blackhole",
                                                "haproxy-dead-backend",   "nginx-vanished-client",
                                                "postgres-client-blackhole", "scanner-stale-connection"};
// Skipped by local, each for what it needs: client sysctls (curl's probe count, ssh's
// keepalive times), a server program without a port to tell it apart on lo.
const std::set<std::string> kProgramsNotOnLoopback{"curl-server-hangs", "ssh-server-blackhole", "haproxy-dead-client"};

TEST_CASE("in an emulated container, local runs the program cases and they pass", "[backend][local][programs][library]") {
  const auto net = container_namespace();
  const auto before = snapshot(net);
  Stage stage;
  const auto run = run_contained(stage, net, {"run", "cases/programs", "--json", "out.json"});
  INFO(kah::test::not_passed(run.out) << run.err);
  REQUIRE(run.code == 0);
  const auto json = nlohmann::json::parse(read_text(stage.dir / "out.json"));
  CHECK(json["backend"] == "local");
  std::set<std::string> ran;
  for (const auto& k : json["cases"]) {
    const std::string name = k["name"];
    INFO(name << ": " << k.dump(1).substr(0, 3000));
    if (k["verdict"] == "skip") {
      // For the backend only where the case needs what local lacks; else a missing
      // program (another machine's packages).
      const bool by_backend = k["reason"].get<std::string>().find("; backend local ") != std::string::npos;
      CHECK(by_backend == kProgramsNotOnLoopback.contains(name));
      continue;
    }
    ran.insert(name);
    CHECK(k["verdict"] == "pass");
  }
  for (const auto& name : kProgramsOnLoopback) CHECK(ran.contains(name));
  CHECK(snapshot(net).diff(before).empty());
}

TEST_CASE("in an emulated container, a SIGKILLed local run leaves nothing in the namespace", "[backend][local]") {
  const auto net = container_namespace();
  const auto before = snapshot(net);
  Stage stage;
  const auto c = start_contained(stage, net, {"run", "cases", "--no-calibration"});
  // Mid-run: once the harness's own tables are there.
  bool seen = false;
  for (int i = 0; i < 300 && !seen; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    seen = snapshot(net).nft_ruleset.find("table inet kaharness_") != std::string::npos;
  }
  REQUIRE(seen);
  REQUIRE(c.program > 0);
  ::kill(c.program, SIGKILL);
  CHECK(kah::test::wait_exit(c.runtime) == 128 + SIGKILL);
  CHECK(snapshot(net).diff(before).empty());
}

TEST_CASE("the local backend refuses the host's initial namespace without --in-place, and says why",
          "[backend][local]") {
  Stage stage;
  const pid_t pid = ::fork();
  if (pid == 0) {
    const int o = ::open((stage.dir / "stdout").c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    ::dup2(o, 1);
    ::dup2(o, 2);
    ::execl(KAH_BINARY, KAH_BINARY, "check-env", "--backend", "local", static_cast<char*>(nullptr));
    ::_exit(127);
  }
  const int code = kah::test::wait_exit(pid);
  const auto out = read_text(stage.dir / "stdout");
  INFO(out);
  CHECK(code == 3);
  CHECK(out.find("no    backend local") != std::string::npos);
  CHECK(out.find("--in-place runs there anyway") != std::string::npos);
}
