#include "gateway/jwt.hpp"

#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>

#include <cstdlib>
#include <limits>
#include <string>
#include <vector>

#include <jwt.h>

using namespace chat::auth;

namespace {

constexpr int64_t now = 1'795'467'600;
const std::string secret = "s3cret-for-tests-only";

std::string b64url(std::string_view in) {
  static const char* abc = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  std::string out;
  uint32_t acc = 0;
  int bits = 0;
  for (unsigned char c : in) {
    acc = (acc << 8) | c;
    bits += 8;
    while (bits >= 6) {
      bits -= 6;
      out += abc[(acc >> bits) & 63];
    }
  }
  if (bits > 0)
    out += abc[(acc << (6 - bits)) & 63];
  return out;
}

/// A token signed by libjwt with any algorithm and claims (JSON object text).
std::string sign(jwt_alg_t alg, const std::string& key, const std::string& claims) {
  jwt_t* j = nullptr;
  REQUIRE(jwt_new(&j) == 0);
  REQUIRE(jwt_add_grants_json(j, claims.c_str()) == 0);
  REQUIRE(jwt_set_alg(j, alg, reinterpret_cast<const unsigned char*>(key.data()),
                      static_cast<int>(key.size()))
          == 0);
  char* s = jwt_encode_str(j);
  jwt_free(j);
  REQUIRE(s != nullptr);
  std::string token{s};
  std::free(s);
  return token;
}

std::string claims(int64_t exp, const std::string& sub = "alice") {
  return R"({"sub":")" + sub + R"(","exp":)" + std::to_string(exp) + "}";
}

/// header.payload.signature of `token`.
struct parts {
  std::string header, payload, signature;
  explicit parts(const std::string& t) {
    auto a = t.find('.');
    auto b = t.find('.', a + 1);
    header = t.substr(0, a);
    payload = t.substr(a + 1, b - a - 1);
    signature = t.substr(b + 1);
  }
};

token_error error_of(std::string_view token, int64_t at = now) {
  auto r = verify_token(token, secret, at);
  REQUIRE_MESSAGE(std::holds_alternative<token_error>(r), token);
  return std::get<token_error>(r);
}

verified_token ok(std::string_view token, int64_t at = now) {
  auto r = verify_token(token, secret, at);
  if (auto* e = std::get_if<token_error>(&r))
    FAIL("refused: " << to_string(*e));
  return std::get<verified_token>(r);
}

} // namespace

TEST_CASE("jwt: make_token and verify_token round-trip") {
  auto token = make_token("alice", secret, now, 3600);
  auto v = ok(token);
  CHECK(v.user_id == "alice");
  CHECK(v.expires_at == now + 3600);
  CHECK(parts{token}.signature.size() == 43); // 32 bytes, unpadded
}

TEST_CASE("jwt: a token signed elsewhere with HS256 is accepted") {
  // PyJWT 2.6: jwt.encode({"sub":"u1","exp":2000000000}, "secret", "HS256")
  const char* token = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJ1MSIsImV4cCI6MjAwMDAwMDAw"
                      "MH0.tZtrWifTYBtxjvIlfXC06lzMHyf_p6bwL_Z82AUTYtM";
  auto r = verify_token(token, "secret", now);
  REQUIRE(std::holds_alternative<verified_token>(r));
  CHECK(std::get<verified_token>(r).user_id == "u1");
  CHECK(std::get<verified_token>(r).expires_at == 2000000000);
  // Without "typ" in the header too.
  const char* no_typ = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ1MSIsImV4cCI6MjAwMDAwMDAwMH0."
                       "-zRo375qEITFprXU7lFGvCLwXYXj3iFtWAoEad9FxV8";
  CHECK(std::holds_alternative<verified_token>(verify_token(no_typ, "secret", now)));
}

TEST_CASE("jwt: expiry and leeway") {
  auto token = make_token("alice", secret, now, 100); // exp = now + 100
  ok(token, now + 100);                               // at exp
  ok(token, now + 130);                               // within leeway
  ok(token, now + 160);                               // exactly at the leeway
  CHECK(error_of(token, now + 161) == token_error::expired);
  CHECK(error_of(token, now + 100000) == token_error::expired);
  auto past = make_token("alice", secret, now - 7200, 3600);
  CHECK(error_of(past) == token_error::expired);
  // A fractional NumericDate is allowed (RFC 7519) and floored.
  auto frac
      = sign(JWT_ALG_HS256, secret, R"({"sub":"alice","exp":)" + std::to_string(now) + ".75}");
  CHECK(ok(frac).expires_at == now);
}

TEST_CASE("jwt: wrong secret") {
  auto token = make_token("alice", "another-secret", now, 3600);
  CHECK(error_of(token) == token_error::bad_signature);
  CHECK(std::holds_alternative<token_error>(verify_token(token, "", now)));
}

