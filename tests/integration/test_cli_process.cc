// `kaharness run` as a separate process, as users and CI run it (issue 9, items 5
// and 6). A run stopped by SIGINT or SIGTERM while one connection has ended and
// another still waits must exit 130/143 well before the case's natural end, with
// a valid JSON holding the finished connection; an unwritable output is refused
// before any case runs.
#include <catch2/catch.hpp>

#include <fcntl.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <optional>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "root_snapshot.h"

#include "read_text.h"
#include "passed.h"

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

namespace {

bool has(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

using kah::test::read_text;

struct TempDir {
  fs::path path;
  TempDir() {
    std::string tmpl = (fs::temp_directory_path() / "kah-interrupt-XXXXXX").string();
    path = ::mkdtemp(tmpl.data());
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
};

// `kaharness ARGS` as a child process, stdout and stderr into files in `dir`.
class Child {
 public:
  // fd_limit: RLIMIT_NOFILE (soft and hard) of the child, when given.
  Child(const std::vector<std::string>& args, const fs::path& dir, std::optional<rlim_t> fd_limit = std::nullopt)
      : out_(dir / "stdout"), err_(dir / "stderr") {
    std::vector<std::string> all{KAH_BINARY};
    all.insert(all.end(), args.begin(), args.end());
    pid_ = ::fork();
    if (pid_ == 0) {
      const int o = ::open(out_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      const int e = ::open(err_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      ::dup2(o, 1);
      ::dup2(e, 2);
      if (fd_limit) {
        const rlimit limit{*fd_limit, *fd_limit};
        ::setrlimit(RLIMIT_NOFILE, &limit);
      }
      std::vector<char*> argv;
      for (auto& a : all) argv.push_back(a.data());
      argv.push_back(nullptr);
      ::execv(argv[0], argv.data());
      ::_exit(127);
    }
  }
  ~Child() {
    if (pid_ > 0 && !status_) {  // a failed test: do not leave it running
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
  }
  void signal(int sig) const { ::kill(pid_, sig); }
  // The exit code (256 + signal if killed by it), or -1 if it did not end within `limit`.
  int wait(std::chrono::seconds limit) {
    const auto deadline = Clock::now() + limit;
    while (Clock::now() < deadline) {
      int st = 0;
      if (::waitpid(pid_, &st, WNOHANG) == pid_) {
        status_ = st;
        return WIFEXITED(st) ? WEXITSTATUS(st) : 256 + WTERMSIG(st);  // killed: not an exit code
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return -1;
  }
  std::string out() const { return read_text(out_); }
  std::string err() const { return read_text(err_); }

 private:
  fs::path out_, err_;
  pid_t pid_ = -1;
  std::optional<int> status_;
};

// One connection ends about 2 s after the fault, the other would wait 90 s.
constexpr const char* kLongCase = R"(name = "interrupt-me"
description = "one connection times out quickly, the other would take a minute and a half"
[[connection]]
name = "quick"
family = "ipv4"
keepalive = { idle = 1, interval = 1, count = 1 }
[[connection]]
name = "slow"
family = "ipv4"
keepalive = { idle = 90, interval = 1, count = 1 }
[[fault]]
kind = "blackhole"
[expect]
outcome = "timeout"
)";

const nlohmann::json* connection(const nlohmann::json& c, const std::string& name) {
  for (const auto& r : c["connections"])
    if (r["name"] == name) return &r;
  return nullptr;
}

void interrupt_run(int sig, int expected_code) {
  TempDir dir;
  const auto case_file = dir.path / "interrupt-me.toml";
  std::ofstream(case_file) << kLongCase;
  const auto json = dir.path / "out.json";
  const auto junit = dir.path / "junit.xml";
  const auto before = kah::test::RootSnapshot::take();

  Child child({"run", case_file.string(), "--json", json.string(), "--junit", junit.string()}, dir.path);
  // The quick connection has timed out by then (~2 s after the fault), the slow one
  // waits until ~91 s.
  std::this_thread::sleep_for(std::chrono::seconds(8));
  const auto signalled = Clock::now();
  child.signal(sig);
  const int code = child.wait(std::chrono::seconds(60));
  const double seconds = std::chrono::duration<double>(Clock::now() - signalled).count();
  INFO("stdout:\n" << child.out() << "\nstderr:\n" << child.err() << "\nexit " << code << " after " << seconds << " s");
  REQUIRE(code != -1);  // it exited before the case's natural end (~91 s after the fault)
  CHECK(code == expected_code);
  CHECK(seconds < 30);  // a bound on behaviour (stops waiting), not a performance figure

  REQUIRE(fs::exists(json));
  const auto result = nlohmann::json::parse(read_text(json));  // throws if not valid JSON
  CHECK(result["interrupted"] == (sig == SIGINT ? "SIGINT" : "SIGTERM"));
  REQUIRE(result["cases"].size() == 1);
  const auto& c = result["cases"][0];
  CHECK(c["verdict"] == "interrupted");
  const auto* quick = connection(c, "quick");
  const auto* slow = connection(c, "slow");
  REQUIRE(quick != nullptr);
  REQUIRE(slow != nullptr);
  CHECK(kah::test::passed_or_held(*quick));
  CHECK((*quick)["observed"]["outcome"] == "timeout");
  CHECK((*slow)["verdict"] == "interrupted");
  CHECK((*slow)["observed"]["outcome"] == "alive");
  CHECK((*slow)["observed"]["at_ms"].get<double>() > 5000);
  CHECK((*slow)["observed"]["at_ms"].get<double>() < 60000);
  CHECK(has(read_text(junit), "interrupt-me"));
  CHECK(has(child.out(), "interrupted by " + std::string(sig == SIGINT ? "SIGINT" : "SIGTERM")));
  CHECK(has(child.out(), "1 interrupted"));
  CHECK(before.diff(kah::test::RootSnapshot::take()) == "");
}

}  // namespace

TEST_CASE("SIGINT stops a run: exit 130 long before the case's end, JSON with the finished connection",
          "[interrupt][slow]") {
  interrupt_run(SIGINT, 130);
}

TEST_CASE("SIGTERM stops a run the same way, exit 143", "[interrupt][slow]") { interrupt_run(SIGTERM, 143); }

TEST_CASE("SIGTERM during the library's setup: program cases read as interrupted, none fails",
          "[interrupt][slow]") {
  // The whole library, programs included, stopped 3 s in: most cases are still queued
  // for their turn to set up, program cases wait for their programs. Before, those went
  // on setting up after the signal (the run exited 9 s later) and were then judged at
  // a "horizon" that was the stop: 9 program cases failed.
  TempDir dir;
  const auto json = dir.path / "out.json";
  Child child({"run", std::string(KAH_SOURCE_DIR) + "/cases", "--json", json.string()}, dir.path);
  std::this_thread::sleep_for(std::chrono::seconds(3));
  child.signal(SIGTERM);
  const int code = child.wait(std::chrono::seconds(60));
  INFO("stdout:\n" << child.out() << "\nstderr:\n" << child.err());
  REQUIRE(code != -1);
  CHECK(code == 143);
  REQUIRE(fs::exists(json));
  const auto result = nlohmann::json::parse(read_text(json));
  CHECK(result["interrupted"] == "SIGTERM");
  int programs = 0, interrupted = 0;
  for (const auto& c : result["cases"]) {
    INFO("case " << c["name"] << ": " << c.dump().substr(0, 2000));
    CHECK(c["verdict"] != "fail");
    CHECK(c["verdict"] != "error");
    for (const auto& p : c.value("programs", nlohmann::json::array())) {
      ++programs;
      CHECK(p["verdict"] != "fail");
    }
    if (c["verdict"] == "interrupted") ++interrupted;
  }
  CHECK(interrupted > 0);
  (void)programs;
}

TEST_CASE("an unwritable --json is refused before any case runs", "[outputs]") {
  TempDir dir;
  const std::string one_case = std::string(KAH_SOURCE_DIR) + "/cases/peer-power-off.toml";
  Child child({"run", one_case, "--json", "/proc/kaharness-test.json"}, dir.path);
  const int code = child.wait(std::chrono::seconds(120));
  INFO("stdout:\n" << child.out() << "\nstderr:\n" << child.err());
  CHECK(code == 2);
  CHECK_FALSE(has(child.out(), "running"));  // nothing was built or run
  CHECK(has(child.err(), "--json /proc/kaharness-test.json: cannot create the file"));
}

TEST_CASE("cases the model refuses exit 2 before anything is built", "[load]") {
  struct Refused {
    const char* file;
    const char* text;
    const char* message;
  };
  const Refused refused[] = {
      {"contradiction.toml",
       "name = \"contradiction\"\ndescription = \"d\"\n[[connection]]\nname = \"c1\"\n"
       "keepalive = { idle = 1, interval = 1, count = 1 }\n[[fault]]\nkind = \"blackhole\"\n"
       "[expect]\noutcome = \"reset\"\n",
       "contradiction.toml:8:1: error: the case expects reset but the timing model predicts timeout"},
      {"many.toml",
       "name = \"many\"\ndescription = \"d\"\n[[connection]]\nname = \"c1\"\n"
       "keepalive = { idle = 1, interval = 1, count = 1 }\ncopies = 10000\n[[fault]]\nkind = \"blackhole\"\n"
       "[expect]\noutcome = \"timeout\"\n",
       "many.toml:3:1: error: case 'many' needs 20080 file descriptors (2 per connection copy, 16 for the case, 64 "
       "for the harness) but RLIMIT_NOFILE can only be raised to 4096"},
      {"defaults.toml",
       "name = \"defaults\"\ndescription = \"d\"\n[[connection]]\nname = \"c1\"\n[[fault]]\nkind = \"blackhole\"\n"
       "[expect]\noutcome = \"timeout\"\n",
       "defaults.toml:3:1: error: case 'defaults' is predicted to take"},
  };
  for (const auto& r : refused) {
    TempDir dir;
    const auto file = dir.path / r.file;
    std::ofstream(file) << r.text;
    Child child({"run", file.string()}, dir.path, 4096);  // the same limit on every machine
    const int code = child.wait(std::chrono::seconds(60));
    INFO(r.file << "\nstdout:\n" << child.out() << "\nstderr:\n" << child.err());
    CHECK(code == 2);
    CHECK_FALSE(has(child.out(), "running"));
    CHECK(has(child.err(), r.message));
  }
}
