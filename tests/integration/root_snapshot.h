// RootSnapshot: what the harness promises never to change in the root network
// namespace, captured so a test can prove it: links and their flags, addresses,
// routes of every table, a few net.* sysctls the harness tunes inside its own
// namespaces, the nftables ruleset, and the entries of /run/netns.
//
// take() reads the namespace of the calling thread, so call it from a thread that
// has not entered another namespace (any test thread: Namespace::run never moves
// the caller). Uses libnl and libnftables directly, no `ip` or `nft` processes.
#pragma once

#include <string>
#include <vector>

namespace kah::test {

// Tests pin namespaces as "kahtest-<pid>-..." so that test processes running in
// parallel (ctest -j) neither remove nor see each other's pins.
std::string test_pin_prefix();

struct RootSnapshot {
  std::vector<std::string> links;      // "index name flags", sorted
  std::vector<std::string> addresses;  // "ifname family address/len", sorted
  std::vector<std::string> routes;     // one line per route and table, sorted
  std::vector<std::string> sysctls;    // "key = value"
  std::vector<std::string> pins;       // /run/netns entries, except other test processes' pins
  std::string nft_ruleset;             // `list ruleset`, stateless (no counter values)

  static RootSnapshot take();
  // "" when equal; otherwise one line per difference ("+ route: ..." appeared,
  // "- link: ..." disappeared), and both rulesets if those differ.
  std::string diff(const RootSnapshot& after) const;
};

}  // namespace kah::test
