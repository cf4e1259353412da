#include "harness/run/server_app.h"

#include <fmt/format.h>

#include <memory>

#include "harness/clock/clock.h"
#include "harness/run/fork_gate.h"

namespace kah {

Exchange exchange_for(const ServerSpec& server) {
  switch (server.protocol) {
    case AppProtocol::raw: return Exchange{};
    case AppProtocol::http: {
      const std::string keep_alive =
          server.idle_close_s ? fmt::format("Keep-Alive: timeout={:g}\r\n", *server.idle_close_s) : "";
      return Exchange{
          "GET / HTTP/1.1\r\nHost: server\r\nUser-Agent: kaharness\r\nConnection: keep-alive\r\n\r\n",
          fmt::format("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 3\r\n"
                      "Connection: keep-alive\r\n{}\r\nok\n",
                      keep_alive)};
    }
  }
  return Exchange{};
}

void close_when_idle(Scheduler& scheduler, UniqueFd socket, double deadline_ms,
                     std::shared_ptr<std::atomic<double>> closed_at) {
  // std::function needs a copyable callable; the shared owner closes the socket when
  // the action runs, or when the scheduler drops the action unrun.
  auto owner = std::make_shared<UniqueFd>(std::move(socket));
  scheduler.at(deadline_ms, [owner, closed_at] {
    const auto gate = hold_for_close();  // no forked child holds it now (fork_gate.h)
    closed_at->store(monotonic_ms());
    owner->close();
  });
}

}  // namespace kah
