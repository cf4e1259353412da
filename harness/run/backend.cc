#include "harness/run/backend.h"

#include <fcntl.h>
#include <linux/capability.h>
#include <net/if.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <system_error>

#include <fmt/format.h>

#include "harness/run/environment.h"
#include "harness/run/programs.h"

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

// ::1 on this namespace's lo: /proc/net/if_inet6 lists its IPv6 addresses (no file:
// IPv6 is off).
bool loopback_has_ipv6() {
  std::ifstream in("/proc/net/if_inet6");
  std::string address, index, prefix, scope, flags, name;
  while (in >> address >> index >> prefix >> scope >> flags >> name)
    if (address == "00000000000000000000000000000001" && name == "lo") return true;
  return false;
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

// lo of this network namespace is up (SIOCGIFFLAGS answers for the namespace of the
// socket; /sys/class/net would show the one /sys was mounted in).
bool loopback_up() {
  const int fd = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  ifreq request{};
  std::strncpy(request.ifr_name, "lo", IFNAMSIZ - 1);
  const bool up = ::ioctl(fd, SIOCGIFFLAGS, &request) == 0 && (request.ifr_flags & IFF_UP) != 0;
  ::close(fd);
  return up;
}

std::optional<unsigned long> inode_of(const char* path) {
  struct stat st {};
  if (::stat(path, &st) != 0) return std::nullopt;
  return st.st_ino;
}

// Why this looks like the host's initial network namespace, or nullopt. Since Linux
// 6.x the initial namespaces have fixed inodes (include/linux/proc_ns.h); before,
// in the initial PID namespace, pid 1's network namespace is the host's.
std::optional<std::string> host_namespace() {
  constexpr unsigned long kInitialNet = 0xEFFFFFF9UL;  // PROC_NET_INIT_INO
  constexpr unsigned long kInitialPid = 0xEFFFFFFCUL;  // PROC_PID_INIT_INO
  const auto net = inode_of("/proc/self/ns/net");
  if (net == kInitialNet) return "a network namespace other than the host's initial one (this is it)";
  if (inode_of("/proc/self/ns/pid") != kInitialPid) return std::nullopt;  // a container's PID namespace
  const auto init_net = inode_of("/proc/1/ns/net");
  if (!init_net)
    return fmt::format("a network namespace known not to be the host's (in the host's PID namespace, and "
                       "/proc/1/ns/net cannot be read: {})", std::strerror(errno));
  if (init_net == net) return "a network namespace other than the host's (pid 1 shares this one)";
  return std::nullopt;
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

std::optional<std::string> local_refusal(bool in_place) {
  std::vector<std::string> missing;
  if (!has_capability(CAP_NET_ADMIN)) missing.push_back("CAP_NET_ADMIN (for its nft tables and TCP_REPAIR)");
  if (!has_capability(CAP_NET_RAW)) missing.push_back("CAP_NET_RAW (for the captures on lo)");
  if (!loopback_up()) missing.push_back("lo up in this network namespace (it brings up nothing itself)");
  if (!in_place)
    if (const auto host = host_namespace()) missing.push_back(*host + "; --in-place runs there anyway");
  if (missing.empty()) return std::nullopt;
  std::string text = "needs ";
  for (std::size_t i = 0; i < missing.size(); ++i) text += (i == 0 ? "" : ", and ") + missing[i];
  return text;
}

std::optional<std::string> refusal(Backend backend, bool in_place) {
  switch (backend) {
    case Backend::netns: return netns_refusal();
    case Backend::userns: return userns_refusal();
    case Backend::local: return local_refusal(in_place);
  }
  return "unknown backend";
}

BackendChoice choose_backend(std::optional<Backend> requested, bool in_place) {
  BackendChoice choice;
  for (Backend b : {Backend::netns, Backend::userns, Backend::local}) {
    if (requested && *requested != b) continue;
    const auto why = refusal(b, in_place);
    if (!why) {
      choice.backend = b;
      return choice;
    }
    choice.refused.emplace_back(b, *why);
  }
  return choice;
}

Offers offers_of(Backend backend) {
  Offers offers;
  if (backend != Backend::local) return offers;
  offers.lacks[Need::own_namespaces] = "offers none";
  offers.lacks[Need::sysctls] = "never changes a sysctl of the namespace it runs in";
  offers.lacks[Need::link_control] = "runs on lo, which it never unplugs";
  if (!loopback_has_ipv6()) offers.lacks[Need::ipv6] = "finds no ::1 on lo here";
  // A program is held by a warden here, not in a PID namespace (harness/run/programs.h):
  // the keeper neither enters a namespace nor makes one, which would take CAP_SYS_ADMIN.
  if (const auto why = warden_refusal()) offers.lacks[Need::program_holder] = "cannot hold one here: " + *why;
  offers.lacks[Need::host_addresses] = "puts every host on lo and tells cases apart by port";
  return offers;
}

std::optional<std::string> skip_reason(const Case& c, Backend backend, const Offers& offers) {
  for (const auto& need : case_needs(c))
    if (const auto it = offers.lacks.find(need.need); it != offers.lacks.end())
      return fmt::format("needs {} ({}); backend {} {}", to_string(need.need), need.because, to_string(backend),
                         it->second);
  return std::nullopt;
}

void use_backend(Backend backend) {
  if (backend == Backend::userns) enter_user_namespace();
}

}  // namespace kah
