// storcrypt controller, IPsec: the persistence of the IPsec service.
//
//   SQLite component "ipsec" (Db::migrate):
//     ipsec_lists(which, text)     the uncommitted and the committed policy
//                                  list, each as a policy file (policy/text.h;
//                                  named address selectors included)
//     ipsec_settings(key, value)   default_disposition, enabled, applying
//   <state>/ipsec-keys (0600)      the named keys, `<name> <algorithm> <hex>`
//                                  per line (policy::key_payload), replaced
//                                  atomically (write to .tmp, rename)
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
  /// Replace the key file with every key of the store.
  Status save_keys(const policy::KeyStore& keys);
  const std::string& keys_path() const { return keys_path_; }

 private:
  Db& db_;
  std::string keys_path_;
};

}  // namespace storcrypt::controller
