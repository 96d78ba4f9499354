#include "tls_connection.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace storcrypt::kmip::detail {
namespace {

std::string openssl_errors() {
  std::string s;
  unsigned long e;
  while ((e = ERR_get_error()) != 0) {
    char buf[256];
    ERR_error_string_n(e, buf, sizeof buf);
    if (!s.empty()) s += "; ";
    s += buf;
  }
  return s;
}

int remaining_ms(Clock::time_point deadline) {
  auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
  return left <= 0 ? 0 : static_cast<int>(left);
}

// Writing to a socket the peer closed raises SIGPIPE, which would kill the
// daemon. OpenSSL writes with write(2), so block SIGPIPE in this thread for
// the duration of the call and swallow one that became pending.
class SigpipeGuard {
 public:
  SigpipeGuard() {
    sigemptyset(&set_);
    sigaddset(&set_, SIGPIPE);
    sigset_t pending;
    sigpending(&pending);
    was_pending_ = sigismember(&pending, SIGPIPE) == 1;
    pthread_sigmask(SIG_BLOCK, &set_, &old_);
  }
  ~SigpipeGuard() {
    if (!was_pending_) {
      sigset_t pending;
      sigpending(&pending);
      if (sigismember(&pending, SIGPIPE) == 1) {
        timespec zero{0, 0};
        while (sigtimedwait(&set_, nullptr, &zero) == -1 && errno == EINTR) {
        }
      }
    }
    pthread_sigmask(SIG_SETMASK, &old_, nullptr);
  }
  SigpipeGuard(const SigpipeGuard&) = delete;
  SigpipeGuard& operator=(const SigpipeGuard&) = delete;

 private:
  sigset_t set_{}, old_{};
  bool was_pending_ = false;
};

bool is_ip_literal(const std::string& h) {
  unsigned char buf[sizeof(in6_addr)];
  return inet_pton(AF_INET, h.c_str(), buf) == 1 || inet_pton(AF_INET6, h.c_str(), buf) == 1;
}

// Alerts the server sends when it rejects the client certificate.
bool is_client_cert_rejection(int reason) {
  switch (reason) {
    case SSL_R_SSLV3_ALERT_BAD_CERTIFICATE:
    case SSL_R_SSLV3_ALERT_UNSUPPORTED_CERTIFICATE:
    case SSL_R_SSLV3_ALERT_CERTIFICATE_REVOKED:
    case SSL_R_SSLV3_ALERT_CERTIFICATE_EXPIRED:
    case SSL_R_SSLV3_ALERT_CERTIFICATE_UNKNOWN:
    case SSL_R_TLSV1_ALERT_UNKNOWN_CA:
    case SSL_R_TLSV1_ALERT_ACCESS_DENIED:
    case SSL_R_TLSV13_ALERT_CERTIFICATE_REQUIRED:
      return true;
    default:
      return false;
  }
}

Result<int> connect_tcp(const ServerEndpoint& ep, bool keepalive, Clock::time_point deadline) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICSERV;
  addrinfo* res = nullptr;
  std::string port = std::to_string(ep.port);
  int rc = getaddrinfo(ep.host.c_str(), port.c_str(), &hints, &res);
  if (rc != 0)
    return category_error(FailureCategory::kUnavailable,
                          "cannot resolve key server " + ep.host + ": " + gai_strerror(rc),
                          "check the key server host name and DNS");
  std::string last = "no addresses";
  for (addrinfo* ai = res; ai != nullptr; ai = ai->ai_next) {
    int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, ai->ai_protocol);
    if (fd < 0) {
      last = std::strerror(errno);
      continue;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (keepalive) {
      int idle = 60, intvl = 10, cnt = 3;
      setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof one);
      setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof idle);
      setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &intvl, sizeof intvl);
      setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &cnt, sizeof cnt);
    }
    if (::connect(fd, ai->ai_addr, ai->ai_addrlen) == 0) {
      freeaddrinfo(res);
      return fd;
    }
    if (errno == EINPROGRESS) {
      pollfd p{fd, POLLOUT, 0};
      int pr = poll(&p, 1, remaining_ms(deadline));
      if (pr == 1) {
        int err = 0;
        socklen_t len = sizeof err;
        getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
        if (err == 0) {
          freeaddrinfo(res);
          return fd;
        }
        last = std::strerror(err);
      } else {
        last = "connect timed out";
      }
    } else {
      last = std::strerror(errno);
    }
    ::close(fd);
  }
  freeaddrinfo(res);
  return category_error(FailureCategory::kUnavailable, "cannot connect to key server " + ep.to_string() + ": " + last,
                        "check that the key server is running and reachable (firewall, port)");
}

}  // namespace