TEST_CASE("jwt: tampered token") {
  auto token = make_token("alice", secret, now, 3600);
  parts p{token};
  auto forged = b64url(claims(now + 3600, "mallory"));
  CHECK(error_of(p.header + "." + forged + "." + p.signature) == token_error::bad_signature);
  auto longer = b64url(claims(now + 999999));
  CHECK(error_of(p.header + "." + longer + "." + p.signature) == token_error::bad_signature);
  std::string sig = p.signature;
  sig[5] = sig[5] == 'A' ? 'B' : 'A';
  CHECK(error_of(p.header + "." + p.payload + "." + sig) == token_error::bad_signature);
  CHECK(error_of(p.header + "." + p.payload + ".") == token_error::bad_signature);
  CHECK(error_of(p.header + "." + p.payload + "." + p.signature + "AA")
        == token_error::bad_signature);
}

TEST_CASE("jwt: alg none is refused") {
  auto payload = b64url(claims(now + 3600));
  auto sig = parts{make_token("alice", secret, now, 3600)}.signature;
  for (std::string header :
       {R"({"alg":"none","typ":"JWT"})", R"({"alg":"none"})", R"({"alg":"None","typ":"JWT"})",
        R"({"alg":"NONE"})", R"({"alg":"nOnE"})"}) {
    CAPTURE(header);
    auto h = b64url(header);
    CHECK(error_of(h + "." + payload + ".") == token_error::wrong_algorithm);
    CHECK(error_of(h + "." + payload + "." + sig) == token_error::wrong_algorithm);
  }
}

TEST_CASE("jwt: other algorithms are refused") {
  CHECK(error_of(sign(JWT_ALG_HS512, secret, claims(now + 3600))) == token_error::wrong_algorithm);
  CHECK(error_of(sign(JWT_ALG_HS384, secret, claims(now + 3600))) == token_error::wrong_algorithm);
  // RS256 header over an HMAC signature (algorithm confusion).
  parts p{make_token("alice", secret, now, 3600)};
  auto rs = b64url(R"({"alg":"RS256","typ":"JWT"})");
  CHECK(error_of(rs + "." + p.payload + "." + p.signature) == token_error::wrong_algorithm);
  auto lower = b64url(R"({"alg":"hs256","typ":"JWT"})");
  CHECK(error_of(lower + "." + p.payload + "." + p.signature) == token_error::wrong_algorithm);
}

TEST_CASE("jwt: claims: sub") {
  CHECK(error_of(sign(JWT_ALG_HS256, secret, R"({"exp":)" + std::to_string(now + 60) + "}"))
        == token_error::bad_claims);
  CHECK(
      error_of(sign(JWT_ALG_HS256, secret, R"({"sub":42,"exp":)" + std::to_string(now + 60) + "}"))
      == token_error::bad_claims);
  CHECK(error_of(
            sign(JWT_ALG_HS256, secret, R"({"sub":null,"exp":)" + std::to_string(now + 60) + "}"))
        == token_error::bad_claims);
  CHECK(error_of(sign(JWT_ALG_HS256, secret, claims(now + 60, ""))) == token_error::bad_claims);
  std::string max(128, 'u');
  CHECK(ok(sign(JWT_ALG_HS256, secret, claims(now + 60, max))).user_id == max);
  CHECK(error_of(sign(JWT_ALG_HS256, secret, claims(now + 60, max + "u")))
        == token_error::bad_claims);
  // Characters, not bytes: 128 x "é" (256 bytes) is fine.
  std::string accents;
  for (int i = 0; i < 128; ++i)
    accents += "\xc3\xa9";
  CHECK(ok(sign(JWT_ALG_HS256, secret, claims(now + 60, accents))).user_id == accents);
  CHECK(error_of(make_token("", secret, now, 60)) == token_error::bad_claims);
}

TEST_CASE("jwt: claims: exp") {
  CHECK(error_of(sign(JWT_ALG_HS256, secret, R"({"sub":"alice"})")) == token_error::bad_claims);
  for (std::string exp : std::vector<std::string>{"\"" + std::to_string(now + 60) + "\"", "null",
                                                  "true", "[1]", "{}"}) {
    CAPTURE(exp);
    CHECK(error_of(sign(JWT_ALG_HS256, secret, R"({"sub":"alice","exp":)" + exp + "}"))
          == token_error::bad_claims);
  }
  // Claims are only checked once the signature holds.
  CHECK(error_of(sign(JWT_ALG_HS256, "other", R"({"sub":"alice"})")) == token_error::bad_signature);
}

