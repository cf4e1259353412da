// Middleboxes on the real kernel: the routed topology and its router leave nothing
// in the root namespace, conntrack entries can be listed and deleted in the
// router's namespace only, and every middlebox and application case fails when its
// expectation is deliberately wrong, with a message that says where and why.
#include <catch2/catch.hpp>

#include <algorithm>
#include <filesystem>
#include <map>

#include "harness/case/case.h"
#include "harness/run/endpoints.h"
#include "harness/run/fault_actions.h"
#include "harness/judge/judge.h"
#include "harness/clock/jiffies.h"
#include "netns/nft.h"
#include "harness/run/nft_rules.h"
#include "harness/report/report.h"
#include "harness/run/runner.h"
#include "harness/run/topology.h"
#include "netns/conntrack.h"
#include "root_snapshot.h"
#include "passed.h"

using namespace kah;
using kah::test::RootSnapshot;

namespace {

RunOptions options() {
  RunOptions o;
  o.kernel.hz = detect_hz().hz;
  return o;
}

bool has(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

Case library_case(const std::string& name) {
  return load_case(std::filesystem::path(KAH_SOURCE_DIR) / "cases" / (name + ".toml"));
}

}  // namespace

TEST_CASE("a routed topology forwards, NATs and tracks in its own namespaces only", "[middlebox][integration]") {
  const auto before = RootSnapshot::take();
  {
    RouterSpec router;
    router.nat = true;
    router.firewall = true;
    router.conntrack_loose = false;
    router.established_timeout_s = 30;
    HostSysctls sysctls;
    auto topology = build_routed_topology("routed-test", sysctls, router);
    const auto& rt = topology->ns(Host::router);
    CHECK(rt.read_sysctl("net.ipv4.ip_forward") == "1");
    CHECK(rt.read_sysctl("net.netfilter.nf_conntrack_tcp_loose") == "0");
    CHECK(rt.read_sysctl("net.netfilter.nf_conntrack_tcp_timeout_established") == "30");
    CHECK(topology->ns(Host::client).read_sysctl("net.ipv4.ip_forward") == "0");

    for (Family family : {Family::ipv4, Family::ipv6}) {
      INFO(to_string(family));
      const auto server = topology->address(Host::server, family);
      auto listener = open_listener(topology->ns(Host::server), family, server, 7000);
      ConnectionSpec spec;
      spec.family = family;
      auto clients = open_client_sockets(topology->ns(Host::client), spec, 1);
      auto link = establish(clients[0].get(), listener.get(), family, server, 7000);

      // The router saw the flow and masqueraded it: the reply goes to its own address.
      const netns::FlowTuple flow{topology->address(Host::client, family), link.client_port, server, 7000};
      const auto entries = netns::list_conntrack(rt);
      const auto it = std::find_if(entries.begin(), entries.end(),
                                   [&](const netns::ConntrackEntry& e) { return e.original == flow; });
      REQUIRE(it != entries.end());
      CHECK(it->reply.destination == (family == Family::ipv4 ? "198.18.2.254" : "fd6b:6168:7265:2::fe"));
      CHECK(it->reply.destination_port == link.client_port);  // the port is kept while it is free
      CHECK(it->tcp_state == 3);                               // ESTABLISHED
      CHECK(it->timeout_s <= 30);
      // The client and server namespaces track nothing.
      CHECK(netns::list_conntrack(topology->ns(Host::client)).empty());

      CHECK(netns::delete_conntrack(rt, flow));
      CHECK_FALSE(netns::delete_conntrack(rt, flow));
    }

    // Every router fault applies in the router namespace.
    for (FaultKind kind : {FaultKind::reject_rst, FaultKind::reject_icmp, FaultKind::loss}) {
      FaultSpec fault;
      fault.kind = kind;
      fault.probability = 0.3;
      FaultTargets targets;
      apply_fault(fault, *topology, targets);
      netns::nft_apply(rt, std::string("delete table ") + kFaultTable);
    }
    CHECK(rt.read_sysctl("net.ipv4.icmp_ratelimit") == "0");
    CHECK_THROWS_AS(build_pair_topology("pair-test", sysctls)->ns(Host::router), std::logic_error);
  }
  CHECK(before.diff(RootSnapshot::take()) == "");
}

TEST_CASE("every middlebox and application case fails when its expectation is wrong", "[middlebox][cases][slow]") {
  struct Wrong {
    const char* name;
    void (*mutate)(Case&);
    const char* message;  // part of the failure message
  };
  const std::vector<Wrong> wrongs = {
      {"nat-idle-eviction", [](Case& c) { c.expect.outcome = ExpectedOutcome::alive; },
       "the case expects alive but the timing model predicts timeout for these settings; observed timeout (ETIMEDOUT)"},
      {"nat-keepalive-survives", [](Case& c) { c.expect.outcome = ExpectedOutcome::timeout; },
       "the case expects timeout but the timing model predicts alive for these settings; observed still open"},
      {"conntrack-expire-strict", [](Case& c) { c.expect.outcome = ExpectedOutcome::alive; },
       "the case expects alive but the timing model predicts timeout for these settings; observed timeout (ETIMEDOUT)"},
      {"conntrack-expire-loose", [](Case& c) { c.expect.outcome = ExpectedOutcome::timeout; },
       "the case expects timeout but the timing model predicts alive for these settings; observed still open"},
      {"firewall-reject-rst", [](Case& c) { c.expect.outcome = ExpectedOutcome::timeout; },
       "the case expects timeout but the timing model predicts reset for these settings; observed reset (ECONNRESET)"},
      // What one would expect of keepalive behind a rejecting router, and what it does not do.
      {"firewall-reject-icmp", [](Case& c) { c.expect.errno_name = "EHOSTUNREACH"; },
       "the case expects EHOSTUNREACH but the timing model predicts ETIMEDOUT for these settings; observed timeout "
       "(ETIMEDOUT)"},
      {"firewall-reject-icmp-sending", [](Case& c) { c.expect.errno_name = "ETIMEDOUT"; },
       "the case expects ETIMEDOUT but the timing model predicts EHOSTUNREACH for these settings; observed timeout "
       "(EHOSTUNREACH)"},
      {"lossy-path-count-5", [](Case& c) { c.expect.survival = 0.49; },
       "the case states survival 0.49 but the model computes 0.9655"},
      {"lossy-path-count-1", [](Case& c) { c.expect.survival = 0.9655; },
       "the case states survival 0.9655 but the model computes 0.4900"},
      {"app-idle-timeout", [](Case& c) { c.expect.outcome = ExpectedOutcome::alive; },
       "the case expects alive but the timing model predicts eof for these settings; observed eof (the peer closed)"},
      {"http-keepalive-timeout", [](Case& c) { c.expect.outcome = ExpectedOutcome::timeout; },
       "the case expects timeout but the timing model predicts eof for these settings; observed eof"},
  };
  std::vector<Case> cases;
  for (const auto& w : wrongs) {
    cases.push_back(library_case(w.name));
    w.mutate(cases.back());
  }
  const auto before = RootSnapshot::take();
  const auto run = run_cases(cases, options());
  CHECK(before.diff(RootSnapshot::take()) == "");
  REQUIRE(run.cases.size() == wrongs.size());
  for (std::size_t i = 0; i < wrongs.size(); ++i) {
    const auto& result = run.cases[i];
    INFO(console_case(result, true));
    CHECK(result.verdict == Verdict::fail);
    std::string messages;
    for (const auto& r : result.connections) messages += r.message + "\n";
    for (const auto& s : result.survival) messages += s.message + "\n";
    CHECK(has(messages, std::string("cases/") + wrongs[i].name + ".toml:"));
    CHECK(has(messages, wrongs[i].message));
  }
  CHECK(exit_code(run) == 1);

  // The statistical test on real copies: count 1's observations against count 5's model.
  const auto it = std::find_if(run.cases.begin(), run.cases.end(),
                               [](const CaseResult& c) { return c.name == "lossy-path-count-1"; });
  REQUIRE(it != run.cases.end());
  auto copies = it->connections;
  for (auto& r : copies) r.expected.survival = 0.9655;
  const auto survival = judge_copies(copies, std::nullopt);
  REQUIRE(survival.size() == 2);
  for (const auto& s : survival) {
    INFO(s.message);
    CHECK(s.verdict == Verdict::fail);
    CHECK(has(s.message, "outside [66, 80]"));
  }
}

TEST_CASE("reject-icmp: keepalive probes draw ICMP errors that the client ignores", "[middlebox][integration]") {
  // The errors reach the client and are counted as out of window, not stored: the
  // evidence for firewall-reject-icmp's ETIMEDOUT.
  auto c = library_case("firewall-reject-icmp");
  const auto run = run_cases({c}, options());
  REQUIRE(run.cases.size() == 1);
  const auto& result = run.cases[0];
  INFO(console_case(result, true));
  CHECK(kah::test::passed_or_held(result.verdict, result.name));
  REQUIRE(result.counters.count("fault.hit") == 1);
  // Two probes and the final RST per connection, IPv4 and IPv6.
  CHECK(result.counters.at("fault.hit") == 6);
  for (const auto& r : result.connections) CHECK(r.observed.errno_name == "ETIMEDOUT");
  // Every probe's error, and none of the RSTs' (a reset draws no answer): 2 x 2.
  REQUIRE(result.counters.count("client.OutOfWindowIcmps") == 1);
  CHECK(result.counters.at("client.OutOfWindowIcmps") == 4);
}
