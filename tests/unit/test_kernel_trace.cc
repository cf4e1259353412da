// The kernel-trace adapter (netns/kernel_trace.h) and the matching and judging by it
// (harness/evidence/kernel_timing.h), on samples recorded from a real run
// (tests/data/kernel_trace/README.md) and on synthetic traces.
#include <catch2/catch.hpp>

#include <linux/perf_event.h>

#include <cstring>
#include <fstream>
#include <sstream>

#include <fmt/format.h>

#include "harness/evidence/kernel_timing.h"
#include "harness/judge/judge.h"
#include "netns/kernel_trace.h"

using namespace kah;

namespace {

const std::string kData = std::string(KAH_SOURCE_DIR) + "/tests/data/kernel_trace/";

std::string slurp(const std::string& path) {
  std::ifstream in(path);
  REQUIRE(in);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

std::vector<std::uint8_t> from_hex(const std::string& hex) {
  std::vector<std::uint8_t> out;
  for (std::size_t i = 0; i + 1 < hex.size(); i += 2)
    out.push_back(static_cast<std::uint8_t>(std::stoul(hex.substr(i, 2), nullptr, 16)));
  return out;
}

template <class T>
void put(std::vector<std::uint8_t>& out, T v) {
  const auto* p = reinterpret_cast<const std::uint8_t*>(&v);
  out.insert(out.end(), p, p + sizeof v);
}

// A PERF_RECORD_SAMPLE as the kernel writes it for TID | TIME | CPU | RAW.
std::vector<std::uint8_t> sample_record(std::uint32_t pid, std::uint64_t time_ns, std::uint32_t cpu,
                                        const std::vector<std::uint8_t>& raw) {
  std::vector<std::uint8_t> body;
  put<std::uint32_t>(body, pid);
  put<std::uint32_t>(body, pid + 1);
  put<std::uint64_t>(body, time_ns);
  put<std::uint32_t>(body, cpu);
  put<std::uint32_t>(body, 0);
  auto padded = raw;
  while ((padded.size() + 4) % 8 != 0) padded.push_back(0);  // the kernel pads u32 size + raw to 8 bytes
  put<std::uint32_t>(body, static_cast<std::uint32_t>(padded.size()));
  body.insert(body.end(), padded.begin(), padded.end());
  perf_event_header h{};
  h.type = PERF_RECORD_SAMPLE;
  h.size = static_cast<std::uint16_t>(sizeof h + body.size());
  std::vector<std::uint8_t> out;
  put(out, h);
  out.insert(out.end(), body.begin(), body.end());
  return out;
}

netns::TraceFormat format(const std::string& name) { return netns::parse_trace_format(slurp(kData + name + ".format")); }

// "key=value" in a line of samples.txt.
std::string value(const std::string& line, const std::string& key) {
  const auto at = line.find(" " + key + "=");
  REQUIRE(at != std::string::npos);
  const auto from = at + key.size() + 2;
  return line.substr(from, line.find(' ', from) - from);
}

struct Recorded {
  std::vector<netns::SockState> states;
  std::vector<netns::TimerExpiry> timers;
};

// Every raw sample of samples.txt, wrapped in a perf record, decoded, and checked
// against the line that says what it was.
Recorded decode_recorded() {
  const netns::KernelEventDecoder decoder(format("timer_expire_entry"), format("inet_sock_set_state"));
  std::istringstream lines(slurp(kData + "samples.txt"));
  std::string raw_line, said;
  Recorded out;
  while (std::getline(lines, raw_line)) {
    if (!raw_line.starts_with("raw ")) continue;
    REQUIRE(std::getline(lines, said));
    const auto raw = from_hex(raw_line.substr(raw_line.find(':') + 1));
    const auto time = std::stoull(value(said, "t"));
    const std::uint32_t pid = said.starts_with("sock") ? static_cast<std::uint32_t>(std::stoul(value(said, "pid"))) : 0;
    const std::uint32_t cpu = said.starts_with("timer") ? static_cast<std::uint32_t>(std::stoul(value(said, "cpu"))) : 1;
    const auto record = netns::decode_record(sample_record(pid, time, cpu, raw));
    const auto* sample = std::get_if<netns::TraceSample>(&record);
    REQUIRE(sample != nullptr);
    CHECK(sample->time_ns == time);
    CHECK(sample->pid == pid);
    CHECK(sample->cpu == cpu);
    const auto event = decoder.decode(*sample);
    REQUIRE(event);
    if (said.starts_with("timer")) {
      const auto& t = std::get<netns::TimerExpiry>(*event);
      CHECK(t.timer == std::stoull(value(said, "timer"), nullptr, 16));
      CHECK(t.function == std::stoull(value(said, "fn"), nullptr, 16));
      CHECK(t.now == std::stoull(value(said, "now")));
      CHECK(t.baseclk == std::stoull(value(said, "base")));
      out.timers.push_back(t);
    } else {
      const auto& s = std::get<netns::SockState>(*event);
      CHECK(s.skaddr == std::stoull(value(said, "sk"), nullptr, 16));
      std::istringstream words(said);
      std::string word, states;
      for (int i = 0; i < 5 && words >> word; ++i) states = word;  // "sock t=.. pid=.. sk=.. 7->2"
      CHECK(fmt::format("{}->{}", s.oldstate, s.newstate) == states);
      CHECK(s.family == std::stoul(value(said, "fam")));
      out.states.push_back(s);
    }
  }
  return out;
}

bool has(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

// A client socket of the recorded run (pid 634, server port 7000), connect() taking 0.2 ms.
evidence::TracedSocketKey client_key(Family family, std::string client, std::string server, std::uint16_t port,
                                     double connect_from_ms) {
  evidence::TracedSocketKey k;
  k.family = family;
  k.client_address = std::move(client);
  k.server_address = std::move(server);
  k.client_port = port;
  k.server_port = 7000;
  k.pid = 634;
  k.connect_from_ms = connect_from_ms;
  k.connect_to_ms = connect_from_ms + 0.2;
  return k;
}

}  // namespace

TEST_CASE("a tracepoint's format file gives each field's offset and size", "[kernel-trace]") {
  const auto t = format("timer_expire_entry");
  CHECK(t.name == "timer_expire_entry");
  CHECK(t.id == 465);
  CHECK(t.require("baseclk").offset == 32);
  CHECK(t.require("baseclk").size == 8);
  CHECK(t.require("timer").type == "void *");
  CHECK(t.require("common_pid").is_signed);
  const auto s = format("inet_sock_set_state");
  CHECK(s.require("saddr_v6").offset == 40);
  CHECK(s.require("saddr_v6").size == 16);
  CHECK(s.require("saddr").type == "__u8 [4]");
  CHECK(s.require("sport").size == 2);
  CHECK(s.field("no_such_field") == nullptr);
  CHECK_THROWS_WITH(s.require("no_such_field"), Catch::Contains("inet_sock_set_state has no field no_such_field"));
  CHECK_THROWS(netns::parse_trace_format("name: x\nformat:\n"));  // no ID
  CHECK_THROWS(netns::parse_trace_format("ID: 1\n\tfield:int x;\tsize:4;\n"));  // no offset
}

TEST_CASE("recorded perf samples decode to the events they were", "[kernel-trace]") {
  const auto recorded = decode_recorded();
  CHECK(recorded.timers.size() == 8);
  CHECK(recorded.states.size() == 16);
  const netns::TraceField beyond{"x", "u64", 40, 8, false};
  const std::vector<std::uint8_t> short_record(44);
  CHECK_THROWS_AS(netns::read_unsigned(short_record, beyond), std::out_of_range);
}

TEST_CASE("a lost record counts the samples the kernel dropped; a record whose sizes lie is refused", "[kernel-trace]") {
  std::vector<std::uint8_t> lost;
  perf_event_header h{};
  h.type = PERF_RECORD_LOST;
  h.size = sizeof h + 16;
  put(lost, h);
  put<std::uint64_t>(lost, 7);
  put<std::uint64_t>(lost, 42);
  const auto r = netns::decode_record(lost);
  REQUIRE(std::holds_alternative<netns::TraceLost>(r));
  CHECK(std::get<netns::TraceLost>(r).lost == 42);
  lost.pop_back();
  CHECK_THROWS(netns::decode_record(lost));
  auto sample = sample_record(1, 2, 0, std::vector<std::uint8_t>(44));
  sample[sizeof(perf_event_header) + 24] = 200;  // raw size beyond the record
  CHECK_THROWS(netns::decode_record(sample));
}

TEST_CASE("kallsyms gives a function's address, not a hidden or similar one", "[kernel-trace]") {
  const std::string text =
      "ffffffff812445d3 t tcp_keepalive_timer.cold\n"
      "ffffffff8208c310 t tcp_keepalive_timer\n"
      "ffffffff8208d780 t tcp_write_timer\n"
      "ffffffffc0001000 t nf_thing\t[nf_conntrack]\n";
  CHECK(netns::kallsyms_address(text, "tcp_keepalive_timer") == 0xffffffff8208c310ULL);
  CHECK(netns::kallsyms_address(text, "nf_thing") == 0xffffffffc0001000ULL);
  CHECK_FALSE(netns::kallsyms_address(text, "tcp_probe_timer"));
  CHECK_FALSE(netns::kallsyms_address("0000000000000000 t tcp_write_timer\n", "tcp_write_timer"));
}

TEST_CASE("the client socket is matched by process, connect() bracket, addresses and ports", "[kernel-trace]") {
  const auto recorded = decode_recorded();
  // The recorded run's client sockets, as the runner would describe them.
  const auto v4 = client_key(Family::ipv4, "198.18.0.1", "198.18.0.2", 50058, 9606304.70);
  auto m = evidence::match_socket(recorded.states, v4);
  REQUIRE(m.socket);
  CHECK(m.socket->skaddr == 0xffff8882576c0940ULL);
  REQUIRE(m.socket->end_ms);
  CHECK(*m.socket->end_ms == Approx(9611392.416784));
  CHECK(m.socket->end_state == evidence::kTcpClose);

  const auto v6 = client_key(Family::ipv6, "fd6b:6168:7265::1", "fd6b:6168:7265::2", 60780, 9606305.2);
  m = evidence::match_socket(recorded.states, v6);
  REQUIRE(m.socket);
  CHECK(m.socket->skaddr == 0xffff88819696eb40ULL);

  SECTION("another process, another port or outside the bracket: not ours") {
    auto other = v4;
    other.pid = 635;
    CHECK_FALSE(evidence::match_socket(recorded.states, other).socket);
    other = v4;
    other.client_port = 50059;
    CHECK_FALSE(evidence::match_socket(recorded.states, other).socket);
    other = v4;
    other.connect_from_ms += 1;
    other.connect_to_ms += 1;
    CHECK_FALSE(evidence::match_socket(recorded.states, other).socket);
  }
  SECTION("the same 4-tuple in another namespace pair at the same moment: ambiguous") {
    auto states = recorded.states;
    for (const auto& s : recorded.states)
      if (s.skaddr == 0xffff8882576c0940ULL) {
        auto twin = s;
        twin.skaddr += 0x10000;
        twin.time_ns += 20000;
        states.push_back(twin);
      }
    m = evidence::match_socket(states, v4);
    CHECK_FALSE(m.socket);
    CHECK(m.ambiguous);
  }
}

TEST_CASE("the keepalive timer's offset in struct sock is learned from the data and checked", "[kernel-trace]") {
  const auto recorded = decode_recorded();
  const std::uint64_t keepalive = 0xffffffff8208c310ULL;
  evidence::SocketTrace v4{0xffff8882576c0940ULL, 9606304.75, 9611392.42, evidence::kTcpClose, 0};
  evidence::SocketTrace v6{0xffff88819696eb40ULL, 9606305.22, 9611392.44, evidence::kTcpClose, 0};
  auto timers = recorded.timers;
  // A neighbour's timer 2 KiB above the v4 socket: a candidate, outvoted.
  auto neighbour = timers.front();
  neighbour.timer = v4.skaddr + 2048 + 448;
  timers.push_back(neighbour);
  auto candidates = evidence::timer_offset_candidates(v4, timers, keepalive);
  const auto more = evidence::timer_offset_candidates(v6, timers, keepalive);
  candidates.insert(candidates.end(), more.begin(), more.end());
  CHECK(evidence::learn_timer_offset(candidates) == 448);
  CHECK(evidence::firings_of(v4, timers, keepalive, 448).size() == 4);
  CHECK(evidence::firings_of(v4, timers, keepalive + 1, 448).empty());  // another callback
  // A single vote, or a tie, teaches nothing.
  CHECK_FALSE(evidence::learn_timer_offset(std::vector<std::int64_t>{448}));
  CHECK_FALSE(evidence::learn_timer_offset(std::vector<std::int64_t>{448, 448, 512, 512}));
  // After the socket closed its address is someone else's.
  auto after = timers.front();
  after.timer = v4.skaddr + 448;
  after.time_ns = 9611392420000 + 5000000;
  timers.push_back(after);
  CHECK(evidence::firings_of(v4, timers, keepalive, 448).size() == 4);
}

namespace {

// A jiffy grid: jiffy 1000 starts at 10000 ms, 4 ms a tick.
std::optional<double> grid(std::uint64_t jiffy) { return 10000.0 + (static_cast<double>(jiffy) - 1000.0) * 4.0; }

evidence::KernelFiring firing_at(std::uint64_t baseclk, double late_ms) {
  return {*grid(baseclk) + late_ms, baseclk, baseclk + 1, 0, 0};
}

}  // namespace

TEST_CASE("a probe the softirq ran late is judged by its bucket, and the lateness reported", "[kernel-trace]") {
  // Origin at 8000 ms: jiffy 1000 starts at 2000 ms from it.
  evidence::ProbeCheck c;
  c.expected = model::Window{1996.0, 2009.0};  // the bucket may start by 2004.0 (5 ms wake-up slack)
  c.seen_ms = 2012.3;                          // the capture: late
  c.verdict = evidence::ProbeVerdict::late;
  std::vector<evidence::ProbeCheck> checks{c};
  const std::vector<evidence::KernelFiring> firings{firing_at(1000, 12.2)};
  CHECK(evidence::time_probes_by_kernel(checks, firings, 8000, grid, 5, 4) == 1);
  CHECK(checks[0].verdict == evidence::ProbeVerdict::ok);
  CHECK(checks[0].timed_by == "kernel-trace");
  CHECK(*checks[0].bucket_ms == Approx(2000.0));
  CHECK(*checks[0].softirq_late_ms == Approx(12.2));
}

TEST_CASE("a probe in a wrong bucket fails whatever its softirq did", "[kernel-trace]") {
  evidence::ProbeCheck c;
  c.expected = model::Window{1996.0, 2009.0};
  c.seen_ms = 2008.1;  // the capture alone would pass it
  std::vector<evidence::ProbeCheck> checks{c};
  // Jiffy 1002 starts at 2008 ms: after 2009 - 5, so another bucket than the model's.
  const std::vector<evidence::KernelFiring> firings{firing_at(1002, 0.05)};
  evidence::time_probes_by_kernel(checks, firings, 8000, grid, 5, 4);
  CHECK(checks[0].verdict == evidence::ProbeVerdict::late);
  CHECK(has(checks[0].message, "probe 1 late: expected a bucket within [1996.0, 2004.0] ms"));
  CHECK(has(checks[0].message, "jiffy 1002"));

  // The judge fails the connection on it, though its end was in time.
  ConnectionResult r;
  r.name = "c1-v4";
  r.expected.outcome = ExpectedOutcome::timeout;
  r.expected.window = {4000, 4020};
  r.observed = observed(ObservedOutcome::timeout, "ETIMEDOUT", 4002, 1);
  r.observed.timed_by = "capture";
  r.evidence.probes_checked = true;
  r.evidence.probe_checks = checks;
  judge_connection(r);
  CHECK(r.verdict == Verdict::fail);
  CHECK(has(r.message, "probes did not follow the model: probe 1 late"));

  SECTION("no firing before the stamp, or none within a tick of it: capture timing stays") {
    std::vector<evidence::ProbeCheck> again{c};
    const std::vector<evidence::KernelFiring> later{firing_at(1003, 0)};
    CHECK(evidence::time_probes_by_kernel(again, later, 8000, grid, 5, 4) == 0);
    CHECK(again[0].timed_by == "capture");
    const std::vector<evidence::KernelFiring> long_before{firing_at(900, 0)};
    CHECK(evidence::time_probes_by_kernel(again, long_before, 8000, grid, 5, 4) == 0);
    const evidence::JiffyBoundary unknown = [](std::uint64_t) { return std::optional<double>{}; };
    CHECK(evidence::time_probes_by_kernel(again, firings, 8000, unknown, 5, 4) == 0);
  }
}

TEST_CASE("an end inside a timer's callback is its bucket; elsewhere the state change", "[kernel-trace]") {
  evidence::SocketTrace s{0x1000, 9000, std::nullopt, 0, 1};
  const std::vector<evidence::KernelFiring> keepalive{firing_at(1500, 3.0), firing_at(1750, 6.5)};
  const std::vector<evidence::NamedFirings> timers{{"keepalive-timer", keepalive}};
  CHECK_FALSE(evidence::kernel_end(s, timers, 8000, grid));  // still open

  s.end_ms = *grid(1750) + 6.6;  // 0.1 ms into the callback
  s.end_state = evidence::kTcpClose;
  s.end_cpu = 0;
  auto end = evidence::kernel_end(s, timers, 8000, grid);
  REQUIRE(end);
  CHECK(end->event == "keepalive-timer");
  CHECK(end->at_ms == Approx(5000.0));
  CHECK(*end->softirq_late_ms == Approx(6.5));

  s.end_cpu = 1;  // another CPU: not that callback
  end = evidence::kernel_end(s, timers, 8000, grid);
  REQUIRE(end);
  CHECK(end->event == "state-change");
  CHECK(end->at_ms == Approx(5006.6));
  CHECK_FALSE(end->bucket());
}

TEST_CASE("an end timed by its bucket may not use the window's wake-up slack", "[kernel-trace]") {
  ConnectionResult r;
  r.name = "c1-v4";
  r.expected.outcome = ExpectedOutcome::timeout;
  r.expected.window = {5000, 5013};
  r.model_input.kernel.wakeup_slack_ms = 5;
  evidence::KernelEnd end;
  end.event = "keepalive-timer";
  end.baseclk = 2250;
  end.softirq_late_ms = 9.0;
  r.observed = observed(ObservedOutcome::timeout, "ETIMEDOUT", 5007.5, 3);
  r.observed.timed_by = "kernel-trace";
  r.observed.kernel_end = end;
  judge_connection(r);
  CHECK(r.verdict == Verdict::pass);

  r.observed.at_ms = 5008.5;  // inside the window, but a bucket after 5013 - 5
  judge_connection(r);
  CHECK(r.verdict == Verdict::fail);
  CHECK(has(r.message, "too late"));
  CHECK(has(r.message, "jiffy 2250"));

  // A state change (no bucket) is judged against the whole window, with no allowance.
  r.observed.kernel_end->baseclk.reset();
  judge_connection(r);
  CHECK(r.verdict == Verdict::pass);
  r.observed.at_ms = 5013.5;
  judge_connection(r);
  CHECK(r.verdict == Verdict::fail);
}
