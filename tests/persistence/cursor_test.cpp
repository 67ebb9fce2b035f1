#include "persistence/cursor.hpp"

#include <doctest/doctest.h>

using chat::persistence::decode_cursor;
using chat::persistence::encode_cursor;
using chat::persistence::list_cursor;

namespace {

std::string hex(const std::string& plain) {
  static constexpr char digits[] = "0123456789abcdef";
  std::string out;
  for (unsigned char c : plain) {
    out += digits[c >> 4];
    out += digits[c & 0xf];
  }
  return out;
}

} // namespace

TEST_CASE("persistence: a list cursor survives encoding") {
  list_cursor c{1732529781123456, "0b6a2f4e-7c1d-4f5e-9a3b-2c4d6e8f0a1b"};
  auto text = encode_cursor(c);
  CHECK(text.find(':') == std::string::npos); // opaque, URL-safe
  auto back = decode_cursor(text);
  REQUIRE(back);
  CHECK(back->updated_us == c.updated_us);
  CHECK(back->id == c.id);
}

TEST_CASE("persistence: a garbage list cursor is refused, not misread") {
  const char* uuid = "0b6a2f4e-7c1d-4f5e-9a3b-2c4d6e8f0a1b";
  CHECK_FALSE(decode_cursor(""));
  CHECK_FALSE(decode_cursor("a"));
  CHECK_FALSE(decode_cursor("zz"));
  CHECK_FALSE(decode_cursor("ABCD"));
  CHECK_FALSE(decode_cursor(hex("123")));
  CHECK_FALSE(decode_cursor(hex(":") + hex(uuid)));
  CHECK_FALSE(decode_cursor(hex("12x:") + hex(uuid)));
  CHECK_FALSE(decode_cursor(hex("99999999999999999999999:") + hex(uuid)));
  CHECK_FALSE(decode_cursor(hex("12:not-a-uuid")));
  CHECK_FALSE(decode_cursor(hex("12:") + hex(uuid) + "00"));
  CHECK_FALSE(decode_cursor(std::string(10000, 'a')));
  CHECK(decode_cursor(hex("-5:") + hex(uuid))); // well-formed, just empty
}
