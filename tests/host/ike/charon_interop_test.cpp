// Host tier: our IKEv2 codec and crypto against strongSwan's charon.
//
// Two namespaces on a veth pair (192.0.2.1 us, 192.0.2.2 charon). The test
// plays a minimal initiator by hand with the ike/ library: IKE_SA_INIT
// (codec, proposal, ECDH, NAT-D), then IKE_AUTH with a pre-shared key (the
// one authentication that needs no certificates, used here only to prove the
// key schedule: charon can only decrypt our SK payload and accept our AUTH,
// and we can only decrypt its answer and verify its AUTH, if SKEYSEED and
// every SK_* agree). The CertAuth cases authenticate both sides with ECDSA
// P-384 end-entity certificates under a CA the test generates (RFC 7427 AUTH
// method 14, CERT/CERTREQ): charon must accept our signature and we verify
// its. The host kernel has no ESP, so charon's CHILD_SA install fails; the
// test does not depend on the child.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <openssl/evp.h>
#include <openssl/x509.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>

#include "charon_lab.h"
#include "storcrypt/common/fd.h"
#include "storcrypt/common/hex.h"
#include "storcrypt/ike/auth.h"
#include "storcrypt/ike/crypto.h"
#include "storcrypt/ike/message.h"
#include "storcrypt/ike/proposal.h"
#include "storcrypt/ike/sk.h"
#include "storcrypt/testing/environment.h"
#include "storcrypt/testing/ike_fakes.h"
#include "storcrypt/testing/netns.h"
#include "storcrypt/testing/test_pki.h"

