// storcrypt IKEv2: key exchange, PRF and key derivation (RFC 7296 §2.13,
// §2.14, §2.17, §2.18; RFC 5903; RFC 7748/8031), all on OpenSSL 3.
//
// Every derived key and shared secret is a SecretBytes (wiped when it dies,
// printed as <redacted>). Errors are kInternal when OpenSSL fails and
// kProtocol when a peer's value is unacceptable (a public value off the
// curve, of the wrong length). Nothing here logs.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "storcrypt/common/result.h"
#include "storcrypt/common/secret.h"
#include "storcrypt/ike/message.h"

namespace storcrypt::ike {

/// PRF transforms supported (HMAC only: the key is used at full length, RFC 7296 §2.14).
enum class PrfAlg : std::uint16_t {
  kHmacSha256 = transform_id::kPrfHmacSha256,
  kHmacSha384 = transform_id::kPrfHmacSha384,
  kHmacSha512 = transform_id::kPrfHmacSha512,
};
Result<PrfAlg> prf_from_transform(std::uint16_t id);
std::size_t prf_size(PrfAlg alg);

/// prf(K, S) = HMAC-SHA-x(K, S).
Result<SecretBytes> prf(PrfAlg alg, std::span<const std::uint8_t> key, std::span<const std::uint8_t> data);
/// prf+(K, S) = T1 | T2 | ... truncated to `length` (at most 255 blocks).
Result<SecretBytes> prf_plus(PrfAlg alg, std::span<const std::uint8_t> key, std::span<const std::uint8_t> seed,
                             std::size_t length);

/// SKEYSEED = prf(Ni | Nr, g^ir) for a new IKE SA.
Result<SecretBytes> skeyseed(PrfAlg alg, std::span<const std::uint8_t> ni, std::span<const std::uint8_t> nr,
                             const SecretBytes& shared);
/// SKEYSEED = prf(SK_d (old), g^ir (new) | Ni | Nr) when rekeying an IKE SA (old SA's PRF).
Result<SecretBytes> skeyseed_rekey(PrfAlg old_alg, const SecretBytes& old_sk_d, const SecretBytes& shared,
                                   std::span<const std::uint8_t> ni, std::span<const std::uint8_t> nr);

/// Key sizes of an IKE SA's SK payload protection: encryption key including
/// any salt (AES-GCM: key + 4), integrity key (0 for AEAD).
struct KeySizes {
  std::size_t encr = 0;
  std::size_t integ = 0;
};
/// For ENCR (id, key bits) + INTEG id. AES-CBC needs an INTEG transform,
/// AES-GCM must not have one (integ_id 0).
Result<KeySizes> ike_key_sizes(std::uint16_t encr_id, std::uint16_t key_bits, std::uint16_t integ_id);
/// ESP: the same, with KEYMAT salt rules of RFC 4106 §8.1 (GCM: 4 salt bytes).
Result<KeySizes> esp_key_sizes(std::uint16_t encr_id, std::uint16_t key_bits, std::uint16_t integ_id);

struct IkeSaKeys {
  SecretBytes sk_d, sk_ai, sk_ar, sk_ei, sk_er, sk_pi, sk_pr;
};
/// {SK_d | SK_ai | SK_ar | SK_ei | SK_er | SK_pi | SK_pr} = prf+(SKEYSEED, Ni | Nr | SPIi | SPIr).
Result<IkeSaKeys> derive_ike_sa_keys(PrfAlg alg, const SecretBytes& skeyseed, std::span<const std::uint8_t> ni,
                                     std::span<const std::uint8_t> nr, std::uint64_t spi_i, std::uint64_t spi_r,
                                     KeySizes sizes);

/// CHILD_SA KEYMAT (RFC 7296 §2.17), sliced in the order
/// [encr i->r][integ i->r][encr r->i][integ r->i].
struct ChildSaKeys {
  SecretBytes encr_i, integ_i;  ///< initiator -> responder
  SecretBytes encr_r, integ_r;  ///< responder -> initiator
};
/// KEYMAT = prf+(SK_d, [g^ir (new) |] Ni | Nr); pass pfs_shared = nullptr without PFS.
Result<ChildSaKeys> derive_child_sa_keys(PrfAlg alg, const SecretBytes& sk_d, const SecretBytes* pfs_shared,
                                         std::span<const std::uint8_t> ni, std::span<const std::uint8_t> nr,
                                         KeySizes sizes);

/// One side of an ephemeral Diffie-Hellman exchange: ECP 256/384/521
/// (groups 19/20/21, public value x || y per RFC 5903 §7, shared secret x)
/// and Curve25519 (group 31, RFC 8031).
class KeyExchange {
 public:
  static bool supported(std::uint16_t group);
  /// Public value size of a group (the KE payload's data), 0 when unsupported.
  static std::size_t public_size(std::uint16_t group);
  /// A fresh key pair.
  static Result<KeyExchange> generate(std::uint16_t group);
  /// A key pair from a known private value (known-answer tests).
  static Result<KeyExchange> from_private(std::uint16_t group, std::span<const std::uint8_t> priv);

