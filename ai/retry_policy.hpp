#pragma once
/// When to retry a provider request that failed before its first token, and
/// how long to wait first. Pure functions: the invoker supplies the clock
/// and the random numbers.
///
/// Retried: HTTP 429 and 5xx, connection errors, a response cut before any
/// content. Never retried: anything after the first token (the user has
/// seen it), other 4xx (the request itself is wrong), a first-token timeout
/// (the provider is slow, not failing: a retry would double the wait).

#include <chrono>
#include <optional>
#include <string_view>

namespace chat::ai {

struct retry_policy {
  /// Retries after the first attempt (CHAT_PROVIDER_RETRIES).
  int max_retries = 3;
  /// Backoff before retry k (1-based) is uniform in [0, base * 2^(k-1)]
  /// ("full jitter"), at most `max_backoff`.
  std::chrono::milliseconds base{500};
  std::chrono::milliseconds max_backoff{10000};
  /// A provider's Retry-After is honoured up to this long per wait.
  std::chrono::milliseconds max_retry_after{30000};
  /// Retry-After given as an HTTP-date is not parsed: it counts as this.
  std::chrono::milliseconds http_date_wait{5000};
};

/// HTTP statuses worth another try: 429 and 5xx.
bool retryable_status(long status);

/// A Retry-After header value: delta-seconds (whole, as RFC 9110 says;
/// fractions tolerated), or an HTTP-date (then `policy.http_date_wait`).
/// Empty or unreadable: nullopt. Never negative.
std::optional<std::chrono::milliseconds> parse_retry_after(std::string_view value,
                                                           const retry_policy& policy);

/// The wait before retry `retry` (1-based): full-jitter backoff with
/// `random01` in [0, 1), but at least the Retry-After (capped at
/// `max_retry_after`) when the provider sent one.
std::chrono::milliseconds retry_wait(const retry_policy& policy, int retry,
                                     std::optional<std::chrono::milliseconds> retry_after,
                                     double random01);

} // namespace chat::ai
