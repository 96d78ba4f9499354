// The IKEv2 state machine and engine, ours <-> ours, over an in-memory
// transport with a fake ChildSaKernel on each side: IKE_SA_INIT + IKE_AUTH
// with both default suites, the first CHILD_SA's keys and SPIs crossing over,
// traffic selector narrowing, CREATE_CHILD_SA (with PFS), DELETE of CHILD and
// IKE SAs, INVALID_KE_PAYLOAD retry, COOKIE, NO_PROPOSAL_CHOSEN, a refusing
// peer validator on either side, retransmitted requests answered from the
// cache, retransmission timeouts, UNSUPPORTED_CRITICAL_PAYLOAD; half-open
// IKE SA limits (cookie thresholds overall and per source, block threshold,
// overall limit) and the rotating COOKIE secret.
#include "storcrypt/ike/engine.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <set>
#include <string>

#include "storcrypt/ike/message.h"
#include "storcrypt/testing/ike_fakes.h"

namespace storcrypt::ike {
namespace {

using storcrypt::testing::FakeChildSaKernel;
using storcrypt::testing::ike_proposal;
using storcrypt::testing::IkeTestPki;
using storcrypt::testing::MemoryTransport;

IpAddress ip(const char* s) { return *IpAddress::parse(s); }
TsRange range(const char* a, const char* b) { return TsRange{0, 0, 65535, ip(a), ip(b)}; }

struct Side {
  explicit Side(EngineOptions o = {}) : engine(transport, kernel, o) {}
  MemoryTransport transport;
  FakeChildSaKernel kernel;
  Engine engine;
  std::vector<Event> events;
  bool has(EventKind k) const {
    return std::any_of(events.begin(), events.end(), [&](const Event& e) { return e.kind == k; });
  }
  const Event* find(EventKind k) const {
    for (const Event& e : events)
      if (e.kind == k) return &e;
    return nullptr;
  }
};

Datagram as_received(const Datagram& d) { return Datagram{d.remote, d.local, d.data}; }

bool same_key(const SecretBytes& a, const SecretBytes& b) {
  return a.size() == b.size() && std::equal(a.data(), a.data() + a.size(), b.data());
}

class EngineTest : public ::testing::Test {
 protected:
  PeerConfig left_cfg() { return pki.left_config("right"); }  // left's name for its peer: "right"
  PeerConfig right_cfg() { return pki.right_config("left"); }
  // Deliver left's first request to right; right's one answer, parsed.
  Result<Message> right_answers_first_request() {
    right->engine.receive(as_received(left->transport.sent.front()));
    left->transport.sent.pop_front();
    if (right->transport.sent.size() != 1)
      return Error(ErrorCode::kInternal,
                   "right answered with " + std::to_string(right->transport.sent.size()) + " datagrams, not 1");
    return parse(right->transport.sent.front().data);
  }
  void setup(PeerConfig l, PeerConfig r, EngineOptions right_options = {}) {
    left = std::make_unique<Side>();
    right = std::make_unique<Side>(right_options);
    left->engine.set_event_callback([this](const Event& e) { left->events.push_back(e); });
    right->engine.set_event_callback([this](const Event& e) { right->events.push_back(e); });
    ASSERT_TRUE(left->engine.add_peer(std::move(l)).ok());
    ASSERT_TRUE(right->engine.add_peer(std::move(r)).ok());
  }
  // Move datagrams both ways until both are quiet.
  int run(int limit = 50) {
    int n = 0;
    while (n < limit && (!left->transport.sent.empty() || !right->transport.sent.empty())) {
      while (!left->transport.sent.empty()) {
        Datagram d = left->transport.sent.front();
        left->transport.sent.pop_front();
        right->engine.receive(as_received(d));
        ++n;
      }
      while (!right->transport.sent.empty()) {
        Datagram d = right->transport.sent.front();
        right->transport.sent.pop_front();
        left->engine.receive(as_received(d));
        ++n;
      }
    }
    return n;
  }
  void up() {
    ASSERT_TRUE(left->engine.initiate("right").ok());
    run();
    ASSERT_TRUE(left->has(EventKind::kUp)) << dump();
    ASSERT_TRUE(right->has(EventKind::kUp)) << dump();
  }
  std::string dump() const {
    std::string s;
    for (auto* side : {left.get(), right.get()}) {
      s += side == left.get() ? "left:" : " right:";
      for (const Event& e : side->events) s += " [" + std::string(event_kind_name(e.kind)) + " " + e.reason + "]";
    }
    return s;
  }
  // The CHILD_SA installed on `a` with inbound SPI `spi_in` mirrors one on `b`.
  void expect_mirrored(FakeChildSaKernel& a, FakeChildSaKernel& b) {
    ASSERT_EQ(a.installed.size(), b.installed.size());
    for (const auto& [spi_in, spec] : a.installed) {
      auto it = b.installed.find(spec.spi_out);
      ASSERT_NE(it, b.installed.end()) << "peer has no CHILD_SA with inbound SPI " << spec.spi_out;
      const ChildSaSpec& other = it->second;
      EXPECT_EQ(other.spi_out, spi_in);
      EXPECT_TRUE(same_key(spec.out.encr, other.in.encr));
      EXPECT_TRUE(same_key(spec.in.encr, other.out.encr));
      EXPECT_TRUE(same_key(spec.out.integ, other.in.integ));
      EXPECT_FALSE(same_key(spec.out.encr, spec.in.encr));
      EXPECT_EQ(spec.suite, other.suite);
      EXPECT_EQ(spec.local_ts, other.remote_ts);
      EXPECT_EQ(spec.remote_ts, other.local_ts);
      EXPECT_EQ(spec.local, other.remote);
    }
  }

