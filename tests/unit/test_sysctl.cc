// sysctl.d files: the syntax, the curated key table's refusals (unknown, out of range,
// machine-wide, missing on a kernel), later files winning, and the tuning as the
// model's input and as a namespace's sysctls.
#include <catch2/catch.hpp>

#include <algorithm>
#include <string>

#include "harness/sysctl/known_keys.h"
#include "harness/sysctl/sysctl_file.h"
#include "harness/sysctl/tuning.h"

namespace {

using namespace kah::sysctl;
using Catch::Matchers::Contains;

Tuning tuning_of(const std::string& text, std::optional<kah::model::KernelVersion> kernel = kah::model::KernelVersion{6, 18}) {
  return read_tuning({{"t.conf", text}}, kernel);
}

std::string problems_text(const Tuning& t) {
  std::string out;
  for (const auto& p : t.problems) out += p.str() + "\n";
  return out;
}

}  // namespace

TEST_CASE("sysctl.d syntax: comments, '-', spaces, slashes", "[sysctl]") {
  const auto f = parse_sysctl_text("# comment\n; also a comment\n\n  net.ipv4.tcp_retries2=5\n"
                                   "-net.ipv4.tcp_rto_max_ms = 10000\nnet/ipv4/tcp_keepalive_intvl = 30  \n"
                                   "net.ipv4.tcp_rmem = 4096 131072 6291456\nnot an assignment\n",
                                   "f.conf");
  REQUIRE(f.assignments.size() == 4);
  CHECK(f.assignments[0].key == "net.ipv4.tcp_retries2");
  CHECK(f.assignments[0].value == "5");
  CHECK(f.assignments[0].where.str() == "f.conf:4");
  CHECK(f.assignments[1].ignore_errors);
  CHECK(f.assignments[1].key == "net.ipv4.tcp_rto_max_ms");
  CHECK(f.assignments[2].key == "net.ipv4.tcp_keepalive_intvl");
  CHECK(f.assignments[2].value == "30");
  CHECK(f.assignments[3].value == "4096 131072 6291456");
  REQUIRE(f.problems.size() == 1);
  CHECK(f.problems[0].str() == "f.conf:8: error: expected 'key = value', found 'not an assignment' (no '=')");
  // A dot inside a slashed key is part of a name (a VLAN device), as systemd-sysctl reads it.
  CHECK(normalize_key("net/ipv4/conf/eth0.100/rp_filter") == "net.ipv4.conf.eth0/100.rp_filter");
  CHECK(parse_sysctl_text("", "e.conf").assignments.empty());
}

TEST_CASE("sysctl: the file's values, the later file winning", "[sysctl]") {
  const auto t = read_tuning({{"a.conf", "net.ipv4.tcp_keepalive_time = 600\nnet.ipv4.tcp_retries2 = 8\n"},
                              {"b.conf", "net.ipv4.tcp_keepalive_time = 60\n"}},
                             kah::model::KernelVersion{6, 18});
  REQUIRE(t.ok());
  CHECK(t.number("net.ipv4.tcp_keepalive_time") == 60);
  CHECK(t.settings.at("net.ipv4.tcp_keepalive_time").where.str() == "b.conf:1");
  CHECK(t.number("net.ipv4.tcp_retries2") == 8);
}

