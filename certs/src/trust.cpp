// Truststore: remote authorities, each trusted for a set of uses, and peer
// chain verification against them (X509_verify_cert: path building,
// signatures, time, basicConstraints, keyUsage/EKU via the purpose).
#include <openssl/err.h>

#include <algorithm>
#include <ctime>
#include <nlohmann/json.hpp>

#include "internal.h"

namespace storcrypt::certs {

namespace fs = std::filesystem;
using detail::cert_error;

namespace detail {
struct IndexEntry {
  std::string id;  ///< uppercase hex SHA-256, no colons
  std::set<TrustUse> uses;
};
struct TrustCache {
  std::string index_text;  ///< index.json as read; the cache key
  std::vector<IndexEntry> idx;
  std::vector<Certificate> certs;  ///< parallel to idx
};
}  // namespace detail

namespace {
using detail::IndexEntry;

constexpr const char* kTrust = "truststore";

Result<std::string> read_index_text(const fs::path& dir) {
  const fs::path p = dir / kTrust / "index.json";
  if (!detail::file_exists(p)) return std::string();
  return detail::read_file(p);
}

Result<std::vector<IndexEntry>> parse_index(const fs::path& dir, const std::string& text) {
  std::vector<IndexEntry> out;
  const fs::path p = dir / kTrust / "index.json";
  if (text.empty()) return out;
  nlohmann::json j = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object() || !j.contains("entries") || !j["entries"].is_array())
    return cert_error(ErrorCode::kInternal, "xCertStateIo", p.string() + " is corrupt",
                      "restore it from backup or remove the truststore directory and add the authorities again");
  for (const auto& e : j["entries"]) {
    if (!e.is_object() || !e.contains("sha256") || !e["sha256"].is_string() || !e.contains("uses") ||
        !e["uses"].is_array())
      return cert_error(ErrorCode::kInternal, "xCertStateIo", p.string() + " has a malformed entry");
    IndexEntry ie;
    ie.id = detail::fingerprint_id(e["sha256"].get<std::string>());
    for (const auto& u : e["uses"]) {
      if (!u.is_string()) continue;
      auto tu = parse_trust_use(u.get<std::string>());
      if (tu.ok()) ie.uses.insert(*tu);
    }
    out.push_back(std::move(ie));
  }
  return out;
}

Result<std::vector<IndexEntry>> load_index(const fs::path& dir) {
  STORCRYPT_ASSIGN_OR_RETURN(std::string text, read_index_text(dir));
  return parse_index(dir, text);
}

Status save_index(const fs::path& dir, const std::vector<IndexEntry>& idx) {
  nlohmann::json j;
  j["version"] = 1;
  j["entries"] = nlohmann::json::array();
  for (const auto& e : idx) {
    nlohmann::json u = nlohmann::json::array();
    for (TrustUse t : e.uses) u.push_back(std::string(trust_use_name(t)));
    j["entries"].push_back({{"sha256", e.id}, {"uses", u}});
  }
  return detail::write_file_atomic(dir / kTrust / "index.json", j.dump(2) + "\n", 0644);
}

fs::path entry_path(const fs::path& dir, const std::string& id) { return dir / kTrust / (id + ".pem"); }

Result<Certificate> load_entry(const fs::path& dir, const std::string& id) {
  STORCRYPT_ASSIGN_OR_RETURN(std::string text, detail::read_file(entry_path(dir, id)));
  auto c = parse_certificate(text);
  if (!c.ok()) return std::move(c).error().context(entry_path(dir, id).string());
  return c;
}

std::string subject_of(X509* x) {
  if (x == nullptr) return "(unknown)";
  return Certificate(detail::wrap_up_ref(x)).info().subject;
}
std::string issuer_of(X509* x) {
  if (x == nullptr) return "(unknown)";
  return Certificate(detail::wrap_up_ref(x)).info().issuer;
}

struct VerifyContext {
  std::string use;                       ///< "ipsec", ...
  std::vector<Certificate> other_uses;   ///< authorities trusted only for other uses
  std::vector<std::string> other_names;  ///< their uses, for the message
  bool have_anchors = false;             ///< anything trusted for this use
  bool bundle_check = false;             ///< truststore add, not a peer
  PeerRole role = PeerRole::kServer;
};

/// An authority trusted for other uses that issued `x` (or is `x`).
std::optional<std::size_t> other_use_issuer(const VerifyContext& v, X509* x) {
  for (std::size_t i = 0; i < v.other_uses.size(); ++i) {
    X509* a = v.other_uses[i].native();
    if (X509_cmp(a, x) == 0 || X509_check_issued(a, x) == X509_V_OK) return i;
  }
  ERR_clear_error();
  return std::nullopt;
}

Error map_verify_error(X509_STORE_CTX* ctx, const VerifyContext& v) {
  const int err = X509_STORE_CTX_get_error(ctx);
  const int depth = X509_STORE_CTX_get_error_depth(ctx);
  X509* cur = X509_STORE_CTX_get_current_cert(ctx);
  const std::string who = (depth == 0 ? "peer certificate " : "CA certificate ") + subject_of(cur);
  const std::string reason = X509_verify_cert_error_string(err);
  auto tls = [&](const char* name, std::string msg, std::string fix) {
    return cert_error(ErrorCode::kTls, name, std::move(msg) + " (openssl: " + reason + ")", std::move(fix));
  };
  auto wrong_use = [&](std::size_t i) {
    return tls("xCertWrongUsage",
               who + " chains to " + v.other_uses[i].info().subject + ", which is trusted for " + v.other_names[i] +
                   " but not for " + v.use,
               "if this authority should also be trusted for " + v.use +
                   ", add it again with that use: `storcrypt truststore add --use " + v.use + " <file>`");
  };
  const std::string add_fix = "add the peer's root CA (with its intermediate CAs) to the truststore for " + v.use +
                              ": `storcrypt truststore add --use " + v.use +
                              " <file>`; a storcrypt peer exports it with `storcrypt cert export-root`";
  switch (err) {
    case X509_V_ERR_CERT_HAS_EXPIRED: {
      UnixTime na = cur ? detail::asn1_to_unix(X509_get0_notAfter(cur)) : 0;
      return tls("xCertExpired", who + " expired at " + format_utc(na),
                 depth == 0 ? "renew the peer's certificate" : "renew the expired CA certificate and its chain");
    }
    case X509_V_ERR_CERT_NOT_YET_VALID: {
      UnixTime nb = cur ? detail::asn1_to_unix(X509_get0_notBefore(cur)) : 0;
      return tls("xCertNotYetValid", who + " is valid only from " + format_utc(nb),
                 "check the clocks of both systems (NTP); the certificate may have been issued with a future date");
    }
    case X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT:
    case X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN: {
      if (auto i = other_use_issuer(v, cur)) return wrong_use(*i);
      return tls("xCertUntrustedRoot", who + " is a self-signed authority that is not trusted for " + v.use, add_fix);
    }
    case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT:
    case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY:
    case X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE: {
      if (v.bundle_check)
        return cert_error(ErrorCode::kInvalidInput, "xCertMissingIntermediate",
                          "the bundle is not a full chain: the issuer " + issuer_of(cur) + " of " + subject_of(cur) +
                              " is neither in the bundle nor in the truststore",
                          "give the whole chain in one PEM file: the intermediate CA(s) and the root CA");
      if (auto i = other_use_issuer(v, cur)) return wrong_use(*i);
      bool cur_is_ca = cur != nullptr && (X509_get_extension_flags(cur) & EXFLAG_CA) != 0;
      if (!cur_is_ca && v.have_anchors)
        return tls("xCertMissingIntermediate",
                   "the issuer " + issuer_of(cur) + " of the " + who +
                       " was not sent by the peer and is not in the truststore",
                   "configure the peer to send its intermediate CA certificate(s), or add the peer's full chain "
                   "(intermediates and root) to the truststore for " +
                       v.use + "; if the issuer is a root CA, add that root");
      return tls("xCertUntrustedRoot",
                 "the authority " + issuer_of(cur) + " that issued the " + who + " is not trusted for " + v.use,
                 add_fix);
    }
    case X509_V_ERR_INVALID_PURPOSE:
    case X509_V_ERR_KEYUSAGE_NO_CERTSIGN:
    case X509_V_ERR_KEYUSAGE_NO_DIGITAL_SIGNATURE:
    case X509_V_ERR_INVALID_CA:
    case X509_V_ERR_PATH_LENGTH_EXCEEDED:
    case X509_V_ERR_INVALID_NON_CA:
    case X509_V_ERR_INVALID_EXTENSION: {
      std::string need = v.role == PeerRole::kServer ? "serverAuth" : "clientAuth";
      return tls("xCertWrongUsage",
                 who + " may not be used " +
                     (depth == 0 ? "as a " + std::string(v.role == PeerRole::kServer ? "server" : "client") +
                                       " (extended key usage must include " + need + ")"
                                 : "as a CA (basicConstraints/keyUsage)"),
                 depth == 0 ? "reissue the peer certificate with extendedKeyUsage serverAuth,clientAuth and keyUsage "
                              "digitalSignature"
                            : "the CA certificate must have basicConstraints CA:TRUE and keyUsage keyCertSign");
    }
    case X509_V_ERR_CERT_SIGNATURE_FAILURE:
    case X509_V_ERR_UNABLE_TO_DECRYPT_CERT_SIGNATURE:
    case X509_V_ERR_UNABLE_TO_DECODE_ISSUER_PUBLIC_KEY:
      return tls("xCertBadSignature", "the signature of the " + who + " does not verify",
                 "the certificate was altered or issued by a different key with the same name; get the genuine chain");
    case X509_V_ERR_EE_KEY_TOO_SMALL:
    case X509_V_ERR_CA_KEY_TOO_SMALL:
    case X509_V_ERR_CA_MD_TOO_WEAK:
      return cert_error(ErrorCode::kTls, "xCertWeakKey", "the " + who + " uses a key or digest that is too weak",
                        "reissue with ECDSA P-384 (or RSA >= 3072) and SHA-256 or better");
    default:
      return tls("xCertChainInvalid", "the " + who + " failed validation at depth " + std::to_string(depth),
                 "inspect the chain with `openssl verify -show_chain`");
  }
}

Status add_certs(X509_STORE* store, const std::vector<Certificate>& v) {
  for (const auto& c : v)
    if (X509_STORE_add_cert(store, c.native()) != 1) {
      // a duplicate is not an error
      unsigned long e = ERR_peek_last_error();
      ERR_clear_error();
      if (ERR_GET_REASON(e) != X509_R_CERT_ALREADY_IN_HASH_TABLE) return detail::openssl_error("adding to a store");
    }
  return ok_status();
}

/// X509_verify_cert of `leaf` with `trusted` anchors and `untrusted` helpers.
Status run_verify(X509* leaf, const std::vector<Certificate>& trusted, const std::vector<Certificate>& untrusted,
                  UnixTime at, int purpose, unsigned long flags, int auth_level, const VerifyContext& v) {
  detail::StorePtr store(X509_STORE_new());
  if (!store) return detail::openssl_error("allocating a certificate store");
  STORCRYPT_TRY(add_certs(store.get(), trusted));
  detail::X509StackPtr chain(sk_X509_new_null());
  if (!chain) return detail::openssl_error("allocating a stack");
  for (const auto& c : untrusted) {
    X509_up_ref(c.native());
    sk_X509_push(chain.get(), c.native());
  }
  detail::StoreCtxPtr ctx(X509_STORE_CTX_new());
  if (!ctx || X509_STORE_CTX_init(ctx.get(), store.get(), leaf, chain.get()) != 1)
    return detail::openssl_error("initializing verification");
  X509_VERIFY_PARAM* param = X509_STORE_CTX_get0_param(ctx.get());
  X509_VERIFY_PARAM_set_time(param, static_cast<time_t>(at));
  X509_VERIFY_PARAM_set_flags(param, flags);
  // Level 3 (IPsec, CNSA): 128-bit security, RSA >= 3072, EC >= 256.
  // Level 2 (REST API, KMIP peers we do not issue): 112-bit, RSA >= 2048.
  X509_VERIFY_PARAM_set_auth_level(param, auth_level);
  if (purpose != 0) X509_STORE_CTX_set_purpose(ctx.get(), purpose);
  int rc = X509_verify_cert(ctx.get());
  if (rc == 1) {
    ERR_clear_error();
    return ok_status();
  }
  Error e = map_verify_error(ctx.get(), v);
  ERR_clear_error();
  return e;
}

}  // namespace

