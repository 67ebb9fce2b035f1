#include "gateway/static_files.hpp"

namespace chat::gateway {
namespace {

struct asset {
  std::string_view path;
  static_file file;
};

// Generated from web/*.{html,js,css,svg} by web/CMakeLists.txt.
constexpr asset kAssets[] = {
#include "web_assets.inc"
};

} // namespace

const static_file* find_static(std::string_view path) {
  if (path == "/")
    path = "/index.html";
  for (const auto& a : kAssets)
    if (a.path == path)
      return &a.file;
  return nullptr;
}

} // namespace chat::gateway
