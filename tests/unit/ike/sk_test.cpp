// SK / SKF payload protection. The two fixed messages were built
// independently by gen_vectors.py (Python `cryptography` + hmac).
#include "storcrypt/ike/sk.h"

#include <gtest/gtest.h>

#include <algorithm>

#include "ike_test_util.h"
#include "storcrypt/ike/crypto.h"

namespace storcrypt::ike {
namespace {

using testing::hx;

SecretBytes range_key(std::uint8_t from, std::size_t n) {
  SecretBytes k(n);
  for (std::size_t i = 0; i < n; ++i) k.data()[i] = static_cast<std::uint8_t>(from + i);
  return k;
}

Header auth_header() {
  Header h;
  h.spi_i = 0x0123456789abcdefULL;
  h.spi_r = 0xfedcba9876543210ULL;
  h.exchange = static_cast<std::uint8_t>(ExchangeType::kIkeAuth);
  h.flags = kFlagInitiator;
  h.message_id = 1;
  return h;
}

const char* kGcmMessage =
    "0123456789abcdeffedcba98765432102e20230800000001000000412900002500000000000000015765f76ec19fac2385f99d6ddaaec3546"
    "7375a50a8e0bb1407";
const char* kCbcMessage =
    "0123456789abcdeffedcba98765432102e20230800000001000000582900003ca0a1a2a3a4a5a6a7a8a9aaabacadaeaf0a7e690f3ae9eca7"
    "6842ec5fce8837facce80c5cb87b0eb9e2ccc1823cde1168a71f2d6f5134c249";

SkProtector gcm() {
  auto p = SkProtector::create(transform_id::kEncrAesGcm16, 256, 0, range_key(0x40, 36), SecretBytes());
  if (!p.ok()) std::abort();
  return std::move(p).value();
}
SkProtector cbc() {
  auto p = SkProtector::create(transform_id::kEncrAesCbc, 256, transform_id::kIntegHmacSha384_192, range_key(0x10, 32),
                               range_key(0x50, 48));
  if (!p.ok()) std::abort();
  return std::move(p).value();
}

TEST(IkeSk, GcmSealMatchesIndependentEncryption) {
  SkProtector p = gcm();
  const Payload inner[] = {Payload::notification(notify::kInitialContact)};
  auto msg = p.seal(auth_header(), inner);
  ASSERT_TRUE(msg.ok()) << msg.error().to_string();
  EXPECT_EQ(to_hex(*msg), kGcmMessage);
  // The next message uses a fresh IV.
  auto msg2 = p.seal(auth_header(), inner);
  EXPECT_NE(*msg2, *msg);

  auto opened = gcm().open(hx(kGcmMessage));
  ASSERT_TRUE(opened.ok()) << opened.error().to_string();
  EXPECT_EQ(opened->next, static_cast<std::uint8_t>(PayloadType::kNotify));
  EXPECT_EQ(opened->fragment_number, 0);
  EXPECT_EQ(opened->header, auth_header());
  auto chain = parse_payload_chain(opened->next, opened->plaintext);
  ASSERT_TRUE(chain.ok());
  EXPECT_EQ(std::get<NotifyPayload>((*chain)[0].body).type, notify::kInitialContact);
}

TEST(IkeSk, CbcHmacOpensIndependentMessageAndRefusesTampering) {
  const auto good = hx(kCbcMessage);
  auto opened = cbc().open(good);
  ASSERT_TRUE(opened.ok()) << opened.error().to_string();
  EXPECT_EQ(opened->plaintext, hx("00 00 0008 00 00 4000"));
  // Any changed byte (header, SK header, IV, ciphertext, ICV) fails the integrity check
  // or the parse: never decrypts to something.
  for (std::size_t i = 0; i < good.size(); ++i) {
    auto b = good;
    b[i] ^= 0x01;
    auto r = cbc().open(b);
    ASSERT_FALSE(r.ok()) << "byte " << i;
    if (i >= kHeaderSize + 4) {
      EXPECT_EQ(r.error().name(), "xIkeIntegrity") << "byte " << i;
    }
  }
  // A wrong integrity key fails too.
  auto other = SkProtector::create(transform_id::kEncrAesCbc, 256, transform_id::kIntegHmacSha384_192,
                                   range_key(0x10, 32), range_key(0x51, 48));
  EXPECT_EQ(other->open(good).error().name(), "xIkeIntegrity");
}

TEST(IkeSk, GcmRefusesTampering) {
  const auto good = hx(kGcmMessage);
  for (std::size_t i = 0; i < good.size(); ++i) {
    auto b = good;
    b[i] ^= 0x80;
    EXPECT_FALSE(gcm().open(b).ok()) << "byte " << i;
  }
}

TEST(IkeSk, RoundTripsBothSuitesWithRealContent) {
  auto inner = parse_payload_chain(static_cast<std::uint8_t>(PayloadType::kIdi), testing::ike_auth_inner());
  ASSERT_TRUE(inner.ok());
  for (bool aead : {true, false}) {
    SkProtector p = aead ? gcm() : cbc();
    auto msg = p.seal(auth_header(), *inner);
    ASSERT_TRUE(msg.ok());
    // Ciphertext must not contain the plaintext ID.
    const std::string id = "left.lab";
    EXPECT_EQ(std::search(msg->begin(), msg->end(), id.begin(), id.end()), msg->end());
    auto parsed = parse(*msg);
    ASSERT_TRUE(parsed.ok());
    EXPECT_EQ(std::get<SkPayload>(parsed->payloads[0].body).next, static_cast<std::uint8_t>(PayloadType::kIdi));
    auto opened = (aead ? gcm() : cbc()).open(*msg);
    ASSERT_TRUE(opened.ok()) << opened.error().to_string();
    EXPECT_EQ(opened->plaintext, testing::ike_auth_inner());
    if (!aead) {
      EXPECT_EQ((msg->size() - kHeaderSize - 4 - 16 - 24) % 16, 0u);
    }
  }
}

TEST(IkeSk, FragmentsReassembleInAnyOrder) {
  auto inner = parse_payload_chain(static_cast<std::uint8_t>(PayloadType::kIdi), testing::ike_auth_inner());
  ASSERT_TRUE(inner.ok());
  for (bool aead : {true, false}) {
    SkProtector p = aead ? gcm() : cbc();
    auto frags = p.seal_fragments(auth_header(), *inner, 120);
    ASSERT_TRUE(frags.ok()) << frags.error().to_string();
    ASSERT_GE(frags->size(), 3u);
    std::vector<SkProtector::Opened> opened;
    for (const Bytes& f : *frags) {
      EXPECT_LE(f.size(), 120u);
      auto m = parse(f);
      ASSERT_TRUE(m.ok());
      EXPECT_EQ(m->payloads[0].type, static_cast<std::uint8_t>(PayloadType::kSkf));
      auto o = (aead ? gcm() : cbc()).open(f);
      ASSERT_TRUE(o.ok()) << o.error().to_string();
      EXPECT_EQ(o->total_fragments, frags->size());
      opened.push_back(std::move(o).value());
    }
    EXPECT_EQ(opened[0].next, static_cast<std::uint8_t>(PayloadType::kIdi));
    EXPECT_EQ(opened[1].next, 0);
    FragmentReassembler r;
    std::optional<std::vector<Payload>> done;
    for (std::size_t i = opened.size(); i-- > 0;) {
      auto step = r.add(opened[i]);
      ASSERT_TRUE(step.ok()) << step.error().to_string();
      if (i > 0) {
        EXPECT_FALSE(step->has_value());
        // A duplicate is ignored.
        auto dup = r.add(opened[i]);
        ASSERT_TRUE(dup.ok());
        EXPECT_FALSE(dup->has_value());
      }
      done = std::move(step).value();
    }
    ASSERT_TRUE(done.has_value());
    EXPECT_EQ(*done, *inner);
  }
  // Fragments that disagree on the total are refused.
  FragmentReassembler r;
  SkProtector::Opened a, b;
  a.fragment_number = 1;
  a.total_fragments = 2;
  b.fragment_number = 2;
  b.total_fragments = 3;
  ASSERT_TRUE(r.add(a).ok());
  EXPECT_FALSE(r.add(b).ok());
  EXPECT_FALSE(gcm().seal_fragments(auth_header(), *inner, 60).ok());
}

TEST(IkeSk, RefusesBadPaddingAndShortBodies) {
  // A correctly authenticated GCM body whose pad length exceeds the plaintext.
  Message m;
  m.header = auth_header();
  m.payloads.push_back(Payload::of(PayloadType::kSk, SkPayload{0, Bytes(8 + 1 + 16, 0)}));
  Bytes msg = *serialize(m);
  const std::size_t body_at = msg.size() - 25;
  SecretBytes key = range_key(0x40, 36);
  Bytes nonce(key.data() + 32, key.data() + 36);
  nonce.insert(nonce.end(), 8, 0);
  const std::uint8_t pt[] = {5};
  auto ct = aes_gcm_seal(key.view().first(32), nonce, std::span(msg.data(), body_at), pt);
  std::copy(ct->begin(), ct->end(), msg.begin() + static_cast<long>(body_at + 8));
  auto r = gcm().open(msg);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message().find("pad length"), std::string::npos);

  // Too short to hold IV + ICV.
  Message s;
  s.header = auth_header();
  s.payloads.push_back(Payload::of(PayloadType::kSk, SkPayload{0, Bytes(10, 0)}));
  EXPECT_FALSE(gcm().open(*serialize(s)).ok());
  EXPECT_FALSE(cbc().open(*serialize(s)).ok());
  // No SK at all.
  EXPECT_FALSE(gcm().open(testing::sa_init_request()).ok());
  // Keys of the wrong size are refused.
  EXPECT_FALSE(SkProtector::create(transform_id::kEncrAesGcm16, 256, 0, range_key(0, 32), SecretBytes()).ok());
}

}  // namespace
}  // namespace storcrypt::ike