namespace storcrypt::ike {
namespace {

using storcrypt::testing::TestNetns;
using storcrypt::testing::VethPair;

using storcrypt::testing::CertPtr;
using storcrypt::testing::CharonLab;
using storcrypt::testing::ike_proposal;
using storcrypt::testing::KeyPtr;
using storcrypt::testing::make_test_cert;
using storcrypt::testing::TestKey;

const char* kPsk = "storcrypt-interop-test-psk-0123456789";

// A P-384 CA and two end entities directly under it: left (us, SAN left.lab)
// and right (charon, SAN right.lab), all generated per test.
struct TestPki {
  KeyPtr ca_key = storcrypt::testing::generate_key(TestKey::kEcP384);
  CertPtr ca = make_test_cert(ca_key.get(), "storcrypt test CA", 1, nullptr, nullptr, nullptr);
  KeyPtr left_key = storcrypt::testing::generate_key(TestKey::kEcP384);
  CertPtr left = make_test_cert(left_key.get(), "left.lab", 2, "DNS:left.lab,IP:192.0.2.1", ca.get(), ca_key.get());
  KeyPtr right_key = storcrypt::testing::generate_key(TestKey::kEcP384);
  CertPtr right = make_test_cert(right_key.get(), "right.lab", 3, "DNS:right.lab,IP:192.0.2.2", ca.get(), ca_key.get());
};

// charon's files under swanctl/: connection "lab" (192.0.2.2 <-> 192.0.2.1)
// with the PSK, or, given `pki`, as an admin would set it up for
// certificates: CA in x509ca/, own certificate in x509/, own key (PKCS#8) in
// private/; our ID is the subject DN.
std::map<std::string, std::string> charon_files(const TestPki* pki) {
  const std::string head =
      "connections {\n"
      "  lab {\n"
      "    version = 2\n"
      "    local_addrs = 192.0.2.2\n"
      "    remote_addrs = 192.0.2.1\n"
      "    proposals = aes256-sha384-ecp384, aes256gcm16-prfsha384-ecp384\n";
  const std::string children =
      "    children {\n      net {\n"
      "      local_ts = 203.0.113.0/24\n      remote_ts = 198.51.100.0/24\n"
      "      esp_proposals = aes256gcm16\n"
      "      }\n    }\n";
  if (pki == nullptr) {
    return {{"swanctl.conf", head +
                                 "    local {\n      auth = psk\n      id = right.lab\n    }\n"
                                 "    remote {\n      auth = psk\n      id = left.lab\n    }\n" +
                                 children +
                                 "  }\n"
                                 "}\n"
                                 "secrets {\n  ike-lab {\n    id-1 = left.lab\n    id-2 = right.lab\n    secret = \"" +
                                 kPsk + "\"\n  }\n}\n"}};
  }
  using storcrypt::testing::cert_pem;
  return {
      {"x509ca/ca.pem", cert_pem(pki->ca.get())},
      {"x509/right.pem", cert_pem(pki->right.get())},
      {"private/right.pem", storcrypt::testing::key_pem(pki->right_key.get())},
      {"swanctl.conf", head +
                           "    local {\n      auth = pubkey\n      certs = right.pem\n      id = right.lab\n    }\n"
                           "    remote {\n      auth = pubkey\n      cacerts = ca.pem\n"
                           "      id = \"O=storcrypt-test, CN=left.lab\"\n    }\n" +
                           children + "  }\n}\n"}};
}

// A UDP socket created inside the left namespace, bound to 192.0.2.1:500.
class Udp {
 public:
  explicit Udp(const TestNetns& ns) {
    ns.run_inside([&] {
      fd_ = UniqueFd(socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
      sockaddr_in a{};
      a.sin_family = AF_INET;
      a.sin_port = htons(500);
      inet_pton(AF_INET, "192.0.2.1", &a.sin_addr);
      if (bind(fd_.get(), reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) return -1;
      sockaddr_in p{};
      p.sin_family = AF_INET;
      p.sin_port = htons(500);
      inet_pton(AF_INET, "192.0.2.2", &p.sin_addr);
      return connect(fd_.get(), reinterpret_cast<sockaddr*>(&p), sizeof p);
    });
  }
  bool send(const Bytes& b) { return ::send(fd_.get(), b.data(), b.size(), 0) == static_cast<ssize_t>(b.size()); }
  // Send and wait for the answer, retransmitting once a second (charon may still be loading).
  std::optional<Bytes> exchange(const Bytes& b, int seconds = 5) {
    for (int i = 0; i < seconds; ++i) {
      if (!send(b)) return std::nullopt;
      pollfd p{fd_.get(), POLLIN, 0};
      if (poll(&p, 1, 1000) == 1) {
        Bytes buf(65535);
        ssize_t n = recv(fd_.get(), buf.data(), buf.size(), 0);
        if (n <= 0) return std::nullopt;
        buf.resize(static_cast<std::size_t>(n));
        return buf;
      }
    }
    return std::nullopt;
  }

 private:
  UniqueFd fd_;
};

const Bytes kLeft = {192, 0, 2, 1};
const Bytes kRight = {192, 0, 2, 2};

Message sa_init(std::uint64_t spi_i, const Proposal& proposal, const KeyExchange& ke, const Bytes& ni) {
  Message m;
  m.header.spi_i = spi_i;
  m.payloads.push_back(Payload::sa(SaPayload{{proposal}}));
  m.payloads.push_back(Payload::ke(KePayload{ke.group(), 0, ke.public_value()}));
  m.payloads.push_back(Payload::nonce(ni));
  m.payloads.push_back(Payload::notification(notify::kNatDetectionSourceIp, *nat_detection_hash(spi_i, 0, kLeft, 500)));
  m.payloads.push_back(
      Payload::notification(notify::kNatDetectionDestinationIp, *nat_detection_hash(spi_i, 0, kRight, 500)));
  m.payloads.push_back(Payload::notification(notify::kIkev2FragmentationSupported));
  const std::uint16_t hashes[] = {hash_alg::kSha256, hash_alg::kSha384, hash_alg::kSha512};
  m.payloads.push_back(Payload::notification(notify::kSignatureHashAlgorithms, encode_hash_algorithms(hashes)));
  return m;
}

// RFC 7296 §2.15 shared-key AUTH: prf(prf(secret, "Key Pad for IKEv2"), octets).
SecretBytes psk_auth(const Bytes& octets) {
  const std::string pad = "Key Pad for IKEv2";
  auto inner = prf(PrfAlg::kHmacSha384, std::span(reinterpret_cast<const std::uint8_t*>(kPsk), strlen(kPsk)),
                   std::span(reinterpret_cast<const std::uint8_t*>(pad.data()), pad.size()));
  return *prf(PrfAlg::kHmacSha384, inner->view(), octets);
}

Bytes str_bytes(std::string_view s) { return Bytes(s.begin(), s.end()); }

class CharonInterop : public ::testing::Test {
 protected:
  void SetUp() override {
    STORCRYPT_REQUIRE(storcrypt::testing::can_use_netns(), "needs root and network namespaces");
    STORCRYPT_REQUIRE(storcrypt::testing::have_charon(), storcrypt::testing::kNeedsCharon);
    net_ = std::make_unique<VethPair>();
    ASSERT_TRUE(net_->ok);
    char tmpl[] = "/tmp/storcrypt-ike-charon-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    charon_ = std::make_unique<CharonLab>(net_->right, tmpl, charon_files(pki_.get()));
    ASSERT_EQ(charon_->error(), "") << charon_->log();
  }
  void TearDown() override {
    if (HasFailure() && charon_) std::cerr << "--- charon.log ---\n" << charon_->log();
    charon_.reset();
    net_.reset();
  }

  // IKE_SA_INIT and IKE_AUTH; returns after checking charon's IKE_AUTH answer.
  enum class Mode { kPsk, kCert, kCertWrongKey };
  void run_exchange(bool gcm, Mode mode = Mode::kPsk) {
    const bool cert = mode != Mode::kPsk;
    Udp udp(net_->left);
    const std::uint64_t spi_i = gcm ? 0x1122334455667788ULL : 0x8877665544332211ULL;
    auto ke = KeyExchange::generate(transform_id::kGroupEcp384);
    ASSERT_TRUE(ke.ok());
    Bytes ni = *parse_hex("00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff");
    ni[0] = gcm ? 1 : 2;
    const Proposal offered = ike_proposal(gcm);  // one of default_ike_proposals()
    auto request = serialize(sa_init(spi_i, offered, *ke, ni));
    ASSERT_TRUE(request.ok());
    auto answer = udp.exchange(*request);
    ASSERT_TRUE(answer.has_value()) << "no IKE_SA_INIT response from charon";

    // STORCRYPT_IKE_CAPTURE_DIR=dir keeps charon's IKE_SA_INIT answer (public
    // values only) for the unit tests' and fuzzer's captured inputs.
    if (const char* cap = getenv("STORCRYPT_IKE_CAPTURE_DIR"))
      std::ofstream(std::string(cap) + (gcm ? "/charon_sa_init_response_gcm" : "/charon_sa_init_response_cbc"),
                    std::ios::binary)
          .write(reinterpret_cast<const char*>(answer->data()), static_cast<std::streamsize>(answer->size()));
    auto resp = parse(*answer);
    ASSERT_TRUE(resp.ok()) << resp.error().to_string();
    EXPECT_EQ(*serialize(*resp), *answer);  // charon's bytes round-trip through our codec
    EXPECT_TRUE(resp->header.is_response());
    EXPECT_FALSE(resp->header.from_initiator());
    EXPECT_EQ(resp->header.spi_i, spi_i);
    ASSERT_NE(resp->header.spi_r, 0u);
    EXPECT_FALSE(unsupported_critical_payload(resp->payloads).has_value());
    const auto* sa = resp->find(PayloadType::kSa);
    ASSERT_NE(sa, nullptr) << "no SA payload in charon's response";
    const auto& chosen = std::get<SaPayload>(sa->body);
    ASSERT_EQ(chosen.proposals.size(), 1u);
    EXPECT_EQ(chosen.proposals[0].transforms, offered.transforms);
    auto suite = check_chosen(chosen, {&offered, 1});
    ASSERT_TRUE(suite.ok()) << suite.error().to_string();
    EXPECT_EQ(suite->encr, gcm ? transform_id::kEncrAesGcm16 : transform_id::kEncrAesCbc);
    EXPECT_EQ(suite->ke, transform_id::kGroupEcp384);
    const auto& peer_ke = std::get<KePayload>(resp->find(PayloadType::kKe)->body);
    EXPECT_EQ(peer_ke.group, transform_id::kGroupEcp384);
    const Bytes nr = std::get<NoncePayload>(resp->find(PayloadType::kNonce)->body).data;
    EXPECT_GE(nr.size(), 16u);
    // charon's NAT-D hashes equal ours: no NAT between the namespaces.
    const NotifyPayload* src = resp->find_notify(notify::kNatDetectionSourceIp);
    const NotifyPayload* dst = resp->find_notify(notify::kNatDetectionDestinationIp);
    ASSERT_TRUE(src && dst);
    EXPECT_EQ(src->data, *nat_detection_hash(spi_i, resp->header.spi_r, kRight, 500));
    EXPECT_EQ(dst->data, *nat_detection_hash(spi_i, resp->header.spi_r, kLeft, 500));
    EXPECT_NE(resp->find_notify(notify::kIkev2FragmentationSupported), nullptr);

    auto gir = ke->derive(peer_ke.data);
    ASSERT_TRUE(gir.ok()) << gir.error().to_string();
    auto seed = skeyseed(PrfAlg::kHmacSha384, ni, nr, *gir);
    auto sizes = ike_key_sizes(gcm ? transform_id::kEncrAesGcm16 : transform_id::kEncrAesCbc, 256,
                               gcm ? 0 : transform_id::kIntegHmacSha384_192);
    auto keys = derive_ike_sa_keys(PrfAlg::kHmacSha384, *seed, ni, nr, spi_i, resp->header.spi_r, *sizes);
    ASSERT_TRUE(keys.ok());

    // IKE_AUTH request: IDi, AUTH (shared key), SA (ESP), TSi, TSr.
    IdPayload idi;
    idi.id_type = id_type::kFqdn;
    idi.data = str_bytes("left.lab");
    if (cert) {
      auto dn = id_from_subject(pki_->left.get());  // our ID: the certificate's subject DN
      ASSERT_TRUE(dn.ok());
      idi = *dn;
    }
    auto octets = auth_octets(PrfAlg::kHmacSha384, *request, nr, keys->sk_pi, idi);
    AuthPayload auth;
    if (!cert) {
      SecretBytes mac = psk_auth(*octets);
      auth.method = auth_method::kSharedKey;
      auth.data.assign(mac.data(), mac.data() + mac.size());
    } else {
      KeyPtr wrong = storcrypt::testing::generate_key(TestKey::kEcP384);
      auto sig = sign_auth_ecdsa_p384(mode == Mode::kCertWrongKey ? wrong.get() : pki_->left_key.get(), *octets);
      ASSERT_TRUE(sig.ok()) << sig.error().to_string();
      auth = *sig;
    }
    Proposal esp = default_esp_proposals().front();  // aes256gcm16, no ESN
    esp.spi = spi_bytes(0xc0ffee01);
    TrafficSelector tsi{kTsIpv4AddrRange, 0, 0, 65535, {198, 51, 100, 0}, {198, 51, 100, 255}, {}};
    TrafficSelector tsr{kTsIpv4AddrRange, 0, 0, 65535, {203, 0, 113, 0}, {203, 0, 113, 255}, {}};
    TsPayload tsi_p, tsr_p;
    tsi_p.selectors = {tsi};
    tsr_p.selectors = {tsr};
    std::vector<Payload> inner = {Payload::of(PayloadType::kIdi, idi)};
    if (cert) {
      // IDi, CERT (our end entity), CERTREQ (SHA-1 of the CA's SubjectPublicKeyInfo), AUTH, ...
      auto c = cert_payload(pki_->left.get());
      ASSERT_TRUE(c.ok());
      inner.push_back(Payload::of(PayloadType::kCert, *c));
      CertPayload req;
      req.data = storcrypt::testing::spki_sha1(pki_->ca.get());
      inner.push_back(Payload::of(PayloadType::kCertReq, req));
    }
    inner.push_back(Payload::of(PayloadType::kAuth, auth));
    inner.push_back(Payload::sa(SaPayload{{esp}}));
    inner.push_back(Payload::of(PayloadType::kTsi, tsi_p));
    inner.push_back(Payload::of(PayloadType::kTsr, tsr_p));
    const std::uint16_t encr = gcm ? transform_id::kEncrAesGcm16 : transform_id::kEncrAesCbc;
    const std::uint16_t integ = gcm ? 0 : transform_id::kIntegHmacSha384_192;
    auto out = SkProtector::create(encr, 256, integ, keys->sk_ei.clone(), keys->sk_ai.clone());
    auto in = SkProtector::create(encr, 256, integ, keys->sk_er.clone(), keys->sk_ar.clone());
    ASSERT_TRUE(out.ok() && in.ok());
    Header h;
    h.spi_i = spi_i;
    h.spi_r = resp->header.spi_r;
    h.exchange = static_cast<std::uint8_t>(ExchangeType::kIkeAuth);
    h.flags = kFlagInitiator;
    h.message_id = 1;
    auto auth_req = out->seal(h, inner);
    ASSERT_TRUE(auth_req.ok());
    auto auth_answer = udp.exchange(*auth_req);
    ASSERT_TRUE(auth_answer.has_value()) << "no IKE_AUTH response from charon";

    // Decrypt charon's answer with SK_er/SK_ar and check its AUTH with SK_pr.
    auto opened = in->open(*auth_answer);
    ASSERT_TRUE(opened.ok()) << opened.error().to_string();
    EXPECT_EQ(opened->header.message_id, 1u);
    EXPECT_TRUE(opened->header.is_response());
    auto chain = parse_payload_chain(opened->next, opened->plaintext);
    ASSERT_TRUE(chain.ok()) << chain.error().to_string();
    Message decrypted;
    decrypted.payloads = *chain;
    if (mode == Mode::kCertWrongKey) {
      EXPECT_NE(decrypted.find_notify(notify::kAuthenticationFailed), nullptr)
          << "charon accepted an AUTH signed with a key that is not the certificate's";
      const std::string log = charon_->log();
      EXPECT_EQ(log.find("established between"), std::string::npos) << log;
      EXPECT_EQ(log.find("authentication of 'O=storcrypt-test, CN=left.lab' with ECDSA_WITH_SHA384_DER successful"),
                std::string::npos)
          << log;
      return;
    }
    ASSERT_EQ(decrypted.find_notify(notify::kAuthenticationFailed), nullptr) << "charon refused our AUTH";
    const Payload* idr = decrypted.find(PayloadType::kIdr);
    const Payload* rauth = decrypted.find(PayloadType::kAuth);
    ASSERT_TRUE(idr && rauth) << "no IDr/AUTH in charon's IKE_AUTH response";
    const auto& idr_body = std::get<IdPayload>(idr->body);
    EXPECT_EQ(idr_body.data, str_bytes("right.lab"));
    auto r_octets = auth_octets(PrfAlg::kHmacSha384, *answer, ni, keys->sk_pr, idr_body);
    const auto& got = std::get<AuthPayload>(rauth->body);
    if (!cert) {
      SecretBytes expected = psk_auth(*r_octets);
      EXPECT_EQ(got.method, auth_method::kSharedKey);
      EXPECT_TRUE(got.data.size() == expected.size() && std::equal(got.data.begin(), got.data.end(), expected.data()))
          << "charon's AUTH does not verify with our SK_pr";
    } else {
      EXPECT_EQ(idr_body.id_type, id_type::kFqdn);
      const Payload* rcert = decrypted.find(PayloadType::kCert);
      ASSERT_NE(rcert, nullptr) << "charon sent no CERT (answer to our CERTREQ)";
      auto peer = parse_cert_payload(std::get<CertPayload>(rcert->body));
      ASSERT_TRUE(peer.ok()) << peer.error().to_string();
      EXPECT_EQ(X509_cmp(peer->get(), pki_->right.get()), 0);
      EXPECT_EQ(X509_verify(peer->get(), X509_get0_pubkey(pki_->ca.get())), 1);
      auto idm = check_id_matches_cert(idr_body, peer->get());
      EXPECT_TRUE(idm.ok()) << idm.error().to_string();
      // charon's IDr against our own certificate: must not match.
      EXPECT_FALSE(check_id_matches_cert(idr_body, pki_->left.get()).ok());
      EXPECT_EQ(got.method, auth_method::kDigitalSignature);
      auto v = verify_auth_ecdsa_p384(got, peer->get(), *r_octets);
      EXPECT_TRUE(v.ok()) << "charon's AUTH does not verify: " << v.error().to_string();
      // The same signature over other octets (IKE_SA_INIT request instead of response) must not.
      auto wrong_octets = auth_octets(PrfAlg::kHmacSha384, *request, ni, keys->sk_pr, idr_body);
      EXPECT_FALSE(verify_auth_ecdsa_p384(got, peer->get(), *wrong_octets).ok());
    }
    // The host kernel has no ESP: the child either came up (kernel with ESP) or
    // charon says why not; both are fine here.
    std::cerr << "charon's IKE_AUTH response:";
    for (const Payload& p : *chain) {
      std::cerr << " " << payload_type_name(p.type);
      if (const auto* n = std::get_if<NotifyPayload>(&p.body)) std::cerr << "(" << n->type << ")";
    }
    std::cerr << "\n";
    // charon's own account: the IKE SA is up with the suite we offered.
    const std::string log = charon_->log();
    EXPECT_NE(log.find(cert ? "established between 192.0.2.2[right.lab]...192.0.2.1[O=storcrypt-test, CN=left.lab]"
                            : "established between 192.0.2.2[right.lab]...192.0.2.1[left.lab]"),
              std::string::npos)
        << log;
    if (cert) {  // charon checked our chain and our RFC 7427 ECDSA-384 signature
      EXPECT_NE(log.find("authentication of 'O=storcrypt-test, CN=left.lab' with ECDSA_WITH_SHA384_DER successful"),
                std::string::npos)
          << log;
    }
    EXPECT_NE(log.find(gcm ? "AES_GCM_16_256/PRF_HMAC_SHA2_384/ECP_384"
                           : "AES_CBC_256/HMAC_SHA2_384_192/PRF_HMAC_SHA2_384/ECP_384"),
              std::string::npos)
        << log;
  }

  std::unique_ptr<TestPki> pki_;  // set by CharonCertInterop before SetUp
  std::unique_ptr<VethPair> net_;
  std::unique_ptr<CharonLab> charon_;
};

// Both sides authenticate with certificates under one test CA.
class CharonCertInterop : public CharonInterop {
 protected:
  CharonCertInterop() { pki_ = std::make_unique<TestPki>(); }
};

TEST_F(CharonInterop, SaInitAndAuthAesCbcSha384Ecp384) { run_exchange(false); }
TEST_F(CharonInterop, SaInitAndAuthAesGcm16Ecp384) { run_exchange(true); }
TEST_F(CharonCertInterop, EcdsaP384CertificatesBothWays) { run_exchange(false, Mode::kCert); }
TEST_F(CharonCertInterop, CharonRefusesSignatureByWrongKey) { run_exchange(true, Mode::kCertWrongKey); }

// An IKE_SA_INIT request offering `offered` with a P-256 (group 19) KE
// payload; charon's parsed answer, or nullopt (with a test failure).
std::optional<Message> sa_init_ecp256(const TestNetns& ns, std::uint64_t spi_i, const Proposal& offered,
                                      std::uint8_t nonce_byte) {
  Udp udp(ns);
  auto ke = KeyExchange::generate(transform_id::kGroupEcp256);
  if (!ke.ok()) {
    ADD_FAILURE() << ke.error().to_string();
    return std::nullopt;
  }
  auto request = serialize(sa_init(spi_i, offered, *ke, Bytes(32, nonce_byte)));
  if (!request.ok()) {
    ADD_FAILURE() << request.error().to_string();
    return std::nullopt;
  }
  auto answer = udp.exchange(*request);
  if (!answer) {
    ADD_FAILURE() << "no IKE_SA_INIT response from charon";
    return std::nullopt;
  }
  auto resp = parse(*answer);
  if (!resp.ok()) {
    ADD_FAILURE() << resp.error().to_string();
    return std::nullopt;
  }
  return std::move(*resp);
}

TEST_F(CharonInterop, InvalidKePayloadNamesTheWantedGroup) {
  // Offer group 20 in the SA but send a group 19 KE payload: charon asks for 20.
  auto resp = sa_init_ecp256(net_->left, 0x0102030405060708ULL, ike_proposal(false, 20), 7);
  ASSERT_TRUE(resp.has_value());
  const NotifyPayload* n = resp->find_notify(notify::kInvalidKePayload);
  ASSERT_NE(n, nullptr);
  EXPECT_TRUE(n->is_error());
  EXPECT_EQ(*decode_invalid_ke(n->data), 20);
}

TEST_F(CharonInterop, NoProposalChosen) {
  // aes256-sha384-ecp256: charon's configuration has only ecp384.
  auto resp = sa_init_ecp256(net_->left, 0x0a0b0c0d0e0f0102ULL, ike_proposal(false, 19), 9);
  ASSERT_TRUE(resp.has_value());
  EXPECT_NE(resp->find_notify(notify::kNoProposalChosen), nullptr);
}

}  // namespace
}  // namespace storcrypt::ike
