// Escaping for the XML and HTML the reporters write (JUnit, the HTML report). Case
// names, file paths and failure messages end up in both; a stray '<', a control
// character or a broken UTF-8 byte would make a CI server reject the whole file.
#pragma once

#include <string>
#include <string_view>

namespace kah {

// Character data: & < > escaped, characters XML 1.0 forbids (C0 controls other than
// tab, newline, carriage return) and invalid UTF-8 replaced by U+FFFD.
std::string xml_text(std::string_view s);
// An attribute value for double quotes: as xml_text, plus " and ', and tab, newline and
// carriage return as character references so attribute normalisation keeps them.
std::string xml_attr(std::string_view s);

}  // namespace kah
