// The margins page and tables (harness/report/margins.h): margins to each window edge,
// histograms that count every observation once, misses drawn as misses, the result
// JSON read back, and a page that keeps to XML syntax.
#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>
#include <limits>
#include <regex>
#include <string>

#include <unistd.h>

#include "harness/cli/cli.h"
#include "harness/report/margins.h"
#include "harness/report/report.h"
#include "xml_check.h"

using namespace kah;
using kah::test::xml_problem;

namespace {

ConnectionResult conn(std::string name, double earliest, double latest, double at, Verdict v,
                      ExpectedOutcome outcome = ExpectedOutcome::timeout) {
  ConnectionResult r;
  r.name = std::move(name);
  r.expected.outcome = outcome;
  r.expected.window = {earliest, latest};
  r.observed = observed(ObservedOutcome::timeout, "ETIMEDOUT", at, 3);
  r.verdict = v;
  if (v != Verdict::pass) r.message = "ended outside its window <late>";
  return r;
}

// Two runs of one case: three observations inside, one 4 ms late (a miss), and an
// alive connection that has no edge and must be left out.
std::vector<LabelledRun> sample_runs() {
  RunResult a;
  a.kernel = "6.18.44";
  CaseResult ca;
  ca.name = "peer-power-off";
  ca.verdict = Verdict::pass;
  ca.connections = {conn("c1-v4", 5000, 5100, 5010, Verdict::pass), conn("c1-v6", 5000, 5100, 5090, Verdict::pass),
                    conn("keep", 6000, std::numeric_limits<double>::infinity(), 6000, Verdict::pass,
                         ExpectedOutcome::alive)};
  a.cases = {ca};
  RunResult b = a;
  b.cases[0].verdict = Verdict::fail;
  b.cases[0].connections[0] = conn("c1-v4", 5000, 5100, 5050, Verdict::pass);
  b.cases[0].connections[1] = conn("c1-v6", 5000, 5100, 5104, Verdict::fail);
  return {{"idle-1", a}, {"loaded-1", b}};
}

// How many elements of `cls` the page draws.
std::size_t count_class(const std::string& page, const std::string& element, const std::string& cls) {
  const std::regex re("<" + element + " class=\"" + cls + "\"");
  return static_cast<std::size_t>(std::distance(std::sregex_iterator(page.begin(), page.end(), re), std::sregex_iterator()));
}

}  // namespace

TEST_CASE("margins: each edge, in ms and in % of the window", "[report][margins]") {
  const auto obs = observations(sample_runs());
  REQUIRE(obs.size() == 4);  // the alive connection has no window edge
  CHECK(obs[0].to_earliest_ms() == Approx(10));
  CHECK(obs[0].to_latest_ms() == Approx(90));
  CHECK(obs[0].to_earliest_pct() == Approx(10));
  CHECK(obs[0].to_latest_pct() == Approx(90));
  CHECK_FALSE(obs[0].miss());
  CHECK(obs[3].to_latest_ms() == Approx(-4));
  CHECK(obs[3].miss());

  const auto m = smallest_margins(obs);
  REQUIRE(m.size() == 2);
  CHECK(m[0].connection == "c1-v6");  // closest to an edge first
  CHECK(m[0].to_latest_ms == Approx(-4));
  CHECK(m[0].latest_run == "loaded-1");
  CHECK(m[0].misses == 1);
  CHECK(m[1].to_earliest_ms == Approx(10));
  CHECK(m[1].earliest_run == "idle-1");
  CHECK(m[1].to_latest_ms == Approx(50));
  CHECK(m[1].latest_run == "loaded-1");

  const auto fv = false_verdicts(sample_runs());
  REQUIRE(fv.size() == 1);
  CHECK(fv[0].run == "loaded-1");
  CHECK(fv[0].connection == "c1-v6");
}

TEST_CASE("margins: copies fold into their connection", "[report][margins]") {
  RunResult r;
  CaseResult c;
  c.name = "lossy";
  c.connections = {conn("c1-v4#1", 0, 100, 30, Verdict::pass), conn("c1-v4#2", 0, 100, 20, Verdict::pass),
                   conn("c1-v4#x", 0, 100, 50, Verdict::pass)};
  r.cases = {c};
  // A copy that passed by staying open through a random fault has no edge to be near.
  r.cases[0].connections.push_back(conn("c1-v4#3", 0, 100, 900, Verdict::pass));
  r.cases[0].connections.back().observed.outcome = ObservedOutcome::alive;
  const auto m = smallest_margins(observations({{"r", r}}));
  REQUIRE(m.size() == 2);  // "c1-v4#x" is a name, not a copy
  CHECK(m[0].connection == "c1-v4");
  CHECK(m[0].observations == 2);
  CHECK(m[0].to_earliest_ms == Approx(20));
  CHECK(m[1].connection == "c1-v4#x");
}

