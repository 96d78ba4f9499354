#include "storcrypt/ike/crypto.h"

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/obj_mac.h>
#include <openssl/param_build.h>

#include <string>

namespace storcrypt::ike {

namespace {

Error ossl_error(std::string_view what) { return Error(ErrorCode::kInternal, "OpenSSL: " + std::string(what)); }

const char* digest_name(PrfAlg alg) {
  switch (alg) {
    case PrfAlg::kHmacSha256:
      return "SHA256";
    case PrfAlg::kHmacSha384:
      return "SHA384";
    case PrfAlg::kHmacSha512:
      return "SHA512";
  }
  return "SHA384";
}

struct EvpPkeyFree {
  void operator()(EVP_PKEY* p) const { EVP_PKEY_free(p); }
};
struct EvpPkeyCtxFree {
  void operator()(EVP_PKEY_CTX* p) const { EVP_PKEY_CTX_free(p); }
};
struct CipherCtxFree {
  void operator()(EVP_CIPHER_CTX* p) const { EVP_CIPHER_CTX_free(p); }
};
using PkeyPtr = std::unique_ptr<EVP_PKEY, EvpPkeyFree>;
using PkeyCtxPtr = std::unique_ptr<EVP_PKEY_CTX, EvpPkeyCtxFree>;
using CipherCtxPtr = std::unique_ptr<EVP_CIPHER_CTX, CipherCtxFree>;

struct GroupInfo {
  std::uint16_t id;
  const char* curve;  // OpenSSL group name; nullptr for X25519
  int nid;
  std::size_t coord;  // field element size in bytes
};
constexpr GroupInfo kGroups[] = {
    {transform_id::kGroupEcp256, "P-256", NID_X9_62_prime256v1, 32},
    {transform_id::kGroupEcp384, "P-384", NID_secp384r1, 48},
    {transform_id::kGroupEcp521, "P-521", NID_secp521r1, 66},
    {transform_id::kGroupCurve25519, nullptr, NID_X25519, 32},
};
const GroupInfo* group_info(std::uint16_t id) {
  for (const auto& g : kGroups)
    if (g.id == id) return &g;
  return nullptr;
}

Error unsupported_group(std::uint16_t group) {
  return Error(ErrorCode::kUnsupported, "Diffie-Hellman group " + std::to_string(group) + " is not supported");
}

// An EC EVP_PKEY from an uncompressed point (0x04 || x || y), with an optional private scalar.
Result<PkeyPtr> ec_key_from(const GroupInfo& g, std::span<const std::uint8_t> point, const BIGNUM* priv) {
  OSSL_PARAM_BLD* bld = OSSL_PARAM_BLD_new();
  if (bld == nullptr) return ossl_error("OSSL_PARAM_BLD_new");
  OSSL_PARAM* params = nullptr;
  bool ok = OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME, g.curve, 0) == 1 &&
            OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, point.data(), point.size()) == 1 &&
            (priv == nullptr || OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_PRIV_KEY, priv) == 1) &&
            (params = OSSL_PARAM_BLD_to_param(bld)) != nullptr;
  OSSL_PARAM_BLD_free(bld);
  if (!ok) return ossl_error("building EC key parameters");
  PkeyCtxPtr ctx(EVP_PKEY_CTX_new_from_name(nullptr, "EC", nullptr));
  EVP_PKEY* pkey = nullptr;
  ok = ctx && EVP_PKEY_fromdata_init(ctx.get()) == 1 &&
       EVP_PKEY_fromdata(ctx.get(), &pkey, priv ? EVP_PKEY_KEYPAIR : EVP_PKEY_PUBLIC_KEY, params) == 1;
  // The parameters held the private scalar.
  if (OSSL_PARAM* d = OSSL_PARAM_locate(params, OSSL_PKEY_PARAM_PRIV_KEY); d != nullptr && d->data != nullptr)
    OPENSSL_cleanse(d->data, d->data_size);
  OSSL_PARAM_free(params);
  if (!ok) return Error(ErrorCode::kProtocol, "public value is not a point on " + std::string(g.curve));
  return PkeyPtr(pkey);
}