namespace {
Result<std::shared_ptr<const detail::TrustCache>> load_trust(const fs::path& dir,
                                                             std::shared_ptr<const detail::TrustCache>& cache) {
  // index.json is small and rewritten (atomically) on every change: its
  // content is the cache key, so a change by any writer is seen.
  STORCRYPT_ASSIGN_OR_RETURN(std::string text, read_index_text(dir));
  if (cache && cache->index_text == text) return cache;
  auto fresh = std::make_shared<detail::TrustCache>();
  STORCRYPT_ASSIGN_OR_RETURN(fresh->idx, parse_index(dir, text));
  fresh->index_text = std::move(text);
  for (const auto& e : fresh->idx) {
    STORCRYPT_ASSIGN_OR_RETURN(Certificate c, load_entry(dir, e.id));
    fresh->certs.push_back(std::move(c));
  }
  cache = fresh;
  return cache;
}
}  // namespace

Result<std::optional<std::string>> CertStore::missing_issuer(const Certificate& leaf,
                                                             const std::vector<Certificate>& chain) const {
  X509* x = leaf.native();
  auto issued = [x](const Certificate& c) { return X509_check_issued(c.native(), x) == X509_V_OK; };
  bool found = X509_self_signed(x, 0) == 1 || std::any_of(chain.begin(), chain.end(), issued);
  if (!found) {
    STORCRYPT_ASSIGN_OR_RETURN(auto tc, load_trust(dir_, trust_cache_));
    found = std::any_of(tc->certs.begin(), tc->certs.end(), issued);
  }
  ERR_clear_error();
  if (found) return std::optional<std::string>();
  return std::optional<std::string>(leaf.info().issuer);
}

