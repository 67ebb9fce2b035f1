#include "tests/integration/leak_watch.hpp"

#include <mutex>
#include <set>
#include <vector>

#include <doctest/doctest.h>

namespace chat::test::leak_watch {

namespace {

enum class kind { secret, content, user };

struct entry {
  kind k;
  std::string text;
};

struct record {
  std::mutex mutex;
  std::vector<entry> entries;
  std::set<std::string> seen; // each text once
};

record& the_record() {
  static record r;
  return r;
}

void remember(kind k, std::string text) {
  auto& r = the_record();
  std::lock_guard lock{r.mutex};
  if (r.seen.insert(text).second)
    r.entries.push_back({k, std::move(text)});
}

const char* name_of(kind k) {
  switch (k) {
    case kind::secret:
      return "a secret";
    case kind::content:
      return "a message's content";
    case kind::user:
      return "a user id";
  }
  return "?";
}

} // namespace

void secret(const std::string& s) {
  if (!s.empty())
    remember(kind::secret, s);
}

void content(const std::string& s) {
  auto text = s.substr(0, s.find("[["));
  while (!text.empty() && text.back() == ' ')
    text.pop_back();
  if (text.size() >= 12)
    remember(kind::content, std::move(text));
}

void user(const std::string& id) {
  remember(kind::user, id);
}

size_t mark() {
  auto& r = the_record();
  std::lock_guard lock{r.mutex};
  return r.entries.size();
}

void check(const std::string& what, const std::string& text, size_t from, bool no_users) {
  std::vector<entry> watched;
  {
    auto& r = the_record();
    std::lock_guard lock{r.mutex};
    if (from < r.entries.size())
      watched.assign(r.entries.begin() + static_cast<std::ptrdiff_t>(from), r.entries.end());
  }
  for (auto& e : watched) {
    if (e.k == kind::user && !no_users)
      continue;
    auto at = text.find(e.text);
    if (at == std::string::npos)
      continue;
    auto from_line = text.rfind('\n', at);
    from_line = from_line == std::string::npos ? 0 : from_line + 1;
    auto to_line = text.find('\n', at);
    CHECK_MESSAGE(false, what << " holds " << name_of(e.k) << " (\"" << e.text
                              << "\"): " << text.substr(from_line, to_line - from_line));
  }
}

} // namespace chat::test::leak_watch
