// storcrypt: entering a network namespace without moving the caller.
//
// Everything that touches the network takes its namespace as a parameter
// ("" = the caller's, a name under /run/netns, or an absolute path such as
// /proc/PID/ns/net). Sockets belong to the namespace they were created in,
// so a library opens the namespace once (open_netns) and creates its sockets
// inside it on a short-lived thread (in_netns): setns() is per thread, and
// the calling thread never changes namespace.
#pragma once

#include <sched.h>

#include <optional>
#include <string_view>
#include <thread>
#include <utility>

#include "storcrypt/common/fd.h"
#include "storcrypt/common/result.h"

namespace storcrypt {

/// Open a network namespace: "" gives an invalid fd (= the caller's
/// namespace), a bare name means /run/netns/NAME. kNotFound when it does not
/// exist, kPermission otherwise; the message names the path and `what`.
Result<UniqueFd> open_netns(std::string_view netns);

/// Run f on a short-lived thread that joined the namespace `ns_fd` (setns is
/// per thread), so the caller's thread never changes namespace; ns_fd < 0
/// runs f here. f returns a Result<T> (or Status); a failed setns() becomes
/// its error.
template <typename F>
auto in_netns(int ns_fd, F&& f) -> decltype(f()) {
  if (ns_fd < 0) return f();
  std::optional<decltype(f())> out;
  std::thread t([&] {
    if (::setns(ns_fd, CLONE_NEWNET) != 0) {
      out.emplace(errno_error(errno, "entering the network namespace"));
      return;
    }
    out.emplace(f());
  });
  t.join();
  return std::move(*out);
}

}  // namespace storcrypt
