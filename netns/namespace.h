// Namespace: one anonymous network namespace, held by a file descriptor. When the
// last descriptor closes (also when the process is SIGKILLed) the kernel frees the
// namespace and everything in it: links, addresses, routes, nft tables, sockets.
//
// Threading: setns() is per thread, so run() executes a function on a short-lived
// thread that has entered the namespace; the caller's thread never changes
// namespace. Sockets and netlink/nft contexts created inside run() stay bound to
// the namespace after the thread ends and can be used from any thread.
#pragma once

#include <exception>
#include <filesystem>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <type_traits>
#include <vector>

#include "netns/fd.h"

namespace kah::netns {

class Namespace {
 public:
  // Creates a new anonymous network namespace with its loopback up. `label` is
  // for messages only (e.g. "peer-blackhole/client"); nothing is named in the system.
  static Namespace create(std::string label);
  // Opens the namespace of the calling thread, which is the process's own unless the
  // caller is inside run() (used for root-namespace checks).
  static Namespace current(std::string label = "current");

  // Hand-written: the source is left owning nothing (no fd, no pin), so a pin is
  // removed exactly once, by whichever object holds it last.
  Namespace(Namespace&& other) noexcept;
  Namespace& operator=(Namespace&& other) noexcept;
  Namespace(const Namespace&) = delete;
  Namespace& operator=(const Namespace&) = delete;
  ~Namespace();

  int fd() const noexcept { return fd_.get(); }
  const std::string& label() const noexcept { return label_; }
  // Inode of the namespace (as in /proc/self/ns/net -> net:[inode]).
  unsigned long inode() const;

  // Runs f() on a thread inside this namespace and returns its result; an
  // exception thrown by f is rethrown here. When the calling thread is already in
  // it (Namespace::current(), the local backend), f runs on the calling thread. f
  // must not change its thread's namespaces.
  template <class F>
  auto run(F&& f) const -> std::invoke_result_t<F&> {
    using R = std::invoke_result_t<F&>;
    std::exception_ptr error;
    if constexpr (std::is_void_v<R>) {
      run_void([&] { f(); }, error);
      if (error) std::rethrow_exception(error);
    } else {
      std::optional<R> result;
      run_void([&] { result.emplace(f()); }, error);
      if (error) std::rethrow_exception(error);
      return std::move(*result);
    }
  }

  // Writes a sysctl of this namespace: key in dotted form ("net.ipv4.tcp_keepalive_time").
  // Only keys under net. are namespaced; anything else is refused (std::invalid_argument)
  // so a case can never change the host.
  void write_sysctl(std::string_view key, std::string_view value) const;
  std::string read_sysctl(std::string_view key) const;

  // The namespace's TCP/IP extended counters (/proc/net/netstat, "TcpExt" and
  // "IpExt" lines) as "TcpExt.OutOfWindowIcmps" -> value: evidence of what its kernel did.
  std::map<std::string, std::uint64_t> netstat() const;

  // Bind-mounts the namespace at /run/netns/NAME so `ip netns exec NAME` can inspect it
  // (--keep). The mount is removed with the object unless release_pin() was called.
  void pin(const std::string& name);
  // Keeps the pin after this object dies (for --keep); returns its path.
  std::optional<std::filesystem::path> release_pin();

 private:
  Namespace(UniqueFd fd, std::string label) : fd_(std::move(fd)), label_(std::move(label)) {}
  // Runs body inside this namespace (a new thread that setns()es, unless the caller is
  // in it already); captures exceptions.
  void run_void(const std::function<void()>& body, std::exception_ptr& error) const;
  // The calling thread is in this namespace.
  bool is_callers() const;
  // Unmounts and unlinks the pin, if any; failures are reported on stderr, never thrown.
  void unpin() noexcept;

  UniqueFd fd_;
  std::string label_;
  std::optional<std::filesystem::path> pinned_;
};

// Sysctl key "net.ipv4.tcp_keepalive_time" -> "/proc/sys/net/ipv4/tcp_keepalive_time".
// Throws std::invalid_argument for keys outside "net." or with "..", "/".
std::filesystem::path sysctl_path(std::string_view key);

// Where pin() puts namespaces, as iproute2 does ("ip netns" lists them).
inline constexpr std::string_view kPinDirectory = "/run/netns";

// For `kaharness gc`: unmounts and unlinks every /run/netns entry whose name starts
// with `prefix` and that is a namespace bind mount (nsfs), and nothing else (a plain
// file with such a name is left alone); returns the names removed. A missing /run/netns
// is not an error. Refuses (std::invalid_argument) a prefix shorter than 4
// characters or containing '/', so a typo cannot sweep other tools' namespaces.
std::vector<std::string> remove_pinned_namespaces(std::string_view prefix);

}  // namespace kah::netns
