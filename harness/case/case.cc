// Case loading: TOML text -> validated Case.
//
// Every check runs before anything is built, and all of them run rather than
// stopping at the first: the one reported is the one nearest the top of the file,
// so errors come in the order a reader meets them, as from a compiler, whatever
// order the checks run in (toml++ tables iterate in key order, not file order).
// Positions are those of the offending key (unknown keys) or value (wrong type,
// out of range); a missing key is reported at the table that should hold it, and
// a missing top-level key or table at 1:1.
#include "harness/case/case.h"

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <climits>
#include <cmath>
#include <cstdint>
#include <fstream>
#include <cstdlib>
#include <iterator>
#include <regex>
#include <set>
#include <sstream>
#include <system_error>
#include <tuple>
#include <utility>

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <toml++/toml.h>

namespace kah {

std::string SourcePos::str() const {
  std::string s = file;
  if (line > 0) {
    s += fmt::format("{}{}", s.empty() ? "" : ":", line);
    if (column > 0) s += fmt::format(":{}", column);
  }
  return s;
}

CaseError::CaseError(SourcePos where, const std::string& message)
    : std::runtime_error(fmt::format("{}: error: {}", where.str(), message)),
      where_(std::move(where)),
      message_(message) {}

// No `default`: the compiler then flags an enumerator added without a spelling.
std::string to_string(Family f) {
  switch (f) {
    case Family::ipv4: return "ipv4";
    case Family::ipv6: return "ipv6";
  }
  return fmt::format("Family({})", static_cast<int>(f));
}

std::string to_string(ExpectedOutcome o) {
  switch (o) {
    case ExpectedOutcome::timeout: return "timeout";
    case ExpectedOutcome::reset: return "reset";
    case ExpectedOutcome::alive: return "alive";
    case ExpectedOutcome::eof: return "eof";
    case ExpectedOutcome::closed: return "closed";
  }
  return fmt::format("ExpectedOutcome({})", static_cast<int>(o));
}

ExpectedOutcome expected_outcome(model::Outcome o) {
  switch (o) {
    case model::Outcome::timeout: return ExpectedOutcome::timeout;
    case model::Outcome::reset: return ExpectedOutcome::reset;
    case model::Outcome::alive: return ExpectedOutcome::alive;
    case model::Outcome::eof: return ExpectedOutcome::eof;
  }
  return ExpectedOutcome::alive;
}

std::string to_string(Traffic t) {
  switch (t) {
    case Traffic::idle: return "idle";
    case Traffic::sending: return "sending";
    case Traffic::connecting: return "connect";
  }
  return fmt::format("Traffic({})", static_cast<int>(t));
}

std::string to_string(TopologyKind t) {
  switch (t) {
    case TopologyKind::pair: return "pair";
    case TopologyKind::routed: return "routed";
  }
  return fmt::format("TopologyKind({})", static_cast<int>(t));
}

std::string to_string(AppProtocol p) {
  switch (p) {
    case AppProtocol::raw: return "raw";
    case AppProtocol::http: return "http";
  }
  return fmt::format("AppProtocol({})", static_cast<int>(p));
}

const std::vector<std::string>& known_errno_names() {
  // What a socket's SO_ERROR can hold when the kernel ends a connection.
  static const std::vector<std::string> names = {"ETIMEDOUT",   "ECONNRESET",   "EPIPE",  "EHOSTUNREACH",
                                                 "ENETUNREACH", "ECONNREFUSED", "EPROTO"};
  return names;
}

namespace {

// The parse helpers and the "expected one of" lists are derived from these and
// to_string, so a spelling lives in one place. Order = order shown to users.
constexpr Family kFamilies[] = {Family::ipv4, Family::ipv6};
constexpr ExpectedOutcome kOutcomes[] = {ExpectedOutcome::timeout, ExpectedOutcome::reset, ExpectedOutcome::alive,
                                         ExpectedOutcome::eof, ExpectedOutcome::closed};
constexpr Traffic kTraffics[] = {Traffic::idle, Traffic::sending, Traffic::connecting};
constexpr TopologyKind kTopologies[] = {TopologyKind::pair, TopologyKind::routed};
constexpr AppProtocol kAppProtocols[] = {AppProtocol::raw, AppProtocol::http};

template <typename Enum, std::size_t N>
std::optional<Enum> enum_from_string(const Enum (&all)[N], std::string_view s) {
  for (Enum e : all) {
    if (to_string(e) == s) return e;
  }
  return std::nullopt;
}

template <typename Enum, std::size_t N>
std::vector<std::string> spellings(const Enum (&all)[N]) {
  std::vector<std::string> out;
  for (Enum e : all) out.push_back(to_string(e));
  return out;
}

std::vector<std::string> fault_spellings() {
  std::vector<std::string> out;
  for (const auto& row : fault_kinds()) out.emplace_back(row.name);
  return out;
}

}  // namespace

std::optional<Family> family_from_string(std::string_view s) { return enum_from_string(kFamilies, s); }
std::optional<ExpectedOutcome> expected_outcome_from_string(std::string_view s) {
  return enum_from_string(kOutcomes, s);
}
std::optional<Traffic> traffic_from_string(std::string_view s) { return enum_from_string(kTraffics, s); }
std::optional<TopologyKind> topology_from_string(std::string_view s) { return enum_from_string(kTopologies, s); }
std::optional<AppProtocol> app_protocol_from_string(std::string_view s) {
  return enum_from_string(kAppProtocols, s);
}

namespace {

// ---- Suggestions ("did you mean") -------------------------------------------

char lower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; }

// Optimal string alignment distance, case-insensitive: a swapped pair of letters
// ("idel") counts as one edit, the commonest typo.
std::size_t edit_distance(std::string_view a, std::string_view b) {
  std::vector<std::vector<std::size_t>> d(a.size() + 1, std::vector<std::size_t>(b.size() + 1));
  for (std::size_t i = 0; i <= a.size(); ++i) d[i][0] = i;
  for (std::size_t j = 0; j <= b.size(); ++j) d[0][j] = j;
  for (std::size_t i = 1; i <= a.size(); ++i) {
    for (std::size_t j = 1; j <= b.size(); ++j) {
      const std::size_t cost = lower(a[i - 1]) == lower(b[j - 1]) ? 0 : 1;
      d[i][j] = std::min({d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost});
      if (i > 1 && j > 1 && lower(a[i - 1]) == lower(b[j - 2]) && lower(a[i - 2]) == lower(b[j - 1])) {
        d[i][j] = std::min(d[i][j], d[i - 2][j - 2] + 1);
      }
    }
  }
  return d[a.size()][b.size()];
}

bool contains_ci(std::string_view hay, std::string_view needle) {
  return std::search(hay.begin(), hay.end(), needle.begin(), needle.end(),
                     [](char x, char y) { return lower(x) == lower(y); }) != hay.end();
}

// A near miss by spelling, or one name inside the other ("keepalive_idle" for
// "keepalive", "tcp_keepalive_time" for "net.ipv4.tcp_keepalive_time"). Nothing
// when every candidate is far: a wrong guess misleads more than none.
std::optional<std::string> closest(std::string_view word, const std::vector<std::string>& candidates) {
  std::optional<std::string> best;
  std::size_t best_score = SIZE_MAX;
  for (const std::string& c : candidates) {
    std::size_t score = edit_distance(word, c);
    const std::size_t longest = std::max(word.size(), c.size());
    const bool near = score <= 2 || score * 3 <= longest;
    const std::string_view shorter = word.size() < c.size() ? word : std::string_view(c);
    const bool nested = shorter.size() >= 3 && (contains_ci(word, c) || contains_ci(c, word));
    if (!near && !nested) continue;
    if (!near) score = longest;  // a containment only wins when no spelling is close
    if (score < best_score) {
      best_score = score;
      best = c;
    }
  }
  return best;
}

std::string join(const std::vector<std::string>& items) {
  std::string out;
  for (const std::string& s : items) {
    if (!out.empty()) out += ", ";
    out += s;
  }
  return out;
}

// ---- Diagnostics ----------------------------------------------------------------

class Diagnostics {
 public:
  explicit Diagnostics(std::string file) : file_(std::move(file)) {}

