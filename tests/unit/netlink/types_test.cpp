#include <gtest/gtest.h>

#include "storcrypt/netlink/xfrm_types.h"

using namespace storcrypt;
using namespace storcrypt::netlink;

namespace {

SecretBytes bytes(std::size_t n, std::uint8_t fill = 0x11) {
  SecretBytes b(n);
  for (auto& c : b.mutable_view()) c = fill;
  return b;
}

Sa gcm_sa() {
  Sa sa;
  sa.src = *IpAddress::parse("192.0.2.1");
  sa.dst = *IpAddress::parse("192.0.2.2");
  sa.spi = 0x1000;
  sa.reqid = 7;
  sa.enc = EncAlgo::kAesGcm256;
  sa.enc_key = bytes(36);
  sa.replay_window = 64;
  return sa;
}

// The error must be kInvalidInput and its message must start with the field.
void expect_field_error(const Status& st, const std::string& field) {
  ASSERT_FALSE(st.ok()) << "expected an error naming " << field;
  EXPECT_EQ(st.error().code(), ErrorCode::kInvalidInput);
  EXPECT_EQ(st.error().message().rfind(field + ":", 0), 0u) << st.error().message();
}

}  // namespace

TEST(IpAddress, ParsesAndPrintsBothFamilies) {
  auto a = IpAddress::parse("192.0.2.7");
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(a->family, Family::kIPv4);
  EXPECT_EQ(a->to_string(), "192.0.2.7");
  auto b = IpAddress::parse("2001:db8::1");
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(b->family, Family::kIPv6);
  EXPECT_EQ(b->to_string(), "2001:db8::1");
  auto bad = IpAddress::parse("192.0.2.300", "peer");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.error().message().find("peer"), std::string::npos);
}

TEST(Prefix, ClearsHostBitsAndContains) {
  auto p = Prefix::parse("192.0.2.77/24");
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(p->to_string(), "192.0.2.0/24");
  EXPECT_TRUE(p->contains(*IpAddress::parse("192.0.2.200")));
  EXPECT_FALSE(p->contains(*IpAddress::parse("192.0.3.1")));
  EXPECT_FALSE(p->contains(*IpAddress::parse("2001:db8::1")));
  auto q = Prefix::parse("2001:db8:ffff::1/33");
  ASSERT_TRUE(q.ok());
  EXPECT_EQ(q->to_string(), "2001:db8:8000::/33");
  EXPECT_TRUE(q->contains(*IpAddress::parse("2001:db8:8000::5")));
  EXPECT_FALSE(q->contains(*IpAddress::parse("2001:db8:7fff::5")));
  auto host = Prefix::parse("198.51.100.1");
  ASSERT_TRUE(host.ok());
  EXPECT_EQ(host->len, 32);
  EXPECT_FALSE(Prefix::parse("192.0.2.0/33").ok());
  EXPECT_FALSE(Prefix::parse("192.0.2.0/").ok());
  EXPECT_FALSE(Prefix::parse("192.0.2.0/2x").ok());
  EXPECT_TRUE(Prefix::parse("0.0.0.0/0")->contains(*IpAddress::parse("203.0.113.9")));
}

TEST(PortMasks, SingleAlignedBlock) {
  auto m = port_range_to_mask(1024, 2047);
  ASSERT_TRUE(m.ok());
  EXPECT_EQ(m->port, 1024);
  EXPECT_EQ(m->mask, 0xfc00);
  EXPECT_TRUE(m->matches(1500));
  EXPECT_FALSE(m->matches(2048));
  auto one = port_range_to_mask(443, 443);
  ASSERT_TRUE(one.ok());
  EXPECT_EQ(one->mask, 0xffff);
  auto all = port_range_to_mask(0, 65535);
  ASSERT_TRUE(all.ok());
  EXPECT_EQ(all->mask, 0);
}

TEST(PortMasks, UnalignedRangeIsSplitExactly) {
  auto v = port_range_to_masks(1000, 1999);
  ASSERT_TRUE(v.ok());
  // Every port in range is covered exactly once; none outside.
  for (unsigned p = 0; p <= 65535; ++p) {
    int hits = 0;
    for (const auto& m : *v) hits += m.matches(static_cast<std::uint16_t>(p)) ? 1 : 0;
    ASSERT_EQ(hits, (p >= 1000 && p <= 1999) ? 1 : 0) << "port " << p;
  }
  auto single = port_range_to_mask(1000, 1999, "rule 3 dport");
  ASSERT_FALSE(single.ok());
  EXPECT_NE(single.error().message().find("rule 3 dport"), std::string::npos);
  EXPECT_FALSE(port_range_to_masks(10, 5).ok());
  auto top = port_range_to_masks(65535, 65535);
  ASSERT_TRUE(top.ok());
  ASSERT_EQ(top->size(), 1u);
}

