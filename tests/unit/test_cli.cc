// Command-line parsing and the contract's exit codes for bad input. Nothing here
// needs privileges: every call is refused before a namespace would be built.
#include <catch2/catch.hpp>

#include "cli_call.h"

#include <string>
#include <vector>

#include "harness/cli/cli.h"

namespace {

using kah::test::cli;

const std::string kCases = std::string(KAH_SOURCE_DIR) + "/cases";

}  // namespace

TEST_CASE("help exits 0; no command or an unknown one is bad input", "[cli]") {
  CHECK(cli({"--help"}) == 0);
  CHECK(cli({"run", "--help"}) == 0);
  CHECK(cli({}) == 2);
  CHECK(cli({"frobnicate"}) == 2);
}

TEST_CASE("run refuses bad arguments with exit 2", "[cli]") {
  CHECK(cli({"run", "--jobs", "0", kCases}) == 2);
  CHECK(cli({"run", "--jobs", "many", kCases}) == 2);
  CHECK(cli({"run", "--shard", "3/2", kCases}) == 2);
  CHECK(cli({"run", "--shard", "x", kCases}) == 2);
  CHECK(cli({"run", "--hz", "123", kCases}) == 2);
  CHECK(cli({"run", "/nonexistent/kaharness/cases"}) == 2);
  CHECK(cli({"run", "--filter", "no-case-has-this-name-*", kCases}) == 2);
}

TEST_CASE("run refuses a bad case file with exit 2 before building anything", "[cli]") {
  CHECK(cli({"run", std::string(KAH_SOURCE_DIR) + "/tests/data/bad/idle-zero.toml"}) == 2);
}

TEST_CASE("predict checks the kernel's ranges", "[cli]") {
  CHECK(cli({"predict", "--idle", "0"}) == 2);
  CHECK(cli({"predict", "--count", "200"}) == 2);
  CHECK(cli({"predict", "--fault", "meteor"}) == 2);
  CHECK(cli({"predict", "--idle", "3", "--interval", "2", "--count", "4", "--hz", "250"}) == 0);
  CHECK(cli({"predict", "--json", "--hz", "1000"}) == 0);
  CHECK(cli({"predict", "--traffic", "sending", "--retries2", "4", "--hz", "250"}) == 0);
  CHECK(cli({"predict", "--traffic", "connect", "--syn-retries", "2", "--hz", "250"}) == 0);
  CHECK(cli({"predict", "--traffic", "connect", "--fault", "reboot"}) == 2);
  CHECK(cli({"predict", "--traffic", "teleport"}) == 2);
  CHECK(cli({"predict", "--retries2", "300"}) == 2);
}

TEST_CASE("run --program-arg needs NAME=ARG and a program of that name", "[cli][program]") {
  const std::string programs = kCases + "/programs";
  CHECK(cli({"run", "--program-arg", "no-program-has-this-name=--verbose", programs}) == 2);
  CHECK(cli({"run", "--program-arg", "redis-server", programs}) == 2);  // no '='
  CHECK(cli({"run", "--program-arg", "=--verbose", programs}) == 2);     // no name
}
