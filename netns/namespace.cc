// Namespace: creation, entering (run), per-namespace sysctls and optional pins.
//
// Threading: every operation that must happen "inside" the namespace runs on a
// fresh std::thread that calls setns() (or unshare() for create) and then ends, or
// on the caller's thread when it is in the namespace already, so no caller's thread
// ever changes namespace, and concurrent calls from many threads
// share nothing but the (read-only) namespace fd. Sysctl files are opened on such
// a thread because /proc/sys/net resolves to the network namespace of the thread
// that walks the path, not of the process.
//
// Pins are the only thing that outlives the process: a bind mount of the namespace
// on /run/netns/NAME. They exist only when pin() is called (--keep).
#include "netns/namespace.h"

#include <fcntl.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <linux/magic.h>
#include <unistd.h>

#include <fmt/format.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <sstream>
#include <stdexcept>
#include <system_error>

#include "netns/link.h"
#include "netns/netlink.h"

namespace kah::netns {
namespace {

UniqueFd open_or_throw(const std::string& path, int flags, const std::string& what) {
  int fd;
  do {
    fd = ::open(path.c_str(), flags | O_CLOEXEC);
  } while (fd < 0 && errno == EINTR);
  if (fd < 0) {
    const int err = errno;
    throw_errno(err, what);
  }
  return UniqueFd(fd);
}

// /proc/thread-self, not /proc/self: the namespace of interest is the calling
// thread's, which differs from the main thread's on the helper threads.
constexpr const char* kThreadNetns = "/proc/thread-self/ns/net";

void write_all(int fd, std::string_view data, const std::string& what) {
  while (!data.empty()) {
    const ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      const int err = errno;
      throw_errno(err, what);
    }
    data.remove_prefix(static_cast<size_t>(n));
  }
}

std::string read_all(int fd, const std::string& what) {
  std::string out;
  char buf[4096];
  for (;;) {
    const ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0) {
      if (errno == EINTR) continue;
      const int err = errno;
      throw_errno(err, what);
    }
    if (n == 0) return out;
    out.append(buf, static_cast<size_t>(n));
  }
}

void check_pin_name(std::string_view name) {
  if (name.empty() || name == "." || name == ".." || name.find('/') != std::string_view::npos ||
      name.find('\0') != std::string_view::npos) {
    throw std::invalid_argument(fmt::format("invalid pin name '{}'", name));
  }
}

// Removes one pin. A stale entry (the process died between creating the file and
// mounting, or someone already unmounted it) is not a mount point: EINVAL is fine.
void remove_pin(const std::string& path) {
  if (::umount2(path.c_str(), MNT_DETACH) != 0 && errno != EINVAL && errno != ENOENT) {
    const int err = errno;
    throw_errno(err, fmt::format("cannot unmount pinned namespace {}", path));
  }
  if (::unlink(path.c_str()) != 0 && errno != ENOENT) {
    const int err = errno;
    throw_errno(err, fmt::format("cannot remove pinned namespace {}", path));
  }
}

// A namespace pinned by a bind mount: the path is on nsfs (a plain file is on the
// filesystem of /run/netns, tmpfs).
bool is_namespace_mount(const std::string& path) {
  struct statfs fs {};
  return ::statfs(path.c_str(), &fs) == 0 && static_cast<unsigned long>(fs.f_type) == NSFS_MAGIC;
}

}  // namespace

Namespace Namespace::create(std::string label) {
  UniqueFd fd;
  std::exception_ptr error;
  std::thread([&] {
    try {
      if (::unshare(CLONE_NEWNET) != 0) {
        const int err = errno;
        throw_errno(err, fmt::format("cannot create network namespace {}", label));
      }
      fd = open_or_throw(kThreadNetns, O_RDONLY, fmt::format("cannot open new network namespace {}", label));
      // A new namespace has only a down loopback; nothing local (not even
      // 127.0.0.1) works until it is up.
      const NlSocket sock = NlSocket::route();
      set_link_up(sock, label, "lo", true);
    } catch (...) {
      error = std::current_exception();
    }
  }).join();
  if (error) std::rethrow_exception(error);
  return Namespace(std::move(fd), std::move(label));
}

