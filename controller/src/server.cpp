#include "storcrypt/controller/server.h"

#include <grp.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>

#include "storcrypt/common/secret.h"
#include "storcrypt/controller/rpc.h"

namespace storcrypt::controller {

using asio::local::stream_protocol;

bool peer_allowed(uid_t uid, gid_t gid, const std::vector<gid_t>& groups, uid_t self_uid,
                  std::optional<gid_t> allowed_gid) {
  if (uid == 0 || uid == self_uid) return true;
  if (!allowed_gid) return false;
  if (gid == *allowed_gid) return true;
  for (gid_t g : groups) {
    if (g == *allowed_gid) return true;
  }
  return false;
}

Result<gid_t> lookup_group(const std::string& name) {
  std::vector<char> buf(16384);
  struct group gr {};
  struct group* out = nullptr;
  int rc = getgrnam_r(name.c_str(), &gr, buf.data(), buf.size(), &out);
  if (rc != 0) return errno_error(rc, "looking up group " + name);
  if (out == nullptr) {
    return Error(ErrorCode::kNotFound, "group '" + name + "' does not exist",
                 "create it (groupadd --system " + name + ") or set socket_group in storcrypt.conf");
  }
  return out->gr_gid;
}

namespace {

struct PeerCreds {
  PeerInfo info;
  std::vector<gid_t> groups;
};

Result<PeerCreds> read_peer(int fd) {
  PeerCreds pc;
  struct ucred cred {};
  socklen_t len = sizeof(cred);
  if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0) return errno_error(errno, "reading SO_PEERCRED");
  pc.info = {static_cast<int64_t>(cred.uid), static_cast<int64_t>(cred.gid), static_cast<int64_t>(cred.pid)};
  std::vector<gid_t> groups(64);
  for (int attempt = 0; attempt < 4; ++attempt) {
    socklen_t glen = static_cast<socklen_t>(groups.size() * sizeof(gid_t));
    if (getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, groups.data(), &glen) == 0) {
      groups.resize(glen / sizeof(gid_t));
      pc.groups = std::move(groups);
      return pc;
    }
    if (errno != ERANGE) return errno_error(errno, "reading SO_PEERGROUPS");
    groups.resize(glen / sizeof(gid_t) + 16);
  }
  return Error(ErrorCode::kInternal, "peer has too many supplementary groups");
}

}  // namespace

// One client connection: read a line, dispatch on the worker pool, write the
// reply, repeat. All socket operations happen on the io_context thread.
class Server::Connection : public std::enable_shared_from_this<Connection> {
 public:
  Connection(Server& server, stream_protocol::socket sock, PeerInfo peer)
      : server_(server),
        sock_(std::move(sock)),
        peer_(peer),
        buf_(server.config_.max_request_bytes + 1),
        deadline_(server.io_) {}

  void start() { read_next(); }

  void close() {
    if (closed_) return;
    closed_ = true;
    asio::error_code ec;
    deadline_.cancel();
    sock_.shutdown(stream_protocol::socket::shutdown_both, ec);
    sock_.close(ec);
    server_.connections_.erase(shared_from_this());
  }

  void send_and_close(const nlohmann::json& response) {
    auto self = shared_from_this();
    out_ = rpc::to_line(response) + "\n";
    asio::async_write(sock_, asio::buffer(out_), [self](asio::error_code, size_t) { self->close(); });
  }

 private:
  void arm_deadline() {
    auto self = shared_from_this();
    deadline_.expires_after(std::chrono::seconds(server_.config_.request_timeout_seconds));
    deadline_.async_wait([self](asio::error_code ec) {
      if (!ec) self->close();  // client sent nothing (complete) in time
    });
  }

  void read_next() {
    if (closed_) return;
    arm_deadline();
    auto self = shared_from_this();
    asio::async_read_until(sock_, buf_, '\n', [self](asio::error_code ec, size_t n) { self->on_read(ec, n); });
  }

