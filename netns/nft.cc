#include "netns/nft.h"

#include <memory>
#include <mutex>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

// libnftables.h defines _GNU_SOURCE itself; g++ already does.
#undef _GNU_SOURCE
#include <nftables/libnftables.h>

namespace kah::netns {
namespace {

std::mutex& nft_mutex() {
  static std::mutex m;
  return m;
}

struct CtxDeleter {
  void operator()(nft_ctx* ctx) const noexcept { nft_ctx_free(ctx); }
};
using Ctx = std::unique_ptr<nft_ctx, CtxDeleter>;

// Runs one command buffer in the calling thread's namespace; returns the output buffer.
std::string run_here(const std::string& commands, bool json, const std::string& where) {
  std::lock_guard lock(nft_mutex());
  Ctx ctx(nft_ctx_new(NFT_CTX_DEFAULT));
  if (!ctx) throw NftError(fmt::format("cannot create an nftables context in {}", where));
  if (json) nft_ctx_output_set_flags(ctx.get(), NFT_CTX_OUTPUT_JSON);
  nft_ctx_buffer_output(ctx.get());
  nft_ctx_buffer_error(ctx.get());
  if (nft_run_cmd_from_buffer(ctx.get(), commands.c_str()) != 0) {
    std::string error = nft_ctx_get_error_buffer(ctx.get());
    while (!error.empty() && error.back() == '\n') error.pop_back();
    throw NftError(fmt::format("nftables refused the rules in {}: {}\n--- rules ---\n{}", where,
                               error, commands));
  }
  return nft_ctx_get_output_buffer(ctx.get());
}

}  // namespace

void nft_apply(const netns::Namespace& ns, const std::string& commands) {
  ns.run([&] { run_here(commands, false, ns.label()); });
}

std::string nft_list_json(const netns::Namespace& ns, const std::string& command) {
  return ns.run([&] { return run_here(command, true, ns.label()); });
}

std::map<std::string, std::uint64_t> nft_counters(const netns::Namespace& ns,
                                                  const std::string& family_and_table) {
  const auto text = nft_list_json(ns, "list counters table " + family_and_table);
  std::map<std::string, std::uint64_t> counters;
  const auto doc = nlohmann::json::parse(text);
  for (const auto& item : doc.at("nftables")) {
    if (!item.contains("counter")) continue;
    const auto& c = item["counter"];
    counters[c.at("name").get<std::string>()] = c.at("packets").get<std::uint64_t>();
  }
  return counters;
}

}  // namespace kah::netns
