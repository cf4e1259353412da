#include "harness/cli/interrupt_guard.h"

#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <stdexcept>

#include <fmt/format.h>

namespace kah {
namespace {

// Shared with the handler: plain atomics and an fd, nothing that allocates.
std::atomic<int> g_signal{0};
std::atomic<int> g_pipe_write{-1};
pid_t g_pid = 0;
std::atomic<bool> g_installed{false};
struct sigaction g_previous_int {};
struct sigaction g_previous_term {};

extern "C" void on_stop_signal(int sig) {
  // A forked child (the frozen peer) inherits the handler: it just dies, as before.
  if (::getpid() != g_pid) ::_exit(128 + sig);
  int expected = 0;
  if (!g_signal.compare_exchange_strong(expected, sig)) ::_exit(128 + sig);  // the second one: at once
  const int saved = errno;
  const int fd = g_pipe_write.load();
  if (fd >= 0) {
    const char byte = 1;
    [[maybe_unused]] const ssize_t n = ::write(fd, &byte, 1);
  }
  errno = saved;
}

}  // namespace

InterruptGuard::InterruptGuard() {
  if (g_installed.exchange(true)) throw std::logic_error("InterruptGuard: one at a time");
  if (::pipe2(pipe_, O_CLOEXEC) != 0) {
    g_installed = false;
    throw std::runtime_error(fmt::format("cannot create the signal pipe: {}", std::strerror(errno)));
  }
  g_signal = 0;
  g_pid = ::getpid();
  g_pipe_write = pipe_[1];
  // The reader wakes on a byte: 1 is a signal, 0 the guard ending.
  reader_ = std::thread([this, fd = pipe_[0]] {
    for (;;) {
      char byte = 0;
      const ssize_t n = ::read(fd, &byte, 1);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0 || byte == 0) return;
      source_.request_stop();
    }
  });
  struct sigaction sa {};
  sa.sa_handler = on_stop_signal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESTART;  // other threads' blocking calls carry on; the stop token does the rest
  ::sigaction(SIGINT, &sa, &g_previous_int);
  ::sigaction(SIGTERM, &sa, &g_previous_term);
}

InterruptGuard::~InterruptGuard() {
  ::sigaction(SIGINT, &g_previous_int, nullptr);
  ::sigaction(SIGTERM, &g_previous_term, nullptr);
  g_pipe_write = -1;
  const char stop = 0;
  while (::write(pipe_[1], &stop, 1) < 0 && errno == EINTR) {
  }
  reader_.join();
  ::close(pipe_[0]);
  ::close(pipe_[1]);
  g_installed = false;
}

int InterruptGuard::signal() const { return g_signal.load(); }

int interrupted_exit_code(int signal) { return 128 + signal; }

std::string signal_name(int signal) {
  switch (signal) {
    case SIGINT: return "SIGINT";
    case SIGTERM: return "SIGTERM";
    default: return fmt::format("signal {}", signal);
  }
}

}  // namespace kah
