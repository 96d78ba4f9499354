#include "storcrypt/common/netns.h"

#include <fcntl.h>

#include <cerrno>
#include <cstring>
#include <string>

namespace storcrypt {

Result<UniqueFd> open_netns(std::string_view netns) {
  if (netns.empty()) return UniqueFd();
  std::string path = netns.front() == '/' ? std::string(netns) : "/run/netns/" + std::string(netns);
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) {
    const int e = errno;
    return Error(e == ENOENT ? ErrorCode::kNotFound : ErrorCode::kPermission,
                 "netns: cannot open network namespace " + path + ": " + std::strerror(e),
                 "create it with `ip netns add NAME` or pass /proc/PID/ns/net")
        .with_errno(e);
  }
  return fd;
}

}  // namespace storcrypt
