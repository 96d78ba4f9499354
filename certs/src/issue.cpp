#include "issue.h"

#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/rand.h>

namespace storcrypt::certs::detail {

namespace {

Status add_entry(X509_NAME* n, const char* field, const std::string& v) {
  if (v.empty()) return ok_status();
  if (X509_NAME_add_entry_by_txt(n, field, MBSTRING_UTF8, reinterpret_cast<const unsigned char*>(v.data()),
                                 static_cast<int>(v.size()), -1, 0) != 1) {
    ERR_clear_error();
    return cert_error(ErrorCode::kInvalidInput, "xCertBadSubject",
                      std::string("subject field ") + field + " cannot be encoded",
                      "use characters allowed for this field (C: two letters; emailAddress: ASCII)");
  }
  return ok_status();
}

std::string san_conf(const SubjectAltNames& s) {
  // Values were validated (LDH names, inet_pton addresses): no ',' or ':' injection.
  std::string v;
  for (const auto& d : s.dns) v += (v.empty() ? "" : ",") + std::string("DNS:") + d;
  for (const auto& ip : s.ip) v += (v.empty() ? "" : ",") + std::string("IP:") + ip;
  return v;
}

Result<ExtPtr> make_ext(X509V3_CTX* ctx, int nid, const std::string& value) {
  ExtPtr e(X509V3_EXT_conf_nid(nullptr, ctx, nid, value.c_str()));
  if (!e) return openssl_error(std::string("building extension ") + OBJ_nid2sn(nid));
  return e;
}

}  // namespace

Result<NamePtr> build_name(const SubjectFields& s) {
  STORCRYPT_TRY(validate_subject(s));
  NamePtr n(X509_NAME_new());
  if (!n) return openssl_error("allocating a name");
  STORCRYPT_TRY(add_entry(n.get(), "C", s.country));
  STORCRYPT_TRY(add_entry(n.get(), "ST", s.state));
  STORCRYPT_TRY(add_entry(n.get(), "L", s.locality));
  STORCRYPT_TRY(add_entry(n.get(), "O", s.organization));
  STORCRYPT_TRY(add_entry(n.get(), "OU", s.unit));
  STORCRYPT_TRY(add_entry(n.get(), "CN", s.common_name));
  STORCRYPT_TRY(add_entry(n.get(), "emailAddress", s.email));
  return n;
}

SubjectAltNames effective_sans(const SubjectFields& s, const SubjectAltNames& sans) {
  if (!sans.dns.empty() || !sans.ip.empty()) return sans;
  SubjectAltNames cn{{s.common_name}, {}};
  if (validate_sans(cn).ok()) return cn;
  SubjectAltNames cn_ip{{}, {s.common_name}};
  if (validate_sans(cn_ip).ok()) return cn_ip;
  return {};
}

Result<X509Ptr> issue_certificate(const IssueParams& p) {
  X509Ptr x(X509_new());
  if (!x) return openssl_error("allocating a certificate");
  if (X509_set_version(x.get(), X509_VERSION_3) != 1) return openssl_error("setting version");
  // 159-bit random positive serial (RFC 5280: <= 20 octets, unpredictable).
  BnPtr bn(BN_new());
  if (!bn || BN_rand(bn.get(), 159, BN_RAND_TOP_ANY, BN_RAND_BOTTOM_ODD) != 1)
    return openssl_error("generating a serial number");
  if (!BN_to_ASN1_INTEGER(bn.get(), X509_get_serialNumber(x.get()))) return openssl_error("setting the serial");
  // Back-date by 5 minutes so a partner with a slightly slow clock accepts it.
  if (!ASN1_TIME_adj(X509_getm_notBefore(x.get()), static_cast<time_t>(p.now), 0, -300) ||
      !ASN1_TIME_adj(X509_getm_notAfter(x.get()), static_cast<time_t>(p.now), p.days, 0))
    return openssl_error("setting validity");
  if (X509_set_subject_name(x.get(), p.subject) != 1) return openssl_error("setting subject");
  X509* issuer = p.issuer ? p.issuer : x.get();
  if (X509_set_issuer_name(x.get(), p.issuer ? X509_get_subject_name(p.issuer) : p.subject) != 1)
    return openssl_error("setting issuer");
  if (X509_set_pubkey(x.get(), p.subject_key) != 1) return openssl_error("setting public key");

  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, issuer, x.get(), nullptr, nullptr, 0);
  std::vector<std::pair<int, std::string>> exts;
  if (p.profile == Profile::kRootCa) {
    exts = {{NID_basic_constraints, "critical,CA:TRUE"},
            {NID_key_usage, "critical,keyCertSign,cRLSign"},
            {NID_subject_key_identifier, "hash"}};
  } else {
    std::string ku = "critical,digitalSignature";
    if (EVP_PKEY_is_a(p.subject_key, "RSA")) ku += ",keyEncipherment";
    exts = {{NID_basic_constraints, "critical,CA:FALSE"},
            {NID_key_usage, ku},
            {NID_ext_key_usage, "serverAuth,clientAuth"},
            {NID_subject_key_identifier, "hash"}};
    if (p.sans) {
      std::string san = san_conf(*p.sans);
      if (!san.empty()) exts.emplace_back(NID_subject_alt_name, san);
    }
  }
  // AKID also on self-signed roots: verifiers then tell apart roots that
  // share a name by key id instead of trying the wrong one.
  if (p.issuer || p.profile == Profile::kRootCa) exts.emplace_back(NID_authority_key_identifier, "keyid:always");
  for (const auto& [nid, value] : exts) {
    STORCRYPT_ASSIGN_OR_RETURN(ExtPtr e, make_ext(&ctx, nid, value));
    if (X509_add_ext(x.get(), e.get(), -1) != 1) return openssl_error("adding an extension");
  }
  if (X509_sign(x.get(), p.issuer_key, EVP_sha384()) <= 0) return openssl_error("signing the certificate");
  return x;
}

