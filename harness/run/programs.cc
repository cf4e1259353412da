#include "harness/run/programs.h"

#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <stdexcept>

#include <fmt/format.h>

#include "harness/clock/clock.h"
#include "harness/run/fork_gate.h"

extern char** environ;

namespace kah {
namespace {

constexpr std::size_t kMaxLinesKept = 20000;  // a chatty program must not eat the harness's memory

// ---- the child side: async-signal-safe calls only (a fork of a threaded process) ----

// The pid the keeper and the init pass signals to; 0 until it exists.
volatile sig_atomic_t g_forward_to = 0;
volatile sig_atomic_t g_forward_to_group = 0;  // the init signals the program's process group

void forward_signal(int sig) {
  const pid_t target = g_forward_to;
  if (target <= 0) return;  // never kill(0): that would be our own process group
  ::kill(g_forward_to_group ? -target : target, sig);
}

void forward_stop_signals() {
  struct sigaction sa {};
  sa.sa_handler = forward_signal;
  sigemptyset(&sa.sa_mask);
  for (int sig : {SIGTERM, SIGINT, SIGHUP}) sigaction(sig, &sa, nullptr);
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, nullptr);
}

void say(const char* text) {
  if (::write(2, text, std::strlen(text)) < 0) {
  }
}

// The fd the init or warden tells the harness on, once it has reaped the program: the
// CLOCK_MONOTONIC instant, in ns (8 bytes). Close-on-exec: the program never holds it.
constexpr int kReapedFd = 4;

void report_reaped() {
  timespec now{};
  ::clock_gettime(CLOCK_MONOTONIC, &now);
  const std::int64_t ns = static_cast<std::int64_t>(now.tv_sec) * 1'000'000'000 + now.tv_nsec;
  if (::write(kReapedFd, &ns, sizeof ns) < 0) {  // the harness gone: nothing to tell
  }
}

// Waits for `child`, reaping any other process that ends meanwhile (the init of a
// PID namespace inherits its orphans), and returns its status as an exit code.
int wait_for(pid_t child) {
  for (;;) {
    int status = 0;
    const pid_t pid = ::waitpid(-1, &status, 0);
    if (pid < 0 && errno == EINTR) continue;
    if (pid < 0) return 127;
    if (pid != child) continue;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  }
}

// The program itself: its own process group, a clean signal state, then exec.
[[noreturn]] void exec_program(const char* path, char* const* argv, char* const* envp, const char* workdir) {
  ::setpgid(0, 0);
  for (int sig = 1; sig < NSIG; ++sig) ::signal(sig, SIG_DFL);  // the harness ignores SIGPIPE, say
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, nullptr);
  if (::chdir(workdir) != 0) {
    say("kaharness: cannot enter the program's working directory\n");
    _exit(127);
  }
  ::execve(path, argv, envp);
  say("kaharness: cannot execute the program\n");
  _exit(127);
}

// pid 1 of the program's PID namespace.
[[noreturn]] void run_init(const char* path, char* const* argv, char* const* envp, const char* workdir) {
  ::prctl(PR_SET_PDEATHSIG, SIGKILL);  // the keeper
  const pid_t program = _Fork();
  if (program < 0) _exit(127);
  if (program == 0) exec_program(path, argv, envp, workdir);
  ::setpgid(program, program);  // also here: a signal may come before the program's own setpgid
  g_forward_to_group = 1;
  g_forward_to = program;
  forward_stop_signals();
  const int code = wait_for(program);
  report_reaped();  // before the namespace's other processes are killed and reaped
  _exit(code);
}

// ---- the warden (Launch::pid_namespace false): no PID namespace to kill the program's
// processes with, so the process between the keeper and the program kills them itself.

constexpr int kKeeperGone = SIGUSR1;  // the warden's PR_SET_PDEATHSIG: catchable, unlike SIGKILL

// "1234 5678 " -> SIGKILL to each; how many it signalled. Reads without allocating.
int kill_pids_in(const char* text, ssize_t n) {
  int killed = 0;
  long pid = 0;
  for (ssize_t i = 0; i <= n; ++i) {
    const char ch = i < n ? text[i] : ' ';
    if (ch >= '0' && ch <= '9') {
      pid = pid * 10 + (ch - '0');
    } else {
      if (pid > 1 && ::kill(static_cast<pid_t>(pid), SIGKILL) == 0) ++killed;
      pid = 0;
    }
  }
  return killed;
}