Namespace Namespace::current(std::string label) {
  UniqueFd fd = open_or_throw(kThreadNetns, O_RDONLY, fmt::format("cannot open {}", kThreadNetns));
  return Namespace(std::move(fd), std::move(label));
}

Namespace::Namespace(Namespace&& other) noexcept
    : fd_(std::move(other.fd_)),
      label_(std::move(other.label_)),
      pinned_(std::exchange(other.pinned_, std::nullopt)) {}

Namespace& Namespace::operator=(Namespace&& other) noexcept {
  if (this != &other) {
    unpin();
    fd_ = std::move(other.fd_);
    label_ = std::move(other.label_);
    pinned_ = std::exchange(other.pinned_, std::nullopt);
  }
  return *this;
}

Namespace::~Namespace() { unpin(); }

unsigned long Namespace::inode() const {
  struct stat st {};
  if (::fstat(fd_.get(), &st) != 0) {
    const int err = errno;
    throw_errno(err, fmt::format("cannot stat namespace {}", label_));
  }
  return st.st_ino;
}

bool Namespace::is_callers() const {
  struct stat here {};
  struct stat ours {};
  return ::stat(kThreadNetns, &here) == 0 && ::fstat(fd_.get(), &ours) == 0 && here.st_ino == ours.st_ino &&
         here.st_dev == ours.st_dev;
}

void Namespace::run_void(const std::function<void()>& body, std::exception_ptr& error) const {
  // Already there (the local backend works in its own namespace): here, on this
  // thread. setns() would need CAP_SYS_ADMIN even into the namespace the thread is
  // in, and a thread per call cost the local backend ~80 thread creations a second,
  // each a TLB shootdown on every CPU the process runs on. No body changes its
  // thread's namespaces.
  if (is_callers()) {
    try {
      body();
    } catch (...) {
      error = std::current_exception();
    }
    return;
  }
  const int fd = fd_.get();
  std::thread([&] {
    try {
      if (::setns(fd, CLONE_NEWNET) != 0) {
        const int err = errno;
        throw_errno(err, fmt::format("cannot enter network namespace {}", label_));
      }
      body();
    } catch (...) {
      error = std::current_exception();
    }
  }).join();
}

std::filesystem::path sysctl_path(std::string_view key) {
  // Interface names containing '.' would need sysctl(8)'s '/' form; the harness
  // names its interfaces without dots, so '/' is refused outright.
  const bool ok = key.size() > 4 && key.substr(0, 4) == "net." && key.back() != '.' &&
                  key.find('/') == std::string_view::npos && key.find("..") == std::string_view::npos &&
                  key.find('\0') == std::string_view::npos;
  if (!ok) {
    throw std::invalid_argument(
        fmt::format("refusing sysctl '{}': only net.* keys are per-namespace", key));
  }
  std::string rel(key);
  std::replace(rel.begin(), rel.end(), '.', '/');
  return std::filesystem::path("/proc/sys") / rel;
}

void Namespace::write_sysctl(std::string_view key, std::string_view value) const {
  const std::string path = sysctl_path(key).string();
  const std::string what = fmt::format("cannot write sysctl {} = {} in namespace {}", key, value, label_);
  run([&] {
    UniqueFd fd = open_or_throw(path, O_WRONLY, what);
    write_all(fd.get(), value, what);
    // Some sysctl handlers only validate on close; report that too.
    if (::close(fd.release()) != 0) {
      const int err = errno;
      throw_errno(err, what);
    }
  });
}

std::string Namespace::read_sysctl(std::string_view key) const {
  const std::string path = sysctl_path(key).string();
  const std::string what = fmt::format("cannot read sysctl {} in namespace {}", key, label_);
  std::string value = run([&] {
    UniqueFd fd = open_or_throw(path, O_RDONLY, what);
    return read_all(fd.get(), what);
  });
  while (!value.empty() && (value.back() == '\n' || value.back() == ' ')) value.pop_back();
  return value;
}

