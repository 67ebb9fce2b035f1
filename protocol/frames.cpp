#include "protocol/frames.hpp"

namespace chat::protocol {

const char* to_string(error_code code) {
  switch (code) {
    case error_code::bad_request:
      return "bad_request";
    case error_code::not_found:
      return "not_found";
    case error_code::too_large:
      return "too_large";
    case error_code::rate_limited:
      return "rate_limited";
    case error_code::provider_error:
      return "provider_error";
    case error_code::unavailable:
      return "unavailable";
    case error_code::internal:
      return "internal";
  }
  return "internal";
}

} // namespace chat::protocol
