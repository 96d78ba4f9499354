#include "ipsec/ipsec_store.h"

#include <filesystem>

#include "storcrypt/common/files.h"
#include "storcrypt/policy/text.h"

namespace storcrypt::controller {

namespace pol = storcrypt::policy;

namespace {
const char* row_name(ListKind which) { return which == ListKind::kCommitted ? "committed" : "uncommitted"; }
}  // namespace

Status IpsecStore::migrate(Db& db) {
  return db.migrate("ipsec", {{1, "ipsec policy lists and settings",
                               "CREATE TABLE ipsec_lists(which TEXT PRIMARY KEY, text TEXT NOT NULL);"
                               "CREATE TABLE ipsec_settings(key TEXT PRIMARY KEY, value TEXT NOT NULL);"}});
}

Result<std::optional<pol::PolicyList>> IpsecStore::load_list(ListKind which) {
  STORCRYPT_ASSIGN_OR_RETURN(auto rows,
                             db_.query("SELECT text FROM ipsec_lists WHERE which = ?1", {std::string(row_name(which))}));
  if (rows.empty()) return std::optional<pol::PolicyList>();
  auto l = pol::import_policies(rows[0].text(0));
  if (!l.ok()) return std::move(l).error().context("stored " + std::string(row_name(which)) + " policy list");
  return std::optional<pol::PolicyList>(std::move(l).value());
}

Status IpsecStore::save_list(ListKind which, const pol::PolicyList& l) {
  return db_.exec("INSERT OR REPLACE INTO ipsec_lists(which, text) VALUES(?1, ?2)",
                  {std::string(row_name(which)), pol::export_policies(l)});
}

Result<std::string> IpsecStore::setting(const std::string& key, const std::string& dflt) {
  STORCRYPT_ASSIGN_OR_RETURN(auto rows, db_.query("SELECT value FROM ipsec_settings WHERE key = ?1", {key}));
  return rows.empty() ? dflt : rows[0].text(0);
}

Status IpsecStore::set_setting(const std::string& key, const std::string& value) {
  return db_.exec("INSERT OR REPLACE INTO ipsec_settings(key, value) VALUES(?1, ?2)", {key, value});
}

Result<std::vector<pol::NamedKey>> IpsecStore::load_keys() {
  std::error_code ec;
  if (!std::filesystem::exists(keys_path_, ec)) return std::vector<pol::NamedKey>();
  STORCRYPT_ASSIGN_OR_RETURN(std::string text, pol::read_file(keys_path_));
  SecretBytes plain(reinterpret_cast<const std::uint8_t*>(text.data()), text.size());
  secure_wipe(text);
  auto parsed = pol::parse_key_payload(plain.view());
  if (!parsed.ok()) return std::move(parsed).error().context(keys_path_);
  return parsed;
}

Status IpsecStore::save_keys(const pol::KeyStore& keys) {
  SecretBytes plain = pol::key_payload(pol::all_keys(keys));
  return write_file_atomic(keys_path_, plain.view(), 0600);
}

}  // namespace storcrypt::controller