Error category_error(FailureCategory c, std::string message, std::string fix) {
  ErrorCode code = ErrorCode::kInternal;
  std::string name;
  switch (c) {
    case FailureCategory::kUnavailable:
      code = ErrorCode::kUnavailable;
      name = "xKmipUnavailable";
      break;
    case FailureCategory::kTlsError:
      code = ErrorCode::kTls;
      name = "xKmipTlsError";
      break;
    case FailureCategory::kAuthenticationFailed:
      code = ErrorCode::kPermission;
      name = "xKmipAuthenticationFailed";
      break;
    case FailureCategory::kInvalidCredentials:
      code = ErrorCode::kInvalidInput;
      name = "xKmipInvalidCredentials";
      break;
    case FailureCategory::kServerError:
      code = ErrorCode::kConflict;
      name = "xKmipServerError";
      break;
    case FailureCategory::kProtocolError:
      code = ErrorCode::kProtocol;
      name = "xKmipProtocolError";
      break;
    case FailureCategory::kOther:
      break;
  }
  return Error(code, std::move(message), std::move(fix), std::move(name));
}

Result<SslCtxPtr> make_ssl_ctx(const TlsConfig& cfg) {
  auto bad = [](std::string what, std::string fix) {
    std::string detail = openssl_errors();
    return category_error(FailureCategory::kInvalidCredentials,
                          what + (detail.empty() ? std::string() : " (" + detail + ")"), std::move(fix));
  };
  ERR_clear_error();
  SslCtxPtr ctx(SSL_CTX_new(TLS_client_method()));
  if (!ctx) return category_error(FailureCategory::kTlsError, "cannot create TLS context: " + openssl_errors());
  SSL_CTX_set_min_proto_version(ctx.get(), TLS1_2_VERSION);
  SSL_CTX_set_max_proto_version(ctx.get(), cfg.allow_tls13 ? TLS1_3_VERSION : TLS1_2_VERSION);
  if (SSL_CTX_set_cipher_list(ctx.get(), cfg.cipher_list.c_str()) != 1)
    return category_error(FailureCategory::kTlsError, "no usable cipher in the TLS cipher list",
                          "fix tls cipher_list (OpenSSL cipher string)");
  SSL_CTX_set_verify(ctx.get(), SSL_VERIFY_PEER, nullptr);
  SSL_CTX_set_session_cache_mode(ctx.get(), SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
  SSL_CTX_set_mode(ctx.get(), SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
  if (cfg.ca_file.empty() || SSL_CTX_load_verify_locations(ctx.get(), cfg.ca_file.c_str(), nullptr) != 1)
    return bad("cannot load the key server CA bundle '" + cfg.ca_file + "'",
               "point ca_file at the PEM certificate of the CA that signed the key servers");
  if (cfg.cert_file.empty() || SSL_CTX_use_certificate_chain_file(ctx.get(), cfg.cert_file.c_str()) != 1)
    return bad("cannot load the client certificate '" + cfg.cert_file + "'",
               "point cert_file at the PEM client certificate");
  if (cfg.key_file.empty() || SSL_CTX_use_PrivateKey_file(ctx.get(), cfg.key_file.c_str(), SSL_FILETYPE_PEM) != 1)
    return bad("cannot load the client private key '" + cfg.key_file + "'",
               "point key_file at the PEM private key of the client certificate");
  if (SSL_CTX_check_private_key(ctx.get()) != 1)
    return bad("the client private key does not match the client certificate",
               "use the key the client certificate was issued for");
  return ctx;
}

Result<std::unique_ptr<TlsConnection>> TlsConnection::open(SSL_CTX* ctx, const ServerEndpoint& ep,
                                                           const SessionPtr& session, bool keepalive,
                                                           Clock::time_point deadline) {
  STORCRYPT_ASSIGN_OR_RETURN(int fd, connect_tcp(ep, keepalive, deadline));
  std::unique_ptr<TlsConnection> c(new TlsConnection());
  c->fd_ = fd;
  c->peer_ = ep.to_string();
  ERR_clear_error();
  c->ssl_ = SSL_new(ctx);
  if (c->ssl_ == nullptr)
    return category_error(FailureCategory::kTlsError, "cannot create TLS session: " + openssl_errors());
  SSL_set_fd(c->ssl_, fd);
  const std::string& name = ep.verify_name.empty() ? ep.host : ep.verify_name;
  if (is_ip_literal(name)) {
    X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(c->ssl_), name.c_str());
  } else {
    SSL_set_tlsext_host_name(c->ssl_, name.c_str());
    SSL_set1_host(c->ssl_, name.c_str());
  }
  if (session) SSL_set_session(c->ssl_, session.get());
  SigpipeGuard no_sigpipe;
  for (;;) {
    ERR_clear_error();
    int r = SSL_connect(c->ssl_);
    if (r == 1) break;
    int err = SSL_get_error(c->ssl_, r);
    if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) {
      STORCRYPT_TRY(c->wait(err, deadline, "TLS handshake"));
      continue;
    }
    long verify = SSL_get_verify_result(c->ssl_);
    unsigned long e = ERR_peek_error();
    std::string detail = openssl_errors();
    if (verify != X509_V_OK)
      return category_error(
          FailureCategory::kTlsError,
          "key server " + c->peer_ + " certificate rejected: " + X509_verify_cert_error_string(verify),
          "check ca_file is the CA that signed the server certificate and that the certificate "
          "names host '" +
              name + "'");
    if (e != 0 && ERR_GET_LIB(e) == ERR_LIB_SSL && is_client_cert_rejection(ERR_GET_REASON(e)))
      return category_error(
          FailureCategory::kInvalidCredentials,
          "key server " + c->peer_ + " rejected the client certificate during the TLS handshake (" + detail + ")",
          "use a client certificate issued by a CA the key server trusts");
    if (err == SSL_ERROR_SYSCALL || (err == SSL_ERROR_SSL && detail.find("unexpected eof") != std::string::npos) ||
        err == SSL_ERROR_ZERO_RETURN)
      return category_error(FailureCategory::kUnavailable,
                            "key server " + c->peer_ + " closed the connection during the TLS handshake" +
                                (detail.empty() ? std::string() : " (" + detail + ")"),
                            "check that the port speaks KMIP over TLS and that the server accepts this client");
    return category_error(FailureCategory::kTlsError,
                          "TLS handshake with key server " + c->peer_ + " failed: " + detail,
                          "check TLS versions and cipher suites on both sides (PyKMIP needs TLS 1.2 and ECDHE-RSA "
                          "CBC suites)");
  }
  c->last_used_ = Clock::now();
  return c;
}

