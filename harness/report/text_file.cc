#include "harness/report/text_file.h"

#include <cerrno>
#include <fstream>
#include <system_error>

#include <fmt/format.h>

namespace kah {

void write_text_file(const std::filesystem::path& file, std::string_view text) {
  std::error_code ec;
  if (file.has_parent_path()) std::filesystem::create_directories(file.parent_path(), ec);
  if (ec) throw std::system_error(ec, fmt::format("cannot create folder {}", file.parent_path().string()));
  std::ofstream out(file, std::ios::binary | std::ios::trunc);
  if (!out) throw std::system_error(errno, std::generic_category(), fmt::format("cannot write {}", file.string()));
  out.write(text.data(), static_cast<std::streamsize>(text.size()));
  out.close();
  if (!out) throw std::system_error(errno, std::generic_category(), fmt::format("cannot write {}", file.string()));
}

}  // namespace kah
