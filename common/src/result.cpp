#include "storcrypt/common/result.h"

#include <cstring>

namespace storcrypt {

std::string_view error_code_name(ErrorCode code) {
  switch (code) {
    case ErrorCode::kInvalidInput:
      return "invalid-input";
    case ErrorCode::kNotFound:
      return "not-found";
    case ErrorCode::kConflict:
      return "conflict";
    case ErrorCode::kUnavailable:
      return "unavailable";
    case ErrorCode::kPermission:
      return "permission";
    case ErrorCode::kKernel:
      return "kernel";
    case ErrorCode::kTls:
      return "tls";
    case ErrorCode::kProtocol:
      return "protocol";
    case ErrorCode::kUnsupported:
      return "unsupported";
    case ErrorCode::kInternal:
      return "internal";
  }
  return "internal";
}

int category_exit_code(ErrorCode code) {
  // Documented in storcrypt(8) and README "Exit codes". 1 is reserved for
  // usage errors detected by the CLI itself before any request is sent.
  switch (code) {
    case ErrorCode::kInvalidInput:
      return 2;
    case ErrorCode::kNotFound:
      return 3;
    case ErrorCode::kConflict:
      return 4;
    case ErrorCode::kUnavailable:
      return 5;
    case ErrorCode::kPermission:
      return 6;
    case ErrorCode::kKernel:
      return 7;
    case ErrorCode::kTls:
      return 8;
    case ErrorCode::kProtocol:
      return 9;
    case ErrorCode::kUnsupported:
      return 10;
    case ErrorCode::kInternal:
      return 70;
  }
  return 70;
}

std::string Error::to_string() const {
  std::string s(error_code_name(code_));
  if (!name_.empty()) s += " (" + name_ + ")";
  s += ": " + message_;
  if (!fix_.empty()) s += " (fix: " + fix_ + ")";
  return s;
}

Error errno_error(int err, std::string_view what) {
  ErrorCode code = ErrorCode::kInternal;
  switch (err) {
    case EINVAL:
    case ERANGE:
      code = ErrorCode::kInvalidInput;
      break;
    case ENOENT:
    case ESRCH:
      code = ErrorCode::kNotFound;
      break;
    case EEXIST:
    case EBUSY:
      code = ErrorCode::kConflict;
      break;
    case EPERM:
    case EACCES:
      code = ErrorCode::kPermission;
      break;
    case ENOSYS:
    case EOPNOTSUPP:
    case EPROTONOSUPPORT:
    case EAFNOSUPPORT:
      code = ErrorCode::kUnsupported;
      break;
    case ECONNREFUSED:
    case ETIMEDOUT:
    case EHOSTUNREACH:
    case ENETUNREACH:
    case ECONNRESET:
      code = ErrorCode::kUnavailable;
      break;
    default:
      break;
  }
  char buf[128];
  const char* text = strerror_r(err, buf, sizeof buf);  // GNU variant returns char*
  return Error(code, std::string(what) + ": " + text).with_errno(err);
}

}  // namespace storcrypt
