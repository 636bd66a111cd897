#pragma once
//! \file
//! Text for terminals: names chosen by applications (actors, handler types) and messages may hold control
//! characters; printed raw, a newline forges a line of a report and an escape sequence drives the
//! reader's terminal (clears it, sets its title). Used by state_dump::text() and rk-top.
//!
//! Contract: printable(s) is `s` with every C0 control (U+0000..U+001F), DEL (U+007F) and C1 control
//! (U+0080..U+009F, two bytes in UTF-8) written as "\xNN" (C0, DEL) or "\u00NN" (C1), and a backslash
//! as "\\" so the escapes cannot be forged. Everything else, including other UTF-8 and bytes that are
//! not UTF-8, is copied as it is.

#include <string>
#include <string_view>

namespace rk::detail {

inline std::string printable(std::string_view s) {
  static constexpr char hex[] = "0123456789abcdef";
  std::string out;
  out.reserve(s.size());
  for (std::size_t i = 0; i < s.size(); ++i) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c == '\\') {
      out += "\\\\";
    } else if (c < 0x20 || c == 0x7f) {
      out += "\\x";
      out += hex[c >> 4];
      out += hex[c & 0xf];
    } else if (c == 0xc2 && i + 1 < s.size() && static_cast<unsigned char>(s[i + 1]) >= 0x80 &&
               static_cast<unsigned char>(s[i + 1]) <= 0x9f) {
      const auto code = static_cast<unsigned char>(s[++i]);
      out += "\\u00";
      out += hex[code >> 4];
      out += hex[code & 0xf];
    } else {
      out += static_cast<char>(c);
    }
  }
  return out;
}

} // namespace rk::detail
