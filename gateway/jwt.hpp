#pragma once
/// JWT (HS256) checks for the WebSocket upgrade and the REST endpoints, and
/// token minting for `chatd token` and tests. Backed by libjwt; see
/// PROTOCOL.md "Authentication".

#include <cstdint>
#include <string>
#include <string_view>
#include <variant>

namespace chat::auth {

/// The identity a valid token carries.
struct verified_token {
  std::string user_id; ///< the `sub` claim
  int64_t expires_at;  ///< the `exp` claim, seconds since the Unix epoch

  /// The last second the token is accepted: `exp` plus the leeway (what a
  /// connection holding it must be closed after, so that a token accepted
  /// at the upgrade is not refused the moment after). Never overflows.
  int64_t accepted_until() const;
};

/// Why a token was refused (each answered 401 at the upgrade).
enum class token_error {
  missing,         ///< empty
  malformed,       ///< not three base64url parts with JSON header and payload
  bad_signature,   ///< HS256 signature does not match the secret
  wrong_algorithm, ///< header `alg` is not HS256 (none, HS512, RS256, ...)
  expired,         ///< `exp` more than `leeway_seconds` in the past
  not_yet_valid,   ///< `nbf` more than `leeway_seconds` in the future
  bad_claims,      ///< `exp` missing or not a number, `nbf` not a number,
                   ///< `sub` not 1..128 chars
};

/// A short name for logs ("expired", ...).
const char* to_string(token_error e);

/// Clock skew tolerated on `exp`.
constexpr int64_t leeway_seconds = 60;

/// Longest token accepted; anything longer is `malformed` (never parsed).
constexpr size_t max_token_bytes = 8192;

/// Verifies signature (HS256 only), `exp` (required, `leeway_seconds` of
/// leeway), `nbf` (optional, the same leeway) and `sub` (1..128
/// characters).
std::variant<verified_token, token_error>
verify_token(std::string_view token, std::string_view secret, int64_t now_seconds);

/// Creates a signed HS256 token with `sub` = user_id, `iat` = now and
/// `exp` = now + ttl. Throws std::invalid_argument on an empty secret, a
/// user id with a NUL byte (libjwt would cut it there) or invalid UTF-8, or
/// an `exp` past int64.
std::string make_token(std::string_view user_id, std::string_view secret, int64_t now_seconds,
                       int64_t ttl_seconds);

} // namespace chat::auth