Result<ReqPtr> build_csr(const X509_NAME* subject, EVP_PKEY* key, const SubjectAltNames& sans,
                         std::string_view ext_key_usage) {
  ReqPtr req(X509_REQ_new());
  if (!req) return openssl_error("allocating a CSR");
  if (X509_REQ_set_version(req.get(), X509_REQ_VERSION_1) != 1 || X509_REQ_set_subject_name(req.get(), subject) != 1 ||
      X509_REQ_set_pubkey(req.get(), key) != 1)
    return openssl_error("filling the CSR");
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, nullptr, nullptr, req.get(), nullptr, 0);
  std::vector<std::pair<int, std::string>> wanted = {{NID_key_usage, "critical,digitalSignature"},
                                                     {NID_ext_key_usage, std::string(ext_key_usage)}};
  if (EVP_PKEY_is_a(key, "RSA")) wanted[0].second += ",keyEncipherment";
  std::string san = san_conf(sans);
  if (!san.empty()) wanted.emplace_back(NID_subject_alt_name, san);
  STACK_OF(X509_EXTENSION)* exts = sk_X509_EXTENSION_new_null();
  if (exts == nullptr) return openssl_error("allocating extensions");
  for (const auto& [nid, value] : wanted) {
    auto e = make_ext(&ctx, nid, value);
    if (!e.ok()) {
      sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
      return std::move(e).error();
    }
    sk_X509_EXTENSION_push(exts, e->release());
  }
  int rc = X509_REQ_add_extensions(req.get(), exts);
  sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
  if (rc != 1) return openssl_error("adding the extension request");
  if (X509_REQ_sign(req.get(), key, EVP_sha384()) <= 0) return openssl_error("signing the CSR");
  return req;
}

std::string csr_to_pem(X509_REQ* req) {
  BioPtr bio(BIO_new(BIO_s_mem()));
  if (!bio || PEM_write_bio_X509_REQ(bio.get(), req) != 1) return {};
  return bio_to_string(bio.get());
}

}  // namespace storcrypt::certs::detail

namespace storcrypt::certs {

Result<std::string> make_csr_pem(const PrivateKey& key, const SubjectFields& subject, std::string_view ext_key_usage,
                                 const SubjectAltNames& sans) {
  if (!key.valid())
    return detail::cert_error(ErrorCode::kInvalidInput, "xCertNoKey", "no private key to make a CSR for",
                              "create the key pair first");
  STORCRYPT_TRY(validate_sans(sans));
  STORCRYPT_ASSIGN_OR_RETURN(auto name, detail::build_name(subject));
  STORCRYPT_ASSIGN_OR_RETURN(auto req, detail::build_csr(name.get(), key.native(), sans, ext_key_usage));
  std::string pem = detail::csr_to_pem(req.get());
  if (pem.empty()) return detail::openssl_error("encoding the CSR");
  return pem;
}

}  // namespace storcrypt::certs
