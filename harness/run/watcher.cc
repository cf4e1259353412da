#include "harness/run/watcher.h"

#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <ctime>

#include "harness/clock/wakeup_priority.h"

namespace kah {

Watcher::Watcher() {
  epoll_.reset(epoll_create1(EPOLL_CLOEXEC));
  if (!epoll_) throw_errno("cannot create the event loop (epoll_create1)");
  wake_.reset(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!wake_) throw_errno("cannot create the event loop's wake-up eventfd");
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.fd = wake_.get();
  if (epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, wake_.get(), &ev) != 0)
    throw_errno("cannot add the wake-up eventfd to the event loop");
  thread_ = std::thread([this] { loop(); });
}

Watcher::~Watcher() {
  const std::uint64_t one = 1;
  [[maybe_unused]] auto n = ::write(wake_.get(), &one, sizeof one);
  thread_.join();
}

void Watcher::watch(int fd, OnEnd on_end) {
  std::lock_guard lock(mutex_);
  callbacks_[fd] = std::move(on_end);
  epoll_event ev{};
  // EPOLLRDHUP: the peer's FIN; EPOLLERR/EPOLLHUP (always reported): reset, timeout.
  ev.events = EPOLLRDHUP | EPOLLERR | EPOLLHUP;
  ev.data.fd = fd;
  if (epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, fd, &ev) != 0) {
    callbacks_.erase(fd);
    throw_errno("cannot watch socket " + std::to_string(fd));
  }
}

void Watcher::forget(int fd) {
  std::lock_guard lock(mutex_);
  if (callbacks_.erase(fd) > 0) epoll_ctl(epoll_.get(), EPOLL_CTL_DEL, fd, nullptr);
}

void Watcher::loop() {
  raise_wakeup_priority();  // an end is timed by when this thread wakes
  std::array<epoll_event, 256> events{};
  for (;;) {
    const int n = epoll_wait(epoll_.get(), events.data(), static_cast<int>(events.size()), -1);
    const double now = monotonic_ms();
    if (n < 0) {
      if (errno == EINTR) continue;
      return;  // the epoll fd is gone: nothing left to watch
    }
    for (int i = 0; i < n; ++i) {
      const int fd = events[static_cast<std::size_t>(i)].data.fd;
      if (fd == wake_.get()) return;
      SocketEnd end;
      end.at_ms = now;
      int err = 0;
      socklen_t len = sizeof err;
      if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) == 0) end.so_error = err;
      end.eof = end.so_error == 0;
      OnEnd callback;
      {
        std::lock_guard lock(mutex_);
        auto it = callbacks_.find(fd);
        if (it == callbacks_.end()) continue;
        callback = std::move(it->second);
        callbacks_.erase(it);
        epoll_ctl(epoll_.get(), EPOLL_CTL_DEL, fd, nullptr);
      }
      callback(end);
    }
  }
}

}  // namespace kah
