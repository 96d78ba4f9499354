// storcrypt IKEv2: the Encrypted payload SK (RFC 7296 §3.14) and Encrypted
// Fragment payload SKF (RFC 7383), protected with
//   - AES-GCM-16 (RFC 5282): key + 4-byte salt, 8-byte explicit IV,
//     nonce = salt || IV, AAD = IKE header .. SK(F) payload header, 16-byte ICV;
//   - AES-CBC + HMAC-SHA2 (RFC 4868, e.g. HMAC-SHA-384-192): 16-byte random
//     IV, ICV = truncated HMAC over the message from the header to the end of
//     the ciphertext, checked before anything is decrypted.
//
// One SkProtector protects one direction of one IKE SA (SK_ei/SK_ai or
// SK_er/SK_ar); it owns its keys (SecretBytes) and is move-only. With
// AES-GCM it numbers its explicit IVs from 1, so exactly one SkProtector may
// ever seal with a given key: never create a second one for the same SK_e*
// (a repeated GCM nonce gives the key away). open() takes the whole
// received message (untrusted) and returns kProtocol errors; a failed
// integrity check has the name xIkeIntegrity (drop the message silently,
// RFC 7296 §2.21.2).
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <span>
#include <vector>

#include "storcrypt/common/result.h"
#include "storcrypt/common/secret.h"
#include "storcrypt/ike/message.h"

namespace storcrypt::ike {

class SkProtector {
 public:
  /// encr_id/key_bits/integ_id as negotiated (ENCR_AES_GCM_16 with integ 0,
  /// or ENCR_AES_CBC with an HMAC-SHA2 integ); keys sized per ike_key_sizes().
  static Result<SkProtector> create(std::uint16_t encr_id, std::uint16_t key_bits, std::uint16_t integ_id,
                                    SecretBytes encr_key, SecretBytes integ_key);

  std::size_t iv_size() const { return aead_ ? 8 : 16; }
  std::size_t icv_size() const { return icv_; }
  std::size_t block_size() const { return aead_ ? 1 : 16; }

  /// A whole message: `header` + `clear` payloads (normally none) + SK with `inner`.
  Result<Bytes> seal(const Header& header, std::span<const Payload> inner, std::span<const Payload> clear = {});

  /// RFC 7383: the same content as SKF fragments, each message at most
  /// `max_message_size` bytes (the IKE message, without IP/UDP headers or
  /// the non-ESP marker). One fragment when it fits.
  Result<std::vector<Bytes>> seal_fragments(const Header& header, std::span<const Payload> inner,
                                            std::size_t max_message_size);

  struct Opened {
    Header header;
    std::uint8_t next = 0;              ///< first inner payload type (0 in SKF fragments after the first)
    std::uint16_t fragment_number = 0;  ///< 0 for SK, 1.. for SKF
    std::uint16_t total_fragments = 0;
    Bytes plaintext;  ///< inner payload chain (padding removed)
  };
  /// Verify and decrypt a received message whose last payload is SK or SKF.
  Result<Opened> open(std::span<const std::uint8_t> message) const;

 private:
  SkProtector() = default;
  Result<Bytes> seal_one(const Header& header, std::span<const Payload> clear, std::uint8_t container,
                         std::uint8_t next, std::uint16_t frag_no, std::uint16_t frag_total,
                         std::span<const std::uint8_t> plaintext);
  bool aead_ = true;
  std::size_t icv_ = 16;
  int integ_digest_ = 0;  // PrfAlg value for the HMAC
  SecretBytes encr_;      // AES key (+ salt for GCM)
  SecretBytes integ_;
  std::uint64_t counter_ = 0;  // GCM explicit IVs: unique per key
};

/// Collects decrypted SKF fragments of one message (RFC 7383 §2.6).
class FragmentReassembler {
 public:
  /// Add one opened fragment; returns the full inner payload chain once all
  /// fragments are in, nullopt while some are missing. A fragment whose total
  /// disagrees with the others, or a duplicate, is an error.
  Result<std::optional<std::vector<Payload>>> add(const SkProtector::Opened& fragment);

 private:
  std::uint16_t total_ = 0;
  std::uint8_t next_ = 0;
  std::map<std::uint16_t, Bytes> parts_;
  std::size_t bytes_ = 0;
};

}  // namespace storcrypt::ike