  SourcePos at(const toml::source_region& r) const {
    return {file_, static_cast<int>(r.begin.line), static_cast<int>(r.begin.column)};
  }
  const std::string& file() const { return file_; }

  void error(SourcePos where, std::string message) {
    errors_.push_back({std::move(where), std::move(message)});
  }
  void error(const toml::source_region& r, std::string message) { error(at(r), std::move(message)); }

  // The earliest in the file; for one position, the first found.
  void throw_first() const {
    if (errors_.empty()) return;
    const auto first = std::min_element(errors_.begin(), errors_.end(), [](const Entry& a, const Entry& b) {
      return std::tie(a.where.line, a.where.column) < std::tie(b.where.line, b.where.column);
    });
    throw CaseError(first->where, first->message);
  }

 private:
  struct Entry {
    SourcePos where;
    std::string message;
  };
  std::string file_;
  std::vector<Entry> errors_;
};

// ---- Reading typed values ------------------------------------------------------

// A table being read, with how messages name it.
struct Scope {
  const toml::table& table;
  std::string in;  // "in [[connection]]", "at the top level"
  SourcePos pos;   // where a missing key is reported
};

enum class Need { optional, required };

// At most `max` bytes of `s`, cut before a UTF-8 continuation byte (10xxxxxx) so
// that no character is split in half.
std::string_view clip_utf8(std::string_view s, std::size_t max) {
  if (s.size() <= max) return s;
  std::size_t end = max;
  while (end > 0 && (static_cast<unsigned char>(s[end]) & 0xC0) == 0x80) --end;
  return s.substr(0, end);
}

// Values echoed in messages are clipped: a stray 3 MB string must not become a
// 3 MB error message.
constexpr std::size_t kExcerptMax = 40;

// `open` + the value (clipped: "...", and its size) + `close`.
std::string excerpt(std::string_view s, std::string_view open, std::string_view close) {
  if (s.size() <= kExcerptMax) return fmt::format("{}{}{}", open, s, close);
  return fmt::format("{}{}...{} ({} bytes)", open, clip_utf8(s, kExcerptMax), close, s.size());
}

std::string quoted_excerpt(std::string_view s) { return excerpt(s, "\"", "\""); }

// "a string (\"3\")": the kind first, as TOML users think in kinds, then the
// value, which makes a stray pair of quotes obvious.
std::string describe(const toml::node& n) {
  switch (n.type()) {
    case toml::node_type::none: return "nothing";
    case toml::node_type::table: return "a table";
    case toml::node_type::array: return n.as_array()->is_array_of_tables() ? "an array of tables" : "an array";
    case toml::node_type::string: return fmt::format("a string ({})", quoted_excerpt(n.as_string()->get()));
    case toml::node_type::integer: return fmt::format("an integer ({})", n.as_integer()->get());
    case toml::node_type::floating_point:
      return fmt::format("a floating-point number ({})", n.as_floating_point()->get());
    case toml::node_type::boolean: return fmt::format("a boolean ({})", n.as_boolean()->get());
    case toml::node_type::date: return "a date";
    case toml::node_type::time: return "a time";
    case toml::node_type::date_time: return "a date-time";
  }
  return "a value of unknown type";
}

std::optional<long long> parse_integer(std::string_view s) {
  long long v = 0;
  const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || end != s.data() + s.size() || s.empty()) return std::nullopt;
  return v;
}

void refuse_unknown_keys(const Scope& s, const std::vector<std::string>& known, Diagnostics& d) {
  for (auto&& [key, value] : s.table) {
    if (std::find(known.begin(), known.end(), key.str()) != known.end()) continue;
    std::string msg = fmt::format("unknown key {} {}", excerpt(key.str(), "'", "'"), s.in);
    if (auto guess = key.str().size() <= 4 * kExcerptMax ? closest(key.str(), known) : std::nullopt) {
      msg += fmt::format("; did you mean '{}'?", *guess);
    } else {
      msg += fmt::format("; known keys: {}", join(known));
    }
    d.error(key.source(), std::move(msg));
  }
}

const toml::node* get(const Scope& s, std::string_view key, Need need, Diagnostics& d) {
  const toml::node* n = s.table.get(key);
  if (n == nullptr && need == Need::required) {
    d.error(s.pos, fmt::format("missing required key '{}' {}", key, s.in));
  }
  return n;
}

void wrong_type(const toml::node& n, std::string_view expected, std::string_view key, Diagnostics& d) {
  d.error(n.source(), fmt::format("expected {} for '{}', found {}", expected, key, describe(n)));
}

std::optional<std::string> read_string(const Scope& s, std::string_view key, Need need, Diagnostics& d) {
  const toml::node* n = get(s, key, need, d);
  if (n == nullptr) return std::nullopt;
  if (const auto* v = n->as_string()) return v->get();
  wrong_type(*n, "a string", key, d);
  return std::nullopt;
}

struct IntRange {
  long long lo;
  long long hi;
  std::string_view limit;  // what imposes it ("TCP_KEEPIDLE"); empty if nothing to cite
};

std::string range_error(std::string_view key, const IntRange& r, long long found) {
  if (r.limit.empty()) return fmt::format("'{}' must be {}..{}, found {}", key, r.lo, r.hi, found);
  return fmt::format("'{}' must be {}..{} ({}), found {}", key, r.lo, r.hi, r.limit, found);
}

std::optional<int> read_int(const Scope& s, std::string_view key, Need need, IntRange range, Diagnostics& d) {
  const toml::node* n = get(s, key, need, d);
  if (n == nullptr) return std::nullopt;
  const auto* v = n->as_integer();
  if (v == nullptr) {
    std::string msg = fmt::format("expected an integer for '{}', found {}", key, describe(*n));
    if (n->is_string() && parse_integer(n->as_string()->get())) msg += "; write it without quotes";
    d.error(n->source(), std::move(msg));
    return std::nullopt;
  }
  const long long value = v->get();
  if (value < range.lo || value > range.hi) {
    d.error(n->source(), range_error(key, range, value));
    return std::nullopt;
  }
  return static_cast<int>(value);  // every range used here fits an int
}

