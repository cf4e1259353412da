#include "harness/cli/output_paths.h"

#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <system_error>

#include <fmt/format.h>

namespace kah {
namespace {

namespace fs = std::filesystem;

std::string errno_text(int err) { return std::strerror(err); }

// A file: an existing one is opened for writing without truncating it; a new one is
// created (O_EXCL, so nothing of anyone else's is touched) and removed again.
std::optional<std::string> file_problem(const std::string& path) {
  std::error_code ec;
  const auto st = fs::status(path, ec);
  if (fs::is_directory(st)) return "is a folder, expected a file";
  if (fs::exists(st)) {
    const int fd = ::open(path.c_str(), O_WRONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    if (fd < 0) return fmt::format("cannot write the existing file: {}", errno_text(errno));
    ::close(fd);
    return std::nullopt;
  }
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd < 0) return fmt::format("cannot create the file: {}", errno_text(errno));
  ::close(fd);
  ::unlink(path.c_str());
  return std::nullopt;
}

// Whether files can be made in folder `dir` (which exists): a probe folder is
// created in it and removed.
std::optional<std::string> folder_writable(const fs::path& dir) {
  std::string probe = (dir / ".kaharness-probe-XXXXXX").string();
  if (::mkdtemp(probe.data()) == nullptr) return fmt::format("cannot create files in {}: {}", dir.string(), errno_text(errno));
  ::rmdir(probe.c_str());
  return std::nullopt;
}

// A folder that the run creates if needed; `must_be_empty` unless forced.
std::optional<std::string> folder_problem(const std::string& path, bool must_be_empty) {
  std::error_code ec;
  const fs::path dir(path);
  const auto st = fs::status(dir, ec);
  if (fs::exists(st)) {
    if (!fs::is_directory(st)) return "exists and is not a folder";
    if (must_be_empty) {
      fs::directory_iterator it(dir, ec);
      if (ec) return fmt::format("cannot list the folder: {}", ec.message());
      if (it != fs::directory_iterator())
        return "is a folder that already holds files: the report would overwrite them; choose a new or empty folder, "
               "or add --force";
    }
    return folder_writable(dir);
  }
  // The nearest parent that exists must be a folder where the rest can be made.
  fs::path parent = fs::absolute(dir, ec).parent_path();
  while (!parent.empty()) {
    const auto pst = fs::status(parent, ec);
    if (fs::exists(pst)) {
      if (!fs::is_directory(pst)) return fmt::format("cannot create the folder: {} is not a folder", parent.string());
      return folder_writable(parent);
    }
    if (parent == parent.root_path()) break;
    parent = parent.parent_path();
  }
  return "cannot create the folder: no parent folder exists";
}

}  // namespace

std::string OutputProblem::str() const { return fmt::format("{} {}: {}", option, path, why); }

std::vector<OutputProblem> check_output_paths(const OutputPaths& paths) {
  std::vector<OutputProblem> out;
  const auto add = [&](const char* option, const std::string& path, std::optional<std::string> why) {
    if (why) out.push_back({option, path, std::move(*why)});
  };
  if (!paths.json.empty()) add("--json", paths.json, file_problem(paths.json));
  if (!paths.junit.empty()) {
    std::error_code ec;
    if (!paths.json.empty() && fs::weakly_canonical(paths.json, ec) == fs::weakly_canonical(paths.junit, ec))
      add("--junit", paths.junit, "is also the --json file: one would overwrite the other");
    else
      add("--junit", paths.junit, file_problem(paths.junit));
  }
  if (!paths.report.empty()) add("--report", paths.report, folder_problem(paths.report, !paths.force));
  if (!paths.pcap.empty()) add("--pcap", paths.pcap, folder_problem(paths.pcap, false));
  return out;
}

int final_exit_code(int interrupted_code, int run_code, bool outputs_written) {
  if (interrupted_code != 0) return interrupted_code;
  if (run_code != 0) return run_code;
  return outputs_written ? 0 : 2;
}

}  // namespace kah
