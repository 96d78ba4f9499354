// storcrypt controller, external key management over KMIP (issue 17, first
// slice): the client key pair and its CSR, key servers and key providers,
// behind the Element API methods registered in kmip_methods.cpp.
//
// State:
//   <state>/kmip/client-key.pem   the client private key (0600, PKCS#8 PEM);
//                                 read into SecretBytes, never logged, never
//                                 part of a response
//   SQLite component "kmip":
//     kmip_client(id=1, subject JSON, key_type, created_at)
//     kmip_key_providers(id, name UNIQUE, active)
//     kmip_key_servers(id, name UNIQUE, hostnames JSON array (priority
//       order), port, ca_pem, client_cert_pem, provider_id, provider_position)
//   A key server belongs to at most one provider; a provider's servers are
//   kept in the order they were added.
//
// Rules (errors named as the Element API names them):
//   CreatePublicPrivateKeyPair   xKeyPairInUse while a key server holding a
//                                client certificate of the pair is assigned
//                                to a provider
//   GetClientCertificateSignRequest  xSslKeysDoNotExist / xCsrGenerationFailed
//   DeleteKeyServerKmip          xKeyServerHasProviderAssigned
//   DeleteKeyProviderKmip        xKeyProviderActive (also while volumes are
//                                keyed from it)
//   EnableEncryptionAtRest       xNoOnlineKeyProviderWithThatID,
//     (keyProviderID of a KMIP   xKeyProviderUnavailable (no key server, or
//     key provider)              one fails the probe), xKeyProviderActive
//                                (another provider is active); sets it active
//   DisableEncryptionAtRest      xKeyProviderHasVolumes while volumes are keyed
//                                from the active provider (dm-crypt volumes
//                                cannot fall back to local keys); else inactive
//   RemoveKeyServerFromProviderKmip  xKeyServerLastForActiveProvider
//   TestKeyServerKmip / TestKeyProviderKmip: the KMIP client's failure
//     category as the error name: xKeyServerUnavailable (connect),
//     xKeyServerSslError (TLS: server certificate untrusted, no common
//     version/cipher), xKeyServerAuthFailed (TLS worked, the server refused
//     our identity), xKeyServerInvalidAuth (the server refused our
//     certificate during the handshake, or our credentials are unusable),
//     xKeyServerFailed (the server answered with an error / spoke no KMIP);
//     TestKeyProviderKmip on a provider without servers:
//     xKeyProviderConfigurationError.
// "Active" (the node's at-rest key source: new volumes keep their keys on it)
// is set by EnableEncryptionAtRest (sed_methods.cpp) and cleared by
// DisableEncryptionAtRest.
//
// Thread safety: public members are called with `mu` held, except probe()
// which does network I/O and is called without it (on a snapshot).
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "storcrypt/certs/certs.h"
#include "storcrypt/common/result.h"
#include "storcrypt/controller/db.h"
#include "storcrypt/controller/dispatcher.h"
#include "storcrypt/keys/kmip_provider.h"

namespace storcrypt::controller {

/// One endpoint to test: TLS handshake with the client certificate, then a
/// harmless KMIP request (Discover Versions + Query). Files are PEM.
struct KmipProbeTarget {
  std::string hostname;
  std::uint16_t port = 5696;
  std::string ca_file;
  std::string cert_file;
  std::string key_file;
};

/// The seam tests replace (Context::set_service before registration): probe
/// one endpoint; on failure an Error of the KMIP client (its name is the
/// failure category, e.g. "xKmipUnavailable", see storcrypt/kmip/client.h).
/// The result describes the server (negotiated version, vendor).
struct KmipProber {
  std::function<Result<nlohmann::json>(const KmipProbeTarget&)> probe;
};
/// The real prober (storcrypt::kmip::Client); the fault watcher uses shorter timeouts.
KmipProber real_kmip_prober(std::chrono::milliseconds connect_timeout = std::chrono::milliseconds(5000),
                            std::chrono::milliseconds io_timeout = std::chrono::milliseconds(10000));

struct KmipKeyServer {
  int64_t id = 0;
  std::string name;
  std::vector<std::string> hostnames;  ///< priority order
  int port = 5696;
  std::string ca_pem;           ///< one or more certificates
  std::string client_cert_pem;  ///< signed from our CSR
  std::optional<int64_t> provider_id;
};

struct KmipKeyProvider {
  int64_t id = 0;
  std::string name;
  bool active = false;
  std::vector<int64_t> server_ids;  ///< in the order added
};

/// Changes of ModifyKeyServerKmip (unset: unchanged).
struct KmipKeyServerChanges {
  std::optional<std::string> name;
  std::optional<std::vector<std::string>> hostnames;
  std::optional<int> port;
  std::optional<std::string> ca_pem;
  std::optional<std::string> client_cert_pem;
};

class KmipService {
 public:
  KmipService(Db* db, std::filesystem::path dir, KmipProber prober)
      : db_(db), dir_(std::move(dir)), prober_(std::move(prober)) {}

