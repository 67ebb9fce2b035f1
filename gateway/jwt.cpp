#include "gateway/jwt.hpp"

#include <cmath>
#include <cstdlib>
#include <limits>
#include <memory>
#include <optional>
#include <stdexcept>

#include <jwt.h>
#include <rapidjson/document.h>

namespace chat::auth {

namespace {

struct jwt_deleter {
  void operator()(jwt_t* j) const {
    jwt_free(j);
  }
};
using jwt_ptr = std::unique_ptr<jwt_t, jwt_deleter>;

// libjwt hands out malloc'ed strings.
struct free_deleter {
  void operator()(char* p) const {
    std::free(p);
  }
};
using c_string = std::unique_ptr<char, free_deleter>;

int b64url_value(char c) {
  if (c >= 'A' && c <= 'Z')
    return c - 'A';
  if (c >= 'a' && c <= 'z')
    return c - 'a' + 26;
  if (c >= '0' && c <= '9')
    return c - '0' + 52;
  if (c == '-')
    return 62;
  if (c == '_')
    return 63;
  return -1;
}

/// Unpadded base64url (RFC 7515 section 2). False on any other character or
/// an impossible length.
bool b64url_decode(std::string_view in, std::string& out) {
  if (in.size() % 4 == 1)
    return false;
  out.clear();
  uint32_t acc = 0;
  int bits = 0;
  for (char c : in) {
    int v = b64url_value(c);
    if (v < 0)
      return false;
    acc = (acc << 6) | static_cast<uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(static_cast<char>((acc >> bits) & 0xff));
    }
  }
  return true;
}

/// Base64url-decodes `part` and parses it as a JSON object into `doc`.
bool decode_json_part(std::string_view part, rapidjson::Document& doc) {
  std::string text;
  if (part.empty() || !b64url_decode(part, text))
    return false;
  doc.Parse<rapidjson::kParseValidateEncodingFlag | rapidjson::kParseIterativeFlag>(text.data(),
                                                                                    text.size());
  return !doc.HasParseError() && doc.IsObject();
}

/// Number of UTF-8 code points (continuation bytes not counted).
size_t utf8_length(std::string_view s) {
  size_t n = 0;
  for (unsigned char c : s)
    n += (c & 0xC0) != 0x80;
  return n;
}

} // namespace

const char* to_string(token_error e) {
  switch (e) {
    case token_error::missing:
      return "missing";
    case token_error::malformed:
      return "malformed";
    case token_error::bad_signature:
      return "bad_signature";
    case token_error::wrong_algorithm:
      return "wrong_algorithm";
    case token_error::expired:
      return "expired";
    case token_error::not_yet_valid:
      return "not_yet_valid";
    case token_error::bad_claims:
      return "bad_claims";
  }
  return "malformed";
}

namespace {

/// A NumericDate claim (RFC 7519 section 2): outer empty when present but
/// not a number; inner empty when absent. jwt_get_grant_int cannot tell a
/// missing or string claim from 0 / -1, so its JSON text is read and its
/// type checked here. A fraction is floored; values past int64 are refused.
std::optional<std::optional<int64_t>> numeric_date(jwt_t* jwt, const char* name) {
  c_string json{jwt_get_grants_json(jwt, name)};
  if (!json)
    return std::optional<int64_t>{};
  rapidjson::Document doc;
  doc.Parse(json.get());
  if (doc.HasParseError() || !doc.IsNumber())
    return std::nullopt;
  if (doc.IsInt64())
    return std::optional<int64_t>{doc.GetInt64()};
  double d = doc.GetDouble();
  if (!std::isfinite(d) || d < -9e18 || d > 9e18)
    return std::nullopt;
  return std::optional<int64_t>{static_cast<int64_t>(std::floor(d))};
}

} // namespace

