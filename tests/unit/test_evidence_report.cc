// What CI servers and people read: JUnit XML, the HTML report and the escaping under
// both. A small well-formedness checker stands in for an XML parser, so the tests need
// nothing beyond Catch2.
#include <catch2/catch.hpp>

#include <regex>

#include <unistd.h>

#include <fstream>
#include <set>
#include <sstream>
#include <string_view>

#include <fmt/format.h>

#include "harness/report/html_report.h"
#include "harness/report/junit.h"
#include "harness/report/xml.h"
#include "xml_check.h"

using namespace kah;
using namespace kah::evidence;
using kah::test::xml_problem;

namespace {

std::size_t occurrences(const std::string& text, const std::string& part) {
  std::size_t n = 0;
  for (auto at = text.find(part); at != std::string::npos; at = text.find(part, at + 1)) ++n;
  return n;
}

// The first start tag named `name`, for checking its attributes.
std::string start_tag(const std::string& doc, const std::string& name) {
  const auto at = doc.find("<" + name + " ");
  return at == std::string::npos ? "" : doc.substr(at, doc.find('>', at) - at + 1);
}

ConnectionResult connection(const std::string& name, Verdict verdict, double at_ms) {
  ConnectionResult r;
  r.name = name;
  r.where = {"cases/peer-blackhole.toml", 7, 1};
  r.expected.outcome = ExpectedOutcome::timeout;
  r.expected.window = {5004, 5300};
  r.observed = observed(ObservedOutcome::timeout, "ETIMEDOUT", at_ms, 3);
  r.prediction.outcome = model::Outcome::timeout;
  r.prediction.probes = {{0, 2000, {2004, 2260}, true}, {1, 3000, {3004, 3260}, true}, {2, 4000, {4004, 4260}, true}};
  r.prediction.steps = {"probe 1: idle 2 s after t_r", "abort after 3 unanswered probes"};
  r.verdict = verdict;
  return r;
}

RunResult sample_run() {
  RunResult run;
  run.kernel = "6.18.44";
  run.hz = 250;
  run.hz_source = "/boot/config-6.18.44";
  run.wall_ms = 9870;

  CaseResult blackhole;
  blackhole.name = "peer-blackhole";
  blackhole.description = "The peer goes silent & the client's kernel gives up.";
  blackhole.file = "cases/peer-blackhole.toml";
  blackhole.verdict = Verdict::fail;
  blackhole.wall_ms = 6400;
  blackhole.connections.push_back(connection("c1-v4", Verdict::pass, 5090.6));
  auto late = connection("c1-v6", Verdict::fail, 5400);
  late.message = "cases/peer-blackhole.toml:7:1: connection c1-v6: timeout 100.0 ms too late: expected <5300 & \"soon\"\n"
                 "second line";
  blackhole.connections.push_back(late);
  run.cases.push_back(blackhole);

  CaseResult reboot;
  reboot.name = "peer-reboot";
  reboot.file = "cases/peer-reboot.toml";
  reboot.verdict = Verdict::error;
  reboot.error = "cannot create a network namespace: Operation not permitted (needs CAP_SYS_ADMIN)";
  reboot.wall_ms = 3;
  run.cases.push_back(reboot);

  CaseResult skipped;
  skipped.name = "nat-expiry";
  skipped.file = "cases/nat-expiry.toml";
  skipped.verdict = Verdict::skip;
  auto s = connection("c1-v4", Verdict::skip, 0);
  s.message = "filtered out";
  skipped.connections.push_back(s);
  run.cases.push_back(skipped);
  return run;
}

// A Linux client's flow (IPv4): data at t = 0, then 0-byte probes at 2004.1, 3004.1 and
// 4402.5 ms (late), and its RST at 5010 ms.
FlowAnalysis blackhole_flow(double origin) {
  std::vector<Packet> packets;
  const auto add = [&](bool from_client, double t, std::uint32_t seq, std::uint32_t ack, std::uint8_t flags,
                       std::uint32_t len) {
    Packet p;
    p.src = from_client ? "198.18.0.1" : "198.18.0.2";
    p.dst = from_client ? "198.18.0.2" : "198.18.0.1";
    p.sport = from_client ? 40001 : 8080;
    p.dport = from_client ? 8080 : 40001;
    p.t_ms = origin + t;
    p.seq = seq;
    p.ack = ack;
    p.flags = flags;
    p.payload_len = len;
    p.window = 501;  // a zero window would make the probes persist-timer probes
    packets.push_back(p);
  };
  add(true, -0.4, 1000, 9000, tcp_flag::ack | tcp_flag::psh, 10);
  add(false, 0, 9000, 1010, tcp_flag::ack | tcp_flag::psh, 5);
  add(true, 0.1, 1010, 9005, tcp_flag::ack, 0);
  for (const double t : {2004.1, 3004.1, 4402.5}) add(true, t, 1009, 9005, tcp_flag::ack, 0);
  add(true, 5010, 1010, 9005, tcp_flag::rst | tcp_flag::ack, 0);
  return analyze_flow(packets);
}

ConnectionResult& find_connection(RunResult& run, const std::string& case_name, const std::string& name) {
  for (auto& c : run.cases)
    for (auto& r : c.connections)
      if (c.name == case_name && r.name == name) return r;
  throw std::logic_error("no connection " + case_name + "/" + name);
}

}  // namespace

