// Fuzz the certificate/bundle input parser (PEM bundles pasted by
// administrators, DER files, peer chains): no crash, and every accepted
// certificate survives a PEM and a DER round trip with the same fingerprint.
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "storcrypt/certs/certs.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace storcrypt::certs;
  std::string_view in(reinterpret_cast<const char*>(data), size);
  (void)normalize_pem_text(in);
  auto r = parse_certificates(in);
  if (!r.ok()) {
    if (r.error().name() != "xCertGarbage") std::abort();  // one stable name for bad input
    return 0;
  }
  if (r->empty()) std::abort();
  for (const auto& c : *r) {
    CertInfo i = c.info();
    if (i.sha256_fingerprint.size() != 95) std::abort();
    (void)classify_expiry(i.not_before, i.not_after, 0);
    auto pem = parse_certificate(c.to_pem());
    if (!pem.ok() || pem->info().sha256_fingerprint != i.sha256_fingerprint) std::abort();
    auto der_bytes = c.to_der();
    auto der = parse_certificate(std::string_view(reinterpret_cast<const char*>(der_bytes.data()), der_bytes.size()));
    if (!der.ok() || der->info().sha256_fingerprint != i.sha256_fingerprint) std::abort();
  }
  return 0;
}