TEST(Selector, MatchesLikeTheKernel) {
  auto s = Selector::between(*Prefix::parse("192.0.2.0/24"), *Prefix::parse("198.51.100.0/24"), kProtoTcp);
  ASSERT_TRUE(s.ok());
  s->dport = *port_range_to_mask(3260, 3260);
  auto a = *IpAddress::parse("192.0.2.5");
  auto b = *IpAddress::parse("198.51.100.9");
  EXPECT_TRUE(s->matches(a, b, kProtoTcp, 40000, 3260));
  EXPECT_FALSE(s->matches(a, b, kProtoTcp, 40000, 3261));
  EXPECT_FALSE(s->matches(a, b, kProtoUdp, 40000, 3260));
  EXPECT_FALSE(s->matches(b, a, kProtoTcp, 40000, 3260));
  EXPECT_TRUE(validate(*s).ok());
}

TEST(Selector, IcmpTypeNeedsIcmpProto) {
  Selector s = Selector::any(Family::kIPv4);
  s.icmp_type = 8;
  expect_field_error(validate(s), "selector.icmp_type");
  s.proto = kProtoIcmp;
  EXPECT_TRUE(validate(s).ok());
  EXPECT_TRUE(s.matches(*IpAddress::parse("192.0.2.1"), *IpAddress::parse("192.0.2.2"), kProtoIcmp, 8, 0));
  EXPECT_FALSE(s.matches(*IpAddress::parse("192.0.2.1"), *IpAddress::parse("192.0.2.2"), kProtoIcmp, 0, 0));
  Selector s6 = Selector::any(Family::kIPv6);
  s6.proto = kProtoIcmp;  // wrong for IPv6
  s6.icmp_type = 128;
  expect_field_error(validate(s6), "selector.icmp_type");
}

TEST(Selector, RejectsPortsWithoutPortProtocolAndMixedFamilies) {
  Selector s = Selector::any(Family::kIPv4);
  s.dport = PortMatch::exact(22);
  expect_field_error(validate(s), "selector.sport");
  s.proto = kProtoTcp;
  EXPECT_TRUE(validate(s).ok());
  s.dst = *Prefix::parse("2001:db8::/64");
  expect_field_error(validate(s), "selector.dst");
  EXPECT_FALSE(Selector::between(*Prefix::parse("192.0.2.0/24"), *Prefix::parse("2001:db8::/64")).ok());
  Selector h = Selector::any(Family::kIPv4);
  h.src.addr = *IpAddress::parse("192.0.2.1");
  h.src.len = 24;  // host bits set, built by hand
  expect_field_error(validate(h), "selector.src");
}

TEST(Algorithms, NamesRoundTripAndUnknownNamesAreRefused) {
  for (EncAlgo a : {EncAlgo::kNone, EncAlgo::kAesCbc128, EncAlgo::kAesCbc192, EncAlgo::kAesCbc256, EncAlgo::kAesGcm128,
                    EncAlgo::kAesGcm256}) {
    auto p = parse_enc(enc_name(a));
    ASSERT_TRUE(p.ok());
    EXPECT_EQ(*p, a);
  }
  for (IntegAlgo a : {IntegAlgo::kNone, IntegAlgo::kHmacSha1_96, IntegAlgo::kHmacSha256_128, IntegAlgo::kHmacSha384_192,
                      IntegAlgo::kHmacSha512_256}) {
    auto p = parse_integ(integ_name(a));
    ASSERT_TRUE(p.ok());
    EXPECT_EQ(*p, a);
  }
  auto bad = parse_enc("chacha20", "sa.enc");
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.error().message().rfind("sa.enc:", 0), 0u);
  EXPECT_NE(bad.error().fix().find("aes-gcm-256"), std::string::npos);
  EXPECT_FALSE(parse_integ("md5").ok());
  EXPECT_EQ(enc_kernel_name(EncAlgo::kAesGcm128), "rfc4106(gcm(aes))");
  EXPECT_EQ(integ_kernel_name(IntegAlgo::kHmacSha384_192), "hmac(sha384)");
  EXPECT_EQ(integ_trunc_bits(IntegAlgo::kHmacSha512_256), 256u);
  EXPECT_EQ(enc_key_bytes(EncAlgo::kAesGcm256), 36u);
}