  IkeTestPki pki;
  std::unique_ptr<Side> left, right;
};

TEST_F(EngineTest, UpWithDefaultSuiteAesCbcSha384AndFirstChildSa) {
  setup(left_cfg(), right_cfg());
  up();
  auto l = left->engine.list();
  auto r = right->engine.list();
  ASSERT_EQ(l.size(), 1u);
  ASSERT_EQ(r.size(), 1u);
  EXPECT_EQ(l[0].state, IkeState::kEstablished);
  EXPECT_EQ(r[0].state, IkeState::kEstablished);
  EXPECT_EQ(l[0].role, IkeRole::kInitiator);
  EXPECT_EQ(r[0].role, IkeRole::kResponder);
  EXPECT_EQ(l[0].spi_i, r[0].spi_i);
  EXPECT_EQ(l[0].spi_r, r[0].spi_r);
  EXPECT_EQ(l[0].suite.encr, transform_id::kEncrAesCbc);
  EXPECT_EQ(l[0].suite.integ, transform_id::kIntegHmacSha384_192);
  EXPECT_EQ(l[0].suite.prf, transform_id::kPrfHmacSha384);
  EXPECT_EQ(l[0].suite.ke, transform_id::kGroupEcp384);
  EXPECT_FALSE(l[0].nat);
  ASSERT_EQ(left->kernel.installed.size(), 1u);
  expect_mirrored(left->kernel, right->kernel);
  const ChildSaSpec& spec = left->kernel.installed.begin()->second;
  EXPECT_EQ(spec.suite.encr, transform_id::kEncrAesGcm16);
  EXPECT_EQ(spec.in.encr.size(), 36u);  // AES-256 key + 4-byte salt
  EXPECT_TRUE(spec.in.integ.empty());
  EXPECT_FALSE(spec.encap.has_value());
  EXPECT_EQ(spec.local, ip("192.0.2.1"));
  EXPECT_EQ(spec.local_ts, left_cfg().local_ts);
  EXPECT_EQ(spec.remote_ts, left_cfg().remote_ts);
  ASSERT_EQ(l[0].children.size(), 1u);
  EXPECT_EQ(l[0].children[0].info.slot.spi_in, spec.slot.spi_in);
  ASSERT_TRUE(l[0].children[0].counters.has_value());
  EXPECT_TRUE(left->has(EventKind::kChildUp));
  EXPECT_TRUE(right->has(EventKind::kChildUp));
  EXPECT_TRUE(left->kernel.reserved.empty());
}

TEST_F(EngineTest, UpWithAesGcmSuite) {
  auto l = left_cfg();
  l.ike_proposals = {ike_proposal(true, transform_id::kGroupEcp384)};
  setup(std::move(l), right_cfg());
  up();
  EXPECT_EQ(left->engine.list()[0].suite.encr, transform_id::kEncrAesGcm16);
  EXPECT_EQ(left->engine.list()[0].suite.integ, 0);
  expect_mirrored(left->kernel, right->kernel);
}

TEST_F(EngineTest, ResponderNarrowsTrafficSelectors) {
  auto r = right_cfg();
  r.local_ts = {range("203.0.113.0", "203.0.113.127")};
  r.remote_ts = {TsRange{6, 0, 65535, ip("198.51.100.0"), ip("198.51.100.255")}};  // TCP only
  setup(left_cfg(), std::move(r));
  up();
  ASSERT_EQ(left->kernel.installed.size(), 1u);
  const ChildSaSpec& spec = left->kernel.installed.begin()->second;
  EXPECT_EQ(spec.remote_ts, (std::vector<TsRange>{range("203.0.113.0", "203.0.113.127")}));
  EXPECT_EQ(spec.local_ts, (std::vector<TsRange>{TsRange{6, 0, 65535, ip("198.51.100.0"), ip("198.51.100.255")}}));
  expect_mirrored(left->kernel, right->kernel);
}

TEST_F(EngineTest, DisjointTrafficSelectorsAreTsUnacceptableButIkeSaStays) {
  auto r = right_cfg();
  r.remote_ts = {range("10.0.0.0", "10.255.255.255")};
  setup(left_cfg(), std::move(r));
  up();
  const Event* e = left->find(EventKind::kChildFailed);
  ASSERT_NE(e, nullptr) << dump();
  EXPECT_NE(e->reason.find("TS_UNACCEPTABLE"), std::string::npos) << e->reason;
  const Event* re = right->find(EventKind::kChildFailed);
  ASSERT_NE(re, nullptr);
  EXPECT_NE(re->reason.find("traffic selectors unacceptable"), std::string::npos) << re->reason;
  EXPECT_TRUE(left->kernel.installed.empty());
  EXPECT_TRUE(left->kernel.reserved.empty());  // the reserved SPI was released
  EXPECT_TRUE(right->kernel.installed.empty());
  EXPECT_EQ(left->engine.list()[0].state, IkeState::kEstablished);
}

TEST_F(EngineTest, EspNoProposalChosenForFirstChild) {
  auto r = right_cfg();
  Proposal p;
  p.protocol = ProtocolId::kEsp;
  p.transforms = {Transform::make(TransformType::kEncr, transform_id::kEncrAesGcm16, 128),
                  Transform::make(TransformType::kEsn, transform_id::kEsnNo)};
  r.esp_proposals = {p};
  setup(left_cfg(), std::move(r));
  up();
  const Event* e = left->find(EventKind::kChildFailed);
  ASSERT_NE(e, nullptr) << dump();
  EXPECT_NE(e->reason.find("NO_PROPOSAL_CHOSEN"), std::string::npos) << e->reason;
  EXPECT_NE(e->reason.find("aes256gcm16"), std::string::npos) << e->reason;
  EXPECT_TRUE(left->kernel.installed.empty());
}

TEST_F(EngineTest, CreateChildSaWithPfsAndDeleteIt) {
  auto l = left_cfg();
  auto r = right_cfg();
  for (PeerConfig* c : {&l, &r})
    c->esp_proposals.front().transforms.push_back(Transform::make(TransformType::kKe, transform_id::kGroupEcp384));
  setup(std::move(l), std::move(r));
  up();
  ASSERT_EQ(left->kernel.installed.size(), 1u);
  EXPECT_EQ(left->kernel.installed.begin()->second.suite.ke, 0);  // IKE_AUTH's child: no KE
  const std::uint32_t first = left->kernel.installed.begin()->first;
  ASSERT_TRUE(left->engine.create_child("right").ok());
  run();
  ASSERT_EQ(left->kernel.installed.size(), 2u) << dump();
  expect_mirrored(left->kernel, right->kernel);
  std::uint32_t second = 0;
  for (const auto& [spi, spec] : left->kernel.installed)
    if (spi != first) second = spi;
  EXPECT_EQ(left->kernel.installed.at(second).suite.ke, transform_id::kGroupEcp384);
  EXPECT_FALSE(same_key(left->kernel.installed.at(second).out.encr, left->kernel.installed.at(first).out.encr));
  ASSERT_EQ(left->engine.list()[0].children.size(), 2u);

  const std::uint32_t right_in = left->kernel.installed.at(second).spi_out;
  left->events.clear();
  right->events.clear();
  ASSERT_TRUE(left->engine.delete_child("right", second).ok());
  run();
  EXPECT_EQ(left->kernel.installed.count(second), 0u);
  EXPECT_EQ(right->kernel.installed.count(right_in), 0u);
  EXPECT_EQ(left->kernel.installed.size(), 1u);
  EXPECT_EQ(right->kernel.installed.size(), 1u);
  EXPECT_TRUE(left->has(EventKind::kChildDown));
  EXPECT_TRUE(right->has(EventKind::kChildDown));
  expect_mirrored(left->kernel, right->kernel);
}

TEST_F(EngineTest, CreateChildSaWithoutPfs) {
  setup(left_cfg(), right_cfg());
  up();
  ASSERT_TRUE(left->engine.create_child("right").ok());
  ASSERT_TRUE(right->engine.create_child("left").ok());  // the responder may create one too
  run();
  EXPECT_EQ(left->kernel.installed.size(), 3u) << dump();
  expect_mirrored(left->kernel, right->kernel);
}

TEST_F(EngineTest, InitiatorDeletesIkeSa) {
  setup(left_cfg(), right_cfg());
  up();
  ASSERT_TRUE(left->engine.create_child("right").ok());
  run();
  ASSERT_EQ(right->kernel.installed.size(), 2u);
  ASSERT_TRUE(left->engine.terminate("right").ok());
  run();
  EXPECT_TRUE(left->kernel.installed.empty());
  EXPECT_TRUE(right->kernel.installed.empty());
  EXPECT_TRUE(left->engine.list().empty());
  EXPECT_TRUE(right->engine.list().empty());
  ASSERT_NE(left->find(EventKind::kDown), nullptr);
  ASSERT_NE(right->find(EventKind::kDown), nullptr);
  EXPECT_EQ(right->find(EventKind::kDown)->reason, "deleted by the peer");
}

TEST_F(EngineTest, ResponderDeletesIkeSa) {
  setup(left_cfg(), right_cfg());
  up();
  ASSERT_TRUE(right->engine.terminate("left").ok());
  run();
  EXPECT_TRUE(left->kernel.installed.empty());
  EXPECT_TRUE(right->kernel.installed.empty());
  EXPECT_TRUE(left->engine.list().empty());
  EXPECT_TRUE(right->engine.list().empty());
  EXPECT_TRUE(left->has(EventKind::kDown));
  // And up again from scratch.
  up();
  EXPECT_EQ(left->kernel.installed.size(), 1u);
}

TEST_F(EngineTest, LivenessCheck) {
  setup(left_cfg(), right_cfg());
  up();
  const std::size_t before = right->transport.total_sent;
  ASSERT_TRUE(left->engine.ping("right").ok());
  ASSERT_TRUE(left->engine.ping("right").ok());  // queued behind the first (window 1)
  EXPECT_EQ(left->transport.sent.size(), 1u);
  run();
  EXPECT_EQ(right->transport.total_sent, before + 2);
  EXPECT_EQ(left->engine.list()[0].state, IkeState::kEstablished);
  ASSERT_TRUE(right->engine.ping("left").ok());
  run();
  EXPECT_EQ(right->engine.list()[0].state, IkeState::kEstablished);
}

TEST_F(EngineTest, InvalidKePayloadRetryWithTheAskedGroup) {
  auto l = left_cfg();
  l.ike_proposals = {ike_proposal(false, transform_id::kGroupEcp384), ike_proposal(false, transform_id::kGroupEcp256)};
  auto r = right_cfg();
  r.ike_proposals = {ike_proposal(false, transform_id::kGroupEcp256)};
  setup(std::move(l), std::move(r));
  ASSERT_TRUE(left->engine.initiate("right").ok());
  // The first answer is INVALID_KE_PAYLOAD naming group 19.
  auto answer = right_answers_first_request();
  ASSERT_TRUE(answer.ok()) << answer.error().to_string();
  const NotifyPayload* n = answer->find_notify(notify::kInvalidKePayload);
  ASSERT_NE(n, nullptr);
  EXPECT_EQ(*decode_invalid_ke(n->data), transform_id::kGroupEcp256);
  run();
  ASSERT_TRUE(left->has(EventKind::kUp)) << dump();
  EXPECT_EQ(left->engine.list()[0].suite.ke, transform_id::kGroupEcp256);
  EXPECT_FALSE(right->has(EventKind::kFailed));
  expect_mirrored(left->kernel, right->kernel);
}

TEST_F(EngineTest, InvalidKePayloadForAGroupWeDoNotHaveFails) {
  auto r = right_cfg();
  r.ike_proposals = {ike_proposal(false, transform_id::kGroupEcp384)};
  setup(left_cfg(), std::move(r));
  ASSERT_TRUE(left->engine.initiate("right").ok());
  // Answer by hand: INVALID_KE_PAYLOAD asking for curve25519, which we did not offer.
  auto req = parse(left->transport.sent.front().data);
  ASSERT_TRUE(req.ok());
  Message m;
  m.header = req->header;
  m.header.flags = kFlagResponse;
  m.payloads.push_back(Payload::notification(notify::kInvalidKePayload, encode_invalid_ke(31)));
  left->engine.receive(
      as_received(Datagram{left->transport.sent.front().remote, left->transport.sent.front().local, *serialize(m)}));
  const Event* e = left->find(EventKind::kFailed);
  ASSERT_NE(e, nullptr);
  EXPECT_NE(e->reason.find("D-H group 31"), std::string::npos) << e->reason;
  EXPECT_TRUE(left->engine.list().empty());
}

TEST_F(EngineTest, CookieIsAnswered) {
  EngineOptions o;
  o.require_cookies = true;
  setup(left_cfg(), right_cfg(), o);
  ASSERT_TRUE(left->engine.initiate("right").ok());
  auto answer = right_answers_first_request();
  ASSERT_TRUE(answer.ok()) << answer.error().to_string();
  ASSERT_NE(answer->find_notify(notify::kCookie), nullptr);
  EXPECT_TRUE(right->engine.list().empty());  // stateless: no SA yet
  run();
  ASSERT_TRUE(left->has(EventKind::kUp)) << dump();
  ASSERT_TRUE(right->has(EventKind::kUp)) << dump();
  expect_mirrored(left->kernel, right->kernel);
}

TEST_F(EngineTest, NoProposalChosen) {
  auto r = right_cfg();
  r.ike_proposals = {ike_proposal(true, transform_id::kGroupEcp256)};
  setup(left_cfg(), std::move(r));
  ASSERT_TRUE(left->engine.initiate("right").ok());
  run();
  const Event* e = left->find(EventKind::kFailed);
  ASSERT_NE(e, nullptr) << dump();
  EXPECT_NE(e->reason.find("no proposal chosen"), std::string::npos) << e->reason;
  const Event* re = right->find(EventKind::kFailed);
  ASSERT_NE(re, nullptr) << dump();
  EXPECT_NE(re->reason.find("no proposal chosen: peer offered aes256-sha384-prfsha384-ecp384, "
                            "aes256gcm16-prfsha384-ecp384"),
            std::string::npos)
      << re->reason;
  EXPECT_TRUE(left->engine.list().empty());
  EXPECT_TRUE(right->engine.list().empty());
}

TEST_F(EngineTest, ResponderValidatorRefusesInitiator) {
  auto r = right_cfg();
  r.validate_peer = [](X509*, std::span<X509* const> inter, const IdPayload&) -> Status {
    EXPECT_EQ(inter.size(), 1u);  // the intermediate from the second CERT payload
    return Error(ErrorCode::kTls, "unable to get local issuer certificate");
  };
  setup(left_cfg(), std::move(r));
  ASSERT_TRUE(left->engine.initiate("right").ok());
  run();
  const Event* re = right->find(EventKind::kAuthFailed);
  ASSERT_NE(re, nullptr) << dump();
  EXPECT_EQ(re->reason, "peer certificate not trusted: unable to get local issuer certificate");
  EXPECT_EQ(re->peer_subject, "CN=left.lab,O=storcrypt-test");
  EXPECT_EQ(re->peer_issuer, "CN=storcrypt test intermediate,O=storcrypt-test");
  const Event* le = left->find(EventKind::kAuthFailed);
  ASSERT_NE(le, nullptr) << dump();
  EXPECT_NE(le->reason.find("AUTHENTICATION_FAILED"), std::string::npos);
  EXPECT_FALSE(left->has(EventKind::kUp));
  EXPECT_FALSE(right->has(EventKind::kUp));
  EXPECT_TRUE(left->kernel.installed.empty() && left->kernel.reserved.empty());
  EXPECT_TRUE(right->kernel.installed.empty());
  EXPECT_TRUE(left->engine.list().empty());
  EXPECT_TRUE(right->engine.list().empty());
}

TEST_F(EngineTest, InitiatorValidatorRefusesResponder) {
  auto l = left_cfg();
  IkeTestPki other;  // a different root: the real chain check fails
  l.validate_peer = other.validator();
  setup(std::move(l), right_cfg());
  ASSERT_TRUE(left->engine.initiate("right").ok());
  run();
  const Event* le = left->find(EventKind::kAuthFailed);
  ASSERT_NE(le, nullptr) << dump();
  EXPECT_EQ(le->reason.rfind("peer certificate not trusted: ", 0), 0u) << le->reason;
  EXPECT_EQ(le->peer_subject, "CN=right.lab,O=storcrypt-test");
  // The responder had come up, then heard AUTHENTICATION_FAILED in an INFORMATIONAL.
  const Event* re = right->find(EventKind::kAuthFailed);
  ASSERT_NE(re, nullptr) << dump();
  EXPECT_TRUE(left->kernel.installed.empty());
  EXPECT_TRUE(right->kernel.installed.empty()) << "responder's CHILD_SA must go with the refused IKE SA";
  EXPECT_TRUE(left->engine.list().empty());
  EXPECT_TRUE(right->engine.list().empty());
}

TEST_F(EngineTest, WrongRemoteIdIsRefused) {
  auto l = left_cfg();
  l.remote_id = id_fqdn("other.lab");
  setup(std::move(l), right_cfg());
  ASSERT_TRUE(left->engine.initiate("right").ok());
  run();
  const Event* le = left->find(EventKind::kAuthFailed);
  ASSERT_NE(le, nullptr) << dump();
  EXPECT_EQ(le->reason, "peer ID FQDN right.lab is not the configured FQDN other.lab");
}

TEST_F(EngineTest, IdNotInCertificateIsRefused) {
  auto l = left_cfg();
  l.remote_id.reset();
  setup(std::move(l), right_cfg());
  // Engine::add_peer refuses such a configuration, so play a misconfigured
  // (or lying) responder with an IkeSa of its own.
  auto r = right_cfg();
  r.local_id = id_fqdn("elsewhere.lab");
  IkeSaEnv env;
  env.transport = &right->transport;
  env.kernel = &right->kernel;
  env.emit = [this](Event e) { right->events.push_back(std::move(e)); };
  ASSERT_TRUE(left->engine.initiate("right").ok());
  const Datagram init = as_received(left->transport.sent.front());
  left->transport.sent.pop_front();
  auto sa = IkeSa::responder(r, env, init);
  ASSERT_TRUE(sa.ok());
  (*sa)->receive(init, *parse(init.data));
  for (int i = 0; i < 10 && (!left->transport.sent.empty() || !right->transport.sent.empty()); ++i) {
    while (!right->transport.sent.empty()) {
      left->engine.receive(as_received(right->transport.sent.front()));
      right->transport.sent.pop_front();
    }
    while (!left->transport.sent.empty()) {
      const Datagram d = as_received(left->transport.sent.front());
      left->transport.sent.pop_front();
      (*sa)->receive(d, *parse(d.data));
    }
  }
  const Event* le = left->find(EventKind::kAuthFailed);
  ASSERT_NE(le, nullptr) << dump();
  EXPECT_EQ(le->reason,
            "peer ID FQDN elsewhere.lab does not match its certificate (subject CN=right.lab,O=storcrypt-test)");
  EXPECT_TRUE(left->kernel.installed.empty());
  // The responder heard AUTHENTICATION_FAILED and removed its CHILD_SA.
  EXPECT_TRUE((*sa)->terminal());
  EXPECT_TRUE(right->kernel.installed.empty());
}

TEST_F(EngineTest, LocalIdMustNameOurCertificate) {
  setup(left_cfg(), right_cfg());
  auto c = left_cfg();
  c.name = "other";
  c.local_id = id_fqdn("elsewhere.lab");
  auto s = left->engine.add_peer(std::move(c));
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error().code(), ErrorCode::kInvalidInput);
  EXPECT_NE(s.error().message().find("local ID FQDN elsewhere.lab does not name our certificate"), std::string::npos);
  auto ok = left_cfg();
  ok.name = "by-ip";
  ok.local_id = id_ip(ip("192.0.2.1"));  // a SAN of left's certificate
  EXPECT_TRUE(left->engine.add_peer(std::move(ok)).ok());
  auto none = left_cfg();
  none.name = "no-validator";
  none.validate_peer = nullptr;
  EXPECT_EQ(left->engine.add_peer(std::move(none)).error().code(), ErrorCode::kInvalidInput);
}

TEST_F(EngineTest, RetransmittedRequestsAreAnsweredFromTheCache) {
  setup(left_cfg(), right_cfg());
  ASSERT_TRUE(left->engine.initiate("right").ok());
  // IKE_SA_INIT twice: the same answer, one SA.
  const Datagram init = left->transport.sent.front();
  left->transport.sent.pop_front();
  right->engine.receive(as_received(init));
  right->engine.receive(as_received(init));
  ASSERT_EQ(right->transport.sent.size(), 2u);
  EXPECT_EQ(right->transport.sent[0].data, right->transport.sent[1].data);
  EXPECT_EQ(right->engine.list().size(), 1u);
  right->transport.sent.pop_back();
  left->engine.receive(as_received(right->transport.sent.front()));
  right->transport.sent.pop_front();
  // IKE_AUTH (two SKF fragments with the default fragment size) twice: the
  // same answer, one CHILD_SA.
  const std::vector<Datagram> auth(left->transport.sent.begin(), left->transport.sent.end());
  ASSERT_EQ(auth.size(), 2u);
  left->transport.sent.clear();
  for (const Datagram& d : auth) right->engine.receive(as_received(d));
  const std::size_t answer = right->transport.sent.size();
  ASSERT_GE(answer, 1u);
  for (const Datagram& d : auth) right->engine.receive(as_received(d));
  ASSERT_EQ(right->transport.sent.size(), 2 * answer);  // answered once, on the first fragment
  for (std::size_t i = 0; i < answer; ++i)
    EXPECT_EQ(right->transport.sent[i].data, right->transport.sent[answer + i].data);
  EXPECT_EQ(right->kernel.installed.size(), 1u);
  run();  // both answers reach left; the second is ignored
  EXPECT_TRUE(left->has(EventKind::kUp));
  EXPECT_EQ(left->kernel.installed.size(), 1u);
  expect_mirrored(left->kernel, right->kernel);
}

TEST_F(EngineTest, LostRequestIsRetransmittedOnTick) {
  auto l = left_cfg();
  l.retransmit.waits = {std::chrono::milliseconds(100), std::chrono::milliseconds(200), std::chrono::milliseconds(400)};
  setup(std::move(l), right_cfg());
  ASSERT_TRUE(left->engine.initiate("right").ok());
  left->transport.sent.clear();  // lost
  auto t0 = std::chrono::steady_clock::time_point{} + std::chrono::hours(1);
  left->engine.tick(t0);  // arms the timer
  left->engine.tick(t0 + std::chrono::milliseconds(50));
  EXPECT_TRUE(left->transport.sent.empty());
  left->engine.tick(t0 + std::chrono::milliseconds(100));
  ASSERT_EQ(left->transport.sent.size(), 1u);
  run();
  EXPECT_TRUE(left->has(EventKind::kUp)) << dump();
}

TEST_F(EngineTest, UnansweredRequestsGiveUp) {
  auto l = left_cfg();
  l.retransmit.waits = {std::chrono::milliseconds(100), std::chrono::milliseconds(100)};
  setup(std::move(l), right_cfg());
  ASSERT_TRUE(left->engine.initiate("right").ok());
  auto t = std::chrono::steady_clock::time_point{} + std::chrono::hours(1);
  for (int i = 0; i < 5; ++i) {
    left->engine.tick(t);
    t += std::chrono::milliseconds(100);
  }
  EXPECT_EQ(left->transport.sent.size(), 2u);  // first send + one retransmission
  const Event* e = left->find(EventKind::kFailed);
  ASSERT_NE(e, nullptr);
  EXPECT_EQ(e->reason, "peer did not answer our IKE_SA_INIT (2 transmissions)");
  EXPECT_TRUE(left->engine.list().empty());
}

TEST_F(EngineTest, DeadPeerTakesItsChildSasAlong) {
  auto l = left_cfg();
  l.retransmit.waits = {std::chrono::milliseconds(100)};
  setup(std::move(l), right_cfg());
  up();
  ASSERT_TRUE(left->engine.ping("right").ok());
  left->transport.sent.clear();
  auto t = std::chrono::steady_clock::time_point{} + std::chrono::hours(1);
  left->engine.tick(t);
  left->engine.tick(t + std::chrono::milliseconds(100));
  const Event* e = left->find(EventKind::kDown);
  ASSERT_NE(e, nullptr) << dump();
  EXPECT_NE(e->reason.find("considered dead"), std::string::npos);
  EXPECT_TRUE(left->kernel.installed.empty());
}

TEST_F(EngineTest, UnknownCriticalPayloadIsUnsupportedCriticalPayload) {
  setup(left_cfg(), right_cfg());
  ASSERT_TRUE(left->engine.initiate("right").ok());
  auto req = parse(left->transport.sent.front().data);
  ASSERT_TRUE(req.ok());
  Message m = *req;
  m.payloads.push_back(Payload{200, 0x80, RawPayload{{1, 2, 3}}});
  Datagram d = as_received(left->transport.sent.front());
  d.data = *serialize(m);
  right->engine.receive(d);
  ASSERT_EQ(right->transport.sent.size(), 1u);
  auto answer = parse(right->transport.sent.front().data);
  ASSERT_TRUE(answer.ok());
  const NotifyPayload* n = answer->find_notify(notify::kUnsupportedCriticalPayload);
  ASSERT_NE(n, nullptr);
  EXPECT_EQ(n->data, Bytes{200});
  EXPECT_TRUE(right->engine.list().empty());
  // Not critical: ignored, and the exchange goes on.
  right->transport.sent.clear();
  m.payloads.back().flags = 0;
  d.data = *serialize(m);
  right->engine.receive(d);
  ASSERT_EQ(right->transport.sent.size(), 1u);
  EXPECT_NE(parse(right->transport.sent.front().data)->find(PayloadType::kSa), nullptr);
}

TEST_F(EngineTest, MalformedSaInitRequestIsInvalidSyntax) {
  setup(left_cfg(), right_cfg());
  ASSERT_TRUE(left->engine.initiate("right").ok());
  Datagram d = as_received(left->transport.sent.front());
  d.data.resize(40);  // the header's length now lies
  right->engine.receive(d);
  ASSERT_EQ(right->transport.sent.size(), 1u);
  auto answer = parse(right->transport.sent.front().data);
  ASSERT_TRUE(answer.ok());
  EXPECT_NE(answer->find_notify(notify::kInvalidSyntax), nullptr);
  EXPECT_TRUE(right->engine.list().empty());
  // Garbage for an established SA is dropped without an answer.
  right->transport.sent.clear();
  run();
}

TEST_F(EngineTest, UnknownPeerAddressIsIgnored) {
  setup(left_cfg(), right_cfg());
  ASSERT_TRUE(left->engine.initiate("right").ok());
  Datagram d = as_received(left->transport.sent.front());
  d.remote.addr = ip("192.0.2.99");
  right->engine.receive(d);
  EXPECT_TRUE(right->transport.sent.empty());
  EXPECT_TRUE(right->engine.list().empty());
}

TEST_F(EngineTest, NatDetectedMovesToPort4500AndEncapsulates) {
  setup(left_cfg(), right_cfg());
  ASSERT_TRUE(left->engine.initiate("right").ok());
  // A NAT in front of left maps 192.0.2.1:500 to 192.0.2.1:1024 (and :4500 to :1025).
  auto nat = [](Datagram d) {
    d.local.port = d.local.port == kIkePort ? 1024 : 1025;
    return d;
  };
  auto unnat = [](Datagram d) {
    d.remote.port = d.remote.port == 1024 ? kIkePort : kNatTPort;
    return d;
  };
  for (int i = 0; i < 10 && (!left->transport.sent.empty() || !right->transport.sent.empty()); ++i) {
    while (!left->transport.sent.empty()) {
      right->engine.receive(as_received(nat(left->transport.sent.front())));
      left->transport.sent.pop_front();
    }
    while (!right->transport.sent.empty()) {
      left->engine.receive(as_received(unnat(right->transport.sent.front())));
      right->transport.sent.pop_front();
    }
  }
  ASSERT_TRUE(left->has(EventKind::kUp)) << dump();
  auto l = left->engine.list();
  auto r = right->engine.list();
  EXPECT_TRUE(l[0].nat);
  EXPECT_TRUE(r[0].nat);
  EXPECT_EQ(l[0].local.port, kNatTPort);
  EXPECT_EQ(l[0].remote.port, kNatTPort);
  EXPECT_EQ(r[0].remote.port, 1025);
  ASSERT_EQ(left->kernel.installed.size(), 1u);
  EXPECT_EQ(left->kernel.installed.begin()->second.encap, std::make_pair(kNatTPort, kNatTPort));
  EXPECT_EQ(right->kernel.installed.begin()->second.encap, std::make_pair(kNatTPort, std::uint16_t{1025}));
}

TEST_F(EngineTest, KernelInstallFailureIsAChildFailure) {
  setup(left_cfg(), right_cfg());
  right->kernel.fail_install = true;
  up();
  EXPECT_TRUE(left->has(EventKind::kChildFailed));
  EXPECT_TRUE(right->has(EventKind::kChildFailed));
  EXPECT_TRUE(left->kernel.installed.empty());
  EXPECT_TRUE(right->kernel.reserved.empty());
}

TEST_F(EngineTest, InitialContactReplacesTheOldIkeSa) {
  setup(left_cfg(), right_cfg());
  // The old CHILD_SA's policies must be gone before the new one is installed
  // (XFRM refuses a second policy of the same selectors).
  right->kernel.refuse_same_selectors = true;
  up();
  ASSERT_EQ(right->kernel.installed.size(), 1u);
  const std::uint32_t old_spi = right->kernel.installed.begin()->first;
  // left restarts: a new engine, the same configuration, no DELETE for the old SA.
  auto fresh = std::make_unique<Side>();
  fresh->engine.set_event_callback([f = fresh.get()](const Event& e) { f->events.push_back(e); });
  ASSERT_TRUE(fresh->engine.add_peer(left_cfg()).ok());
  left = std::move(fresh);
  right->events.clear();
  up();
  EXPECT_EQ(right->engine.list().size(), 1u);
  ASSERT_EQ(right->kernel.installed.size(), 1u);
  EXPECT_NE(right->kernel.installed.begin()->first, old_spi);
  const Event* down = right->find(EventKind::kDown);
  ASSERT_NE(down, nullptr) << dump();
  EXPECT_NE(down->reason.find("INITIAL_CONTACT"), std::string::npos);
  EXPECT_FALSE(right->has(EventKind::kChildFailed)) << dump();
  expect_mirrored(left->kernel, right->kernel);
}

TEST_F(EngineTest, HalfOpenResponderSaIsDropped) {
  auto r = right_cfg();
  r.retransmit.half_open = std::chrono::seconds(5);
  setup(left_cfg(), std::move(r));
  ASSERT_TRUE(left->engine.initiate("right").ok());
  right->engine.receive(as_received(left->transport.sent.front()));
  ASSERT_EQ(right->engine.list().size(), 1u);
  auto t = std::chrono::steady_clock::time_point{} + std::chrono::hours(1);
  right->engine.tick(t);
  right->engine.tick(t + std::chrono::seconds(4));
  EXPECT_EQ(right->engine.list().size(), 1u);
  right->engine.tick(t + std::chrono::seconds(5));
  EXPECT_TRUE(right->engine.list().empty());
  EXPECT_TRUE(right->has(EventKind::kFailed));
}

TEST_F(EngineTest, LargeMessagesAreFragmentedWhenBothSupportIt) {
  auto l = left_cfg();
  auto r = right_cfg();
  l.fragment_size = 500;
  r.fragment_size = 500;
  setup(std::move(l), std::move(r));
  ASSERT_TRUE(left->engine.initiate("right").ok());
  int skf_left = 0, skf_right = 0;
  for (int i = 0; i < 10 && (!left->transport.sent.empty() || !right->transport.sent.empty()); ++i) {
    while (!left->transport.sent.empty()) {
      const Datagram d = left->transport.sent.front();
      left->transport.sent.pop_front();
      if (parse_header(d.data)->next_payload == static_cast<std::uint8_t>(PayloadType::kSkf)) {
        ++skf_left;
        EXPECT_LE(d.data.size(), 500u);
      }
      right->engine.receive(as_received(d));
    }
    while (!right->transport.sent.empty()) {
      const Datagram d = right->transport.sent.front();
      right->transport.sent.pop_front();
      if (parse_header(d.data)->next_payload == static_cast<std::uint8_t>(PayloadType::kSkf)) {
        ++skf_right;
        EXPECT_LE(d.data.size(), 500u);
      }
      left->engine.receive(as_received(d));
    }
  }
  ASSERT_TRUE(left->has(EventKind::kUp)) << dump();
  ASSERT_TRUE(right->has(EventKind::kUp)) << dump();
  EXPECT_GE(skf_left, 3);  // IKE_AUTH with two P-384 certificates does not fit in 500 bytes
  EXPECT_GE(skf_right, 3);
  expect_mirrored(left->kernel, right->kernel);
}

TEST_F(EngineTest, NoFragmentsToAPeerThatDidNotAnnounceThem) {
  auto l = left_cfg();
  auto r = right_cfg();
  l.fragment_size = 500;
  r.fragment_size = 0;  // right does not do RFC 7383
  setup(std::move(l), std::move(r));
  ASSERT_TRUE(left->engine.initiate("right").ok());
  int skf = 0;
  for (int i = 0; i < 10 && (!left->transport.sent.empty() || !right->transport.sent.empty()); ++i) {
    while (!left->transport.sent.empty()) {
      const Datagram d = left->transport.sent.front();
      left->transport.sent.pop_front();
      if (parse_header(d.data)->next_payload == static_cast<std::uint8_t>(PayloadType::kSkf)) ++skf;
      right->engine.receive(as_received(d));
    }
    while (!right->transport.sent.empty()) {
      left->engine.receive(as_received(right->transport.sent.front()));
      right->transport.sent.pop_front();
    }
  }
  EXPECT_EQ(skf, 0);
  ASSERT_TRUE(left->has(EventKind::kUp)) << dump();
}

TEST_F(EngineTest, PeerManagement) {
  setup(left_cfg(), right_cfg());
  EXPECT_EQ(left->engine.add_peer(left_cfg()).error().code(), ErrorCode::kConflict);
  EXPECT_EQ(left->engine.initiate("nobody").error().code(), ErrorCode::kNotFound);
  auto bad = left_cfg();
  bad.name = "bad";
  bad.local_ts.clear();
  EXPECT_EQ(left->engine.add_peer(std::move(bad)).error().code(), ErrorCode::kInvalidInput);
  up();
  EXPECT_EQ(left->engine.initiate("right").error().code(), ErrorCode::kConflict);
  ASSERT_TRUE(left->engine.remove_peer("right").ok());
  EXPECT_TRUE(left->engine.list().empty());
  EXPECT_TRUE(left->kernel.installed.empty());
  EXPECT_TRUE(left->engine.peers().empty());
  run();  // the DELETE reaches right
  EXPECT_TRUE(right->engine.list().empty());
  EXPECT_TRUE(right->kernel.installed.empty());
}


// ---------------------------------------------------------------------------
// Half-open IKE SA limits and COOKIEs under load (RFC 7296 §2.6)

class DosTest : public EngineTest {
 protected:
  // Right knows left (192.0.2.1) and four more peers, 192.0.2.11-14, whose
  // addresses the forged requests below use; left's first request is the
  // template of every forged one.
  void setup_dos(EngineOptions o) {
    setup(left_cfg(), right_cfg(), o);
    for (int i = 1; i <= 4; ++i) {
      PeerConfig c = right_cfg();
      c.name = "other" + std::to_string(i);
      c.remote_addr = ip(("192.0.2.1" + std::to_string(i)).c_str());
      ASSERT_TRUE(right->engine.add_peer(std::move(c)).ok());
    }
    ASSERT_TRUE(left->engine.initiate("right").ok());
    ASSERT_EQ(left->transport.sent.size(), 1u);
    tmpl_ = as_received(left->transport.sent.front());
    auto m = parse(tmpl_.data);
    ASSERT_TRUE(m.ok());
    request_ = *m;
    left->transport.sent.clear();
  }
  // Left's IKE_SA_INIT request with initiator SPI `spi`, from `source`, with a COOKIE first when `cookie` is given.
  Datagram forged(std::uint64_t spi, const char* source, const Bytes& cookie = {}) const {
    Message m = request_;
    m.header.spi_i = spi;
    if (!cookie.empty()) m.payloads.insert(m.payloads.begin(), Payload::notification(notify::kCookie, cookie));
    Datagram d = tmpl_;
    d.remote.addr = ip(source);
    d.data = *serialize(m);
    return d;
  }
  // Right's answers to one datagram, parsed.
  std::vector<Message> deliver(const Datagram& d) {
    right->engine.receive(d);
    std::vector<Message> out;
    for (const Datagram& a : right->transport.sent) out.push_back(*parse(a.data));
    right->transport.sent.clear();
    return out;
  }
  // The answer is an IKE_SA_INIT response of a new IKE SA (SA payload, our SPI).
  static bool is_sa_answer(const std::vector<Message>& a) {
    return a.size() == 1 && a[0].find(PayloadType::kSa) != nullptr && a[0].header.spi_r != 0;
  }
  // The answer is a COOKIE notify and nothing else, with no SPI of ours; its data.
  static std::optional<Bytes> cookie_only(const std::vector<Message>& a) {
    if (a.size() != 1 || a[0].payloads.size() != 1 || a[0].header.spi_r != 0) return std::nullopt;
    const NotifyPayload* n = a[0].find_notify(notify::kCookie);
    if (n == nullptr) return std::nullopt;
    return n->data;
  }
  static EngineOptions loose() {  // every limit out of reach; each test lowers one
    EngineOptions o;
    o.cookie_threshold = o.cookie_threshold_ip = o.block_threshold = o.half_open_limit = 1000;
    return o;
  }

