#include "storcrypt/ike/peer_auth.h"

#include <arpa/inet.h>
#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/obj_mac.h>
#include <openssl/objects.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>
#include <openssl/x509v3.h>

#include <ctime>
#include <list>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "cnsa_key.h"
#include "storcrypt/certs/certs.h"
#include "storcrypt/ike/auth.h"

namespace storcrypt::ike {

namespace {

struct StoreFree {
  void operator()(X509_STORE* p) const { X509_STORE_free(p); }
};
struct StoreCtxFree {
  void operator()(X509_STORE_CTX* p) const { X509_STORE_CTX_free(p); }
};
struct StackFree {
  void operator()(STACK_OF(X509) * p) const { sk_X509_pop_free(p, X509_free); }
};
struct EkuFree {
  void operator()(EXTENDED_KEY_USAGE* p) const { EXTENDED_KEY_USAGE_free(p); }
};
struct NameFree {
  void operator()(X509_NAME* p) const { X509_NAME_free(p); }
};
using StorePtr = std::unique_ptr<X509_STORE, StoreFree>;
using StackPtr = std::unique_ptr<STACK_OF(X509), StackFree>;

Error internal(std::string_view what) {
  ERR_clear_error();
  return Error(ErrorCode::kInternal, "OpenSSL: " + std::string(what));
}

Error peer_error(const char* name, std::string message, std::string fix) {
  return Error(ErrorCode::kProtocol, std::move(message), std::move(fix), name);
}

certs::CertInfo info_of(X509* x) { return certs::Certificate::share(x).info(); }

/// "subject CN=a,O=b, issuer CN=c,O=d" of the end entity, for every message.
std::string ee_names(X509* ee) {
  const certs::CertInfo i = info_of(ee);
  return "peer certificate subject " + i.subject + ", issuer " + i.issuer;
}

constexpr const char* kAddFix =
    "add the peer's root CA (and its intermediate CAs) to the truststore for ipsec: `storcrypt truststore add "
    "--use ipsec <file>` (a storcrypt peer exports its root with `storcrypt cert export-root`), or configure the "
    "peer to send its intermediate CA certificates";

Error map_verify_error(X509_STORE_CTX* ctx, X509* ee, std::size_t anchors) {
  const int err = X509_STORE_CTX_get_error(ctx);
  const int depth = X509_STORE_CTX_get_error_depth(ctx);
  X509* cur = X509_STORE_CTX_get_current_cert(ctx);
  if (cur == nullptr) cur = ee;
  const certs::CertInfo ci = info_of(cur);
  const std::string reason = X509_verify_cert_error_string(err);
  const std::string names = ee_names(ee);
  const std::string who = depth == 0 ? "peer certificate" : "CA certificate " + ci.subject + " of the peer's chain";
  switch (err) {
    case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT:
    case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY:
    case X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE: {
      std::string where = anchors == 0 ? "the ipsec truststore is empty"
                                       : "issuer " + ci.issuer + " not in the ipsec truststore" +
                                             (depth == 0 ? " and not sent in a CERT payload" : "");
      if (depth != 0) where += ", needed for " + ci.subject;
      return peer_error("xIkePeerUntrusted", "peer certificate not trusted: " + reason + " (" + where + "); " + names,
                        kAddFix);
    }
    case X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT:
    case X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN:
      return peer_error("xIkePeerUntrusted",
                        "peer certificate not trusted: " + reason + " (root " + ci.subject +
                            " not in the ipsec truststore); " + names,
                        kAddFix);
    case X509_V_ERR_CERT_HAS_EXPIRED:
      return peer_error("xIkePeerExpired", who + " expired on " + certs::format_utc(ci.not_after) + "; " + names,
                        depth == 0 ? "renew the peer's certificate" : "renew the expired CA certificate and reissue");
    case X509_V_ERR_CERT_NOT_YET_VALID:
      return peer_error("xIkePeerNotYetValid",
                        who + " not valid before " + certs::format_utc(ci.not_before) + "; " + names,
                        "check the clocks of both systems (NTP); the certificate may carry a future date");
    case X509_V_ERR_EE_KEY_TOO_SMALL:
    case X509_V_ERR_CA_KEY_TOO_SMALL:
    case X509_V_ERR_CA_MD_TOO_WEAK:
      return peer_error("xIkePeerWeakKey",
                        who + " is too weak for IPsec (" + reason + ", key " + ci.key + "); " + names,
                        "reissue with EC P-384 (or RSA >= 3072) keys and SHA-384 signatures");
    case X509_V_ERR_CERT_SIGNATURE_FAILURE:
    case X509_V_ERR_UNABLE_TO_DECRYPT_CERT_SIGNATURE:
    case X509_V_ERR_UNABLE_TO_DECODE_ISSUER_PUBLIC_KEY:
      return peer_error("xIkePeerBadSignature", "the signature of the " + who + " does not verify; " + names,
                        "the certificate was altered or issued by another key with the same name; get the genuine "
                        "chain");
    case X509_V_ERR_INVALID_CA:
    case X509_V_ERR_KEYUSAGE_NO_CERTSIGN:
    case X509_V_ERR_PATH_LENGTH_EXCEEDED:
    case X509_V_ERR_INVALID_PURPOSE:
      return peer_error("xIkePeerWrongUsage", who + " may not issue certificates (" + reason + "); " + names,
                        "CA certificates need basicConstraints CA:TRUE and keyUsage keyCertSign");
    default:
      return peer_error("xIkePeerChainInvalid",
                        "peer certificate chain invalid at depth " + std::to_string(depth) + " (" + ci.subject +
                            "): " + reason + "; " + names,
                        "inspect the chain with `openssl verify -show_chain`");
  }
}

/// Steps 3 and 4: the end entity's key usage and key.
Status check_end_entity(X509* ee) {
  if (!detail::is_cnsa_key(X509_get0_pubkey(ee)))
    return peer_error("xIkePeerWeakKey",
                      "peer certificate key " + info_of(ee).key +
                          " is not acceptable (CNSA: EC P-384 or RSA >= "
                          "3072 bits); " +
                          ee_names(ee),
                      "reissue the peer's certificate with an EC P-384 (or RSA >= 3072) key");
  const std::uint32_t flags = X509_get_extension_flags(ee);
  if ((flags & EXFLAG_KUSAGE) != 0 && (X509_get_key_usage(ee) & KU_DIGITAL_SIGNATURE) == 0)
    return peer_error("xIkePeerWrongUsage",
                      "peer certificate keyUsage does not include digitalSignature; " + ee_names(ee),
                      "reissue the peer's certificate with keyUsage digitalSignature");
  if ((flags & EXFLAG_XKUSAGE) != 0) {
    int crit = 0;
    std::unique_ptr<EXTENDED_KEY_USAGE, EkuFree> eku(
        static_cast<EXTENDED_KEY_USAGE*>(X509_get_ext_d2i(ee, NID_ext_key_usage, &crit, nullptr)));
    bool ok = false;
    for (int i = 0; eku && i < sk_ASN1_OBJECT_num(eku.get()); ++i) {
      const int nid = OBJ_obj2nid(sk_ASN1_OBJECT_value(eku.get(), i));
      ok = ok || nid == NID_server_auth || nid == NID_client_auth || nid == NID_ipsec_IKE ||
           nid == NID_anyExtendedKeyUsage;
    }
    ERR_clear_error();
    if (!ok)
      return peer_error("xIkePeerWrongUsage",
                        "peer certificate extendedKeyUsage allows none of serverAuth, clientAuth, ipsecIKE, "
                        "anyExtendedKeyUsage; " +
                            ee_names(ee),
                        "reissue the peer's certificate with extendedKeyUsage serverAuth,clientAuth (or ipsecIKE)");
  }
  return ok_status();
}

/// The ID as text for messages: a DN, an FQDN, an address.
std::string describe_id(const IdPayload& id) {
  switch (id.id_type) {
    case id_type::kDerAsn1Dn: {
      const unsigned char* p = id.data.data();
      std::unique_ptr<X509_NAME, NameFree> name(d2i_X509_NAME(nullptr, &p, static_cast<long>(id.data.size())));
      if (!name) return "DN (malformed)";
      char buf[512] = {};
      X509_NAME_oneline(name.get(), buf, sizeof buf);
      return std::string("DN ") + buf;
    }
    case id_type::kFqdn: {
      std::string s;
      for (std::uint8_t c : id.data) s += (c >= 0x20 && c < 0x7f) ? static_cast<char>(c) : '?';
      return "FQDN " + s.substr(0, 253);
    }
    case id_type::kIpv4Addr:
    case id_type::kIpv6Addr: {
      char buf[INET6_ADDRSTRLEN] = {};
      const int af = id.id_type == id_type::kIpv4Addr ? AF_INET : AF_INET6;
      const std::size_t want = af == AF_INET ? 4 : 16;
      if (id.data.size() != want || inet_ntop(af, id.data.data(), buf, sizeof buf) == nullptr)
        return "address (malformed)";
      return std::string(af == AF_INET ? "IPv4 " : "IPv6 ") + buf;
    }
    default:
      return "type " + std::to_string(id.id_type);
  }
}

Status check_id(const IdPayload& id, X509* ee) {
  Status st = check_id_matches_cert(id, ee);
  if (st.ok()) return st;
  Error e = std::move(st).error();
  if (e.code() != ErrorCode::kProtocol) return e;
  const certs::CertInfo i = info_of(ee);
  std::string sans;
  for (const auto& d : i.dns_names) sans += (sans.empty() ? "" : ",") + ("DNS:" + d);
  for (const auto& a : i.ip_addresses) sans += (sans.empty() ? "" : ",") + ("IP:" + a);
  return Error(ErrorCode::kProtocol,
               e.message() + ": peer ID " + describe_id(id) + "; peer certificate subject " + i.subject + ", SAN " +
                   (sans.empty() ? "none" : sans) + ", issuer " + i.issuer,
               "the peer must send an ID equal to its certificate's subject DN or one of its SANs (or the peer "
               "definition here names the wrong ID)",
               "xIkeIdMismatch");
}

/// The cache key: SHA-256 over the SHA-256 of each certificate's DER.
Result<std::string> chain_key(X509* ee, std::span<X509* const> intermediates) {
  EVP_MD_CTX* md = EVP_MD_CTX_new();
  if (md == nullptr || EVP_DigestInit_ex(md, EVP_sha256(), nullptr) != 1) {
    EVP_MD_CTX_free(md);
    return internal("digest init");
  }
  auto add = [&](X509* x) {
    unsigned char h[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    return x != nullptr && X509_digest(x, EVP_sha256(), h, &n) == 1 && EVP_DigestUpdate(md, h, n) == 1;
  };
  bool ok = add(ee);
  for (X509* x : intermediates) ok = ok && add(x);
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  ok = ok && EVP_DigestFinal_ex(md, out, &n) == 1;
  EVP_MD_CTX_free(md);
  if (!ok) return internal("chain digest");
  return std::string(reinterpret_cast<const char*>(out), n);
}

/// Every certificate of `chain` valid at `now` (X509_cmp_time as OpenSSL's check_cert_time uses it).
bool chain_valid_at(STACK_OF(X509) * chain, UnixSeconds now) {
  time_t t = static_cast<time_t>(now);
  for (int i = 0; i < sk_X509_num(chain); ++i) {
    X509* x = sk_X509_value(chain, i);
    const int nb = X509_cmp_time(X509_get0_notBefore(x), &t);
    const int na = X509_cmp_time(X509_get0_notAfter(x), &t);
    if (nb == 0 || nb > 0 || na == 0 || na < 0) return false;
  }
  return true;
}

}  // namespace

struct PeerValidator::Impl {
  StorePtr store;
  std::vector<X509*> intermediates;  ///< owned references
  std::size_t anchors = 0;
  std::size_t capacity = kDefaultCacheEntries;

