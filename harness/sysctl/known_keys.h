// The sysctl keys kaharness knows: a short curated table, one row per key, saying
// whether the key is per network namespace (then `validate` may write it inside its
// test namespaces) or machine-wide (then it is refused: writing it would change the
// whole machine), its range, its kernel default, and the kernel version it exists
// from. Keys the timing model reads are marked `model`. Pure data.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "harness/model/kernel_version.h"

namespace kah::sysctl {

enum class Scope {
  network_namespace,  // each namespace has its own copy (a new one starts at the kernel default)
  machine,            // one value for the whole machine
};

struct KnownKey {
  std::string_view name;  // dotted; a "*" segment stands for any network device
  Scope scope = Scope::network_namespace;
  long long min = 0, max = 0;  // inclusive, for each integer of the value
  int values = 1;              // integers in the value ("4096 131072 6291456": 3)
  std::string_view kernel_default;
  std::optional<model::Behaviour> since;  // exists from this behaviour's version; unset: every kernel kaharness runs on
  bool model = false;                     // the timing model reads it
  std::string_view what;
};

const std::vector<KnownKey>& known_keys();

// The rows a key (dotted, globs allowed) names: a concrete key names at most one, a
// glob every row it matches segment by segment ("net.ipv4.tcp_keepalive_*": three).
std::vector<const KnownKey*> matching_keys(std::string_view key);

// A whole subtree of keys that no network namespace has ("vm.", "kernel.", "fs."),
// so any key under it is machine-wide, known to the table or not.
bool machine_wide_subtree(std::string_view key);

// The known key closest to a misspelt one, if close enough to be the one meant:
// "net.ipv4.tcp_keepalive_interval" -> "net.ipv4.tcp_keepalive_intvl".
std::optional<std::string> did_you_mean(std::string_view key);

}  // namespace kah::sysctl
