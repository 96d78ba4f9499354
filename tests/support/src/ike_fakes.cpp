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

CertPtr make_test_cert(EVP_PKEY* key, const std::string& cn, long serial, const char* san, X509* issuer,
                       EVP_PKEY* issuer_key) {
  CertSpec spec;
  spec.common_name = cn;
  spec.serial = serial;
  spec.ca = san == nullptr;
  if (san) spec.san = san;
  return issue_cert(key, spec, issuer, issuer_key);
}

IkeTestPki::IkeTestPki(const std::string& left_ip, const std::string& right_ip)
    : root_key(generate_key(TestKey::kEcP384)),
      inter_key(generate_key(TestKey::kEcP384)),
      left_key(generate_key(TestKey::kEcP384)),
      right_key(generate_key(TestKey::kEcP384)) {
  root = make_test_cert(root_key.get(), "storcrypt test root", 1, nullptr, nullptr, nullptr);
  inter = make_test_cert(inter_key.get(), "storcrypt test intermediate", 2, nullptr, root.get(), root_key.get());
  const std::string lsan = "DNS:left.lab,IP:" + left_ip;
  const std::string rsan = "DNS:right.lab,IP:" + right_ip;
  left = make_test_cert(left_key.get(), "left.lab", 3, lsan.c_str(), inter.get(), inter_key.get());
  right = make_test_cert(right_key.get(), "right.lab", 4, rsan.c_str(), inter.get(), inter_key.get());
}

ike::Proposal ike_proposal(bool gcm, std::uint16_t group) {
  const std::uint16_t encr = gcm ? ike::transform_id::kEncrAesGcm16 : ike::transform_id::kEncrAesCbc;
  for (ike::Proposal p : ike::default_ike_proposals()) {
    if (p.transforms.empty() || p.transforms.front().type != ike::TransformType::kEncr ||
        p.transforms.front().id != encr)
      continue;
    p.number = 1;
    for (ike::Transform& t : p.transforms)
      if (t.type == ike::TransformType::kKe) t.id = group;
    return p;
  }
  std::abort();  // the defaults lost a suite the tests rely on
}

ike::Bytes spki_sha1(X509* ca) {
  unsigned char* spki = nullptr;
  const int n = i2d_PUBKEY(X509_get0_pubkey(ca), &spki);
  if (n <= 0) std::abort();
  ike::Bytes out(20);
  unsigned int len = 0;
  EVP_Digest(spki, static_cast<std::size_t>(n), out.data(), &len, EVP_sha1(), nullptr);
  OPENSSL_free(spki);
  return out;
}

ike::PeerCertValidator IkeTestPki::validator() const {
  X509* anchors[] = {root.get()};
  auto v = ike::PeerValidator::from_certificates(anchors);
  if (!v.ok()) std::abort();  // a test fixture without its validator cannot go on
  return ike::make_peer_cert_validator(std::make_shared<const ike::PeerValidator>(std::move(v).value()));
}

ike::X509Ref share(const CertPtr& x) {
  X509_up_ref(x.get());
  return ike::share_x509(x.get());
}

ike::PkeyRef share(const KeyPtr& k) {
  EVP_PKEY_up_ref(k.get());
  return ike::share_pkey(k.get());
}

}  // namespace storcrypt::testing
