// Internal: one mutual-TLS connection to a key server (plain OpenSSL on a
// non-blocking socket, poll()-based timeouts).
#pragma once

#include <openssl/ssl.h>

#include <chrono>
#include <memory>
#include <string>

#include "storcrypt/common/result.h"
#include "storcrypt/kmip/client.h"
#include "storcrypt/kmip/ttlv.h"

namespace storcrypt::kmip::detail {

using Clock = std::chrono::steady_clock;

struct SslCtxDeleter {
  void operator()(SSL_CTX* c) const { SSL_CTX_free(c); }
};
struct SslSessionDeleter {
  void operator()(SSL_SESSION* s) const { SSL_SESSION_free(s); }
};
using SslCtxPtr = std::unique_ptr<SSL_CTX, SslCtxDeleter>;
using SessionPtr = std::shared_ptr<SSL_SESSION>;

/// Error with a category name ("xKmipUnavailable", ...).
Error category_error(FailureCategory c, std::string message, std::string fix = {});

/// Build the client SSL_CTX: TLS 1.2 (and 1.3 unless disabled), cipher list,
/// CA bundle, client certificate and key (checked to match).
Result<SslCtxPtr> make_ssl_ctx(const TlsConfig& cfg);

class TlsConnection {
 public:
  /// TCP connect + TLS handshake (+ resumption with `session` when given).
  static Result<std::unique_ptr<TlsConnection>> open(SSL_CTX* ctx, const ServerEndpoint& ep, const SessionPtr& session,
                                                     bool keepalive, Clock::time_point deadline);
  ~TlsConnection();

  /// Write a whole message. Fails with kUnavailable (peer_closed() tells EOF/reset).
  Status send(const Bytes& msg, Clock::time_point deadline);
  /// Read one whole TTLV message (8-byte header, then Length bytes).
  Result<Bytes> receive(Clock::time_point deadline);
  /// False when the peer closed the connection while it sat idle.
  bool idle_check();
  bool peer_closed() const { return peer_closed_; }
  bool resumed() const;
  std::string tls_version() const { return SSL_get_version(ssl_); }
  std::string cipher() const { return SSL_get_cipher_name(ssl_); }
  /// Current session for resumption, when resumable.
  SessionPtr session() const;
  Clock::time_point last_used() const { return last_used_; }

 private:
  TlsConnection() = default;
  Status wait(int ssl_err, Clock::time_point deadline, const char* what);
  Error io_error(int ssl_ret, const char* what);

  int fd_ = -1;
  SSL* ssl_ = nullptr;
  std::string peer_;
  bool peer_closed_ = false;
  Clock::time_point last_used_{};
};

}  // namespace storcrypt::kmip::detail
