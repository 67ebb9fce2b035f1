#include "gateway/static_files.hpp"

// Placeholder until web/ is embedded (issue 4): no files.
namespace chat::gateway {

const static_file* find_static(std::string_view) {
  return nullptr;
}

} // namespace chat::gateway
