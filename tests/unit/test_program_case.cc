// [[program]] in case files: what a good one turns into, the placeholders of its
// command, and every bad one refused at the file:line:column a user needs.
#include <catch2/catch.hpp>
#include <fmt/format.h>

#include <stdexcept>
#include <string>

#include "harness/case/case.h"
#include "harness/case/program.h"
#include "harness/run/program_phase.h"

using namespace kah;
using Catch::Matchers::Contains;

namespace {

const std::string kHead = R"(name = "p"
[[fault]]
kind = "blackhole"
[expect]
outcome = "timeout"
)";

CaseError error_of(const std::string& text) {
  try {
    parse_case(text, "case.toml");
  } catch (const CaseError& e) {
    return e;
  }
  FAIL("accepted, but should have been refused:\n" << text);
  throw std::logic_error("unreachable");
}

}  // namespace

TEST_CASE("program: a [[program]] is read with its command, ready condition and expectations", "[case][program]") {
  const auto c = parse_case(kHead + R"(
[[program]]
host = "client"
family = "ipv6"
command = "socat -u 'TCP6:[{server}]:{port},keepalive' OPEN:/dev/null"
port = 7001
connections = 1
env = { LANG = "C" }
ready = { line = "listening", delay_ms = 50, timeout_s = 3 }
[program.expect]
settings = { idle = 2, interval = 1, count = 3 }
exit_code = 1
exits_within_s = 7
output = "Connection timed out"
output_within_s = [4, 7]
counted_from = "last_received"
)",
                            "case.toml");
  REQUIRE(c.connections.empty());
  REQUIRE(c.programs.size() == 1);
  const auto& p = c.programs[0];
  CHECK(p.name == "socat");
  CHECK(p.host == Host::client);
  CHECK(p.family == Family::ipv6);
  CHECK(p.command == std::vector<std::string>{"socat", "-u", "TCP6:[{server}]:{port},keepalive", "OPEN:/dev/null"});
  CHECK(p.port == 7001);
  CHECK(p.connections == 1);
  CHECK(p.env.at("LANG") == "C");
  CHECK(p.ready.line == "listening");
  CHECK(p.ready.delay_ms == 50);
  CHECK(p.ready.timeout_s == 3);
  CHECK(p.expect.settings.idle_s == 2);
  CHECK(p.expect.settings.interval_s == 1);
  CHECK(p.expect.settings.count == 3);
  CHECK_FALSE(p.expect.settings.user_timeout_ms);
  CHECK(p.expect.exit_code == 1);
  CHECK(p.expect.exits_within_s == 7);
  CHECK(p.expect.output_from_s == 4);
  CHECK(p.expect.output_to_s == 7);
  CHECK(p.expect.counted_from == kah::CountedFrom::last_received);
  CHECK(p.where.line == 7);
}

TEST_CASE("program: placeholders expand, braces double, unknown ones are refused", "[case][program]") {
  const Placeholders values = {{"server", "198.18.0.2"}, {"port", "6379"}, {"family", "4"}};
  CHECK(expand_placeholders("TCP{family}:{server}:{port}", values) == "TCP4:198.18.0.2:6379");
  CHECK(expand_placeholders("{{literal}} {port}", values) == "{literal} 6379");
  CHECK(expand_placeholders("no placeholders", values) == "no placeholders");
  CHECK_THROWS_WITH(expand_placeholders("{nope}", values), Contains("unknown placeholder '{nope}'"));
  CHECK_THROWS_WITH(expand_placeholders("{server", values), Contains("unclosed"));
  CHECK(placeholders_in("a {server} b {port}") == std::vector<std::string>{"server", "port"});
}