TEST_CASE("XML escaping keeps documents well-formed", "[evidence][xml]") {
  CHECK(xml_text("a<b & c>d \"q\" 'a'") == "a&lt;b &amp; c&gt;d \"q\" 'a'");
  CHECK(xml_attr("a<b & \"q\" 'a'") == "a&lt;b &amp; &quot;q&quot; &#39;a&#39;");
  CHECK(xml_attr("one\ntwo\tthree\r") == "one&#10;two&#9;three&#13;");
  CHECK(xml_text("one\ntwo") == "one\ntwo");
  // Controls XML 1.0 forbids, and broken UTF-8, become U+FFFD; real UTF-8 stays.
  CHECK(xml_text(std::string("bell\x07!")) == "bell\xEF\xBF\xBD!");
  CHECK(xml_text(std::string("cut \xC3")) == "cut \xEF\xBF\xBD");
  CHECK(xml_text(std::string("overlong \xC0\xAF")) == "overlong \xEF\xBF\xBD\xEF\xBF\xBD");
  CHECK(xml_text("ms \xC2\xB5s \xE2\x86\x92 \xF0\x9F\x93\xA6") == "ms \xC2\xB5s \xE2\x86\x92 \xF0\x9F\x93\xA6");
}

TEST_CASE("the well-formedness checker catches what it should", "[evidence][xml]") {
  CHECK(xml_problem("<a><b x=\"1\"/>text &amp; more</a>").empty());
  CHECK_FALSE(xml_problem("<a><b></a></b>").empty());
  CHECK_FALSE(xml_problem("<a x=\"1\" x=\"2\"/>").empty());
  CHECK_FALSE(xml_problem("<a>fish & chips</a>").empty());
  CHECK_FALSE(xml_problem("<a x=\"<\"/>").empty());
  CHECK_FALSE(xml_problem("<a/><b/>").empty());
  CHECK_FALSE(xml_problem("<a>").empty());
  CHECK_FALSE(xml_problem("<a x=1/>").empty());
}

