#include "storcrypt/testing/ike_fakes.h"

#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509_vfy.h>
#include <openssl/x509v3.h>

#include <cstdlib>

namespace storcrypt::testing {

Status MemoryTransport::send(const ike::Datagram& d) {
  sent.push_back(d);
  ++total_sent;
  return ok_status();
}

ike::ChildSaSpec clone_spec(const ike::ChildSaSpec& s) {
  ike::ChildSaSpec c;
  c.slot = s.slot;
  c.spi_out = s.spi_out;
  c.local = s.local;
  c.remote = s.remote;
  c.encap = s.encap;
  c.tunnel = s.tunnel;
  c.suite = s.suite;
  c.in.encr = s.in.encr.clone();
  c.in.integ = s.in.integ.clone();
  c.out.encr = s.out.encr.clone();
  c.out.integ = s.out.integ.clone();
  c.local_ts = s.local_ts;
  c.remote_ts = s.remote_ts;
  c.lifetime = s.lifetime;
  c.replay_window = s.replay_window;
  return c;
}

Result<ike::ChildSaSlot> FakeChildSaKernel::reserve(const IpAddress&, const IpAddress&) {
  ike::ChildSaSlot slot;
  slot.reqid = next_reqid++;
  do {
    if (next_spi != 0) {
      slot.spi_in = next_spi++;
    } else {
      std::uint32_t r = 0;
      RAND_bytes(reinterpret_cast<unsigned char*>(&r), sizeof r);
      slot.spi_in = 0xc0000000u | (r & 0x3fffffffu);
    }
  } while (reserved.count(slot.spi_in) || installed.count(slot.spi_in));
  reserved[slot.spi_in] = slot;
  reserve_log.push_back(slot);
  return slot;
}

Status FakeChildSaKernel::install(const ike::ChildSaSpec& spec) {
  if (fail_install) return Error(ErrorCode::kKernel, "fake kernel: install refused");
  if (!reserved.count(spec.slot.spi_in)) return Error(ErrorCode::kKernel, "fake kernel: SPI not reserved");
  reserved.erase(spec.slot.spi_in);
  installed.emplace(spec.slot.spi_in, clone_spec(spec));
  install_log.push_back(clone_spec(spec));
  return ok_status();
}

Status FakeChildSaKernel::remove(const ike::ChildSaSlot& slot, const IpAddress&, const IpAddress&, std::uint32_t) {
  removed.push_back(slot.spi_in);
  reserved.erase(slot.spi_in);
  installed.erase(slot.spi_in);
  return ok_status();
}

Result<ike::ChildSaCounters> FakeChildSaKernel::counters(const ike::ChildSaSlot& slot, const IpAddress&,
                                                         const IpAddress&, std::uint32_t) {
  if (!installed.count(slot.spi_in)) return Error(ErrorCode::kNotFound, "fake kernel: no such CHILD_SA");
  ike::ChildSaCounters c;
  c.bytes_in = 100;
  c.packets_in = 1;
  return c;
}

namespace {

void add_ext(X509* cert, X509* issuer, int nid, const char* value) {
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
  X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value);
  if (ext == nullptr) std::abort();
  X509_add_ext(cert, ext, -1);
  X509_EXTENSION_free(ext);
}

std::string bio_string(BIO* b) {
  char* p = nullptr;
  long n = BIO_get_mem_data(b, &p);
  std::string s(p, static_cast<std::size_t>(n));
  BIO_free(b);
  return s;
}

}  // namespace

