#include "harness/run/local_topology.h"

#include <unistd.h>

#include <atomic>
#include <stdexcept>

#include <fmt/format.h>

#include "harness/case/needs.h"
#include "harness/run/nft_rules.h"
#include "netns/nft.h"

namespace kah {
namespace {

class LocalTopology final : public Topology {
 public:
  explicit LocalTopology(const Case& c)
      : here_(netns::Namespace::current(c.name + "/local")),
        nft_(here_.label()),
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
  void nft(Host, const std::string& ruleset) override { nft_.apply(ruleset); }

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
  mutable netns::NftSession nft_;  // holds the tables: declared after nothing that outlives it
  std::string fault_table_;
  std::string probe_table_;
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