TEST_CASE("JUnit XML: one testsuite per case, one testcase per connection", "[evidence][junit]") {
  const std::string xml = junit_xml(sample_run());
  INFO(xml);
  CHECK(xml_problem(xml).empty());
  CHECK(xml.rfind("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites ", 0) == 0);
  // The schema's <testsuites> has name, tests, failures, errors and time; nothing else.
  CHECK(start_tag(xml, "testsuites") == "<testsuites name=\"kaharness\" tests=\"4\" failures=\"1\" errors=\"1\" time=\"9.870\">");
  CHECK(occurrences(xml, "<testsuite ") == 3);
  CHECK(occurrences(xml, "<testcase ") == 4);
  CHECK(start_tag(xml, "testsuite") ==
        "<testsuite name=\"peer-blackhole\" tests=\"2\" failures=\"1\" errors=\"0\" skipped=\"0\" time=\"6.400\" "
        "file=\"cases/peer-blackhole.toml\">");
  CHECK_THAT(xml, Catch::Contains("<testcase classname=\"peer-blackhole\" name=\"c1-v4\" time=\"5.091\"/>"));
  CHECK_THAT(xml, Catch::Contains("<testcase classname=\"peer-blackhole\" name=\"c1-v6\" time=\"5.400\">"));
  CHECK_THAT(xml, Catch::Contains("<failure message=\"cases/peer-blackhole.toml:7:1: connection c1-v6: timeout 100.0 ms "
                                  "too late: expected &lt;5300 &amp; &quot;soon&quot;&#10;second line\">"));
  CHECK_THAT(xml, Catch::Contains("expected: timeout within [5004.0, 5300.0] ms\n"));
  CHECK_THAT(xml, Catch::Contains("observed: timeout (ETIMEDOUT) at 5400.0 ms after 3 probes\n"));
  CHECK_THAT(xml, Catch::Contains("  abort after 3 unanswered probes\n"));
  // A case that could not run is one errored test named after it.
  CHECK_THAT(xml, Catch::Contains("<testsuite name=\"peer-reboot\" tests=\"1\" failures=\"0\" errors=\"1\" skipped=\"0\""));
  CHECK_THAT(xml, Catch::Contains("<testcase classname=\"peer-reboot\" name=\"peer-reboot\" time=\"0.003\">\n"
                                  "      <error message=\"cannot create a network namespace"));
  CHECK_THAT(xml, Catch::Contains("<skipped message=\"filtered out\"/>"));
  CHECK_THAT(xml, Catch::Contains("<property name=\"hz\" value=\"250\"/>"));
}

TEST_CASE("JUnit XML of an empty run is still a valid document", "[evidence][junit]") {
  const std::string xml = junit_xml(RunResult{});
  CHECK(xml_problem(xml).empty());
  CHECK_THAT(xml, Catch::Contains("tests=\"0\" failures=\"0\" errors=\"0\" time=\"0.000\""));
}

TEST_CASE("a connection with an error verdict carries the case error", "[evidence][junit]") {
  RunResult run;
  CaseResult c;
  c.name = "freeze";
  c.verdict = Verdict::error;
  c.error = "SIGSTOP failed";
  c.connections.push_back(connection("c1-v4", Verdict::error, 0));
  run.cases.push_back(c);
  const std::string xml = junit_xml(run);
  CHECK(xml_problem(xml).empty());
  CHECK(occurrences(xml, "<testcase ") == 1);  // not repeated as a second, case-level test
  CHECK_THAT(xml, Catch::Contains("<error message=\"SIGSTOP failed\">SIGSTOP failed</error>"));
}

TEST_CASE("HTML report: self-contained, one timeline per connection, probes checked", "[evidence][html]") {
  const double origin = 1714000000000.0;
  RunResult run = sample_run();
  auto& evidence = find_connection(run, "peer-blackhole", "c1-v6").evidence;
  evidence.flow = blackhole_flow(origin);
  evidence.origin_realtime_ms = origin;
  evidence.fault_ms = 3.5;
  evidence.pcap_client = "peer blackhole#c1-v6.pcap";
  HtmlOptions options;
  options.pcap_dir = "out/pcap";
  options.report_dir = "out";

  const std::string html = html_report(run, options);
  INFO(html.substr(0, 400));
  CHECK(xml_problem(html).empty());
  CHECK(html.rfind("<!DOCTYPE html>", 0) == 0);
  // Nothing is fetched: no scripts, stylesheets, images, fonts or imports.
  for (const char* outside : {"<script", "<link", "src=", "@import", "url(", "https:"}) CHECK(occurrences(html, outside) == 0);
  CHECK(occurrences(html, "http:") == occurrences(html, "xmlns=\"http://www.w3.org/2000/svg\""));

  CHECK(occurrences(html, "<svg class=\"timeline\"") == 2);  // one per connection that ran
  CHECK_THAT(html, Catch::Contains("<dt>observed</dt><dd>not run</dd>"));
  CHECK(occurrences(html, "<section class=\"panel case\"") == 3);
  CHECK_THAT(html, Catch::Contains("<title>probe 3 (0-byte) sent at 4402.5 ms, lost (no answer)</title>"));
  CHECK_THAT(html, Catch::Contains("<title>probe 2 expected within [3004.0, 3260.0] ms</title>"));
  CHECK_THAT(html, Catch::Contains("<title>fault at 3.5 ms</title>"));
  CHECK_THAT(html, Catch::Contains("probe 3 late: expected within [4004.0, 4260.0] ms, seen at 4402.5 ms"));
  CHECK_THAT(html, Catch::Contains("<a href=\"pcap/peer%20blackhole%23c1-v6.pcap\">pcap/peer blackhole#c1-v6.pcap</a>"));
  CHECK_THAT(html, Catch::Contains("no capture for this connection"));
  CHECK_THAT(html, Catch::Contains("expected &lt;5300 &amp; \"soon\""));
  CHECK_THAT(html, Catch::Contains("cannot create a network namespace"));
  // Each case says what it models; one without a description shows its name.
  CHECK_THAT(html, Catch::Contains("<p class=\"description\">The peer goes silent &amp; the client's kernel gives up.</p>"));
  CHECK_THAT(html, Catch::Contains("<p class=\"description\">peer-reboot</p>"));
}

