#include "storcrypt/policy/keys.h"

#include <fcntl.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/params.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <fstream>
#include <memory>
#include <sstream>

#include "storcrypt/common/fd.h"
#include "storcrypt/common/hex.h"

namespace storcrypt::policy {
namespace {

constexpr std::string_view kMagic = "storcrypt-key-file 1";
constexpr std::size_t kSaltBytes = 16;
constexpr std::size_t kNonceBytes = 12;
constexpr std::size_t kTagBytes = 16;

Error length_error(std::string_view name, Algorithm alg, std::size_t got) {
  return Error(ErrorCode::kInvalidInput,
               "key '" + std::string(name) + "': " + std::string(to_string(alg)) + " needs a key of " +
                   std::to_string(algorithm_key_bytes(alg)) + " bytes, the value has " + std::to_string(got),
               "enter exactly " + std::to_string(algorithm_key_bytes(alg)) + " bytes (" +
                   std::to_string(2 * algorithm_key_bytes(alg)) + " hex digits), or let storcrypt generate it");
}

Error damaged(std::string what) {
  return Error(ErrorCode::kInvalidInput, "key file is damaged: " + std::move(what),
               "export the keys again on the partner and copy the whole file");
}

Error wrong_passphrase() {
  return Error(ErrorCode::kPermission, "wrong passphrase or damaged key file",
               "enter the passphrase used for the export; if it is right, export the keys again");
}

struct KdfDel {
  void operator()(EVP_KDF* k) const { EVP_KDF_free(k); }
  void operator()(EVP_KDF_CTX* c) const { EVP_KDF_CTX_free(c); }
  void operator()(EVP_CIPHER_CTX* c) const { EVP_CIPHER_CTX_free(c); }
};

Status check_kdf_params(const KeyFileEnvelope& e) {
  if (e.kdf == Kdf::kScrypt) {
    if (e.scrypt_n < 1024 || e.scrypt_n > (1u << 22) || (e.scrypt_n & (e.scrypt_n - 1)) != 0 || e.scrypt_r < 1 ||
        e.scrypt_r > 32 || e.scrypt_p < 1 || e.scrypt_p > 16 || e.scrypt_n * e.scrypt_r * 128 > (1ull << 31)) {
      return Error(ErrorCode::kInvalidInput, "scrypt parameters out of range",
                   "use N a power of two from 1024 to 4194304, r 1-32, p 1-16, at most 2 GiB of memory");
    }
  } else if (e.pbkdf2_iterations < 1000 || e.pbkdf2_iterations > 10000000) {
    return Error(ErrorCode::kInvalidInput, "PBKDF2 iterations out of range", "use 1000 to 10000000 iterations");
  }
  return ok_status();
}

Result<SecretBytes> derive(const KeyFileEnvelope& e, const SecretBytes& pass) {
  STORCRYPT_TRY(check_kdf_params(e));
  std::unique_ptr<EVP_KDF, KdfDel> kdf(EVP_KDF_fetch(nullptr, e.kdf == Kdf::kScrypt ? "SCRYPT" : "PBKDF2", nullptr));
  if (!kdf) return Error(ErrorCode::kUnsupported, "OpenSSL lacks the key derivation function");
  std::unique_ptr<EVP_KDF_CTX, KdfDel> ctx(EVP_KDF_CTX_new(kdf.get()));
  if (!ctx) return Error(ErrorCode::kInternal, "EVP_KDF_CTX_new failed");
  // OpenSSL does not write through these pointers; the casts satisfy its C API.
  void* pw = const_cast<std::uint8_t*>(pass.data());
  void* salt = const_cast<std::uint8_t*>(e.salt.data());
  std::uint64_t n = e.scrypt_n, iter = e.pbkdf2_iterations, maxmem = (1ull << 31) + (1ull << 20);
  std::uint32_t r = e.scrypt_r, p = e.scrypt_p;
  char digest[] = "SHA256";
  OSSL_PARAM params[7];
  int i = 0;
  params[i++] = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_PASSWORD, pass.empty() ? nullptr : pw, pass.size());
  params[i++] = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SALT, salt, e.salt.size());
  if (e.kdf == Kdf::kScrypt) {
    params[i++] = OSSL_PARAM_construct_uint64(OSSL_KDF_PARAM_SCRYPT_N, &n);
    params[i++] = OSSL_PARAM_construct_uint32(OSSL_KDF_PARAM_SCRYPT_R, &r);
    params[i++] = OSSL_PARAM_construct_uint32(OSSL_KDF_PARAM_SCRYPT_P, &p);
    params[i++] = OSSL_PARAM_construct_uint64(OSSL_KDF_PARAM_SCRYPT_MAXMEM, &maxmem);
  } else {
    params[i++] = OSSL_PARAM_construct_uint64(OSSL_KDF_PARAM_ITER, &iter);
    params[i++] = OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, digest, 0);
  }
  params[i] = OSSL_PARAM_construct_end();
  SecretBytes key(32);
  if (EVP_KDF_derive(ctx.get(), key.data(), key.size(), params) != 1) {
    return Error(ErrorCode::kInternal, "key derivation failed");
  }
  return key;
}

