// UniqueFd: closing and errno-carrying exceptions. close() is never retried on
// EINTR: on Linux the descriptor is released even when close reports EINTR, and a
// retry could close a descriptor another thread has just been given.
#include "netns/fd.h"

#include <fcntl.h>
#include <sys/resource.h>
#include <unistd.h>

#include <cerrno>
#include <system_error>

namespace kah {

void UniqueFd::reset(int fd) noexcept {
  const int old = std::exchange(fd_, fd);
  if (old >= 0) ::close(old);
}

void UniqueFd::close() {
  const int old = release();
  if (old >= 0 && ::close(old) != 0) {
    const int err = errno;
    throw_errno(err, "cannot close file descriptor " + std::to_string(old));
  }
}

void throw_errno(const std::string& what) { throw_errno(errno, what); }

UniqueFd move_above(UniqueFd fd, int floor) {
  if (!fd || fd.get() >= floor) return fd;
  const int moved = fcntl(fd.get(), F_DUPFD_CLOEXEC, floor);
  if (moved < 0) return fd;
  return UniqueFd(moved);  // `fd` closes the original on return
}

long raise_fd_limit() {
  rlimit limit{};
  if (getrlimit(RLIMIT_NOFILE, &limit) != 0) return -1;
  if (limit.rlim_cur < limit.rlim_max) {
    limit.rlim_cur = limit.rlim_max;
    setrlimit(RLIMIT_NOFILE, &limit);
    getrlimit(RLIMIT_NOFILE, &limit);
  }
  return static_cast<long>(limit.rlim_cur);
}

void throw_errno(int err, const std::string& what) {
  throw std::system_error(err, std::generic_category(), what);
}

}  // namespace kah