TEST_CASE("jwt: garbage") {
  auto payload = b64url(claims(now + 3600));
  auto hs = b64url(R"({"alg":"HS256","typ":"JWT"})");
  for (std::string t :
       std::vector<std::string>{"abc",
                                "a.b",
                                "a.b.c",
                                "a.b.c.d",
                                ".",
                                "..",
                                "...",
                                "....",
                                "e30.e30.",
                                "e30.e30.e30",
                                "!!.!!.!!",
                                "Bearer abc.def.ghi",
                                " " + hs + "." + payload + ".x",
                                hs + "." + payload + ".x.y",
                                hs + "==." + payload + ".abc",
                                b64url("not json") + "." + payload + ".",
                                b64url("[]") + "." + payload + ".",
                                b64url(R"({"alg":256})") + "." + payload + ".",
                                b64url(R"({"typ":"JWT"})") + "." + payload + ".",
                                hs + "." + b64url("not json") + ".abc",
                                hs + "." + b64url("[1]") + ".abc",
                                hs + ".." + "abc",
                                "." + payload + ".abc",
                                b64url("{\"alg\":\"HS256\xff\"}") + "." + payload + ".abc",
                                std::string("\0\0\0", 3),
                                "\xff\xfe.\x80.\x01",
                                hs + "." + payload + "." + std::string(9000, 'A')}) {
    CAPTURE(t);
    CHECK(error_of(t) == token_error::malformed);
  }
}

TEST_CASE("jwt: empty token") {
  CHECK(error_of("") == token_error::missing);
}

TEST_CASE("jwt: make_token refuses an empty secret") {
  CHECK_THROWS_AS(make_token("alice", "", now, 60), std::invalid_argument);
}

// Found by tests/fuzz/jwt_fuzz.cpp (input kept in tests/fuzz/corpus/jwt_fuzz/
// crash-432897ae4d7dafa7804f02eda84d34a183eb8461): libjwt takes the user id as
// a C string, so "of\x10\0...alice" was signed as "of\x10", a token for
// another user.
TEST_CASE("jwt: make_token refuses a user id with a NUL byte") {
  using namespace std::string_literals;
  CHECK_THROWS_AS(make_token("alice\0bob"s, secret, now, 60), std::invalid_argument);
  CHECK_THROWS_AS(make_token("\0"s, secret, now, 60), std::invalid_argument);
  CHECK_THROWS_AS(make_token("alice\0"s, secret, now, 60), std::invalid_argument);
  CHECK(ok(make_token("alice", secret, now, 60)).user_id == "alice");
}

TEST_CASE("jwt: make_token refuses what no token can say") {
  // Invalid UTF-8 (JSON text cannot hold it).
  CHECK_THROWS_AS(make_token("al\xffice", secret, now, 60), std::invalid_argument);
  // An expiry past int64 (was signed overflow).
  CHECK_THROWS_AS(make_token("alice", secret, now, std::numeric_limits<int64_t>::max()),
                  std::invalid_argument);
  CHECK_THROWS_AS(make_token("alice", secret, -now, std::numeric_limits<int64_t>::min()),
                  std::invalid_argument);
}

TEST_CASE("jwt: to_string") {
  CHECK(std::string{to_string(token_error::missing)} == "missing");
  CHECK(std::string{to_string(token_error::malformed)} == "malformed");
  CHECK(std::string{to_string(token_error::bad_signature)} == "bad_signature");
  CHECK(std::string{to_string(token_error::wrong_algorithm)} == "wrong_algorithm");
  CHECK(std::string{to_string(token_error::expired)} == "expired");
  CHECK(std::string{to_string(token_error::bad_claims)} == "bad_claims");
}

TEST_CASE("jwt: nbf, with the same leeway as exp") {
  auto with_nbf = [](const std::string& nbf) {
    return sign(JWT_ALG_HS256, secret,
                R"({"sub":"alice","exp":)" + std::to_string(now + 3600) + R"(,"nbf":)" + nbf + "}");
  };
  ok(with_nbf(std::to_string(now - 10)));
  ok(with_nbf(std::to_string(now + 60))); // within the leeway
  CHECK(error_of(with_nbf(std::to_string(now + 61))) == token_error::not_yet_valid);
  CHECK(error_of(with_nbf(std::to_string(now + 100000))) == token_error::not_yet_valid);
  CHECK(error_of(with_nbf("\"soon\"")) == token_error::bad_claims);
  CHECK(error_of(with_nbf("1e300")) == token_error::bad_claims);
  CHECK(std::string{to_string(token_error::not_yet_valid)} == "not_yet_valid");
}

TEST_CASE("jwt: a token is accepted until exp plus the leeway, far exp never overflows") {
  auto v = ok(make_token("alice", secret, now, 100));
  CHECK(v.accepted_until() == now + 100 + leeway_seconds);
  auto far = ok(sign(JWT_ALG_HS256, secret, R"({"sub":"alice","exp":9223372036854775807})"));
  CHECK(far.accepted_until() == std::numeric_limits<int64_t>::max());
  auto huge = sign(JWT_ALG_HS256, secret, R"({"sub":"alice","exp":1e300})");
  CHECK(error_of(huge) == token_error::bad_claims);
}