TEST_CASE("HTML report: the marker labels above a timeline never overlap", "[evidence][html]") {
  // A fault 3.5 ms after t = 0 puts both lines on nearly the same x.
  RunResult run = sample_run();
  auto& evidence = find_connection(run, "peer-blackhole", "c1-v6").evidence;
  evidence.flow = blackhole_flow(1714000000000.0);
  evidence.origin_realtime_ms = 1714000000000.0;
  evidence.fault_ms = 3.5;
  const std::string html = html_report(run);
  const auto text_at = [&](const std::string& label) {
    const std::regex re("<text x=\"([0-9.]+)\" y=\"([0-9.]+)\" text-anchor=\"start\"[^>]*>" + label + "</text>");
    std::smatch m;
    REQUIRE(std::regex_search(html, m, re));
    return std::pair{std::stod(m[1]), std::stod(m[2])};
  };
  const auto [t0_x, t0_y] = text_at("t = 0 last received");
  const auto [fault_x, fault_y] = text_at("fault");
  // On one row, the fault's label starts after the end of t = 0's (6.5 px a character).
  CHECK(t0_y == fault_y);
  CHECK(fault_x >= t0_x + 6.5 * 19);
}

TEST_CASE("write_html_report writes index.html into a new folder", "[evidence][html]") {
  const auto dir = std::filesystem::temp_directory_path() / fmt::format("kah-{}-report", ::getpid()) / "nested";
  write_html_report(sample_run(), dir);
  std::ifstream in(dir / "index.html");
  std::stringstream text;
  text << in.rdbuf();
  CHECK_THAT(text.str(), Catch::Contains("peer-blackhole"));
  std::filesystem::remove_all(dir.parent_path());
}