TEST_CASE("margins: histograms count every observation once, misses apart", "[report][margins]") {
  const auto obs = observations(sample_runs());
  const auto e = make_histogram(obs, &Observation::to_earliest_ms, ms_edges());
  CHECK(e.total() == 4);
  // 10 ms and 50 ms land in [10, 20) and [50, 100); 90 in [50, 100); 104 (the miss) in [100, 200).
  CHECK(e.inside[5] == 1);
  CHECK(e.inside[7] == 2);
  CHECK(e.misses[8] == 1);
  const auto l = make_histogram(obs, &Observation::to_latest_ms, ms_edges());
  CHECK(l.misses[0] == 1);  // -4 ms: the outside bin
  CHECK(l.total() == 4);
  const auto p = make_histogram(obs, &Observation::to_earliest_pct, pct_edges());
  CHECK(p.misses.back() == 1);  // 104 % of the window: beyond the latest edge
  CHECK(p.total() == 4);
  // An observation on the latest edge itself is inside: 100 % falls in the last inside bin.
  const auto edge = make_histogram({Observation{"r", "c", "x", 0, 100, 100, Verdict::pass}},
                                   &Observation::to_earliest_pct, pct_edges());
  CHECK(edge.inside[10] == 1);
  CHECK(edge.misses.back() == 0);
  CHECK_THROWS_AS(make_histogram(obs, &Observation::to_earliest_ms, {0, 1}), std::invalid_argument);
}

TEST_CASE("margins page: XML syntax, counts, a miss drawn as a miss", "[report][margins]") {
  const std::string page = margins_html(sample_runs(), "margins <test>");
  INFO(page);
  CHECK(xml_problem(page).empty());
  CHECK(page.find("<script") == std::string::npos);
  CHECK(page.find("http://") == page.find("http://www.w3.org/2000/svg"));  // only the SVG namespace
  CHECK(page.find("margins &lt;test&gt;") != std::string::npos);
  CHECK(page.find("2 runs, 4 observations with a bounded window") != std::string::npos);
  CHECK(page.find("1 missed") != std::string::npos);
  // Four histograms; the miss is one red bar in each, with its count and tooltip.
  CHECK(count_class(page, "svg", "hist") == 4);
  CHECK(count_class(page, "rect", "miss") == 4);
  CHECK(page.find("<title>[-inf, 0) ms: 1 missed</title>") != std::string::npos);
  CHECK(page.find("<title>[100, 200) ms: 1 missed</title>") != std::string::npos);
  CHECK(page.find("<title>[100, inf) %: 1 missed</title>") != std::string::npos);
  CHECK(page.find("<title>[90, 100] %: 1 inside</title>") != std::string::npos);  // 90 % from the earliest edge
  // One false verdict row, two margin rows; the negative margin in red.
  CHECK(count_class(page, "tr", "false") == 1);
  CHECK(count_class(page, "tr", "margin") == 2);
  CHECK(page.find("<td class=\"num bad\">-4.0</td>") != std::string::npos);
  CHECK(page.find("ended outside its window &lt;late&gt;") != std::string::npos);

  // All inside: nothing red at all.
  auto runs = sample_runs();
  runs.pop_back();
  const std::string clean = margins_html(runs);
  CHECK(xml_problem(clean).empty());
  CHECK(count_class(clean, "rect", "miss") == 0);
  CHECK(clean.find("None: every connection of every run passed.") != std::string::npos);
}

TEST_CASE("margins: the result JSON reads back", "[report][margins]") {
  const auto runs = sample_runs();
  const RunResult back = run_result_from_json(result_json(runs[1].run));
  REQUIRE(back.cases.size() == 1);
  REQUIRE(back.cases[0].connections.size() == 3);
  CHECK(back.kernel == "6.18.44");
  CHECK(back.cases[0].verdict == Verdict::fail);
  const auto& r = back.cases[0].connections[1];
  CHECK(r.verdict == Verdict::fail);
  CHECK(r.expected.window.earliest_ms == 5000);
  CHECK(r.expected.window.latest_ms == 5100);
  CHECK(r.observed.at_ms == 5104);
  CHECK(r.message == "ended outside its window <late>");
  CHECK_FALSE(back.cases[0].connections[2].expected.window.bounded());  // latest_ms null: unbounded
  CHECK(margins_text({{"loaded-1", back}}) == margins_text({runs[1]}));
  CHECK_THROWS(run_result_from_json(nlohmann::json::object()));
  CHECK_THROWS(run_result_from_json(nlohmann::json::parse(R"({"cases":[{"name":"x","verdict":"maybe","connections":[]}]})")));
}

