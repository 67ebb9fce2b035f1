#pragma once
/// Server-side identifiers and clocks.

#include <cstdint>
#include <string>
#include <string_view>

namespace chat {

/// A random version-4 UUID in canonical lowercase text form. Used for
/// conversation and message ids (opaque to clients).
std::string new_uuid();

/// Whether `text` has the canonical 8-4-4-4-12 hex shape of a UUID. Ids
/// from clients that do not are answered `not_found` without a database
/// round trip.
bool looks_like_uuid(std::string_view text);

/// Milliseconds since the Unix epoch, from the system clock.
int64_t now_ms();

} // namespace chat