// SIGKILL to every child of the warden (single-threaded: its one task's children),
// orphans it adopted as their subreaper included.
void kill_children() {
  const int fd = ::open("/proc/thread-self/children", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return;  // no CONFIG_PROC_CHILDREN: the backend offers no warden (warden_refusal)
  char buf[4096];
  ssize_t n;
  while ((n = ::read(fd, buf, sizeof buf - 1)) > 0) {
    // A pid cut at the buffer's end is completed by the next round of kill_subtree.
    ssize_t whole = n;
    while (whole > 0 && buf[whole - 1] != ' ' && buf[whole - 1] != '\n') --whole;
    kill_pids_in(buf, whole);
    if (whole < n) break;
  }
  ::close(fd);
}

// Kills every descendant of the warden: SIGKILL to each child, reap, again (the
// children of a killed process re-parent to the warden, the nearest subreaper, before
// it can be reaped) until waitpid says it has no child left. Never blocks in waitpid:
// an orphan adopted after a round's kill is alive until the next round.
void kill_subtree() {
  for (;;) {
    kill_children();
    for (;;) {
      int status = 0;
      const pid_t pid = ::waitpid(-1, &status, WNOHANG | __WALL);
      if (pid < 0 && errno == EINTR) continue;
      if (pid < 0) return;  // ECHILD: none left
      if (pid == 0) break;  // children left, none ended yet
    }
    const timespec pause{0, 2'000'000};
    ::nanosleep(&pause, nullptr);
  }
}

// Between the keeper and the program when there is no PID namespace: a child
// subreaper that passes SIGTERM, SIGINT and SIGHUP to the program's process group,
// and kills the program's whole subtree when the keeper dies (kKeeperGone) or the
// program exits; it exits with the program's status, as the init would.
[[noreturn]] void run_warden(pid_t keeper, const char* path, char* const* argv, char* const* envp,
                             const char* workdir) {
  sigset_t handled;
  sigemptyset(&handled);
  for (int sig : {SIGCHLD, SIGTERM, SIGINT, SIGHUP, kKeeperGone}) sigaddset(&handled, sig);
  sigprocmask(SIG_BLOCK, &handled, nullptr);  // taken with sigwaitinfo, never by a handler
  if (::prctl(PR_SET_CHILD_SUBREAPER, 1) != 0) _exit(127);
  ::prctl(PR_SET_PDEATHSIG, kKeeperGone);
  if (::getppid() != keeper) _exit(127);  // the keeper died before the line above
  const pid_t program = _Fork();
  if (program < 0) _exit(127);
  if (program == 0) exec_program(path, argv, envp, workdir);  // unblocks every signal
  ::setpgid(program, program);  // also here: a signal may come before the program's own setpgid
  int code = 127;
  for (;;) {
    siginfo_t info{};
    const int sig = ::sigwaitinfo(&handled, &info);
    if (sig < 0) continue;  // EINTR
    if (sig == kKeeperGone) break;
    if (sig != SIGCHLD) {
      ::kill(-program, sig);
      continue;
    }
    bool program_ended = false;
    for (;;) {
      int status = 0;
      const pid_t pid = ::waitpid(-1, &status, WNOHANG);
      if (pid <= 0) break;
      if (pid == program) {
        program_ended = true;
        code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
      }
    }
    if (program_ended) {
      report_reaped();  // before its subtree is killed
      break;
    }
  }
  kill_subtree();
  _exit(code);
}

struct ChildSetup {
  pid_t parent;
  bool pid_namespace;
  int ns, devnull, out, err, started, reaped;
  const char* path;
  char* const* argv;
  char* const* envp;
  const char* workdir;
};

[[noreturn]] void run_keeper(const ChildSetup& s) {
  ::prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (::getppid() != s.parent) _exit(127);
  ::setpgid(0, 0);  // not the harness's group: a Ctrl-C reaches the harness, which stops us
  if (::dup2(s.devnull, 0) < 0 || ::dup2(s.out, 1) < 0 || ::dup2(s.err, 2) < 0) _exit(127);
  if (s.pid_namespace && ::setns(s.ns, CLONE_NEWNET) != 0) {
    say("kaharness: cannot enter the host's network namespace\n");
    _exit(127);
  }
  if (s.pid_namespace && ::unshare(CLONE_NEWPID) != 0) {
    say("kaharness: cannot make a PID namespace for the program\n");
    _exit(127);
  }
  // Nothing of the harness stays open here: another case's socket held by this
  // process would not close when its case closes it. The reaped pipe goes to
  // kReapedFd by way of a free descriptor (it may be 3 itself), close-on-exec.
  const int reaped = ::fcntl(s.reaped, F_DUPFD_CLOEXEC, kReapedFd + 1);
  const int started = ::dup2(s.started, 3);
  if (reaped < 0 || ::dup3(reaped, kReapedFd, O_CLOEXEC) != kReapedFd) _exit(127);
  ::close_range(kReapedFd + 1, ~0U, 0);
  const char byte = 1;
  if (started != 3 || ::write(3, &byte, 1) != 1) _exit(127);
  ::close(3);
  const pid_t keeper = ::getpid();
  const pid_t init = _Fork();
  if (init < 0) _exit(127);
  if (init == 0 && s.pid_namespace) run_init(s.path, s.argv, s.envp, s.workdir);
  if (init == 0) run_warden(keeper, s.path, s.argv, s.envp, s.workdir);
  g_forward_to = init;
  forward_stop_signals();
  _exit(wait_for(init));
}

// ---- the harness side ----------------------------------------------------------------

// NULL-terminated arrays of C strings, built before fork (the child must not allocate).
struct CStrings {
  std::vector<std::string> owned;
  std::vector<char*> pointers;
  char* const* get() {
    pointers.clear();
    for (auto& s : owned) pointers.push_back(s.data());
    pointers.push_back(nullptr);
    return pointers.data();
  }
};

CStrings environment_with(const std::map<std::string, std::string>& extra) {
  CStrings env;
  for (char** e = environ; *e != nullptr; ++e) {
    const std::string entry(*e);
    const auto eq = entry.find('=');
    if (eq != std::string::npos && extra.contains(entry.substr(0, eq))) continue;
    env.owned.push_back(entry);
  }
  for (const auto& [key, value] : extra) env.owned.push_back(key + "=" + value);
  return env;
}

std::pair<UniqueFd, UniqueFd> make_pipe(const std::string& what) {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) throw_errno(what);
  return {UniqueFd(fds[0]), UniqueFd(fds[1])};
}

}  // namespace