Result<std::vector<TrustEntry>> CertStore::trust_add(std::string_view bundle, const std::set<TrustUse>& uses) {
  if (uses.empty())
    return cert_error(ErrorCode::kInvalidInput, "xTrustBadUse", "no truststore use given",
                      "use one or more of: ipsec, restapi, kmip");
  STORCRYPT_ASSIGN_OR_RETURN(auto certs, parse_certificates(bundle));
  // Deduplicate within the bundle.
  std::vector<Certificate> uniq;
  for (auto& c : certs) {
    bool dup = std::any_of(uniq.begin(), uniq.end(),
                           [&](const Certificate& u) { return X509_cmp(u.native(), c.native()) == 0; });
    if (!dup) uniq.push_back(std::move(c));
  }
  STORCRYPT_ASSIGN_OR_RETURN(auto idx, load_index(dir_));
  std::vector<Certificate> anchors;
  for (const auto& e : idx) {
    auto c = load_entry(dir_, e.id);
    if (c.ok()) anchors.push_back(std::move(c).value());
  }
  for (const auto& c : uniq)
    if (X509_self_signed(c.native(), 0) == 1) anchors.push_back(c);
  ERR_clear_error();
  // Every certificate must chain to a self-signed root in the bundle or the
  // truststore, be currently valid and carry valid signatures.
  VerifyContext vc;
  vc.use = std::string(trust_use_name(*uses.begin()));
  vc.bundle_check = true;
  vc.have_anchors = true;
  const UnixTime t = now();
  for (const auto& c : uniq) {
    if (X509_self_signed(c.native(), 0) == 1) {
      // Checked directly: path building picks issuers by name, and another
      // root with the same name (two systems called alike) would be taken
      // for this one's issuer.
      CertInfo i = c.info();
      if (X509_verify(c.native(), X509_get0_pubkey(c.native())) != 1) {
        ERR_clear_error();
        return cert_error(ErrorCode::kInvalidInput, "xCertBadSignature",
                          "the self-signature of " + i.subject + " does not verify",
                          "the certificate was altered; get the genuine root CA certificate");
      }
      if (t > i.not_after)
        return cert_error(ErrorCode::kTls, "xCertExpired", i.subject + " expired at " + format_utc(i.not_after),
                          "get the renewed root CA certificate");
      if (t < i.not_before)
        return cert_error(ErrorCode::kTls, "xCertNotYetValid",
                          i.subject + " is valid only from " + format_utc(i.not_before),
                          "check this system's clock (NTP)");
      continue;
    }
    STORCRYPT_TRY(run_verify(c.native(), anchors, uniq, t, 0, 0, 2, vc));
  }

  STORCRYPT_TRY(detail::ensure_dir(dir_ / kTrust));
  std::vector<TrustEntry> out;
  for (const auto& c : uniq) {
    CertInfo info = c.info();
    std::string id = detail::fingerprint_id(info.sha256_fingerprint);
    auto it = std::find_if(idx.begin(), idx.end(), [&](const IndexEntry& e) { return e.id == id; });
    if (it == idx.end()) {
      STORCRYPT_TRY(detail::write_file_atomic(entry_path(dir_, id), c.to_pem(), 0644));
      idx.push_back({id, uses});
      it = idx.end() - 1;
    } else {
      it->uses.insert(uses.begin(), uses.end());
    }
    out.push_back({std::move(info), it->uses});
  }
  STORCRYPT_TRY(save_index(dir_, idx));
  return out;
}