// Integer or float: TOML users write `horizon_s = 5` as readily as `5.0`.
std::optional<double> read_number(const Scope& s, std::string_view key, Diagnostics& d) {
  const toml::node* n = get(s, key, Need::optional, d);
  if (n == nullptr) return std::nullopt;
  if (const auto* i = n->as_integer()) return static_cast<double>(i->get());
  if (const auto* f = n->as_floating_point()) return f->get();
  wrong_type(*n, "a number", key, d);
  return std::nullopt;
}

std::optional<bool> read_bool(const Scope& s, std::string_view key, Diagnostics& d) {
  const toml::node* n = get(s, key, Need::optional, d);
  if (n == nullptr) return std::nullopt;
  if (const auto* b = n->as_boolean()) return b->get();
  wrong_type(*n, "a boolean (true or false)", key, d);
  return std::nullopt;
}

// A number of seconds in (0, max]; `why` says what the bound protects against.
std::optional<double> read_seconds(const Scope& s, std::string_view key, double max, Diagnostics& d) {
  const auto v = read_number(s, key, d);
  if (!v) return std::nullopt;
  if (!(*v > 0 && *v <= max)) {
    d.error(s.table.get(key)->source(), fmt::format("'{}' must be > 0 and <= {} (seconds), found {}", key, max, *v));
    return std::nullopt;
  }
  return v;
}

// One of `choices`; `what` names the thing in the message ("fault kind").
std::optional<std::string> read_choice(const Scope& s, std::string_view key, Need need, std::string_view what,
                                       const std::vector<std::string>& choices, Diagnostics& d) {
  auto value = read_string(s, key, need, d);
  if (!value) return std::nullopt;
  if (std::find(choices.begin(), choices.end(), *value) != choices.end()) return value;
  std::string msg = fmt::format("unknown {} {}", what, excerpt(*value, "'", "'"));
  // A value far longer than every choice is no typo of one (and aligning it costs time).
  if (auto guess = value->size() <= 4 * kExcerptMax ? closest(*value, choices) : std::nullopt)
    msg += fmt::format("; did you mean '{}'?", *guess);
  else msg += fmt::format("; expected one of: {}", join(choices));
  d.error(s.table.get(key)->source(), std::move(msg));
  return std::nullopt;
}

// Names end up in reports, file names (pcap, JUnit) and connection labels, so
// they are kept to characters that need no quoting anywhere.
bool is_slug(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-';
  });
}

std::optional<std::string> read_slug(const Scope& s, std::string_view key, Diagnostics& d) {
  auto value = read_string(s, key, Need::required, d);
  if (!value) return std::nullopt;
  if (!is_slug(*value)) {
    d.error(s.table.get(key)->source(),
            fmt::format("'{}' must match [a-z0-9-]+ (lowercase letters, digits, '-'), found {}", key,
                        quoted_excerpt(*value)));
    return std::nullopt;
  }
  return value;
}

// A table, or an array of them ([[name]] or name = [{...}]), as the elements.
std::vector<const toml::table*> read_table_array(const toml::table& parent, std::string_view key, Diagnostics& d) {
  std::vector<const toml::table*> out;
  const toml::node* n = parent.get(key);
  if (n == nullptr) return out;
  const auto* array = n->as_array();
  if (array == nullptr) {
    d.error(n->source(), fmt::format("expected an array of tables ([[{}]]) for '{}', found {}", key, key,
                                     describe(*n)));
    return out;
  }
  for (const toml::node& element : *array) {
    if (const auto* t = element.as_table()) {
      out.push_back(t);
    } else {
      d.error(element.source(),
              fmt::format("expected a table in '{}' (one per [[{}]]), found {}", key, key, describe(element)));
    }
  }
  return out;
}

const toml::table* read_table(const Scope& s, std::string_view key, Need need, Diagnostics& d) {
  const toml::node* n = s.table.get(key);
  if (n == nullptr) {
    if (need == Need::required) d.error(s.pos, fmt::format("missing required table [{}]", key));
    return nullptr;
  }
  if (const auto* t = n->as_table()) return t;
  wrong_type(*n, "a table", key, d);
  return nullptr;
}

// ---- The case sections -----------------------------------------------------------

const std::vector<std::string> kTopKeys = {"name",   "description", "horizon_s", "topology", "router", "server",
                                           "connection", "program", "sysctl",  "fault",    "expect"};
const std::vector<std::string> kConnectionKeys = {"name",   "family",  "keepalive",   "user_timeout_ms",
                                                  "copies", "traffic", "send_after_s"};
const std::vector<std::string> kKeepaliveKeys = {"idle", "interval", "count"};
const std::vector<std::string> kFaultKeys = {"kind", "probability"};
const std::vector<std::string> kExpectKeys = {"outcome", "deadline_ms", "errno", "survival"};
const std::vector<std::string> kHosts = {"client", "server", "router"};
const std::vector<std::string> kRouterKeys = {"nat", "firewall", "conntrack_loose", "established_timeout_s"};
const std::vector<std::string> kServerKeys = {"protocol", "idle_close_s"};

// Socket option limits (include/net/tcp.h: MAX_TCP_KEEPIDLE, MAX_TCP_KEEPINTVL,
// MAX_TCP_KEEPCNT); other values make setsockopt fail with EINVAL mid-run.
constexpr IntRange kIdleRange{1, 32767, "TCP_KEEPIDLE"};
constexpr IntRange kIntervalRange{1, 32767, "TCP_KEEPINTVL"};
constexpr IntRange kCountRange{1, 127, "TCP_KEEPCNT"};
constexpr IntRange kUserTimeoutRange{0, INT_MAX, "TCP_USER_TIMEOUT"};
// Enough for load tests; bounded so that a stray digit cannot open a million sockets.
constexpr IntRange kCopiesRange{1, 10000, ""};
// A day: longer is a unit mistake (milliseconds written as seconds), not a test.
constexpr double kMaxHorizonS = 86400;
// nf_conntrack_tcp_timeout_established is seconds converted to jiffies (INT_MAX / HZ).
constexpr IntRange kEstablishedTimeoutRange{1, 2147483, "INT_MAX / HZ"};
// An hour: a case is a test, and a write that late means a unit mistake.
constexpr double kMaxSendAfterS = 3600;
constexpr double kMaxIdleCloseS = 3600;