std::map<std::string, std::uint64_t> Namespace::netstat() const {
  // /proc/net is the process's namespace; /proc/thread-self/net is the thread's,
  // which inside run() is this one.
  const std::string what = fmt::format("cannot read the netstat counters of namespace {}", label_);
  const std::string text = run([&] {
    UniqueFd fd = open_or_throw("/proc/thread-self/net/netstat", O_RDONLY, what);
    return read_all(fd.get(), what);
  });
  // Pairs of lines: "TcpExt: Name1 Name2 ..." then "TcpExt: 1 2 ...".
  std::map<std::string, std::uint64_t> out;
  std::istringstream lines(text);
  std::string names, values;
  while (std::getline(lines, names) && std::getline(lines, values)) {
    std::istringstream n(names), v(values);
    std::string prefix, name, value;
    n >> prefix;
    v >> value;  // the same prefix
    if (!prefix.empty() && prefix.back() == ':') prefix.pop_back();
    while (n >> name && v >> value) out[prefix + "." + name] = std::stoull(value);
  }
  return out;
}

void Namespace::pin(const std::string& name) {
  check_pin_name(name);
  if (pinned_) throw std::logic_error(fmt::format("namespace {} is already pinned at {}", label_, pinned_->string()));
  if (!fd_) throw std::logic_error(fmt::format("namespace {} holds no namespace (moved from?)", label_));

  const std::string dir(kPinDirectory);
  const std::string path = dir + "/" + name;
  // O_EXCL: never take over (and later unmount) an entry someone else made. ENOENT:
  // another process removed the (empty) directory between mkdir and open; retry.
  for (int attempt = 0;; ++attempt) {
    if (::mkdir(dir.c_str(), 0755) != 0 && errno != EEXIST) {
      const int err = errno;
      throw_errno(err, fmt::format("cannot create {}", dir));
    }
    const int fd = ::open(path.c_str(), O_RDONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0444);
    if (fd >= 0) {
      ::close(fd);
      break;
    }
    if ((errno != ENOENT && errno != EINTR) || attempt == 3) {
      const int err = errno;
      throw_errno(err, fmt::format("cannot create {}", path));
    }
  }
  const std::string source = fmt::format("/proc/self/fd/{}", fd_.get());
  if (::mount(source.c_str(), path.c_str(), "none", MS_BIND, nullptr) != 0) {
    const int err = errno;
    ::unlink(path.c_str());
    throw_errno(err, fmt::format("cannot pin namespace {} at {}", label_, path));
  }
  pinned_ = path;
}

std::optional<std::filesystem::path> Namespace::release_pin() { return std::exchange(pinned_, std::nullopt); }

void Namespace::unpin() noexcept {
  if (!pinned_) return;
  try {
    remove_pin(pinned_->string());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "kaharness: %s\n", e.what());
  }
  pinned_.reset();
}

std::vector<std::string> remove_pinned_namespaces(std::string_view prefix) {
  if (prefix.size() < 4 || prefix.find('/') != std::string_view::npos) {
    throw std::invalid_argument(
        fmt::format("refusing to remove pinned namespaces with prefix '{}': need 4 or more characters, no '/'", prefix));
  }
  std::vector<std::string> removed;
  const std::filesystem::path dir(kPinDirectory);
  std::error_code ec;
  std::filesystem::directory_iterator it(dir, ec);
  if (ec) {
    if (ec == std::errc::no_such_file_or_directory) return removed;
    throw std::system_error(ec, fmt::format("cannot list {}", dir.string()));
  }
  std::vector<std::string> names;
  for (const auto& entry : it) {
    std::string name = entry.path().filename().string();
    if (name.compare(0, prefix.size(), prefix) != 0) continue;
    // A pin is a file (a bind-mounted nsfs inode looks like one); never descend
    // into or remove directories or follow symlinks placed there.
    if (!entry.is_regular_file(ec) || entry.is_symlink(ec)) continue;
    // Only a namespace bind mount (its statfs says nsfs): a plain file someone put
    // there under the prefix is not the harness's to delete.
    if (!is_namespace_mount(entry.path().string())) continue;
    names.push_back(std::move(name));
  }
  std::sort(names.begin(), names.end());
  for (auto& name : names) {
    remove_pin((dir / name).string());
    removed.push_back(std::move(name));
  }
  return removed;
}

}  // namespace kah::netns
