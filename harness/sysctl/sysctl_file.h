// The sysctl.d syntax (systemd's sysctl.d(5)), parsed and nothing more: which keys a
// file sets to which values, where. Pure: text in, lines out; unit-tested.
//
//   # comment            ; comment too      (a whole line only)
//   net.ipv4.tcp_keepalive_time = 600       (spaces around '=' optional)
//   net/ipv4/tcp_keepalive_intvl = 30       (slashes: the /proc/sys path; taken as dots)
//   -net.ipv4.tcp_rto_max_ms = 10000        ('-': an error about this line is ignored)
//   net.ipv4.conf.*.rp_filter = 2           (a glob: every key it matches)
//
// As systemd-sysctl does, a key's separators are normalised: if its first separator is
// a slash, slashes become dots and dots become slashes (a dot inside a device name
// such as "eth0.100" survives as "eth0/100" in dotted form, which it keeps here).
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace kah::sysctl {

struct Where {
  std::string file;
  int line = 0;  // 1-based
  std::string str() const;  // "file:line"
};

struct Assignment {
  std::string key;    // dotted: "net.ipv4.tcp_keepalive_time"; may hold glob characters
  std::string value;  // trimmed: "600", "4096 131072 6291456"
  bool ignore_errors = false;  // the line started with '-'
  Where where;
};

// A refusal or a warning about one line, printed "file:line: error: ..." / "warning".
struct Problem {
  Where where;
  std::string message;
  bool error = true;  // false: a warning (a '-' line that would have been an error, ...)
  std::string str() const;
};

struct ParsedFile {
  std::vector<Assignment> assignments;  // in file order
  std::vector<Problem> problems;        // lines that are not assignments
};

ParsedFile parse_sysctl_text(std::string_view text, const std::string& file);

// "net/ipv4/tcp_keepalive_time" -> "net.ipv4.tcp_keepalive_time" (systemd's rule above).
std::string normalize_key(std::string_view key);

bool has_glob(std::string_view key);

}  // namespace kah::sysctl
