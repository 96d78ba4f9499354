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

std::uint32_t FakeChildSaKernel::new_spi() {
  std::uint32_t spi = 0;
  do {
    if (next_spi != 0) {
      spi = next_spi++;
    } else {
      std::uint32_t r = 0;
      RAND_bytes(reinterpret_cast<unsigned char*>(&r), sizeof r);
      spi = 0xc0000000u | (r & 0x3fffffffu);
    }
  } while (reserved.count(spi) || installed.count(spi) || sas.count(spi));
  return spi;
}

Result<ike::ChildSaSlot> FakeChildSaKernel::reserve(const IpAddress&, const IpAddress&) {
  ike::ChildSaSlot slot;
  slot.reqid = next_reqid++;
  slot.spi_in = new_spi();
  reserved[slot.spi_in] = slot;
  reserve_log.push_back(slot);
  return slot;
}

Status FakeChildSaKernel::install(const ike::ChildSaSpec& spec) {
  if (fail_install) return Error(ErrorCode::kKernel, "fake kernel: install refused");
  if (!reserved.count(spec.slot.spi_in)) return Error(ErrorCode::kKernel, "fake kernel: SPI not reserved");
  if (policies.count(spec.slot.reqid)) return Error(ErrorCode::kKernel, "fake kernel: policies of the reqid exist");
  if (refuse_same_selectors)
    for (const auto& [spi, other] : installed)
      if (other.local_ts == spec.local_ts && other.remote_ts == spec.remote_ts)
        return Error(ErrorCode::kConflict, "fake kernel: a policy of these selectors exists (EEXIST)");
  reserved.erase(spec.slot.spi_in);
  sas[spec.slot.spi_in] = Sa{spec.slot.reqid, ike::SaDirection::kIn, ++seq_};
  sas[spec.spi_out] = Sa{spec.slot.reqid, ike::SaDirection::kOut, ++seq_};
  policies[spec.slot.reqid] = 1;
  installed.emplace(spec.slot.spi_in, clone_spec(spec));
  install_log.push_back(clone_spec(spec));
  return ok_status();
}

Status FakeChildSaKernel::remove(const ike::ChildSaSlot& slot, const IpAddress&, const IpAddress&,
                                 std::uint32_t spi_out) {
  removed.push_back(slot.spi_in);
  reserved.erase(slot.spi_in);
  installed.erase(slot.spi_in);
  for (std::uint32_t spi : {slot.spi_in, spi_out}) {
    auto it = sas.find(spi);
    if (it != sas.end() && it->second.reqid == slot.reqid) sas.erase(it);
  }
  policies.erase(slot.reqid);
  return ok_status();
}

Result<ike::ChildSaCounters> FakeChildSaKernel::counters(const ike::ChildSaSlot& slot, const IpAddress&,
                                                         const IpAddress&, std::uint32_t) {
  if (!installed.count(slot.spi_in)) return Error(ErrorCode::kNotFound, "fake kernel: no such CHILD_SA");
  ike::ChildSaCounters c;
  c.bytes_in = bytes_in;
  c.packets_in = bytes_in / 100;
  return c;
}

Result<ike::ChildSaSlot> FakeChildSaKernel::reserve_rekey(const ike::ChildSaSlot& old, const IpAddress&,
                                                          const IpAddress&) {
  if (!policies.count(old.reqid)) return Error(ErrorCode::kKernel, "fake kernel: rekey of a reqid without policies");
  ike::ChildSaSlot slot{old.reqid, new_spi()};
  reserved[slot.spi_in] = slot;
  reserve_log.push_back(slot);
  return slot;
}

Status FakeChildSaKernel::install_sa(const ike::ChildSaSpec& spec, ike::SaDirection dir) {
  if (fail_install) return Error(ErrorCode::kKernel, "fake kernel: install refused");
  if (!policies.count(spec.slot.reqid)) return Error(ErrorCode::kKernel, "fake kernel: no policies for the reqid");
  if (dir == ike::SaDirection::kIn) {
    if (!reserved.count(spec.slot.spi_in)) return Error(ErrorCode::kKernel, "fake kernel: SPI not reserved");
    reserved.erase(spec.slot.spi_in);
    sas[spec.slot.spi_in] = Sa{spec.slot.reqid, dir, ++seq_};
  } else {
    if (sas.count(spec.spi_out)) return Error(ErrorCode::kKernel, "fake kernel: outbound SPI exists");
    sas[spec.spi_out] = Sa{spec.slot.reqid, dir, ++seq_};
  }
  installed.insert_or_assign(spec.slot.spi_in, clone_spec(spec));
  sa_log.emplace_back(dir, dir == ike::SaDirection::kIn ? spec.slot.spi_in : spec.spi_out);
  return ok_status();
}

Status FakeChildSaKernel::remove_sa(std::uint32_t reqid, const IpAddress&, std::uint32_t spi) {
  reserved.erase(spi);
  auto it = sas.find(spi);
  if (it == sas.end()) return ok_status();
  if (it->second.reqid != reqid) return Error(ErrorCode::kConflict, "fake kernel: SA of another reqid");
  if (it->second.dir == ike::SaDirection::kIn) installed.erase(spi);
  sas.erase(it);
  return ok_status();
}

std::uint32_t FakeChildSaKernel::sending_spi(std::uint32_t reqid) const {
  std::uint32_t spi = 0;
  std::uint64_t best = 0;
  for (const auto& [s, sa] : sas)
    if (sa.reqid == reqid && sa.dir == ike::SaDirection::kOut && sa.seq > best) {
      best = sa.seq;
      spi = s;
    }
  return spi;
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

namespace {
ike::TsRange range(const char* a, const char* b) {
  return ike::TsRange{0, 0, 65535, *IpAddress::parse(a), *IpAddress::parse(b)};
}
}  // namespace

ike::PeerConfig IkeTestPki::side_config(bool left_side, const std::string& peer_name) const {
  const char* left_net[] = {"198.51.100.0", "198.51.100.255"};
  const char* right_net[] = {"203.0.113.0", "203.0.113.255"};
  ike::PeerConfig c;
  c.name = peer_name;
  c.local_addr = *IpAddress::parse(left_side ? "192.0.2.1" : "192.0.2.2");
  c.remote_addr = *IpAddress::parse(left_side ? "192.0.2.2" : "192.0.2.1");
  c.local_cert = share(left_side ? left : right);
  c.local_key = share(left_side ? left_key : right_key);
  c.local_intermediates = {share(inter)};
  if (left_side) {
    c.remote_id = ike::id_fqdn("right.lab");
    c.certreq_authorities = {root_spki_sha1()};
  } else {
    c.local_id = ike::id_fqdn("right.lab");
  }
  const char** mine = left_side ? left_net : right_net;
  const char** theirs = left_side ? right_net : left_net;
  c.local_ts = {range(mine[0], mine[1])};
  c.remote_ts = {range(theirs[0], theirs[1])};
  c.validate_peer = validator();
  return c;
}

ike::PeerConfig IkeTestPki::left_config(const std::string& peer_name) const { return side_config(true, peer_name); }

ike::PeerConfig IkeTestPki::right_config(const std::string& peer_name) const { return side_config(false, peer_name); }

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