std::string header_text(const KeyFileEnvelope& e) {
  std::ostringstream os;
  os << kMagic << "\n";
  if (e.kdf == Kdf::kScrypt) {
    os << "kdf = scrypt\nscrypt-n = " << e.scrypt_n << "\nscrypt-r = " << e.scrypt_r << "\nscrypt-p = " << e.scrypt_p
       << "\n";
  } else {
    os << "kdf = pbkdf2-sha256\npbkdf2-iterations = " << e.pbkdf2_iterations << "\n";
  }
  os << "salt = " << to_hex(e.salt) << "\nnonce = " << to_hex(e.nonce) << "\n";
  return os.str();
}

template <typename T>
bool parse_uint(std::string_view s, T& out) {
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
  return !s.empty() && ec == std::errc{} && p == s.data() + s.size();
}

}  // namespace

Status check_key_name(std::string_view n) {
  const bool ok = !n.empty() && n.size() <= 64 && std::all_of(n.begin(), n.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '_' ||
           c == '.';
  });
  if (!ok) {
    return Error(ErrorCode::kInvalidInput, "key name '" + std::string(n.substr(0, 64)) + "' is not valid",
                 "use 1-64 characters from A-Z a-z 0-9 . _ -");
  }
  return ok_status();
}

Status KeyStore::add(NamedKey key, bool replace) {
  STORCRYPT_TRY(check_key_name(key.name));
  if (key.value.size() != algorithm_key_bytes(key.algorithm)) {
    return length_error(key.name, key.algorithm, key.value.size());
  }
  if (!replace && keys_.count(key.name)) {
    return Error(ErrorCode::kConflict, "a key named '" + key.name + "' already exists",
                 "choose another name or delete the old key first");
  }
  std::string name = key.name;
  keys_.insert_or_assign(std::move(name), std::move(key));
  return ok_status();
}

Status KeyStore::create_random(std::string name, Algorithm alg) {
  STORCRYPT_ASSIGN_OR_RETURN(SecretBytes v, SecretBytes::random(algorithm_key_bytes(alg)));
  return add({std::move(name), alg, std::move(v)});
}

Status KeyStore::create_hex(std::string name, Algorithm alg, std::string_view hex) {
  auto v = SecretBytes::from_hex(hex);
  if (!v.ok()) {
    return Error(ErrorCode::kInvalidInput, "key '" + name + "': the value is not hexadecimal",
                 "enter hex digits 0-9 a-f only, without separators");
  }
  return add({std::move(name), alg, std::move(v).value()});
}

Status KeyStore::create_ascii(std::string name, Algorithm alg, std::string_view ascii) {
  for (char c : ascii) {
    if (c < 0x20 || c > 0x7e) {
      return Error(ErrorCode::kInvalidInput, "key '" + name + "': the value has a non-printable character",
                   "enter printable ASCII only, or enter the value in hex");
    }
  }
  SecretBytes v(reinterpret_cast<const std::uint8_t*>(ascii.data()), ascii.size());
  return add({std::move(name), alg, std::move(v)});
}

