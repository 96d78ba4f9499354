// Internal to ike/: which keys the CNSA profile accepts for IKE
// authentication (EC P-384, RSA >= 3072). Shared by auth.cpp (signing and
// AUTH verification) and peer_auth.cpp (the peer's end-entity certificate).
#pragma once

#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/obj_mac.h>
#include <openssl/objects.h>

namespace storcrypt::ike::detail {

inline constexpr int kMinRsaBits = 3072;

inline bool is_p384(EVP_PKEY* key) {
  if (key == nullptr || !EVP_PKEY_is_a(key, "EC")) return false;
  char group[64] = {};
  size_t len = 0;
  if (EVP_PKEY_get_utf8_string_param(key, OSSL_PKEY_PARAM_GROUP_NAME, group, sizeof group, &len) != 1) return false;
  return OBJ_txt2nid(group) == NID_secp384r1 || OBJ_sn2nid(group) == NID_secp384r1;
}

inline bool is_rsa(EVP_PKEY* key) {
  return key != nullptr && (EVP_PKEY_is_a(key, "RSA") || EVP_PKEY_is_a(key, "RSA-PSS"));
}

/// EC P-384, or RSA of at least 3072 bits.
inline bool is_cnsa_key(EVP_PKEY* key) {
  return is_p384(key) || (is_rsa(key) && EVP_PKEY_get_bits(key) >= kMinRsaBits);
}

}  // namespace storcrypt::ike::detail
