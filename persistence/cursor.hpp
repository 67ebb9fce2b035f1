#pragma once
/// The opaque `before` cursor of a conversation list page: the position of
/// the last conversation shown, (updated_at in microseconds, id), as
/// lowercase hex of "<us>:<uuid>" so that clients see one opaque token.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace chat::persistence {

struct list_cursor {
  int64_t updated_us = 0;
  std::string id;
};

std::string encode_cursor(const list_cursor& c);

/// Nothing for anything `encode_cursor` could not have made.
std::optional<list_cursor> decode_cursor(std::string_view text);

} // namespace chat::persistence
