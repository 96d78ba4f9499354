#include <ctime>

#include "internal.h"

namespace storcrypt::certs {

std::string_view expiry_class_name(ExpiryClass c) {
  switch (c) {
    case ExpiryClass::kOk:
      return "ok";
    case ExpiryClass::kWarning:
      return "warning";
    case ExpiryClass::kError:
      return "error";
    case ExpiryClass::kCritical:
      return "critical";
    case ExpiryClass::kExpired:
      return "expired";
    case ExpiryClass::kNotYetValid:
      return "not-yet-valid";
  }
  return "unknown";
}

std::string format_utc(UnixTime t) {
  std::time_t tt = static_cast<std::time_t>(t);
  struct tm tm {};
  gmtime_r(&tt, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

std::string_view expiry_severity(ExpiryClass c) {
  switch (c) {
    case ExpiryClass::kOk:
      return "ok";
    case ExpiryClass::kWarning:
      return "warning";
    case ExpiryClass::kError:
      return "error";
    case ExpiryClass::kCritical:
    case ExpiryClass::kExpired:
    case ExpiryClass::kNotYetValid:
      return "critical";
  }
  return "critical";
}

ExpiryClass classify_expiry(UnixTime not_before, UnixTime not_after, UnixTime now) {
  constexpr UnixTime kDay = 86400;
  if (now < not_before) return ExpiryClass::kNotYetValid;
  if (now > not_after) return ExpiryClass::kExpired;  // notAfter itself is still valid (RFC 5280)
  UnixTime left = not_after - now;
  if (left < 3 * kDay) return ExpiryClass::kCritical;
  if (left < 7 * kDay) return ExpiryClass::kError;
  if (left < 30 * kDay) return ExpiryClass::kWarning;
  return ExpiryClass::kOk;
}

}  // namespace storcrypt::certs
