#include "ipsec/ipsec_store.h"

#include <openssl/evp.h>

#include <filesystem>

#include "storcrypt/common/files.h"
#include "storcrypt/policy/text.h"

namespace storcrypt::controller {

namespace pol = storcrypt::policy;

namespace {
const char* row_name(ListKind which) { return which == ListKind::kCommitted ? "committed" : "uncommitted"; }

constexpr std::string_view kGenerationTag = "#generation ";

/// The length of the `#generation <id>` first line (0 when there is none).
std::size_t generation_line(std::string_view text) {
  if (text.substr(0, kGenerationTag.size()) != kGenerationTag) return 0;
  std::size_t nl = text.find('\n');
  return nl == std::string_view::npos ? 0 : nl + 1;
}

std::string_view as_text(const SecretBytes& b) {
  return {reinterpret_cast<const char*>(b.data()), b.size()};
}

std::string sha256_hex(std::string_view text) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  if (EVP_Digest(text.data(), text.size(), md, &n, EVP_sha256(), nullptr) != 1) return {};
  static const char* hex = "0123456789abcdef";
  std::string out;
  for (unsigned i = 0; i < n; ++i) {
    out += hex[md[i] >> 4];
    out += hex[md[i] & 15];
  }
  return out;
}
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
  STORCRYPT_ASSIGN_OR_RETURN(SecretBytes text, read_secret_file(keys_path_));
  std::size_t skip = generation_line(as_text(text));
  auto parsed = pol::parse_key_payload(text.view().subspan(skip));
  if (!parsed.ok()) return std::move(parsed).error().context(keys_path_);
  return parsed;
}

Status IpsecStore::save_keys(const pol::KeyStore& keys, const std::string& generation) {
  SecretBytes payload = pol::key_payload(pol::all_keys(keys));
  if (generation.empty()) return write_file_atomic(keys_path_, payload.view(), 0600);
  if (generation.find('\n') != std::string::npos)
    return Error(ErrorCode::kInternal, "key file generation '" + generation + "' spans lines");
  std::string line = std::string(kGenerationTag) + generation + "\n";
  SecretBytes plain(line.size() + payload.size());
  std::copy(line.begin(), line.end(), plain.data());
  std::copy(payload.view().begin(), payload.view().end(), plain.data() + line.size());
  return write_file_atomic(keys_path_, plain.view(), 0600);
}

Result<std::string> IpsecStore::key_generation() {
  std::error_code ec;
  if (!std::filesystem::exists(keys_path_, ec)) return std::string();
  // The rest of the file is key material: read into wiped memory, copy out only the first line.
  STORCRYPT_ASSIGN_OR_RETURN(SecretBytes text, read_secret_file(keys_path_));
  std::string_view t = as_text(text);
  std::size_t n = generation_line(t);
  return n ? std::string(t.substr(kGenerationTag.size(), n - 1 - kGenerationTag.size())) : std::string();
}

std::string IpsecStore::list_digest(const pol::PolicyList& l) { return sha256_hex(pol::export_policies(l)); }

Result<std::string> IpsecStore::stored_list_digest(ListKind which) {
  STORCRYPT_ASSIGN_OR_RETURN(auto rows,
                             db_.query("SELECT text FROM ipsec_lists WHERE which = ?1", {std::string(row_name(which))}));
  if (rows.empty()) return std::string();
  return sha256_hex(rows[0].text(0));
}

}  // namespace storcrypt::controller