  struct Entry {
    std::string key;
    StackPtr chain;  ///< the verified path, end entity first
  };
  mutable std::mutex mu;
  mutable std::list<Entry> lru;  ///< most recent first
  mutable std::unordered_map<std::string, std::list<Entry>::iterator> index;
  mutable PeerValidatorStats stats;

  ~Impl() {
    for (X509* x : intermediates) X509_free(x);
  }

  /// A cached path for `key` still valid at `now` (moved to the front), or false.
  bool cache_hit(const std::string& key, UnixSeconds now) const {
    std::lock_guard<std::mutex> lock(mu);
    auto it = index.find(key);
    if (it == index.end()) return false;
    if (!chain_valid_at(it->second->chain.get(), now)) {
      lru.erase(it->second);
      index.erase(it);
      return false;
    }
    lru.splice(lru.begin(), lru, it->second);
    ++stats.cache_hits;
    return true;
  }

  void cache_put(std::string key, StackPtr chain) const {
    std::lock_guard<std::mutex> lock(mu);
    ++stats.cache_misses;
    if (capacity == 0 || index.count(key) != 0) return;
    lru.push_front(Entry{key, std::move(chain)});
    index.emplace(std::move(key), lru.begin());
    while (lru.size() > capacity) {
      index.erase(lru.back().key);
      lru.pop_back();
    }
  }

