// Fuzz the IKEv2 Engine with datagrams from the network: the state machine
// behind the codec (IKE_SA_INIT request handling as a responder; the
// handling of an IKE_SA_INIT answer as an initiator: proposal check, KE,
// nonce, NAT detection, INVALID_KE_PAYLOAD, COOKIE, error notifies).
//
// Input: byte 0 picks the role (even: responder, odd: initiator) and the
// port (bit 1: 4500); the rest is a sequence of datagrams, each prefixed by a
// 2-byte big-endian length. As initiator, the first 8 bytes of each datagram
// are overwritten with our SPI so that it reaches the IKE SA.
// Properties: nothing crashes, leaks or reads out of bounds; list() stays
// consistent; a CHILD_SA can never be installed (no peer ever authenticates).
#include <openssl/x509.h>

#include <cstdint>
#include <cstdlib>
#include <memory>
#include <span>

#include "storcrypt/ike/engine.h"
#include "storcrypt/testing/test_pki.h"

namespace {

using namespace storcrypt;
using namespace storcrypt::ike;

struct SinkTransport : Transport {
  Status send(const Datagram& d) override {
    last = d.data;
    return ok_status();
  }
  Bytes last;
};

/// A CHILD_SA needs an authenticated peer, which the fuzzer cannot produce.
struct NoKernel : ChildSaKernel {
  Result<ChildSaSlot> reserve(const IpAddress&, const IpAddress&) override { return ChildSaSlot{0x6c000, 0xc0000001}; }
  Status install(const ChildSaSpec&) override { std::abort(); }
  // No CHILD_SA is ever installed without authentication, so none can be rekeyed.
  Result<ChildSaSlot> reserve_rekey(const ChildSaSlot&, const IpAddress&, const IpAddress&) override { std::abort(); }
  Status install_sa(const ChildSaSpec&, SaDirection) override { std::abort(); }
  Status remove_sa(std::uint32_t, const IpAddress&, std::uint32_t) override { return ok_status(); }
  Status remove(const ChildSaSlot&, const IpAddress&, const IpAddress&, std::uint32_t) override { return ok_status(); }
  Result<ChildSaCounters> counters(const ChildSaSlot&, const IpAddress&, const IpAddress&, std::uint32_t) override {
    return ChildSaCounters{};
  }
};

struct Fixture {
  testing::KeyPtr root_key = testing::generate_key(testing::TestKey::kEcP384);
  testing::KeyPtr key = testing::generate_key(testing::TestKey::kEcP384);
  testing::CertPtr root, cert;
  Fixture() {
    testing::CertSpec ca;
    ca.common_name = "fuzz root";
    ca.ca = true;
    root = testing::issue_cert(root_key.get(), ca);
    testing::CertSpec ee;
    ee.common_name = "us.lab";
    ee.san = "DNS:us.lab,IP:192.0.2.2";
    cert = testing::issue_cert(key.get(), ee, root.get(), root_key.get());
  }
  PeerConfig peer() const {
    PeerConfig c;
    c.name = "them";
    c.local_addr = *IpAddress::parse("192.0.2.2");
    c.remote_addr = *IpAddress::parse("192.0.2.1");
    X509_up_ref(cert.get());
    c.local_cert = share_x509(cert.get());
    EVP_PKEY_up_ref(key.get());
    c.local_key = share_pkey(key.get());
    c.local_ts = {TsRange{0, 0, 65535, *IpAddress::parse("203.0.113.0"), *IpAddress::parse("203.0.113.255")}};
    c.remote_ts = {TsRange{0, 0, 65535, *IpAddress::parse("198.51.100.0"), *IpAddress::parse("198.51.100.255")}};
    c.validate_peer = [](X509*, std::span<X509* const>, const IdPayload&) -> Status {
      return Error(ErrorCode::kProtocol, "fuzz: no peer is trusted");
    };
    return c;
  }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static const Fixture fx;
  if (size < 1) return 0;
  const bool initiator = data[0] & 1;
  const std::uint16_t port = (data[0] & 2) ? kNatTPort : kIkePort;
  SinkTransport transport;
  NoKernel kernel;
  Engine engine(transport, kernel);
  if (!engine.add_peer(fx.peer()).ok()) std::abort();
  std::uint8_t our_spi[8] = {};
  if (initiator) {
    if (!engine.initiate("them").ok()) std::abort();
    if (transport.last.size() < 8) std::abort();
    std::copy(transport.last.begin(), transport.last.begin() + 8, our_spi);
  }
  auto now = std::chrono::steady_clock::time_point{};
  std::size_t at = 1;
  while (at + 2 <= size) {
    std::size_t n = (std::size_t{data[at]} << 8) | data[at + 1];
    at += 2;
    n = std::min(n, size - at);
    Datagram d{{*IpAddress::parse("192.0.2.2"), port}, {*IpAddress::parse("192.0.2.1"), port},
               Bytes(data + at, data + at + n)};
    at += n;
    if (initiator && d.data.size() >= 8) std::copy(our_spi, our_spi + 8, d.data.begin());
    engine.receive(d);
    now += std::chrono::milliseconds(500);
    engine.tick(now);
  }
  for (const auto& sa : engine.list())
    if (sa.state == IkeState::kEstablished) std::abort();  // nobody can authenticate
  (void)engine.take_events();
  return 0;
}
