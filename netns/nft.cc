#include "netns/nft.h"

#include <memory>
#include <mutex>
#include <utility>

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

// A context with buffered output and errors, its socket in the calling thread's
// namespace. The caller holds nft_mutex().
Ctx new_context(const std::string& where) {
  Ctx ctx(nft_ctx_new(NFT_CTX_DEFAULT));
  if (!ctx) throw NftError(fmt::format("cannot create an nftables context in {}", where));
  nft_ctx_buffer_output(ctx.get());
  nft_ctx_buffer_error(ctx.get());
  return ctx;
}

// Runs one command buffer through `ctx`; returns the output buffer. The caller holds
// nft_mutex().
std::string run_with(nft_ctx* ctx, const std::string& commands, bool json, const std::string& where) {
  nft_ctx_output_set_flags(ctx, json ? NFT_CTX_OUTPUT_JSON : 0);
  if (nft_run_cmd_from_buffer(ctx, commands.c_str()) != 0) {
    std::string error = nft_ctx_get_error_buffer(ctx);
    while (!error.empty() && error.back() == '\n') error.pop_back();
    throw NftError(fmt::format("nftables refused the rules in {}: {}\n--- rules ---\n{}", where,
                               error, commands));
  }
  return nft_ctx_get_output_buffer(ctx);
}

// Runs one command buffer in the calling thread's namespace; returns the output buffer.
std::string run_here(const std::string& commands, bool json, const std::string& where) {
  std::lock_guard lock(nft_mutex());
  Ctx ctx = new_context(where);
  return run_with(ctx.get(), commands, json, where);
}

std::map<std::string, std::uint64_t> parse_counters(const std::string& text) {
  std::map<std::string, std::uint64_t> counters;
  const auto doc = nlohmann::json::parse(text);
  for (const auto& item : doc.at("nftables")) {
    if (!item.contains("counter")) continue;
    const auto& c = item["counter"];
    counters[c.at("name").get<std::string>()] = c.at("packets").get<std::uint64_t>();
  }
  return counters;
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
  return parse_counters(nft_list_json(ns, "list counters table " + family_and_table));
}

NftSession::NftSession(std::string where) : where_(std::move(where)) {
  std::lock_guard lock(nft_mutex());
  ctx_ = new_context(where_).release();
}

NftSession::NftSession(NftSession&& other) noexcept
    : ctx_(std::exchange(other.ctx_, nullptr)), where_(std::move(other.where_)) {}

NftSession& NftSession::operator=(NftSession&& other) noexcept {
  if (this != &other) {
    Ctx closing(std::exchange(ctx_, std::exchange(other.ctx_, nullptr)));
    where_ = std::move(other.where_);
    std::lock_guard lock(nft_mutex());
    closing.reset();
  }
  return *this;
}

NftSession::~NftSession() {
  if (ctx_ == nullptr) return;
  std::lock_guard lock(nft_mutex());
  nft_ctx_free(ctx_);
}

void NftSession::apply(const std::string& commands) {
  std::lock_guard lock(nft_mutex());
  run_with(ctx_, commands, false, where_);
}

std::map<std::string, std::uint64_t> NftSession::counters(const std::string& family_and_table) {
  std::string text;
  {
    std::lock_guard lock(nft_mutex());
    text = run_with(ctx_, "list counters table " + family_and_table, true, where_);
  }
  return parse_counters(text);
}

}  // namespace kah::netns