TEST_CASE("evidence report: a kernel timer lane only for connections with timer samples", "[evidence][html]") {
  const double origin = 1714000000000.0;
  RunResult run = sample_run();
  auto& evidence = find_connection(run, "peer-blackhole", "c1-v6").evidence;
  evidence.flow = blackhole_flow(origin);
  evidence.origin_realtime_ms = origin;

  SECTION("without samples there is no lane and no legend entry") {
    const std::string html = html_report(run);
    CHECK(xml_problem(html).empty());
    CHECK(occurrences(html, "kernel timer") == 0);
    CHECK(occurrences(html, "kernel: ") == 0);
  }

  SECTION("samples draw a lane with ss-style tooltips and the counter where it changes") {
    // What socket_timers() shows for the blackhole flow, sampled every ~250 ms (a few
    // of them): idle, due at 2000 ms but run a little late, then a probe at 2004 ms and
    // one at 3004 ms, each re-arming the timer for 1 s; then data, and the retransmit timer.
    evidence.timer_samples = {
        {0.0, "keepalive", 2000, 0},    {1000.0, "keepalive", 1000, 0}, {2002.0, "keepalive", 0, 0},
        {2250.0, "keepalive", 754, 1},  {3012.0, "keepalive", 992, 2},  {3500.0, "keepalive", 504, 2},
        {4100.0, "on", 200, 0},         {4600.0, "on", 408, 1},         {5100.0, "none", 0, 0},
    };
    const std::string html = html_report(run);
    INFO(html.substr(0, 400));
    CHECK(xml_problem(html).empty());
    // One lane, in the one connection that has samples.
    CHECK(occurrences(html, ">kernel timer</text>") == 1);
    CHECK(occurrences(html, "<svg class=\"timeline\"") == 2);
    CHECK_THAT(html, Catch::Contains("kernel: keepalive timer"));
    // The tooltips read as `ss -o` prints the timer, with the sample's time.
    CHECK_THAT(html, Catch::Contains("<title>timer:(keepalive,2sec,0) at 0 ms</title>"));
    CHECK_THAT(html, Catch::Contains("<title>timer:(keepalive,992ms,2) at 3012 ms</title>"));
    CHECK_THAT(html, Catch::Contains("<title>timer:(on,408ms,1) at 4600 ms</title>"));
    CHECK_THAT(html, Catch::Contains("<title>no timer pending at 5100 ms</title>"));
    CHECK_THAT(html, Catch::Contains("<title>timer:(keepalive,,0) at 2002 ms (due, not yet run)</title>"));
    // The counter is written where it changes: 0, 1, 2, then 0 and 1 of the retransmit timer.
    CHECK(occurrences(html, "class=\"timer-count\"") == 5);
    // A line forward to the expiry for every pending sample, none for "none".
    CHECK(occurrences(html, "stroke-opacity=\"0.45\"/>") == 8 + 2);  // 8 pending samples + 2 legend swatches
    // Self-contained still.
    for (const char* outside : {"<script", "<link", "src=", "url(", "https:"}) CHECK(occurrences(html, outside) == 0);
  }
}

TEST_CASE("HTML report: a program lane per program, with its output, exit and judged expectations",
          "[evidence][html][program]") {
  RunResult run = sample_run();
  CaseResult& c = run.cases.front();
  ProgramResult server;
  server.name = "redis-server";
  server.host = "server";
  server.started_ms = -1500;
  server.ready_ms = -1200;
  server.output = {{-1300, "stdout", "Ready to accept connections"},
                   {6010, "stdout", "Reading from client: Connection timed out <&>"}};
  server.checks = {{"output", Verdict::pass, "a line matched at 6.010 s"}};
  ProgramResult client;
  client.name = "curl";
  client.host = "client";
  client.started_ms = -900;
  client.exited_ms = 8100;
  client.exit_status = 56;
  client.output = {{8090, "stderr", "curl: (56) Recv failure: Connection timed out"}};
  client.checks = {{"exit_code", Verdict::fail, "expected 0, exited with status 56"}};
  client.last_received_ms = -1249.0;  // what keepalive (and counted_from = "last_received") counts from
  c.programs = {server, client};

  const std::string html = html_report(run);
  CHECK(xml_problem(html).empty());
  CHECK(occurrences(html, "aria-label=\"programs of ") == 1);  // one lane drawing, for the one case with programs
  CHECK_THAT(html, Catch::Contains("<title>ready at -1.200 s</title>"));
  CHECK_THAT(html, Catch::Contains("6.010 s stdout: Reading from client: Connection timed out &lt;&amp;&gt;</title>"));
  CHECK_THAT(html, Catch::Contains("<title>exit status 56 at 8.100 s</title>"));
  CHECK_THAT(html, Catch::Contains("running when the case ended (stopped by the harness)"));
  CHECK_THAT(html, Catch::Contains("<td>exit_code</td><td><span class=\"badge fail\">"));
  CHECK_THAT(html, Catch::Contains("expected 0, exited with status 56"));
  CHECK_THAT(html, Catch::Contains("<title>the fault</title>"));
  CHECK(occurrences(html, "class=\"last-received\"") == 1);  // curl's only: the server has no last_received_ms
  CHECK_THAT(html, Catch::Contains("before the fault, at -1.249 s: keepalive counts from here"));
}
