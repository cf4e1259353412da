// Writing a report page: the one place that creates its folder and says, with the
// path, what failed.
#pragma once

#include <filesystem>
#include <string_view>

namespace kah {

// Writes `text` to `file` (replacing it), creating its folder first. Throws
// std::system_error naming the folder or the file.
void write_text_file(const std::filesystem::path& file, std::string_view text);

}  // namespace kah
