#include "harness/sysctl/tuning.h"

#include <algorithm>
#include <charconv>
#include <fstream>
#include <sstream>

#include <fmt/format.h>

#include "harness/sysctl/known_keys.h"

namespace kah::sysctl {
namespace {

// The integers of a value, or nullopt when it is not `count` whitespace-separated integers.
std::optional<std::vector<long long>> integers(const std::string& value, int count) {
  std::istringstream in(value);
  std::vector<long long> out;
  std::string word;
  while (in >> word) {
    long long v = 0;
    const auto [end, ec] = std::from_chars(word.data(), word.data() + word.size(), v);
    if (ec != std::errc{} || end != word.data() + word.size()) return std::nullopt;
    out.push_back(v);
  }
  if (static_cast<int>(out.size()) != count) return std::nullopt;
  return out;
}

// Why the table refuses `a` for `row` on `kernel`; "" if it does not.
std::string refusal(const Assignment& a, const KnownKey& row, const std::optional<model::KernelVersion>& kernel) {
  if (row.scope == Scope::machine)
    return fmt::format("{} is not per network namespace: writing it would change the whole machine, not a test "
                       "namespace ({}); kaharness does not apply it",
                       row.name, row.what);
  if (row.since && !model::has(kernel, *row.since)) {
    const auto& b = model::behaviour_row(*row.since);
    return fmt::format("{} does not exist on kernel {}: it came with {} ({})", row.name, kernel->str(),
                       b.since.str(), b.commits);
  }
  const auto numbers = integers(a.value, row.values);
  if (!numbers)
    return fmt::format("{} takes {} integer{}, found '{}'", row.name, row.values, row.values == 1 ? "" : "s", a.value);
  for (long long v : *numbers)
    if (v < row.min || v > row.max)
      return fmt::format("{} = {} is out of range: expected {}..{} (kernel default {})", row.name, v, row.min, row.max,
                         row.kernel_default);
  return "";
}

std::string unknown_key(const std::string& key) {
  if (machine_wide_subtree(key))
    return fmt::format("{} is not per network namespace (nothing under {} is): writing it would change the whole "
                       "machine; kaharness does not apply it",
                       key, key.substr(0, key.find('.') + 1));
  std::string text = fmt::format("unknown key {}", key);
  if (const auto guess = did_you_mean(key)) text += fmt::format(": did you mean {}?", *guess);
  else text += " (kaharness knows the keys listed by `kaharness validate --help`)";
  return text;
}

// The device a per-device key names when a test namespace has no such device ("eth0"),
// else "".
std::string absent_device(const std::string& key, const std::vector<const KnownKey*>& rows) {
  if (rows.size() != 1 || has_glob(key)) return "";
  const std::string_view name = rows.front()->name;
  const auto star = name.find(".*.");
  if (star == std::string_view::npos) return "";
  const std::string device = key.substr(star + 1, key.size() - (name.size() - star - 2) - star - 1);
  return device == "all" || device == "default" || device == "lo" ? "" : device;
}

// Adds one assignment to the tuning, or a problem about it.
void take(Tuning& t, const Assignment& a, const std::optional<model::KernelVersion>& kernel) {
  const auto rows = matching_keys(a.key);
  std::vector<std::string> refusals;
  if (rows.empty()) refusals.push_back(unknown_key(a.key));
  for (const KnownKey* row : rows)
    if (auto why = refusal(a, *row, kernel); !why.empty()) refusals.push_back(std::move(why));
  for (auto& why : refusals)
    t.problems.push_back({a.where, a.ignore_errors ? why + " (ignored: the line starts with '-')" : why, !a.ignore_errors});
  if (!refusals.empty()) return;
  if (const auto device = absent_device(a.key, rows); !device.empty()) {
    t.problems.push_back({a.where,
                          fmt::format("{}: a test namespace has no device {} (only lo, and the ones it makes): not "
                                      "applied; a glob or 'all'/'default' reaches every device",
                                      a.key, device),
                          false});
    return;
  }
  for (const KnownKey* row : rows) {
    // A glob sets each key it matches, under the key's own name; a concrete device
    // (net.ipv4.conf.lo.rp_filter) keeps its name, a device glob stays "*".
    const bool per_device = std::string_view(row->name).find('*') != std::string_view::npos;
    const std::string key = per_device && !has_glob(a.key) ? a.key : std::string(row->name);
    t.settings[key] = Setting{a.value, a.where};
  }
}

}  // namespace

bool Tuning::ok() const {
  for (const auto& p : problems)
    if (p.error) return false;
  return true;
}

std::optional<long long> Tuning::number(const std::string& key) const {
  const auto it = settings.find(key);
  if (it == settings.end()) return std::nullopt;
  const auto n = integers(it->second.value, 1);
  if (!n) return std::nullopt;
  return n->front();
}

Tuning read_tuning(const std::vector<std::pair<std::string, std::string>>& files,
                   const std::optional<model::KernelVersion>& kernel) {
  Tuning t;
  for (const auto& [name, text] : files) {
    t.files.push_back(name);
    auto parsed = parse_sysctl_text(text, name);
    for (auto& p : parsed.problems) t.problems.push_back(std::move(p));
    for (const auto& a : parsed.assignments) take(t, a, kernel);
  }
  return t;
}

Tuning load_tuning(const std::vector<std::filesystem::path>& files, const std::optional<model::KernelVersion>& kernel) {
  std::vector<std::pair<std::string, std::string>> texts;
  std::vector<Problem> unreadable;
  for (const auto& file : files) {
    std::ifstream in(file);
    std::ostringstream text;
    text << in.rdbuf();
    if (!in) unreadable.push_back({{file.string(), 0}, "cannot read the file"});
    else texts.emplace_back(file.string(), text.str());
  }
  Tuning t = read_tuning(texts, kernel);
  t.problems.insert(t.problems.begin(), unreadable.begin(), unreadable.end());
  return t;
}

void apply_to(const Tuning& t, model::Input& in) {
  const auto get = [&](const char* key, auto fallback) {
    return static_cast<decltype(fallback)>(t.number(key).value_or(static_cast<long long>(fallback)));
  };
  auto& k = in.keepalive;
  k.idle_s = get("net.ipv4.tcp_keepalive_time", k.idle_s);
  k.interval_s = get("net.ipv4.tcp_keepalive_intvl", k.interval_s);
  k.count = get("net.ipv4.tcp_keepalive_probes", k.count);
  auto& r = in.retransmission;
  r.retries2 = get("net.ipv4.tcp_retries2", r.retries2);
  r.syn_retries = get("net.ipv4.tcp_syn_retries", r.syn_retries);
  r.syn_linear_timeouts = get("net.ipv4.tcp_syn_linear_timeouts", r.syn_linear_timeouts);
  if (const auto us = t.number("net.ipv4.tcp_rto_min_us")) r.rto_min_ms = static_cast<double>(*us) / 1000.0;
  if (const auto ms = t.number("net.ipv4.tcp_rto_max_ms")) r.rto_max_ms = static_cast<double>(*ms);
  r.first_rto_ms = std::max(r.first_rto_ms, r.rto_min_ms);
  r.early_retrans = get("net.ipv4.tcp_early_retrans", r.early_retrans);
  r.sack = get("net.ipv4.tcp_sack", 1LL) != 0;
}

std::map<std::string, std::string> namespace_sysctls(const Tuning& t) {
  std::map<std::string, std::string> out;
  for (const auto& [key, setting] : t.settings) {
    const auto star = key.find(".*.");
    if (star == std::string::npos) {
      out[key] = setting.value;
      continue;
    }
    for (const char* device : {"all", "default"})
      out[key.substr(0, star + 1) + device + key.substr(star + 2)] = setting.value;
  }
  return out;
}

}  // namespace kah::sysctl