Status KeyStore::remove(std::string_view name) {
  auto it = keys_.find(name);
  if (it == keys_.end()) {
    return Error(ErrorCode::kNotFound, "no key named '" + std::string(name) + "'", "list the keys to see names");
  }
  keys_.erase(it);
  return ok_status();
}

const NamedKey* KeyStore::find(std::string_view name) const {
  auto it = keys_.find(name);
  return it == keys_.end() ? nullptr : &it->second;
}

std::vector<KeyInfo> KeyStore::list() const {
  std::vector<KeyInfo> out;
  for (const auto& [n, k] : keys_) out.push_back({n, k.algorithm, k.value.size()});
  return out;
}

Result<std::string> export_keys(const KeyStore& store, const std::vector<std::string>& names,
                                const SecretBytes& passphrase, const KeyExportOptions& opt) {
  if (passphrase.size() < 8) {
    return Error(ErrorCode::kInvalidInput, "the passphrase is shorter than 8 characters", "choose a longer passphrase");
  }
  std::vector<const NamedKey*> keys;
  if (names.empty()) {
    for (const KeyInfo& i : store.list()) keys.push_back(store.find(i.name));
  } else {
    for (const std::string& n : names) {
      const NamedKey* k = store.find(n);
      if (!k) return Error(ErrorCode::kNotFound, "no key named '" + n + "'", "list the keys to see names");
      keys.push_back(k);
    }
  }
  if (keys.empty()) return Error(ErrorCode::kNotFound, "there are no keys to export", "create a key first");

  KeyFileEnvelope e;
  e.kdf = opt.kdf;
  e.scrypt_n = opt.scrypt_n;
  e.scrypt_r = opt.scrypt_r;
  e.scrypt_p = opt.scrypt_p;
  e.pbkdf2_iterations = opt.pbkdf2_iterations;
  STORCRYPT_ASSIGN_OR_RETURN(SecretBytes salt, SecretBytes::random(kSaltBytes));
  STORCRYPT_ASSIGN_OR_RETURN(SecretBytes nonce, SecretBytes::random(kNonceBytes));
  e.salt.assign(salt.view().begin(), salt.view().end());
  e.nonce.assign(nonce.view().begin(), nonce.view().end());
  STORCRYPT_ASSIGN_OR_RETURN(SecretBytes kek, derive(e, passphrase));

  SecretBytes plain = key_payload(keys);
  const std::string header = header_text(e);
  std::unique_ptr<EVP_CIPHER_CTX, KdfDel> ctx(EVP_CIPHER_CTX_new());
  std::vector<std::uint8_t> data(plain.size() + kTagBytes);
  int len = 0, fin = 0;
  if (!ctx || EVP_EncryptInit_ex(ctx.get(), EVP_aes_256_gcm(), nullptr, kek.data(), e.nonce.data()) != 1 ||
      EVP_EncryptUpdate(ctx.get(), nullptr, &len, reinterpret_cast<const unsigned char*>(header.data()),
                        static_cast<int>(header.size())) != 1 ||
      EVP_EncryptUpdate(ctx.get(), data.data(), &len, plain.data(), static_cast<int>(plain.size())) != 1 ||
      EVP_EncryptFinal_ex(ctx.get(), data.data() + len, &fin) != 1 ||
      EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_GET_TAG, kTagBytes, data.data() + plain.size()) != 1) {
    return Error(ErrorCode::kInternal, "AES-256-GCM encryption failed");
  }
  return header + "data = " + to_hex(data) + "\n";
}

