#pragma once
/// A small reader over a fuzzer's input: the first bytes choose a mode, split
/// points or limits, the rest is the text under test. Shared by the targets
/// in tests/fuzz/ (header-only, no dependencies).

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <string_view>

namespace chat::fuzz {

class input {
public:
  input(const uint8_t* data, size_t size) : rest_(reinterpret_cast<const char*>(data), size) {}

  /// The next byte (0 when none is left).
  uint8_t byte() {
    if (rest_.empty())
      return 0;
    auto b = static_cast<uint8_t>(rest_.front());
    rest_.remove_prefix(1);
    return b;
  }

  /// A 16-bit number from the next two bytes.
  uint16_t u16() {
    uint16_t hi = byte();
    return static_cast<uint16_t>(hi << 8 | byte());
  }

  /// Up to the first `sep` (dropped), or everything left.
  std::string_view until(char sep) {
    auto at = rest_.find(sep);
    auto part = rest_.substr(0, at);
    rest_ = at == std::string_view::npos ? std::string_view{} : rest_.substr(at + 1);
    return part;
  }

  std::string_view rest() const {
    return rest_;
  }

private:
  std::string_view rest_;
};

/// Stops the run with a crash that libFuzzer reports (and keeps the input):
/// a property of the code under test did not hold.
#define CHAT_FUZZ_CHECK(cond)                                                                      \
  do {                                                                                             \
    if (!(cond)) {                                                                                 \
      std::fprintf(stderr, "fuzz check failed: %s (%s:%d)\n", #cond, __FILE__, __LINE__);          \
      __builtin_trap();                                                                            \
    }                                                                                              \
  } while (0)

} // namespace chat::fuzz
