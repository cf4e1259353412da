#include "harness/run/local_topology.h"

#include <unistd.h>

#include <atomic>
#include <set>
#include <stdexcept>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "harness/case/needs.h"
#include "harness/run/nft_rules.h"
#include "netns/nft.h"

namespace kah {
namespace {

// One nftables session for every case of the run: the tables are owned by its socket
// (`flags owner`: the kernel deletes them when the process ends, SIGKILL included),
// and each case deletes its own when it ends. One session because libnftables
// fetches the namespace's whole ruleset into a new context's cache on its first
// command: with every case's tables in this one namespace, a session per case paid
// 60-200 ms of CPU for its first rules, all under the process's nft lock, and a
// fault waited up to 0.9 s behind them (postgres-client-blackhole's query was
// answered after the fault began). A warm session's command costs 1-5 ms. Made on
// first use, in the process's namespace (the one the local backend works in), and
// never freed before the process ends.
netns::NftSession& shared_session(const std::string& where) {
  static netns::NftSession* session = new netns::NftSession(where);
  return *session;
}

class LocalTopology final : public Topology {
 public:
  explicit LocalTopology(const Case& c)
      : here_(netns::Namespace::current(c.name + "/local")),
        nft_(shared_session(fmt::format("{}'s namespace", ::getpid() == 1 ? "the container" : "this process"))),
        fault_table_(local_table_name("fault")),
        probe_table_(local_table_name("probes")) {
    for (const auto& need : case_needs(c))
      if (need.need == Need::own_namespaces || need.need == Need::sysctls || need.need == Need::link_control)
        throw std::logic_error(fmt::format("case {} needs {} ({}): the local backend skips it", c.name,
                                           to_string(need.need), need.because));
    // No table yet: each is made by the first rules declared in it (they say `flags
    // owner`), at the fault or at the probe counters. libnftables runs one command at
    // a time in the process, and a dozen cases making their tables while one applies
    // its fault delayed that fault by seconds on a loaded machine (run 1 of
    // scripts/local-container.sh: up to 8 s, after the first probe).
  }

  const netns::Namespace& ns(Host host) const override {
    if (host == Host::router) throw std::logic_error("the local topology has no router");
    return here_;
  }

  std::string address(Host host, Family family) const override {
    if (host == Host::router) throw std::logic_error("the local topology has no router");
    return family == Family::ipv4 ? "127.0.0.1" : "::1";
  }

  std::string interface(Host host) const override {
    if (host == Host::router) throw std::logic_error("the local topology has no router");
    return "lo";
  }

  void set_link_up(Host, bool) override {
    throw std::logic_error("the local topology runs on lo, which it never unplugs");
  }

  // Nothing to pin: the namespace is not ours, and the tables go with the run.
  std::vector<std::string> keep(const std::string&) override { return {}; }

  // Every host's rules, the router's included, go in the case's own tables on lo: a
  // router kind reaches here only where lo stands in for the router (router_needed()),
  // and its rules were written for lo (RuleScope::loopback).
  void nft(Host, const std::string& ruleset) override {
    nft_.apply(ruleset);
    for (const auto* table : {&fault_table_, &probe_table_})
      if (ruleset.find("table " + *table + " ") != std::string::npos) made_.insert(*table);
  }

  // The case's tables go with it (the session outlives the case).
  ~LocalTopology() override {
    std::string commands;
    for (const auto& table : made_) commands += fmt::format("delete table {}\n", table);
    if (commands.empty()) return;
    try {
      nft_.apply(commands);
    } catch (const std::exception& e) {
      spdlog::warn("{}: cannot delete the case's nft tables: {}", here_.label(), e.what());
    }
  }

  std::map<std::string, std::uint64_t> nft_counters(Host, const std::string& family_and_table) const override {
    return nft_.counters(family_and_table);
  }

  RuleScope rule_scope(const std::vector<std::uint16_t>& server_ports) const override {
    RuleScope scope;
    scope.table = fault_table_;
    scope.to_server = server_port_match(server_ports, true);
    scope.from_server = server_port_match(server_ports, false);
    scope.owned = true;
    scope.loopback = true;
    return scope;
  }

  std::string probe_table() const override { return probe_table_; }
  bool owns_tables() const override { return true; }

 private:
  netns::Namespace here_;
  netns::NftSession& nft_;  // the run's (shared_session()): it holds the tables
  std::string fault_table_;
  std::string probe_table_;
  std::set<std::string> made_;  // the tables this case's rules created
};

}  // namespace

std::string local_table_name(const std::string& what) {
  static std::atomic<unsigned> next{0};
  return fmt::format("inet kaharness_{}_{}_{}", ::getpid(), next++, what);
}

std::string server_port_match(const std::vector<std::uint16_t>& ports, bool towards) {
  if (ports.empty()) throw std::logic_error("a rule on a shared namespace without the case's ports would match all");
  std::string list;
  for (auto p : ports) list += fmt::format("{}{}", list.empty() ? "" : ", ", p);
  return fmt::format("tcp {} {{ {} }}", towards ? "dport" : "sport", list);
}

std::unique_ptr<Topology> build_local_topology(const Case& c) { return std::make_unique<LocalTopology>(c); }

}  // namespace kah
