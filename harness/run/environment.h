// What this machine allows: privileges, namespaces, veth, nftables, the kernel and
// its HZ. `kaharness check-env` prints it; `run` refuses to start (exit 3) when a
// requirement is missing, before anything (libnftables included) can fail midway.
#pragma once

#include <string>
#include <vector>

namespace kah {

struct EnvCheck {
  std::string name;     // "CAP_NET_ADMIN", "network namespaces", ...
  bool ok = false;
  bool required = true;
  std::string detail;   // what was found, or what is missing and how to get it
};

// Privileges only: cheap, no side effects.
std::vector<EnvCheck> check_privileges();
// Everything: privileges, then (only if they hold) a throw-away namespace pair with
// a veth link and an nft table, then kernel and HZ.
std::vector<EnvCheck> check_environment();

bool all_required_ok(const std::vector<EnvCheck>& checks);
std::string describe(const std::vector<EnvCheck>& checks);

}  // namespace kah
