#include "tests/integration/contained.h"

#include <fcntl.h>
#include <linux/capability.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sched.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <system_error>

namespace kah::test {
namespace {

// Docker's default seccomp profile, as far as namespaces go: unshare and setns are
// refused, clone with a namespace flag too, clone3 is "not implemented" (glibc then
// falls back to clone). x86-64 only, as this project's machines.
void refuse_namespaces_like_docker() {
  constexpr std::uint32_t kNamespaceFlags =
      CLONE_NEWNS | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWUSER | CLONE_NEWPID | CLONE_NEWNET | CLONE_NEWCGROUP;
  sock_filter filter[] = {
      BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(seccomp_data, nr)),
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_unshare, 0, 1),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EPERM),
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_setns, 0, 1),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EPERM),
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_clone3, 0, 1),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | ENOSYS),
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_clone, 0, 3),
      BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(seccomp_data, args[0])),  // the flags' low half
      BPF_JUMP(BPF_JMP | BPF_JSET | BPF_K, kNamespaceFlags, 0, 1),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EPERM),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
  };
  sock_fprog program{static_cast<unsigned short>(sizeof filter / sizeof filter[0]), filter};
  if (::prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &program) != 0) ::_exit(121);
}

// CAP_SYS_ADMIN out of every set, for this process and whatever it executes.
void drop_sys_admin() {
  if (::prctl(PR_CAPBSET_DROP, CAP_SYS_ADMIN, 0, 0, 0) != 0) ::_exit(122);
  __user_cap_header_struct header{_LINUX_CAPABILITY_VERSION_3, 0};
  __user_cap_data_struct data[2]{};
  if (::syscall(SYS_capget, &header, data) != 0) ::_exit(123);
  for (auto* set : {&data[0].effective, &data[0].permitted, &data[0].inheritable}) *set &= ~(1u << CAP_SYS_ADMIN);
  if (::syscall(SYS_capset, &header, data) != 0) ::_exit(124);
}

void redirect(const std::filesystem::path& file, int fd) {
  if (file.empty()) return;
  const int opened = ::open(file.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (opened < 0 || ::dup2(opened, fd) < 0) ::_exit(117);
}

// In the container's PID namespace (as its pid 1): mounts, capabilities, seccomp, exec.
[[noreturn]] void become_program(const ContainerSpec& spec, char* const* argv) {
  // /proc of its own PID namespace, as a runtime mounts it: pids read there are the
  // ones kill() and waitpid() take inside.
  if (::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0 ||
      ::mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, nullptr) != 0 ||
      ::mount(spec.empty_file.c_str(), "/proc/timer_list", nullptr, MS_BIND, nullptr) != 0)
    ::_exit(119);
  ::prctl(PR_SET_PDEATHSIG, SIGKILL);
  redirect(spec.out, 1);
  redirect(spec.err, 2);
  if (::chdir(spec.directory.c_str()) != 0) ::_exit(118);
  refuse_namespaces_like_docker();
  drop_sys_admin();
  ::execv(argv[0], argv);
  ::_exit(127);
}

}  // namespace

Contained start_contained(const netns::Namespace& net, const ContainerSpec& spec) {
  // Everything the children need, made before fork (no allocation after it).
  std::vector<std::string> args = spec.argv;
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  int pipe_fds[2];
  if (::pipe2(pipe_fds, O_CLOEXEC) != 0) throw std::system_error(errno, std::generic_category(), "pipe2");

  const pid_t runtime = ::fork();
  if (runtime < 0) throw std::system_error(errno, std::generic_category(), "fork");
  if (runtime == 0) {
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::setns(net.fd(), CLONE_NEWNET) != 0 || ::unshare(CLONE_NEWPID | CLONE_NEWNS) != 0) ::_exit(120);
    const pid_t program = ::fork();
    if (program == 0) become_program(spec, argv.data());
    (void)!::write(pipe_fds[1], &program, sizeof program);
    int status = 0;
    ::waitpid(program, &status, 0);
    ::_exit(WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status));
  }
  ::close(pipe_fds[1]);
  Contained c;
  c.runtime = runtime;
  const auto n = ::read(pipe_fds[0], &c.program, sizeof c.program);
  ::close(pipe_fds[0]);
  if (n != sizeof c.program) c.program = -1;  // the runtime failed before forking: wait_exit says how
  return c;
}

int wait_exit(pid_t pid) {
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0)
    if (errno != EINTR) return -1;
  return WIFEXITED(status) ? WEXITSTATUS(status) : 256 + WTERMSIG(status);
}

}  // namespace kah::test
