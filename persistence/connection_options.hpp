#pragma once

#include <chrono>

namespace chat::persistence {

/// How every connection of the store is opened: limits that make a dead or
/// stuck database noticed within seconds instead of minutes.
struct connection_options {
  /// libpq connect_timeout (whole seconds; libpq's resolution).
  std::chrono::seconds connect_timeout{5};
  /// statement_timeout of every statement (0: none). A statement stuck
  /// behind a lock fails after this, rolled back: an outcome we see.
  std::chrono::milliseconds statement_timeout{10000};
  /// After a failed connect, further attempts fail at once for this long,
  /// so a backlog of requests does not wait connect_timeout each.
  std::chrono::milliseconds reconnect_pause{500};
};

} // namespace chat::persistence
