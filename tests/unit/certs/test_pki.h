// Test-only certificate factory over the OpenSSL API (independent of the
// code under test's issuing paths): any validity, EKU, CA flag.
#pragma once

#include <string>
#include <vector>

#include "storcrypt/certs/certs.h"

namespace storcrypt::certs::testing {

struct MadeCert {
  Certificate cert;
  PrivateKey key;
};

struct MakeOptions {
  std::string cn = "test";
  bool ca = false;
  long not_before_offset = -3600;  ///< seconds relative to now
  long not_after_offset = 86400L * 365;
  std::vector<std::string> eku = {"serverAuth", "clientAuth"};  ///< empty: no EKU extension
  const MadeCert* issuer = nullptr;                             ///< nullptr: self-signed
  KeyType key_type = KeyType::kEcP384;
  const PrivateKey* subject_key = nullptr;  ///< reuse a key instead of generating one
};

MadeCert make_cert(const MakeOptions& o);

}  // namespace storcrypt::certs::testing
