// UniqueFd: closing and errno-carrying exceptions. close() is never retried on
// EINTR: on Linux the descriptor is released even when close reports EINTR, and a
// retry could close a descriptor another thread has just been given.
#include "netns/fd.h"

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

void throw_errno(int err, const std::string& what) {
  throw std::system_error(err, std::generic_category(), what);
}

}  // namespace kah
