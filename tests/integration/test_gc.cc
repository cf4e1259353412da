// `kaharness gc` (issue 9, item 8): it removes the namespace bind mounts it made
// under its prefix and nothing else, not even a plain file that carries the prefix.
#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>
#include <string>

#include "netns/namespace.h"
#include "root_snapshot.h"

namespace fs = std::filesystem;

TEST_CASE("gc removes only namespace bind mounts under its prefix, never a plain file", "[gc]") {
  const std::string prefix = kah::test::test_pin_prefix() + "gc-";
  const fs::path plain = fs::path(kah::netns::kPinDirectory) / (prefix + "plain-file");
  fs::create_directories(kah::netns::kPinDirectory);
  std::ofstream(plain) << "not a namespace";
  auto ns = kah::netns::Namespace::create("gc-test");
  ns.pin(prefix + "pinned");
  (void)ns.release_pin();

  const auto removed = kah::netns::remove_pinned_namespaces(prefix);
  const bool plain_left = fs::exists(plain);
  std::error_code ec;
  fs::remove(plain, ec);
  CHECK(plain_left);
  REQUIRE(removed.size() == 1);
  CHECK(removed[0] == prefix + "pinned");
  CHECK_FALSE(fs::exists(fs::path(kah::netns::kPinDirectory) / (prefix + "pinned")));
}
