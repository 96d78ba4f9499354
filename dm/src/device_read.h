// Internal to dm/: the one "can this device's head be read?" check that the
// signature probe and the LUKS header reader both make before trusting a
// library's "nothing found" (a read error must be an error, not "no header").
#pragma once

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <string>

#include "storcrypt/common/fd.h"
#include "storcrypt/common/result.h"

namespace storcrypt::dm::detail {

/// Open `dev` read-only and read its first `bytes`. Errors: the open's errno
/// ("opening DEV to PURPOSE"), or kUnavailable with the read's errno
/// ("reading AREA of DEV") and `fix`.
inline Status read_device_head(const std::string& dev, std::size_t bytes, const std::string& purpose,
                               const std::string& area, const std::string& fix) {
  UniqueFd fd(::open(dev.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) return errno_error(errno, "opening " + dev + " to " + purpose);
  std::string buf(bytes, '\0');
  ssize_t n;
  do {
    n = ::pread(fd.get(), buf.data(), buf.size(), 0);
  } while (n < 0 && errno == EINTR);
  if (n < 0) {
    int e = errno;
    // kUnavailable: the device cannot be read (not a bug, not "no header").
    return Error(ErrorCode::kUnavailable, errno_error(e, "reading " + area + " of " + dev).message(), fix)
        .with_errno(e);
  }
  return ok_status();
}

}  // namespace storcrypt::dm::detail
