// An emulated CI container with CAP_NET_ADMIN and CAP_NET_RAW but not CAP_SYS_ADMIN,
// built as a container runtime builds one: the process joins a given network
// namespace (the caller makes it: anonymous, lo up), gets PID and mount namespaces of
// its own with /proc/timer_list hidden (an empty file bound over it, as Docker masks
// it), loses CAP_SYS_ADMIN from its bounding, permitted, effective and inheritable
// sets, and runs under a seccomp filter that refuses new namespaces and setns (what
// Docker's default profile does without CAP_SYS_ADMIN). Used by the integration tests
// of the local backend and by scripts/local-container.sh (kah_contained).
#pragma once

#include <sys/types.h>

#include <filesystem>
#include <string>
#include <vector>

#include "netns/namespace.h"

namespace kah::test {

struct Contained {
  pid_t runtime = -1;  // our child: holds the PID namespace, exits with the program's status
  pid_t program = -1;  // the program itself (pid 1 of that PID namespace)
};

struct ContainerSpec {
  std::vector<std::string> argv;    // the program and its arguments
  std::filesystem::path directory;  // where it runs
  std::filesystem::path empty_file; // bound over /proc/timer_list
  std::filesystem::path out, err;   // its stdout and stderr; empty: inherited
};

// Starts the program in the container; throws std::system_error when it cannot fork.
Contained start_contained(const netns::Namespace& net, const ContainerSpec& spec);

// waitpid: the exit code, or 256 + the signal that killed it (the runtime reports a
// program killed by signal S as 128 + S).
int wait_exit(pid_t pid);

}  // namespace kah::test
