#pragma once
/// The output limits of models we know, to set a request's `max_tokens`.
/// Pure.

#include <optional>
#include <string_view>

namespace chat::ai {

/// The most output tokens `model` may generate in one reply, when it is a
/// known model: its name or its name with a suffix after '-' (a dated
/// snapshot such as "gpt-4o-2024-08-06"); the longest known name wins.
/// nullopt for unknown models.
std::optional<int> max_output_tokens(std::string_view model);

} // namespace chat::ai
