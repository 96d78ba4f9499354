// storcrypt controller: the JSON-RPC server on a Unix socket (the request loop).
//
// The socket is created mode 0660, owned by the daemon's user and the
// configured group (root:storcrypt in production). Each accepted connection is
// checked with SO_PEERCRED / SO_PEERGROUPS: uid 0, the daemon's own uid, or a
// member (primary or supplementary) of the group may talk; anyone else gets one
// xPermissionDenied error response and is disconnected. Requests are read with
// a size limit and handled on a worker pool with a per-request timeout; a
// request that times out is answered xRequestTimeout (its outcome is then
// unknown to the caller, as with any lost reply).
#pragma once

#include <sys/types.h>

#include <asio.hpp>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "storcrypt/common/fd.h"
#include "storcrypt/common/result.h"
#include "storcrypt/controller/config.h"
#include "storcrypt/controller/dispatcher.h"

namespace storcrypt::controller {

/// The access rule, separated for unit tests.
bool peer_allowed(uid_t uid, gid_t gid, const std::vector<gid_t>& groups, uid_t self_uid,
                  std::optional<gid_t> allowed_gid);

/// Look up a group id by name.
Result<gid_t> lookup_group(const std::string& name);

class Server {
 public:
  Server(asio::io_context& io, const Dispatcher& dispatcher, const Config& config);
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  /// Bind and listen: refuses when another daemon answers on the path, removes
  /// a stale socket file, sets mode and group.
  Status listen();
  /// Stop accepting, close all connections, remove the socket file.
  void stop();
  size_t active_connections() const;

 private:
  class Connection;
  void accept_next();
  void on_accepted(asio::local::stream_protocol::socket sock);

  asio::io_context& io_;
  const Dispatcher& dispatcher_;
  Config config_;
  std::optional<gid_t> group_;
  asio::local::stream_protocol::acceptor acceptor_;
  asio::thread_pool workers_;
  std::set<std::shared_ptr<Connection>> connections_;
  bool stopped_ = false;
  bool bound_ = false;  ///< we created the socket file (and may remove it)
};

}  // namespace storcrypt::controller
