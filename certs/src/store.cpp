#include "internal.h"

namespace storcrypt::certs {

namespace {
Error unsupported(std::string_view what) {
  return Error(ErrorCode::kUnsupported, std::string(what) + " is not implemented yet");
}
}  // namespace

Result<CertStore> CertStore::open(std::filesystem::path state_dir, Clock clock) {
  STORCRYPT_TRY(detail::ensure_dir(state_dir));
  return CertStore(std::move(state_dir), std::move(clock));
}

UnixTime CertStore::now() const { return clock_ ? clock_() : static_cast<UnixTime>(::time(nullptr)); }

Result<CreateResult> CertStore::create_internal(const CreateOptions&) { return unsupported("create_internal"); }
Result<CreateResult> CertStore::create_self_signed(const CreateOptions&) { return unsupported("create_self_signed"); }
Result<CsrResult> CertStore::create_csr(const CreateOptions&) { return unsupported("create_csr"); }
Result<std::string> CertStore::pending_csr_pem() const { return unsupported("pending_csr_pem"); }
Result<InstallResult> CertStore::install(std::string_view) { return unsupported("install"); }
Result<EndpointStatus> CertStore::show() const { return unsupported("show"); }
Result<std::string> CertStore::export_root_pem() const { return unsupported("export_root_pem"); }
Result<std::string> CertStore::endpoint_chain_pem() const { return unsupported("endpoint_chain_pem"); }
Result<std::vector<Certificate>> CertStore::endpoint_chain() const { return unsupported("endpoint_chain"); }
Result<PrivateKey> CertStore::endpoint_key() const { return unsupported("endpoint_key"); }
Result<std::vector<ExpiryItem>> CertStore::expiry_report() const { return unsupported("expiry_report"); }

}  // namespace storcrypt::certs
