#pragma once
/// Many concurrent HTTP requests on one thread: a libcurl multi handle on
/// its socket interface, driven by a thread that blocks in `epoll_wait`.
///
/// `start` and `cancel` may be called from any thread: they queue the work
/// under a mutex and wake the driver through an eventfd. Everything
/// else (the easy handles, the handlers' callbacks) lives on the driver's
/// thread, so a handler must not touch actor state: it talks to actors with
/// `caf::anon_send`.
///
/// Timeouts (first token, idle, the whole request's deadline) are checked
/// by the driver, with millisecond resolution (curl's low-speed limit only
/// counts seconds); the connect timeout is curl's. What counts as a token is
/// the handler's to say: keep-alive comments and pings are body bytes, but
/// not tokens, so they do not keep a silent stream alive.

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace chat::ai {

/// One HTTP request; POSTed when `body` is not empty, else a GET.
struct http_request {
  std::string url;
  std::vector<std::string> headers; ///< "Name: value"
  std::string body;
  std::chrono::milliseconds connect_timeout{10000};
  /// No token this long after the start: the transfer times out.
  std::chrono::milliseconds first_token_timeout{60000};
  /// No token this long after the previous one: the transfer times out.
  std::chrono::milliseconds idle_timeout{60000};
  /// The transfer times out at this point whatever else happens.
  std::chrono::steady_clock::time_point deadline = std::chrono::steady_clock::time_point::max();
  /// Not sent before this point (a retry's backoff): the driver's thread
  /// keeps it meanwhile, without blocking; `cancel` ends the wait at once.
  std::chrono::steady_clock::time_point start_at = std::chrono::steady_clock::time_point::min();
};

/// How a transfer ended.
struct transfer_result {
  enum kind_t {
    completed,      ///< the response arrived whole (any HTTP status)
    cancelled,      ///< `cancel` was called
    connect_failed, ///< no response at all: resolve, connect, TLS, ...
    cut,            ///< the connection failed during the response
    timed_out,      ///< first-token, idle or deadline timeout
    stopped,        ///< the driver was destroyed first
  };
  kind_t kind = completed;
  long http_status = 0;    ///< 0 when no response line arrived
  bool got_body = false;   ///< any body byte arrived
  std::string detail;      ///< curl's generic error text or which timeout; never the URL
  std::string error_body;  ///< first 4 KiB of the body when status >= 400
  std::string retry_after; ///< the Retry-After header's value, if any
};

/// What a handler made of a slice of the body.
enum class body_action {
  more,  ///< nothing that counts as a token (comments, pings, metadata)
  token, ///< content: restarts the idle timer
  abort, ///< abort the transfer (`on_done` then reports `cut`)
};

/// The events of one transfer, called on the driver's thread.
class transfer_handler {
public:
  virtual ~transfer_handler() = default;

  /// A slice of the body of a response with status < 400.
  virtual body_action on_body(std::string_view bytes) = 0;

  /// Called exactly once, last; the handler is destroyed right after.
  virtual void on_done(const transfer_result& result) = 0;
};

class curl_driver {
public:
  using transfer_id = uint64_t;

  /// Starts the driver's thread.
  curl_driver();

  /// Aborts every transfer (their handlers get `stopped`) and stops the
  /// thread: joins it, or lets it end by itself when called on it.
  ~curl_driver();

  curl_driver(const curl_driver&) = delete;
  curl_driver& operator=(const curl_driver&) = delete;

  /// Queues a request. Thread-safe.
  transfer_id start(http_request req, std::unique_ptr<transfer_handler> h);

  /// Aborts a transfer at once: its connection is closed and its handler
  /// gets `cancelled` (unless it ended before). Unknown ids are ignored.
  /// Thread-safe.
  void cancel(transfer_id id);

private:
  struct impl;
  std::shared_ptr<impl> impl_;
};

} // namespace chat::ai
