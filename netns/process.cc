#include "netns/process.h"

#include <sys/syscall.h>
#include <unistd.h>

#include <charconv>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <string>
#include <system_error>

#include <fmt/format.h>

namespace kah::netns {
namespace {

std::optional<long> number(std::string_view s) {
  long v = 0;
  const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || end != s.data() + s.size()) return std::nullopt;
  return v;
}

// The parent pid from /proc/PID/stat: the field after the command's closing ')'
// (a command may itself hold spaces and parentheses).
std::optional<pid_t> parent_of(const std::filesystem::path& stat) {
  std::ifstream in(stat);
  std::string line;
  if (!std::getline(in, line)) return std::nullopt;
  const auto close = line.rfind(')');
  if (close == std::string::npos || close + 4 > line.size()) return std::nullopt;
  // ") S 1234 ..." : state, then ppid
  const auto start = line.find(' ', close + 2);
  if (start == std::string::npos) return std::nullopt;
  const auto end = line.find(' ', start + 1);
  const auto ppid = number(std::string_view(line).substr(start + 1, end - start - 1));
  if (!ppid) return std::nullopt;
  return static_cast<pid_t>(*ppid);
}

}  // namespace

std::vector<pid_t> process_tree(pid_t root) {
  std::multimap<pid_t, pid_t> children;
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator("/proc", ec)) {
    const auto pid = number(entry.path().filename().string());
    if (!pid) continue;
    if (const auto parent = parent_of(entry.path() / "stat")) children.emplace(*parent, static_cast<pid_t>(*pid));
  }
  std::vector<pid_t> tree{root};
  for (std::size_t i = 0; i < tree.size(); ++i) {
    const auto [first, last] = children.equal_range(tree[i]);
    for (auto it = first; it != last; ++it) tree.push_back(it->second);
  }
  return tree;
}

std::vector<HeldSocket> sockets_held(const std::vector<pid_t>& pids) {
  constexpr std::string_view kPrefix = "socket:[";
  std::vector<HeldSocket> held;
  for (const pid_t pid : pids) {
    std::error_code ec;
    for (const auto& entry : std::filesystem::directory_iterator(fmt::format("/proc/{}/fd", pid), ec)) {
      std::error_code link_ec;
      const std::string target = std::filesystem::read_symlink(entry.path(), link_ec).string();
      if (link_ec || !target.starts_with(kPrefix) || !target.ends_with("]")) continue;
      const auto fd = number(entry.path().filename().string());
      const auto inode = number(std::string_view(target).substr(kPrefix.size(), target.size() - kPrefix.size() - 1));
      if (fd && inode) held.push_back({pid, static_cast<int>(*fd), static_cast<std::uint64_t>(*inode)});
    }
  }
  return held;
}

UniqueFd borrow_fd(const HeldSocket& socket) {
  const UniqueFd pidfd(static_cast<int>(::syscall(SYS_pidfd_open, socket.pid, 0)));
  if (!pidfd) throw_errno(fmt::format("cannot open a pidfd for process {}", socket.pid));
  UniqueFd fd(static_cast<int>(::syscall(SYS_pidfd_getfd, pidfd.get(), socket.fd, 0)));
  if (!fd) throw_errno(fmt::format("cannot borrow descriptor {} of process {} (pidfd_getfd)", socket.fd, socket.pid));
  return fd;
}

}  // namespace kah::netns
