// Forks and timed closes take turns.
//
// A forked child holds a copy of every descriptor of the harness until it closes
// them (a program's keeper and a peer process do, first thing). A socket a case
// closes inside that window stays open in the child: no FIN and no silent vanishing
// until the child lets go. Measured under the local backend with the whole library:
// app-idle-timeout's FINs left 40-46 ms after close() returned, while a program case
// forked (copying the page tables of a 300 MB process takes that long under load).
//
// So a fork holds the gate exclusively from before fork() until the child has said
// it closed what it inherited, and every close whose instant the model uses (an
// application's idle close, a peer's silent close) holds it shared: it waits for the
// child, and its instant is measured after the wait.
#pragma once

#include <mutex>
#include <shared_mutex>

namespace kah {

inline std::shared_mutex& fork_gate() {
  static std::shared_mutex gate;
  return gate;
}

// Held from before fork() until the child has closed the harness's descriptors.
inline std::unique_lock<std::shared_mutex> hold_for_fork() { return std::unique_lock(fork_gate()); }

// Held around a close() whose instant counts.
inline std::shared_lock<std::shared_mutex> hold_for_close() { return std::shared_lock(fork_gate()); }

}  // namespace kah
