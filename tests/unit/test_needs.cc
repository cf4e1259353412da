// What a case needs (harness/case/needs.h), what each backend offers and the skip it
// gives (harness/run/backend.h), and how a skip is reported: console, JSON, JUnit,
// the summary line and the exit code with and without --fail-on-skip.
#include <catch2/catch.hpp>

#include <string>

#include <nlohmann/json.hpp>

#include "harness/case/needs.h"
#include "harness/judge/interrupt.h"
#include "harness/report/junit.h"
#include "harness/report/report.h"
#include "harness/run/backend.h"
#include "harness/run/local_topology.h"

using namespace kah;

namespace {

Case load(const std::string& file) { return load_case(std::string(KAH_SOURCE_DIR) + "/cases/" + file); }

std::vector<Need> needs_of(const Case& c) {
  std::vector<Need> out;
  for (const auto& n : case_needs(c)) out.push_back(n.need);
  return out;
}

bool has(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

// The local backend's offers on a loopback with ::1 (what offers_of finds depends on
// the machine).
Offers local_with_ipv6() {
  Offers o = offers_of(Backend::local);
  o.lacks.erase(Need::ipv6);
  return o;
}

}  // namespace

TEST_CASE("needs come from the topology, the sysctls, the fault's row and the families", "[needs]") {
  CHECK(needs_of(load("peer-power-off.toml")) == std::vector<Need>{Need::ipv6});
  CHECK(needs_of(load("nat-idle-eviction.toml")) == std::vector<Need>{Need::own_namespaces, Need::sysctls, Need::ipv6});
  CHECK(needs_of(load("peer-unreachable.toml")) == std::vector<Need>{Need::link_control, Need::ipv6});
  CHECK(needs_of(load("peer-app-frozen.toml")) == std::vector<Need>{Need::ipv6, Need::peer_process});
  const auto sysctl = case_needs(load("data-in-flight.toml"));
  REQUIRE(sysctl.size() == 2);
  CHECK(sysctl[0].because == "[sysctl.client] net.ipv4.tcp_retries2");
  const auto v4only = parse_case("name = \"v4\"\n[[connection]]\nname = \"a\"\nfamily = \"ipv4\"\n[expect]\noutcome = \"alive\"\n",
                                 "v4.toml");
  CHECK(case_needs(v4only).empty());
}

TEST_CASE("netns and userns offer everything, local skips what needs namespaces, sysctls or a link", "[needs]") {
  for (const char* file : {"nat-idle-eviction.toml", "peer-unreachable.toml", "sysctl-only.toml", "peer-reboot.toml"}) {
    CHECK_FALSE(skip_reason(load(file), Backend::netns, offers_of(Backend::netns)));
    CHECK_FALSE(skip_reason(load(file), Backend::userns, offers_of(Backend::userns)));
  }
  const auto local = local_with_ipv6();
  CHECK(skip_reason(load("nat-idle-eviction.toml"), Backend::local, local) ==
        "needs its own network namespaces (routed topology); backend local offers none");
  CHECK(skip_reason(load("peer-unreachable.toml"), Backend::local, local) ==
        "needs a link it can unplug (fault link-down); backend local runs on lo, which it never unplugs");
  CHECK(has(skip_reason(load("sysctl-only.toml"), Backend::local, local).value_or(""),
            "needs to set sysctls ([sysctl.client] net.ipv4.tcp_keepalive_intvl, net.ipv4.tcp_keepalive_probes, "
            "net.ipv4.tcp_keepalive_time); backend local never changes a sysctl"));
  for (const char* file : {"peer-reboot.toml", "peer-power-off.toml", "peer-app-frozen.toml", "ack-lost.toml"})
    CHECK_FALSE(skip_reason(load(file), Backend::local, local));
  // Routed, with a router lo stands in for: a rule that answers or drops (router_needed()).
  for (const char* file : {"firewall-reject-rst.toml", "firewall-reject-icmp.toml", "lossy-path-count-1.toml",
                           "lossy-path-count-5.toml"})
    CHECK_FALSE(skip_reason(load(file), Backend::local, local));
  // ... but not its conntrack, and not the sysctls the case asks of the client.
  CHECK(skip_reason(load("conntrack-expire-loose.toml"), Backend::local, local) ==
        "needs its own network namespaces (routed topology); backend local offers none");
  CHECK(skip_reason(load("firewall-reject-icmp-sending.toml"), Backend::local, local) ==
        "needs to set sysctls ([sysctl.client] net.ipv4.tcp_retries2); backend local never changes a sysctl of the "
        "namespace it runs in");

  Offers no_v6 = local;
  no_v6.lacks[Need::ipv6] = "finds no ::1 on lo here";
  CHECK(skip_reason(load("peer-reboot.toml"), Backend::local, no_v6) ==
        "needs IPv6 (IPv6 connection 'client-v6'); backend local finds no ::1 on lo here");
}

TEST_CASE("local backend: lo stands in for a router only where the router holds nothing lo lacks", "[needs][local]") {
  const std::string head = "name = \"r\"\ntopology = \"routed\"\n";
  const std::string conn = "[[connection]]\nname = \"a\"\nfamily = \"ipv4\"\nkeepalive = { idle = 2, interval = 1, count = 3 }\n";
  const auto routed = [&](const std::string& router, const std::string& fault, const std::string& expect) {
    return parse_case(head + router + conn + fault + expect, "r.toml");
  };
  const std::string rst = "[[fault]]\nkind = \"reject-rst\"\n", reset = "[expect]\noutcome = \"reset\"\n";
  const std::string loss = "[[fault]]\nkind = \"loss\"\nprobability = 0.3\n";
  const std::string survive = "[expect]\noutcome = \"timeout\"\nsurvival = 0.5\n";
  CHECK_FALSE(router_needed(routed("", rst, reset)));
  CHECK_FALSE(router_needed(routed("[router]\nfirewall = true\n", rst, reset)));
  CHECK(router_needed(routed("[router]\nnat = true\n", rst, reset)) ==
        "routed topology: [router] nat, which lo cannot stand in for");
  CHECK(router_needed(routed("[router]\nfirewall = true\nconntrack_loose = false\n", rst, reset)) ==
        "routed topology: [router] conntrack settings, which lo cannot stand in for");
  CHECK_FALSE(router_needed(routed("", loss, survive)));
  CHECK(router_needed(routed("[router]\nfirewall = true\n", loss, survive)) ==
        "routed topology: [router] firewall, which lo cannot stand in for with fault loss");
  CHECK(router_needed(load("nat-idle-eviction.toml")) == "routed topology");
  CHECK_FALSE(router_needed(load("peer-power-off.toml")));  // a pair has no router
}

TEST_CASE("programs need a holder: a backend that cannot make one skips the case, local holds them", "[needs][local]") {
  const Case c = load("programs/socat-client-blackhole.toml");
  const auto needs = case_needs(c);
  REQUIRE_FALSE(needs.empty());
  CHECK(needs.back().need == Need::program_holder);
  CHECK(has(needs.back().because, "programs 'socat-server', 'socat-v4'"));
  Offers contained = local_with_ipv6();
  CHECK_FALSE(skip_reason(c, Backend::local, contained));  // a warden holds them (harness/run/programs.h)
  contained.lacks[Need::program_holder] = "cannot hold one here: no child subreaper here (Invalid argument)";
  CHECK(has(skip_reason(c, Backend::local, contained).value_or(""),
            "needs a holder for each program (a PID namespace, or a child subreaper) (programs 'socat-server', "
            "'socat-v4'"));
  CHECK_FALSE(skip_reason(c, Backend::netns, offers_of(Backend::netns)));
  CHECK_FALSE(skip_reason(load("peer-reboot.toml"), Backend::local, contained));
}

TEST_CASE("a program that uses IPv6 needs it: by its family or by {server6} and {client6}", "[needs][local]") {
  const auto ipv6_need = [](const Case& c) -> std::string {
    for (const auto& n : case_needs(c))
      if (n.need == Need::ipv6) return n.because;
    return "";
  };
  CHECK(ipv6_need(load("programs/socat-client-blackhole.toml")) == "IPv6 in program 'socat-v6'");
  CHECK(ipv6_need(load("programs/redis-vanished-client.toml")) ==
        "IPv6 in programs 'redis-server', 'redis-cli-v6'");
}

TEST_CASE("the local topology's rules match the case's own ports in a table of its own", "[needs][local]") {
  // Each port in its own family: a listener on ::1 may hold the number another case's
  // IPv4 client uses as its source port on 127.0.0.1 (probes-lost's IPv6 handshake
  // was dropped twice by another case's rule, and its fault landed 3 s late).
  CHECK(server_port_match({{Family::ipv4, 40001}, {Family::ipv6, 40002}}, true) ==
        "meta nfproto . tcp dport { ipv4 . 40001, ipv6 . 40002 }");
  CHECK(server_port_match({{Family::ipv6, 40001}}, false) == "meta nfproto . tcp sport { ipv6 . 40001 }");
  CHECK_THROWS(server_port_match({}, true));  // never a rule that matches everything
  const auto a = local_table_name("fault"), b = local_table_name("fault");
  CHECK(a != b);
  CHECK(a.rfind("inet kaharness_", 0) == 0);
}

TEST_CASE("a skipped case: SKIP with its reason, JSON reason, JUnit skipped, counted, exit 0 unless --fail-on-skip",
          "[needs][report]") {
  const Case routed = load("nat-idle-eviction.toml");
  const auto why = skip_reason(routed, Backend::local, local_with_ipv6());
  REQUIRE(why);
  RunResult run;
  run.backend = "local";
  run.cases.push_back(skipped_case(routed, *why));
  const auto& skipped = run.cases.front();
  CHECK(skipped.verdict == Verdict::skip);

  CHECK(has(console_case(skipped, false), "SKIP  nat-idle-eviction"));
  CHECK(has(console_case(skipped, false), *why));
  CHECK(has(console_summary(run), "0 passed, 0 failed, 0 errors, 1 skipped"));
  const auto json = result_json(run);
  CHECK(json["cases"][0]["verdict"] == "skip");
  CHECK(json["cases"][0]["reason"] == *why);
  CHECK(has(junit_xml(run), "<skipped message=\"needs its own network namespaces (routed topology); backend local "
                            "offers none\"/>"));
  CHECK(has(junit_xml(run), "skipped=\"1\""));
  CHECK(exit_code(run) == 0);
  CHECK(exit_code(run, {.skip = true}) == 1);
}