TEST(SaValidate, AcceptsEverySupportedCombination) {
  EXPECT_TRUE(validate(gcm_sa()).ok());
  Sa g128 = gcm_sa();
  g128.enc = EncAlgo::kAesGcm128;
  g128.enc_key = bytes(20);
  EXPECT_TRUE(validate(g128).ok());
  for (IntegAlgo i :
       {IntegAlgo::kHmacSha1_96, IntegAlgo::kHmacSha256_128, IntegAlgo::kHmacSha384_192, IntegAlgo::kHmacSha512_256}) {
    Sa cbc = gcm_sa();
    cbc.enc = EncAlgo::kAesCbc256;
    cbc.enc_key = bytes(32);
    cbc.integ = i;
    cbc.integ_key = bytes(integ_key_bytes(i));
    EXPECT_TRUE(validate(cbc).ok()) << integ_name(i);
    EXPECT_FALSE(cbc.integrity_warning());
    Sa ah = gcm_sa();
    ah.proto = XfrmProto::kAh;
    ah.enc = EncAlgo::kNone;
    ah.enc_key = SecretBytes();
    ah.integ = i;
    ah.integ_key = bytes(integ_key_bytes(i));
    EXPECT_TRUE(validate(ah).ok()) << integ_name(i);
  }
  Sa v6 = gcm_sa();
  v6.src = *IpAddress::parse("2001:db8::1");
  v6.dst = *IpAddress::parse("2001:db8::2");
  v6.esn = true;
  v6.mode = Mode::kTransport;
  v6.encap = UdpEncap{};
  v6.mark = Mark{0x42, 0xff};
  v6.lifetime.soft_bytes = 100;
  v6.lifetime.hard_bytes = 200;
  EXPECT_TRUE(validate(v6).ok());
}

TEST(SaValidate, ReservedSpiNamesTheField) {
  for (std::uint32_t spi : {0u, 1u, 200u, 255u}) {
    Sa sa = gcm_sa();
    sa.spi = spi;
    expect_field_error(validate(sa), "spi");
  }
  Sa ok = gcm_sa();
  ok.spi = 256;
  EXPECT_TRUE(validate(ok).ok());
}

TEST(SaValidate, WrongKeyLengthNamesFieldAndExpectedSize) {
  Sa sa = gcm_sa();
  sa.enc_key = bytes(32);  // forgot the salt
  auto st = validate(sa);
  expect_field_error(st, "enc_key");
  EXPECT_NE(st.error().message().find("36"), std::string::npos);
  EXPECT_NE(st.error().message().find("salt"), std::string::npos);
  Sa cbc = gcm_sa();
  cbc.enc = EncAlgo::kAesCbc128;
  cbc.enc_key = bytes(16);
  cbc.integ = IntegAlgo::kHmacSha256_128;
  cbc.integ_key = bytes(20);
  expect_field_error(validate(cbc), "integ_key");
}

TEST(SaValidate, AlgorithmCombinationErrors) {
  Sa aead_plus = gcm_sa();
  aead_plus.integ = IntegAlgo::kHmacSha256_128;
  aead_plus.integ_key = bytes(32);
  expect_field_error(validate(aead_plus), "integ");

  Sa noint = gcm_sa();
  noint.enc = EncAlgo::kAesCbc128;
  noint.enc_key = bytes(16);
  expect_field_error(validate(noint), "integ");
  noint.allow_no_integrity = true;
  EXPECT_TRUE(validate(noint).ok());
  EXPECT_TRUE(noint.integrity_warning());

  Sa ah = gcm_sa();
  ah.proto = XfrmProto::kAh;
  expect_field_error(validate(ah), "enc");
  Sa none = gcm_sa();
  none.enc = EncAlgo::kNone;
  none.enc_key = SecretBytes();
  expect_field_error(validate(none), "enc");
  // ESP with neither encryption nor integrity: the message says both are none and how to fix it.
  auto st = validate(none);
  EXPECT_NE(st.error().message().find("enc and integ are none"), std::string::npos) << st.error().message();
  EXPECT_NE(st.error().fix().find("integ"), std::string::npos) << st.error().fix();
  // allow_no_integrity does not turn "nothing at all" into an SA.
  none.allow_no_integrity = true;
  expect_field_error(validate(none), "enc");
}

