// Backends: the same cases where the process has no privileges at all. Run as root,
// these tests start kaharness as user nobody (uid 65534), which has no capability in
// the machine's namespaces: `auto` must fall back to a user namespace and run every
// case there, and `--backend netns` must refuse with exit 3 and say what is missing.
// The binary and the cases are copied to a folder nobody can reach, whatever the
// checkout's permissions.
#include <catch2/catch.hpp>

#include <fcntl.h>
#include <grp.h>
#include <linux/capability.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "root_snapshot.h"

#include "read_text.h"
#include "passed.h"

namespace fs = std::filesystem;

namespace {

constexpr uid_t kNobody = 65534;
constexpr gid_t kNogroup = 65534;

using kah::test::read_text;

// A folder that user nobody can read and write, removed at the end.
struct SharedDir {
  fs::path path;
  SharedDir() {
    std::string tmpl = (fs::temp_directory_path() / "kah-backend-XXXXXX").string();
    path = ::mkdtemp(tmpl.data());
    fs::permissions(path, fs::perms::all);
  }
  ~SharedDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
};

struct Outcome {
  int exit_code = -1;
  std::string out, err;
};

// `binary ARGS` in `dir`, in a child that first calls `become` (false: exit 126).
template <typename Become>
Outcome run_child(const fs::path& binary, const std::vector<std::string>& args, const fs::path& dir, Become become) {
  const fs::path out = dir / "stdout", err = dir / "stderr";
  const pid_t pid = ::fork();
  if (pid == 0) {
    const int o = ::open(out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0666);
    const int e = ::open(err.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0666);
    ::dup2(o, 1);
    ::dup2(e, 2);
    if (::chdir(dir.c_str()) != 0 || !become()) ::_exit(126);
    std::vector<std::string> all{binary.string()};
    all.insert(all.end(), args.begin(), args.end());
    std::vector<char*> argv;
    for (auto& a : all) argv.push_back(a.data());
    argv.push_back(nullptr);
    ::execv(argv[0], argv.data());
    ::_exit(127);
  }
  int status = 0;
  ::waitpid(pid, &status, 0);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : 256 + WTERMSIG(status), read_text(out), read_text(err)};
}

// `binary ARGS` as user nobody, in `dir`, with no supplementary groups.
Outcome run_as_nobody(const fs::path& binary, const std::vector<std::string>& args, const fs::path& dir) {
  return run_child(binary, args, dir, [] {
    return ::setgroups(0, nullptr) == 0 && ::setresgid(kNogroup, kNogroup, kNogroup) == 0 &&
           ::setresuid(kNobody, kNobody, kNobody) == 0;
  });
}

// `binary ARGS` as root with only CAP_NET_ADMIN and CAP_NET_RAW, as a container's
// root gets them with `--cap-drop all --cap-add NET_ADMIN --cap-add NET_RAW`: every
// other capability leaves the bounding set, so the exec'd root cannot have it.
Outcome run_as_root_with_net_caps_only(const fs::path& binary, const std::vector<std::string>& args,
                                       const fs::path& dir) {
  return run_child(binary, args, dir, [] {
    for (int cap = 0; cap <= CAP_LAST_CAP; ++cap)
      if (cap != CAP_NET_ADMIN && cap != CAP_NET_RAW && ::prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0) return false;
    return true;
  });
}

// The binary and a few cases, where nobody can run them.
fs::path stage(const SharedDir& dir, const std::vector<std::string>& cases) {
  const fs::path binary = dir.path / "kaharness";
  fs::copy_file(KAH_BINARY, binary);
  fs::permissions(binary, fs::perms::owner_all | fs::perms::group_read | fs::perms::group_exec |
                              fs::perms::others_read | fs::perms::others_exec);
  fs::create_directory(dir.path / "cases");
  for (const auto& name : cases) fs::copy_file(fs::path(KAH_SOURCE_DIR) / "cases" / name, dir.path / "cases" / name);
  fs::permissions(dir.path / "cases", fs::perms::all);
  return binary;
}

}  // namespace

TEST_CASE("as user nobody, auto chooses a user namespace and every case runs and passes", "[backend][userns][library]") {
  const auto before = kah::test::RootSnapshot::take();
  SharedDir dir;
  // A silent peer (nftables, probes), a rebooted peer (TCP_REPAIR), and a router
  // with NAT and conntrack: what the netns backend runs, without privileges.
  const auto binary = stage(dir, {"peer-power-off.toml", "peer-reboot.toml", "conntrack-expire-strict.toml"});
  // Phase-blind windows: this test is about the backend; calibration from timer
  // firings (what a user namespace gets) has its own tests, and under a loaded ctest
  // its phase can be off by about a millisecond (README, "Calibration").
  const auto result = run_as_nobody(binary, {"run", "cases", "--json", "out.json", "--no-calibration"}, dir.path);
  INFO(kah::test::not_passed(result.out) << result.err);
  REQUIRE(result.exit_code == 0);
  const auto json = nlohmann::json::parse(read_text(dir.path / "out.json"));
  CHECK(json["backend"] == "userns");
  REQUIRE(json["cases"].size() == 3);
  for (const auto& c : json["cases"]) CHECK(kah::test::passed_or_held(c));
  CHECK(result.out.find("backend userns") != std::string::npos);
  // Nothing of the run is left in the machine's own namespace.
  CHECK(before.diff(kah::test::RootSnapshot::take()).empty());
}

TEST_CASE("as user nobody, --backend netns is refused with exit 3 and the reason", "[backend]") {
  SharedDir dir;
  const auto binary = stage(dir, {"peer-reboot.toml"});
  const auto result = run_as_nobody(binary, {"run", "cases", "--backend", "netns"}, dir.path);
  INFO(result.out << result.err);
  CHECK(result.exit_code == 3);
  CHECK(result.err.find("CAP_SYS_ADMIN") != std::string::npos);

  const auto env = run_as_nobody(binary, {"check-env"}, dir.path);
  INFO(env.out << env.err);
  CHECK(env.exit_code == 0);
  CHECK(env.out.find("ok    backend userns") != std::string::npos);
  CHECK(env.out.find("no    backend netns") != std::string::npos);
}

TEST_CASE("as root without CAP_SETFCAP (a container's root), userns is refused: uid 0 cannot be mapped",
          "[backend]") {
  SharedDir dir;
  const auto binary = stage(dir, {"peer-reboot.toml"});
  const auto env = run_as_root_with_net_caps_only(binary, {"check-env"}, dir.path);
  INFO(env.out << env.err);
  CHECK(env.out.find("no    backend userns") != std::string::npos);
  CHECK(env.out.find("cannot map uid 0") != std::string::npos);
  CHECK(env.out.find("CAP_SETFCAP") != std::string::npos);
  CHECK(env.err.find("uid_map") == std::string::npos);  // refused while choosing, not half-way in
}
