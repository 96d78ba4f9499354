// Building certificates and CSRs with OpenSSL's X509/X509V3 APIs.
#pragma once

#include "internal.h"

namespace storcrypt::certs::detail {

enum class Profile { kRootCa, kEndpoint };

/// X509_NAME from validated subject fields.
Result<NamePtr> build_name(const SubjectFields& s);

struct IssueParams {
  const X509_NAME* subject = nullptr;
  EVP_PKEY* subject_key = nullptr;  ///< public part used
  X509* issuer = nullptr;           ///< nullptr: self-signed
  EVP_PKEY* issuer_key = nullptr;   ///< signs; the subject key when self-signed
  UnixTime now = 0;
  int days = 0;
  Profile profile = Profile::kEndpoint;
  const SubjectAltNames* sans = nullptr;
};
Result<X509Ptr> issue_certificate(const IssueParams& p);

/// `ext_key_usage`: OpenSSL short names, comma-separated (the extension request).
Result<ReqPtr> build_csr(const X509_NAME* subject, EVP_PKEY* key, const SubjectAltNames& sans,
                         std::string_view ext_key_usage = "serverAuth,clientAuth");
std::string csr_to_pem(X509_REQ* req);

/// SANs actually used: the given ones, or the CN as a DNS name when none
/// were given and the CN is a valid DNS name.
SubjectAltNames effective_sans(const SubjectFields& s, const SubjectAltNames& sans);

}  // namespace storcrypt::certs::detail
