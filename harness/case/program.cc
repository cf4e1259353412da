#include "harness/case/program.h"

#include <sys/stat.h>
#include <unistd.h>

#include <stdexcept>

#include <fmt/format.h>
#include <fmt/ranges.h>

namespace kah {

const std::vector<std::string>& placeholder_names() {
  static const std::vector<std::string> names = {
      "server",  "client",  "port",    "family",  "workdir", "name",
      "server4", "server6", "client4", "client6",
  };
  return names;
}

namespace {

// Walks `text`, calling `literal` for plain text and `name` for each placeholder.
template <typename Literal, typename Name>
void scan_placeholders(std::string_view text, Literal&& literal, Name&& name) {
  for (std::size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    const bool doubled = i + 1 < text.size() && text[i + 1] == c;
    if ((c == '{' || c == '}') && doubled) {
      literal(c);
      ++i;
    } else if (c == '{') {
      const auto close = text.find('}', i);
      if (close == std::string_view::npos)
        throw std::invalid_argument(fmt::format("unclosed '{{' at offset {} (write '{{{{' for a literal brace)", i));
      name(std::string(text.substr(i + 1, close - i - 1)));
      i = close;
    } else {
      literal(c);
    }
  }
}

}  // namespace

std::string expand_placeholders(std::string_view text, const Placeholders& values) {
  std::string out;
  scan_placeholders(
      text, [&](char c) { out += c; },
      [&](const std::string& name) {
        const auto it = values.find(name);
        if (it == values.end())
          throw std::invalid_argument(fmt::format("unknown placeholder '{{{}}}'; known: {{{}}}", name,
                                                  fmt::join(placeholder_names(), "}, {")));
        out += it->second;
      });
  return out;
}

std::vector<std::string> placeholders_in(std::string_view text) {
  std::vector<std::string> names;
  scan_placeholders(text, [](char) {}, [&](const std::string& name) { names.push_back(name); });
  return names;
}

std::vector<std::string> split_command(std::string_view line) {
  std::vector<std::string> words;
  std::string word;
  bool in_word = false;
  char quote = 0;
  for (std::size_t i = 0; i < line.size(); ++i) {
    const char c = line[i];
    if (quote == '\'') {
      if (c == '\'') quote = 0;
      else word += c;
    } else if (c == '\\' && i + 1 < line.size()) {
      word += line[++i];
      in_word = true;
    } else if (quote == '"') {
      if (c == '"') quote = 0;
      else word += c;
    } else if (c == '\'' || c == '"') {
      quote = c;
      in_word = true;
    } else if (c == ' ' || c == '\t' || c == '\n') {
      if (in_word) words.push_back(std::move(word));
      word.clear();
      in_word = false;
    } else {
      word += c;
      in_word = true;
    }
  }
  if (quote != 0) throw std::invalid_argument(fmt::format("unclosed {} quote", quote == '"' ? "double" : "single"));
  if (in_word) words.push_back(std::move(word));
  return words;
}

std::pair<std::string, std::string> parse_program_arg(std::string_view text) {
  const auto eq = text.find('=');
  if (eq == std::string_view::npos || eq == 0)
    throw std::invalid_argument(fmt::format("'{}' is not NAME=ARG (the program's name, '=', one argument)", text));
  return {std::string(text.substr(0, eq)), std::string(text.substr(eq + 1))};
}

std::string debian_package_of(std::string_view executable) {
  struct Entry {
    std::string_view executable, package;
  };
  static constexpr Entry kPackages[] = {
      {"redis-server", "redis-server"}, {"redis-cli", "redis-tools"},
      {"haproxy", "haproxy"},           {"psql", "postgresql-client"},
      {"postgres", "postgresql"},       {"initdb", "postgresql"},
      {"sshd", "openssh-server"},       {"ssh", "openssh-client"},
      {"socat", "socat"},               {"nginx", "nginx-light"},
      {"curl", "curl"},
  };
  const auto slash = executable.rfind('/');
  const auto base = slash == std::string_view::npos ? executable : executable.substr(slash + 1);
  for (const auto& e : kPackages)
    if (e.executable == base) return std::string(e.package);
  return "";
}

namespace {

bool is_executable_file(const std::filesystem::path& p) {
  struct stat st {};
  return ::stat(p.c_str(), &st) == 0 && S_ISREG(st.st_mode) && ::access(p.c_str(), X_OK) == 0;
}

}  // namespace

std::optional<std::filesystem::path> find_executable(const std::string& name, const std::string& path_list,
                                                     const std::filesystem::path& case_dir) {
  if (name.empty()) return std::nullopt;
  if (name.find('/') != std::string::npos) {
    std::filesystem::path p(name);
    if (p.is_relative()) p = case_dir / p;
    if (is_executable_file(p)) return p;
    return std::nullopt;
  }
  std::size_t start = 0;
  while (start <= path_list.size()) {
    auto end = path_list.find(':', start);
    if (end == std::string::npos) end = path_list.size();
    const std::string dir = path_list.substr(start, end - start);
    const std::filesystem::path p = std::filesystem::path(dir.empty() ? "." : dir) / name;
    if (is_executable_file(p)) return p;
    start = end + 1;
  }
  // Debian puts the daemons in sbin, which a user's PATH often leaves out.
  for (const char* dir : {"/usr/sbin", "/sbin", "/usr/lib/postgresql/15/bin"}) {
    const std::filesystem::path p = std::filesystem::path(dir) / name;
    if (is_executable_file(p)) return p;
  }
  return std::nullopt;
}

std::string missing_executable_message(const std::string& name) {
  const std::string package = debian_package_of(name);
  const std::string where = name.find('/') != std::string::npos ? "" : " on PATH";
  if (package.empty()) return fmt::format("cannot find the program '{}'{} (or it is not executable)", name, where);
  return fmt::format("cannot find the program '{}'{}; install the Debian package {} (scripts/install-deps.sh does)",
                     name, where, package);
}

}  // namespace kah