  Datagram tmpl_;
  Message request_;
};

TEST_F(DosTest, BelowTheThresholdNoCookieAboveItACookieOnlyAndNoState) {
  EngineOptions o = loose();
  o.cookie_threshold = 3;
  setup_dos(o);
  const char* sources[] = {"192.0.2.11", "192.0.2.12", "192.0.2.13"};
  for (std::uint64_t i = 0; i < 3; ++i) EXPECT_TRUE(is_sa_answer(deliver(forged(100 + i, sources[i]))));
  ASSERT_EQ(right->engine.list().size(), 3u);
  EXPECT_EQ(right->engine.dos_stats().half_open, 3u);
  // From now on every new request needs a COOKIE: answered with one, nothing kept.
  for (std::uint64_t i = 0; i < 200; ++i) {
    auto cookie = cookie_only(deliver(forged(1000 + i, i % 2 ? "192.0.2.14" : "192.0.2.11")));
    ASSERT_TRUE(cookie.has_value()) << "request " << i;
    EXPECT_EQ(cookie->size(), 33u);  // generation byte + HMAC-SHA-256
  }
  EXPECT_EQ(right->engine.list().size(), 3u);
  EXPECT_EQ(right->engine.dos_stats().cookies_sent, 200u);
  EXPECT_EQ(right->engine.dos_stats().half_open, 3u);
  EXPECT_TRUE(right->events.empty());
}

TEST_F(DosTest, TheRightCookieIsAcceptedATamperedOneIsNot) {
  EngineOptions o = loose();
  o.cookie_threshold = 1;
  setup_dos(o);
  EXPECT_TRUE(is_sa_answer(deliver(forged(100, "192.0.2.11"))));
  auto cookie = cookie_only(deliver(forged(101, "192.0.2.12")));
  ASSERT_TRUE(cookie.has_value());
  // The cookie is bound to the SPI and to the source address.
  EXPECT_TRUE(cookie_only(deliver(forged(102, "192.0.2.12", *cookie))).has_value());
  EXPECT_TRUE(cookie_only(deliver(forged(101, "192.0.2.13", *cookie))).has_value());
  Bytes tampered = *cookie;
  tampered.back() ^= 1;
  EXPECT_TRUE(cookie_only(deliver(forged(101, "192.0.2.12", tampered))).has_value());
  EXPECT_EQ(right->engine.dos_stats().bad_cookies, 3u);
  EXPECT_EQ(right->engine.list().size(), 1u);
  EXPECT_TRUE(is_sa_answer(deliver(forged(101, "192.0.2.12", *cookie))));
  EXPECT_EQ(right->engine.list().size(), 2u);
}

TEST_F(DosTest, OurInitiatorAnswersTheCookieAndComesUpUnderLoad) {
  EngineOptions o = loose();
  o.cookie_threshold = 2;
  setup_dos(o);
  EXPECT_TRUE(is_sa_answer(deliver(forged(100, "192.0.2.11"))));
  EXPECT_TRUE(is_sa_answer(deliver(forged(101, "192.0.2.12"))));
  left->transport.sent.push_back(Datagram{tmpl_.remote, tmpl_.local, tmpl_.data});  // left's first request again
  run();
  ASSERT_TRUE(left->has(EventKind::kUp)) << dump();
  ASSERT_TRUE(right->has(EventKind::kUp)) << dump();
  EXPECT_EQ(right->engine.dos_stats().cookies_sent, 1u);
}

TEST_F(DosTest, ACookieOutlivesOneSecretRotationButNotTwo) {
  EngineOptions o = loose();
  o.require_cookies = true;
  o.cookie_secret_lifetime = std::chrono::seconds(120);
  setup_dos(o);
  const auto t0 = std::chrono::steady_clock::time_point{} + std::chrono::hours(1);
  right->engine.tick(t0);
  auto a = cookie_only(deliver(forged(100, "192.0.2.11")));
  auto b = cookie_only(deliver(forged(101, "192.0.2.12")));
  ASSERT_TRUE(a && b);
  right->engine.tick(t0 + std::chrono::seconds(119));  // not yet
  auto c = cookie_only(deliver(forged(102, "192.0.2.13")));
  ASSERT_TRUE(c);
  EXPECT_EQ(c->front(), a->front());
  right->engine.tick(t0 + std::chrono::seconds(120));  // first rotation: a and b still good
  EXPECT_TRUE(is_sa_answer(deliver(forged(100, "192.0.2.11", *a))));
  right->engine.tick(t0 + std::chrono::seconds(240));  // second rotation: b is stale
  auto again = cookie_only(deliver(forged(101, "192.0.2.12", *b)));
  ASSERT_TRUE(again.has_value());
  EXPECT_NE(again->front(), b->front());
  EXPECT_EQ(right->engine.dos_stats().bad_cookies, 1u);
  EXPECT_EQ(right->engine.list().size(), 1u);
  EXPECT_TRUE(is_sa_answer(deliver(forged(101, "192.0.2.12", *again))));  // a fresh one works
}

TEST_F(DosTest, ASourceOverTheBlockThresholdIsDropped) {
  EngineOptions o = loose();
  o.cookie_threshold_ip = 2;
  o.block_threshold = 3;
  setup_dos(o);
  EXPECT_TRUE(is_sa_answer(deliver(forged(100, "192.0.2.11"))));
  EXPECT_TRUE(is_sa_answer(deliver(forged(101, "192.0.2.11"))));
  // Two half-open from .11: it needs a cookie, others do not.
  auto cookie = cookie_only(deliver(forged(102, "192.0.2.11")));
  ASSERT_TRUE(cookie.has_value());
  EXPECT_TRUE(is_sa_answer(deliver(forged(103, "192.0.2.12"))));
  EXPECT_TRUE(is_sa_answer(deliver(forged(102, "192.0.2.11", *cookie))));
  // Three: .11 is dropped, even with a valid cookie, without an answer.
  auto cookie2 = cookie_only(deliver(forged(104, "192.0.2.12")));
  EXPECT_FALSE(cookie2.has_value());  // .12 has one half-open: no cookie needed
  EXPECT_TRUE(deliver(forged(105, "192.0.2.11")).empty());
  EXPECT_TRUE(deliver(forged(102, "192.0.2.11", *cookie)).size() == 1);  // a retransmission of a kept SA is answered
  EXPECT_EQ(right->engine.dos_stats().blocked, 1u);
  EXPECT_EQ(right->engine.list().size(), 5u);
}

TEST_F(DosTest, OverTheHalfOpenLimitEverythingIsDropped) {
  EngineOptions o = loose();
  o.half_open_limit = 2;
  setup_dos(o);
  EXPECT_TRUE(is_sa_answer(deliver(forged(100, "192.0.2.11"))));
  EXPECT_TRUE(is_sa_answer(deliver(forged(101, "192.0.2.12"))));
  EXPECT_TRUE(deliver(forged(102, "192.0.2.13")).empty());
  EXPECT_TRUE(deliver(tmpl_).empty());
  EXPECT_EQ(right->engine.dos_stats().over_limit, 2u);
  EXPECT_EQ(right->engine.list().size(), 2u);
  // When the half-open ones time out, requests are admitted again.
  const auto t0 = std::chrono::steady_clock::time_point{} + std::chrono::hours(1);
  right->engine.tick(t0);
  right->engine.tick(t0 + std::chrono::seconds(30));
  EXPECT_EQ(right->engine.dos_stats().half_open, 0u);
  EXPECT_TRUE(is_sa_answer(deliver(forged(102, "192.0.2.13"))));
}

// ---------------------------------------------------------------------------
// CHILD_SA rekey (RFC 7296 §2.8), make-before-break

class RekeyTest : public EngineTest {
 protected:
  void SetUp() override {
    auto l = left_cfg();
    auto r = right_cfg();
    for (PeerConfig* c : {&l, &r})  // PFS on rekey, as the CNSA default suite asks
      c->esp_proposals.front().transforms.push_back(Transform::make(TransformType::kKe, transform_id::kGroupEcp384));
    setup(std::move(l), std::move(r));
    up();
    ASSERT_EQ(left->kernel.installed.size(), 1u);
    old_in = left->kernel.installed.begin()->first;
    old_out = left->kernel.installed.begin()->second.spi_out;
    reqid = left->kernel.installed.begin()->second.slot.reqid;
    right_reqid = right->kernel.installed.begin()->second.slot.reqid;
  }
  // Deliver exactly one datagram from `from` to `to`: the oldest, or the newest (UDP may reorder).
  void deliver(Side& from, Side& to, bool newest = false) {
    ASSERT_FALSE(from.transport.sent.empty());
    Datagram d = newest ? from.transport.sent.back() : from.transport.sent.front();
    if (newest)
      from.transport.sent.pop_back();
    else
      from.transport.sent.pop_front();
    to.engine.receive(as_received(d));
  }
  // Both sides hold exactly one CHILD_SA pair (two SAs each, one policy set), mirrored.
  void expect_one_pair() {
    EXPECT_EQ(left->kernel.installed.size(), 1u) << dump();
    EXPECT_EQ(right->kernel.installed.size(), 1u) << dump();
    EXPECT_EQ(left->kernel.sas.size(), 2u);
    EXPECT_EQ(right->kernel.sas.size(), 2u);
    EXPECT_TRUE(left->kernel.reserved.empty());
    EXPECT_TRUE(right->kernel.reserved.empty());
    EXPECT_EQ(left->kernel.policies.size(), 1u);
    EXPECT_EQ(right->kernel.policies.size(), 1u);
    expect_mirrored(left->kernel, right->kernel);
    ASSERT_EQ(left->engine.list().size(), 1u);
    EXPECT_EQ(left->engine.list()[0].children.size(), 1u);
    EXPECT_EQ(right->engine.list()[0].children.size(), 1u);
  }
  // Tick both sides on from `t` until the inbound SAs of superseded CHILD_SAs have gone.
  void settle(std::chrono::steady_clock::time_point& t) {
    for (int i = 0; i < 100 && (left->kernel.sas.size() > 2 || right->kernel.sas.size() > 2); ++i) {
      t += std::chrono::milliseconds(100);
      left->engine.tick(t);
      right->engine.tick(t);
      run();
    }
  }
  std::uint32_t old_in = 0, old_out = 0, reqid = 0, right_reqid = 0;
};

TEST_F(RekeyTest, NewSasUnderTheOldReqidInboundFirstOldOnesGoAfterTheDelete) {
  const SecretBytes old_key = left->kernel.installed.at(old_in).out.encr.clone();
  left->events.clear();
  right->events.clear();
  ASSERT_TRUE(left->engine.rekey_child("right", old_in).ok());
  // Left's CREATE_CHILD_SA with REKEY_SA reaches right: right installs only its new inbound SA.
  deliver(*left, *right);
  ASSERT_EQ(right->kernel.sa_log.size(), 1u) << dump();
  EXPECT_EQ(right->kernel.sa_log[0].first, SaDirection::kIn);
  EXPECT_EQ(right->kernel.sending_spi(right_reqid), old_in) << "right must keep sending with the old SA";
  EXPECT_EQ(right->kernel.policies.size(), 1u);
  // The answer reaches left: its new inbound, then outbound SA; it sends with the new one and deletes the old.
  deliver(*right, *left);
  ASSERT_EQ(left->kernel.sa_log.size(), 2u) << dump();
  EXPECT_EQ(left->kernel.sa_log[0].first, SaDirection::kIn);
  EXPECT_EQ(left->kernel.sa_log[1].first, SaDirection::kOut);
  const std::uint32_t new_out = left->kernel.sa_log[1].second;
  const std::uint32_t new_in = left->kernel.sa_log[0].second;
  EXPECT_NE(new_out, old_out);
  EXPECT_EQ(left->kernel.sending_spi(reqid), new_out);
  EXPECT_EQ(left->kernel.sas.count(old_in), 1u) << "the old inbound SA stays until the DELETE is answered";
  ASSERT_EQ(left->kernel.installed.at(new_in).slot.reqid, reqid) << "a rekey keeps the reqid (its policies)";
  EXPECT_EQ(left->kernel.installed.at(new_in).suite.ke, transform_id::kGroupEcp384);
  EXPECT_FALSE(same_key(left->kernel.installed.at(new_in).out.encr, old_key));
  // Left's DELETE of the old CHILD_SA reaches right: now right sends with the new SA; old SAs go.
  deliver(*left, *right);
  EXPECT_EQ(right->kernel.sending_spi(right_reqid), new_in);
  // Both old SAs linger for packets in flight: one that took the old outbound
  // SA just before the switch would fail (EINVAL) if it went under it.
  EXPECT_EQ(right->kernel.sas.count(old_in), 1u) << "right's old outbound SA lingers for packets in flight";
  EXPECT_EQ(right->kernel.sas.count(old_out), 1u) << "right's old inbound SA lingers for packets in flight";
  run();
  EXPECT_EQ(left->kernel.sending_spi(reqid), new_out) << "the kernel sends with the newest outbound SA";
  EXPECT_EQ(left->kernel.sas.count(old_out), 1u) << "left's old outbound SA lingers for packets in flight";
  EXPECT_EQ(left->kernel.sas.count(old_in), 1u) << "left's old inbound SA lingers for packets in flight";
  const auto t0 = std::chrono::steady_clock::now();
  for (Side* s : {left.get(), right.get()}) {
    s->engine.tick(t0);
    s->engine.tick(t0 + kRekeyedInboundLinger - std::chrono::milliseconds(1));
  }
  EXPECT_EQ(left->kernel.sas.count(old_in), 1u);
  EXPECT_EQ(left->kernel.sas.count(old_out), 1u);
  EXPECT_EQ(right->kernel.sas.count(old_out), 1u);
  EXPECT_EQ(right->kernel.sas.count(old_in), 1u);
  for (Side* s : {left.get(), right.get()}) s->engine.tick(t0 + kRekeyedInboundLinger);
  EXPECT_EQ(left->kernel.sas.count(old_in), 0u);
  EXPECT_EQ(left->kernel.sas.count(old_out), 0u);
  EXPECT_EQ(right->kernel.sas.count(old_out), 0u);
  EXPECT_EQ(right->kernel.sas.count(old_in), 0u);
  expect_one_pair();
  EXPECT_EQ(left->kernel.installed.begin()->first, new_in);
  EXPECT_TRUE(left->has(EventKind::kChildRekeyed)) << dump();
  EXPECT_TRUE(right->has(EventKind::kChildRekeyed)) << dump();
  EXPECT_FALSE(left->has(EventKind::kChildDown)) << dump();
  EXPECT_FALSE(right->has(EventKind::kChildDown)) << dump();
  EXPECT_FALSE(left->has(EventKind::kChildFailed)) << dump();
  EXPECT_TRUE(left->kernel.removed.empty()) << "remove() would have taken the reqid's policies";
}

TEST_F(RekeyTest, ResponderSendsWithTheNewSaAfterTheGraceWhenNoDeleteComes) {
  ASSERT_TRUE(right->engine.rekey_child("left", right->kernel.installed.begin()->first).ok());
  deliver(*right, *left);  // left is the responder of this rekey
  const std::uint32_t before = left->kernel.sending_spi(reqid);
  EXPECT_EQ(before, old_out);
  deliver(*left, *right);
  right->transport.sent.clear();  // right's DELETE of the old CHILD_SA is lost
  const auto t0 = std::chrono::steady_clock::now();
  left->engine.tick(t0);
  left->engine.tick(t0 + kRekeyOutboundGrace - std::chrono::seconds(1));
  EXPECT_EQ(left->kernel.sending_spi(reqid), old_out);
  left->engine.tick(t0 + kRekeyOutboundGrace);
  std::uint32_t new_out = 0;
  for (const auto& [spi_in, spec] : left->kernel.installed)
    if (spi_in != old_in) new_out = spec.spi_out;
  ASSERT_NE(new_out, 0u) << dump();
  EXPECT_EQ(left->kernel.sending_spi(reqid), new_out);
}

TEST_F(RekeyTest, RekeyCrossingThePeersDeleteIsRefusedAndLeavesNothingBehind) {
  ASSERT_TRUE(left->engine.rekey_child("right", old_in).ok());
  ASSERT_TRUE(right->engine.delete_child("left", old_out).ok());
  deliver(*right, *left);  // right's DELETE first: left drops the CHILD_SA
  deliver(*left, *right);  // then left's rekey request: right is closing it (RFC 7296 §2.25.1)
  EXPECT_TRUE(right->kernel.sa_log.empty()) << "right must not install a rekeyed SA for a CHILD_SA it closes";
  run();
  EXPECT_FALSE(left->has(EventKind::kChildRekeyed)) << dump();
  EXPECT_FALSE(right->has(EventKind::kChildRekeyed)) << dump();
  for (Side* s : {left.get(), right.get()}) {
    EXPECT_TRUE(s->kernel.installed.empty()) << dump();
    EXPECT_TRUE(s->kernel.sas.empty()) << dump();
    EXPECT_TRUE(s->kernel.reserved.empty()) << "the rekey's reserved SPI must be given back";
    EXPECT_TRUE(s->kernel.policies.empty());
  }
}

TEST_F(RekeyTest, RekeyOfAChildThePeerNoLongerHasIsChildSaNotFound) {
  ASSERT_TRUE(left->engine.rekey_child("right", old_in).ok());
  ASSERT_TRUE(right->engine.delete_child("left", old_out).ok());
  deliver(*right, *left);        // right's DELETE: left drops the CHILD_SA and answers
  deliver(*left, *right, true);  // left's answer overtakes its rekey request: right's DELETE is done
  EXPECT_TRUE(right->kernel.installed.empty()) << dump();
  deliver(*left, *right);  // the rekey request of a CHILD_SA right no longer has
  const Event* e = right->find(EventKind::kChildFailed);
  ASSERT_NE(e, nullptr) << dump();
  EXPECT_NE(e->reason.find("we do not have"), std::string::npos) << e->reason;
  run();
  for (Side* s : {left.get(), right.get()}) {
    EXPECT_TRUE(s->kernel.installed.empty()) << dump();
    EXPECT_TRUE(s->kernel.sas.empty()) << dump();
    EXPECT_TRUE(s->kernel.reserved.empty()) << "the rekey's reserved SPI must be given back";
    EXPECT_TRUE(s->kernel.policies.empty());
  }
}

// Every SA a side sends with is one the other side can read.
#define EXPECT_EACH_READS_THE_OTHER(step)                                                             \
  do {                                                                                                \
    const std::uint32_t l_out = left->kernel.sending_spi(reqid), r_out = right->kernel.sending_spi(right_reqid); \
    EXPECT_TRUE(right->kernel.sas.count(l_out) && right->kernel.sas.at(l_out).dir == SaDirection::kIn)   \
        << "right cannot read left's outbound SA " << l_out << " at " << (step) << dump();             \
    EXPECT_TRUE(left->kernel.sas.count(r_out) && left->kernel.sas.at(r_out).dir == SaDirection::kIn)     \
        << "left cannot read right's outbound SA " << r_out << " at " << (step) << dump();             \
  } while (0)

// RFC 7296 §2.8.1: both sides rekey the same CHILD_SA at once. Each request is
// answered as usual, the exchange with the lowest nonce made the redundant
// CHILD_SA and its initiator deletes it. Twenty rounds, so both outcomes occur
// (the nonces are random). `reorder`: the first DELETE after the answers
// overtakes the other side's answer.
class CollisionTest : public RekeyTest, public ::testing::WithParamInterface<bool> {};

TEST_P(CollisionTest, NonceRuleLeavesExactlyOnePairAndTrafficFlows) {
  const bool reorder = GetParam();
  auto t = std::chrono::steady_clock::now();
  int left_won = 0, right_won = 0;
  for (int round = 0; round < 20; ++round) {
    SCOPED_TRACE("round " + std::to_string(round));
    ASSERT_EQ(left->kernel.installed.size(), 1u) << dump();
    const std::uint32_t l_old = left->kernel.installed.begin()->first;
    const std::uint32_t r_old = right->kernel.installed.begin()->first;
    left->events.clear();
    right->events.clear();
    ASSERT_TRUE(left->engine.rekey_child("right", l_old).ok());
    ASSERT_TRUE(right->engine.rekey_child("left", r_old).ok());
    deliver(*left, *right);  // left's request: right answers it although its own is out
    EXPECT_EACH_READS_THE_OTHER("left's request at right");
    deliver(*right, *left);  // right's request: left answers it
    EXPECT_EACH_READS_THE_OTHER("right's request at left");
    deliver(*right, *left);  // right's answer: left judges the collision and sends a DELETE
    EXPECT_EACH_READS_THE_OTHER("right's answer at left");
    ASSERT_EQ(left->transport.sent.size(), 2u) << "left's answer to right, then its DELETE" << dump();
    deliver(*left, *right, reorder);
    EXPECT_EACH_READS_THE_OTHER("left's first message at right");
    for (int i = 0; i < 20 && (!left->transport.sent.empty() || !right->transport.sent.empty()); ++i) {
      if (!left->transport.sent.empty()) deliver(*left, *right);
      EXPECT_EACH_READS_THE_OTHER("step " + std::to_string(i) + " at right");
      if (!right->transport.sent.empty()) deliver(*right, *left);
      EXPECT_EACH_READS_THE_OTHER("step " + std::to_string(i) + " at left");
    }
    settle(t);
    EXPECT_EACH_READS_THE_OTHER("the end");
    expect_one_pair();
    EXPECT_NE(left->kernel.installed.begin()->first, l_old);
    EXPECT_NE(right->kernel.installed.begin()->first, r_old);
    for (Side* s : {left.get(), right.get()}) {
      EXPECT_FALSE(s->has(EventKind::kChildDown)) << dump();
      EXPECT_FALSE(s->has(EventKind::kChildFailed)) << dump();
      EXPECT_TRUE(s->kernel.removed.empty()) << "remove() would have taken the reqid's policies";
    }
    // One kChildRekeyed per side, naming the survivor.
    for (Side* s : {left.get(), right.get()}) {
      ASSERT_EQ(std::count_if(s->events.begin(), s->events.end(),
                              [](const Event& e) { return e.kind == EventKind::kChildRekeyed; }),
                1)
          << dump();
      EXPECT_EQ(s->find(EventKind::kChildRekeyed)->child_spi_in, s->kernel.installed.begin()->first) << dump();
    }
    // Left reserved the SPI of its own rekey, then the one for right's request.
    ASSERT_GE(left->kernel.reserve_log.size(), 2u);
    const std::uint32_t left_made = left->kernel.reserve_log[left->kernel.reserve_log.size() - 2].spi_in;
    (left->kernel.installed.begin()->first == left_made ? left_won : right_won)++;
  }
  // Random nonces: each side won some of the 20 rounds (all alike: p = 2^-19).
  EXPECT_GT(left_won, 0);
  EXPECT_GT(right_won, 0);
}

INSTANTIATE_TEST_SUITE_P(RekeyCollision, CollisionTest, ::testing::Bool(),
                         [](const auto& info) { return info.param ? "DeleteOvertakesTheAnswer" : "InOrder"; });

TEST_F(RekeyTest, TimedRekeysRepeatWithoutLosingThePair) {
  left.reset();
  right.reset();
  auto l = left_cfg();
  l.child_rekey_time = std::chrono::seconds(10);
  setup(std::move(l), right_cfg());
  up();
  const std::uint32_t first_reqid = left->kernel.installed.begin()->second.slot.reqid;
  auto t = std::chrono::steady_clock::now();
  std::set<std::uint32_t> seen_in{left->kernel.installed.begin()->first};
  for (int i = 0; i < 600; ++i) {  // 60 s in 100 ms steps
    t += std::chrono::milliseconds(100);
    left->engine.tick(t);
    right->engine.tick(t);
    run();
    ASSERT_EQ(left->engine.list()[0].children.size(), 1u) << "step " << i << dump();
    // One CHILD_SA, and at most the SAs of the one it replaced, lingering.
    ASSERT_LE(left->kernel.installed.size(), 2u) << "step " << i << dump();
    ASSERT_LE(left->kernel.sas.size(), 4u) << "step " << i << dump();
    ASSERT_EQ(right->kernel.policies.size(), 1u) << "step " << i;
    for (const auto& kv : left->kernel.installed) seen_in.insert(kv.first);
  }
  EXPECT_GE(seen_in.size(), 6u) << "one rekey per 9-10 s over 60 s";
  EXPECT_LE(seen_in.size(), 8u);
  settle(t);
  expect_one_pair();
  EXPECT_EQ(left->kernel.installed.begin()->second.slot.reqid, first_reqid);
}

// Dead peer detection (RFC 7296 §2.4): PeerConfig::dpd_delay / dpd_action.
class DpdTest : public EngineTest {
 protected:
  void start(PeerConfig::DeadPeerAction action) {
    auto l = left_cfg();
    l.dpd_delay = std::chrono::seconds(30);
    l.dpd_action = action;
    l.retransmit.waits = {std::chrono::seconds(1), std::chrono::seconds(2), std::chrono::seconds(4)};
    setup(std::move(l), right_cfg());
    up();
    t = std::chrono::steady_clock::now();
    left->engine.tick(t);  // the quiet period starts
  }
  // Advance left's clock by `d` in 1 s ticks; returns how many datagrams left sent meanwhile (kept queued).
  std::size_t advance(std::chrono::seconds d) {
    const std::size_t before = left->transport.sent.size();
    for (auto end = t + d; t < end;) {
      t += std::chrono::seconds(1);
      left->engine.tick(t);
    }
    return left->transport.sent.size() - before;
  }
  std::chrono::steady_clock::time_point t;
};

TEST_F(DpdTest, AQuietPeerIsAskedAndStaysUpWhenItAnswers) {
  start(PeerConfig::DeadPeerAction::kNone);
  EXPECT_EQ(advance(std::chrono::seconds(29)), 0u) << "no check before dpd_delay";
  // The first check (30 s) finds the CHILD_SA's counters new (taken as life); the next one (60 s) asks.
  EXPECT_EQ(advance(std::chrono::seconds(30)), 0u);
  EXPECT_EQ(advance(std::chrono::seconds(1)), 1u) << "one empty INFORMATIONAL after 30 s of silence";
  auto m = parse(left->transport.sent.front().data);
  ASSERT_TRUE(m.ok());
  EXPECT_EQ(m->header.exchange, static_cast<std::uint8_t>(ExchangeType::kInformational));
  run();
  EXPECT_EQ(advance(std::chrono::seconds(29)), 0u) << "the answer starts a new quiet period";
  EXPECT_FALSE(left->has(EventKind::kDown)) << dump();
  EXPECT_EQ(left->kernel.installed.size(), 1u);
}

TEST_F(DpdTest, EspFromThePeerCountsAsLife) {
  start(PeerConfig::DeadPeerAction::kNone);
  for (int i = 0; i < 10; ++i) {
    left->kernel.bytes_in += 1500;  // ESP arrived on the CHILD_SA
    EXPECT_EQ(advance(std::chrono::seconds(30)), 0u) << "interval " << i;
  }
  // Now silence on ESP too: the next check asks.
  EXPECT_EQ(advance(std::chrono::seconds(29)), 0u);
  EXPECT_EQ(advance(std::chrono::seconds(1)), 1u);
}

TEST_F(DpdTest, ADeadPeerIsDeclaredDownAndItsChildSasRemoved) {
  start(PeerConfig::DeadPeerAction::kNone);
  advance(std::chrono::seconds(60));
  ASSERT_EQ(left->transport.sent.size(), 1u);
  left->transport.sent.clear();  // the peer is gone
  advance(std::chrono::seconds(10));  // 1 + 2 + 4 s of retransmissions, then give up
  const Event* e = left->find(EventKind::kDown);
  ASSERT_NE(e, nullptr) << dump();
  EXPECT_NE(e->reason.find("considered dead"), std::string::npos) << e->reason;
  EXPECT_TRUE(left->kernel.installed.empty());
  EXPECT_TRUE(left->kernel.sas.empty());
  EXPECT_TRUE(left->kernel.policies.empty());
  EXPECT_TRUE(left->kernel.retired.empty()) << "kNone: policies removed, not kept";
  left->transport.sent.clear();
  EXPECT_EQ(advance(std::chrono::seconds(120)), 0u) << "kNone: no new IKE SA";
  EXPECT_TRUE(left->engine.list().empty());
}

TEST_F(DpdTest, RestartBringsThePeerBackAndRetriesUntilItAnswers) {
  start(PeerConfig::DeadPeerAction::kRestart);
  advance(std::chrono::seconds(60));
  left->transport.sent.clear();  // the peer is gone
  advance(std::chrono::seconds(8));
  ASSERT_NE(left->find(EventKind::kDown), nullptr) << dump();
  EXPECT_NE(left->find(EventKind::kDown)->reason.find("restarting"), std::string::npos);
  // Its CHILD_SA retired: SAs gone, policies kept for the restart (XfrmChildSaKernel.Retire*).
  EXPECT_EQ(left->kernel.retired.size(), 1u);
  // At once a new IKE_SA_INIT; unanswered, it fails and the next attempt follows kRestartRetry later.
  ASSERT_GE(left->transport.sent.size(), 1u);
  auto first = parse(left->transport.sent.back().data);
  ASSERT_TRUE(first.ok());
  EXPECT_EQ(first->header.exchange, static_cast<std::uint8_t>(ExchangeType::kIkeSaInit));
  left->transport.sent.clear();
  advance(std::chrono::seconds(10));  // the attempt gives up
  ASSERT_NE(left->find(EventKind::kFailed), nullptr) << dump();
  left->transport.sent.clear();
  EXPECT_EQ(advance(std::chrono::seconds(kRestartRetry.count() - 5)), 0u) << "no attempt before kRestartRetry";
  EXPECT_GE(advance(std::chrono::seconds(5)), 1u) << "the next attempt";
  // The peer is back (right still holds the old IKE SA: INITIAL_CONTACT replaces it).
  left->events.clear();
  run();
  EXPECT_TRUE(left->has(EventKind::kUp)) << dump();
  EXPECT_EQ(left->kernel.installed.size(), 1u);
  right->engine.tick(t);
  ASSERT_EQ(right->engine.list().size(), 1u) << "the peer's old IKE SA went with INITIAL_CONTACT";
  expect_mirrored(left->kernel, right->kernel);
  left->transport.sent.clear();
  EXPECT_EQ(advance(std::chrono::seconds(29)), 0u) << "up again: no further attempts";
}

// A restart attempt the peer refuses at once (its configuration not loaded
// yet: NO_PROPOSAL_CHOSEN, handled in receive()) is retried like one that
// timed out.
TEST_F(DpdTest, RestartRefusedByThePeerIsRetried) {
  start(PeerConfig::DeadPeerAction::kRestart);
  advance(std::chrono::seconds(60));
  left->transport.sent.clear();  // the peer is gone
  advance(std::chrono::seconds(8));
  ASSERT_NE(left->find(EventKind::kDown), nullptr) << dump();
  ASSERT_GE(left->transport.sent.size(), 1u) << "the first restart attempt";
  // The peer is back but accepts none of our IKE proposals yet.
  auto refusing = std::make_unique<Side>();
  auto rc = right_cfg();
  rc.ike_proposals = {ike_proposal(true, transform_id::kGroupEcp256)};
  ASSERT_TRUE(refusing->engine.add_peer(std::move(rc)).ok());
  refusing->engine.receive(as_received(left->transport.sent.back()));
  left->transport.sent.clear();
  ASSERT_EQ(refusing->transport.sent.size(), 1u);
  left->events.clear();
  left->engine.receive(as_received(refusing->transport.sent.front()));
  ASSERT_NE(left->find(EventKind::kFailed), nullptr) << dump();
  EXPECT_NE(left->find(EventKind::kFailed)->reason.find("no proposal chosen"), std::string::npos) << dump();
  EXPECT_EQ(advance(std::chrono::seconds(kRestartRetry.count() - 2)), 0u) << "no attempt before kRestartRetry";
  EXPECT_GE(advance(std::chrono::seconds(3)), 1u) << "the next attempt after a refusal";
  left->events.clear();
  run();  // right (the old peer's configuration) answers this one
  EXPECT_TRUE(left->has(EventKind::kUp)) << dump();
}

// IKE SA rekey (RFC 7296 §1.3.2, §2.18): a CREATE_CHILD_SA with IKE proposals
// makes a new IKE SA; the CHILD_SAs move to it untouched; the rekey's
// initiator deletes the old IKE SA, which takes no CHILD_SA along.
class IkeRekeyTest : public RekeyTest {
 protected:
  struct Spis {
    std::uint64_t i = 0, r = 0;
    bool operator==(const Spis&) const = default;
  };
  static Spis spis_of(const IkeSaStatus& s) { return {s.spi_i, s.spi_r}; }
  // The one IKE SA a side lists in `state`.
  static const IkeSaStatus* listed(Side& s, IkeState state, std::vector<IkeSaStatus>& keep) {
    keep = s.engine.list();
    const IkeSaStatus* found = nullptr;
    for (const IkeSaStatus& x : keep)
      if (x.state == state) {
        if (found) return nullptr;
        found = &x;
      }
    return found;
  }
  // After a rekey: each side lists exactly one IKE SA, established, with the
  // same new SPIs, holding the one CHILD_SA; the kernel was not touched.
  void expect_rekeyed(const Spis& old) {
    for (Side* s : {left.get(), right.get()}) {
      auto l = s->engine.list();
      ASSERT_EQ(l.size(), 1u) << "the old IKE SA must be gone" << dump();
      EXPECT_EQ(l[0].state, IkeState::kEstablished);
      EXPECT_NE(l[0].spi_i, old.i);
      EXPECT_NE(l[0].spi_r, old.r);
      ASSERT_EQ(l[0].children.size(), 1u) << dump();
      EXPECT_FALSE(s->has(EventKind::kDown)) << dump();
      EXPECT_FALSE(s->has(EventKind::kChildDown)) << dump();
      EXPECT_FALSE(s->has(EventKind::kFailed)) << dump();
      EXPECT_TRUE(s->kernel.removed.empty()) << "no CHILD_SA may be removed";
      EXPECT_TRUE(s->kernel.sa_log.empty()) << "no kernel SA may be touched";
      const Event* e = s->find(EventKind::kIkeRekeyed);
      ASSERT_NE(e, nullptr) << dump();
      EXPECT_EQ(e->old_spi_i, old.i);
      EXPECT_EQ(e->old_spi_r, old.r);
      EXPECT_EQ(e->spi_i, l[0].spi_i);
      EXPECT_EQ(e->spi_r, l[0].spi_r);
    }
    EXPECT_EQ(spis_of(left->engine.list()[0]), spis_of(right->engine.list()[0]));
    expect_one_pair();
  }
  // The moved CHILD_SA can be rekeyed over the new IKE SA, and a liveness check works there.
  void expect_new_ike_sa_works() {
    const std::uint32_t in = left->kernel.installed.begin()->first;
    left->events.clear();
    right->events.clear();
    ASSERT_TRUE(left->engine.rekey_child("right", in).ok());
    run();
    auto t = std::chrono::steady_clock::now();
    settle(t);
    expect_one_pair();
    EXPECT_NE(left->kernel.installed.begin()->first, in);
    EXPECT_TRUE(left->has(EventKind::kChildRekeyed)) << dump();
    EXPECT_TRUE(right->has(EventKind::kChildRekeyed)) << dump();
    ASSERT_TRUE(right->engine.ping("left").ok());
    ASSERT_EQ(right->transport.sent.size(), 1u);
    run();
    EXPECT_FALSE(right->engine.list()[0].state != IkeState::kEstablished);
    // Retransmission on the new IKE SA: a lost request goes again on tick and is answered.
    ASSERT_TRUE(left->engine.ping("right").ok());
    ASSERT_EQ(left->transport.sent.size(), 1u);
    const Bytes lost = left->transport.sent.front().data;
    left->transport.sent.clear();
    auto t2 = std::chrono::steady_clock::now() + std::chrono::hours(1);
    left->engine.tick(t2);
    left->engine.tick(t2 + std::chrono::seconds(1));
    ASSERT_EQ(left->transport.sent.size(), 1u) << "the lost request is retransmitted";
    EXPECT_EQ(left->transport.sent.front().data, lost);
    run();
    left->engine.tick(t2 + std::chrono::seconds(40));  // past the whole schedule: answered, so nothing gives up
    EXPECT_TRUE(left->transport.sent.empty());
    EXPECT_EQ(left->engine.list()[0].state, IkeState::kEstablished);
    EXPECT_FALSE(left->has(EventKind::kDown) || right->has(EventKind::kDown)) << dump();
    EXPECT_FALSE(left->has(EventKind::kFailed)) << dump();
  }
  // `a` (its name for the other side: `peer`) rekeys the IKE SA, one datagram at a time.
  void rekey_by(Side& a, const char* peer, Side& b) {
    const Spis old = spis_of(a.engine.list()[0]);
    left->events.clear();
    right->events.clear();
    left->kernel.sa_log.clear();
    right->kernel.sa_log.clear();
    ASSERT_TRUE(a.engine.rekey_ike(peer).ok());
    ASSERT_EQ(a.transport.sent.size(), 1u);
    deliver(a, b);  // b answers: its new IKE SA holds the CHILD_SA, the old one waits for a's DELETE
    std::vector<IkeSaStatus> keep;
    const IkeSaStatus* b_old = listed(b, IkeState::kRekeyed, keep);
    ASSERT_NE(b_old, nullptr) << dump();
    EXPECT_EQ(spis_of(*b_old), old);
    EXPECT_TRUE(b_old->children.empty());
    const IkeSaStatus* b_new = listed(b, IkeState::kEstablished, keep);
    ASSERT_NE(b_new, nullptr) << dump();
    EXPECT_EQ(b_new->children.size(), 1u);
    EXPECT_EQ(b_new->role, IkeRole::kResponder) << "the rekey's initiator is the new IKE SA's initiator";
    ASSERT_EQ(b.transport.sent.size(), 1u);
    deliver(b, a);  // a: new IKE SA, then the DELETE of the old one, on the old one
    const IkeSaStatus* a_new = listed(a, IkeState::kEstablished, keep);
    ASSERT_NE(a_new, nullptr) << dump();
    EXPECT_EQ(a_new->role, IkeRole::kInitiator);
    EXPECT_EQ(a_new->children.size(), 1u);
    const Spis fresh = spis_of(*a_new);
    ASSERT_EQ(a.transport.sent.size(), 1u);
    auto del = parse(a.transport.sent.front().data);
    ASSERT_TRUE(del.ok());
    EXPECT_EQ(del->header.spi_i, old.i) << "the DELETE goes on the old IKE SA";
    EXPECT_EQ(static_cast<ExchangeType>(del->header.exchange), ExchangeType::kInformational);
    run();
    expect_rekeyed(old);
    EXPECT_EQ(spis_of(a.engine.list()[0]), fresh);
    // The new IKE SA's message IDs start at 0 (RFC 7296 §2.18).
    ASSERT_TRUE(b.engine.ping(peer == std::string("right") ? "left" : "right").ok());
    ASSERT_EQ(b.transport.sent.size(), 1u);
    auto ping = parse(b.transport.sent.front().data);
    ASSERT_TRUE(ping.ok());
    EXPECT_EQ(ping->header.message_id, 0u);
    EXPECT_EQ(ping->header.spi_i, fresh.i);
    run();
    ASSERT_TRUE(a.engine.ping(peer).ok());
    auto ping2 = parse(a.transport.sent.front().data);
    ASSERT_TRUE(ping2.ok());
    EXPECT_EQ(ping2->header.message_id, 0u);
    run();
  }
};

TEST_F(IkeRekeyTest, InitiatorOfTheIkeSaRekeysItChildrenMoveAndTheOldOneGoes) {
  rekey_by(*left, "right", *right);
  expect_new_ike_sa_works();
}

TEST_F(IkeRekeyTest, ResponderOfTheIkeSaRekeysItChildrenMoveAndTheOldOneGoes) {
  rekey_by(*right, "left", *left);
  expect_new_ike_sa_works();
  // And again, the other way round, on the rekeyed IKE SA.
  left->kernel.sa_log.clear();
  right->kernel.sa_log.clear();
  rekey_by(*left, "right", *right);
}

TEST_F(IkeRekeyTest, LostDeleteOfTheOldIkeSaLeavesTheChildren) {
  const Spis old = spis_of(left->engine.list()[0]);
  left->events.clear();
  right->events.clear();
  left->kernel.sa_log.clear();
  right->kernel.sa_log.clear();
  ASSERT_TRUE(left->engine.rekey_ike("right").ok());
  deliver(*left, *right);
  deliver(*right, *left);
  left->transport.sent.clear();  // left's DELETE of the old IKE SA is lost, and so are its retransmissions
  auto t = std::chrono::steady_clock::now();
  for (int i = 0; i < 400 && (left->engine.list().size() > 1 || right->engine.list().size() > 1); ++i) {
    t += std::chrono::milliseconds(500);
    left->engine.tick(t);
    right->engine.tick(t);
    left->transport.sent.clear();
  }
  expect_rekeyed(old);
  expect_new_ike_sa_works();
}

TEST_F(IkeRekeyTest, TemporaryFailureWhileThePeerIsBusyIsRetried) {
  const Spis old = spis_of(left->engine.list()[0]);
  left->events.clear();
  right->events.clear();
  left->kernel.sa_log.clear();
  right->kernel.sa_log.clear();
  ASSERT_TRUE(right->engine.ping("left").ok());  // right has a request of its own out
  ASSERT_TRUE(left->engine.rekey_ike("right").ok());
  deliver(*left, *right);  // right is busy: TEMPORARY_FAILURE
  ASSERT_EQ(right->transport.sent.size(), 2u);
  EXPECT_EQ(right->engine.list().size(), 1u) << "no new IKE SA while busy";
  run();
  EXPECT_EQ(left->engine.list().size(), 1u);
  EXPECT_EQ(spis_of(left->engine.list()[0]), old);
  EXPECT_FALSE(left->has(EventKind::kIkeRekeyed)) << dump();
  EXPECT_FALSE(left->has(EventKind::kIkeRekeyFailed)) << "TEMPORARY_FAILURE is no failure" << dump();
  // The retry comes 0.5-2 s later.
  auto t = std::chrono::steady_clock::now();
  left->engine.tick(t);
  EXPECT_TRUE(left->transport.sent.empty());
  for (int i = 0; i < 25 && !left->has(EventKind::kIkeRekeyed); ++i) {
    t += std::chrono::milliseconds(100);
    left->engine.tick(t);
    right->engine.tick(t);
    run();
  }
  expect_rekeyed(old);
}

TEST_F(IkeRekeyTest, BothSidesRekeyAtOnceAndExactlyOneNewIkeSaSurvives) {
  for (int round = 0; round < 5; ++round) {
    SCOPED_TRACE("round " + std::to_string(round));
    const Spis old = spis_of(left->engine.list()[0]);
    left->events.clear();
    right->events.clear();
    left->kernel.sa_log.clear();
    right->kernel.sa_log.clear();
    ASSERT_TRUE(left->engine.rekey_ike("right").ok());
    ASSERT_TRUE(right->engine.rekey_ike("left").ok());
    run();  // the requests cross: each answers TEMPORARY_FAILURE, both retry after a random 0.5-2 s
    auto t = std::chrono::steady_clock::now();
    for (int i = 0; i < 300 && !(left->has(EventKind::kIkeRekeyed) && left->engine.list().size() == 1 &&
                                 right->engine.list().size() == 1);
         ++i) {
      t += std::chrono::milliseconds(100);
      left->engine.tick(t);
      right->engine.tick(t);
      run();
    }
    expect_rekeyed(old);
    for (Side* s : {left.get(), right.get()})
      EXPECT_EQ(std::count_if(s->events.begin(), s->events.end(),
                              [](const Event& e) { return e.kind == EventKind::kIkeRekeyed; }),
                1)
          << dump();
  }
  expect_new_ike_sa_works();
}

// Our IKE rekey waits while a CHILD_SA rekey is unfinished here (left answered
// right's rekey; right's DELETE of the old CHILD_SA must find it on this IKE SA).
TEST_F(IkeRekeyTest, OurIkeRekeyWaitsForAChildRekeyToFinish) {
  const Spis old = spis_of(left->engine.list()[0]);
  ASSERT_TRUE(right->engine.rekey_child("left", right->kernel.installed.begin()->first).ok());
  deliver(*right, *left);  // left answers: its new CHILD_SA waits for right's DELETE of the old one
  ASSERT_EQ(left->transport.sent.size(), 1u);
  left->events.clear();
  right->events.clear();
  ASSERT_TRUE(left->engine.rekey_ike("right").ok());
  EXPECT_EQ(left->transport.sent.size(), 1u) << "no IKE rekey request while the CHILD_SA rekey is unfinished";
  run();  // the CHILD_SA rekey ends
  auto t = std::chrono::steady_clock::now();
  settle(t);
  left->kernel.sa_log.clear();
  right->kernel.sa_log.clear();
  for (int i = 0; i < 30 && !left->has(EventKind::kIkeRekeyed); ++i) {
    t += std::chrono::milliseconds(100);
    left->engine.tick(t);
    right->engine.tick(t);
    run();
  }
  expect_rekeyed(old);
}

TEST_F(IkeRekeyTest, TimedIkeAndChildRekeysOnBothSidesKeepOnePair) {
  left.reset();
  right.reset();
  auto l = left_cfg();
  auto r = right_cfg();
  l.ike_rekey_time = std::chrono::seconds(10);
  r.ike_rekey_time = std::chrono::seconds(13);
  l.child_rekey_time = std::chrono::seconds(7);
  r.child_rekey_time = std::chrono::seconds(9);
  setup(std::move(l), std::move(r));
  up();
  auto t = std::chrono::steady_clock::now();
  std::set<std::uint64_t> ike_spis;
  for (int i = 0; i < 900; ++i) {  // 90 s in 100 ms steps
    t += std::chrono::milliseconds(100);
    left->engine.tick(t);
    right->engine.tick(t);
    run();
    ASSERT_LE(left->engine.list().size(), 2u) << "step " << i << dump();
    ASSERT_EQ(left->kernel.policies.size(), 1u) << "step " << i << dump();
    ASSERT_EQ(right->kernel.policies.size(), 1u) << "step " << i << dump();
    ASSERT_LE(left->kernel.installed.size(), 3u) << "step " << i << dump();
    for (const IkeSaStatus& s : left->engine.list()) ike_spis.insert(s.spi_i);
  }
  settle(t);
  for (int i = 0; i < 400 && (left->engine.list().size() > 1 || right->engine.list().size() > 1); ++i) {
    t += std::chrono::milliseconds(100);
    left->engine.tick(t);
    right->engine.tick(t);
    run();
  }
  EXPECT_GE(ike_spis.size(), 7u) << "an IKE rekey every 9-13 s over 90 s";
  for (Side* s : {left.get(), right.get()}) {
    EXPECT_FALSE(s->has(EventKind::kDown)) << dump();
    EXPECT_FALSE(s->has(EventKind::kChildDown)) << dump();
    EXPECT_FALSE(s->has(EventKind::kChildFailed)) << dump();
    EXPECT_FALSE(s->has(EventKind::kIkeRekeyFailed)) << dump();
    EXPECT_TRUE(s->has(EventKind::kChildRekeyed)) << dump();
    EXPECT_TRUE(s->kernel.removed.empty());
  }
  expect_one_pair();
  EXPECT_EQ(spis_of(left->engine.list()[0]), spis_of(right->engine.list()[0]));
}

}  // namespace
}  // namespace storcrypt::ike