TEST_CASE("sysctl: refusals name the file, the line and why", "[sysctl]") {
  SECTION("a typo gets a did-you-mean") {
    const auto t = tuning_of("net.ipv4.tcp_keepalive_time = 60\nnet.ipv4.tcp_keepalive_interval = 10\n");
    CHECK_FALSE(t.ok());
    CHECK_THAT(problems_text(t), Contains("t.conf:2: error: unknown key net.ipv4.tcp_keepalive_interval: did you mean "
                                          "net.ipv4.tcp_keepalive_intvl?"));
  }
  SECTION("a key nothing resembles is unknown, without a guess") {
    CHECK_THAT(problems_text(tuning_of("net.ipv6.something_else = 1\n")), Contains("unknown key net.ipv6.something_else ("));
  }
  SECTION("machine-wide keys are named and refused: they would change the whole machine") {
    const auto t = tuning_of("net.ipv4.tcp_mem = 786432 1048576 1572864\nvm.swappiness = 10\nnet.core.somaxconn = 1024\n");
    const auto text = problems_text(t);
    CHECK_THAT(text, Contains("t.conf:1: error: net.ipv4.tcp_mem is not per network namespace: writing it would change "
                              "the whole machine"));
    CHECK_THAT(text, Contains("t.conf:2: error: vm.swappiness is not per network namespace"));
    CHECK(t.problems.size() == 2);  // net.core.somaxconn is per namespace
    CHECK(t.number("net.core.somaxconn") == 1024);
  }
  SECTION("out of range, and not a number") {
    const auto text = problems_text(tuning_of("net.ipv4.tcp_keepalive_probes = 0\nnet.ipv4.tcp_rto_max_ms = 500\n"
                                              "net.ipv4.tcp_retries2 = lots\n"));
    CHECK_THAT(text, Contains("t.conf:1: error: net.ipv4.tcp_keepalive_probes = 0 is out of range: expected 1..127 "
                              "(kernel default 9)"));
    CHECK_THAT(text, Contains("t.conf:2: error: net.ipv4.tcp_rto_max_ms = 500 is out of range: expected 1000..120000"));
    CHECK_THAT(text, Contains("t.conf:3: error: net.ipv4.tcp_retries2 takes 1 integer, found 'lots'"));
  }
  SECTION("a key the kernel does not have yet") {
    const auto t = tuning_of("net.ipv4.tcp_rto_max_ms = 10000\n", kah::model::KernelVersion{6, 1});
    CHECK_THAT(problems_text(t), Contains("net.ipv4.tcp_rto_max_ms does not exist on kernel 6.1: it came with 6.15"));
  }
  SECTION("a '-' line's refusal is a warning, and the line is dropped") {
    const auto t = tuning_of("-net.ipv4.tcp_rto_max_ms = 10000\n-vm.swappiness = 1\n", kah::model::KernelVersion{6, 1});
    CHECK(t.ok());
    REQUIRE(t.problems.size() == 2);
    CHECK_THAT(t.problems[0].str(), Contains("t.conf:1: warning:") && Contains("ignored: the line starts with '-'"));
    CHECK(t.settings.empty());
  }
}

TEST_CASE("sysctl: globs set every key they match; devices become all and default", "[sysctl]") {
  const auto t = tuning_of("net.ipv4.tcp_keepalive_* = 5\nnet.ipv4.conf.*.rp_filter = 2\n");
  REQUIRE(t.ok());
  CHECK(t.number("net.ipv4.tcp_keepalive_time") == 5);
  CHECK(t.number("net.ipv4.tcp_keepalive_intvl") == 5);
  CHECK(t.number("net.ipv4.tcp_keepalive_probes") == 5);
  const auto ns = namespace_sysctls(t);
  CHECK(ns.at("net.ipv4.conf.all.rp_filter") == "2");
  CHECK(ns.at("net.ipv4.conf.default.rp_filter") == "2");
  CHECK(ns.count("net.ipv4.conf.*.rp_filter") == 0);
  // A device the test namespaces do not have is a warning, not written.
  const auto eth0 = tuning_of("net.ipv4.conf.eth0.rp_filter = 1\n");
  CHECK(eth0.ok());
  CHECK_THAT(problems_text(eth0), Contains("t.conf:1: warning: net.ipv4.conf.eth0.rp_filter: a test namespace has no device eth0"));
  CHECK(namespace_sysctls(eth0).empty());
  CHECK(tuning_of("net.ipv4.conf.lo.rp_filter = 1\n").number("net.ipv4.conf.lo.rp_filter") == 1);
}

TEST_CASE("sysctl: every key the model reads reaches its input", "[sysctl]") {
  const auto t = tuning_of("net.ipv4.tcp_keepalive_time = 30\nnet.ipv4.tcp_keepalive_intvl = 5\n"
                           "net.ipv4.tcp_keepalive_probes = 4\nnet.ipv4.tcp_retries2 = 7\nnet.ipv4.tcp_syn_retries = 3\n"
                           "net.ipv4.tcp_syn_linear_timeouts = 2\nnet.ipv4.tcp_rto_min_us = 50000\n"
                           "net.ipv4.tcp_rto_max_ms = 10000\nnet.ipv4.tcp_early_retrans = 0\nnet.ipv4.tcp_sack = 0\n");
  REQUIRE(t.ok());
  kah::model::Input in;
  apply_to(t, in);
  CHECK(in.keepalive.idle_s == 30);
  CHECK(in.keepalive.interval_s == 5);
  CHECK(in.keepalive.count == 4);
  CHECK(in.retransmission.retries2 == 7);
  CHECK(in.retransmission.syn_retries == 3);
  CHECK(in.retransmission.syn_linear_timeouts == 2);
  CHECK(in.retransmission.rto_min_ms == Approx(50));
  CHECK(in.retransmission.rto_max_ms == Approx(10000));
  CHECK(in.retransmission.early_retrans == 0);
  CHECK_FALSE(in.retransmission.sack);
  // Every key the table marks as read by the model is set above.
  for (const auto& key : known_keys())
    if (key.model) CHECK(t.settings.count(std::string(key.name)) == 1);
}
