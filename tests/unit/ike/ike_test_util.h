// Helpers for the ike unit tests: hex with spaces and comments, and the
// hand-assembled messages (written from the RFC 7296 §3 layouts, not by our
// serializer) that several tests share.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "storcrypt/common/hex.h"

namespace storcrypt::ike::testing {

/// Hex digits with spaces, newlines and "#..." comments ignored; aborts on bad input.
inline std::vector<std::uint8_t> hx(std::string_view text) {
  std::string digits;
  bool comment = false;
  for (char c : text) {
    if (c == '#') comment = true;
    if (c == '\n') comment = false;
    if (comment || c == ' ' || c == '\n') continue;
    digits.push_back(c);
  }
  auto b = parse_hex(digits);
  if (!b) std::abort();
  return *b;
}

// RFC 5903 §8.2 initiator public value (x || y), used as realistic KE data.
inline constexpr std::string_view kP384KEi =
    "667842d7d180ac2cde6f74f37551f55755c7645c20ef73e31634fe72b4c55ee6de3ac808acb4bdb4c88732aee95f41aa"
    "9482ed1fc0eeb9cafc4984625ccfc23f65032149e0e144ada024181535a0f38eeb9fcff3c2c947dae69b4c634573a81c";

/// IKE_SA_INIT request as charon sends it for aes256-sha384-ecp384 (294 bytes).
inline std::vector<std::uint8_t> sa_init_request() {
  std::string s = R"(
    0123456789abcdef 0000000000000000   # SPIi, SPIr
    21 20 22 08 00000000 00000126       # next SA, v2.0, IKE_SA_INIT, I, msgid 0, length 294
    22 00 0030                          # SA, next KE, length 48
      00 00 002c 01 01 00 04            #   last proposal, len 44, #1, IKE, no SPI, 4 transforms
        03 00 000c 01 00 000c 800e 0100 #     ENCR AES_CBC, Key Length 256
        03 00 0008 03 00 000d           #     INTEG HMAC_SHA2_384_192
        03 00 0008 02 00 0006           #     PRF HMAC_SHA2_384
        00 00 0008 04 00 0014           #     D-H 20 (ecp384)
    28 00 0068 0014 0000                # KE, next Nonce, length 104, group 20
  )";
  s += kP384KEi;
  s += R"(
    29 00 0024                          # Ni, next N, length 36
      000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f
    29 00 001c 00 00 4004               # N(NAT_DETECTION_SOURCE_IP)
      b43b59394bf8bc930246a8f80b6fddf05c58d9bf
    29 00 001c 00 00 4005               # N(NAT_DETECTION_DESTINATION_IP)
      0000000000000000000000000000000000000000
    29 00 0008 00 00 402e               # N(IKEV2_FRAGMENTATION_SUPPORTED)
    00 00 000e 00 00 402f 0002 0003 0004 # N(SIGNATURE_HASH_ALGORITHMS) SHA2-256/384/512
  )";
  return hx(s);
}

/// IKE_AUTH request content (the plaintext of SK): first payload IDi (35).
inline std::vector<std::uint8_t> ike_auth_inner() {
  return hx(R"(
    25 00 0010 02 000000 6c6566742e6c6162        # IDi FQDN "left.lab", next CERT
    26 00 000a 04 3003020101                     # CERT X.509 (placeholder DER), next CERTREQ
    27 00 0019 04 aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa  # CERTREQ, one SHA-1 key hash, next AUTH
    29 00 001d 0e 000000                         # AUTH method 14 (RFC 7427), next N
       0c 300a06082a8648ce3d040303               #   ecdsa-with-SHA384 AlgorithmIdentifier
       3006020101020101                          #   signature (placeholder)
    21 00 0008 00 00 4000                        # N(INITIAL_CONTACT), next SA
    2c 00 0024                                   # SA, next TSi
      00 00 0020 01 03 04 02 c1c2c3c4            #   proposal #1 ESP, SPI c1c2c3c4, 2 transforms
        03 00 000c 01 00 0014 800e 0100          #     ENCR AES_GCM_16, 256
        00 00 0008 05 00 0000                    #     ESN none
    2d 00 0018 01 000000                         # TSi, one selector, next TSr
      07 00 0010 0000 ffff c6336400 c63364ff     #   198.51.100.0-255 any protocol, all ports
    00 00 0018 01 000000                         # TSr
      07 00 0010 0000 ffff cb007100 cb0071ff     #   203.0.113.0-255
  )");
}

}  // namespace storcrypt::ike::testing
