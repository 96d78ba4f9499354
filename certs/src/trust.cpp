#include "internal.h"

namespace storcrypt::certs {

namespace {
Error unsupported(std::string_view what) {
  return Error(ErrorCode::kUnsupported, std::string(what) + " is not implemented yet");
}
}  // namespace

Result<std::vector<TrustEntry>> CertStore::trust_add(std::string_view, const std::set<TrustUse>&) {
  return unsupported("trust_add");
}
Result<std::vector<TrustEntry>> CertStore::trust_list() const { return unsupported("trust_list"); }
Status CertStore::trust_remove(std::string_view) { return unsupported("trust_remove"); }
Result<CertInfo> CertStore::verify_peer(const std::vector<Certificate>&, const VerifyOptions&) const {
  return unsupported("verify_peer");
}

}  // namespace storcrypt::certs