Result<SecretBytes> hmac(PrfAlg alg, std::span<const std::uint8_t> key,
                         std::initializer_list<std::span<const std::uint8_t>> parts) {
  EVP_MAC* mac = EVP_MAC_fetch(nullptr, "HMAC", nullptr);
  if (mac == nullptr) return ossl_error("HMAC unavailable");
  EVP_MAC_CTX* ctx = EVP_MAC_CTX_new(mac);
  EVP_MAC_free(mac);
  if (ctx == nullptr) return ossl_error("EVP_MAC_CTX_new");
  OSSL_PARAM params[] = {
      OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, const_cast<char*>(digest_name(alg)), 0),
      OSSL_PARAM_construct_end()};
  // An empty key is legal for HMAC; OpenSSL wants a non-null pointer.
  static const std::uint8_t kEmpty = 0;
  bool ok = EVP_MAC_init(ctx, key.empty() ? &kEmpty : key.data(), key.size(), params) == 1;
  for (auto p : parts) ok = ok && EVP_MAC_update(ctx, p.data(), p.size()) == 1;
  SecretBytes out(prf_size(alg));
  std::size_t n = 0;
  ok = ok && EVP_MAC_final(ctx, out.data(), &n, out.size()) == 1 && n == out.size();
  EVP_MAC_CTX_free(ctx);  // cleanses its key schedule
  if (!ok) return ossl_error("HMAC");
  return out;
}

}  // namespace

Result<PrfAlg> prf_from_transform(std::uint16_t id) {
  switch (id) {
    case transform_id::kPrfHmacSha256:
      return PrfAlg::kHmacSha256;
    case transform_id::kPrfHmacSha384:
      return PrfAlg::kHmacSha384;
    case transform_id::kPrfHmacSha512:
      return PrfAlg::kHmacSha512;
  }
  return Error(ErrorCode::kUnsupported, "PRF transform " + std::to_string(id) + " is not supported");
}

std::size_t prf_size(PrfAlg alg) {
  switch (alg) {
    case PrfAlg::kHmacSha256:
      return 32;
    case PrfAlg::kHmacSha384:
      return 48;
    case PrfAlg::kHmacSha512:
      return 64;
  }
  return 48;
}

Result<SecretBytes> prf(PrfAlg alg, std::span<const std::uint8_t> key, std::span<const std::uint8_t> data) {
  return hmac(alg, key, {data});
}

Result<SecretBytes> prf_plus(PrfAlg alg, std::span<const std::uint8_t> key, std::span<const std::uint8_t> seed,
                             std::size_t length) {
  const std::size_t h = prf_size(alg);
  if (length > 255 * h) return Error(ErrorCode::kInvalidInput, "prf+ asked for more than 255 blocks");
  SecretBytes out;
  SecretBytes t;  // T(n-1), empty for T1
  for (std::uint8_t n = 1; out.size() < length; ++n) {
    const std::uint8_t counter[1] = {n};
    STORCRYPT_ASSIGN_OR_RETURN(SecretBytes next, hmac(alg, key, {t.view(), seed, counter}));
    t = std::move(next);
    out.append(t.view());
  }
  out.resize(length);
  return out;
}

Result<SecretBytes> skeyseed(PrfAlg alg, std::span<const std::uint8_t> ni, std::span<const std::uint8_t> nr,
                             const SecretBytes& shared) {
  // The key is Ni | Nr (public values); built in a wiped buffer all the same.
  SecretBytes key(ni);
  key.append(nr);
  return prf(alg, key.view(), shared.view());
}

Result<SecretBytes> skeyseed_rekey(PrfAlg old_alg, const SecretBytes& old_sk_d, const SecretBytes& shared,
                                   std::span<const std::uint8_t> ni, std::span<const std::uint8_t> nr) {
  return hmac(old_alg, old_sk_d.view(), {shared.view(), ni, nr});
}

Result<KeySizes> ike_key_sizes(std::uint16_t encr_id, std::uint16_t key_bits, std::uint16_t integ_id) {
  if (key_bits != 128 && key_bits != 192 && key_bits != 256)
    return Error(ErrorCode::kUnsupported, "AES key length " + std::to_string(key_bits) + " is not supported");
  KeySizes s;
  switch (encr_id) {
    case transform_id::kEncrAesCbc:
      s.encr = key_bits / 8;
      break;
    case transform_id::kEncrAesGcm16:
      if (integ_id != transform_id::kIntegNone)
        return Error(ErrorCode::kProtocol, "AES-GCM proposed with an integrity transform");
      s.encr = key_bits / 8 + 4;  // RFC 5282 §7.1: 4-byte salt
      return s;
    default:
      return Error(ErrorCode::kUnsupported, "encryption transform " + std::to_string(encr_id) + " is not supported");
  }
  switch (integ_id) {
    case transform_id::kIntegHmacSha256_128:
      s.integ = 32;
      break;
    case transform_id::kIntegHmacSha384_192:
      s.integ = 48;
      break;
    case transform_id::kIntegHmacSha512_256:
      s.integ = 64;
      break;
    default:
      return Error(ErrorCode::kUnsupported, "integrity transform " + std::to_string(integ_id) + " is not supported");
  }
  return s;
}