std::optional<std::string> warden_refusal() {
  int subreaper = 0;
  if (::prctl(PR_GET_CHILD_SUBREAPER, &subreaper) != 0)
    return fmt::format("no child subreaper here ({})", std::strerror(errno));
  if (::access("/proc/thread-self/children", R_OK) != 0)
    return fmt::format("cannot read /proc/thread-self/children ({})", std::strerror(errno));
  // The pids the warden reads there go to kill(), and the harness finds a program's
  // processes and sockets there: /proc must be this PID namespace's.
  std::error_code ec;
  const auto self = std::filesystem::read_symlink("/proc/self", ec);
  if (ec || self.string() != std::to_string(::getpid()))
    return fmt::format("/proc is not this PID namespace's (/proc/self is {}, the pid {})",
                       ec ? ec.message() : self.string(), ::getpid());
  return std::nullopt;
}

std::unique_ptr<RunningProgram> RunningProgram::start(const Launch& launch) {
  const std::string context = fmt::format("program {}", launch.name);
  auto [out_read, out_write] = make_pipe(context + ": cannot make its stdout pipe");
  auto [err_read, err_write] = make_pipe(context + ": cannot make its stderr pipe");
  auto [started_read, started_write] = make_pipe(context + ": cannot make a pipe");
  auto [reaped_read, reaped_write] = make_pipe(context + ": cannot make a pipe");
  const UniqueFd devnull(::open("/dev/null", O_RDONLY | O_CLOEXEC));
  if (!devnull) throw_errno(context + ": cannot open /dev/null");

  CStrings argv;
  argv.owned = launch.argv;
  CStrings env = environment_with(launch.env);
  const std::string path = launch.executable.string();
  const std::string workdir = launch.workdir.string();
  const ChildSetup setup{::getpid(), launch.pid_namespace, launch.pid_namespace ? launch.ns->fd() : -1,
                         devnull.get(), out_write.get(), err_write.get(), started_write.get(), reaped_write.get(),
                         path.c_str(), argv.get(), env.get(), workdir.c_str()};
  const double started = monotonic_ms();
  auto gate = hold_for_fork();  // until the keeper has closed what it inherited (fork_gate.h)
  const pid_t pid = ::fork();
  if (pid < 0) throw_errno(context + ": cannot fork");
  if (pid == 0) run_keeper(setup);

  UniqueFd pidfd(static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)));
  if (!pidfd) {
    const int err = errno;
    ::kill(pid, SIGKILL);
    ::waitpid(pid, nullptr, 0);
    throw_errno(err, context + ": cannot open a pidfd");
  }
  std::unique_ptr<RunningProgram> program(new RunningProgram(launch.name, pid, std::move(pidfd), std::move(out_read),
                                                             std::move(err_read), std::move(reaped_read),
                                                             launch.workdir));
  program->started_ms_ = started;
  out_write.reset();
  err_write.reset();
  started_write.reset();
  reaped_write.reset();
  char byte = 0;
  ssize_t n;
  while ((n = ::read(started_read.get(), &byte, 1)) < 0 && errno == EINTR) {
  }
  if (n != 1)
    throw std::runtime_error(fmt::format("{} did not start: {}", context, program->tail(5)));
  return program;
}

