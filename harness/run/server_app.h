// The server's application, as a case describes it ([server]): what it answers when
// a connection opens (a raw ping/pong, or an HTTP/1.1 GET answered with a keep-alive
// response, as a web server does) and its idle timeout, which closes a connection the
// application has not read from or written to for that long (a FIN: the client reads
// EOF). The timeout runs in the harness process (a Scheduler), like an application's.
#pragma once

#include <atomic>
#include <memory>

#include "harness/case/case.h"
#include "harness/run/endpoints.h"
#include "harness/run/scheduler.h"
#include "netns/fd.h"

namespace kah {

// The opening exchange. HTTP: "GET / HTTP/1.1" with Connection: keep-alive, answered
// by "200 OK" with Connection: keep-alive and, when the server has an idle timeout,
// the Keep-Alive: timeout=N header announcing it (as Apache does).
Exchange exchange_for(const ServerSpec& server);

// Takes the server's socket of a connection and closes it at `deadline_ms`
// (CLOCK_MONOTONIC): the application's idle timeout. Nothing is unread, so the
// kernel sends a FIN, not an RST. A socket whose deadline has not come when the
// scheduler dies is closed then. `closed_at` receives the CLOCK_MONOTONIC instant of
// the close() call (0 until then): a busy machine can run the timer late, and that
// lateness is the harness's, not the kernel's.
void close_when_idle(Scheduler& scheduler, UniqueFd socket, double deadline_ms,
                     std::shared_ptr<std::atomic<double>> closed_at);

}  // namespace kah
