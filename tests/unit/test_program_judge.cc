// What a program did, judged against [program.expect], when the fault itself took time
// to take effect. Values from postgres-client-blackhole under the local backend with
// the whole library running: the blackhole's nft commit took 600.4 ms, psql printed
// its error at 4.954 s and exited at 5.007 s after the commit began.
#include <catch2/catch.hpp>

#include "harness/judge/program_judge.h"

namespace {

using kah::ProgramExpectation;
using kah::ProgramResult;
using kah::Verdict;

ProgramResult psql(double error_at_ms, double exited_at_ms) {
  ProgramResult r;
  r.name = "psql-v4";
  r.where = {"cases/programs/postgres-client-blackhole.toml", 48, 1};
  r.exit_status = 2;
  r.exited_ms = exited_at_ms;
  r.output = {{534.0, "stdout", "(1 row)"},
              {error_at_ms, "stderr", "could not receive data from server: Connection timed out"}};
  return r;
}

ProgramExpectation expectation() {
  ProgramExpectation e;
  e.exit_code = 2;
  e.exits_within_s = 5;
  e.output = "could not receive data from server: Connection timed out";
  e.output_from_s = 3;
  e.output_to_s = 5;
  return e;
}

const kah::ProgramCheck& check(const ProgramResult& r, const std::string& what) {
  for (const auto& c : r.checks)
    if (c.what == what) return c;
  FAIL("no check " << what);
  throw;
}

}  // namespace

TEST_CASE("program judge: a late exit that only the fault's slow landing explains is an error, not a failure",
          "[judge][program]") {
  auto r = psql(4954, 5007);
  kah::judge_program(r, expectation(), 6700, 600.4);
  INFO(check(r, "exits_within_s").message);
  CHECK(check(r, "exits_within_s").verdict == Verdict::error);
  CHECK(check(r, "exits_within_s").message.find("the fault took 600.4 ms to take effect") != std::string::npos);
  CHECK(check(r, "exits_within_s").message.find("5.007 s after the fault") != std::string::npos);
  CHECK(check(r, "output").verdict == Verdict::pass);
  CHECK(check(r, "exit_code").verdict == Verdict::pass);
  CHECK(r.verdict == Verdict::error);
}

TEST_CASE("program judge: a fault that landed at once leaves the same late exit a failure", "[judge][program]") {
  auto r = psql(4954, 5007);
  kah::judge_program(r, expectation(), 6700, 0);
  CHECK(check(r, "exits_within_s").verdict == Verdict::fail);
  CHECK(r.verdict == Verdict::fail);
}

TEST_CASE("program judge: late even counted from the fault's landing is a failure", "[judge][program]") {
  auto r = psql(5700, 5800);  // 5.2 s after a 600 ms landing: past 5 s either way
  kah::judge_program(r, expectation(), 6700, 600.4);
  CHECK(check(r, "exits_within_s").verdict == Verdict::fail);
  CHECK(check(r, "output").verdict == Verdict::fail);
  CHECK(r.verdict == Verdict::fail);
}

TEST_CASE("program judge: a failure beats an error in the program's verdict", "[judge][program]") {
  auto r = psql(4954, 5007);
  r.exit_status = 0;  // and the wrong status, which no landing explains
  kah::judge_program(r, expectation(), 6700, 600.4);
  CHECK(check(r, "exits_within_s").verdict == Verdict::error);
  CHECK(check(r, "exit_code").verdict == Verdict::fail);
  CHECK(r.verdict == Verdict::fail);
}