TlsConnection::~TlsConnection() {
  if (ssl_ != nullptr) {
    SigpipeGuard no_sigpipe;
    if (!peer_closed_ && SSL_is_init_finished(ssl_)) SSL_shutdown(ssl_);  // best effort close_notify; non-blocking
    SSL_free(ssl_);
  }
  if (fd_ >= 0) ::close(fd_);
}

Status TlsConnection::wait(int ssl_err, Clock::time_point deadline, const char* what) {
  pollfd p{fd_, static_cast<short>(ssl_err == SSL_ERROR_WANT_WRITE ? POLLOUT : POLLIN), 0};
  int ms = remaining_ms(deadline);
  int r = ms > 0 ? poll(&p, 1, ms) : 0;
  if (r == 1) return ok_status();
  if (r < 0 && errno == EINTR) return ok_status();
  return category_error(FailureCategory::kUnavailable, std::string(what) + " with key server " + peer_ + " timed out",
                        "check the key server's load and the network; raise the timeout if the server is slow");
}

Error TlsConnection::io_error(int ssl_ret, const char* what) {
  int err = SSL_get_error(ssl_, ssl_ret);
  unsigned long e = ERR_peek_error();
  std::string detail = openssl_errors();
  if (err == SSL_ERROR_ZERO_RETURN || err == SSL_ERROR_SYSCALL ||
      (err == SSL_ERROR_SSL && detail.find("unexpected eof") != std::string::npos)) {
    // The peer may have sent an alert before closing: with TLS 1.3 a server
    // rejects the client certificate after our handshake finished, and a
    // write then fails on the closed socket. Read it to classify the failure.
    ERR_clear_error();
    std::uint8_t probe = 0;
    if (SSL_read(ssl_, &probe, 1) <= 0) {
      unsigned long alert = ERR_peek_error();
      if (alert != 0 && ERR_GET_LIB(alert) == ERR_LIB_SSL && is_client_cert_rejection(ERR_GET_REASON(alert))) {
        peer_closed_ = true;
        return category_error(FailureCategory::kInvalidCredentials,
                              "key server " + peer_ + " rejected the client certificate (" + openssl_errors() + ")",
                              "use a client certificate issued by a CA the key server trusts");
      }
    }
    ERR_clear_error();
    peer_closed_ = true;
    return category_error(FailureCategory::kUnavailable,
                          std::string(what) + ": key server " + peer_ + " closed the connection",
                          "the server dropped the connection; it may have restarted");
  }
  // TLS 1.3: the server checks our certificate after the client finished, so
  // its rejection arrives as an alert on the first read.
  if (e != 0 && ERR_GET_LIB(e) == ERR_LIB_SSL && is_client_cert_rejection(ERR_GET_REASON(e))) {
    peer_closed_ = true;
    return category_error(FailureCategory::kInvalidCredentials,
                          "key server " + peer_ + " rejected the client certificate (" + detail + ")",
                          "use a client certificate issued by a CA the key server trusts");
  }
  peer_closed_ = true;
  return category_error(FailureCategory::kTlsError,
                        std::string(what) + " with key server " + peer_ + " failed: " + detail);
}