RunningProgram::RunningProgram(std::string name, pid_t pid, UniqueFd pidfd, UniqueFd out, UniqueFd err,
                               UniqueFd reaped, std::filesystem::path workdir)
    : name_(std::move(name)),
      pid_(pid),
      pidfd_(std::move(pidfd)),
      out_(std::move(out)),
      err_(std::move(err)),
      reaped_(std::move(reaped)),
      wake_(::eventfd(0, EFD_CLOEXEC)),
      workdir_(std::move(workdir)) {
  if (!wake_) throw_errno("cannot make an eventfd");
  thread_ = std::thread([this] { monitor(); });
}

RunningProgram::~RunningProgram() {
  stop();
  const std::uint64_t one = 1;
  if (::write(wake_.get(), &one, sizeof one) < 0) {
  }
  if (thread_.joinable()) thread_.join();
}

void RunningProgram::stop(double grace_ms) noexcept {
  if (exit()) return;
  ::syscall(SYS_pidfd_send_signal, pidfd_.get(), SIGTERM, nullptr, 0);
  if (wait_for_exit(monotonic_ms() + grace_ms)) return;
  ::syscall(SYS_pidfd_send_signal, pidfd_.get(), SIGKILL, nullptr, 0);
  wait_for_exit(monotonic_ms() + 10000);
}

void RunningProgram::take_output(int fd, const std::string& stream, std::string& partial, std::ofstream& file) {
  char buf[4096];
  const ssize_t n = ::read(fd, buf, sizeof buf);
  if (n <= 0) return;
  const double now = monotonic_ms();
  file.write(buf, n);
  file.flush();
  partial.append(buf, static_cast<std::size_t>(n));
  std::lock_guard lock(mutex_);
  for (auto nl = partial.find('\n'); nl != std::string::npos; nl = partial.find('\n')) {
    if (lines_.size() < kMaxLinesKept) lines_.push_back({now, stream, partial.substr(0, nl)});
    partial.erase(0, nl + 1);
  }
  changed_.notify_all();
}

