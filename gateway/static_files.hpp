#pragma once
/// The browser client's files (web/), embedded into chatd at build time so
/// that it serves its page with no source tree and no network.

#include <string_view>

namespace chat::gateway {

struct static_file {
  std::string_view content_type;
  std::string_view body;
};

/// The embedded file for a request path ("/" is index.html), or nullptr.
const static_file* find_static(std::string_view path);

} // namespace chat::gateway
