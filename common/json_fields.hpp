#pragma once
/// Lenient reads of members of a JSON object, for clients of the protocol
/// (the integration test harness, the load generator): a missing member or
/// one of another type reads as "" or -1 instead of failing.

#include <cstdint>
#include <string>

#include <rapidjson/document.h>

namespace chat::json {

/// A string member of a JSON object ("" when missing).
inline std::string str(const rapidjson::Value& v, const char* key) {
  auto m = v.FindMember(key);
  return m != v.MemberEnd() && m->value.IsString() ? m->value.GetString() : "";
}

/// An integer member of a JSON object (-1 when missing).
inline int64_t num(const rapidjson::Value& v, const char* key) {
  auto m = v.FindMember(key);
  return m != v.MemberEnd() && m->value.IsInt64() ? m->value.GetInt64() : -1;
}

} // namespace chat::json
