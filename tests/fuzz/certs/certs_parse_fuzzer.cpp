// Fuzz the certificate/bundle input parser (PEM bundles pasted by
// administrators, DER files, peer chains): no crash, every accepted
// certificate survives a PEM and a DER round trip with the same fingerprint,
// and verifying whatever parsed against a truststore fails only with one of
// the documented error names.
#include <stdlib.h>

#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <optional>
#include <set>
#include <string>
#include <string_view>

#include "storcrypt/certs/certs.h"

namespace {

using namespace storcrypt::certs;

// One store per process: an internal root trusted for ipsec.
CertStore* store() {
  static std::optional<CertStore> s;
  static bool init = false;
  if (!init) {
    init = true;
    char tmpl[] = "/tmp/storcrypt-certs-fuzz-XXXXXX";
    if (mkdtemp(tmpl) == nullptr) std::abort();
    auto st = CertStore::open(tmpl);
    if (!st.ok()) std::abort();
    s.emplace(std::move(st).value());
    CreateOptions o;
    o.subject.common_name = "fuzz.example.com";
    if (!s->create_internal(o).ok()) std::abort();
    if (!s->trust_add(s->export_root_pem().value(), {TrustUse::kIpsec}).ok()) std::abort();
    static std::string dir = tmpl;
    std::atexit([] { std::filesystem::remove_all(dir); });
  }
  return &*s;
}

const std::set<std::string> kVerifyNames = {
    "xCertExpired",    "xCertNotYetValid",  "xCertUntrustedRoot", "xCertMissingIntermediate",
    "xCertWrongUsage", "xCertBadSignature", "xCertChainInvalid",  "xCertWeakKey",
    "xCertGarbage"};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
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
  VerifyOptions o;
  auto v = store()->verify_peer(*r, o);
  if (!v.ok() && kVerifyNames.count(v.error().name()) == 0) std::abort();
  return 0;
}
