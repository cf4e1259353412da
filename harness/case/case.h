// Case: one scenario from a TOML case file, as plain values. load_case() parses and
// validates everything before anything is built: a bad file throws CaseError with
// file:line:column and what was expected (exit code 2 at the CLI).
#pragma once

#include <filesystem>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "harness/case/program.h"
#include "harness/fault/fault.h"

namespace kah {

struct SourcePos {
  std::string file;
  int line = 0;    // 1-based; 0 = unknown
  int column = 0;  // 1-based; 0 = unknown
  std::string str() const;  // "file:line:column" (parts that are unknown left out)
};

class CaseError : public std::runtime_error {
 public:
  CaseError(SourcePos where, const std::string& message);
  const SourcePos& where() const noexcept { return where_; }
  const std::string& message() const noexcept { return message_; }

 private:
  SourcePos where_;
  std::string message_;
};

enum class Family { ipv4, ipv6 };
// eof: the peer's application closed the connection (FIN) and the client read EOF.
// closed: a program under test closed its own connection (its FIN) before the kernel
// ended it: an application-level timeout (ssh's ServerAliveInterval) beat the
// kernel's keepalive or retransmissions. Only for programs' connections.
enum class ExpectedOutcome { timeout, reset, alive, eof, closed };

// How the hosts are wired.
enum class TopologyKind {
  pair,    // client and server on one veth link
  routed,  // client - router - server: the router can NAT, filter statefully and lose packets
};

// What the client does around the fault.
enum class Traffic {
  idle,        // one exchange, then silence (the default): the keepalive timer
  sending,     // writes once the fault hits, so data stays unacknowledged: the retransmission timer
  connecting,  // connects only after the fault: SYN retransmissions to a silent peer
};

struct KeepaliveSpec {
  bool enabled = true;              // SO_KEEPALIVE
  std::optional<int> idle_s;        // TCP_KEEPIDLE, 1..32767; unset -> namespace sysctl
  std::optional<int> interval_s;    // TCP_KEEPINTVL, 1..32767
  std::optional<int> count;         // TCP_KEEPCNT, 1..127
};

struct ConnectionSpec {
  std::string name;
  Family family = Family::ipv4;
  KeepaliveSpec keepalive;
  int user_timeout_ms = 0;  // TCP_USER_TIMEOUT, 0 = off
  int copies = 1;
  Traffic traffic = Traffic::idle;
  // Traffic::sending: write this long after the last received segment instead of
  // right after the fault (a request after an idle period).
  std::optional<double> send_after_s;
  SourcePos where;  // the [[connection]] table
};

// A [[fault]]: the fault (harness/fault/fault.h) and where the file states it.
struct FaultSpec : Fault {
  SourcePos where;
};

// The router of a "routed" topology ([router]). Unset values keep the kernel's.
struct RouterSpec {
  bool nat = false;       // masquerade the client side on the router's server-facing interface
  bool firewall = false;  // stateful: established/related accepted, invalid dropped, new only from the client
  std::optional<bool> conntrack_loose;       // net.netfilter.nf_conntrack_tcp_loose (kernel default 1)
  std::optional<int> established_timeout_s;  // net.netfilter.nf_conntrack_tcp_timeout_established
  SourcePos where;
};

// What the server's application does ([server]).
enum class AppProtocol {
  raw,   // one "ping"/"pong" exchange
  http,  // one HTTP/1.1 GET answered with a keep-alive response
};
struct ServerSpec {
  AppProtocol protocol = AppProtocol::raw;
  // The application closes a connection idle this long (FIN), counted from its last
  // read or write; unset = never.
  std::optional<double> idle_close_s;
  SourcePos where;
};

struct Expectation {
  ExpectedOutcome outcome = ExpectedOutcome::alive;
  std::optional<double> deadline_ms;  // user requirement on top of the model's window
  // The error the application reads (SO_ERROR), e.g. "EHOSTUNREACH"; unset = the
  // outcome's usual one (ETIMEDOUT, ECONNRESET).
  std::optional<std::string> errno_name;
  // FaultKind::loss: the share of copies still alive at the horizon, as the model
  // computes it; the others must end with `outcome` inside the window.
  std::optional<double> survival;
  SourcePos where;
};

// A real program under test ([[program]]); see program.h.
struct ProgramSpec {
  std::string name;      // a slug; defaults to the executable's file name
  Host host = Host::server;  // client or server
  Family family = Family::ipv4;  // what {server}, {client} and {family} stand for: "ipv4" or "ipv6"
  std::vector<std::string> command;  // argv as written, placeholders not yet expanded
  std::map<std::string, std::string> env;  // added to the harness's environment (placeholders expanded)
  std::optional<int> port;  // {port}; else the first server program's port; else 7000
  ReadyCondition ready;
  // A server program's own idle timeout (its application closes a connection idle this
  // long, with a FIN): the connections of client programs to its `port` are forecast
  // to read EOF then, as with [server] idle_close_s.
  std::optional<double> idle_close_s;
  int connections = 0;   // how many of its TCP connections to the other host are judged
  ProgramExpectation expect;
  // The executable, resolved when the case was loaded (empty when missing).
  std::filesystem::path executable;
  // Set when the executable cannot be found: the reason, with the Debian package to
  // install when one is known. The case is then skipped with this message.
  std::optional<std::string> missing;
  SourcePos where;              // the [[program]] table
  SourcePos command_where;      // its `command`
  SourcePos expect_where;       // its [program.expect] (line 0 when it has none)
};

struct Case {
  std::string name;
  std::string description;  // optional: empty when the file has none
  std::filesystem::path file;
  TopologyKind topology = TopologyKind::pair;
  RouterSpec router;  // meaningful for TopologyKind::routed only
  ServerSpec server;
  std::vector<ConnectionSpec> connections;  // "family = both" already expanded
  std::vector<ProgramSpec> programs;        // in the order they start
  // Per host ("client", "server", "router"): sysctl key -> value, written inside that namespace.
  std::map<std::string, std::map<std::string, std::string>> sysctls;
  std::vector<FaultSpec> faults;  // at least one ("none" if the file has none)
  Expectation expect;
  // How long to watch after the fault; unset -> derived from the model.
  std::optional<double> horizon_s;
  SourcePos where;  // the file itself (line 1)
};

// Parses and validates one case file.
Case load_case(const std::filesystem::path& file);
// Same, from text (file is used for messages only).
Case parse_case(const std::string& text, const std::filesystem::path& file);

// Expands PATHs into case files: a file is taken as given (whatever its extension),
// a folder is searched recursively for *.toml, sorted, except subfolders named
// kLongCasesFolder, which run only when named themselves (`run cases/long`). Throws
// CaseError for a path that does not exist.
inline constexpr const char* kLongCasesFolder = "long";
std::vector<std::filesystem::path> find_case_files(const std::vector<std::filesystem::path>& paths);

// The spellings used in case files ("drop-to-client", "ipv6", ...).
std::string to_string(Family f);
std::string to_string(ExpectedOutcome o);
// The outcome a case expects when the timing model predicts `o`.
ExpectedOutcome expected_outcome(model::Outcome o);
std::string to_string(Traffic t);
std::string to_string(TopologyKind t);
std::string to_string(AppProtocol p);

// Inverses of to_string: exact, case-sensitive spelling; nullopt for anything else.
// "both" is not a Family: load_case expands it into one ipv4 and one ipv6 connection.
std::optional<Family> family_from_string(std::string_view s);
std::optional<ExpectedOutcome> expected_outcome_from_string(std::string_view s);
std::optional<Traffic> traffic_from_string(std::string_view s);
std::optional<TopologyKind> topology_from_string(std::string_view s);
std::optional<AppProtocol> app_protocol_from_string(std::string_view s);

// The errno names [expect] errno accepts.
const std::vector<std::string>& known_errno_names();

}  // namespace kah