TEST_CASE("kaharness margins: exit 0 all passed, 1 a false verdict, 2 not a result", "[report][margins][cli]") {
  namespace fs = std::filesystem;
  const fs::path dir = fs::temp_directory_path() / ("kah-margins-test-" + std::to_string(::getpid()));
  fs::create_directories(dir);
  const auto runs = sample_runs();
  const auto write = [&](const std::string& name, const std::string& text) {
    std::ofstream(dir / name) << text;
    return (dir / name).string();
  };
  const auto good = write("idle-1.json", result_json(runs[0].run).dump());
  const auto bad = write("loaded-1.json", result_json(runs[1].run).dump());
  const auto junk = write("junk.json", "{\"not\": \"a result\"}");
  const auto cli = [](std::vector<std::string> args) {
    args.insert(args.begin(), "kaharness");
    std::vector<const char*> argv;
    for (const auto& a : args) argv.push_back(a.c_str());
    return kah::cli_main(static_cast<int>(argv.size()), argv.data());
  };
  CHECK(cli({"margins", good}) == 0);
  const auto page = (dir / "page" / "margins.html").string();
  CHECK(cli({"margins", good, bad, "--html", page}) == 1);
  std::ifstream in(page);
  const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  CHECK(xml_problem(text).empty());
  CHECK(text.find("2 runs, 4 observations") != std::string::npos);
  CHECK(text.find("<td>loaded-1</td>") != std::string::npos);  // runs are named by their files
  CHECK(cli({"margins", junk}) == 2);
  CHECK(cli({"margins", (dir / "missing.json").string()}) == 2);
  CHECK(cli({"margins"}) == 2);
  fs::remove_all(dir);
}

// soak.sh counted ssh-server-blackhole's connections as 24 misses of 24: ssh closes its
// own connection long before the kernel's earliest end (outcome "closed"), and that
// window is one the end must not reach, not one to fall in.
TEST_CASE("margins: a connection its program closed has no window to fall in", "[report][margins]") {
  RunResult r;
  CaseResult c;
  c.name = "ssh";
  c.connections = {conn("ssh-v4-1", 944000, 944006, 3100, Verdict::pass, ExpectedOutcome::closed),
                   conn("other", 0, 100, 50, Verdict::pass)};
  r.cases = {c};
  const auto obs = observations({{"r", r}});
  REQUIRE(obs.size() == 1);
  CHECK(obs[0].connection == "other");
}

// soak.sh 100 on 2fe3130 said "0 false verdicts" while three runs exited 1: curl's
// output line came before its window (a program expectation), and only connection
// verdicts were counted.
TEST_CASE("margins: a program whose expectation failed is a false verdict", "[report][margins]") {
  auto runs = sample_runs();
  RunResult run = runs[0].run;
  kah::ProgramResult curl;
  curl.name = "curl-v4";
  curl.verdict = Verdict::fail;
  curl.checks = {{"exit_code", Verdict::pass, "exit status 56"},
                 {"output", Verdict::fail, "curl-server-hangs.toml:32:1: program curl-v4: expected a line <early>"}};
  run.cases[0].programs.push_back(curl);
  REQUIRE(false_verdicts({{"pair-3-a", run}}).size() == false_verdicts({runs[0]}).size() + 1);
  // Through the result JSON, as soak.sh reads it.
  const auto fv = false_verdicts({{"pair-3-a", run_result_from_json(result_json(run))}});
  REQUIRE_FALSE(fv.empty());
  const auto& f = fv.back();
  CHECK(f.run == "pair-3-a");
  CHECK(f.connection == "program curl-v4");
  CHECK(f.verdict == Verdict::fail);
  CHECK(f.message == "curl-server-hangs.toml:32:1: program curl-v4: expected a line <early>");
  CHECK_THAT(margins_text({{"pair-3-a", run}}), Catch::Contains("program curl-v4 fail: curl-server-hangs.toml:32:1"));
}

// A connection not judged (late while the machine held a CPU) did not make its run red:
// listed apart, and `kaharness margins` exits 0 for it.
TEST_CASE("margins: a connection not judged is listed apart and is not a false verdict", "[report][margins]") {
  auto runs = sample_runs();
  RunResult run = runs[0].run;
  run.cases[0].connections[1] = conn("c1-v6", 5000, 5100, 5106.5, Verdict::not_judged);
  run.cases[0].connections[1].message = "c1-v6: not judged: it came 6.5 ms late <CPU 1>";
  run.cases[0].verdict = Verdict::not_judged;
  const auto back = run_result_from_json(result_json(run));
  CHECK(back.cases[0].connections[1].verdict == Verdict::not_judged);
  const auto fv = false_verdicts({{"idle-7", back}});
  REQUIRE(fv.size() == 1);
  CHECK_FALSE(fv[0].red());
  const auto text = margins_text({{"idle-7", back}});
  CHECK_THAT(text, Catch::Contains("false verdicts over 1 runs: 0 (0 failed, 0 errors)"));
  CHECK_THAT(text, Catch::Contains("not judged (late while the machine held a CPU or stepped the clock; not red): 1\n"
                                   "  peer-power-off/c1-v6: 1\n      idle-7: c1-v6 not-judged: c1-v6: not judged"));
  CHECK_THAT(margins_html({{"idle-7", back}}, "t"), Catch::Contains("0 false verdicts, 1 not judged"));
  CHECK(xml_problem(margins_html({{"idle-7", back}}, "t")).empty());
}