Result<KeySizes> esp_key_sizes(std::uint16_t encr_id, std::uint16_t key_bits, std::uint16_t integ_id) {
  // The same table: ESP AES-GCM takes 4 salt bytes from KEYMAT too (RFC 4106 §8.1).
  return ike_key_sizes(encr_id, key_bits, integ_id);
}

namespace {
/// Cuts consecutive keys off a KEYMAT stream (prf+ output), in order.
struct KeySlicer {
  const SecretBytes& km;
  std::size_t off = 0;
  SecretBytes operator()(std::size_t n) {
    SecretBytes k(km.data() + off, n);
    off += n;
    return k;
  }
};
}  // namespace

Result<IkeSaKeys> derive_ike_sa_keys(PrfAlg alg, const SecretBytes& skeyseed_value, std::span<const std::uint8_t> ni,
                                     std::span<const std::uint8_t> nr, std::uint64_t spi_i, std::uint64_t spi_r,
                                     KeySizes sizes) {
  Bytes seed(ni.begin(), ni.end());
  seed.insert(seed.end(), nr.begin(), nr.end());
  for (std::uint64_t spi : {spi_i, spi_r})
    for (int s = 56; s >= 0; s -= 8) seed.push_back(static_cast<std::uint8_t>(spi >> s));
  const std::size_t p = prf_size(alg);
  const std::size_t total = 3 * p + 2 * sizes.integ + 2 * sizes.encr;
  STORCRYPT_ASSIGN_OR_RETURN(SecretBytes km, prf_plus(alg, skeyseed_value.view(), seed, total));
  KeySlicer next{km};
  IkeSaKeys k;
  k.sk_d = next(p);
  k.sk_ai = next(sizes.integ);
  k.sk_ar = next(sizes.integ);
  k.sk_ei = next(sizes.encr);
  k.sk_er = next(sizes.encr);
  k.sk_pi = next(p);
  k.sk_pr = next(p);
  return k;
}

Result<ChildSaKeys> derive_child_sa_keys(PrfAlg alg, const SecretBytes& sk_d, const SecretBytes* pfs_shared,
                                         std::span<const std::uint8_t> ni, std::span<const std::uint8_t> nr,
                                         KeySizes sizes) {
  SecretBytes seed;
  if (pfs_shared != nullptr) seed.append(pfs_shared->view());
  seed.append(ni);
  seed.append(nr);
  STORCRYPT_ASSIGN_OR_RETURN(SecretBytes km, prf_plus(alg, sk_d.view(), seed.view(), 2 * (sizes.encr + sizes.integ)));
  KeySlicer next{km};
  ChildSaKeys k;
  k.encr_i = next(sizes.encr);
  k.integ_i = next(sizes.integ);
  k.encr_r = next(sizes.encr);
  k.integ_r = next(sizes.integ);
  return k;
}

// ---- key exchange ------------------------------------------------------------

struct KeyExchange::Key {
  PkeyPtr pkey;
};

KeyExchange::KeyExchange(std::uint16_t group, std::unique_ptr<Key> key, Bytes pub)
    : group_(group), key_(std::move(key)), public_(std::move(pub)) {}
KeyExchange::KeyExchange(KeyExchange&&) noexcept = default;
KeyExchange& KeyExchange::operator=(KeyExchange&&) noexcept = default;
KeyExchange::~KeyExchange() = default;

bool KeyExchange::supported(std::uint16_t group) { return group_info(group) != nullptr; }

std::size_t KeyExchange::public_size(std::uint16_t group) {
  const GroupInfo* g = group_info(group);
  if (g == nullptr) return 0;
  return g->curve == nullptr ? g->coord : 2 * g->coord;
}

