// storcrypt controller, IPsec: the persistence of the IPsec service.
//
//   SQLite component "ipsec" (Db::migrate):
//     ipsec_lists(which, text)     the uncommitted and the committed policy
//                                  list, each as a policy file (policy/text.h;
//                                  named address selectors included)
//     ipsec_settings(key, value)   default_disposition, enabled, applying
//   <state>/ipsec-keys (0600)      the named keys, `<name> <algorithm> <hex>`
//                                  per line (policy::key_payload), after an
//                                  optional first line `#generation <id>`
//                                  naming the journalled change that wrote
//                                  it; replaced atomically (write to .tmp,
//                                  rename)
//
// Rows only: what the values mean and when they change is IpsecService's.
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "storcrypt/common/result.h"
#include "storcrypt/controller/db.h"
#include "storcrypt/policy/keys.h"
#include "storcrypt/policy/model.h"

namespace storcrypt::controller {

enum class ListKind { kUncommitted, kCommitted };

class IpsecStore {
 public:
  IpsecStore(Db& db, std::string keys_path) : db_(db), keys_path_(std::move(keys_path)) {}

  /// Create or upgrade the tables (called once at registration).
  static Status migrate(Db& db);

  /// The stored list of a kind (nullopt when never stored).
  Result<std::optional<policy::PolicyList>> load_list(ListKind which);
  Status save_list(ListKind which, const policy::PolicyList& l);

  /// A setting, or `dflt` when unset.
  Result<std::string> setting(const std::string& key, const std::string& dflt);
  Status set_setting(const std::string& key, const std::string& value);

  /// Run fn in one SQLite transaction (rolled back on error).
  Status transaction(const std::function<Status()>& fn) { return db_.transaction(fn); }

  /// The keys of the key file (empty when it does not exist yet).
  Result<std::vector<policy::NamedKey>> load_keys();
  /// Replace the key file with every key of the store; a non-empty
  /// `generation` (no key material: the journal operation that writes it)
  /// is recorded in the file, so recovery after a crash can tell whether
  /// this write happened.
  Status save_keys(const policy::KeyStore& keys, const std::string& generation = "");
  /// The generation recorded in the key file ("" when none or no file).
  Result<std::string> key_generation();
  /// SHA-256 (hex) of a policy list as stored (export_policies text): the
  /// journal's record of which list a commit stores.
  static std::string list_digest(const policy::PolicyList& l);
  /// The digest of the stored list of a kind ("" when never stored).
  Result<std::string> stored_list_digest(ListKind which);
  const std::string& keys_path() const { return keys_path_; }

 private:
  Db& db_;
  std::string keys_path_;
};

}  // namespace storcrypt::controller
