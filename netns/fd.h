// UniqueFd: sole owner of one file descriptor (a namespace, a socket, a netlink fd).
// Move-only; a moved-from object owns nothing (-1). The destructor closes quietly;
// close() reports failure by throwing std::system_error. Not thread-safe per object.
#pragma once

#include <string>
#include <utility>

namespace kah {

class UniqueFd {
 public:
  UniqueFd() noexcept = default;
  explicit UniqueFd(int fd) noexcept : fd_(fd) {}
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;
  UniqueFd(UniqueFd&& other) noexcept : fd_(other.release()) {}
  UniqueFd& operator=(UniqueFd&& other) noexcept {
    if (this != &other) reset(other.release());
    return *this;
  }
  ~UniqueFd() { reset(); }

  int get() const noexcept { return fd_; }
  explicit operator bool() const noexcept { return fd_ >= 0; }
  // Gives up ownership without closing.
  int release() noexcept { return std::exchange(fd_, -1); }
  // Closes the current descriptor (errors ignored) and takes `fd`.
  void reset(int fd = -1) noexcept;
  // Closes and throws std::system_error if the kernel reports an error.
  void close();

 private:
  int fd_ = -1;
};

// Throws std::system_error(errno, what) — "what: strerror".
[[noreturn]] void throw_errno(const std::string& what);
// Same with an errno value saved by the caller: building `what` (allocation,
// formatting) may clobber errno, so save it first when the message is computed.
[[noreturn]] void throw_errno(int err, const std::string& what);

// Moves `fd` to a descriptor number >= `floor` (F_DUPFD_CLOEXEC) and closes the
// original. Libraries that still wait with select() (libnftables' netlink batch
// does) crash on descriptors >= FD_SETSIZE (1024); keeping the harness's many
// sockets above that floor leaves the low numbers to them. Returns `fd`
// unchanged if the move is impossible (RLIMIT_NOFILE too low).
UniqueFd move_above(UniqueFd fd, int floor = 1024);

// Raises the soft RLIMIT_NOFILE to the hard limit: thousands of connections need
// thousands of descriptors. Returns the new soft limit.
long raise_fd_limit();

}  // namespace kah
