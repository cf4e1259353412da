// What this machine allows: privileges, namespaces, veth, nftables, the kernel and
// its HZ. `kaharness check-env` prints it; `run` refuses to start (exit 3) when a
// requirement is missing, before anything (libnftables included) can fail midway.
#pragma once

#include <string>
#include <vector>

#include "harness/run/backend.h"

namespace kah {

struct EnvCheck {
  std::string name;     // "CAP_NET_ADMIN", "network namespaces", ...
  bool ok = false;
  bool required = true;
  std::string detail;   // what was found, or what is missing and how to get it
};

// The calling thread holds `cap` (CAP_NET_ADMIN, ...) in its effective set.
bool has_capability(int cap);

// Privileges only: cheap, no side effects.
std::vector<EnvCheck> check_privileges();
// Everything `backend` needs: privileges, then (only if they hold) a throw-away
// namespace pair with a veth link and an nft table (local: an owner table of its own
// in this namespace), then kernel and HZ.
std::vector<EnvCheck> check_environment(Backend backend = Backend::netns);

bool all_required_ok(const std::vector<EnvCheck>& checks);
std::string describe(const std::vector<EnvCheck>& checks);

}  // namespace kah
