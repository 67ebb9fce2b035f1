#include "gateway/http_util.hpp"

#include <cctype>
#include <charconv>

namespace chat::gateway {

std::optional<std::string> target::param(std::string_view name) const {
  for (auto& kv : query)
    if (kv.first == name)
      return kv.second;
  return std::nullopt;
}

namespace {

int hex_value(char c) {
  if (c >= '0' && c <= '9')
    return c - '0';
  if (c >= 'a' && c <= 'f')
    return c - 'a' + 10;
  if (c >= 'A' && c <= 'F')
    return c - 'A' + 10;
  return -1;
}

} // namespace

std::string percent_decode(std::string_view in) {
  std::string out;
  out.reserve(in.size());
  for (size_t i = 0; i < in.size(); ++i) {
    char c = in[i];
    if (c == '+') {
      out += ' ';
    } else if (c == '%' && i + 2 < in.size() && hex_value(in[i + 1]) >= 0
               && hex_value(in[i + 2]) >= 0) {
      out += static_cast<char>(hex_value(in[i + 1]) * 16 + hex_value(in[i + 2]));
      i += 2;
    } else {
      out += c;
    }
  }
  return out;
}

target parse_target(std::string_view raw) {
  target t;
  auto q = raw.find('?');
  t.path = std::string{raw.substr(0, q)};
  if (q == std::string_view::npos)
    return t;
  auto rest = raw.substr(q + 1);
  while (!rest.empty()) {
    auto amp = rest.find('&');
    auto item = rest.substr(0, amp);
    rest = amp == std::string_view::npos ? std::string_view{} : rest.substr(amp + 1);
    if (item.empty())
      continue;
    auto eq = item.find('=');
    auto key = percent_decode(item.substr(0, eq));
    auto value = eq == std::string_view::npos ? std::string{} : percent_decode(item.substr(eq + 1));
    t.query.emplace_back(std::move(key), std::move(value));
  }
  return t;
}

std::optional<int64_t> int_param(const target& t, std::string_view name, int64_t min, int64_t max,
                                 bool& ok) {
  ok = true;
  auto v = t.param(name);
  if (!v)
    return std::nullopt;
  int64_t x = 0;
  auto first = v->data();
  auto last = v->data() + v->size();
  auto [ptr, ec] = std::from_chars(first, last, x);
  if (v->empty() || ec != std::errc{} || ptr != last || x < min || x > max) {
    ok = false;
    return std::nullopt;
  }
  return x;
}

std::string find_token(std::string_view authorization_header, const target& t) {
  // The scheme is case-insensitive (RFC 9110 section 11.1), then one or
  // more spaces.
  constexpr std::string_view bearer = "bearer";
  auto h = authorization_header;
  if (h.size() > bearer.size() && h[bearer.size()] == ' ') {
    bool same = true;
    for (size_t i = 0; i < bearer.size(); ++i)
      same = same && std::tolower(static_cast<unsigned char>(h[i])) == bearer[i];
    if (same) {
      h.remove_prefix(bearer.size());
      while (!h.empty() && h.front() == ' ')
        h.remove_prefix(1);
      if (!h.empty())
        return std::string{h};
    }
  }
  if (auto tok = t.param("token"))
    return *tok;
  return {};
}

std::vector<std::string_view> split_path(std::string_view path) {
  std::vector<std::string_view> out;
  while (!path.empty()) {
    if (path.front() == '/') {
      path.remove_prefix(1);
      continue;
    }
    auto slash = path.find('/');
    out.push_back(path.substr(0, slash));
    path = slash == std::string_view::npos ? std::string_view{} : path.substr(slash);
  }
  return out;
}

} // namespace chat::gateway
