#pragma once
/// chatd's settings (OPERATIONS.md): each an environment variable, and the
/// same as a flag (`CHAT_LISTEN` is `--listen`) that overrides it.

#include <map>
#include <string>
#include <vector>

namespace chat::gateway {

struct setting_spec {
  const char* env;
  const char* flag;     // without the leading "--"
  const char* fallback; // default; nullptr: required (for serving)
  const char* help;
};

/// Every setting chatd knows, in the order `--help` lists them.
const std::vector<setting_spec>& setting_specs();

class settings {
public:
  /// Reads the environment, then flags from `args` (after the subcommand).
  /// Flags may be `--name value` or `--name=value`. Unknown flags and
  /// positional arguments are left in `rest`.
  static settings load(const std::vector<std::string>& args, std::vector<std::string>& rest);

  /// The value of a setting by env name ("" when unset and no default).
  const std::string& get(const std::string& env) const;
  bool has(const std::string& env) const;

private:
  std::map<std::string, std::string> values_;
};

/// "--help" text.
std::string usage();

} // namespace chat::gateway
