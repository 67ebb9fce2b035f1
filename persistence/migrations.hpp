#pragma once
/// The schema migrations, embedded at build time from migrations/*.sql.

#include <vector>

namespace chat::persistence {

struct migration {
  int version;      ///< NNN of NNN_name.sql
  const char* name; ///< the file name
  const char* sql;  ///< its whole text, run as one transaction
};

/// All migrations, in version order (generated migrations_embedded.cpp).
const std::vector<migration>& migrations();

} // namespace chat::persistence