TEST(SaValidate, EspIntegrityOnlyIsAccepted) {
  for (IntegAlgo i :
       {IntegAlgo::kHmacSha1_96, IntegAlgo::kHmacSha256_128, IntegAlgo::kHmacSha384_192, IntegAlgo::kHmacSha512_256}) {
    Sa sa = gcm_sa();
    sa.enc = EncAlgo::kNone;
    sa.enc_key = SecretBytes();
    sa.integ = i;
    sa.integ_key = bytes(integ_key_bytes(i));
    EXPECT_TRUE(validate(sa).ok()) << integ_name(i) << ": " << validate(sa).error().to_string();
    EXPECT_FALSE(sa.integrity_warning());
    // A key for the NULL cipher is an error naming enc_key.
    sa.enc_key = bytes(16);
    expect_field_error(validate(sa), "enc_key");
    // A wrong integrity key length names integ_key.
    sa.enc_key = SecretBytes();
    sa.integ_key = bytes(integ_key_bytes(i) - 1);
    expect_field_error(validate(sa), "integ_key");
  }
}

TEST(SaValidate, ReplayLifetimeAndFamilies) {
  Sa esn = gcm_sa();
  esn.esn = true;
  esn.replay_window = 0;
  expect_field_error(validate(esn), "replay_window");
  Sa big = gcm_sa();
  big.replay_window = 100000;
  expect_field_error(validate(big), "replay_window");
  Sa lt = gcm_sa();
  lt.lifetime.soft_packets = 10;
  lt.lifetime.hard_packets = 5;
  expect_field_error(validate(lt), "lifetime.soft_packets");
  Sa mix = gcm_sa();
  mix.dst = *IpAddress::parse("2001:db8::2");
  expect_field_error(validate(mix), "src");
  Sa key = gcm_sa();
  // Error text never carries key material.
  key.enc_key = bytes(35, 0xAB);
  auto st = validate(key);
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.error().to_string().find("abab"), std::string::npos);
  EXPECT_EQ(st.error().to_string().find("ABAB"), std::string::npos);
}

TEST(PolicyValidate, TemplatesIndexAndBlock) {
  Policy p;
  p.selector = *Selector::between(*Prefix::parse("10.1.0.0/16"), *Prefix::parse("10.2.0.0/16"));
  p.dir = Direction::kOut;
  p.priority = 1000;
  Template t;
  t.src = *IpAddress::parse("192.0.2.1");
  t.dst = *IpAddress::parse("192.0.2.2");
  t.reqid = 5;
  p.templates.push_back(t);
  EXPECT_TRUE(validate(p).ok());

  Policy blk = p;
  blk.action = PolicyAction::kBlock;
  expect_field_error(validate(blk), "templates");

  Policy idx = p;
  idx.index = 8 * 3 + 0;  // encodes dir in, policy is out
  expect_field_error(validate(idx), "index");
  idx.index = 8 * 3 + 1;
  EXPECT_TRUE(validate(idx).ok());

  Policy tun = p;
  tun.templates[0].dst = IpAddress::any(Family::kIPv4);
  expect_field_error(validate(tun), "templates[0].dst");
  Policy v6 = p;
  v6.templates[0].family = Family::kIPv6;
  expect_field_error(validate(v6), "templates[0].src");
  Policy spi = p;
  spi.templates[0].spi = 17;
  expect_field_error(validate(spi), "templates[0].spi");
}

TEST(Ownership, RangesAndMark) {
  Ownership o;
  o.reqid_min = 100;
  o.reqid_max = 199;
  o.index_min = 5000;
  o.index_max = 5999;
  Sa sa = gcm_sa();
  sa.reqid = 150;
  EXPECT_TRUE(o.owns(sa));
  sa.reqid = 7;
  EXPECT_FALSE(o.owns(sa));
  Policy p;
  p.index = 5500;
  p.priority = 1;  // any priority: only the index tells the owner
  EXPECT_TRUE(o.owns(p));
  p.index = 6000;
  p.priority = 5500;
  EXPECT_FALSE(o.owns(p));
  o.mark = Mark{0x5c, 0xff};
  p.index = 5500;
  EXPECT_FALSE(o.owns(p));
  p.mark = Mark{0x5c, 0xff};
  EXPECT_TRUE(o.owns(p));
}