Result<std::vector<TrustEntry>> CertStore::trust_list() const {
  STORCRYPT_ASSIGN_OR_RETURN(auto tc, load_trust(dir_, trust_cache_));
  std::vector<TrustEntry> out;
  for (std::size_t i = 0; i < tc->idx.size(); ++i) out.push_back({tc->certs[i].info(), tc->idx[i].uses});
  return out;
}

Status CertStore::trust_remove(std::string_view fingerprint) {
  std::string want = detail::fingerprint_id(fingerprint);
  bool hex = !want.empty() &&
             std::all_of(want.begin(), want.end(), [](char c) { return std::isxdigit(static_cast<unsigned char>(c)); });
  if (!hex || want.size() < 8)
    return cert_error(ErrorCode::kInvalidInput, "xTrustEntryNotFound",
                      "\"" + std::string(fingerprint.substr(0, 100)) +
                          "\" is not a SHA-256 fingerprint (or a prefix of at least 8 hex digits)",
                      "use a fingerprint shown by `storcrypt truststore list`");
  STORCRYPT_ASSIGN_OR_RETURN(auto idx, load_index(dir_));
  std::vector<std::size_t> hits;
  for (std::size_t i = 0; i < idx.size(); ++i)
    if (idx[i].id.rfind(want, 0) == 0) hits.push_back(i);
  if (hits.empty())
    return cert_error(ErrorCode::kNotFound, "xTrustEntryNotFound",
                      "no truststore entry has the fingerprint " + std::string(fingerprint.substr(0, 100)),
                      "use a fingerprint shown by `storcrypt truststore list`");
  if (hits.size() > 1)
    return cert_error(ErrorCode::kInvalidInput, "xTrustAmbiguousFingerprint",
                      std::to_string(hits.size()) + " truststore entries start with " + want,
                      "give more digits of the fingerprint");
  std::string id = idx[hits[0]].id;
  idx.erase(idx.begin() + static_cast<std::ptrdiff_t>(hits[0]));
  STORCRYPT_TRY(save_index(dir_, idx));
  return detail::remove_file(entry_path(dir_, id));
}

