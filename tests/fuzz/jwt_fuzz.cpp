/// libFuzzer target: the JWT check (auth::verify_token) and token minting
/// (auth::make_token). The first input byte chooses a mode:
///   0: the rest is a token as a client sends it (mostly refused before
///      the signature: base64url, JSON header and payload, alg);
///   1: the rest is "header JSON \n payload JSON", base64url-encoded and
///      signed here with the right secret (HS256), so that the claims
///      checks behind the signature (exp, nbf, sub) are reached;
///   2: the rest is "ttl(2 bytes) user id": make_token, then verify_token
///      of what it made;
///   3: the same with a ttl of 8 bytes (any int64).
/// Properties: no crash, leak or undefined behaviour; an accepted token's
/// user is 1..128 characters and it was not expired; a minted token is
/// accepted for exactly the user it was made for (or, for a user id that
/// verify_token refuses, refused as bad_claims, or as malformed when that
/// id made it longer than max_token_bytes), or minting refuses.

#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <variant>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "gateway/jwt.hpp"
#include "tests/fuzz/fuzz_input.hpp"

using namespace chat::auth;

namespace {

constexpr int64_t now = 1'795'467'600;
constexpr std::string_view secret = "fuzz-secret";

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

std::string sign_hs256(std::string_view header, std::string_view payload) {
  auto signing_input = b64url(header) + "." + b64url(payload);
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int mac_len = 0;
  HMAC(EVP_sha256(), secret.data(), static_cast<int>(secret.size()),
       reinterpret_cast<const unsigned char*>(signing_input.data()), signing_input.size(), mac,
       &mac_len);
  return signing_input + "."
         + b64url({reinterpret_cast<const char*>(mac), static_cast<size_t>(mac_len)});
}

size_t utf8_chars(std::string_view s) {
  size_t n = 0;
  for (unsigned char c : s)
    n += (c & 0xC0) != 0x80;
  return n;
}

void check_accepted(const std::variant<verified_token, token_error>& r) {
  if (auto ok = std::get_if<verified_token>(&r)) {
    auto chars = utf8_chars(ok->user_id);
    CHAT_FUZZ_CHECK(chars >= 1 && chars <= 128);
    CHAT_FUZZ_CHECK(now - leeway_seconds <= ok->expires_at);
    CHAT_FUZZ_CHECK(ok->accepted_until() >= ok->expires_at);
  } else {
    (void)to_string(std::get<token_error>(r));
  }
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  chat::fuzz::input in{data, size};
  switch (in.byte() % 4) {
    case 0:
      check_accepted(verify_token(in.rest(), secret, now));
      break;
    case 1: {
      auto header = in.until('\n');
      auto token = sign_hs256(header, in.rest());
      check_accepted(verify_token(token, secret, now));
      break;
    }
    default: {
      int64_t ttl = static_cast<int16_t>(in.u16()); // negative too: expired tokens
      if (data[0] % 4 == 3) {
        uint64_t wide = ttl & 0xFFFF;
        for (int i = 0; i < 6; ++i)
          wide = wide << 8 | in.byte();
        ttl = static_cast<int64_t>(wide);
      }
      std::string user{in.rest()};
      std::string token;
      try {
        token = make_token(user, secret, now, ttl);
      } catch (const std::invalid_argument&) {
        return 0; // refused to mint
      }
      int64_t exp = 0;
      CHAT_FUZZ_CHECK(!__builtin_add_overflow(now, ttl, &exp)); // else minting must refuse
      auto r = verify_token(token, secret, now);
      check_accepted(r);
      auto chars = utf8_chars(user);
      if (chars < 1 || chars > 128) {
        // Refused: for its claims, or unread when the user id made the
        // token longer than max_token_bytes (not possible for a valid id:
        // 128 characters escaped take at most 768 bytes).
        auto err = std::get_if<token_error>(&r);
        CHAT_FUZZ_CHECK(err);
        CHAT_FUZZ_CHECK(
            *err
            == (token.size() > max_token_bytes ? token_error::malformed : token_error::bad_claims));
      } else if (ttl >= -leeway_seconds) {
        auto ok = std::get_if<verified_token>(&r);
        CHAT_FUZZ_CHECK(ok != nullptr);
        CHAT_FUZZ_CHECK(ok->user_id == user);
        CHAT_FUZZ_CHECK(ok->expires_at == now + ttl);
      } else {
        CHAT_FUZZ_CHECK(std::get_if<token_error>(&r)
                        && std::get<token_error>(r) == token_error::expired);
      }
      break;
    }
  }
  return 0;
}
