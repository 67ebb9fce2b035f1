#include "persistence/cursor.hpp"

#include <charconv>

#include "common/ids.hpp"

namespace chat::persistence {

namespace {

constexpr char hex_digits[] = "0123456789abcdef";

int hex_value(char c) {
  if (c >= '0' && c <= '9')
    return c - '0';
  if (c >= 'a' && c <= 'f')
    return c - 'a' + 10;
  return -1;
}

} // namespace

std::string encode_cursor(const list_cursor& c) {
  auto plain = std::to_string(c.updated_us) + ':' + c.id;
  std::string out;
  out.reserve(plain.size() * 2);
  for (unsigned char ch : plain) {
    out += hex_digits[ch >> 4];
    out += hex_digits[ch & 0xf];
  }
  return out;
}

std::optional<list_cursor> decode_cursor(std::string_view text) {
  // 20 digits of int64 + ':' + 36 of a UUID, hex-encoded.
  if (text.empty() || text.size() % 2 != 0 || text.size() > 2 * 64)
    return std::nullopt;
  std::string plain;
  for (size_t i = 0; i < text.size(); i += 2) {
    auto hi = hex_value(text[i]);
    auto lo = hex_value(text[i + 1]);
    if (hi < 0 || lo < 0)
      return std::nullopt;
    plain += static_cast<char>(hi * 16 + lo);
  }
  auto colon = plain.find(':');
  if (colon == std::string::npos || colon == 0)
    return std::nullopt;
  list_cursor c;
  auto first = plain.data();
  auto last = plain.data() + colon;
  auto [ptr, ec] = std::from_chars(first, last, c.updated_us);
  if (ec != std::errc{} || ptr != last)
    return std::nullopt;
  c.id = plain.substr(colon + 1);
  if (!looks_like_uuid(c.id))
    return std::nullopt;
  return c;
}

} // namespace chat::persistence