std::variant<verified_token, token_error>
verify_token(std::string_view token, std::string_view secret, int64_t now_seconds) {
  if (token.empty())
    return token_error::missing;
  if (token.size() > max_token_bytes)
    return token_error::malformed;

  // Our own look at the header first: libjwt reports no algorithm for a token
  // it refused, and we want "wrong_algorithm", not "bad_signature", for
  // alg none / HS512 / RS256.
  auto dot1 = token.find('.');
  auto dot2 = dot1 == token.npos ? token.npos : token.find('.', dot1 + 1);
  if (dot2 == token.npos || token.find('.', dot2 + 1) != token.npos)
    return token_error::malformed;
  rapidjson::Document header, payload;
  if (!decode_json_part(token.substr(0, dot1), header)
      || !decode_json_part(token.substr(dot1 + 1, dot2 - dot1 - 1), payload))
    return token_error::malformed;
  auto alg = header.FindMember("alg");
  if (alg == header.MemberEnd() || !alg->value.IsString())
    return token_error::malformed;
  if (std::string_view{alg->value.GetString(), alg->value.GetStringLength()} != "HS256")
    return token_error::wrong_algorithm;
  if (secret.empty() || dot2 + 1 == token.size())
    return token_error::bad_signature;

  // libjwt verifies the HMAC (compare made constant-time by Debian's fix for
  // CVE-2024-25189 in 1.10.2-1+deb12u1) and parses the claims.
  std::string text{token};
  jwt_t* raw = nullptr;
  int rc = jwt_decode(&raw, text.c_str(), reinterpret_cast<const unsigned char*>(secret.data()),
                      static_cast<int>(secret.size()));
  jwt_ptr jwt{raw};
  if (rc != 0 || !jwt)
    return token_error::bad_signature;
  // Belt and braces: libjwt's own reading of the header must agree.
  if (jwt_get_alg(jwt.get()) != JWT_ALG_HS256)
    return token_error::wrong_algorithm;

  auto exp = numeric_date(jwt.get(), "exp");
  if (!exp || !*exp)
    return token_error::bad_claims;
  auto nbf = numeric_date(jwt.get(), "nbf");
  if (!nbf)
    return token_error::bad_claims;

  const char* sub = jwt_get_grant(jwt.get(), "sub"); // null unless a string
  if (!sub)
    return token_error::bad_claims;
  std::string_view user{sub};
  auto chars = utf8_length(user);
  if (chars < 1 || chars > 128)
    return token_error::bad_claims;

  if (now_seconds - leeway_seconds > **exp)
    return token_error::expired;
  if (*nbf && now_seconds + leeway_seconds < **nbf)
    return token_error::not_yet_valid;
  return verified_token{std::string{user}, **exp};
}

int64_t verified_token::accepted_until() const {
  return expires_at > std::numeric_limits<int64_t>::max() - leeway_seconds
             ? std::numeric_limits<int64_t>::max()
             : expires_at + leeway_seconds;
}

std::string make_token(std::string_view user_id, std::string_view secret, int64_t now_seconds,
                       int64_t ttl_seconds) {
  if (secret.empty())
    throw std::invalid_argument("make_token: empty secret");
  // libjwt takes C strings: "alice\0x" would be signed as "alice", a token
  // for another user than the one asked for.
  if (user_id.find('\0') != std::string_view::npos)
    throw std::invalid_argument("make_token: user id contains a NUL byte");
  int64_t expires_at = 0;
  if (__builtin_add_overflow(now_seconds, ttl_seconds, &expires_at))
    throw std::invalid_argument("make_token: expiry out of range");
  jwt_t* raw = nullptr;
  if (jwt_new(&raw) != 0)
    throw std::bad_alloc();
  jwt_ptr jwt{raw};
  std::string sub{user_id};
  if (jwt_set_alg(jwt.get(), JWT_ALG_HS256, reinterpret_cast<const unsigned char*>(secret.data()),
                  static_cast<int>(secret.size()))
          != 0
      || jwt_add_grant(jwt.get(), "sub", sub.c_str()) != 0
      || jwt_add_grant_int(jwt.get(), "iat", now_seconds) != 0
      || jwt_add_grant_int(jwt.get(), "exp", expires_at) != 0)
    throw std::invalid_argument("make_token: cannot build token");
  c_string token{jwt_encode_str(jwt.get())};
  if (!token)
    throw std::runtime_error("make_token: cannot encode token");
  return token.get();
}

} // namespace chat::auth
