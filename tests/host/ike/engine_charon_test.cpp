// Host tier: our IKE Engine against strongSwan's charon, both directions.
//
// Two namespaces on a veth pair (192.0.2.1 us, 192.0.2.2 charon). Both sides
// authenticate with ECDSA P-384 end-entity certificates issued by an
// intermediate CA under a test root (the intermediate travels in CERT
// payloads). Our Engine runs in this process over plain UDP sockets bound in
// the left namespace (ports 500 and 4500, non-ESP marker on 4500) with the
// fake ChildSaKernel: the host kernel has no ESP, so neither side can really
// install the CHILD_SA. charon tries to, and its kernel log (knl = 2) names
// the SPIs it got from the negotiation; they must be the ones our fake kernel
// recorded, and `swanctl --list-sas` must show the IKE SA with our SPIs.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstring>
#include <functional>
#include <thread>

#include "charon_lab.h"
#include "storcrypt/common/fd.h"
#include "storcrypt/ike/engine.h"
#include "storcrypt/ike/message.h"
#include "storcrypt/testing/environment.h"
#include "storcrypt/testing/ike_fakes.h"
#include "storcrypt/testing/netns.h"

namespace storcrypt::ike {
namespace {

using storcrypt::testing::CharonLab;
using storcrypt::testing::FakeChildSaKernel;
using storcrypt::testing::IkeTestPki;
using storcrypt::testing::VethPair;

IpAddress ip(const char* s) { return *IpAddress::parse(s); }
TsRange range(const char* a, const char* b) { return TsRange{0, 0, 65535, ip(a), ip(b)}; }

// UDP on 192.0.2.1:500 and :4500 inside the left namespace.
class NsUdpTransport : public Transport {
 public:
  explicit NsUdpTransport(const storcrypt::testing::TestNetns& ns) {
    ok_ = ns.run_inside([&] {
      for (int i = 0; i < 2; ++i) {
        fds_[i] = UniqueFd(socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
        sockaddr_in a{};
        a.sin_family = AF_INET;
        a.sin_port = htons(i == 0 ? kIkePort : kNatTPort);
        inet_pton(AF_INET, "192.0.2.1", &a.sin_addr);
        if (bind(fds_[i].get(), reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) return -1;
      }
      return 0;
    }) == 0;
  }
  bool ok() const { return ok_; }

  Status send(const Datagram& d) override {
    const bool natt = d.local.port == kNatTPort;
    const Bytes data = natt ? add_non_esp_marker(d.data) : d.data;
    sockaddr_in p{};
    p.sin_family = AF_INET;
    p.sin_port = htons(d.remote.port);
    std::memcpy(&p.sin_addr, d.remote.addr.bytes.data(), 4);
    if (sendto(fds_[natt ? 1 : 0].get(), data.data(), data.size(), 0, reinterpret_cast<sockaddr*>(&p), sizeof p) < 0)
      return errno_error(errno, "sendto");
    ++sent_;
    return ok_status();
  }

  // Datagrams received within `timeout_ms`.
  std::vector<Datagram> poll_once(int timeout_ms) {
    std::vector<Datagram> out;
    pollfd p[2] = {{fds_[0].get(), POLLIN, 0}, {fds_[1].get(), POLLIN, 0}};
    if (::poll(p, 2, timeout_ms) <= 0) return out;
    for (int i = 0; i < 2; ++i) {
      if (!(p[i].revents & POLLIN)) continue;
      Bytes buf(65535);
      sockaddr_in from{};
      socklen_t len = sizeof from;
      const ssize_t n = recvfrom(fds_[i].get(), buf.data(), buf.size(), 0, reinterpret_cast<sockaddr*>(&from), &len);
      if (n <= 0) continue;
      buf.resize(static_cast<std::size_t>(n));
      Datagram d;
      d.local = {ip("192.0.2.1"), static_cast<std::uint16_t>(i == 0 ? kIkePort : kNatTPort)};
      d.remote.addr.family = Family::kIPv4;
      std::memcpy(d.remote.addr.bytes.data(), &from.sin_addr, 4);
      d.remote.port = ntohs(from.sin_port);
      if (i == 1) {
        auto c = classify_udp4500(buf);
        if (c.kind != Udp4500Kind::kIke) continue;
        d.data.assign(c.payload.begin(), c.payload.end());
      } else {
        d.data = std::move(buf);
      }
      out.push_back(std::move(d));
    }
    return out;
  }
  int sent() const { return sent_; }

 private:
  UniqueFd fds_[2];
  bool ok_ = false;
  int sent_ = 0;
};

std::string hex32(std::uint32_t v) {
  char b[16];
  std::snprintf(b, sizeof b, "%08x", v);
  return b;
}
std::string hex64(std::uint64_t v) {
  char b[24];
  std::snprintf(b, sizeof b, "%016llx", static_cast<unsigned long long>(v));
  return b;
}

class EngineCharon : public ::testing::Test {
 protected:
  void SetUp() override {
    STORCRYPT_REQUIRE(storcrypt::testing::can_use_netns(), "needs root and network namespaces");
    STORCRYPT_REQUIRE(storcrypt::testing::have_charon(), storcrypt::testing::kNeedsCharon);
    net_ = std::make_unique<VethPair>();
    ASSERT_TRUE(net_->ok);
    transport_ = std::make_unique<NsUdpTransport>(net_->left);
    ASSERT_TRUE(transport_->ok());
    engine_ = std::make_unique<Engine>(*transport_, kernel_);
    engine_->set_event_callback([this](const Event& e) { events_.push_back(e); });
  }
  void TearDown() override {
    if (HasFailure() && charon_) std::cerr << "--- charon.log ---\n" << charon_->log();
    if (HasFailure()) std::cerr << "--- our events ---\n" << dump() << "\n";
    engine_.reset();
    charon_.reset();
    transport_.reset();
    net_.reset();
  }

  // charon's side: root + intermediate trusted, its certificate and key, one connection.
  void start_charon(const std::string& remote_id = "\"O=storcrypt-test, CN=left.lab\"",
                    const X509* trusted_root = nullptr) {
    using storcrypt::testing::cert_pem;
    using storcrypt::testing::key_pem;
    std::map<std::string, std::string> files;
    files["x509ca/root.pem"] = cert_pem(const_cast<X509*>(trusted_root ? trusted_root : pki_.root.get()));
    files["x509/right.pem"] = cert_pem(pki_.right.get());
    files["x509/inter.pem"] = cert_pem(pki_.inter.get());  // sent along with right.pem
    files["private/right.pem"] = key_pem(pki_.right_key.get());
    files["swanctl.conf"] =
        "connections {\n"
        "  lab {\n"
        "    version = 2\n"
        "    local_addrs = 192.0.2.2\n"
        "    remote_addrs = 192.0.2.1\n"
        "    proposals = aes256-sha384-ecp384, aes256gcm16-prfsha384-ecp384\n"
        "    local {\n      auth = pubkey\n      certs = right.pem\n      id = right.lab\n    }\n"
        "    remote {\n      auth = pubkey\n      id = " +
        remote_id +
        "\n    }\n"
        "    children {\n      net {\n"
        "        local_ts = 203.0.113.0/24\n        remote_ts = 198.51.100.0/24\n"
        "        esp_proposals = aes256gcm16\n"
        "      }\n    }\n"
        "  }\n}\n";
    char tmpl[] = "/tmp/storcrypt-ike-engine-charon-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    charon_ = std::make_unique<CharonLab>(net_->right, tmpl, files);
    ASSERT_EQ(charon_->error(), "") << charon_->log();
  }

  PeerConfig our_config() { return pki_.left_config("charon"); }

  // Run the engine until `done` or `seconds` pass.
  bool pump(const std::function<bool()>& done, int seconds = 15) {
    const auto end = std::chrono::steady_clock::now() + std::chrono::seconds(seconds);
    while (std::chrono::steady_clock::now() < end) {
      if (done()) return true;
      for (const Datagram& d : transport_->poll_once(100)) engine_->receive(d);
      engine_->tick(std::chrono::steady_clock::now());
    }
    return done();
  }
  bool has(EventKind k) const {
    return std::any_of(events_.begin(), events_.end(), [&](const Event& e) { return e.kind == k; });
  }
  const Event* find(EventKind k) const {
    for (const Event& e : events_)
      if (e.kind == k) return &e;
    return nullptr;
  }
  std::string dump() const {
    std::string s;
    for (const Event& e : events_)
      s += "[" + std::string(event_kind_name(e.kind)) + " " + e.reason + " " + e.peer_subject + "] ";
    return s;
  }

  IkeTestPki pki_{"192.0.2.1", "192.0.2.2"};
  std::unique_ptr<VethPair> net_;
  std::unique_ptr<NsUdpTransport> transport_;
  FakeChildSaKernel kernel_;
  std::unique_ptr<Engine> engine_;
  std::unique_ptr<CharonLab> charon_;
  std::vector<Event> events_;
};

TEST_F(EngineCharon, OurInitiatorCharonResponder) {
  start_charon();
  ASSERT_TRUE(engine_->add_peer(our_config()).ok());
  ASSERT_TRUE(engine_->initiate("charon").ok());
  ASSERT_TRUE(pump([&] { return has(EventKind::kUp) || has(EventKind::kFailed) || has(EventKind::kAuthFailed); }))
      << "no outcome";
  ASSERT_TRUE(has(EventKind::kUp)) << dump();
  // The CHILD_SA: installed on our fake kernel, or refused by charon whose
  // kernel has no ESP (then charon's log says why).
  pump([&] { return has(EventKind::kChildUp) || has(EventKind::kChildFailed); }, 2);
  auto sas = engine_->list();
  ASSERT_EQ(sas.size(), 1u);
  EXPECT_EQ(sas[0].state, IkeState::kEstablished);
  EXPECT_EQ(sas[0].suite.encr, transform_id::kEncrAesCbc);
  EXPECT_EQ(sas[0].suite.ke, transform_id::kGroupEcp384);

  const std::string log = charon_->log();
  EXPECT_NE(log.find("established between 192.0.2.2[right.lab]...192.0.2.1[O=storcrypt-test, CN=left.lab]"),
            std::string::npos)
      << log;
  EXPECT_NE(log.find("authentication of 'O=storcrypt-test, CN=left.lab' with ECDSA_WITH_SHA384_DER successful"),
            std::string::npos)
      << log;
  EXPECT_NE(log.find("AES_CBC_256/HMAC_SHA2_384_192/PRF_HMAC_SHA2_384/ECP_384"), std::string::npos) << log;
  auto list = charon_->swanctl({"--list-sas"});
  std::cerr << "swanctl --list-sas:\n" << list.out;
  EXPECT_NE(list.out.find("ESTABLISHED"), std::string::npos) << list.out << list.err;
  EXPECT_NE(list.out.find(hex64(sas[0].spi_i) + "_i"), std::string::npos) << list.out;
  EXPECT_NE(list.out.find(hex64(sas[0].spi_r) + "_r"), std::string::npos) << list.out;

  if (has(EventKind::kChildUp)) {  // a kernel with ESP on charon's side
    ASSERT_EQ(kernel_.installed.size(), 1u);
    const ChildSaSpec& spec = kernel_.installed.begin()->second;
    EXPECT_NE(list.out.find(hex32(spec.slot.spi_in)), std::string::npos) << list.out;
    EXPECT_NE(list.out.find(hex32(spec.spi_out)), std::string::npos) << list.out;
  } else {
    // charon selected our ESP proposal, then its kernel refused the SA.
    const Event* e = find(EventKind::kChildFailed);
    ASSERT_NE(e, nullptr) << dump();
    std::cerr << "child: " << e->reason << "\n";
    EXPECT_NE(log.find("selected proposal: ESP:AES_GCM_16_256/NO_EXT_SEQ"), std::string::npos) << log;
    // It tried to install its outbound SA with the SPI we reserved and offered.
    ASSERT_EQ(kernel_.reserve_log.size(), 1u);
    EXPECT_NE(log.find("adding SAD entry with SPI " + hex32(kernel_.reserve_log[0].spi_in)), std::string::npos) << log;
    EXPECT_TRUE(kernel_.reserved.empty());  // our reserved SPI was released
  }

  // CREATE_CHILD_SA from our side (with the ESP proposal charon has): charon
  // parses it and selects the proposal; its kernel then decides.
  ASSERT_TRUE(engine_->create_child("charon").ok());
  pump([&] { return !engine_->list().empty() && !engine_->list()[0].children.empty(); }, 3);
  EXPECT_NE(charon_->log().find("parsed CREATE_CHILD_SA request 2"), std::string::npos) << charon_->log();
  EXPECT_EQ(kernel_.reserve_log.size(), 2u);

  // Delete from our side: charon's IKE SA goes away too.
  ASSERT_TRUE(engine_->terminate("charon").ok());
  ASSERT_TRUE(pump([&] { return has(EventKind::kDown); }, 5)) << dump();
  EXPECT_TRUE(engine_->list().empty());
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  auto after = charon_->swanctl({"--list-sas"});
  EXPECT_EQ(after.out.find("ESTABLISHED"), std::string::npos) << after.out;
}

TEST_F(EngineCharon, CharonInitiatorOurResponder) {
  start_charon();
  ASSERT_TRUE(engine_->add_peer(our_config()).ok());
  // swanctl --initiate blocks until charon is done; our engine runs meanwhile.
  storcrypt::testing::ProcessResult initiate;
  std::thread t([&] { initiate = charon_->swanctl({"--initiate", "--child", "net", "--timeout", "15"}); });
  const bool got = pump([&] {
    return has(EventKind::kChildUp) || has(EventKind::kFailed) || has(EventKind::kAuthFailed) ||
           has(EventKind::kChildFailed);
  });
  pump([] { return false; }, 1);  // let charon finish and answer whatever follows
  t.join();
  ASSERT_TRUE(got) << "no outcome; swanctl: " << initiate.out << initiate.err;
  ASSERT_TRUE(has(EventKind::kUp)) << dump();
  ASSERT_TRUE(has(EventKind::kChildUp)) << dump();
  auto sas = engine_->list();
  ASSERT_EQ(sas.size(), 1u);
  EXPECT_EQ(sas[0].role, IkeRole::kResponder);
  EXPECT_EQ(sas[0].suite.encr, transform_id::kEncrAesCbc);

  // What our fake kernel recorded (charon deletes the CHILD_SA again when its
  // own kernel cannot install it, so look at the install log).
  ASSERT_EQ(kernel_.install_log.size(), 1u);
  const ChildSaSpec& spec = kernel_.install_log.front();
  EXPECT_EQ(spec.suite.encr, transform_id::kEncrAesGcm16);
  EXPECT_EQ(spec.suite.encr_key_bits, 256);
  EXPECT_EQ(spec.in.encr.size(), 36u);
  EXPECT_EQ(spec.local, ip("192.0.2.1"));
  EXPECT_EQ(spec.remote, ip("192.0.2.2"));
  EXPECT_TRUE(sas[0].nat == spec.encap.has_value());
  EXPECT_EQ(spec.local_ts, (std::vector<TsRange>{range("198.51.100.0", "198.51.100.255")}));
  EXPECT_EQ(spec.remote_ts, (std::vector<TsRange>{range("203.0.113.0", "203.0.113.255")}));

  // charon's view: the IKE SA with our SPIs, and the CHILD_SA's SPIs it tried
  // to install (its inbound = our outbound and vice versa).
  const std::string log = charon_->log();
  EXPECT_NE(log.find("established between 192.0.2.2[right.lab]...192.0.2.1[O=storcrypt-test, CN=left.lab]"),
            std::string::npos)
      << log;
  EXPECT_NE(log.find("authentication of 'O=storcrypt-test, CN=left.lab' with ECDSA_WITH_SHA384_DER successful"),
            std::string::npos)
      << log;
  // IKE_AUTH with two P-384 certificates each way exceeds 1280 bytes: both
  // sides announced RFC 7383, so both fragmented and reassembled the other's.
  EXPECT_NE(log.find("splitting IKE message"), std::string::npos) << log;
  EXPECT_NE(log.find("reassembled fragmented IKE message"), std::string::npos) << log;
  auto list = charon_->swanctl({"--list-sas"});
  std::cerr << "swanctl --list-sas:\n" << list.out;
  EXPECT_NE(list.out.find(hex64(sas[0].spi_i) + "_i"), std::string::npos) << list.out;
  EXPECT_NE(list.out.find(hex64(sas[0].spi_r) + "_r"), std::string::npos) << list.out;
  if (list.out.find("INSTALLED") != std::string::npos) {  // a kernel with ESP on charon's side
    EXPECT_NE(list.out.find("in  " + hex32(spec.spi_out)), std::string::npos) << list.out;
    EXPECT_NE(list.out.find("out " + hex32(spec.slot.spi_in)), std::string::npos) << list.out;
  } else {
    // charon's inbound SA is our outbound one and the other way round.
    EXPECT_NE(log.find("adding SAD entry with SPI " + hex32(spec.spi_out)), std::string::npos)
        << "charon's inbound SPI is not the one we send to\n"
        << log;
    EXPECT_NE(log.find("adding SAD entry with SPI " + hex32(spec.slot.spi_in)), std::string::npos)
        << "charon's outbound SPI is not our inbound one\n"
        << log;
    EXPECT_NE(log.find("using encryption algorithm AES_GCM_16 with key size 288"), std::string::npos) << log;
    // charon deleted the CHILD_SA it could not install; we removed ours.
    EXPECT_TRUE(has(EventKind::kChildDown)) << dump();
    EXPECT_TRUE(kernel_.installed.empty());
  }

  // A second CHILD_SA: charon initiates CREATE_CHILD_SA on the IKE SA.
  {
    storcrypt::testing::ProcessResult again;
    std::thread t2([&] { again = charon_->swanctl({"--initiate", "--child", "net", "--timeout", "10"}); });
    pump([&] { return kernel_.install_log.size() >= 2; }, 10);
    pump([] { return false; }, 1);
    t2.join();
    ASSERT_EQ(kernel_.install_log.size(), 2u) << dump() << again.out << again.err;
    const ChildSaSpec& second = kernel_.install_log[1];
    EXPECT_NE(second.slot.spi_in, spec.slot.spi_in);
    EXPECT_NE(second.spi_out, spec.spi_out);
    const std::string log2 = charon_->log();
    EXPECT_NE(log2.find("CREATE_CHILD_SA request"), std::string::npos) << log2;
    EXPECT_NE(log2.find("adding SAD entry with SPI " + hex32(second.spi_out)), std::string::npos) << log2;
    EXPECT_NE(log2.find("adding SAD entry with SPI " + hex32(second.slot.spi_in)), std::string::npos) << log2;
  }

  // A liveness check from our side (our first request as responder: ID 0).
  ASSERT_TRUE(engine_->ping("charon").ok());
  pump([] { return false; }, 1);
  EXPECT_NE(charon_->log().find("parsed INFORMATIONAL request 0 [ ]"), std::string::npos) << charon_->log();
  EXPECT_EQ(engine_->list().size(), 1u);

  // charon deletes the IKE SA: we answer and drop ours.
  {
    storcrypt::testing::ProcessResult term;
    std::thread t3([&] { term = charon_->swanctl({"--terminate", "--ike", "lab", "--timeout", "10"}); });
    const bool down = pump([&] { return has(EventKind::kDown); }, 10);
    t3.join();
    ASSERT_TRUE(down) << dump() << term.out << term.err;
    EXPECT_EQ(find(EventKind::kDown)->reason, "deleted by the peer");
    EXPECT_TRUE(engine_->list().empty());
    EXPECT_TRUE(kernel_.installed.empty());
  }
}

// IKE SA rekey (RFC 7296 §1.3.2), ours first, then charon's (swanctl --rekey
// --ike): each time both sides name the same new SPIs, the old IKE SA is
// gone on both sides, and the new one carries requests (message IDs from 0).
TEST_F(EngineCharon, IkeSaRekeyedByEachSide) {
  start_charon();
  ASSERT_TRUE(engine_->add_peer(our_config()).ok());
  ASSERT_TRUE(engine_->initiate("charon").ok());
  ASSERT_TRUE(pump([&] { return has(EventKind::kUp) || has(EventKind::kFailed) || has(EventKind::kAuthFailed); }));
  ASSERT_TRUE(has(EventKind::kUp)) << dump();
  pump([&] { return has(EventKind::kChildUp) || has(EventKind::kChildFailed); }, 2);
  auto count = [&](EventKind k) {
    return std::count_if(events_.begin(), events_.end(), [&](const Event& e) { return e.kind == k; });
  };
  auto rekeyed = [&](std::size_t n, const std::function<void()>& start) {
    const auto before = engine_->list();
    ASSERT_EQ(before.size(), 1u);
    start();
    ASSERT_TRUE(pump([&] { return count(EventKind::kIkeRekeyed) >= static_cast<long>(n) && engine_->list().size() == 1; },
                     15))
        << dump();
    pump([] { return false; }, 1);
    const auto after = engine_->list();
    ASSERT_EQ(after.size(), 1u) << dump();
    EXPECT_EQ(after[0].state, IkeState::kEstablished);
    EXPECT_NE(after[0].spi_i, before[0].spi_i);
    EXPECT_NE(after[0].spi_r, before[0].spi_r);
    auto list = charon_->swanctl({"--list-sas"});
    std::cerr << "swanctl --list-sas:\n" << list.out;
    EXPECT_NE(list.out.find(hex64(after[0].spi_i) + "_i"), std::string::npos) << list.out;
    EXPECT_NE(list.out.find(hex64(after[0].spi_r) + "_r"), std::string::npos) << list.out;
    EXPECT_EQ(list.out.find(hex64(before[0].spi_i)), std::string::npos) << "charon still has the old IKE SA\n"
                                                                        << list.out;
    EXPECT_FALSE(has(EventKind::kDown)) << dump();
    EXPECT_FALSE(has(EventKind::kIkeRekeyFailed)) << dump();
  };
  rekeyed(1, [&] { ASSERT_TRUE(engine_->rekey_ike("charon").ok()); });
  EXPECT_EQ(engine_->list()[0].role, IkeRole::kInitiator);
  EXPECT_NE(charon_->log().find("IKE_SA lab[1] state change: ESTABLISHED => REKEYED"), std::string::npos) << charon_->log();
  storcrypt::testing::ProcessResult r;
  rekeyed(2, [&] {
    std::thread t([&] { r = charon_->swanctl({"--rekey", "--ike", "lab"}); });
    t.join();
  });
  EXPECT_EQ(engine_->list()[0].role, IkeRole::kResponder) << "charon initiated this rekey";
  EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
  // A liveness check on the new IKE SA: our first request there has ID 0.
  ASSERT_TRUE(engine_->ping("charon").ok());
  pump([] { return false; }, 1);
  EXPECT_NE(charon_->log().find("parsed INFORMATIONAL request 0 [ ]"), std::string::npos) << charon_->log();
  EXPECT_EQ(engine_->list().size(), 1u);
  ASSERT_TRUE(engine_->terminate("charon").ok());
  ASSERT_TRUE(pump([&] { return has(EventKind::kDown); }, 5)) << dump();
}

TEST_F(EngineCharon, CharonRefusesOurChainAndWeSayWhy) {
  IkeTestPki other{"192.0.2.1", "192.0.2.2"};
  start_charon("\"O=storcrypt-test, CN=left.lab\"", other.root.get());  // charon trusts another root
  ASSERT_TRUE(engine_->add_peer(our_config()).ok());
  ASSERT_TRUE(engine_->initiate("charon").ok());
  ASSERT_TRUE(pump([&] { return has(EventKind::kUp) || has(EventKind::kFailed) || has(EventKind::kAuthFailed); }));
  const Event* e = find(EventKind::kAuthFailed);
  ASSERT_NE(e, nullptr) << dump();
  EXPECT_EQ(e->reason, "peer refused our authentication (AUTHENTICATION_FAILED)");
  EXPECT_TRUE(kernel_.installed.empty());
  EXPECT_TRUE(kernel_.reserved.empty());
}

TEST_F(EngineCharon, WeRefuseCharonsChainAndSayWhy) {
  start_charon();
  auto cfg = our_config();
  IkeTestPki other{"192.0.2.1", "192.0.2.2"};
  cfg.validate_peer = other.validator();  // we trust another root
  ASSERT_TRUE(engine_->add_peer(std::move(cfg)).ok());
  ASSERT_TRUE(engine_->initiate("charon").ok());
  ASSERT_TRUE(pump([&] { return has(EventKind::kUp) || has(EventKind::kFailed) || has(EventKind::kAuthFailed); }));
  const Event* e = find(EventKind::kAuthFailed);
  ASSERT_NE(e, nullptr) << dump();
  EXPECT_EQ(e->reason.rfind("peer certificate not trusted: ", 0), 0u) << e->reason;
  EXPECT_EQ(e->peer_subject, "CN=right.lab,O=storcrypt-test");
  EXPECT_EQ(e->peer_issuer, "CN=storcrypt test intermediate,O=storcrypt-test");
  // charon hears AUTHENTICATION_FAILED and drops its half.
  pump([] { return false; }, 1);
  auto list = charon_->swanctl({"--list-sas"});
  EXPECT_EQ(list.out.find("ESTABLISHED"), std::string::npos) << list.out << charon_->log();
}

TEST_F(EngineCharon, ProposalMismatchIsNoProposalChosen) {
  start_charon();
  auto cfg = our_config();
  Proposal p;
  p.protocol = ProtocolId::kIke;
  p.transforms = {Transform::make(TransformType::kEncr, transform_id::kEncrAesGcm16, 256),
                  Transform::make(TransformType::kPrf, transform_id::kPrfHmacSha384),
                  Transform::make(TransformType::kKe, transform_id::kGroupEcp256)};
  cfg.ike_proposals = {p};
  ASSERT_TRUE(engine_->add_peer(std::move(cfg)).ok());
  ASSERT_TRUE(engine_->initiate("charon").ok());
  ASSERT_TRUE(pump([&] { return has(EventKind::kUp) || has(EventKind::kFailed); }));
  const Event* e = find(EventKind::kFailed);
  ASSERT_NE(e, nullptr) << dump();
  EXPECT_EQ(e->reason, "no proposal chosen: peer accepted none of our IKE proposals (aes256gcm16-prfsha384-ecp256)");
}

}  // namespace
}  // namespace storcrypt::ike
