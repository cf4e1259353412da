// Backends: how kaharness gets network namespaces of its own on this machine.
//
//   netns   anonymous namespaces and veth pairs, made directly (root, or
//           CAP_SYS_ADMIN + CAP_NET_ADMIN).
//   userns  no privileges at all: the process first enters a new user namespace,
//           mapped to the caller's uid and gid, where it holds every capability
//           over the namespaces it then creates; the rest is as netns. Needs a
//           kernel that lets unprivileged users create user namespaces.
//   local   only CAP_NET_ADMIN (+ CAP_NET_RAW for captures), in the namespace the
//           process already has (a container's own): both ends on loopback, faults
//           in nft tables of the harness's own (local_topology.h). It refuses the
//           host's initial namespace unless told --in-place.
//
// Cases say what they need (harness/case/needs.h), backends what they offer: a case
// the chosen backend cannot run is skipped with the reason (skip_reason()).
//
// `auto` takes the first that works, in that order. Choosing may enter a user
// namespace, which the kernel allows only to a single-threaded process: call
// choose_backend() before any thread is started.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "harness/case/needs.h"

namespace kah {

enum class Backend { netns, userns, local };
std::string to_string(Backend b);
// "netns", "userns", "local"; nullopt for anything else ("auto" included).
std::optional<Backend> backend_from_string(std::string_view s);

// What one backend can do here: nullopt when it works, else why not.
std::optional<std::string> netns_refusal();
std::optional<std::string> userns_refusal();
// `in_place`: the host's initial network namespace is accepted (--in-place).
std::optional<std::string> local_refusal(bool in_place);
// The refusal of `backend`, as above.
std::optional<std::string> refusal(Backend backend, bool in_place);

struct BackendChoice {
  std::optional<Backend> backend;  // empty: none works here
  // Why each backend tried before it (or all of them) cannot run here.
  std::vector<std::pair<Backend, std::string>> refused;
};

// The backend `requested` names, or the first that works (`auto`: nullopt). Does not
// enter anything: see use_backend().
BackendChoice choose_backend(std::optional<Backend> requested, bool in_place = false);

// What a backend offers cases here: every Need it lacks, with why ("offers none").
struct Offers {
  std::map<Need, std::string> lacks;
};
Offers offers_of(Backend backend);

// Why `c` cannot run on `backend`, e.g. "needs its own network namespaces (routed
// topology); backend local offers none"; nullopt when it can.
std::optional<std::string> skip_reason(const Case& c, Backend backend, const Offers& offers);

// Makes the process ready for `backend`: for userns, enters a new user namespace
// (the process must still be single-threaded). Throws std::system_error on failure.
void use_backend(Backend backend);

}  // namespace kah