namespace {
Result<Bytes> public_of(const GroupInfo& g, EVP_PKEY* pkey) {
  if (g.curve == nullptr) {
    Bytes pub(32);
    std::size_t n = pub.size();
    if (EVP_PKEY_get_raw_public_key(pkey, pub.data(), &n) != 1 || n != 32) return ossl_error("X25519 public key");
    return pub;
  }
  Bytes point(1 + 2 * g.coord);
  std::size_t n = 0;
  if (EVP_PKEY_get_octet_string_param(pkey, OSSL_PKEY_PARAM_ENCODED_PUBLIC_KEY, point.data(), point.size(), &n) != 1 ||
      n != point.size() || point[0] != 0x04)
    return ossl_error("EC public key");
  return Bytes(point.begin() + 1, point.end());  // RFC 5903 §7: x || y without the 0x04 prefix
}
}  // namespace

Result<KeyExchange> KeyExchange::generate(std::uint16_t group) {
  const GroupInfo* g = group_info(group);
  if (g == nullptr) return unsupported_group(group);
  EVP_PKEY* raw = g->curve == nullptr ? EVP_PKEY_Q_keygen(nullptr, nullptr, "X25519")
                                      : EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", g->curve);
  if (raw == nullptr) return ossl_error("key generation");
  auto key = std::make_unique<Key>();
  key->pkey.reset(raw);
  STORCRYPT_ASSIGN_OR_RETURN(Bytes pub, public_of(*g, raw));
  return KeyExchange(group, std::move(key), std::move(pub));
}

Result<KeyExchange> KeyExchange::from_private(std::uint16_t group, std::span<const std::uint8_t> priv) {
  const GroupInfo* g = group_info(group);
  if (g == nullptr) return unsupported_group(group);
  if (priv.size() != g->coord) return Error(ErrorCode::kInvalidInput, "private value of the wrong length");
  auto key = std::make_unique<Key>();
  if (g->curve == nullptr) {
    key->pkey.reset(EVP_PKEY_new_raw_private_key(EVP_PKEY_X25519, nullptr, priv.data(), priv.size()));
    if (!key->pkey) return ossl_error("X25519 private key");
  } else {
    // The public point is computed here (EVP_PKEY_fromdata does not derive it).
    BIGNUM* d = BN_secure_new();
    EC_GROUP* eg = EC_GROUP_new_by_curve_name(g->nid);
    EC_POINT* q = eg ? EC_POINT_new(eg) : nullptr;
    Bytes point(1 + 2 * g->coord);
    bool ok =
        d != nullptr && q != nullptr && BN_bin2bn(priv.data(), static_cast<int>(priv.size()), d) != nullptr &&
        EC_POINT_mul(eg, q, d, nullptr, nullptr, nullptr) == 1 &&
        EC_POINT_point2oct(eg, q, POINT_CONVERSION_UNCOMPRESSED, point.data(), point.size(), nullptr) == point.size();
    Result<PkeyPtr> pk = ok ? ec_key_from(*g, point, d) : Result<PkeyPtr>(ossl_error("EC private key"));
    EC_POINT_free(q);
    EC_GROUP_free(eg);
    BN_clear_free(d);
    if (!pk.ok()) return std::move(pk).error();
    key->pkey = std::move(pk).value();
  }
  STORCRYPT_ASSIGN_OR_RETURN(Bytes pub, public_of(*g, key->pkey.get()));
  return KeyExchange(group, std::move(key), std::move(pub));
}