  /// Steps 1-4 without the cache; the verified path on success.
  Result<StackPtr> verify(X509* ee, std::span<X509* const> peer_intermediates, UnixSeconds now) const {
    StackPtr untrusted(sk_X509_new_null());
    if (!untrusted) return internal("allocating a stack");
    auto push = [&](X509* x) {
      if (x == nullptr) return true;
      if (sk_X509_push(untrusted.get(), x) <= 0) return false;
      X509_up_ref(x);
      return true;
    };
    for (X509* x : peer_intermediates)
      if (!push(x)) return internal("stack push");
    for (X509* x : intermediates)
      if (!push(x)) return internal("stack push");
    std::unique_ptr<X509_STORE_CTX, StoreCtxFree> ctx(X509_STORE_CTX_new());
    if (!ctx || X509_STORE_CTX_init(ctx.get(), store.get(), ee, untrusted.get()) != 1)
      return internal("initializing verification");
    X509_VERIFY_PARAM* param = X509_STORE_CTX_get0_param(ctx.get());
    X509_VERIFY_PARAM_set_time(param, static_cast<time_t>(now));
    // Level 3: 128-bit security (RSA >= 3072, EC >= 256, no SHA-1) for every
    // certificate of the path; the end entity is held to CNSA below.
    X509_VERIFY_PARAM_set_auth_level(param, 3);
    if (X509_verify_cert(ctx.get()) != 1) {
      Error e = map_verify_error(ctx.get(), ee, anchors);
      ERR_clear_error();
      return e;
    }
    StackPtr chain(X509_STORE_CTX_get1_chain(ctx.get()));
    if (!chain) return internal("verified chain");
    STORCRYPT_TRY(check_end_entity(ee));
    return chain;
  }
};

PeerValidator::PeerValidator(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
PeerValidator::PeerValidator(PeerValidator&&) noexcept = default;
PeerValidator& PeerValidator::operator=(PeerValidator&&) noexcept = default;
PeerValidator::~PeerValidator() = default;

Result<PeerValidator> PeerValidator::from_certificates(std::span<X509* const> anchors,
                                                       std::span<X509* const> intermediates,
                                                       std::size_t cache_entries) {
  auto impl = std::make_unique<Impl>();
  impl->capacity = cache_entries;
  impl->store.reset(X509_STORE_new());
  if (!impl->store) return internal("allocating a certificate store");
  for (X509* a : anchors) {
    if (a == nullptr) return Error(ErrorCode::kInvalidInput, "null trust anchor");
    if (X509_self_signed(a, 0) != 1) {
      ERR_clear_error();
      return Error(ErrorCode::kInvalidInput,
                   "trust anchor " + info_of(a).subject + " is not self-signed; pass it as an intermediate");
    }
    if (X509_STORE_add_cert(impl->store.get(), a) != 1) {
      const unsigned long e = ERR_peek_last_error();
      ERR_clear_error();
      if (ERR_GET_REASON(e) != X509_R_CERT_ALREADY_IN_HASH_TABLE) return internal("adding a trust anchor");
    }
    ++impl->anchors;
  }
  for (X509* x : intermediates) {
    if (x == nullptr) return Error(ErrorCode::kInvalidInput, "null intermediate");
    X509_up_ref(x);
    impl->intermediates.push_back(x);
  }
  return PeerValidator(std::move(impl));
}

Result<PeerValidator> PeerValidator::from_truststore(const certs::CertStore& store, std::size_t cache_entries) {
  STORCRYPT_ASSIGN_OR_RETURN(X509_STORE * raw, store.x509_store_for(certs::TrustUse::kIpsec));
  StorePtr trusted(raw);
  StackPtr all(X509_STORE_get1_all_certs(trusted.get()));
  if (!all) return internal("listing the truststore");
  std::vector<X509*> anchors;
  std::vector<X509*> intermediates;
  for (int i = 0; i < sk_X509_num(all.get()); ++i) {
    X509* x = sk_X509_value(all.get(), i);
    (X509_self_signed(x, 0) == 1 ? anchors : intermediates).push_back(x);
  }
  ERR_clear_error();
  return from_certificates(anchors, intermediates, cache_entries);
}

Status PeerValidator::validate(X509* end_entity, std::span<X509* const> intermediates, const IdPayload& peer_id,
                               UnixSeconds now) const {
  if (end_entity == nullptr) return Error(ErrorCode::kInvalidInput, "no peer certificate");
  STORCRYPT_ASSIGN_OR_RETURN(std::string key, chain_key(end_entity, intermediates));
  if (!impl_->cache_hit(key, now)) {
    STORCRYPT_ASSIGN_OR_RETURN(StackPtr chain, impl_->verify(end_entity, intermediates, now));
    impl_->cache_put(std::move(key), std::move(chain));
  }
  return check_id(peer_id, end_entity);
}

PeerValidatorStats PeerValidator::stats() const {
  std::lock_guard<std::mutex> lock(impl_->mu);
  PeerValidatorStats s = impl_->stats;
  s.cache_entries = impl_->lru.size();
  return s;
}

std::size_t PeerValidator::anchor_count() const { return impl_->anchors; }

PeerCertValidator make_peer_cert_validator(std::shared_ptr<const PeerValidator> validator,
                                           std::function<UnixSeconds()> clock) {
  return [validator = std::move(validator), clock = std::move(clock)](X509* ee, std::span<X509* const> intermediates,
                                                                      const IdPayload& id) -> Status {
    const UnixSeconds now = clock ? clock() : static_cast<UnixSeconds>(std::time(nullptr));
    return validator->validate(ee, intermediates, id, now);
  };
}

}  // namespace storcrypt::ike
