// storcrypt: access keys kept on KMIP key servers (issue 17), a
// keys::KeyProvider of kind "kmip" whose id is the key provider's id.
//
// Its own library (storcrypt::keys_kmip) over storcrypt::keys and
// storcrypt::kmip: keys/ stays free of the KMIP client, and the controller
// builds instances from its key provider table.
//
// A provider has key servers in priority order. Each key server is one KMIP
// service (its host names are one cluster: the kmip::Client fails over between
// them); the servers of a provider are independent (as two PyKMIP servers
// are), so every key is registered on each of them.
//
// On the server an access key (KeyRef{key_id, generation}) is a Symmetric Key
// (AES, 256 bits, usage Encrypt|Decrypt) registered with the value the volume
// manager generated (store() is handed the key; a server-side Create would
// need a second interface), Activated, with
//   Name         <prefix>-<key_id>-g<generation>
//   Object Group <prefix>-<key_id>
// (prefix: the system id). The name is derived, not a counter: after the
// state database is lost the key is still found by name, and a key id is
// never reused while any generation of it exists (VolumeManager::create asks
// holds()). The server's Unique Identifier of each key is kept in memory so
// fetch() Gets directly; on a miss (restart) it Locates by name.
//
//   store    per server: Locate by name (idempotent after a timeout: a key of
//            that name with the same value is taken as stored, a different
//            value is a conflict, never overwritten), else Register +
//            Activate. Fails, naming the server, unless every server holds it.
//   fetch    servers in priority order; the first that returns the key wins
//            (earlier failures become warnings). kNotFound only when every
//            server answered and none holds it.
//   retire / destroy_all   per server: Revoke (when Active) + Destroy; a
//            server that cannot be reached is an error naming it (the other
//            servers are still done).
//   holds    Locate by Object Group on every server.
// Key material lives only in SecretBytes; errors and warnings never carry it.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "storcrypt/keys/key_provider.h"
#include "storcrypt/kmip/client.h"

namespace storcrypt::keys {

inline constexpr const char* kKmipProviderKind = "kmip";

/// The KMIP operations the provider needs from one key server. The real one
/// wraps a kmip::Client; unit tests use a fake.
class KmipKeyServerOps {
 public:
  virtual ~KmipKeyServerOps() = default;
  virtual Result<std::vector<std::string>> locate(const kmip::LocateFilter& f) = 0;
  virtual Result<std::string> register_key(const kmip::RegisterParams& p, const SecretBytes& material) = 0;
  virtual Status activate(const std::string& uid) = 0;
  virtual Result<kmip::ManagedObject> get(const std::string& uid) = 0;
  /// The object's State attribute.
  virtual Result<kmip::State> state(const std::string& uid) = 0;
  virtual Status revoke(const std::string& uid, const kmip::RevokeParams& p) = 0;
  virtual Status destroy(const std::string& uid) = 0;
};

/// KmipKeyServerOps over a kmip::Client.
std::unique_ptr<KmipKeyServerOps> make_kmip_client_ops(std::unique_ptr<kmip::Client> client);

struct KmipServerHandle {
  std::string label;  ///< names the server in errors, e.g. "key server 3 ('kms1')"
  std::shared_ptr<KmipKeyServerOps> ops;
};

struct KmipProviderConfig {
  std::string provider_id;  ///< recorded in LUKS2 tokens
  std::string name_prefix;  ///< the system id
  /// Turns an Error of a server operation into the caller's error (e.g. the
  /// Element API names); `where` names the server and the operation. Unset:
  /// the error with `where` as context.
  std::function<Error(const Error& e, const std::string& where)> map_error;
};

class KmipKeyProvider final : public KeyProvider {
 public:
  KmipKeyProvider(KmipProviderConfig cfg, std::vector<KmipServerHandle> servers);

  std::string kind() const override { return kKmipProviderKind; }
  std::string id() const override { return cfg_.provider_id; }

  Result<ProviderReport> store(const KeyRef& ref, const SecretBytes& ak) override;
  Result<FetchedKey> fetch(const KeyRef& ref) override;
  Result<ProviderReport> rekey(const KeyRef& current, const KeyRef& next, const SecretBytes& new_ak) override;
  Result<ProviderReport> retire(const KeyRef& ref) override;
  Result<ProviderReport> destroy_all(const std::string& key_id) override;
  Result<bool> holds(const std::string& key_id) override;

  /// The KMIP Name of a key / Object Group of a key id.
  std::string object_name(const KeyRef& ref) const;
  std::string object_group(const std::string& key_id) const;
  /// Server-side unique identifier of a stored key on server `index` (known
  /// after store() or fetch() in this process).
  std::optional<std::string> cached_uid(std::size_t index, const KeyRef& ref) const;
  std::size_t server_count() const { return servers_.size(); }

 private:
  Error server_error(const Error& e, std::size_t index, const std::string& what) const;
  /// Revoke (when active) and destroy the objects `uids` on one server.
  Status destroy_objects(std::size_t index, const std::vector<std::string>& uids, std::size_t* removed);
  Result<ProviderReport> destroy_matching(const kmip::LocateFilter& f, const std::string& what);
  void remember(std::size_t index, const std::string& name, const std::string& uid);
  void forget(std::size_t index, const std::string& uid);

  KmipProviderConfig cfg_;
  std::vector<KmipServerHandle> servers_;
  mutable std::mutex mu_;                                            // guards uids_
  std::map<std::pair<std::size_t, std::string>, std::string> uids_;  ///< (server, name) -> uid
};

}  // namespace storcrypt::keys
