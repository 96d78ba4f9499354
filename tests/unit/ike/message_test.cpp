#include "storcrypt/ike/message.h"

#include <gtest/gtest.h>

#include "ike_test_util.h"

namespace storcrypt::ike {
namespace {

using testing::hx;

std::uint8_t t(PayloadType p) { return static_cast<std::uint8_t>(p); }

TEST(IkeMessage, ParsesSaInitRequestFieldByField) {
  const auto bytes = testing::sa_init_request();
  ASSERT_EQ(bytes.size(), 294u);
  auto m = parse(bytes);
  ASSERT_TRUE(m.ok()) << m.error().to_string();
  EXPECT_EQ(m->header.spi_i, 0x0123456789abcdefULL);
  EXPECT_EQ(m->header.spi_r, 0u);
  EXPECT_EQ(m->header.exchange, static_cast<std::uint8_t>(ExchangeType::kIkeSaInit));
  EXPECT_TRUE(m->header.from_initiator());
  EXPECT_FALSE(m->header.is_response());
  ASSERT_EQ(m->payloads.size(), 7u);

  const auto& sa = std::get<SaPayload>(m->payloads[0].body);
  ASSERT_EQ(sa.proposals.size(), 1u);
  const Proposal& p = sa.proposals[0];
  EXPECT_EQ(p.number, 1);
  EXPECT_EQ(p.protocol, ProtocolId::kIke);
  EXPECT_TRUE(p.spi.empty());
  ASSERT_EQ(p.transforms.size(), 4u);
  EXPECT_EQ(p.transforms[0].type, TransformType::kEncr);
  EXPECT_EQ(p.transforms[0].id, transform_id::kEncrAesCbc);
  EXPECT_EQ(p.transforms[0].key_length(), 256);
  EXPECT_EQ(p.transforms[1].type, TransformType::kInteg);
  EXPECT_EQ(p.transforms[1].id, transform_id::kIntegHmacSha384_192);
  EXPECT_EQ(p.transforms[2].type, TransformType::kPrf);
  EXPECT_EQ(p.transforms[2].id, transform_id::kPrfHmacSha384);
  EXPECT_EQ(p.transforms[3].type, TransformType::kKe);
  EXPECT_EQ(p.transforms[3].id, transform_id::kGroupEcp384);
  EXPECT_FALSE(p.transforms[3].key_length().has_value());

  const auto& ke = std::get<KePayload>(m->payloads[1].body);
  EXPECT_EQ(ke.group, 20);
  EXPECT_EQ(ke.data, hx(testing::kP384KEi));
  EXPECT_EQ(std::get<NoncePayload>(m->payloads[2].body).data.size(), 32u);

  const NotifyPayload* natd = m->find_notify(notify::kNatDetectionSourceIp);
  ASSERT_NE(natd, nullptr);
  EXPECT_EQ(natd->data, hx("b43b59394bf8bc930246a8f80b6fddf05c58d9bf"));
  EXPECT_NE(m->find_notify(notify::kNatDetectionDestinationIp), nullptr);
  EXPECT_NE(m->find_notify(notify::kIkev2FragmentationSupported), nullptr);
  const NotifyPayload* sha = m->find_notify(notify::kSignatureHashAlgorithms);
  ASSERT_NE(sha, nullptr);
  auto algs = decode_hash_algorithms(sha->data);
  ASSERT_TRUE(algs.ok());
  EXPECT_EQ(*algs, (std::vector<std::uint16_t>{hash_alg::kSha256, hash_alg::kSha384, hash_alg::kSha512}));
  EXPECT_FALSE(sha->is_error());
}

TEST(IkeMessage, SaInitRoundTripsByteForByte) {
  const auto bytes = testing::sa_init_request();
  auto m = parse(bytes);
  ASSERT_TRUE(m.ok());
  auto out = serialize(*m);
  ASSERT_TRUE(out.ok()) << out.error().to_string();
  EXPECT_EQ(*out, bytes);
}

TEST(IkeMessage, BuiltMessageEqualsHandAssembledBytes) {
  // The same IKE_SA_INIT built from typed fields must give the RFC-layout bytes.
  Message m;
  m.header.spi_i = 0x0123456789abcdefULL;
  Proposal p;
  p.transforms = {Transform::make(TransformType::kEncr, transform_id::kEncrAesCbc, 256),
                  Transform::make(TransformType::kInteg, transform_id::kIntegHmacSha384_192),
                  Transform::make(TransformType::kPrf, transform_id::kPrfHmacSha384),
                  Transform::make(TransformType::kKe, transform_id::kGroupEcp384)};
  m.payloads.push_back(Payload::sa(SaPayload{{p}}));
  m.payloads.push_back(Payload::ke(KePayload{20, 0, hx(testing::kP384KEi)}));
  m.payloads.push_back(Payload::nonce(hx("000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f")));
  m.payloads.push_back(
      Payload::notification(notify::kNatDetectionSourceIp, hx("b43b59394bf8bc930246a8f80b6fddf05c58d9bf")));
  m.payloads.push_back(Payload::notification(notify::kNatDetectionDestinationIp, Bytes(20, 0)));
  m.payloads.push_back(Payload::notification(notify::kIkev2FragmentationSupported));
  const std::uint16_t algs[] = {2, 3, 4};
  m.payloads.push_back(Payload::notification(notify::kSignatureHashAlgorithms, encode_hash_algorithms(algs)));
  auto out = serialize(m);
  ASSERT_TRUE(out.ok()) << out.error().to_string();
  EXPECT_EQ(*out, testing::sa_init_request());
}

TEST(IkeMessage, IkeAuthInnerChainRoundTrips) {
  const auto inner = testing::ike_auth_inner();
  auto chain = parse_payload_chain(t(PayloadType::kIdi), inner);
  ASSERT_TRUE(chain.ok()) << chain.error().to_string();
  ASSERT_EQ(chain->size(), 8u);
  const auto& idi = std::get<IdPayload>((*chain)[0].body);
  EXPECT_EQ(idi.id_type, id_type::kFqdn);
  EXPECT_EQ(std::string(idi.data.begin(), idi.data.end()), "left.lab");
  EXPECT_EQ((*chain)[1].type, t(PayloadType::kCert));
  EXPECT_EQ(std::get<CertPayload>((*chain)[1].body).encoding, kCertX509Signature);
  EXPECT_EQ(std::get<CertPayload>((*chain)[2].body).data.size(), 20u);
  const auto& auth = std::get<AuthPayload>((*chain)[3].body);
  EXPECT_EQ(auth.method, auth_method::kDigitalSignature);
  EXPECT_EQ(auth.data[0], 12);
  EXPECT_EQ(std::get<NotifyPayload>((*chain)[4].body).type, notify::kInitialContact);
  const auto& sa = std::get<SaPayload>((*chain)[5].body);
  EXPECT_EQ(sa.proposals[0].protocol, ProtocolId::kEsp);
  EXPECT_EQ(sa.proposals[0].spi, hx("c1c2c3c4"));
  EXPECT_EQ(sa.proposals[0].transforms[0].id, transform_id::kEncrAesGcm16);
  EXPECT_EQ(sa.proposals[0].transforms[0].key_length(), 256);
  EXPECT_EQ(sa.proposals[0].transforms[1].type, TransformType::kEsn);
  const auto& tsi = std::get<TsPayload>((*chain)[6].body);
  ASSERT_EQ(tsi.selectors.size(), 1u);
  EXPECT_EQ(tsi.selectors[0].start_address, hx("c6336400"));
  EXPECT_EQ(tsi.selectors[0].end_address, hx("c63364ff"));
  EXPECT_EQ(tsi.selectors[0].end_port, 65535);
  EXPECT_EQ((*chain)[7].type, t(PayloadType::kTsr));

  auto out = serialize_payload_chain(*chain);
  ASSERT_TRUE(out.ok()) << out.error().to_string();
  EXPECT_EQ(*out, inner);
}

TEST(IkeMessage, SkIsAnOpaqueLastPayload) {
  // IKE_AUTH request: header, then SK with next = IDi and 40 bytes of IV/ciphertext/ICV.
  auto bytes =
      hx("0123456789abcdef fedcba9876543210 2e 20 23 08 00000001 00000048"
         "23 00 002c");
  for (int i = 0; i < 40; ++i) bytes.push_back(static_cast<std::uint8_t>(i));
  auto m = parse(bytes);
  ASSERT_TRUE(m.ok()) << m.error().to_string();
  ASSERT_EQ(m->payloads.size(), 1u);
  const auto& sk = std::get<SkPayload>(m->payloads[0].body);
  EXPECT_EQ(sk.next, t(PayloadType::kIdi));
  EXPECT_EQ(sk.data.size(), 40u);
  EXPECT_EQ(*serialize(*m), bytes);
}

TEST(IkeMessage, SkfFragmentFields) {
  auto bytes =
      hx("0123456789abcdef fedcba9876543210 35 20 23 08 00000001 00000030"
         "23 00 0014 0001 0003 00112233445566778899aabb");
  auto m = parse(bytes);
  ASSERT_TRUE(m.ok()) << m.error().to_string();
  const auto& f = std::get<SkfPayload>(m->payloads[0].body);
  EXPECT_EQ(f.next, t(PayloadType::kIdi));
  EXPECT_EQ(f.fragment_number, 1);
  EXPECT_EQ(f.total_fragments, 3);
  EXPECT_EQ(*serialize(*m), bytes);
  // Fragment 0, and fragment 4 of 3, are malformed.
  auto zero = bytes;
  zero[33] = 0;
  EXPECT_FALSE(parse(zero).ok());
  auto over = bytes;
  over[33] = 4;
  EXPECT_FALSE(parse(over).ok());
}

TEST(IkeMessage, DeleteVendorAndUnknownPayloadsRoundTrip) {
  auto bytes =
      hx("0123456789abcdef fedcba9876543210 2a 20 25 00 00000007 00000050"
         "2b 00 0010 03 04 0002 c1c2c3c4 d1d2d3d4"                       // D: ESP, two SPIs, next V
         "2f 00 000c 882fe56d6fd20dbc"                                   // V, next CP
         "00 80 0018 01 000000 0001 0004 c0000201 0003 0004 c0000202");  // CP, critical
  ASSERT_EQ(bytes.size(), 0x50u);
  auto m = parse(bytes);
  ASSERT_TRUE(m.ok()) << m.error().to_string();
  const auto& d = std::get<DeletePayload>(m->payloads[0].body);
  EXPECT_EQ(d.protocol, ProtocolId::kEsp);
  ASSERT_EQ(d.spis.size(), 2u);
  EXPECT_EQ(d.spis[1], spi_bytes(0xd1d2d3d4));
  EXPECT_EQ(std::get<VendorPayload>(m->payloads[1].body).data.size(), 8u);
  EXPECT_TRUE(std::holds_alternative<RawPayload>(m->payloads[2].body));
  EXPECT_TRUE(m->payloads[2].critical());
  EXPECT_EQ(*serialize(*m), bytes);
  // A critical payload we do not implement must be reported (RFC 7296 §2.5)...
  EXPECT_EQ(unsupported_critical_payload(m->payloads), t(PayloadType::kCp));
  // ...and a non-critical one skipped.
  m->payloads[2].flags = 0;
  EXPECT_FALSE(unsupported_critical_payload(m->payloads).has_value());
  // Critical bits on payloads we do implement are fine.
  m->payloads[0].flags = 0x80;
  EXPECT_FALSE(unsupported_critical_payload(m->payloads).has_value());
}

TEST(IkeMessage, ReservedBitsAreKeptForExactRoundTrips) {
  auto bytes = testing::sa_init_request();
  bytes[28 + 1] = 0x01;  // SA generic header RESERVED bit
  bytes[32 + 1] = 0x05;  // proposal RESERVED
  bytes[40 + 1] = 0x07;  // first transform RESERVED
  bytes[76 + 6] = 0x12;  // KE RESERVED (2 bytes after the group)
  auto m = parse(bytes);
  ASSERT_TRUE(m.ok()) << m.error().to_string();
  EXPECT_EQ(m->payloads[0].flags, 0x01);
  EXPECT_FALSE(m->payloads[0].critical());
  EXPECT_EQ(*serialize(*m), bytes);
}

Status parse_status(const std::vector<std::uint8_t>& b) {
  auto m = parse(b);
  if (m.ok()) return ok_status();
  return m.error();
}

TEST(IkeMessage, RejectsLengthLies) {
  const auto good = testing::sa_init_request();
  {  // header length larger and smaller than the datagram
    auto b = good;
    b[27] = 0x27;
    EXPECT_EQ(parse_status(b).error().name(), "xIkeInvalidSyntax");
    b[27] = 0x25;
    EXPECT_FALSE(parse_status(b).ok());
  }
  {  // truncated datagram (length field still says 294)
    auto b = good;
    b.pop_back();
    EXPECT_FALSE(parse_status(b).ok());
  }
  {  // SA payload length beyond the message
    auto b = good;
    b[31] = 0xff;
    b[30] = 0x0f;
    EXPECT_FALSE(parse_status(b).ok());
  }
  {  // payload length below the generic header size
    auto b = good;
    b[30] = 0;
    b[31] = 3;
    EXPECT_FALSE(parse_status(b).ok());
  }
  {  // proposal length disagrees with the SA length
    auto b = good;
    b[35] = 0x28;
    EXPECT_FALSE(parse_status(b).ok());
  }
  {  // transform count says 5, only 4 present
    auto b = good;
    b[39] = 5;
    EXPECT_FALSE(parse_status(b).ok());
  }
  {  // transform 'last' flag on the first transform
    auto b = good;
    b[40] = 0;
    EXPECT_FALSE(parse_status(b).ok());
  }
  {  // proposal claims more proposals follow
    auto b = good;
    b[32] = 2;
    EXPECT_FALSE(parse_status(b).ok());
  }
  {  // attribute TLV length runs past the transform
    auto b = good;
    b[48] = 0x00;  // AF cleared: TLV with length 0x0100
    EXPECT_FALSE(parse_status(b).ok());
  }
  {  // last payload says another one follows
    auto b = good;
    b[280] = 0x29;
    EXPECT_FALSE(parse_status(b).ok());
  }
  {  // notify SPI size runs past the payload
    auto b = good;
    b[216 + 5] = 40;
    EXPECT_FALSE(parse_status(b).ok());
  }
}

TEST(IkeMessage, RejectsBadVersionsAndHeaders) {
  auto b = testing::sa_init_request();
  b[17] = 0x10;  // IKEv1
  EXPECT_EQ(parse_status(b).error().name(), "xIkeInvalidMajorVersion");
  b[17] = 0x30;  // IKEv3
  EXPECT_EQ(parse_status(b).error().name(), "xIkeInvalidMajorVersion");
  b[17] = 0x21;  // minor versions are fine
  EXPECT_TRUE(parse_status(b).ok());
  EXPECT_FALSE(parse(std::vector<std::uint8_t>(27, 0)).ok());
  EXPECT_FALSE(parse({}).ok());
  // parse_header still gives the SPIs of an unparseable message.
  b[17] = 0x30;
  auto h = parse_header(b);
  ASSERT_TRUE(h.ok());
  EXPECT_EQ(h->header.spi_i, 0x0123456789abcdefULL);
  EXPECT_EQ(h->length, 294u);
}

TEST(IkeMessage, SkMustBeLastAndNeverNested) {
  // SK followed by another payload: the chain after SK is encrypted, so bytes after it are an error.
  auto b =
      hx("0123456789abcdef fedcba9876543210 2e 20 23 08 00000001 00000034"
         "23 00 0010 000102030405060708090a0b 00000008 00000000");
  b.resize(0x34);
  EXPECT_FALSE(parse(b).ok());
  // SK inside a decrypted chain.
  EXPECT_FALSE(parse_payload_chain(t(PayloadType::kSk), hx("00 00 0008 00000000")).ok());
  // Serializer refuses SK in the middle.
  Message m;
  m.payloads.push_back(Payload::of(PayloadType::kSk, SkPayload{0, Bytes(20, 1)}));
  m.payloads.push_back(Payload::nonce(Bytes(16, 2)));
  EXPECT_FALSE(serialize(m).ok());
  // ...and a body that does not match the type.
  Message wrong;
  wrong.payloads.push_back(Payload::of(PayloadType::kSa, NoncePayload{Bytes(16, 0)}));
  EXPECT_FALSE(serialize(wrong).ok());
}

TEST(IkeMessage, TrafficSelectorRejects) {
  auto inner = testing::ike_auth_inner();
  const std::size_t tsi = inner.size() - 48;  // TSi payload start
  {
    auto b = inner;
    b[tsi + 4] = 2;  // two selectors claimed
    EXPECT_FALSE(parse_payload_chain(t(PayloadType::kIdi), b).ok());
  }
  {
    auto b = inner;
    b[tsi + 11] = 0x14;  // IPv4 selector length 20
    EXPECT_FALSE(parse_payload_chain(t(PayloadType::kIdi), b).ok());
  }
  {
    auto b = inner;
    b[tsi + 8] = 8;  // IPv6 type with an IPv4-sized selector
    EXPECT_FALSE(parse_payload_chain(t(PayloadType::kIdi), b).ok());
  }
  // An IPv6 range round-trips.
  auto v6 =
      hx("00 00 0030 01 000000 08 06 0028 0000 ffff"
         "20010db8000000000000000000000000 20010db8ffffffffffffffffffffffff");
  auto c = parse_payload_chain(t(PayloadType::kTsr), v6);
  ASSERT_TRUE(c.ok()) << c.error().to_string();
  EXPECT_EQ(std::get<TsPayload>((*c)[0].body).selectors[0].ip_protocol, 6);
  EXPECT_EQ(*serialize_payload_chain(*c), v6);
}

// Every truncation of a valid message is refused, and every one-byte change
// either is refused or round-trips exactly (the fuzzer's property, exhaustively
// for single-byte changes of two real messages).
TEST(IkeMessage, EveryMutationIsRefusedOrRoundTrips) {
  for (const auto& good : {testing::sa_init_request()}) {
    for (std::size_t n = 0; n < good.size(); ++n) {
      std::vector<std::uint8_t> cut(good.begin(), good.begin() + static_cast<long>(n));
      EXPECT_FALSE(parse(cut).ok()) << "truncated to " << n;
    }
    for (std::size_t i = 0; i < good.size(); ++i) {
      for (int v : {0x00, 0x01, 0x7f, 0x80, 0xff}) {
        auto b = good;
        b[i] = static_cast<std::uint8_t>(v);
        auto m = parse(b);
        if (!m.ok()) continue;
        auto out = serialize(*m);
        ASSERT_TRUE(out.ok()) << "byte " << i;
        EXPECT_EQ(*out, b) << "byte " << i << " = " << v;
      }
    }
  }
  const auto inner = testing::ike_auth_inner();
  for (std::size_t i = 0; i < inner.size(); ++i) {
    auto b = inner;
    b[i] ^= 0x5a;
    auto c = parse_payload_chain(t(PayloadType::kIdi), b);
    if (!c.ok()) continue;
    auto out = serialize_payload_chain(*c);
    ASSERT_TRUE(out.ok());
    EXPECT_EQ(*out, b) << "byte " << i;
  }
}

// charon's (strongSwan 5.9.8, Debian 12) answer to our aes256-sha384-ecp384
// IKE_SA_INIT request, captured by tests/host/ike with STORCRYPT_IKE_CAPTURE_DIR
// (public values only: SPIs, KE, nonce, notifies).
TEST(IkeMessage, ParsesCapturedCharonResponse) {
  const auto bytes =
      hx("887766554433221143ff07a10538362e212022200000000000000138220000300000002c010100040300000c0100000c"
         "800e0100030000080300000d03000008020000060000000804000014280000680014000067a7652fbb4a6bea80da12d0"
         "dfa86b10224e52ec0eb30f719e82cd75cd5c9193591b6ce60714607d58ac6d52ad0ec14a0ef50d6742caa056e2c4a241"
         "25822813aef757ae9be048dd25b2187ff1efa54fdbf77b4a9f002e69b58842a40c91452a290000240e220e312c56b5ee"
         "6b3051a25815922bc070d36db52940c8084fd16a2744c7dd2900001c00004004be3ede64b8bfc565674909264c8a8397"
         "fadbe16c2900001c000040051aa7fd0268a391ba517cb21ce79f6c638820f52c290000080000402e290000100000402f"
         "000200030004000529000008000040220000000800004014");
  auto m = parse(bytes);
  ASSERT_TRUE(m.ok()) << m.error().to_string();
  EXPECT_EQ(*serialize(*m), bytes);
  EXPECT_EQ(m->header.spi_i, 0x8877665544332211ULL);
  EXPECT_TRUE(m->header.is_response());
  EXPECT_FALSE(unsupported_critical_payload(m->payloads).has_value());
  ASSERT_EQ(m->payloads.size(), 9u);
  const auto& sa = std::get<SaPayload>(m->payloads[0].body);
  ASSERT_EQ(sa.proposals.size(), 1u);
  EXPECT_EQ(sa.proposals[0].transforms[0].key_length(), 256);
  EXPECT_EQ(std::get<KePayload>(m->payloads[1].body).data.size(), 96u);
  // Notifies we do not act on yet (CHILDLESS_IKEV2_SUPPORTED, MULTIPLE_AUTH_SUPPORTED) parse as notifies.
  EXPECT_NE(m->find_notify(16418), nullptr);
  EXPECT_NE(m->find_notify(16404), nullptr);
  auto algs = decode_hash_algorithms(m->find_notify(notify::kSignatureHashAlgorithms)->data);
  EXPECT_EQ(*algs, (std::vector<std::uint16_t>{2, 3, 4, 5}));
}

TEST(IkeMessage, NotifyDataHelpers) {
  EXPECT_EQ(encode_invalid_ke(20), hx("0014"));
  EXPECT_EQ(*decode_invalid_ke(hx("0013")), 19);
  EXPECT_FALSE(decode_invalid_ke(hx("001400")).ok());
  EXPECT_FALSE(decode_hash_algorithms(hx("000200")).ok());
  EXPECT_EQ(spi_bytes(0xc1c2c3c4), hx("c1c2c3c4"));
  auto n = Payload::notification(notify::kInvalidKePayload, encode_invalid_ke(20));
  EXPECT_TRUE(std::get<NotifyPayload>(n.body).is_error());
  auto rekey = Payload::notification(notify::kRekeySa, {}, ProtocolId::kEsp, spi_bytes(0x11223344));
  auto bytes = serialize_payload_chain(std::span(&rekey, 1));
  ASSERT_TRUE(bytes.ok());
  EXPECT_EQ(*bytes, hx("00 00 000c 03 04 4009 11223344"));
}

TEST(IkeMessage, Udp4500NonEspMarker) {
  const auto msg = testing::sa_init_request();
  auto framed = add_non_esp_marker(msg);
  ASSERT_EQ(framed.size(), msg.size() + 4);
  auto d = classify_udp4500(framed);
  EXPECT_EQ(d.kind, Udp4500Kind::kIke);
  EXPECT_TRUE(std::equal(d.payload.begin(), d.payload.end(), msg.begin(), msg.end()));
  EXPECT_TRUE(parse(d.payload).ok());

  const auto esp = hx("c1c2c3c4 00000001 deadbeef");
  EXPECT_EQ(classify_udp4500(esp).kind, Udp4500Kind::kEsp);
  EXPECT_EQ(classify_udp4500(esp).payload.size(), esp.size());
  EXPECT_EQ(classify_udp4500(hx("ff")).kind, Udp4500Kind::kKeepalive);
  EXPECT_EQ(classify_udp4500(hx("c1c2c3")).kind, Udp4500Kind::kInvalid);
  EXPECT_EQ(classify_udp4500(hx("c1c2c3c4 0000")).kind, Udp4500Kind::kInvalid);
  EXPECT_EQ(classify_udp4500({}).kind, Udp4500Kind::kInvalid);
  // A marker with nothing after it is an (unparseable) IKE message, not ESP.
  EXPECT_EQ(classify_udp4500(hx("00000000")).kind, Udp4500Kind::kIke);
}

}  // namespace
}  // namespace storcrypt::ike