TEST_CASE("program: a command string is split into words as a shell would, without one", "[case][program]") {
  CHECK(split_command("redis-server --save '' --port 1") ==
        std::vector<std::string>{"redis-server", "--save", "", "--port", "1"});
  CHECK(split_command(R"(a "b c" d\ e 'f"g')") == std::vector<std::string>{"a", "b c", "d e", "f\"g"});
  CHECK(split_command("  spaced   out  ") == std::vector<std::string>{"spaced", "out"});
  CHECK_THROWS_WITH(split_command("a 'b"), Contains("unclosed single quote"));
}

TEST_CASE("program: a missing executable names the Debian package and skips the case", "[case][program]") {
  CHECK(debian_package_of("psql") == "postgresql-client");
  CHECK(debian_package_of("/usr/sbin/sshd") == "openssh-server");
  CHECK(debian_package_of("my-service") == "");
  const auto c = parse_case(kHead + R"(
[[program]]
host = "server"
command = ["psql-that-is-not-there"]
[[program]]
host = "server"
command = ["/nonexistent/psql"]
)",
                            "case.toml");
  REQUIRE(c.programs.size() == 2);
  REQUIRE(c.programs[0].missing);
  CHECK_THAT(*c.programs[0].missing, Contains("case.toml:9:11: cannot find the program 'psql-that-is-not-there' on PATH"));
  REQUIRE(c.programs[1].missing);
  CHECK_THAT(*c.programs[1].missing, Contains("install the Debian package postgresql-client"));
  const auto found = parse_case(kHead + "[[program]]\nhost = \"client\"\ncommand = \"sh -c true\"\n", "case.toml");
  CHECK_FALSE(found.programs[0].missing);
  CHECK(found.programs[0].executable.filename() == "sh");
}

TEST_CASE("program: bad keys are refused at file:line:column", "[case][program]") {
  const auto at = [](const std::string& program) {
    const auto e = error_of(kHead + "[[program]]\n" + program);
    return e.where().str() + ": " + e.message();
  };
  CHECK_THAT(at("command = \"sh\"\n"), Contains("case.toml:6:1: missing required key 'host' in [[program]]"));
  CHECK_THAT(at("host = \"router\"\ncommand = \"sh\"\n"), Contains("case.toml:7:8: unknown host 'router'"));
  CHECK_THAT(at("host = \"client\"\n"), Contains("missing required key 'command'"));
  CHECK_THAT(at("host = \"client\"\ncommand = []\n"), Contains("case.toml:8:11: 'command' is empty"));
  CHECK_THAT(at("host = \"client\"\ncommand = \"sh {sever}\"\n"),
             Contains("case.toml:8:11: unknown placeholder '{sever}' in 'command'"));
  CHECK_THAT(at("host = \"client\"\ncommand = \"sh 'x\"\n"), Contains("cannot split 'command' into words"));
  CHECK_THAT(at("host = \"client\"\ncommand = \"sh\"\nready = { lines = \"x\" }\n"),
             Contains("case.toml:9:11: unknown key 'lines' in the program's 'ready'; did you mean 'line'?"));
  CHECK_THAT(at("host = \"client\"\ncommand = \"sh\"\nready = { line = \"(\" }\n"),
             Contains("'line' is not a valid regular expression"));
  CHECK_THAT(at("host = \"client\"\ncommand = \"sh\"\n[program.expect]\nsettings = { idle = 2 }\n"),
             Contains("case.toml:10:12: 'settings' are read from the program's connections"));
  CHECK_THAT(at("host = \"client\"\ncommand = \"sh\"\n[program.expect]\nexit_code = 300\n"),
             Contains("case.toml:10:13: 'exit_code' must be 0..255"));
  CHECK_THAT(at("host = \"client\"\ncommand = \"sh\"\n[program.expect]\noutput_within_s = 3\n"),
             Contains("give 'output' too"));
  CHECK_THAT(at("host = \"client\"\ncommand = \"sh\"\n[program.expect]\nexits_within_s = 3\ncounted_from = \"idle\"\n"),
             Contains("case.toml:11:16: unknown 'counted_from' 'idle'; expected one of: fault, last_received"));
  CHECK_THAT(at("host = \"client\"\ncommand = \"sh\"\n[program.expect]\nexits_within_s = 3\n"
                "counted_from = \"last_received\"\n"),
             Contains("case.toml:11:16: 'counted_from = \"last_received\"' counts from the last segment"));
  CHECK_THAT(at("host = \"client\"\ncommand = \"sh\"\nconnections = 1\n[program.expect]\n"
                "counted_from = \"last_received\"\n"),
             Contains("case.toml:11:16: 'counted_from' says what 'exits_within_s' and 'output_within_s' count from"));
  CHECK_THAT(at("host = \"client\"\ncommand = \"sh\"\n[program.expect]\nalive = true\nexit_code = 0\n"),
             Contains("'alive = true' contradicts"));
  CHECK_THAT(at("host = \"server\"\ncommand = \"sh\"\nconnections = 1\n"),
             Contains("case.toml:9:15: a program's connections on the server can be judged under fault none, "
                      "drop-to-server; not \"blackhole\""));
}

TEST_CASE("program: a case needs a connection or a program", "[case][program]") {
  const auto e = error_of(kHead);
  CHECK_THAT(e.message(), Contains("a case needs at least one connection (or a [[program]])"));
}

TEST_CASE("program: idle_close_s is a server program's idle timeout, with its port", "[case][program]") {
  const auto c = parse_case(R"(name = "p"
[[program]]
host = "server"
command = "sh"
port = 8080
idle_close_s = 3
[[fault]]
kind = "none"
[expect]
outcome = "eof"
)",
                            "case.toml");
  REQUIRE(c.programs[0].idle_close_s);
  CHECK(*c.programs[0].idle_close_s == 3);
  CHECK(c.expect.outcome == ExpectedOutcome::eof);

  const auto at = [](const std::string& program) {
    const auto e = error_of(kHead + "[[program]]\n" + program);
    return e.where().str() + ": " + e.message();
  };
  CHECK_THAT(at("host = \"client\"\ncommand = \"sh\"\nport = 80\nidle_close_s = 3\n"),
             Contains("case.toml:10:16: 'idle_close_s' is a server program's idle timeout"));
  CHECK_THAT(at("host = \"server\"\ncommand = \"sh\"\nidle_close_s = 3\n"),
             Contains("case.toml:9:16: 'idle_close_s' applies to the client programs' connections to this "
                      "program's port: give 'port'"));
}

