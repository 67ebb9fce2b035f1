#include "common/metrics.hpp"

#include <doctest/doctest.h>

#include <chrono>

using chat::metrics::histogram;

TEST_CASE("metrics: a histogram renders cumulative buckets, the sum and the count") {
  histogram h{{1000, 10000}, 1e-6}; // 1 ms and 10 ms buckets, µs exported in seconds
  h.observe(std::chrono::microseconds{500});
  h.observe(std::chrono::milliseconds{5});
  h.observe(std::chrono::milliseconds{20});
  h.observe(int64_t{1000}); // on a bound: in that bucket (le)
  std::string out;
  h.render(out, "x_seconds", "help");
  CHECK(out.find("# TYPE x_seconds histogram\n") != std::string::npos);
  CHECK(out.find("x_seconds_bucket{le=\"0.001\"} 2\n") != std::string::npos);
  CHECK(out.find("x_seconds_bucket{le=\"0.01\"} 3\n") != std::string::npos);
  CHECK(out.find("x_seconds_bucket{le=\"+Inf\"} 4\n") != std::string::npos);
  CHECK(out.find("x_seconds_sum 0.0265\n") != std::string::npos);
  CHECK(out.find("x_seconds_count 4\n") != std::string::npos);
}

TEST_CASE("metrics: /metrics has the operators' histograms and gauges") {
  auto text = chat::metrics::render_prometheus();
  for (auto name : {"chat_ack_latency_seconds_bucket", "chat_first_chunk_overhead_seconds_count",
                    "chat_provider_ttft_seconds_sum", "chat_db_commit_seconds_bucket",
                    "chat_db_batch_size_bucket", "chat_provider_requests_queued",
                    "chat_replies_active", "chat_connections_open"})
    CHECK_MESSAGE(text.find(name) != std::string::npos, name);
}