Result<SecretBytes> KeyExchange::derive(std::span<const std::uint8_t> peer_public) {
  if (!key_) return Error(ErrorCode::kConflict, "this key exchange's private key was already used");
  // Ephemeral: gone after this call whatever happens (EVP_PKEY_free clears the scalar).
  std::unique_ptr<Key> key = std::move(key_);
  const GroupInfo* g = group_info(group_);
  if (peer_public.size() != public_size(group_))
    return Error(ErrorCode::kProtocol, "KE data of " + std::to_string(peer_public.size()) + " bytes for group " +
                                           std::to_string(group_) + " (expected " +
                                           std::to_string(public_size(group_)) + ")");
  PkeyPtr peer;
  if (g->curve == nullptr) {
    peer.reset(EVP_PKEY_new_raw_public_key(EVP_PKEY_X25519, nullptr, peer_public.data(), peer_public.size()));
    if (!peer) return Error(ErrorCode::kProtocol, "X25519 public value refused");
  } else {
    Bytes point;
    point.reserve(peer_public.size() + 1);
    point.push_back(0x04);
    point.insert(point.end(), peer_public.begin(), peer_public.end());
    STORCRYPT_ASSIGN_OR_RETURN(peer, ec_key_from(*g, point, nullptr));
    PkeyCtxPtr check(EVP_PKEY_CTX_new_from_pkey(nullptr, peer.get(), nullptr));
    if (!check || EVP_PKEY_public_check(check.get()) != 1)
      return Error(ErrorCode::kProtocol, "public value is not a valid point on " + std::string(g->curve));
  }
  PkeyCtxPtr ctx(EVP_PKEY_CTX_new_from_pkey(nullptr, key->pkey.get(), nullptr));
  std::size_t n = 0;
  if (!ctx || EVP_PKEY_derive_init(ctx.get()) != 1 || EVP_PKEY_derive_set_peer_ex(ctx.get(), peer.get(), 1) != 1 ||
      EVP_PKEY_derive(ctx.get(), nullptr, &n) != 1)
    return Error(ErrorCode::kProtocol, "Diffie-Hellman with the peer's public value failed");
  SecretBytes shared(n);
  // X25519 fails here on an all-zero result (a low-order peer point).
  if (EVP_PKEY_derive(ctx.get(), shared.data(), &n) != 1)
    return Error(ErrorCode::kProtocol, "Diffie-Hellman with the peer's public value failed");
  shared.resize(n);
  if (n != g->coord) return ossl_error("shared secret of unexpected size");
  return shared;
}

Result<Bytes> auth_octets(PrfAlg alg, std::span<const std::uint8_t> own_sa_init_message,
                          std::span<const std::uint8_t> peer_nonce, const SecretBytes& sk_p, const IdPayload& id) {
  Bytes id_body;
  id_body.push_back(id.id_type);
  id_body.insert(id_body.end(), id.reserved.begin(), id.reserved.end());
  id_body.insert(id_body.end(), id.data.begin(), id.data.end());
  STORCRYPT_ASSIGN_OR_RETURN(SecretBytes maced_id, prf(alg, sk_p.view(), id_body));
  Bytes out(own_sa_init_message.begin(), own_sa_init_message.end());
  out.insert(out.end(), peer_nonce.begin(), peer_nonce.end());
  out.insert(out.end(), maced_id.data(), maced_id.data() + maced_id.size());
  return out;
}

Result<Bytes> nat_detection_hash(std::uint64_t spi_i, std::uint64_t spi_r, std::span<const std::uint8_t> address,
                                 std::uint16_t port) {
  if (address.size() != 4 && address.size() != 16)
    return Error(ErrorCode::kInvalidInput, "address of " + std::to_string(address.size()) + " bytes");
  Bytes in;
  for (std::uint64_t spi : {spi_i, spi_r})
    for (int s = 56; s >= 0; s -= 8) in.push_back(static_cast<std::uint8_t>(spi >> s));
  in.insert(in.end(), address.begin(), address.end());
  in.push_back(static_cast<std::uint8_t>(port >> 8));
  in.push_back(static_cast<std::uint8_t>(port));
  Bytes out(20);
  unsigned int n = 0;
  if (EVP_Digest(in.data(), in.size(), out.data(), &n, EVP_sha1(), nullptr) != 1 || n != 20) return ossl_error("SHA-1");
  return out;
}

// ---- ciphers -------------------------------------------------------------------

namespace {
const EVP_CIPHER* aes(std::size_t key_size, bool gcm) {
  switch (key_size) {
    case 16:
      return gcm ? EVP_aes_128_gcm() : EVP_aes_128_cbc();
    case 24:
      return gcm ? EVP_aes_192_gcm() : EVP_aes_192_cbc();
    case 32:
      return gcm ? EVP_aes_256_gcm() : EVP_aes_256_cbc();
  }
  return nullptr;
}
}  // namespace

