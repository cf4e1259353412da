// Watcher: one event loop (one thread, one epoll set) that watches every client
// socket of every running case and reports when the kernel ends a connection.
//
// A socket stays bound to the namespace it was created in, so sockets from
// hundreds of namespaces share this loop. Callbacks run on the loop thread and
// must be short; each fires once, after which the socket is no longer watched.
#pragma once

#include <functional>
#include <mutex>
#include <thread>
#include <unordered_map>

#include "harness/clock/clock.h"
#include "netns/fd.h"

namespace kah {

struct SocketEnd {
  int so_error = 0;    // SO_ERROR at the event; 0 for an orderly end of stream (EOF)
  bool eof = false;    // the peer closed (FIN) without an error
  double at_ms = 0;    // CLOCK_MONOTONIC when the loop saw it
};

class Watcher {
 public:
  using OnEnd = std::function<void(const SocketEnd&)>;

  Watcher();
  ~Watcher();
  Watcher(const Watcher&) = delete;
  Watcher& operator=(const Watcher&) = delete;

  // Watches `fd` (which the caller keeps open) until error, hang-up or EOF.
  void watch(int fd, OnEnd on_end);
  // Stops watching `fd`; its callback will not run after this returns.
  void forget(int fd);

 private:
  void loop();

  UniqueFd epoll_;
  UniqueFd wake_;  // eventfd: tells the loop to stop
  std::mutex mutex_;
  std::unordered_map<int, OnEnd> callbacks_;
  std::thread thread_;
};

}  // namespace kah
