#pragma once
/// Structured logs: one JSON object a line on stderr, with `ts`, `level`,
/// `event`, `node` and the fields given (OPERATIONS.md "Logs and metrics").
///
///   log::info("message_acked", {{"user", u}, {"conversationId", c}, {"seq", 3}});
///
/// Never pass secrets (tokens, keys, passwords) as fields.

#include <cstdint>
#include <initializer_list>
#include <string>
#include <string_view>

namespace chat::log {

enum class level { debug = 0, info = 1, warn = 2, error = 3 };

/// One `key: value` of a log line.
struct field {
  field(std::string_view k, std::string_view v) : key(k), str(v) {}
  field(std::string_view k, const std::string& v) : key(k), str(v) {}
  field(std::string_view k, const char* v) : key(k), str(v) {}
  field(std::string_view k, int64_t v) : key(k), num(v), is_num(true) {}
  field(std::string_view k, int v) : key(k), num(v), is_num(true) {}
  field(std::string_view k, uint64_t v) : key(k), num(static_cast<int64_t>(v)), is_num(true) {}
  field(std::string_view k, double v) : key(k), dbl(v), is_dbl(true) {}
  field(std::string_view k, bool v) : key(k), boolean(v), is_bool(true) {}

  std::string_view key;
  std::string_view str;
  int64_t num = 0;
  double dbl = 0;
  bool boolean = false;
  bool is_num = false;
  bool is_dbl = false;
  bool is_bool = false;
};

using fields = std::initializer_list<field>;

/// Parses "debug", "info", "warn", "error". False on anything else.
bool parse_level(std::string_view text, level& out);
void set_level(level lvl);
void set_node(std::string node);
bool enabled(level lvl);

void write(level lvl, std::string_view event, fields fs);

inline void debug(std::string_view event, fields fs = {}) {
  if (enabled(level::debug))
    write(level::debug, event, fs);
}
inline void info(std::string_view event, fields fs = {}) {
  if (enabled(level::info))
    write(level::info, event, fs);
}
inline void warn(std::string_view event, fields fs = {}) {
  if (enabled(level::warn))
    write(level::warn, event, fs);
}
inline void error(std::string_view event, fields fs = {}) {
  write(level::error, event, fs);
}

} // namespace chat::log
