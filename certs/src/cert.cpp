#include <arpa/inet.h>
#include <openssl/err.h>
#include <openssl/pem.h>

#include "internal.h"

namespace storcrypt::certs {

using detail::BioPtr;

Certificate::Certificate() = default;
Certificate Certificate::share(X509* borrowed) {
  if (borrowed == nullptr) return Certificate();
  X509_up_ref(borrowed);
  return Certificate(borrowed);
}
Certificate::~Certificate() { X509_free(x509_); }
Certificate::Certificate(const Certificate& o) : x509_(o.x509_) {
  if (x509_) X509_up_ref(x509_);
}
Certificate& Certificate::operator=(const Certificate& o) {
  if (this != &o) {
    if (o.x509_) X509_up_ref(o.x509_);
    X509_free(x509_);
    x509_ = o.x509_;
  }
  return *this;
}
Certificate::Certificate(Certificate&& o) noexcept : x509_(std::exchange(o.x509_, nullptr)) {}
Certificate& Certificate::operator=(Certificate&& o) noexcept {
  if (this != &o) {
    X509_free(x509_);
    x509_ = std::exchange(o.x509_, nullptr);
  }
  return *this;
}

namespace {

std::string name_rfc2253(const X509_NAME* n) {
  BioPtr bio(BIO_new(BIO_s_mem()));
  if (!bio || n == nullptr) return {};
  X509_NAME_print_ex(bio.get(), n, 0, XN_FLAG_RFC2253 & ~ASN1_STRFLGS_ESC_MSB);
  return detail::bio_to_string(bio.get());
}

std::string ip_text(const ASN1_OCTET_STRING* o) {
  char buf[INET6_ADDRSTRLEN] = {};
  int len = ASN1_STRING_length(o);
  const unsigned char* d = ASN1_STRING_get0_data(o);
  if (len == 4 && inet_ntop(AF_INET, d, buf, sizeof buf)) return buf;
  if (len == 16 && inet_ntop(AF_INET6, d, buf, sizeof buf)) return buf;
  return "<invalid ip>";
}

}  // namespace

CertInfo Certificate::info() const {
  CertInfo i;
  if (x509_ == nullptr) return i;
  i.subject = name_rfc2253(X509_get_subject_name(x509_));
  i.issuer = name_rfc2253(X509_get_issuer_name(x509_));
  if (const ASN1_INTEGER* s = X509_get0_serialNumber(x509_)) {
    detail::BnPtr bn(ASN1_INTEGER_to_BN(s, nullptr));
    if (bn) {
      char* h = BN_bn2hex(bn.get());
      if (h) {
        i.serial_hex = h;
        for (auto& c : i.serial_hex) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
        OPENSSL_free(h);
      }
    }
  }
  i.sha256_fingerprint = detail::sha256_fingerprint(x509_);
  i.not_before = detail::asn1_to_unix(X509_get0_notBefore(x509_));
  i.not_after = detail::asn1_to_unix(X509_get0_notAfter(x509_));
  // X509_get_extension_flags caches extensions; its EXFLAG_CA reflects basicConstraints CA:TRUE.
  uint32_t flags = X509_get_extension_flags(x509_);
  i.is_ca = (flags & EXFLAG_CA) != 0;
  i.self_signed = X509_self_signed(x509_, 0) == 1;
  i.key = detail::describe_pkey(X509_get0_pubkey(x509_));
  detail::GenNamesPtr sans(
      static_cast<GENERAL_NAMES*>(X509_get_ext_d2i(x509_, NID_subject_alt_name, nullptr, nullptr)));
  if (sans) {
    for (int k = 0; k < sk_GENERAL_NAME_num(sans.get()); ++k) {
      const GENERAL_NAME* g = sk_GENERAL_NAME_value(sans.get(), k);
      if (g->type == GEN_DNS) {
        const ASN1_IA5STRING* s = g->d.dNSName;
        i.dns_names.emplace_back(reinterpret_cast<const char*>(ASN1_STRING_get0_data(s)),
                                 static_cast<std::size_t>(ASN1_STRING_length(s)));
      } else if (g->type == GEN_IPADD) {
        i.ip_addresses.push_back(ip_text(g->d.iPAddress));
      }
    }
  }
  EXTENDED_KEY_USAGE* eku =
      static_cast<EXTENDED_KEY_USAGE*>(X509_get_ext_d2i(x509_, NID_ext_key_usage, nullptr, nullptr));
  if (eku) {
    for (int k = 0; k < sk_ASN1_OBJECT_num(eku); ++k) {
      const ASN1_OBJECT* o = sk_ASN1_OBJECT_value(eku, k);
      int nid = OBJ_obj2nid(o);
      if (nid != NID_undef) {
        i.ext_key_usage.emplace_back(OBJ_nid2sn(nid));
      } else {
        char buf[128];
        OBJ_obj2txt(buf, sizeof buf, o, 1);
        i.ext_key_usage.emplace_back(buf);
      }
    }
    EXTENDED_KEY_USAGE_free(eku);
  }
  ERR_clear_error();
  return i;
}

std::string Certificate::to_pem() const {
  if (x509_ == nullptr) return {};
  BioPtr bio(BIO_new(BIO_s_mem()));
  if (!bio || PEM_write_bio_X509(bio.get(), x509_) != 1) return {};
  return detail::bio_to_string(bio.get());
}

std::vector<std::uint8_t> Certificate::to_der() const {
  if (x509_ == nullptr) return {};
  unsigned char* p = nullptr;
  int n = i2d_X509(x509_, &p);
  if (n <= 0) return {};
  std::vector<std::uint8_t> v(p, p + n);
  OPENSSL_free(p);
  return v;
}

bool Certificate::matches(const PrivateKey& key) const {
  if (x509_ == nullptr || !key.valid()) return false;
  bool ok = X509_check_private_key(x509_, key.native()) == 1;
  ERR_clear_error();
  return ok;
}

}  // namespace storcrypt::certs