Status TlsConnection::send(const Bytes& msg, Clock::time_point deadline) {
  SigpipeGuard no_sigpipe;
  std::size_t off = 0;
  while (off < msg.size()) {
    ERR_clear_error();
    int r = SSL_write(ssl_, msg.data() + off, static_cast<int>(msg.size() - off));
    if (r > 0) {
      off += static_cast<std::size_t>(r);
      continue;
    }
    int err = SSL_get_error(ssl_, r);
    if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) {
      STORCRYPT_TRY(wait(err, deadline, "sending a KMIP request"));
      continue;
    }
    return io_error(r, "sending a KMIP request");
  }
  last_used_ = Clock::now();
  return ok_status();
}

Result<Bytes> TlsConnection::receive(Clock::time_point deadline) {
  SigpipeGuard no_sigpipe;  // SSL_read may write (TLS 1.3 key update, alerts)
  Bytes buf(8);
  std::size_t need = 8, have = 0;
  bool header_done = false;
  for (;;) {
    while (have < need) {
      ERR_clear_error();
      int r = SSL_read(ssl_, buf.data() + have, static_cast<int>(need - have));
      if (r > 0) {
        have += static_cast<std::size_t>(r);
        continue;
      }
      int err = SSL_get_error(ssl_, r);
      if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) {
        STORCRYPT_TRY(wait(err, deadline, "waiting for the KMIP response"));
        continue;
      }
      return io_error(r, "reading the KMIP response");
    }
    if (header_done) break;
    auto total = framed_size(std::span<const std::uint8_t>(buf.data(), 8));
    if (!total.ok()) {
      peer_closed_ = true;  // stream is out of sync; never reuse
      return category_error(FailureCategory::kProtocolError, total.error().message(), total.error().fix());
    }
    need = *total;
    buf.resize(need);
    header_done = true;
  }
  last_used_ = Clock::now();
  return buf;
}

bool TlsConnection::idle_check() {
  if (peer_closed_) return false;
  pollfd p{fd_, POLLIN, 0};
  int r = poll(&p, 1, 0);
  if (r == 0) return true;  // nothing pending: still open
  // Readable while idle: EOF, reset, or an unsolicited message -> not reusable.
  return false;
}

bool TlsConnection::resumed() const { return SSL_session_reused(ssl_) == 1; }

SessionPtr TlsConnection::session() const {
  SSL_SESSION* s = SSL_get1_session(ssl_);
  if (s == nullptr) return nullptr;
  if (SSL_SESSION_is_resumable(s) != 1) {
    SSL_SESSION_free(s);
    return nullptr;
  }
  return SessionPtr(s, SslSessionDeleter());
}

}  // namespace storcrypt::kmip::detail