  KeyExchange(KeyExchange&&) noexcept;
  KeyExchange& operator=(KeyExchange&&) noexcept;
  ~KeyExchange();

  std::uint16_t group() const { return group_; }
  /// Our public value as sent in the KE payload.
  const Bytes& public_value() const { return public_; }
  /// g^ir from the peer's KE data. The peer's value is checked (length, on
  /// the curve, not the identity; X25519: not a low-order point). The
  /// private key is destroyed after this call either way (RFC 9206 §10:
  /// ephemeral keys are used once), so a second call is an error.
  Result<SecretBytes> derive(std::span<const std::uint8_t> peer_public);

 private:
  struct Key;
  KeyExchange(std::uint16_t group, std::unique_ptr<Key> key, Bytes pub);
  std::uint16_t group_ = 0;
  std::unique_ptr<Key> key_;
  Bytes public_;
};

/// The octets an AUTH payload signs or MACs (RFC 7296 §2.15): the sender's
/// own IKE_SA_INIT message as sent | the peer's nonce | prf(SK_px, ID payload
/// body (ID type | RESERVED | data)), with SK_pi for the initiator and SK_pr
/// for the responder.
Result<Bytes> auth_octets(PrfAlg alg, std::span<const std::uint8_t> own_sa_init_message,
                          std::span<const std::uint8_t> peer_nonce, const SecretBytes& sk_p, const IdPayload& id);

/// NAT_DETECTION_*_IP data: SHA-1(SPIi | SPIr | IP address | port) (RFC 7296 §2.23).
/// `address` is 4 or 16 bytes in network order.
Result<Bytes> nat_detection_hash(std::uint64_t spi_i, std::uint64_t spi_r, std::span<const std::uint8_t> address,
                                 std::uint16_t port);

// Thin OpenSSL primitives, exposed for known-answer tests and the SK code.

/// AES-GCM (16/24/32-byte key, 12-byte nonce): returns ciphertext || tag.
Result<Bytes> aes_gcm_seal(std::span<const std::uint8_t> key, std::span<const std::uint8_t> nonce,
                           std::span<const std::uint8_t> aad, std::span<const std::uint8_t> plaintext,
                           std::size_t tag_size = 16);
/// Verifies the tag (kProtocol "integrity check failed" when it is wrong).
Result<Bytes> aes_gcm_open(std::span<const std::uint8_t> key, std::span<const std::uint8_t> nonce,
                           std::span<const std::uint8_t> aad, std::span<const std::uint8_t> ciphertext_and_tag,
                           std::size_t tag_size = 16);
/// AES-CBC without padding (data a multiple of 16 bytes).
Result<Bytes> aes_cbc(bool encrypt, std::span<const std::uint8_t> key, std::span<const std::uint8_t> iv,
                      std::span<const std::uint8_t> data);

}  // namespace storcrypt::ike