// Only network sysctls are per network namespace; any other would change the
// whole machine, which the harness never does. The list is the sysctls that shape
// keepalive, retransmission and teardown; the ranges are what the kernel (or, for
// the keepalive ones, the matching socket option) accepts, so a typo fails here
// and not while the namespace is being set up.
struct KnownSysctl {
  std::string_view name;
  IntRange range;
};
constexpr KnownSysctl kKnownSysctls[] = {
    {"net.ipv4.tcp_keepalive_time", {1, 32767, "as TCP_KEEPIDLE"}},
    {"net.ipv4.tcp_keepalive_intvl", {1, 32767, "as TCP_KEEPINTVL"}},
    {"net.ipv4.tcp_keepalive_probes", {1, 127, "as TCP_KEEPCNT"}},
    {"net.ipv4.tcp_retries1", {0, 255, ""}},
    {"net.ipv4.tcp_retries2", {0, 255, ""}},
    {"net.ipv4.tcp_syn_retries", {1, 127, "MAX_TCP_SYNCNT"}},
    {"net.ipv4.tcp_synack_retries", {0, 255, ""}},
    {"net.ipv4.tcp_timestamps", {0, 2, ""}},
    {"net.ipv4.tcp_sack", {0, 1, ""}},
    // Seconds converted to jiffies: the kernel refuses more than INT_MAX / HZ (HZ <= 1000).
    {"net.ipv4.tcp_fin_timeout", {0, 2147483, "INT_MAX / HZ"}},
};

std::vector<std::string> known_sysctl_names() {
  std::vector<std::string> out;
  for (const KnownSysctl& k : kKnownSysctls) out.emplace_back(k.name);
  return out;
}

void read_keepalive(const Scope& conn, KeepaliveSpec& out, Diagnostics& d) {
  const toml::node* n = conn.table.get("keepalive");
  if (n == nullptr) return;  // SO_KEEPALIVE on, everything from the sysctls
  if (const auto* b = n->as_boolean()) {
    out.enabled = b->get();
    return;
  }
  const auto* t = n->as_table();
  if (t == nullptr) {
    wrong_type(*n, "a table ({ idle = ..., interval = ..., count = ... }) or a boolean", "keepalive", d);
    return;
  }
  const Scope ka{*t, "in keepalive", d.at(t->source())};
  refuse_unknown_keys(ka, kKeepaliveKeys, d);
  out.enabled = true;
  out.idle_s = read_int(ka, "idle", Need::optional, kIdleRange, d);
  out.interval_s = read_int(ka, "interval", Need::optional, kIntervalRange, d);
  out.count = read_int(ka, "count", Need::optional, kCountRange, d);
}

// A name already given to a connection, for the duplicate check.
struct TakenName {
  int line = 0;
  std::string both_of;  // set when made by family = "both" on this connection
};

std::string made_by(const std::string& both_of) {
  return both_of.empty() ? "" : fmt::format(" (made by family = \"both\" on '{}')", both_of);
}

void read_connections(const toml::table& root, Case& c, Diagnostics& d) {
  const auto tables = read_table_array(root, "connection", d);
  if (root.get("connection") == nullptr && root.get("program") == nullptr) {
    d.error(c.where, "missing [[connection]]: a case needs at least one connection (or a [[program]])");
  } else if (tables.empty() && root.get("connection") != nullptr && root.get("connection")->is_array() &&
             root.get("connection")->as_array()->empty()) {
    d.error(root.get("connection")->source(), "'connection' is empty: a case needs at least one connection");
  }

  std::map<std::string, TakenName> taken;
  for (const toml::table* t : tables) {
    const Scope s{*t, "in [[connection]]", d.at(t->source())};
    refuse_unknown_keys(s, kConnectionKeys, d);

    ConnectionSpec spec;
    spec.where = s.pos;
    const auto name = read_slug(s, "name", d);
    const auto family = read_choice(s, "family", Need::optional, "family", {"ipv4", "ipv6", "both"}, d);
    read_keepalive(s, spec.keepalive, d);
    if (auto v = read_int(s, "user_timeout_ms", Need::optional, kUserTimeoutRange, d)) spec.user_timeout_ms = *v;
    if (auto v = read_int(s, "copies", Need::optional, kCopiesRange, d)) spec.copies = *v;
    if (auto v = read_choice(s, "traffic", Need::optional, "traffic", spellings(kTraffics), d)) {
      spec.traffic = *traffic_from_string(*v);
    }
    if (c.server.idle_close_s && spec.traffic != Traffic::idle && t->get("traffic") != nullptr) {
      d.error(t->get("traffic")->source(),
              "[server] idle_close_s needs idle connections: the server application reads nothing after the "
              "opening exchange, and closing with unread data would send an RST, not a FIN");
    }
    spec.send_after_s = read_seconds(s, "send_after_s", kMaxSendAfterS, d);
    if (spec.send_after_s && spec.traffic != Traffic::sending) {
      d.error(t->get("send_after_s")->source(),
              "'send_after_s' is when the client writes: it needs traffic = \"sending\" on this connection");
    }
    if (!name) continue;

    const bool both = family && *family == "both";
    std::vector<std::pair<std::string, Family>> expanded;
    if (both) {
      expanded = {{*name + "-v4", Family::ipv4}, {*name + "-v6", Family::ipv6}};
    } else {
      expanded = {{*name, family ? *family_from_string(*family) : Family::ipv4}};
    }
    const toml::source_region& name_src = t->get("name")->source();
    for (auto& [full_name, fam] : expanded) {
      const std::string both_of = both ? *name : "";
      const auto [it, inserted] =
          taken.try_emplace(full_name, TakenName{static_cast<int>(name_src.begin.line), both_of});
      if (!inserted) {
        d.error(name_src, fmt::format("duplicate connection name '{}'{}; first defined at line {}{}", full_name,
                                      made_by(both_of), it->second.line, made_by(it->second.both_of)));
        continue;
      }
      ConnectionSpec one = spec;
      one.name = full_name;
      one.family = fam;
      c.connections.push_back(std::move(one));
    }
  }
}

// One sysctl setting as written: its full dotted name, where the name is and the value.
struct SysctlEntry {
  std::string name;
  toml::source_region key_src;
  const toml::node* value;
};

void read_sysctl_value(std::string_view host, const SysctlEntry& entry, std::map<std::string, std::string>& out,
                       std::map<std::string, int>& first_line, Diagnostics& d) {
  const std::string& name = entry.name;
  const toml::node& value = *entry.value;
  const std::vector<std::string> known = known_sysctl_names();
  if (!name.starts_with("net.")) {
    std::string msg = fmt::format(
        "sysctl '{}' is outside net.: only network sysctls are per namespace, any other would change the "
        "whole machine",
        name);
    if (auto guess = closest(name, known)) msg += fmt::format("; did you mean '{}'?", *guess);
    d.error(entry.key_src, std::move(msg));
    return;
  }
  const auto it = std::find_if(std::begin(kKnownSysctls), std::end(kKnownSysctls),
                               [&](const KnownSysctl& k) { return k.name == name; });
  if (it == std::end(kKnownSysctls)) {
    std::string msg = fmt::format("unknown sysctl '{}' in [sysctl.{}]", name, host);
    if (auto guess = closest(name, known)) msg += fmt::format("; did you mean '{}'?", *guess);
    msg += fmt::format("; known: {}", join(known));
    d.error(entry.key_src, std::move(msg));
    return;
  }

  // Strings are accepted for sysctls in general (some are words), but every
  // known one is a number, so the string must hold one.
  std::optional<long long> number;
  if (const auto* i = value.as_integer()) {
    number = i->get();
  } else if (const auto* s = value.as_string()) {
    number = parse_integer(s->get());
    if (!number) {
      wrong_type(value, "an integer", name, d);
      return;
    }
  } else {
    wrong_type(value, "an integer or a string", name, d);
    return;
  }
  if (*number < it->range.lo || *number > it->range.hi) {
    d.error(value.source(), range_error(name, it->range, *number));
    return;
  }

  const int line = static_cast<int>(entry.key_src.begin.line);
  if (const auto [prev, inserted] = first_line.try_emplace(name, line); !inserted) {
    d.error(entry.key_src, fmt::format("sysctl '{}' is set twice in [sysctl.{}]; first at line {}", name, host,
                                       prev->second));
    return;
  }
  out[name] = std::to_string(*number);
}

