#include "harness/run/backend.h"

#include <fcntl.h>
#include <sched.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <system_error>

#include <fmt/format.h>

#include "harness/run/environment.h"

namespace kah {
namespace {

// Runs `attempt` in a forked child, so whatever it changes (namespaces) dies with
// the child; returns the errno it failed with, or 0.
template <class F>
int in_child(F attempt) {
  const pid_t pid = ::fork();
  if (pid < 0) return errno;
  if (pid == 0) _exit(attempt());
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0)
    if (errno != EINTR) return errno;
  return WIFEXITED(status) ? WEXITSTATUS(status) : EINVAL;
}

int unshare_errno(int flags) { return ::unshare(flags) == 0 ? 0 : errno; }

std::string read_first_line(const char* path) {
  std::ifstream in(path);
  std::string line;
  std::getline(in, line);
  return line;
}

// The knobs that refuse unprivileged user namespaces, where the kernel has them.
std::string userns_hints() {
  std::vector<std::string> hints;
  if (const auto v = read_first_line("/proc/sys/kernel/unprivileged_userns_clone"); v == "0")
    hints.push_back("kernel.unprivileged_userns_clone = 0 (Debian's switch)");
  if (const auto v = read_first_line("/proc/sys/user/max_user_namespaces"); v == "0")
    hints.push_back("user.max_user_namespaces = 0");
  if (const auto v = read_first_line("/proc/sys/kernel/apparmor_restrict_unprivileged_userns"); v == "1")
    hints.push_back("AppArmor's kernel.apparmor_restrict_unprivileged_userns = 1 (Ubuntu 23.10+)");
  if (hints.empty()) return "a seccomp profile (Docker's default refuses unshare without CAP_SYS_ADMIN) or a "
                            "kernel built without CONFIG_USER_NS";
  std::string text;
  for (const auto& h : hints) text += (text.empty() ? "" : ", ") + h;
  return text;
}

void write_proc(const std::string& path, const std::string& text) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CLOEXEC);
  if (fd < 0) throw std::system_error(errno, std::generic_category(), "cannot open " + path);
  const auto n = ::write(fd, text.data(), text.size());
  const int error = errno;
  ::close(fd);
  if (n != static_cast<ssize_t>(text.size()))
    throw std::system_error(error, std::generic_category(), fmt::format("cannot write '{}' to {}", text, path));
}

// Enters a new user namespace mapped to the caller's uid and gid: the process then
// holds every capability over the namespaces it creates. Throws std::system_error.
void enter_user_namespace() {
  const uid_t uid = ::getuid();
  const gid_t gid = ::getgid();
  if (::unshare(CLONE_NEWUSER) != 0)
    throw std::system_error(errno, std::generic_category(), "cannot enter a new user namespace");
  // An unprivileged process may map only its own ids, and gid_map only once
  // setgroups is denied.
  write_proc("/proc/self/setgroups", "deny");
  write_proc("/proc/self/uid_map", fmt::format("0 {} 1", uid));
  write_proc("/proc/self/gid_map", fmt::format("0 {} 1", gid));
}

}  // namespace

std::string to_string(Backend b) {
  switch (b) {
    case Backend::netns: return "netns";
    case Backend::userns: return "userns";
    case Backend::local: return "local";
  }
  return "?";
}

std::optional<Backend> backend_from_string(std::string_view s) {
  for (Backend b : {Backend::netns, Backend::userns, Backend::local})
    if (s == to_string(b)) return b;
  return std::nullopt;
}

std::optional<std::string> netns_refusal() {
  const auto privileges = check_privileges();
  if (!all_required_ok(privileges)) {
    std::string missing;
    for (const auto& c : privileges)
      if (!c.ok) missing += (missing.empty() ? "" : " and ") + c.name;
    return fmt::format("needs {} (run as root, or grant it)", missing);
  }
  if (const int e = in_child([] { return unshare_errno(CLONE_NEWNET); }); e != 0)
    return fmt::format("unshare(CLONE_NEWNET) fails: {} (a seccomp profile?)", std::strerror(e));
  return std::nullopt;
}

std::optional<std::string> userns_refusal() {
  if (const int e = in_child([] { return unshare_errno(CLONE_NEWUSER | CLONE_NEWNET); }); e != 0)
    return fmt::format("unshare(CLONE_NEWUSER) fails: {}; refused by {}", std::strerror(e), userns_hints());
  // Creating one is not all: root must also be allowed to map uid 0 into it.
  const int map_error = in_child([] {
    try {
      enter_user_namespace();
    } catch (const std::system_error& e) {
      return e.code().value();
    }
    return 0;
  });
  if (map_error == 0) return std::nullopt;
  if (::getuid() == 0)
    return fmt::format("a new user namespace cannot map uid 0: {}; since Linux 5.12 that needs CAP_SETFCAP, which "
                       "this process lacks (a container's root with its capabilities dropped)",
                       std::strerror(map_error));
  return fmt::format("a new user namespace cannot map uid {}: {}", ::getuid(), std::strerror(map_error));
}

std::optional<std::string> local_refusal() {
  return std::string("not available yet: it needs CAP_NET_ADMIN only and runs in the namespace the process has");
}

BackendChoice choose_backend(std::optional<Backend> requested) {
  BackendChoice choice;
  for (Backend b : {Backend::netns, Backend::userns, Backend::local}) {
    if (requested && *requested != b) continue;
    const auto why = b == Backend::netns ? netns_refusal() : b == Backend::userns ? userns_refusal() : local_refusal();
    if (!why) {
      choice.backend = b;
      return choice;
    }
    choice.refused.emplace_back(b, *why);
  }
  return choice;
}

void use_backend(Backend backend) {
  if (backend == Backend::userns) enter_user_namespace();
}

}  // namespace kah