ike::X509Ptr make_test_cert(EVP_PKEY* key, const std::string& cn, long serial, const char* san, X509* issuer,
                            EVP_PKEY* issuer_key) {
  ike::X509Ptr cert(X509_new());
  X509_set_version(cert.get(), 2);
  ASN1_INTEGER_set(X509_get_serialNumber(cert.get()), serial);
  X509_gmtime_adj(X509_getm_notBefore(cert.get()), -3600);
  X509_gmtime_adj(X509_getm_notAfter(cert.get()), 3600);
  X509_set_pubkey(cert.get(), key);
  X509_NAME* name = X509_get_subject_name(cert.get());
  X509_NAME_add_entry_by_txt(name, "O", MBSTRING_ASC, reinterpret_cast<const unsigned char*>("storcrypt-test"), -1, -1,
                             0);
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, reinterpret_cast<const unsigned char*>(cn.c_str()), -1, -1, 0);
  X509_set_issuer_name(cert.get(), issuer ? X509_get_subject_name(issuer) : name);
  X509* iss = issuer ? issuer : cert.get();
  add_ext(cert.get(), iss, NID_subject_key_identifier, "hash");
  if (issuer) add_ext(cert.get(), iss, NID_authority_key_identifier, "keyid:always");
  if (san == nullptr) {
    add_ext(cert.get(), iss, NID_basic_constraints, "critical,CA:TRUE");
    add_ext(cert.get(), iss, NID_key_usage, "critical,keyCertSign,cRLSign");
  } else {
    add_ext(cert.get(), iss, NID_basic_constraints, "critical,CA:FALSE");
    add_ext(cert.get(), iss, NID_key_usage, "critical,digitalSignature");
    add_ext(cert.get(), iss, NID_subject_alt_name, san);
  }
  if (X509_sign(cert.get(), issuer_key ? issuer_key : key, EVP_sha384()) == 0) std::abort();
  return cert;
}

std::string cert_pem(X509* c) {
  BIO* b = BIO_new(BIO_s_mem());
  PEM_write_bio_X509(b, c);
  return bio_string(b);
}

std::string key_pem(EVP_PKEY* k) {
  BIO* b = BIO_new(BIO_s_mem());
  PEM_write_bio_PrivateKey(b, k, nullptr, nullptr, 0, nullptr, nullptr);
  return bio_string(b);
}

IkeTestPki::IkeTestPki(const std::string& left_ip, const std::string& right_ip)
    : root_key(EVP_EC_gen("P-384")),
      inter_key(EVP_EC_gen("P-384")),
      left_key(EVP_EC_gen("P-384")),
      right_key(EVP_EC_gen("P-384")) {
  root = make_test_cert(root_key.get(), "storcrypt test root", 1, nullptr, nullptr, nullptr);
  inter = make_test_cert(inter_key.get(), "storcrypt test intermediate", 2, nullptr, root.get(), root_key.get());
  const std::string lsan = "DNS:left.lab,IP:" + left_ip;
  const std::string rsan = "DNS:right.lab,IP:" + right_ip;
  left = make_test_cert(left_key.get(), "left.lab", 3, lsan.c_str(), inter.get(), inter_key.get());
  right = make_test_cert(right_key.get(), "right.lab", 4, rsan.c_str(), inter.get(), inter_key.get());
}

ike::Bytes IkeTestPki::root_spki_sha1() const {
  unsigned char* spki = nullptr;
  const int n = i2d_PUBKEY(X509_get0_pubkey(root.get()), &spki);
  ike::Bytes out(20);
  unsigned int len = 0;
  EVP_Digest(spki, static_cast<std::size_t>(n), out.data(), &len, EVP_sha1(), nullptr);
  OPENSSL_free(spki);
  return out;
}

ike::PeerValidator IkeTestPki::validator() const {
  X509_up_ref(root.get());
  ike::X509Ref anchor = ike::share_x509(root.get());
  return [anchor](X509* ee, const std::vector<X509*>& inter, const ike::IdPayload&) -> Status {
    X509_STORE* store = X509_STORE_new();
    X509_STORE_add_cert(store, anchor.get());
    STACK_OF(X509)* chain = sk_X509_new_null();
    for (X509* x : inter) sk_X509_push(chain, x);
    X509_STORE_CTX* ctx = X509_STORE_CTX_new();
    X509_STORE_CTX_init(ctx, store, ee, chain);
    const int ok = X509_verify_cert(ctx);
    const int err = X509_STORE_CTX_get_error(ctx);
    X509_STORE_CTX_free(ctx);
    sk_X509_free(chain);
    X509_STORE_free(store);
    if (ok == 1) return ok_status();
    return Error(ErrorCode::kTls, X509_verify_cert_error_string(err));
  };
}

ike::X509Ref share(const ike::X509Ptr& x) {
  X509_up_ref(x.get());
  return ike::share_x509(x.get());
}

ike::PkeyRef share(const PkeyPtr& k) {
  EVP_PKEY_up_ref(k.get());
  return ike::share_pkey(k.get());
}

}  // namespace storcrypt::testing