// `net.ipv4.tcp_keepalive_time = 10` without quotes is, in TOML, three nested
// tables; it is read as the dotted name the user meant, like the quoted form.
void flatten_sysctls(const std::string& prefix, const toml::table& t, std::vector<SysctlEntry>& out) {
  for (auto&& [key, value] : t) {
    const std::string name = prefix.empty() ? std::string(key.str()) : prefix + "." + std::string(key.str());
    if (const auto* inner = value.as_table()) {
      flatten_sysctls(name, *inner, out);
    } else {
      out.push_back({name, key.source(), &value});
    }
  }
}

void read_sysctls(const Scope& top, Case& c, Diagnostics& d) {
  const toml::table* t = read_table(top, "sysctl", Need::optional, d);
  if (t == nullptr) return;
  const Scope s{*t, "in [sysctl] (one table per host: [sysctl.client], [sysctl.server])", d.at(t->source())};
  refuse_unknown_keys(s, kHosts, d);
  for (const std::string& host : kHosts) {
    const toml::node* n = t->get(host);
    if (n == nullptr) continue;
    if (host == "router" && c.topology != TopologyKind::routed) {
      d.error(t->get(host)->source(), "[sysctl.router] needs topology = \"routed\": the pair topology has no router");
      continue;
    }
    const auto* values = n->as_table();
    if (values == nullptr) {
      wrong_type(*n, "a table", "sysctl." + host, d);
      continue;
    }
    std::vector<SysctlEntry> entries;
    flatten_sysctls("", *values, entries);
    // Tables iterate in key order; file order makes "first at line N" name the first one written.
    std::sort(entries.begin(), entries.end(), [](const SysctlEntry& a, const SysctlEntry& b) {
      return std::tie(a.key_src.begin.line, a.key_src.begin.column) <
             std::tie(b.key_src.begin.line, b.key_src.begin.column);
    });
    std::map<std::string, int> first_line;
    for (const SysctlEntry& entry : entries) read_sysctl_value(host, entry, c.sysctls[host], first_line, d);
  }
}

// A middlebox fault needs the router, and the router the state the fault acts on;
// an application close needs a path that carries the FIN. Reported at the kind.
void check_fault_fits(const toml::table& fault, FaultKind kind, const Case& c, Diagnostics& d) {
  const toml::source_region& at = fault.get("kind")->source();
  const FaultKindInfo& row = fault_info(kind);
  if (row.needs_router && c.topology != TopologyKind::routed) {
    d.error(at, fmt::format("fault \"{}\" acts on the router: it needs topology = \"routed\"", to_string(kind)));
    return;
  }
  if (row.needs_flow_state && !c.router.nat && !c.router.firewall) {
    d.error(at, fmt::format("fault \"{}\" needs connection state on the router: set nat = true or firewall = true "
                            "in [router] (without them the kernel tracks nothing)",
                            to_string(kind)));
  }
  if (row.path == PathModel::flow_times_out && !c.router.established_timeout_s) {
    d.error(at, fmt::format("fault \"{}\" lets the router's established timeout expire the flow: set "
                            "established_timeout_s in [router] (the kernel default is 5 days)",
                            to_string(kind)));
  }
  if (row.needs_router) {
    for (const ConnectionSpec& conn : c.connections) {
      if (conn.traffic != Traffic::connecting) continue;
      d.error(at, fmt::format("fault \"{}\" acts on established flows; connection '{}' has traffic = \"connect\" "
                              "(not modelled)",
                              to_string(kind), conn.name));
      break;
    }
  }
  if (c.server.idle_close_s && kind != FaultKind::none) {
    d.error(at, fmt::format("[server] idle_close_s needs a working path (no fault, found \"{}\"): the close must "
                            "reach the client; put the fault in its own case",
                            to_string(kind)));
  }
}

void read_faults(const toml::table& root, Case& c, Diagnostics& d) {
  const auto tables = read_table_array(root, "fault", d);
  for (const toml::table* t : tables) {
    const Scope s{*t, "in [[fault]]", d.at(t->source())};
    refuse_unknown_keys(s, kFaultKeys, d);
    FaultSpec f;
    f.where = s.pos;
    if (auto kind = read_choice(s, "kind", Need::required, "fault kind", fault_spellings(), d)) {
      f.kind = *fault_kind_from_string(*kind);
      check_fault_fits(*t, f.kind, c, d);
    }
    if (auto p = read_number(s, "probability", d)) {
      if (!(*p > 0 && *p < 1)) {
        d.error(t->get("probability")->source(), fmt::format("'probability' must be > 0 and < 1, found {}", *p));
      } else if (!fault_info(f.kind).takes_probability) {
        d.error(t->get("probability")->source(),
                fmt::format("'probability' applies to a random fault only, not to kind = \"{}\"", to_string(f.kind)));
      } else {
        f.probability = *p;
      }
    } else if (fault_info(f.kind).takes_probability && t->get("probability") == nullptr) {
      d.error(s.pos, fmt::format("missing required key 'probability' in [[fault]] of kind \"{}\" (the chance that "
                                 "a packet is dropped, e.g. 0.3)",
                                 to_string(f.kind)));
    }
    c.faults.push_back(std::move(f));
  }
  // The run loop and the model handle a single fault; a second one would be
  // silently ignored, which is worse than refusing it.
  if (tables.size() > 1) {
    d.error(d.at(tables[1]->source()),
            fmt::format("only one [[fault]] per case is supported for now, found {}; put each fault in its "
                        "own case file",
                        tables.size()));
  }
  if (c.faults.empty()) {
    // Not written in the file: the position names the file only.
    c.faults.push_back(FaultSpec{{FaultKind::none, std::nullopt}, SourcePos{d.file(), 0, 0}});
  }
}