Result<KeyFileEnvelope> parse_key_file(std::string_view text) {
  KeyFileEnvelope e;
  std::size_t pos = 0;
  auto next_line = [&](std::string_view& line) {
    if (pos >= text.size()) return false;
    std::size_t nl = text.find('\n', pos);
    if (nl == std::string_view::npos) nl = text.size();
    line = text.substr(pos, nl - pos);
    pos = nl + 1;
    return true;
  };
  std::string_view line;
  if (!next_line(line) || line != kMagic) {
    return Error(ErrorCode::kInvalidInput,
                 "not a storcrypt key file (first line must be '" + std::string(kMagic) + "')",
                 "give the file written by the key export on the partner");
  }
  bool have_kdf = false, have_salt = false, have_nonce = false, have_data = false;
  bool have_n = false, have_r = false, have_p = false, have_iter = false;
  while (next_line(line)) {
    auto eq = line.find(" = ");
    if (eq == std::string_view::npos) return damaged("a line is not 'key = value'");
    std::string_view k = line.substr(0, eq), v = line.substr(eq + 3);
    bool ok = true;
    if (k == "kdf" && !have_kdf) {
      have_kdf = true;
      if (v == "scrypt") {
        e.kdf = Kdf::kScrypt;
      } else if (v == "pbkdf2-sha256") {
        e.kdf = Kdf::kPbkdf2Sha256;
      } else {
        return damaged("unknown kdf");
      }
    } else if (k == "scrypt-n" && !have_n) {
      ok = have_n = parse_uint(v, e.scrypt_n);
    } else if (k == "scrypt-r" && !have_r) {
      ok = have_r = parse_uint(v, e.scrypt_r);
    } else if (k == "scrypt-p" && !have_p) {
      ok = have_p = parse_uint(v, e.scrypt_p);
    } else if (k == "pbkdf2-iterations" && !have_iter) {
      ok = have_iter = parse_uint(v, e.pbkdf2_iterations);
    } else if ((k == "salt" && !have_salt) || (k == "nonce" && !have_nonce)) {
      auto b = parse_hex(v);
      if (!b) return damaged(std::string(k) + " is not hex");
      (k == "salt" ? e.salt : e.nonce) = std::move(*b);
      (k == "salt" ? have_salt : have_nonce) = true;
    } else if (k == "data" && !have_data) {
      e.header = std::string(text.substr(0, pos - line.size() - 1));
      auto b = parse_hex(v);
      if (!b) return damaged("data is not hex");
      e.data = std::move(*b);
      have_data = true;
      if (pos < text.size() && !std::all_of(text.begin() + static_cast<std::ptrdiff_t>(pos), text.end(),
                                            [](char c) { return c == '\n' || c == '\r'; })) {
        return damaged("text after the data line");
      }
      break;
    } else {
      return damaged("unexpected or repeated line '" + std::string(k.substr(0, 32)) + "'");
    }
    if (!ok) return damaged(std::string(k) + " is not a number");
  }
  if (!have_kdf || !have_salt || !have_nonce || !have_data) return damaged("a required line is missing");
  if (e.kdf == Kdf::kScrypt && (!have_n || !have_r || !have_p)) return damaged("scrypt parameters are missing");
  if (e.kdf == Kdf::kPbkdf2Sha256 && !have_iter) return damaged("PBKDF2 iterations are missing");
  if (e.salt.size() < 8 || e.nonce.size() != kNonceBytes || e.data.size() < kTagBytes) {
    return damaged("salt, nonce or data has the wrong length");
  }
  STORCRYPT_TRY(check_kdf_params(e));
  return e;
}