  void on_read(asio::error_code ec, size_t n) {
    if (closed_) return;
    deadline_.cancel();
    std::string line;
    if (!ec) {
      line.assign(asio::buffers_begin(buf_.data()), asio::buffers_begin(buf_.data()) + static_cast<long>(n) - 1);
      consume_and_wipe(n);
    } else if (ec == asio::error::eof && buf_.size() > 0) {
      // The client shut down its write side after a request without '\n'.
      line.assign(asio::buffers_begin(buf_.data()), asio::buffers_end(buf_.data()));
      consume_and_wipe(buf_.size());
      eof_ = true;
    } else if (ec == asio::error::not_found) {
      spdlog::warn("request from uid {} pid {} exceeds {} bytes; closing", peer_.uid, peer_.pid,
                   server_.config_.max_request_bytes);
      send_and_close(
          rpc::error_response(
              nullptr,
              Error(ErrorCode::kProtocol,
                    "request exceeds the limit of " + std::to_string(server_.config_.max_request_bytes) + " bytes",
                    "send smaller requests (max_request_bytes in storcrypt.conf)", rpc::kNameRequestTooLarge)));
      return;
    } else {
      close();
      return;
    }
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.find_first_not_of(" \t") == std::string::npos) {
      if (eof_)
        close();
      else
        read_next();
      return;
    }
    dispatch(std::move(line));
  }

  // A request may carry a passphrase or a key: the buffer it was read into
  // stays allocated for the connection, so wipe what was taken out of it.
  void consume_and_wipe(size_t n) {
    auto in = buf_.data();
    secure_wipe(const_cast<void*>(in.data()), std::min(n, in.size()));
    buf_.consume(n);
  }

  void dispatch(std::string line) {
    auto self = shared_from_this();
    auto done = std::make_shared<std::atomic<bool>>(false);
    auto timer = std::make_shared<asio::steady_timer>(server_.io_);
    auto started = std::chrono::steady_clock::now();
    timer->expires_after(std::chrono::seconds(server_.config_.request_timeout_seconds));
    timer->async_wait([self, done](asio::error_code ec) {
      if (ec || done->exchange(true)) return;
      spdlog::warn("request from uid {} pid {} timed out after {} s", self->peer_.uid, self->peer_.pid,
                   self->server_.config_.request_timeout_seconds);
      self->send_and_close(
          rpc::error_response(nullptr, Error(ErrorCode::kUnavailable,
                                             "request did not complete within " +
                                                 std::to_string(self->server_.config_.request_timeout_seconds) +
                                                 " s; its outcome is unknown",
                                             "check the state with a list/show command before "
                                             "retrying; raise request_timeout_seconds if needed",
                                             rpc::kNameRequestTimeout)));
    });
    asio::post(server_.workers_, [self, done, timer, started, line = std::move(line)]() mutable {
      Dispatcher::Outcome outcome;
      std::string reply = self->server_.dispatcher_.handle_text(line, self->peer_, &outcome);
      // The request text, and what parsing and the handler left on this
      // worker's stack (short strings live inline there), may hold secrets.
      secure_wipe(line);
      wipe_stack();
      auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - started);
      asio::post(self->server_.io_, [self, done, timer, reply = std::move(reply), outcome, ms]() mutable {
        timer->cancel();
        // Method names and error names only: parameters may carry secrets.
        if (outcome.error.empty()) {
          spdlog::info("uid {} pid {} {} ok {} ms", self->peer_.uid, self->peer_.pid, outcome.method, ms.count());
        } else {
          spdlog::info("uid {} pid {} {} {} {} ms", self->peer_.uid, self->peer_.pid,
                       outcome.method.empty() ? "-" : outcome.method, outcome.error, ms.count());
        }
        if (done->exchange(true) || self->closed_) return;
        if (reply.empty()) {  // notification
          if (self->eof_)
            self->close();
          else
            self->read_next();
          return;
        }
        self->write_reply(std::move(reply));
      });
    });
  }

  void write_reply(std::string reply) {
    auto self = shared_from_this();
    out_ = std::move(reply) + "\n";
    asio::async_write(sock_, asio::buffer(out_), [self](asio::error_code ec, size_t) {
      if (ec || self->eof_) {
        self->close();
        return;
      }
      self->read_next();
    });
  }

  Server& server_;
  stream_protocol::socket sock_;
  PeerInfo peer_;
  asio::streambuf buf_;
  asio::steady_timer deadline_;
  std::string out_;
  bool closed_ = false;
  bool eof_ = false;
};

