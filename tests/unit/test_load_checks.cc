// Checks that need the timing model, made when a case is loaded (issue 9, item 7)
// and what `run --dry-run` prints. No privileges: nothing is built.
#include <catch2/catch.hpp>

#include "cli_call.h"

#include <string>
#include <vector>

#include "harness/case/case.h"
#include "harness/cli/cli.h"
#include "harness/run/load_checks.h"

using namespace kah;

namespace {

bool has(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

LoadLimits limits() {
  LoadLimits l;
  l.kernel.hz = 250;
  l.max_duration_s = 600;
  l.fd_limit = 20000;
  return l;
}

using kah::test::cli;

const std::string kCases = std::string(KAH_SOURCE_DIR) + "/cases";

// The message of the CaseError check_case throws, "" if none.
std::string refusal(const Case& c, const LoadLimits& l = limits()) {
  try {
    check_case(c, l);
  } catch (const CaseError& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST_CASE("an expectation the model contradicts is refused at load, naming both outcomes", "[load]") {
  const auto c = parse_case(R"(name = "contradiction"
description = "a blackhole ends in a timeout, not a reset"
[[connection]]
name = "c1"
keepalive = { idle = 1, interval = 1, count = 1 }
[[fault]]
kind = "blackhole"
[expect]
outcome = "reset"
)",
                            "contradiction.toml");
  const auto msg = refusal(c);
  INFO(msg);
  CHECK(has(msg, "contradiction.toml:8:1: error: "));
  CHECK(has(msg, "expects reset but the timing model predicts timeout"));
  CHECK(has(msg, "'c1'"));
}

TEST_CASE("an expected errno the model contradicts is refused at load", "[load]") {
  const auto c = parse_case(R"(name = "wrong-errno"
description = "a silent peer times out with ETIMEDOUT"
[[connection]]
name = "c1"
keepalive = { idle = 1, interval = 1, count = 1 }
[[fault]]
kind = "blackhole"
[expect]
outcome = "timeout"
errno = "EHOSTUNREACH"
)",
                            "wrong-errno.toml");
  const auto msg = refusal(c);
  INFO(msg);
  CHECK(has(msg, "expects EHOSTUNREACH but the timing model predicts ETIMEDOUT"));
}

TEST_CASE("copies beyond what RLIMIT_NOFILE can be raised to are refused with the numbers", "[load]") {
  const auto c = parse_case(R"(name = "many"
description = "ten thousand connections need twenty thousand descriptors"
[[connection]]
name = "c1"
keepalive = { idle = 1, interval = 1, count = 1 }
copies = 10000
[[fault]]
kind = "blackhole"
[expect]
outcome = "timeout"
)",
                            "many.toml");
  const auto msg = refusal(c);
  INFO(msg);
  CHECK(has(msg, "many.toml:3:1: error: "));
  CHECK(has(msg, "needs 20080 file descriptors"));
  CHECK(has(msg, "can only be raised to 20000"));
  auto roomy = limits();
  roomy.fd_limit = 1048576;
  CHECK(refusal(c, roomy) == "");
}

TEST_CASE("a case that falls back to the 7200 s sysctl is refused by --max-duration", "[load]") {
  const auto c = parse_case(R"(name = "defaults"
description = "keepalive on, every timer from the namespace defaults"
[[connection]]
name = "c1"
[[fault]]
kind = "blackhole"
[expect]
outcome = "timeout"
)",
                            "defaults.toml");
  const auto msg = refusal(c);
  INFO(msg);
  CHECK(has(msg, "defaults.toml:3:1: error: "));
  CHECK(has(msg, "is predicted to take "));
  CHECK(has(msg, "net.ipv4.tcp_keepalive_time default, 7200 s"));
  CHECK(has(msg, "--max-duration 600 s"));
  auto patient = limits();
  patient.max_duration_s = 3 * 3600;
  CHECK(refusal(c, patient) == "");
}

TEST_CASE("loss with TCP_USER_TIMEOUT is refused at load, not when the run reaches it", "[load]") {
  const auto c = parse_case(R"(name = "loss-uto"
description = "random loss and a user timeout: the model has no answer"
topology = "routed"
[[connection]]
name = "c1"
keepalive = { idle = 1, interval = 1, count = 2 }
user_timeout_ms = 1500
copies = 4
[[fault]]
kind = "loss"
probability = 0.3
[expect]
outcome = "timeout"
survival = 0.5
)",
                            "loss-uto.toml");
  const auto msg = refusal(c);
  INFO(msg);
  CHECK(has(msg, "loss-uto.toml:4:1: error: "));
  CHECK(has(msg, "without TCP_USER_TIMEOUT"));
}

TEST_CASE("an application close with a fault is refused at load", "[load]") {
  // The run-time "the transport ends the connection too" needs a fault; case.cc
  // refuses any fault with idle_close_s, so the model is never asked.
  CHECK_THROWS_WITH(parse_case(R"(name = "close-and-die"
description = "the application closes, but the peer is gone first"
[server]
idle_close_s = 2
[[connection]]
name = "c1"
keepalive = { idle = 1, interval = 1, count = 1 }
[[fault]]
kind = "blackhole"
[expect]
outcome = "eof"
)",
                               "close-and-die.toml"),
                    Catch::Contains("idle_close_s needs a working path"));
}

TEST_CASE("every case in the library passes the load checks; dry-run describes them", "[load][cli]") {
  for (const auto& file : find_case_files({kCases})) {
    const auto c = load_case(file);
    INFO(file.string());
    const auto f = check_case(c, limits());
    CHECK(f.backend == "netns");
    CHECK(f.duration_ms > 0);
    CHECK(f.connections.size() == c.connections.size());
    const auto text = describe_forecast(c, f);
    CHECK(has(text, c.name));
    CHECK(has(text, "backend netns"));
  }
  CHECK(cli({"run", "--dry-run", "--hz", "250", kCases}) == 0);
  CHECK(cli({"run", "--dry-run", "--hz", "250", "--max-duration", "1", kCases}) == 2);
  CHECK(cli({"run", "--dry-run", "--max-duration", "0", kCases}) == 2);
}

TEST_CASE("cases that run at once must fit the file descriptors together; --jobs says how many fit", "[load]") {
  std::vector<CaseForecast> cases(3);
  for (auto& c : cases) c.fds = 2 * 4000 + 16;  // 4000 copies each: one fits, three at once do not
  const auto problem = run_fd_problem(cases, 0, 20000);
  INFO(problem);
  CHECK(has(problem, "the 3 cases that run at once need 24112 file descriptors"));
  CHECK(has(problem, "--jobs 2"));
  CHECK(run_fd_problem(cases, 2, 20000) == "");
  CHECK(run_fd_problem(cases, 0, 1048576) == "");
  // Without --jobs the run takes what fits: 2 at once here, all when the limit allows.
  CHECK(jobs_for_fd_limit(cases, 20000) == 2);
  CHECK(run_fd_problem(cases, jobs_for_fd_limit(cases, 20000), 20000) == "");
  CHECK(jobs_for_fd_limit(cases, 1048576) == 0);
  CHECK(jobs_for_fd_limit(cases, 100) == 1);  // even one does not fit: check_case refuses it
}
