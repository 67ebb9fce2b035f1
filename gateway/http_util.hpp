#pragma once
/// Pure helpers for HTTP requests: splitting a target into path and query,
/// reading query parameters, finding the token. No Beast here, so they are
/// unit-tested without sockets.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace chat::gateway {

struct target {
  std::string path;
  std::vector<std::pair<std::string, std::string>> query; // percent-decoded

  /// The first value of `name`, if present.
  std::optional<std::string> param(std::string_view name) const;
};

/// Splits "/a/b?x=1&y=%20" into path and decoded query parameters.
target parse_target(std::string_view raw);

/// Decodes %XX and '+' (as space). Malformed escapes are kept verbatim.
std::string percent_decode(std::string_view in);

/// Parses an integer query parameter in [min, max]; nullopt when absent.
/// `ok` is false when present but not a whole number in range.
std::optional<int64_t> int_param(const target& t, std::string_view name, int64_t min, int64_t max,
                                 bool& ok);

/// The token from "Authorization: Bearer X" or, failing that, `?token=X`.
std::string find_token(std::string_view authorization_header, const target& t);

/// Splits "/api/v1/conversations/ID/messages" into its segments.
std::vector<std::string_view> split_path(std::string_view path);

} // namespace chat::gateway
