#include "harness/report/xml.h"

#include <cstdint>

namespace kah {
namespace {

constexpr std::string_view kReplacement = "\xEF\xBF\xBD";  // U+FFFD

// Length of the well-formed UTF-8 sequence at s[i] (RFC 3629: no overlong forms, no
// surrogates, nothing above U+10FFFF), or 0.
std::size_t utf8_length(std::string_view s, std::size_t i) {
  const auto byte = [&](std::size_t k) { return static_cast<std::uint8_t>(s[k]); };
  const std::uint8_t lead = byte(i);
  std::size_t n = 0;
  std::uint32_t cp = 0;
  std::uint32_t min = 0;
  if (lead < 0x80) return 1;
  if ((lead & 0xe0) == 0xc0) { n = 2; cp = lead & 0x1fu; min = 0x80; }
  else if ((lead & 0xf0) == 0xe0) { n = 3; cp = lead & 0x0fu; min = 0x800; }
  else if ((lead & 0xf8) == 0xf0) { n = 4; cp = lead & 0x07u; min = 0x10000; }
  else return 0;
  if (i + n > s.size()) return 0;
  for (std::size_t k = 1; k < n; ++k) {
    if ((byte(i + k) & 0xc0) != 0x80) return 0;
    cp = (cp << 6) | (byte(i + k) & 0x3fu);
  }
  if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return 0;
  if (cp == 0xfffe || cp == 0xffff) return 0;  // not XML characters
  return n;
}

std::string escape(std::string_view s, bool attribute) {
  std::string out;
  out.reserve(s.size() + s.size() / 8);
  for (std::size_t i = 0; i < s.size();) {
    const char c = s[i];
    const std::size_t n = utf8_length(s, i);
    if (n == 0) {
      out += kReplacement;
      ++i;
      continue;
    }
    i += n;
    if (n > 1) {
      out.append(s.substr(i - n, n));
      continue;
    }
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += attribute ? "&quot;" : "\""; break;
      case '\'': out += attribute ? "&#39;" : "'"; break;
      case '\t': out += attribute ? "&#9;" : "\t"; break;
      case '\n': out += attribute ? "&#10;" : "\n"; break;
      case '\r': out += "&#13;"; break;  // a raw CR would be folded into LF by any parser
      default:
        if (static_cast<std::uint8_t>(c) < 0x20) out += kReplacement;
        else out += c;
    }
  }
  return out;
}

}  // namespace

std::string xml_text(std::string_view s) { return escape(s, false); }
std::string xml_attr(std::string_view s) { return escape(s, true); }

}  // namespace kah