void read_expect(const Scope& top, Case& c, Diagnostics& d) {
  const toml::table* t = read_table(top, "expect", Need::required, d);
  if (t == nullptr) return;
  const Scope s{*t, "in [expect]", d.at(t->source())};
  refuse_unknown_keys(s, kExpectKeys, d);
  c.expect.where = s.pos;
  const auto outcome = read_choice(s, "outcome", Need::required, "outcome", spellings(kOutcomes), d);
  if (outcome) c.expect.outcome = *expected_outcome_from_string(*outcome);
  if (outcome && c.expect.outcome == ExpectedOutcome::closed && (!c.connections.empty() || c.programs.empty()))
    d.error(t->get("outcome")->source(),
            "outcome \"closed\" (a program closed its own connection before the kernel ended it) is for the "
            "connections of [[program]]s only: this case has [[connection]]s or no [[program]]");
  if (auto v = read_number(s, "deadline_ms", d)) {
    if (!(*v > 0) || !std::isfinite(*v)) {
      d.error(t->get("deadline_ms")->source(), fmt::format("'deadline_ms' must be a number > 0, found {}", *v));
    } else {
      c.expect.deadline_ms = *v;
    }
  }
  if (auto e = read_choice(s, "errno", Need::optional, "errno", known_errno_names(), d)) {
    if (outcome && c.expect.outcome != ExpectedOutcome::timeout && c.expect.outcome != ExpectedOutcome::reset) {
      d.error(t->get("errno")->source(), fmt::format("'errno' goes with outcome \"timeout\" or \"reset\"; outcome "
                                                     "\"{}\" ends without an error",
                                                     to_string(c.expect.outcome)));
    } else {
      c.expect.errno_name = *e;
    }
  }
  const bool loss = !c.faults.empty() && fault_info(c.faults.front().kind).path == PathModel::random_loss;
  if (auto v = read_number(s, "survival", d)) {
    if (!(*v >= 0 && *v <= 1)) {
      d.error(t->get("survival")->source(), fmt::format("'survival' is a probability: 0..1, found {}", *v));
    } else if (!loss) {
      d.error(t->get("survival")->source(), "'survival' applies to a random fault (kind = \"loss\") only");
    } else {
      c.expect.survival = *v;
    }
  } else if (loss && t->get("survival") == nullptr) {
    d.error(s.pos, "missing required key 'survival' in [expect]: with kind = \"loss\" each copy lives or dies by "
                   "chance, so state the share that survives (the model computes it; `kaharness run -v` shows it)");
  }
}

void read_router(const Scope& top, Case& c, Diagnostics& d) {
  const toml::table* t = read_table(top, "router", Need::optional, d);
  if (t == nullptr) return;
  const Scope s{*t, "in [router]", d.at(t->source())};
  c.router.where = s.pos;
  if (c.topology != TopologyKind::routed) {
    d.error(s.pos, "[router] needs topology = \"routed\" at the top level: the pair topology has no router");
    return;
  }
  refuse_unknown_keys(s, kRouterKeys, d);
  if (auto v = read_bool(s, "nat", d)) c.router.nat = *v;
  if (auto v = read_bool(s, "firewall", d)) c.router.firewall = *v;
  c.router.conntrack_loose = read_bool(s, "conntrack_loose", d);
  c.router.established_timeout_s =
      read_int(s, "established_timeout_s", Need::optional, kEstablishedTimeoutRange, d);
}

void read_server(const Scope& top, Case& c, Diagnostics& d) {
  const toml::table* t = read_table(top, "server", Need::optional, d);
  if (t == nullptr) return;
  const Scope s{*t, "in [server]", d.at(t->source())};
  c.server.where = s.pos;
  refuse_unknown_keys(s, kServerKeys, d);
  if (auto v = read_choice(s, "protocol", Need::optional, "protocol", spellings(kAppProtocols), d))
    c.server.protocol = *app_protocol_from_string(*v);
  c.server.idle_close_s = read_seconds(s, "idle_close_s", kMaxIdleCloseS, d);
}

void read_header(const Scope& top, Case& c, Diagnostics& d) {
  if (auto v = read_slug(top, "name", d)) c.name = *v;
  // Optional: a case written in a hurry needs only a name. Given, it must say something.
  if (auto v = read_string(top, "description", Need::optional, d)) {
    if (v->find_first_not_of(" \t\r\n") == std::string::npos) {
      d.error(top.table.get("description")->source(),
              "'description' must not be empty: say what real situation the case models, or leave it out");
    } else {
      c.description = *v;
    }
  }
  if (auto v = read_choice(top, "topology", Need::optional, "topology", spellings(kTopologies), d))
    c.topology = *topology_from_string(*v);
  if (auto v = read_number(top, "horizon_s", d)) {
    if (!(*v > 0 && *v <= kMaxHorizonS)) {
      d.error(top.table.get("horizon_s")->source(),
              fmt::format("'horizon_s' must be > 0 and <= {} (one day), found {}", kMaxHorizonS, *v));
    } else {
      c.horizon_s = *v;
    }
  }
}

// ---- [[program]] -------------------------------------------------------------------

const std::vector<std::string> kProgramKeys = {"name", "host",        "family", "command", "env",
                                               "port", "connections", "ready",  "expect",  "idle_close_s"};
const std::vector<std::string> kReadyKeys = {"port", "line", "delay_ms", "timeout_s"};
const std::vector<std::string> kProgramExpectKeys = {"settings", "exit_code", "exits_within_s",
                                                     "output",   "output_within_s", "alive", "counted_from"};
const std::vector<std::string> kSettingsKeys = {"keepalive", "idle", "interval", "count", "user_timeout_ms"};
constexpr IntRange kPortRange{1, 65535, "a TCP port"};
constexpr IntRange kProgramConnectionsRange{0, 64, ""};
constexpr double kMaxReadyS = 600;

// The faults whose effect on a program's connection the model knows from the side the
// program runs on, and whose last segments (the RST of a timeout) the program host's
// capture still sees. A server-side program is judged against a client that vanishes:
// its own firewall drops what comes in (drop-to-server), so its probes and its RST
// still leave and are captured.
bool judgeable_program_fault(Host host, FaultKind kind) {
  switch (kind) {
    case FaultKind::none:
    case FaultKind::drop_to_server: return true;
    case FaultKind::blackhole:
    case FaultKind::drop_to_client: return host == Host::client;
    default: return false;
  }
}

// `command = [...]` (argv) or `command = "..."` (split into words, no shell).
void read_command(const Scope& s, ProgramSpec& p, Diagnostics& d) {
  const toml::node* n = get(s, "command", Need::required, d);
  if (n == nullptr) return;
  p.command_where = d.at(n->source());
  if (const auto* line = n->as_string()) {
    try {
      p.command = split_command(line->get());
    } catch (const std::invalid_argument& e) {
      d.error(n->source(), fmt::format("cannot split 'command' into words: {}", e.what()));
      return;
    }
  } else if (const auto* argv = n->as_array()) {
    for (const toml::node& word : *argv) {
      if (const auto* w = word.as_string()) p.command.push_back(w->get());
      else return wrong_type(word, "a string (one word of the command)", "command", d);
    }
  } else {
    return wrong_type(*n, "an array of strings (argv) or a string", "command", d);
  }
  if (p.command.empty() || p.command.front().empty())
    return d.error(n->source(), "'command' is empty: give at least the program to run");
  for (const auto& word : p.command) {
    try {
      for (const auto& name : placeholders_in(word))
        if (std::find(placeholder_names().begin(), placeholder_names().end(), name) == placeholder_names().end())
          d.error(n->source(), fmt::format("unknown placeholder '{{{}}}' in 'command'; known: {{{}}}", name,
                                           fmt::join(placeholder_names(), "}, {")));
    } catch (const std::invalid_argument& e) {
      d.error(n->source(), fmt::format("in 'command' word {}: {}", quoted_excerpt(word), e.what()));
    }
  }
}