void RunningProgram::monitor() {
  std::ofstream out_file(stdout_file(), std::ios::binary), err_file(stderr_file(), std::ios::binary);
  std::string out_partial, err_partial;
  bool out_open = true, err_open = true, reaped = false, report_open = true;
  std::optional<double> program_reaped_ms;  // when the init (or warden) reaped the program
  while (out_open || err_open || !reaped) {
    pollfd fds[5] = {{out_.get(), POLLIN, 0},
                     {err_.get(), POLLIN, 0},
                     {pidfd_.get(), POLLIN, 0},
                     {wake_.get(), POLLIN, 0},
                     {reaped_.get(), POLLIN, 0}};
    if (!out_open) fds[0].fd = -1;
    if (!err_open) fds[1].fd = -1;
    if (reaped) fds[2].fd = -1;
    if (!report_open) fds[4].fd = -1;
    if (::poll(fds, 5, -1) < 0) {
      if (errno == EINTR) continue;
      break;
    }
    if (fds[3].revents != 0) break;
    // POLLHUP with data still buffered: read until read() says end of file.
    const auto drain = [&](pollfd& p, const std::string& stream, std::string& partial, std::ofstream& file,
                           bool& open) {
      if (p.revents == 0) return;
      char probe;
      if ((p.revents & POLLIN) != 0) return take_output(p.fd, stream, partial, file);
      if (::read(p.fd, &probe, 0) <= 0) open = false;
    };
    drain(fds[0], "stdout", out_partial, out_file, out_open);
    drain(fds[1], "stderr", err_partial, err_file, err_open);
    // Written before the init exits, so it is readable by the time the keeper is.
    if (fds[4].revents != 0) {
      std::int64_t ns = 0;
      if (::read(reaped_.get(), &ns, sizeof ns) == static_cast<ssize_t>(sizeof ns))
        program_reaped_ms = static_cast<double>(ns) / 1e6;
      else
        report_open = false;  // end of file: every holder exited
    }
    if (fds[2].revents != 0) {
      siginfo_t info{};
      if (::waitid(static_cast<idtype_t>(P_PIDFD), static_cast<id_t>(pidfd_.get()), &info, WEXITED) == 0) {
        const double now = monotonic_ms();
        std::lock_guard lock(mutex_);
        exit_ = ProgramExit{program_reaped_ms.value_or(now),
                            info.si_code == CLD_EXITED ? info.si_status : 128 + info.si_status, now};
        reaped = true;
        changed_.notify_all();
      }
    }
  }
  std::lock_guard lock(mutex_);
  const double now = monotonic_ms();
  if (!out_partial.empty()) lines_.push_back({now, "stdout", out_partial});
  if (!err_partial.empty()) lines_.push_back({now, "stderr", err_partial});
  changed_.notify_all();
}

std::vector<OutputLine> RunningProgram::lines() const {
  std::lock_guard lock(mutex_);
  return lines_;
}

std::optional<ProgramExit> RunningProgram::exit() const {
  std::lock_guard lock(mutex_);
  return exit_;
}

std::optional<OutputLine> RunningProgram::wait_for_line(const std::regex& pattern, double deadline_ms) const {
  std::unique_lock lock(mutex_);
  std::size_t checked = 0;
  for (;;) {
    for (; checked < lines_.size(); ++checked)
      if (std::regex_search(lines_[checked].text, pattern)) return lines_[checked];
    const double left = deadline_ms - monotonic_ms();
    if (exit_ || left <= 0) return std::nullopt;
    changed_.wait_for(lock, std::chrono::microseconds(static_cast<long>(left * 1000)));
  }
}

std::optional<ProgramExit> RunningProgram::wait_for_exit(double deadline_ms) const {
  std::unique_lock lock(mutex_);
  for (;;) {
    const double left = deadline_ms - monotonic_ms();
    if (exit_ || left <= 0) return exit_;
    changed_.wait_for(lock, std::chrono::microseconds(static_cast<long>(left * 1000)));
  }
}

std::string RunningProgram::tail(std::size_t n) const {
  std::lock_guard lock(mutex_);
  if (lines_.empty()) return "(it printed nothing)";
  std::string out;
  for (std::size_t i = lines_.size() > n ? lines_.size() - n : 0; i < lines_.size(); ++i)
    out += fmt::format("{}{}: {}", out.empty() ? "" : " | ", lines_[i].stream, lines_[i].text);
  return out;
}

}  // namespace kah
