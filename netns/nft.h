// Firewall work through libnftables, inside a test namespace or, for the local
// backend, in the harness's own tables of the namespace it runs in.
//
// libnftables keeps a process-global interface cache and opens its netlink socket
// in the namespace of the thread that creates the context, so every call here
// creates, uses and frees its context on a thread inside the target namespace
// (Namespace::run), except NftSession, which keeps one context open; all calls are
// serialised by one process-wide mutex. A buffer is applied atomically: all of it,
// or nothing.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>

#include "netns/namespace.h"

struct nft_ctx;  // libnftables

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

// One nftables context kept open in the namespace of the thread that makes it. Its
// netlink socket lives exactly as long as the session, and so does every table the
// session creates with `flags owner`: the kernel deletes such a table when the socket
// that made it closes, SIGKILL included, and refuses (EPERM) any other socket that
// tries to change it. Checked with libnftables 1.0.6 (Debian 12): nft_ctx_new opens
// the socket, a refused command keeps it, nft_ctx_free closes it and the table goes.
class NftSession {
 public:
  // `where` names the namespace in messages. Throws NftError.
  explicit NftSession(std::string where);
  NftSession(NftSession&& other) noexcept;
  NftSession& operator=(NftSession&& other) noexcept;
  NftSession(const NftSession&) = delete;
  NftSession& operator=(const NftSession&) = delete;
  ~NftSession();

  // As nft_apply() and nft_counters(), through this session's socket.
  void apply(const std::string& commands);
  std::map<std::string, std::uint64_t> counters(const std::string& family_and_table);
  // `list table` in nft's text syntax.
  std::string list_table(const std::string& family_and_table);

 private:
  ::nft_ctx* ctx_ = nullptr;
  std::string where_;
};

}  // namespace kah::netns
