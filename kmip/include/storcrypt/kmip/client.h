// storcrypt KMIP client: mutual-TLS connections to an ordered list of key
// servers (primary first), a per-server connection pool with TLS session
// resumption and TCP keepalive, KMIP version negotiation with Discover
// Versions, batching, and stable failure categories.
//
// Thread-safe: one Client may be shared; each call borrows a pooled
// connection. No logging; errors never contain key material.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "storcrypt/common/result.h"
#include "storcrypt/common/secret.h"
#include "storcrypt/kmip/messages.h"
#include "storcrypt/kmip/operations.h"

namespace storcrypt::kmip {

/// Stable failure categories of the KMIP client. Every Error the client
/// returns for a server interaction maps to exactly one of these (also as the
/// Error's name, e.g. "xKmipUnavailable").
enum class FailureCategory {
  kUnavailable,           ///< no server reachable: refused, timed out, closed, DNS
  kTlsError,              ///< handshake failed: server certificate untrusted / wrong host, no common cipher/version
  kAuthenticationFailed,  ///< TLS worked but the server refused our identity (KMIP Authentication Not Successful)
  kInvalidCredentials,    ///< our certificate/key is unusable or the server rejected it during the handshake
  kServerError,           ///< the server answered with a failed result (reason + message attached)
  kProtocolError,         ///< the server sent something that is not valid KMIP
  kOther,                 ///< not a server interaction failure (bad arguments, unsupported feature)
};
std::string_view failure_category_name(FailureCategory c);
/// Category of an Error returned by the client.
FailureCategory failure_category(const Error& e);
/// For kServerError: the KMIP Result Reason the server gave.
std::optional<ResultReason> server_result_reason(const Error& e);

struct ServerEndpoint {
  std::string host;  ///< DNS name or IP literal; verified against the certificate
  std::uint16_t port = 5696;
  /// Name to verify in the server certificate instead of `host` (optional).
  std::string verify_name;
  std::string to_string() const { return host + ":" + std::to_string(port); }
};

struct TlsConfig {
  std::string ca_file;    ///< PEM CA bundle that signed the key servers' certificates
  std::string cert_file;  ///< PEM client certificate (EKU clientAuth)
  std::string key_file;   ///< PEM private key of the client certificate (file mode 0600)
  bool allow_tls13 = true;
  /// TLS 1.2 cipher list: forward-secret AEAD suites first, then the
  /// ECDHE-RSA CBC suites PyKMIP accepts with RSA certificates.
  std::string cipher_list =
      "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
      "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305:"
      "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
      "ECDHE-ECDSA-AES256-SHA384:ECDHE-RSA-AES256-SHA384:"
      "ECDHE-ECDSA-AES128-SHA256:ECDHE-RSA-AES128-SHA256";
};

struct ClientConfig {
  std::vector<ServerEndpoint> servers;  ///< tried in order: primary, then secondaries
  TlsConfig tls;
  std::chrono::milliseconds connect_timeout{5000};  ///< TCP connect + TLS handshake
  std::chrono::milliseconds io_timeout{15000};      ///< one request/response exchange
  /// After a connection-level failure a server is skipped for this long
  /// (unless every server is being skipped).
  std::chrono::milliseconds server_retry_after{5000};
  std::size_t max_idle_connections = 4;  ///< per server
  std::chrono::seconds max_idle_age{300};
  bool session_resumption = true;
  bool tcp_keepalive = true;
  /// Versions offered in Discover Versions, most preferred first. The first
  /// one the server also supports is used.
  std::vector<ProtocolVersion> versions{{1, 4}, {1, 3}, {1, 2}, {1, 1}, {1, 0}};
  /// Skip Discover Versions and always speak this version.
  std::optional<ProtocolVersion> fixed_version;
};

struct ClientStats {
  std::uint64_t connections_opened = 0;
  std::uint64_t sessions_resumed = 0;
  std::uint64_t requests = 0;
  std::uint64_t retries_on_fresh_connection = 0;
  std::uint64_t failovers = 0;
  std::string last_tls_version;  ///< of the most recently opened connection, e.g. "TLSv1.2"
  std::string last_cipher;       ///< e.g. "ECDHE-RSA-AES256-SHA384"
};

/// Result of one item of a batch.
struct BatchResult {
  Result<ResponseItem> item;  ///< failed items carry a kServerError Error
};

class Client {
 public:
  /// Loads and checks the TLS credentials (kInvalidCredentials on failure);
  /// connects lazily.
  static Result<std::unique_ptr<Client>> create(ClientConfig config);
  ~Client();
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  /// Version negotiated with the first reachable server.
  Result<ProtocolVersion> negotiated_version();
  Result<std::vector<ProtocolVersion>> discover_versions(const std::vector<ProtocolVersion>& offer);
  Result<QueryResult> query(const std::vector<QueryFunction>& functions);

  /// Create an AES key; not retried after the request may have reached a server.
  Result<std::string> create_key(const CreateKeyParams& p);
  Result<std::string> register_object(const RegisterParams& p, const SecretBytes& material);
  Result<ManagedObject> get(const std::string& uid);
  /// Get several objects in one batch (one round trip). Per-item results.
  Result<std::vector<Result<ManagedObject>>> get_many(const std::vector<std::string>& uids);
  Result<std::vector<std::string>> locate(const LocateFilter& f);
  Status activate(const std::string& uid);
  Status revoke(const std::string& uid, const RevokeParams& p);
  Status destroy(const std::string& uid);
  Result<std::vector<Attribute>> get_attributes(const std::string& uid, const std::vector<std::string>& names);
  Status add_attribute(const std::string& uid, const Attribute& a);
  /// `current` names the value to replace (KMIP 2.0, multi-valued attributes).
  Status modify_attribute(const std::string& uid, const Attribute& a,
                          const std::optional<Attribute>& current = std::nullopt);

  /// Low level: send a batch built for the negotiated version. `idempotent`
  /// allows one resend on a fresh connection and failover after the request
  /// may have been delivered.
  using BatchBuilder = std::function<Result<std::vector<RequestItem>>(ProtocolVersion)>;
  Result<std::vector<BatchResult>> execute(const BatchBuilder& build, bool idempotent, const RequestOptions& opts = {});

  ClientStats stats() const;
  /// Drop all pooled connections (keeps cached TLS sessions).
  void close_idle_connections();

 private:
  struct Impl;
  explicit Client(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace storcrypt::kmip