TEST_CASE("program: outcome \"closed\" is for programs' connections only", "[case][program]") {
  const std::string program = "[[program]]\nhost = \"client\"\ncommand = \"sh\"\nconnections = 1\n";
  const auto c = parse_case("name = \"p\"\n[[fault]]\nkind = \"blackhole\"\n[expect]\noutcome = \"closed\"\n" + program,
                            "case.toml");
  CHECK(c.expect.outcome == ExpectedOutcome::closed);
  CHECK(to_string(ExpectedOutcome::closed) == "closed");

  const auto e = error_of(R"(name = "p"
[[connection]]
name = "c1"
[[fault]]
kind = "blackhole"
[expect]
outcome = "closed"
)" + program);
  CHECK(e.where().str() == "case.toml:7:11");
  CHECK_THAT(e.message(), Contains("outcome \"closed\" (a program closed its own connection before the kernel "
                                   "ended it) is for the connections of [[program]]s only"));
}

TEST_CASE("program: --program-arg NAME=ARG splits at the first '='", "[case][program]") {
  CHECK(parse_program_arg("redis-server=--loglevel") == std::pair<std::string, std::string>{"redis-server", "--loglevel"});
  CHECK(parse_program_arg("psql-v4=-v=ON_ERROR_STOP=1") ==
        std::pair<std::string, std::string>{"psql-v4", "-v=ON_ERROR_STOP=1"});
  CHECK(parse_program_arg("ssh-v4=") == std::pair<std::string, std::string>{"ssh-v4", ""});
  CHECK_THROWS_WITH(parse_program_arg("redis-server"), Contains("'redis-server' is not NAME=ARG"));
  CHECK_THROWS_WITH(parse_program_arg("=x"), Contains("is not NAME=ARG"));
}

// In `run cases/` the cases take turns to set up; a client program started before its
// case's turn idled while it waited, so the fault came late and the program's output
// "early" (redis 3.8 s after the fault against [5, 8] s, curl 6.9 s against [7, 10] s).
TEST_CASE("program: servers start before the case's setup turn, clients from the first one in it", "[case][program]") {
  auto program = [](const char* host, const char* name) {
    return fmt::format("[[program]]\nname = \"{}\"\nhost = \"{}\"\ncommand = \"sh -c true\"\n", name, host);
  };
  const auto servers_first =
      parse_case(kHead + program("server", "db") + program("server", "proxy") + program("client", "cli"), "case.toml");
  CHECK(programs_before_setup(servers_first) == 2);
  // In the order written: a server after a client starts in the turn too.
  const auto mixed =
      parse_case(kHead + program("server", "db") + program("client", "cli") + program("server", "late"), "case.toml");
  CHECK(programs_before_setup(mixed) == 1);
  CHECK(programs_before_setup(parse_case(kHead + program("client", "cli"), "case.toml")) == 0);
}