Result<std::vector<NamedKey>> parse_key_payload(std::span<const std::uint8_t> plain) {
  std::vector<NamedKey> out;
  std::string_view text(reinterpret_cast<const char*>(plain.data()), plain.size());
  std::size_t pos = 0;
  while (pos < text.size()) {
    std::size_t nl = text.find('\n', pos);
    if (nl == std::string_view::npos) return damaged("the last key line is not terminated");
    std::string_view line = text.substr(pos, nl - pos);
    pos = nl + 1;
    auto s1 = line.find(' ');
    auto s2 = s1 == std::string_view::npos ? s1 : line.find(' ', s1 + 1);
    if (s2 == std::string_view::npos) return damaged("a key line is not 'name algorithm value'");
    NamedKey k;
    k.name = std::string(line.substr(0, s1));
    STORCRYPT_TRY(check_key_name(k.name));
    auto alg = parse_algorithm(line.substr(s1 + 1, s2 - s1 - 1));
    if (!alg.ok()) return damaged("unknown algorithm for key '" + k.name + "'");
    k.algorithm = *alg;
    auto v = SecretBytes::from_hex(line.substr(s2 + 1));
    if (!v.ok()) return damaged("the value of key '" + k.name + "' is not hex");
    k.value = std::move(v).value();
    if (k.value.size() != algorithm_key_bytes(k.algorithm)) return length_error(k.name, k.algorithm, k.value.size());
    for (const NamedKey& o : out) {
      if (o.name == k.name) return damaged("key '" + k.name + "' appears twice");
    }
    out.push_back(std::move(k));
  }
  if (out.empty()) return damaged("it holds no keys");
  return out;
}

Result<std::vector<NamedKey>> import_keys(std::string_view file_text, const SecretBytes& passphrase) {
  STORCRYPT_ASSIGN_OR_RETURN(KeyFileEnvelope e, parse_key_file(file_text));
  STORCRYPT_ASSIGN_OR_RETURN(SecretBytes kek, derive(e, passphrase));
  const std::size_t n = e.data.size() - kTagBytes;
  SecretBytes plain(n);
  std::unique_ptr<EVP_CIPHER_CTX, KdfDel> ctx(EVP_CIPHER_CTX_new());
  int len = 0, fin = 0;
  if (!ctx || EVP_DecryptInit_ex(ctx.get(), EVP_aes_256_gcm(), nullptr, kek.data(), e.nonce.data()) != 1 ||
      EVP_DecryptUpdate(ctx.get(), nullptr, &len, reinterpret_cast<const unsigned char*>(e.header.data()),
                        static_cast<int>(e.header.size())) != 1 ||
      EVP_DecryptUpdate(ctx.get(), plain.data(), &len, e.data.data(), static_cast<int>(n)) != 1 ||
      EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_SET_TAG, kTagBytes, e.data.data() + n) != 1) {
    return Error(ErrorCode::kInternal, "AES-256-GCM decryption could not start");
  }
  if (EVP_DecryptFinal_ex(ctx.get(), plain.data() + len, &fin) != 1) return wrong_passphrase();
  return parse_key_payload(plain.view());
}

Status import_keys_into(KeyStore& store, std::string_view file_text, const SecretBytes& passphrase, bool replace) {
  STORCRYPT_ASSIGN_OR_RETURN(auto keys, import_keys(file_text, passphrase));
  if (!replace) {
    for (const NamedKey& k : keys) {
      if (store.find(k.name)) {
        return Error(ErrorCode::kConflict, "a key named '" + k.name + "' already exists; nothing was imported",
                     "delete the existing key or import with replace");
      }
    }
  }
  for (NamedKey& k : keys) STORCRYPT_TRY(store.add(std::move(k), replace));
  return ok_status();
}

SecretBytes key_payload(const std::vector<const NamedKey*>& keys) {
  // Built in place: no temporary string ever holds a key's hex.
  std::size_t total = 0;
  for (const NamedKey* k : keys) total += k->name.size() + to_string(k->algorithm).size() + 2 * k->value.size() + 3;
  SecretBytes plain(total);
  auto out = reinterpret_cast<char*>(plain.data());
  auto put = [&out](std::string_view t) { out = std::copy(t.begin(), t.end(), out); };
  for (const NamedKey* k : keys) {
    put(k->name);
    put(" ");
    put(to_string(k->algorithm));
    put(" ");
    hex_encode_into(k->value.view(), {out, 2 * k->value.size()});
    out += 2 * k->value.size();
    put("\n");
  }
  return plain;
}

std::vector<const NamedKey*> all_keys(const KeyStore& store) {
  std::vector<const NamedKey*> out;
  for (const KeyInfo& i : store.list()) out.push_back(store.find(i.name));
  return out;
}

Result<std::string> read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return errno_error(errno, "opening " + path);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

}  // namespace storcrypt::policy
