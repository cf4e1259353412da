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

// curl-server-hangs in soak pair-3-a (two library runs at once): curl-v4's request was
// acknowledged 1249.4 ms before the fault began, because curl-v6 took 1.08 s to get
// ready after it. Keepalive (idle 2, interval 2, count 3) reset the connection 8057.7
// ms after that acknowledgement, as the model predicted ([8057.5, 8067.6] ms); curl
// printed its error 6.808 s after the fault and exited at 6.910 s.
namespace {

ProgramResult curl_v4() {
  ProgramResult r;
  r.name = "curl-v4";
  r.where = {"cases/programs/curl-server-hangs.toml", 32, 1};
  r.exit_status = 56;
  r.exited_ms = 6910.1;
  r.last_received_ms = -1249.4;
  r.output = {{6808.3, "stderr", "curl: (56) Recv failure: Connection timed out"}};
  return r;
}

ProgramExpectation curl_expectation(kah::CountedFrom from) {
  ProgramExpectation e;
  e.exit_code = 56;
  e.exits_within_s = 10;
  e.output = "\\(56\\) Recv failure: Connection timed out";
  e.output_from_s = 7;
  e.output_to_s = 10;
  e.counted_from = from;
  return e;
}

}  // namespace

TEST_CASE("program judge: counted from the fault, an idle time before it reads as an early line",
          "[judge][program]") {
  auto r = curl_v4();
  kah::judge_program(r, curl_expectation(kah::CountedFrom::fault), 11758, 0);
  CHECK(check(r, "output").verdict == Verdict::fail);
  CHECK_THAT(check(r, "output").message, Catch::Contains("within [7.000 s, 10.000 s] after the fault, but it came at "
                                                         "6.808 s"));
}

TEST_CASE("program judge: counted_from = last_received counts from the connection's last received segment",
          "[judge][program]") {
  auto r = curl_v4();
  kah::judge_program(r, curl_expectation(kah::CountedFrom::last_received), 11758, 0);
  INFO(check(r, "output").message);
  CHECK(check(r, "output").verdict == Verdict::pass);
  CHECK(check(r, "exits_within_s").verdict == Verdict::pass);
  CHECK(check(r, "exits_within_s").message ==
        "exited 8.159 s after its connection's last received segment (1.249 s before the fault)");
  CHECK(r.verdict == Verdict::pass);
  // The result keeps its times from the fault.
  CHECK(r.output.front().at_ms == 6808.3);
  CHECK(*r.exited_ms == 6910.1);

  SECTION("a line before the window still fails, and says what it counted from") {
    r.output.front().at_ms = 5000;  // 6.249 s after the acknowledgement
    kah::judge_program(r, curl_expectation(kah::CountedFrom::last_received), 11758, 0);
    CHECK(check(r, "output").verdict == Verdict::fail);
    CHECK_THAT(check(r, "output").message,
               Catch::Contains("within [7.000 s, 10.000 s] after its connection's last received segment (1.249 s "
                               "before the fault), but it came at 6.249 s"));
  }
  SECTION("the fault's slow landing does not excuse it: the landing is not the origin") {
    r.exited_ms = 9000;  // 10.249 s after the acknowledgement, 9.0 s after the fault
    kah::judge_program(r, curl_expectation(kah::CountedFrom::last_received), 11758, 600);
    CHECK(check(r, "exits_within_s").verdict == Verdict::fail);
  }
  SECTION("without a connection to count from the timing checks are errors") {
    r.last_received_ms.reset();
    kah::judge_program(r, curl_expectation(kah::CountedFrom::last_received), 11758, 0);
    CHECK(check(r, "output").verdict == Verdict::error);
    CHECK(check(r, "exits_within_s").verdict == Verdict::error);
    CHECK_THAT(check(r, "output").message, Catch::Contains("none of its connections was found to count from"));
  }
}
