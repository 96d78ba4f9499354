#include "test_pki.h"

#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <cstdlib>

namespace storcrypt::certs::testing {

namespace {
void add_ext(X509* x, X509* issuer, int nid, const std::string& value) {
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, issuer, x, nullptr, nullptr, 0);
  X509_EXTENSION* e = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value.c_str());
  if (e == nullptr) std::abort();
  X509_add_ext(x, e, -1);
  X509_EXTENSION_free(e);
}
}  // namespace

MadeCert make_cert(const MakeOptions& o) {
  MadeCert m;
  if (o.subject_key != nullptr) {
    EVP_PKEY_up_ref(o.subject_key->native());
    m.key = PrivateKey(o.subject_key->native());
  } else {
    auto k = PrivateKey::generate(o.key_type);
    if (!k.ok()) std::abort();
    m.key = std::move(k).value();
  }
  X509* x = X509_new();
  X509_set_version(x, 2);
  static long serial = 1000;
  ASN1_INTEGER_set(X509_get_serialNumber(x), ++serial);
  X509_gmtime_adj(X509_getm_notBefore(x), o.not_before_offset);
  X509_gmtime_adj(X509_getm_notAfter(x), o.not_after_offset);
  X509_NAME* n = X509_get_subject_name(x);
  X509_NAME_add_entry_by_txt(n, "O", MBSTRING_UTF8, reinterpret_cast<const unsigned char*>("Test PKI"), -1, -1, 0);
  X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_UTF8, reinterpret_cast<const unsigned char*>(o.cn.c_str()), -1, -1, 0);
  X509* issuer_x = o.issuer ? o.issuer->cert.native() : x;
  X509_set_issuer_name(x, X509_get_subject_name(issuer_x));
  X509_set_pubkey(x, m.key.native());
  add_ext(x, issuer_x, NID_subject_key_identifier, "hash");
  if (o.issuer) add_ext(x, issuer_x, NID_authority_key_identifier, "keyid:always");
  if (o.ca) {
    add_ext(x, issuer_x, NID_basic_constraints, "critical,CA:TRUE");
    add_ext(x, issuer_x, NID_key_usage, "critical,keyCertSign,cRLSign");
  } else {
    add_ext(x, issuer_x, NID_basic_constraints, "critical,CA:FALSE");
    add_ext(x, issuer_x, NID_key_usage, "critical,digitalSignature,keyAgreement");
    if (!o.eku.empty()) {
      std::string v;
      for (const auto& e : o.eku) v += (v.empty() ? "" : ",") + e;
      add_ext(x, issuer_x, NID_ext_key_usage, v);
    }
  }
  EVP_PKEY* signer = o.issuer ? o.issuer->key.native() : m.key.native();
  if (X509_sign(x, signer, EVP_sha384()) <= 0) std::abort();
  m.cert = Certificate(x);
  return m;
}

}  // namespace storcrypt::certs::testing
