#include "harness/run/local_topology.h"

#include <unistd.h>

#include <atomic>
#include <regex>
#include <stdexcept>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "harness/case/needs.h"
#include "harness/run/nft_rules.h"
#include "netns/nft.h"

namespace kah {
namespace {

// One nftables session and one table for every case of the run. The table is owned by
// the session's socket (`flags owner`: the kernel deletes it when the process ends,
// SIGKILL included); each case declares its chains, maps and counters in it under a
// prefix of its own and deletes them when it ends. libnftables 1.0.6 rebuilds its
// cache after every change, and that costs about 3 ms of CPU per table in the
// namespace (it allocates and clears a 128 KiB hash per table and object type):
// measured on 6.18, a first command took 160 ms beside 46 tables against 1 ms
// beside one, and with a session and two tables per case a fault waited up to 2 s
// for the process's nft lock under load (postgres-client-blackhole's query was
// answered after the fault began). Made on first use, in the process's namespace
// (the one the local backend works in), and never freed before the process ends.
struct SharedRules {
  netns::NftSession session;
  std::string table;
};

SharedRules& shared_rules() {
  static SharedRules* shared =
      new SharedRules{netns::NftSession(fmt::format("{}'s namespace", ::getpid() == 1 ? "the container" : "this process")),
                      local_table_name("cases")};
  return *shared;
}

// Every chain, map and counter the table lists whose name starts with `prefix`, as
// the commands that delete them: chains (emptied first), then the maps their rules
// use, then the counters the rules and maps use (the kernel refuses, EBUSY, to delete
// what is still referenced).
std::string deletions(const std::string& listing, const std::string& table, const std::string& prefix) {
  std::string chains, maps, counters;
  static const std::regex declared(R"re(\b(chain|map|counter)\s+"?([A-Za-z0-9_]+)"?\s*\{)re");
  for (auto it = std::sregex_iterator(listing.begin(), listing.end(), declared); it != std::sregex_iterator(); ++it) {
    const std::string kind = (*it)[1], name = (*it)[2];
    if (name.rfind(prefix, 0) != 0) continue;
    if (kind == "chain")
      chains += fmt::format("flush chain {0} {1}\ndelete chain {0} {1}\n", table, name);
    else
      (kind == "map" ? maps : counters) += fmt::format("delete {} {} {}\n", kind, table, name);
  }
  return chains + maps + counters;
}

class LocalTopology final : public Topology {
 public:
  explicit LocalTopology(const Case& c)
      : here_(netns::Namespace::current(c.name + "/local")), rules_(shared_rules()), names_(next_names()) {
    for (const auto& need : case_needs(c))
      if (need.need == Need::own_namespaces || need.need == Need::sysctls || need.need == Need::link_control)
        throw std::logic_error(fmt::format("case {} needs {} ({}): the local backend skips it", c.name,
                                           to_string(need.need), need.because));
  }

  // The case's chains, maps and counters go with it (the table is the run's).
  ~LocalTopology() override {
    try {
      const std::string commands = deletions(rules_.session.list_table(rules_.table), rules_.table, names_);
      if (!commands.empty()) rules_.session.apply(commands);
    } catch (const std::exception& e) {
      spdlog::warn("{}: cannot delete the case's nft rules: {}", here_.label(), e.what());
    }
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
  void nft(Host, const std::string& ruleset) override { rules_.session.apply(ruleset); }

  // The case's own counters, by the names its rules gave them without the prefix.
  std::map<std::string, std::uint64_t> nft_counters(Host, const std::string& family_and_table) const override {
    std::map<std::string, std::uint64_t> mine;
    for (const auto& [name, packets] : rules_.session.counters(family_and_table))
      if (name.rfind(names_, 0) == 0) mine[name.substr(names_.size())] = packets;
    return mine;
  }

  RuleScope rule_scope(const std::vector<ServerPort>& server_ports) const override {
    RuleScope scope;
    scope.table = rules_.table;
    scope.names = names_;
    scope.to_server = server_port_match(server_ports, true);
    scope.from_server = server_port_match(server_ports, false);
    scope.owned = true;
    scope.loopback = true;
    return scope;
  }

  std::string probe_table() const override { return rules_.table; }
  bool owns_tables() const override { return true; }
  std::string rule_names() const override { return names_; }

 private:
  static std::string next_names() {
    static std::atomic<unsigned> next{0};
    return fmt::format("c{}_", next++);
  }

  netns::Namespace here_;
  SharedRules& rules_;  // the run's session and table
  std::string names_;   // this case's prefix in it
};

}  // namespace

std::string local_table_name(const std::string& what) {
  static std::atomic<unsigned> next{0};
  return fmt::format("inet kaharness_{}_{}_{}", ::getpid(), next++, what);
}

std::string server_port_match(const std::vector<ServerPort>& ports, bool towards) {
  if (ports.empty()) throw std::logic_error("a rule on a shared namespace without the case's ports would match all");
  std::string list;
  for (const auto& p : ports)
    list += fmt::format("{}{} . {}", list.empty() ? "" : ", ", nfproto_name(p.family), p.port);
  return fmt::format("meta nfproto . tcp {} {{ {} }}", towards ? "dport" : "sport", list);
}

std::unique_ptr<Topology> build_local_topology(const Case& c) { return std::make_unique<LocalTopology>(c); }

}  // namespace kah
