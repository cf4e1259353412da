// Real programs under test as running processes: started inside a host's network
// namespace, watched (every line of stdout and stderr timestamped and kept in files,
// the exit), stopped with SIGTERM then SIGKILL, and unable to outlive the harness.
//
// How a program is held (three processes, so that nothing of it can survive):
//
//   harness ─fork─▶ keeper ─▶ init (pid 1 of a new PID namespace) ─▶ the program
//
// The keeper enters the host's network namespace, keeps only its stdio (the pipes)
// and dies with the harness (PR_SET_PDEATHSIG, SIGKILL); the init dies with the
// keeper the same way, and when the init of a PID namespace dies the kernel kills
// every process in it: the program, its children, anything it daemonized. The
// program itself runs as an ordinary process (pid 2, its own process group, default
// signal dispositions and mask). SIGTERM to the keeper is passed down to the
// program's process group; the keeper exits with the program's status (128 + N when
// signal N killed it). The init tells the harness when it reaped the program (a pipe),
// which is the program's exit instant: the keeper's own exit comes after the kernel has
// killed and reaped the rest of the namespace, two wake-ups later.
//
// Without CAP_SYS_ADMIN (backend local: Launch::pid_namespace false) the keeper
// neither enters a namespace (the program runs in the harness's own) nor makes a PID
// namespace; the process between it and the program is a warden instead of an init:
//
//   harness ─fork─▶ keeper ─▶ warden (a child subreaper) ─▶ the program
//
// The warden dies with the keeper through PR_SET_PDEATHSIG too, but with a catchable
// signal: when it comes, or when the program exits, the warden kills the program's
// whole subtree itself (SIGKILL to every child, daemonized orphans included since
// they re-parent to it, reap, again until waitpid says ECHILD), then exits with the
// program's status. Signals, status and pipes are as with the init.
//
// Threading: each RunningProgram has one thread that reads its output and reaps it;
// the accessors lock. start() and stop() are called from the case's thread.
#pragma once

#include <sys/types.h>

#include <condition_variable>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <regex>
#include <string>
#include <thread>
#include <vector>

#include "netns/fd.h"
#include "netns/namespace.h"

namespace kah {

struct OutputLine {
  double at_ms = 0;     // CLOCK_MONOTONIC when the harness read it
  std::string stream;   // "stdout" or "stderr"
  std::string text;     // without the newline
};

struct ProgramExit {
  // CLOCK_MONOTONIC when it exited: when its parent (the init or the warden) reaped it,
  // one wake-up after the kernel; when that is not known, `reaped_ms`.
  double at_ms = 0;
  int status = 0;         // the exit status (128 + N: killed by signal N)
  double reaped_ms = 0;   // when the harness reaped the keeper, the end of the chain
};

struct Launch {
  std::string name;                         // for messages
  std::filesystem::path executable;         // resolved
  std::vector<std::string> argv;            // argv[0] included, expanded
  std::map<std::string, std::string> env;   // on top of the harness's environment
  std::filesystem::path workdir;            // created by the caller; stdout.log, stderr.log go there
  const netns::Namespace* ns = nullptr;     // where it runs (with pid_namespace)
  // true: held in a PID namespace, in `ns` (CAP_SYS_ADMIN); false: held by a warden
  // in the harness's own network namespace, `ns` unused.
  bool pid_namespace = true;
};

// Whether a warden can hold programs here: it needs PR_SET_CHILD_SUBREAPER and
// /proc/thread-self/children (CONFIG_PROC_CHILDREN). nullopt when it can, else why.
std::optional<std::string> warden_refusal();

class RunningProgram {
 public:
  // Starts it and returns once the keeper holds nothing but its pipes. Throws
  // std::system_error when a process or a pipe cannot be made.
  static std::unique_ptr<RunningProgram> start(const Launch& launch);
  ~RunningProgram();  // stop()
  RunningProgram(const RunningProgram&) = delete;
  RunningProgram& operator=(const RunningProgram&) = delete;

  // SIGTERM, up to `grace_ms` for it to exit, then SIGKILL (the whole PID namespace
  // goes); waits until it is reaped. Does nothing once it has exited.
  void stop(double grace_ms = 2000) noexcept;

  const std::string& name() const noexcept { return name_; }
  // The keeper: every process of the program descends from it.
  pid_t pid() const noexcept { return pid_; }
  double started_ms() const noexcept { return started_ms_; }
  std::filesystem::path stdout_file() const { return workdir_ / "stdout.log"; }
  std::filesystem::path stderr_file() const { return workdir_ / "stderr.log"; }

  std::vector<OutputLine> lines() const;
  std::optional<ProgramExit> exit() const;
  // Waits until a line matches `pattern` (search), it exits, or `deadline_ms`
  // (CLOCK_MONOTONIC) passes; the matching line, if any.
  std::optional<OutputLine> wait_for_line(const std::regex& pattern, double deadline_ms) const;
  // Waits until it exits or `deadline_ms` passes.
  std::optional<ProgramExit> wait_for_exit(double deadline_ms) const;
  // The last `n` lines as text ("stderr: ..."), for messages.
  std::string tail(std::size_t n) const;

 private:
  RunningProgram(std::string name, pid_t pid, UniqueFd pidfd, UniqueFd out, UniqueFd err, UniqueFd reaped,
                 std::filesystem::path workdir);
  void monitor();  // the thread: reads both pipes, reaps
  void take_output(int fd, const std::string& stream, std::string& partial, std::ofstream& file);

  std::string name_;
  pid_t pid_;
  UniqueFd pidfd_, out_, err_;
  UniqueFd reaped_;  // the init's or warden's report of when it reaped the program
  UniqueFd wake_;    // an eventfd that ends monitor()
  std::filesystem::path workdir_;
  double started_ms_ = 0;
  mutable std::mutex mutex_;
  mutable std::condition_variable changed_;
  std::vector<OutputLine> lines_;
  std::optional<ProgramExit> exit_;
  std::thread thread_;
};

}  // namespace kah