void read_env(const Scope& s, ProgramSpec& p, Diagnostics& d) {
  const toml::table* t = read_table(s, "env", Need::optional, d);
  if (t == nullptr) return;
  for (auto&& [key, value] : *t) {
    if (const auto* v = value.as_string()) p.env[std::string(key.str())] = v->get();
    else wrong_type(value, "a string", key.str(), d);
  }
}

// A regex a program's output will be searched with, checked now.
void check_regex(const toml::table& t, std::string_view key, const std::optional<std::string>& pattern,
                 Diagnostics& d) {
  if (!pattern) return;
  try {
    (void)std::regex(*pattern);
  } catch (const std::regex_error& e) {
    d.error(t.get(key)->source(), fmt::format("'{}' is not a valid regular expression: {}", key, e.what()));
  }
}

void read_ready(const Scope& s, ProgramSpec& p, Diagnostics& d) {
  const toml::table* t = read_table(s, "ready", Need::optional, d);
  if (t == nullptr) return;
  const Scope r{*t, "in the program's 'ready'", d.at(t->source())};
  refuse_unknown_keys(r, kReadyKeys, d);
  p.ready.port = read_int(r, "port", Need::optional, kPortRange, d);
  p.ready.line = read_string(r, "line", Need::optional, d);
  check_regex(*t, "line", p.ready.line, d);
  if (auto v = read_number(r, "delay_ms", d)) {
    if (!(*v >= 0 && *v <= 1000 * kMaxReadyS))
      d.error(t->get("delay_ms")->source(), fmt::format("'delay_ms' must be 0..{}, found {}", 1000 * kMaxReadyS, *v));
    else p.ready.delay_ms = *v;
  }
  if (auto v = read_seconds(r, "timeout_s", kMaxReadyS, d)) p.ready.timeout_s = *v;
}

// `idle_close_s`: a server program's application timeout, for its peers' forecast.
void read_idle_close(const Scope& s, ProgramSpec& p, Diagnostics& d) {
  const toml::node* n = s.table.get("idle_close_s");
  if (n == nullptr) return;
  p.idle_close_s = read_seconds(s, "idle_close_s", kMaxHorizonS, d);
  if (p.host != Host::server)
    d.error(n->source(), "'idle_close_s' is a server program's idle timeout (its peers' connections read EOF); "
                         "this program runs on the client");
  else if (!p.port)
    d.error(n->source(), "'idle_close_s' applies to the client programs' connections to this program's port: give "
                         "'port'");
}

void read_expected_settings(const Scope& s, ExpectedSettings& out, Diagnostics& d) {
  const toml::table* t = read_table(s, "settings", Need::optional, d);
  if (t == nullptr) return;
  const Scope k{*t, "in the program's expected 'settings'", d.at(t->source())};
  refuse_unknown_keys(k, kSettingsKeys, d);
  out.keepalive = read_bool(k, "keepalive", d);
  out.idle_s = read_int(k, "idle", Need::optional, kIdleRange, d);
  out.interval_s = read_int(k, "interval", Need::optional, kIntervalRange, d);
  out.count = read_int(k, "count", Need::optional, kCountRange, d);
  out.user_timeout_ms = read_int(k, "user_timeout_ms", Need::optional, kUserTimeoutRange, d);
}

// `output_within_s = [from, to]`, or one number: [0, to].
void read_output_window(const Scope& s, ProgramExpectation& e, Diagnostics& d) {
  const toml::node* n = s.table.get("output_within_s");
  if (n == nullptr) return;
  if (s.table.get("output") == nullptr)
    d.error(n->source(), "'output_within_s' is when the 'output' line must appear: give 'output' too");
  const auto* a = n->as_array();
  if (a == nullptr) {
    if (auto v = read_number(s, "output_within_s", d)) e.output_from_s = 0.0, e.output_to_s = *v;
    return;
  }
  if (a->size() != 2 || !(*a)[0].is_number() || !(*a)[1].is_number())
    return d.error(n->source(), "'output_within_s' must be a number of seconds or [from, to] (two numbers)");
  e.output_from_s = (*a)[0].value<double>().value_or(0), e.output_to_s = (*a)[1].value<double>().value_or(0);
  if (!(*e.output_from_s >= 0 && *e.output_from_s <= *e.output_to_s))
    d.error(n->source(), fmt::format("'output_within_s' must be [from, to] with 0 <= from <= to, found [{}, {}]",
                                     *e.output_from_s, *e.output_to_s));
}

// `counted_from = "fault"` (default) or "last_received": the latter needs connections
// to count from.
void read_counted_from(const Scope& e, ProgramSpec& p, Diagnostics& d) {
  const auto v = read_choice(e, "counted_from", Need::optional, "'counted_from'", {"fault", "last_received"}, d);
  if (!v || *v == "fault") return;
  p.expect.counted_from = CountedFrom::last_received;
  if (p.connections == 0)
    d.error(e.table.get("counted_from")->source(),
            "'counted_from = \"last_received\"' counts from the last segment the program's connections received "
            "before the fault: give 'connections' (how many it opens) in its [[program]]");
  if (!p.expect.exits_within_s && !p.expect.output_to_s)
    d.error(e.table.get("counted_from")->source(),
            "'counted_from' says what 'exits_within_s' and 'output_within_s' count from: give one of them");
}

void read_program_expect(const Scope& s, ProgramSpec& p, Diagnostics& d) {
  const toml::table* t = read_table(s, "expect", Need::optional, d);
  if (t == nullptr) return;
  const Scope e{*t, "in [program.expect]", d.at(t->source())};
  p.expect_where = e.pos;
  refuse_unknown_keys(e, kProgramExpectKeys, d);
  read_expected_settings(e, p.expect.settings, d);
  if (!p.expect.settings.empty() && p.connections == 0)
    d.error(t->get("settings")->source(),
            "'settings' are read from the program's connections: give 'connections' (how many it opens) in its "
            "[[program]]");
  p.expect.exit_code = read_int(e, "exit_code", Need::optional, {0, 255, "an exit status"}, d);
  p.expect.exits_within_s = read_seconds(e, "exits_within_s", kMaxHorizonS, d);
  p.expect.output = read_string(e, "output", Need::optional, d);
  check_regex(*t, "output", p.expect.output, d);
  read_output_window(e, p.expect, d);
  p.expect.alive = read_bool(e, "alive", d);
  read_counted_from(e, p, d);
  if (p.expect.alive.value_or(false) && (p.expect.exit_code || p.expect.exits_within_s))
    d.error(t->get("alive")->source(), "'alive = true' contradicts 'exit_code'/'exits_within_s': it cannot both run "
                                       "at the horizon and exit");
}