Result<Bytes> aes_gcm_seal(std::span<const std::uint8_t> key, std::span<const std::uint8_t> nonce,
                           std::span<const std::uint8_t> aad, std::span<const std::uint8_t> plaintext,
                           std::size_t tag_size) {
  const EVP_CIPHER* c = aes(key.size(), true);
  if (c == nullptr || nonce.size() != 12 || tag_size < 8 || tag_size > 16)
    return Error(ErrorCode::kInvalidInput, "AES-GCM key, nonce or tag size");
  CipherCtxPtr ctx(EVP_CIPHER_CTX_new());
  Bytes out(plaintext.size() + tag_size);
  int n = 0, m = 0;
  bool ok = ctx && EVP_EncryptInit_ex(ctx.get(), c, nullptr, key.data(), nonce.data()) == 1 &&
            (aad.empty() || EVP_EncryptUpdate(ctx.get(), nullptr, &n, aad.data(), static_cast<int>(aad.size())) == 1) &&
            EVP_EncryptUpdate(ctx.get(), out.data(), &n, plaintext.data(), static_cast<int>(plaintext.size())) == 1 &&
            EVP_EncryptFinal_ex(ctx.get(), out.data() + n, &m) == 1 &&
            static_cast<std::size_t>(n) + static_cast<std::size_t>(m) == plaintext.size() &&
            EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_GET_TAG, static_cast<int>(tag_size),
                                out.data() + plaintext.size()) == 1;
  if (!ok) return ossl_error("AES-GCM encryption");
  return out;
}

Result<Bytes> aes_gcm_open(std::span<const std::uint8_t> key, std::span<const std::uint8_t> nonce,
                           std::span<const std::uint8_t> aad, std::span<const std::uint8_t> ct_tag,
                           std::size_t tag_size) {
  const EVP_CIPHER* c = aes(key.size(), true);
  if (c == nullptr || nonce.size() != 12 || tag_size < 8 || tag_size > 16)
    return Error(ErrorCode::kInvalidInput, "AES-GCM key, nonce or tag size");
  if (ct_tag.size() < tag_size) return Error(ErrorCode::kProtocol, "AES-GCM ciphertext shorter than its tag");
  const std::size_t clen = ct_tag.size() - tag_size;
  CipherCtxPtr ctx(EVP_CIPHER_CTX_new());
  Bytes out(clen);
  // OpenSSL wants a writable tag buffer.
  Bytes tag(ct_tag.begin() + clen, ct_tag.end());
  int n = 0, m = 0;
  bool ok = ctx && EVP_DecryptInit_ex(ctx.get(), c, nullptr, key.data(), nonce.data()) == 1 &&
            (aad.empty() || EVP_DecryptUpdate(ctx.get(), nullptr, &n, aad.data(), static_cast<int>(aad.size())) == 1) &&
            EVP_DecryptUpdate(ctx.get(), out.data(), &n, ct_tag.data(), static_cast<int>(clen)) == 1 &&
            EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_SET_TAG, static_cast<int>(tag_size), tag.data()) == 1;
  if (!ok) return ossl_error("AES-GCM decryption");
  if (EVP_DecryptFinal_ex(ctx.get(), out.data() + n, &m) != 1) {
    OPENSSL_cleanse(out.data(), out.size());
    return Error(ErrorCode::kProtocol, "integrity check failed", {}, "xIkeIntegrity");
  }
  return out;
}

Result<Bytes> aes_cbc(bool encrypt, std::span<const std::uint8_t> key, std::span<const std::uint8_t> iv,
                      std::span<const std::uint8_t> data) {
  const EVP_CIPHER* c = aes(key.size(), false);
  if (c == nullptr || iv.size() != 16) return Error(ErrorCode::kInvalidInput, "AES-CBC key or IV size");
  if (data.size() % 16 != 0) return Error(ErrorCode::kProtocol, "AES-CBC data is not a whole number of blocks");
  CipherCtxPtr ctx(EVP_CIPHER_CTX_new());
  Bytes out(data.size());
  int n = 0, m = 0;
  bool ok = ctx && EVP_CipherInit_ex(ctx.get(), c, nullptr, key.data(), iv.data(), encrypt ? 1 : 0) == 1 &&
            EVP_CIPHER_CTX_set_padding(ctx.get(), 0) == 1 &&
            EVP_CipherUpdate(ctx.get(), out.data(), &n, data.data(), static_cast<int>(data.size())) == 1 &&
            EVP_CipherFinal_ex(ctx.get(), out.data() + n, &m) == 1 &&
            static_cast<std::size_t>(n) + static_cast<std::size_t>(m) == data.size();
  if (!ok) return ossl_error("AES-CBC");
  return out;
}

}  // namespace storcrypt::ike