  std::mutex mu;  // every public member except probe_servers() is called with mu held

  static Status migrate(Db& db);
  Status load() { return migrate(*db_); }

  // ---- client identity
  /// New key pair (EC P-384) replacing the old one; returns the key type
  /// and subject.
  Result<nlohmann::json> create_key_pair(const certs::SubjectFields& subject);
  /// PEM CSR of the current key pair (clientAuth).
  Result<std::string> csr_pem() const;
  bool has_key_pair() const;
  std::filesystem::path key_path() const { return dir_ / "client-key.pem"; }

  // ---- key servers
  /// Validates every field; warnings (e.g. no clientAuth EKU) are returned.
  Result<KmipKeyServer> create_server(KmipKeyServer s, std::vector<std::string>* warnings);
  Result<KmipKeyServer> modify_server(int64_t id, const KmipKeyServerChanges& c, std::vector<std::string>* warnings);
  Status delete_server(int64_t id);
  Result<KmipKeyServer> server(int64_t id) const;
  Result<std::vector<KmipKeyServer>> servers(std::optional<int64_t> provider_id = std::nullopt) const;

  // ---- key providers
  Result<KmipKeyProvider> create_provider(const std::string& name);
  Status delete_provider(int64_t id);
  Result<KmipKeyProvider> provider(int64_t id) const;
  Result<std::vector<KmipKeyProvider>> providers() const;
  /// Idempotent when the server is already in this provider.
  Result<KmipKeyProvider> add_server_to_provider(int64_t provider_id, int64_t server_id);
  Result<KmipKeyProvider> remove_server_from_provider(int64_t provider_id, int64_t server_id);
  /// For encryption at rest (EnableEncryptionAtRest / Disable...).
  Status set_provider_active(int64_t id, bool active);

  // ---- keys (issue 17, encryption at rest)
  /// The key provider `id` as a keys::KeyProvider (kind "kmip", id the
  /// decimal provider id): one kmip::Client per key server (its host names in
  /// order), servers in the provider's order. Key names start with
  /// `system_id`. Writes the servers' PEM files under the state directory.
  Result<std::shared_ptr<keys::KmipKeyProvider>> make_key_provider(int64_t id, const std::string& system_id) const;
  /// EnableEncryptionAtRest with provider `id`, before the probe: the
  /// provider's key servers. xNoOnlineKeyProviderWithThatID (no such
  /// provider), xKeyProviderUnavailable (no key servers), xKeyProviderActive
  /// (another provider is active).
  Result<std::vector<KmipKeyServer>> at_rest_candidate(int64_t id) const;
  /// Volumes registered on this node whose key provider `id` keeps their key.
  Result<int64_t> volumes_keyed_from(int64_t id) const;
  /// The active provider (at most one), if any.
  Result<std::optional<KmipKeyProvider>> active_provider() const;
  /// A fingerprint of what make_key_provider() builds from (servers, their
  /// order, host names, port, certificates): a cached provider is rebuilt
  /// when it changes.
  Result<std::string> provider_fingerprint(int64_t id) const;

  // ---- tests (network I/O: call without mu, on a snapshot)
  /// Probe every hostname of every server, in order. Ok with per-hostname
  /// results, or the first failure as an xKeyServer* error naming the server
  /// and host.
  Result<nlohmann::json> probe_servers(const std::vector<KmipKeyServer>& servers) const;

  /// JSON of a server / provider (certificates are public; no key material).
  nlohmann::json server_json(const KmipKeyServer& s) const;
  nlohmann::json provider_json(const KmipKeyProvider& p) const;

 private:
  Status validate(const KmipKeyServer& s, std::vector<std::string>* warnings) const;
  Result<bool> provider_active(int64_t id) const;

  Db* db_;
  std::filesystem::path dir_;
  KmipProber prober_;
};

/// The node's KMIP service, shared by the kmip, volume and ear nouns (created
/// by whichever registers first; the service is also set as
/// ctx.service<KmipService>()). svc is null without a database.
struct KmipState {
  std::shared_ptr<KmipService> svc;
  std::optional<Error> load_error;
  /// Set by the at-rest nouns (volume_methods.cpp) when volumes are
  /// configured: migrate every key-media volume to the active KMIP key
  /// provider `id` (ear.migrate). Called without KmipService::mu held.
  std::function<Result<nlohmann::json>(int64_t id)> migrate_volumes;
};
std::shared_ptr<KmipState> kmip_state_for(Context& ctx);

/// Map an Error of the KMIP client to the Element API error name (see above).
Error kmip_server_error(const Error& e, const std::string& where);

}  // namespace storcrypt::controller