Result<CertInfo> CertStore::verify_peer(const std::vector<Certificate>& chain, const VerifyOptions& o) const {
  if (chain.empty() || !chain.front().valid())
    return cert_error(ErrorCode::kInvalidInput, "xCertGarbage", "the peer presented no certificate",
                      "configure the peer to send its certificate");
  STORCRYPT_ASSIGN_OR_RETURN(auto tc, load_trust(dir_, trust_cache_));
  VerifyContext vc;
  vc.use = std::string(trust_use_name(o.use));
  vc.role = o.role;
  std::vector<Certificate> anchors;
  for (std::size_t i = 0; i < tc->idx.size(); ++i) {
    const IndexEntry& e = tc->idx[i];
    Certificate c = tc->certs[i];
    if (e.uses.count(o.use)) {
      anchors.push_back(std::move(c));
    } else {
      std::string names;
      for (TrustUse u : e.uses) names += (names.empty() ? "" : ",") + std::string(trust_use_name(u));
      vc.other_uses.push_back(std::move(c));
      vc.other_names.push_back(names);
    }
  }
  vc.have_anchors = !anchors.empty();
  std::vector<Certificate> untrusted(chain.begin() + 1, chain.end());
  int purpose = o.role == PeerRole::kServer ? X509_PURPOSE_SSL_SERVER : X509_PURPOSE_SSL_CLIENT;
  STORCRYPT_TRY(run_verify(chain.front().native(), anchors, untrusted, o.at.value_or(now()), purpose, 0,
                           o.use == TrustUse::kIpsec ? 3 : 2, vc));
  return chain.front().info();
}

Result<X509_STORE*> CertStore::x509_store_for(TrustUse use) const {
  STORCRYPT_ASSIGN_OR_RETURN(auto tc, load_trust(dir_, trust_cache_));
  detail::StorePtr store(X509_STORE_new());
  if (!store) return detail::openssl_error("allocating a certificate store");
  std::vector<Certificate> anchors;
  for (std::size_t i = 0; i < tc->idx.size(); ++i)
    if (tc->idx[i].uses.count(use)) anchors.push_back(tc->certs[i]);
  STORCRYPT_TRY(add_certs(store.get(), anchors));
  return store.release();
}

}  // namespace storcrypt::certs