// The executable the program will run, found now so that a missing one is said before
// anything is built: the case is skipped with the reason (and the package to install).
void resolve_executable(ProgramSpec& p, const std::filesystem::path& case_file) {
  if (p.command.empty()) return;
  const std::string& program = p.command.front();
  if (!placeholders_in(program).empty()) return;  // known only at run time ({workdir}/...)
  const char* path = std::getenv("PATH");
  if (auto found = find_executable(program, path ? path : "/usr/bin:/bin", case_file.parent_path())) {
    p.executable = *found;
  } else {
    p.missing = fmt::format("{}: {}", p.command_where.str(), missing_executable_message(program));
  }
}

void check_program_fault(const toml::table& t, const ProgramSpec& p, const Case& c, Diagnostics& d) {
  if (p.connections == 0 || c.faults.empty()) return;
  const FaultKind kind = c.faults.front().kind;
  if (judgeable_program_fault(p.host, kind)) return;
  d.error(t.get("connections")->source(),
          fmt::format("a program's connections on the {} can be judged under fault none, drop-to-server{}; not "
                      "\"{}\" (the model or the {}'s capture would not see what the kernel does)",
                      to_string(p.host), p.host == Host::client ? ", blackhole or drop-to-client" : "",
                      to_string(kind), to_string(p.host)));
}

void read_programs(const toml::table& root, Case& c, Diagnostics& d) {
  std::map<std::string, int> taken;
  for (const toml::table* t : read_table_array(root, "program", d)) {
    const Scope s{*t, "in [[program]]", d.at(t->source())};
    refuse_unknown_keys(s, kProgramKeys, d);
    ProgramSpec p;
    p.where = s.pos;
    if (auto host = read_choice(s, "host", Need::required, "host", {"client", "server"}, d))
      p.host = *host == "client" ? Host::client : Host::server;
    if (auto family = read_choice(s, "family", Need::optional, "family", spellings(kFamilies), d))
      p.family = *family_from_string(*family);
    read_command(s, p, d);
    read_env(s, p, d);
    p.port = read_int(s, "port", Need::optional, kPortRange, d);
    if (auto v = read_int(s, "connections", Need::optional, kProgramConnectionsRange, d)) p.connections = *v;
    read_ready(s, p, d);
    read_idle_close(s, p, d);
    read_program_expect(s, p, d);
    check_program_fault(*t, p, c, d);
    if (t->get("name") != nullptr) {
      if (auto name = read_slug(s, "name", d)) p.name = *name;
    } else if (!p.command.empty()) {
      p.name = std::filesystem::path(p.command.front()).filename().string();
    }
    if (!p.name.empty()) {
      const auto [it, inserted] = taken.try_emplace(p.name, s.pos.line);
      if (!inserted)
        d.error(s.pos, fmt::format("two programs named '{}' (the first at line {}): give each a 'name'", p.name,
                                   it->second));
    }
    resolve_executable(p, c.file);
    c.programs.push_back(std::move(p));
  }
}

// toml++ says "Error while parsing X: ..."; after our "error:" that reads twice.
std::string tidy_parse_message(std::string_view description) {
  constexpr std::string_view kPrefix = "Error while parsing ";
  if (description.starts_with(kPrefix)) {
    return fmt::format("invalid TOML: while parsing {}", description.substr(kPrefix.size()));
  }
  return fmt::format("invalid TOML: {}", description);
}

}  // namespace

Case parse_case(const std::string& text, const std::filesystem::path& file) {
  const std::string file_name = file.string();
  toml::table root;
  try {
    root = toml::parse(std::string_view(text), std::string_view(file_name));
  } catch (const toml::parse_error& e) {
    const toml::source_position p = e.source().begin;
    throw CaseError(SourcePos{file_name, static_cast<int>(p.line), static_cast<int>(p.column)},
                    tidy_parse_message(e.description()));
  }

  Diagnostics d(file_name);
  Case c;
  c.file = file;
  c.where = SourcePos{file_name, 1, 1};
  const Scope top{root, "at the top level", c.where};
  refuse_unknown_keys(top, kTopKeys, d);
  read_header(top, c, d);
  read_router(top, c, d);
  read_server(top, c, d);
  read_connections(root, c, d);
  read_sysctls(top, c, d);
  read_faults(root, c, d);
  read_programs(root, c, d);
  read_expect(top, c, d);
  d.throw_first();
  return c;
}

Case load_case(const std::filesystem::path& file) {
  std::error_code ec;
  if (std::filesystem::is_directory(file, ec)) {
    throw CaseError(SourcePos{file.string()}, "is a folder, expected a case file");
  }
  std::ifstream in(file, std::ios::binary);
  if (!in) {
    const int err = errno;
    throw CaseError(SourcePos{file.string()},
                    fmt::format("cannot open: {}", std::generic_category().message(err ? err : ENOENT)));
  }
  std::ostringstream text;
  text << in.rdbuf();
  if (in.bad()) {
    throw CaseError(SourcePos{file.string()}, "cannot read the file");
  }
  return parse_case(text.str(), file);
}

std::vector<std::filesystem::path> find_case_files(const std::vector<std::filesystem::path>& paths) {
  namespace fs = std::filesystem;
  std::vector<fs::path> out;
  std::set<fs::path> seen;  // a file named twice (cases/ and cases/x.toml) runs once
  const auto add = [&](const fs::path& p) {
    if (seen.insert(p.lexically_normal()).second) out.push_back(p);
  };
  for (const fs::path& path : paths) {
    std::error_code ec;
    const fs::file_status st = fs::status(path, ec);
    if (ec || !fs::exists(st)) {
      throw CaseError(SourcePos{path.string()},
                      ec && ec != std::errc::no_such_file_or_directory
                          ? fmt::format("cannot access: {}", ec.message())
                          : std::string("no such file or folder"));
    }
    if (!fs::is_directory(st)) {
      add(path);
      continue;
    }
    std::vector<fs::path> found;
    fs::recursive_directory_iterator it(path, ec);
    for (; !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
      std::error_code type_ec;  // a dangling symlink is skipped, not a reason to stop the walk
      // A subfolder named `long` (cases/long/: the real defaults, hours each) runs only when named.
      if (it->path().filename() == kLongCasesFolder && it->is_directory(type_ec)) {
        it.disable_recursion_pending();
        continue;
      }
      if (it->path().extension() == ".toml" && it->is_regular_file(type_ec)) found.push_back(it->path());
    }
    if (ec) throw CaseError(SourcePos{path.string()}, fmt::format("cannot list: {}", ec.message()));
    // Sorted, so that runs, shards and reports list cases in the same order everywhere.
    std::sort(found.begin(), found.end());
    for (const fs::path& p : found) add(p);
  }
  return out;
}

}  // namespace kah
