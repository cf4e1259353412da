// Firewall work through libnftables, always inside a test namespace.
//
// libnftables keeps a process-global interface cache and opens its netlink socket
// in the namespace of the thread that creates the context, so every call here
// creates, uses and frees its context on a thread inside the target namespace
// (Namespace::run) and all calls are serialised by one process-wide mutex.
// A buffer is applied atomically: all of it, or nothing.
#pragma once

#include <cstdint>
#include <map>
#include <stdexcept>
#include <string>

#include "netns/namespace.h"

namespace kah::netns {

class NftError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Applies `commands` (nft syntax) atomically inside `ns`. Throws NftError with nft's
// own error text and the namespace label.
void nft_apply(const netns::Namespace& ns, const std::string& commands);

// Runs a listing command inside `ns` and returns nft's JSON output.
std::string nft_list_json(const netns::Namespace& ns, const std::string& command);

// Named counters of one table: name -> packets.
std::map<std::string, std::uint64_t> nft_counters(const netns::Namespace& ns,
                                                  const std::string& family_and_table);

}  // namespace kah::netns