Server::Server(asio::io_context& io, const Dispatcher& dispatcher, const Config& config)
    : io_(io),
      dispatcher_(dispatcher),
      config_(config),
      acceptor_(io),
      workers_(static_cast<size_t>(config.worker_threads)) {}

Server::~Server() {
  stop();
  workers_.join();
}

Status Server::listen() {
  const std::string& path = config_.socket_path;
  if (path.size() >= sizeof(sockaddr_un::sun_path)) {
    return Error(ErrorCode::kInvalidInput, "socket path " + path + " is too long");
  }
  if (!config_.socket_group.empty()) {
    auto g = lookup_group(config_.socket_group);
    if (!g.ok()) return std::move(g).error().context("socket_group");
    group_ = *g;
  }
  // Another daemon answering on the path: refuse. A stale file: remove it.
  struct stat st {};
  if (::lstat(path.c_str(), &st) == 0) {
    if (!S_ISSOCK(st.st_mode)) {
      return Error(ErrorCode::kConflict, path + " exists and is not a socket",
                   "remove it or choose another socket_path");
    }
    stream_protocol::socket probe(io_);
    asio::error_code ec;
    probe.connect(stream_protocol::endpoint(path), ec);
    if (!ec) {
      return Error(ErrorCode::kConflict, "another storcryptd is already serving " + path,
                   "stop it first (systemctl stop storcryptd)", "xDaemonAlreadyRunning");
    }
    ::unlink(path.c_str());
  }
  asio::error_code ec;
  acceptor_.open(stream_protocol(), ec);
  if (ec) return Error(ErrorCode::kInternal, "creating socket: " + ec.message());
  // Bind with a umask that leaves no window where others could connect.
  mode_t old = ::umask(0117);
  acceptor_.bind(stream_protocol::endpoint(path), ec);
  ::umask(old);
  if (ec) {
    return Error(ErrorCode::kUnavailable, "binding " + path + ": " + ec.message(),
                 "check that the directory exists and is writable by storcryptd");
  }
  bound_ = true;
  if (group_ && ::chown(path.c_str(), static_cast<uid_t>(-1), *group_) != 0) {
    return errno_error(errno, "setting group of " + path);
  }
  if (::chmod(path.c_str(), 0660) != 0) return errno_error(errno, "setting mode of " + path);
  acceptor_.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) return Error(ErrorCode::kInternal, "listening on " + path + ": " + ec.message());
  accept_next();
  return ok_status();
}

void Server::accept_next() {
  acceptor_.async_accept([this](asio::error_code ec, stream_protocol::socket sock) {
    if (stopped_) return;
    if (!ec) {
      on_accepted(std::move(sock));
    } else if (ec != asio::error::operation_aborted) {
      spdlog::warn("accept failed: {}", ec.message());
    }
    accept_next();
  });
}

void Server::on_accepted(stream_protocol::socket sock) {
  auto creds = read_peer(sock.native_handle());
  if (!creds.ok()) {
    spdlog::warn("dropping connection: {}", creds.error().to_string());
    return;
  }
  auto conn = std::make_shared<Connection>(*this, std::move(sock), creds->info);
  connections_.insert(conn);
  if (!peer_allowed(static_cast<uid_t>(creds->info.uid), static_cast<gid_t>(creds->info.gid), creds->groups,
                    ::geteuid(), group_)) {
    spdlog::warn("refused uid {} gid {} pid {}: not root and not in group {}", creds->info.uid, creds->info.gid,
                 creds->info.pid, config_.socket_group);
    conn->send_and_close(
        rpc::error_response(
            nullptr,
            Error(ErrorCode::kPermission, "uid " + std::to_string(creds->info.uid) + " may not use the storcrypt API",
                  "run as root or as a member of group " + config_.socket_group, rpc::kNamePermissionDenied)));
    return;
  }
  conn->start();
}

void Server::stop() {
  if (stopped_) return;
  stopped_ = true;
  asio::error_code ec;
  acceptor_.close(ec);
  auto conns = connections_;
  for (const auto& c : conns) c->close();
  connections_.clear();
  if (bound_) ::unlink(config_.socket_path.c_str());
}

size_t Server::active_connections() const { return connections_.size(); }

}  // namespace storcrypt::controller
