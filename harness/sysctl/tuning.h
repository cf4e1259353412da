// A tuning: what one or more sysctl.d files set, checked against the known keys
// (known_keys.h) for the kernel in question, the later file winning as systemd-sysctl
// does. Refusals: unknown keys (with "did you mean"), values out of range, keys that do
// not exist on that kernel, and keys that are not per network namespace (named: they
// would change the whole machine). A '-' line's refusal is only a warning, and the
// line is dropped. Then: the values the timing model reads, and the sysctls to write
// inside a test namespace.
#pragma once

#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "harness/model/timing.h"
#include "harness/sysctl/sysctl_file.h"

namespace kah::sysctl {

struct Setting {
  std::string value;
  Where where;  // the line that won
};

struct Tuning {
  std::vector<std::string> files;
  std::map<std::string, Setting> settings;  // dotted key (a device glob kept as "*") -> the last value set
  std::vector<Problem> problems;            // errors and warnings, in file order
  bool ok() const;                          // no error
  // A single-integer key the files set, else nullopt.
  std::optional<long long> number(const std::string& key) const;
};

// Files given as (name, text), in order: a later one wins.
Tuning read_tuning(const std::vector<std::pair<std::string, std::string>>& files,
                   const std::optional<model::KernelVersion>& kernel);
// Reads the files; one that cannot be read is an error at "file:0".
Tuning load_tuning(const std::vector<std::filesystem::path>& files, const std::optional<model::KernelVersion>& kernel);

// The model's namespace settings from the tuning (every key it reads; the kernel
// defaults for what the files leave out): keepalive time/intvl/probes as the socket's
// effective keepalive, tcp_retries2, tcp_syn_retries, tcp_syn_linear_timeouts,
// tcp_rto_min_us, tcp_rto_max_ms, tcp_early_retrans, tcp_sack.
void apply_to(const Tuning& t, model::Input& in);

// What to write inside a test namespace: a device glob ("net.ipv4.conf.*.rp_filter")
// becomes the "all" and "default" keys (every device made later inherits "default").
std::map<std::string, std::string> namespace_sysctls(const Tuning& t);

}  // namespace kah::sysctl
