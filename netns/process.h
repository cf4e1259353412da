// Processes and the sockets they hold, read from /proc, and descriptors borrowed from
// another process (pidfd_getfd): how the harness finds a real program's connections
// (by the inodes sock_diag reports) and reads the options set on them, without the
// program's cooperation. A borrowed descriptor shares the socket with the program:
// close it soon, or the socket outlives the program's own close().
//
// Threading: plain functions, no shared state.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <vector>

#include "netns/fd.h"

namespace kah::netns {

// `root` and every process descended from it (parents read from /proc/PID/stat),
// `root` first. Processes that exit while it is read are left out.
std::vector<pid_t> process_tree(pid_t root);

// A socket descriptor held by a process.
struct HeldSocket {
  pid_t pid = 0;
  int fd = -1;
  std::uint64_t inode = 0;  // as sock_diag and fstat report it
};

// Every socket descriptor of `pids` (/proc/PID/fd links "socket:[N]").
std::vector<HeldSocket> sockets_held(const std::vector<pid_t>& pids);

// A descriptor of this process for `socket` (pidfd_open + pidfd_getfd: needs
// ptrace rights over it, which root and a parent have). Throws std::system_error.
UniqueFd borrow_fd(const HeldSocket& socket);

}  // namespace kah::netns
