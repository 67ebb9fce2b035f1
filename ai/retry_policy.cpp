#include "ai/retry_policy.hpp"

#include <algorithm>
#include <cctype>
#include <cmath>

namespace chat::ai {

using std::chrono::milliseconds;

bool retryable_status(long status) {
  return status == 429 || (status >= 500 && status <= 599);
}

std::optional<milliseconds> parse_retry_after(std::string_view value, const retry_policy& policy) {
  while (!value.empty() && std::isspace(static_cast<unsigned char>(value.front())))
    value.remove_prefix(1);
  while (!value.empty() && std::isspace(static_cast<unsigned char>(value.back())))
    value.remove_suffix(1);
  if (value.empty())
    return std::nullopt;
  if (std::isalpha(static_cast<unsigned char>(value.front())))
    return policy.http_date_wait; // "Wed, 21 Oct 2015 07:28:00 GMT"
  // delta-seconds; a huge value saturates (it is capped later anyway).
  double seconds = 0;
  size_t i = 0;
  for (; i < value.size() && std::isdigit(static_cast<unsigned char>(value[i])); ++i)
    seconds = std::min(seconds * 10 + (value[i] - '0'), 1e9);
  if (i == 0)
    return std::nullopt;
  if (i < value.size() && value[i] == '.') {
    double scale = 0.1;
    for (++i; i < value.size() && std::isdigit(static_cast<unsigned char>(value[i])); ++i) {
      seconds += (value[i] - '0') * scale;
      scale /= 10;
    }
  }
  if (i != value.size())
    return std::nullopt;
  return milliseconds{static_cast<int64_t>(std::llround(seconds * 1000))};
}

milliseconds retry_wait(const retry_policy& policy, int retry,
                        std::optional<milliseconds> retry_after, double random01) {
  // base * 2^(retry-1), without overflow for large retry counts.
  auto ceiling = policy.base;
  for (int k = 1; k < retry && ceiling < policy.max_backoff; ++k)
    ceiling *= 2;
  ceiling = std::min(ceiling, policy.max_backoff);
  random01 = std::clamp(random01, 0.0, 1.0);
  auto wait = milliseconds{static_cast<int64_t>(static_cast<double>(ceiling.count()) * random01)};
  if (retry_after)
    wait = std::max(wait, std::min(*retry_after, policy.max_retry_after));
  return wait;
}

} // namespace chat::ai
