// Encode -> decode round trips of NETLINK_XFRM messages, without a kernel.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <linux/netlink.h>
#include <linux/xfrm.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <cstring>
#include <map>
#include <vector>

#include "storcrypt/netlink/xfrm_codec.h"

using namespace storcrypt;
using namespace storcrypt::netlink;
namespace codec = storcrypt::netlink::codec;

namespace {

SecretBytes pattern(std::size_t n, std::uint8_t start) {
  SecretBytes b(n);
  for (std::size_t i = 0; i < n; ++i) b.data()[i] = static_cast<std::uint8_t>(start + i);
  return b;
}

Sa base_sa(bool v6) {
  Sa sa;
  sa.src = *IpAddress::parse(v6 ? "2001:db8::1" : "192.0.2.1");
  sa.dst = *IpAddress::parse(v6 ? "2001:db8::2" : "192.0.2.2");
  sa.spi = 0xc0ffee01;
  sa.reqid = 4242;
  return sa;
}

void expect_same(const Sa& a, const Sa& b) {
  EXPECT_EQ(a.src, b.src);
  EXPECT_EQ(a.dst, b.dst);
  EXPECT_EQ(a.spi, b.spi);
  EXPECT_EQ(a.proto, b.proto);
  EXPECT_EQ(a.mode, b.mode);
  EXPECT_EQ(a.reqid, b.reqid);
  EXPECT_EQ(a.enc, b.enc);
  EXPECT_TRUE(a.enc_key.equals(b.enc_key));
  EXPECT_EQ(a.integ, b.integ);
  EXPECT_TRUE(a.integ_key.equals(b.integ_key));
  EXPECT_EQ(a.replay_window, b.replay_window);
  EXPECT_EQ(a.esn, b.esn);
  EXPECT_EQ(a.lifetime, b.lifetime);
  EXPECT_EQ(a.mark, b.mark);
  EXPECT_EQ(a.if_id, b.if_id);
  EXPECT_EQ(a.encap, b.encap);
  EXPECT_EQ(a.selector, b.selector);
  EXPECT_EQ(a.allow_no_integrity, b.allow_no_integrity);
}

struct AlgoCase {
  XfrmProto proto;
  EncAlgo enc;
  IntegAlgo integ;
};

}  // namespace

TEST(Codec, SaRoundTripEveryAlgorithmBothFamilies) {
  const AlgoCase cases[] = {
      {XfrmProto::kEsp, EncAlgo::kAesGcm128, IntegAlgo::kNone},
      {XfrmProto::kEsp, EncAlgo::kAesGcm256, IntegAlgo::kNone},
      {XfrmProto::kEsp, EncAlgo::kAesCbc128, IntegAlgo::kHmacSha1_96},
      {XfrmProto::kEsp, EncAlgo::kAesCbc192, IntegAlgo::kHmacSha256_128},
      {XfrmProto::kEsp, EncAlgo::kAesCbc256, IntegAlgo::kHmacSha384_192},
      {XfrmProto::kEsp, EncAlgo::kAesCbc256, IntegAlgo::kHmacSha512_256},
      {XfrmProto::kEsp, EncAlgo::kAesCbc128, IntegAlgo::kNone},
      {XfrmProto::kAh, EncAlgo::kNone, IntegAlgo::kHmacSha256_128},
      {XfrmProto::kEsp, EncAlgo::kNone, IntegAlgo::kHmacSha1_96},     // ESP integrity only
      {XfrmProto::kEsp, EncAlgo::kNone, IntegAlgo::kHmacSha256_128},  // ESP integrity only
      {XfrmProto::kEsp, EncAlgo::kNone, IntegAlgo::kHmacSha512_256},  // ESP integrity only
  };
  for (bool v6 : {false, true}) {
    for (const auto& c : cases) {
      Sa sa = base_sa(v6);
      sa.proto = c.proto;
      sa.enc = c.enc;
      sa.enc_key = pattern(enc_key_bytes(c.enc), 1);
      sa.integ = c.integ;
      sa.integ_key = pattern(integ_key_bytes(c.integ), 100);
      sa.allow_no_integrity = sa.integrity_warning();
      ASSERT_TRUE(validate(sa).ok()) << validate(sa).error().to_string();
      SecretBytes wire = codec::encode_sa(sa, false);
      auto back = codec::decode_sa(wire.view());
      ASSERT_TRUE(back.ok()) << back.error().to_string();
      SCOPED_TRACE(std::string(enc_name(c.enc)) + "/" + std::string(integ_name(c.integ)));
      expect_same(sa, back->sa);
    }
  }
}

TEST(Codec, SaRoundTripOptionalFields) {
  Sa sa = base_sa(false);
  sa.enc = EncAlgo::kAesGcm256;
  sa.enc_key = pattern(36, 7);
  sa.mode = Mode::kTransport;
  sa.replay_window = 128;  // > 32: carried in XFRMA_REPLAY_ESN_VAL
  sa.esn = true;
  sa.lifetime = Lifetime{1000, 2000, 10, 20, 30, 60, 5, 9};
  sa.mark = Mark{0x10, 0xf0};
  sa.if_id = 77;
  sa.encap = UdpEncap{4500, 4501};
  Selector sel = *Selector::between(*Prefix::parse("192.0.2.1/32"), *Prefix::parse("192.0.2.2/32"), kProtoTcp);
  sel.dport = PortMatch::exact(3260);
  sa.selector = sel;
  ASSERT_TRUE(validate(sa).ok());
  SecretBytes wire = codec::encode_sa(sa, true);
  auto back = codec::decode_sa(wire.view());
  ASSERT_TRUE(back.ok()) << back.error().to_string();
  expect_same(sa, back->sa);

  // Small window without ESN lives in the fixed header.
  Sa small = base_sa(true);
  small.enc = EncAlgo::kAesGcm128;
  small.enc_key = pattern(20, 3);
  small.replay_window = 32;
  auto b2 = codec::decode_sa(codec::encode_sa(small, false).view());
  ASSERT_TRUE(b2.ok());
  EXPECT_EQ(b2->sa.replay_window, 32u);
  EXPECT_FALSE(b2->sa.esn);
  EXPECT_FALSE(b2->sa.selector.has_value());
}

namespace {
// The top-level attributes of an encoded XFRM_MSG_NEWSA, by type (payload bytes).
std::map<std::uint16_t, std::vector<std::uint8_t>> sa_attrs(codec::Bytes msg) {
  std::map<std::uint16_t, std::vector<std::uint8_t>> out;
  std::size_t at = NLMSG_HDRLEN + NLMSG_ALIGN(sizeof(xfrm_usersa_info));
  while (at + NLA_HDRLEN <= msg.size()) {
    nlattr a;
    std::memcpy(&a, msg.data() + at, sizeof a);
    if (a.nla_len < NLA_HDRLEN || at + a.nla_len > msg.size()) break;
    out[a.nla_type & NLA_TYPE_MASK].assign(msg.data() + at + NLA_HDRLEN, msg.data() + at + a.nla_len);
    at += NLA_ALIGN(a.nla_len);
  }
  return out;
}
}  // namespace

TEST(Codec, EspIntegrityOnlySendsTheNullCipherWithoutKey) {
  for (bool v6 : {false, true}) {
    Sa sa = base_sa(v6);
    sa.enc = EncAlgo::kNone;
    sa.integ = IntegAlgo::kHmacSha256_128;
    sa.integ_key = pattern(32, 9);
    ASSERT_TRUE(validate(sa).ok()) << validate(sa).error().to_string();
    SecretBytes wire = codec::encode_sa(sa, false);
    auto attrs = sa_attrs(wire.view());
    // The kernel refuses an ESP SA without a cipher: XFRMA_ALG_CRYPT must be there, with an empty key.
    ASSERT_EQ(attrs.count(XFRMA_ALG_CRYPT), 1u);
    EXPECT_EQ(attrs.count(XFRMA_ALG_AEAD), 0u);
    const auto& c = attrs[XFRMA_ALG_CRYPT];
    ASSERT_GE(c.size(), sizeof(xfrm_algo));
    xfrm_algo h;
    std::memcpy(&h, c.data(), sizeof h);
    EXPECT_STREQ(h.alg_name, "ecb(cipher_null)");
    EXPECT_EQ(h.alg_key_len, 0u);
    EXPECT_EQ(c.size(), sizeof(xfrm_algo));
    ASSERT_EQ(attrs.count(XFRMA_ALG_AUTH_TRUNC), 1u);
    xfrm_algo_auth ah;
    std::memcpy(&ah, attrs[XFRMA_ALG_AUTH_TRUNC].data(), sizeof ah);
    EXPECT_STREQ(ah.alg_name, "hmac(sha256)");
    EXPECT_EQ(ah.alg_trunc_len, 128u);
    EXPECT_EQ(ah.alg_key_len, 256u);
    auto back = codec::decode_sa(wire.view());
    ASSERT_TRUE(back.ok()) << back.error().to_string();
    expect_same(sa, back->sa);
    EXPECT_FALSE(back->sa.integrity_warning());
  }
  // AH carries no cipher attribute at all.
  Sa ah = base_sa(false);
  ah.proto = XfrmProto::kAh;
  ah.integ = IntegAlgo::kHmacSha256_128;
  ah.integ_key = pattern(32, 9);
  EXPECT_EQ(sa_attrs(codec::encode_sa(ah, false).view()).count(XFRMA_ALG_CRYPT), 0u);
}

TEST(Codec, PolicyRoundTrip) {
  Policy p;
  p.selector = *Selector::between(*Prefix::parse("2001:db8:1::/48"), *Prefix::parse("2001:db8:2::/48"), kProtoUdp);
  p.selector.sport = *port_range_to_mask(1024, 2047);
  p.selector.dport = PortMatch::exact(4789);
  p.dir = Direction::kFwd;
  p.priority = 123456;
  p.index = 8 * 1000 + 2;
  p.mark = Mark{0x5c, 0xff};
  p.if_id = 9;
  p.lifetime.hard_add_seconds = 3600;
  Template t;
  t.family = Family::kIPv4;  // IPv6 inside an IPv4 tunnel
  t.src = *IpAddress::parse("192.0.2.1");
  t.dst = *IpAddress::parse("192.0.2.2");
  t.reqid = 17;
  t.spi = 0x2000;
  p.templates = {t, t};
  p.templates[1].proto = XfrmProto::kAh;
  p.templates[1].optional = true;
  ASSERT_TRUE(validate(p).ok());
  auto back = codec::decode_policy(codec::encode_policy(p, false).view());
  ASSERT_TRUE(back.ok()) << back.error().to_string();
  EXPECT_EQ(*back, p);

  Policy icmp;
  icmp.selector = Selector::any(Family::kIPv4);
  icmp.selector.proto = kProtoIcmp;
  icmp.selector.icmp_type = 3;
  icmp.selector.icmp_code = 4;
  icmp.action = PolicyAction::kBlock;
  icmp.dir = Direction::kIn;
  icmp.priority = 7;
  ASSERT_TRUE(validate(icmp).ok());
  auto b2 = codec::decode_policy(codec::encode_policy(icmp, true).view());
  ASSERT_TRUE(b2.ok());
  EXPECT_EQ(*b2, icmp);
}

TEST(Codec, OwnerPeekReadsReqidIndexAndPriority) {
  Sa sa = base_sa(false);
  sa.enc = EncAlgo::kAesGcm128;
  sa.enc_key = pattern(20, 0);
  sa.mark = Mark{1, 1};
  auto k = codec::peek_owner(codec::encode_sa(sa, false).view());
  ASSERT_TRUE(k.has_value());
  EXPECT_TRUE(k->is_sa);
  EXPECT_EQ(k->reqid, 4242u);
  EXPECT_EQ(k->mark, sa.mark);
  Policy p;
  p.priority = 99;
  p.dir = Direction::kOut;
  p.index = kOwnedIndexMin + 1;
  auto kp = codec::peek_owner(codec::encode_policy(p, false).view());
  ASSERT_TRUE(kp.has_value());
  EXPECT_FALSE(kp->is_sa);
  EXPECT_EQ(kp->priority, 99u);
  EXPECT_EQ(kp->index, kOwnedIndexMin + 1);  // the ownership tag
  EXPECT_EQ(kp->dir, 1);
}

namespace {
// Append a netlink attribute to raw bytes.
void put_attr(std::vector<std::uint8_t>& b, std::uint16_t type, const void* data, std::size_t len) {
  nlattr a{static_cast<std::uint16_t>(NLA_HDRLEN + len), type};
  std::size_t at = b.size();
  b.resize(at + NLA_ALIGN(NLA_HDRLEN + len), 0);
  std::memcpy(b.data() + at, &a, sizeof a);
  std::memcpy(b.data() + at + NLA_HDRLEN, data, len);
}
void finish(std::vector<std::uint8_t>& b) {
  auto len = static_cast<std::uint32_t>(b.size());
  std::memcpy(b.data(), &len, 4);
}
}  // namespace

TEST(Codec, DecodesExpireAcquireAndPolexpire) {
  {
    std::vector<std::uint8_t> b(NLMSG_HDRLEN + sizeof(xfrm_user_expire), 0);
    nlmsghdr h{};
    h.nlmsg_type = XFRM_MSG_EXPIRE;
    std::memcpy(b.data(), &h, sizeof h);
    xfrm_user_expire e{};
    e.state.family = AF_INET;
    e.state.id.proto = IPPROTO_ESP;
    e.state.id.spi = htonl(0x1234);
    std::memcpy(&e.state.id.daddr, IpAddress::parse("192.0.2.2")->bytes.data(), 4);
    e.state.reqid = 55;
    e.hard = 1;
    std::memcpy(b.data() + NLMSG_HDRLEN, &e, sizeof e);
    xfrm_mark m{3, 0xff};
    put_attr(b, XFRMA_MARK, &m, sizeof m);
    finish(b);
    auto ev = codec::decode_event(b);
    ASSERT_TRUE(ev.ok()) << ev.error().to_string();
    auto& x = std::get<SaExpireEvent>(*ev);
    EXPECT_TRUE(x.hard);
    EXPECT_EQ(x.id.spi, 0x1234u);
    EXPECT_EQ(x.id.dst.to_string(), "192.0.2.2");
    EXPECT_EQ(x.reqid, 55u);
    EXPECT_EQ(x.id.mark, (Mark{3, 0xff}));
  }
  {
    std::vector<std::uint8_t> b(NLMSG_HDRLEN + sizeof(xfrm_user_acquire), 0);
    nlmsghdr h{};
    h.nlmsg_type = XFRM_MSG_ACQUIRE;
    std::memcpy(b.data(), &h, sizeof h);
    xfrm_user_acquire a{};
    a.id.proto = IPPROTO_ESP;
    a.sel.family = AF_INET6;
    a.sel.prefixlen_d = 128;
    a.sel.prefixlen_s = 128;
    a.seq = 99;
    a.policy.dir = XFRM_POLICY_OUT;
    a.policy.index = 17;
    std::memcpy(b.data() + NLMSG_HDRLEN, &a, sizeof a);
    xfrm_user_tmpl t{};
    t.family = AF_INET;
    t.id.proto = IPPROTO_ESP;
    t.mode = XFRM_MODE_TUNNEL;
    t.reqid = 321;
    put_attr(b, XFRMA_TMPL, &t, sizeof t);
    finish(b);
    auto ev = codec::decode_event(b);
    ASSERT_TRUE(ev.ok()) << ev.error().to_string();
    auto& x = std::get<AcquireEvent>(*ev);
    EXPECT_EQ(x.seq, 99u);
    EXPECT_EQ(x.reqid, 321u);
    EXPECT_EQ(x.policy_index, 17u);
    EXPECT_EQ(x.selector.family, Family::kIPv6);
    EXPECT_EQ(x.src.family, Family::kIPv4);
  }
  {
    std::vector<std::uint8_t> b(NLMSG_HDRLEN + sizeof(xfrm_user_polexpire), 0);
    nlmsghdr h{};
    h.nlmsg_type = XFRM_MSG_POLEXPIRE;
    std::memcpy(b.data(), &h, sizeof h);
    xfrm_user_polexpire pe{};
    pe.pol.sel.family = AF_INET;
    pe.pol.priority = 5000;
    pe.pol.dir = XFRM_POLICY_IN;
    pe.pol.index = 8;
    pe.hard = 0;
    std::memcpy(b.data() + NLMSG_HDRLEN, &pe, sizeof pe);
    finish(b);
    auto ev = codec::decode_event(b);
    ASSERT_TRUE(ev.ok()) << ev.error().to_string();
    auto& x = std::get<PolicyExpireEvent>(*ev);
    EXPECT_FALSE(x.hard);
    EXPECT_EQ(x.priority, 5000u);
    EXPECT_EQ(x.id.dir, Direction::kIn);
  }
}

TEST(Codec, ExtendedAckNamesTheOffendingAttribute) {
  Sa sa = base_sa(false);
  sa.enc = EncAlgo::kAesGcm256;
  sa.enc_key = pattern(36, 0);
  SecretBytes req = codec::encode_sa(sa, false);
  // Offset of the first attribute (XFRMA_ALG_AEAD) = after the fixed header.
  const std::uint32_t off = NLMSG_HDRLEN + NLMSG_ALIGN(sizeof(xfrm_usersa_info)) + 2;
  EXPECT_EQ(codec::field_at_offset(req.view(), off), "XFRMA_ALG_AEAD");
  EXPECT_EQ(codec::field_at_offset(req.view(), NLMSG_HDRLEN + 4), "header (xfrm_usersa_info)");
  EXPECT_EQ(codec::field_at_offset(req.view(), 2), "netlink header");
  EXPECT_EQ(codec::field_at_offset(req.view(), 100000), "");

  std::vector<std::uint8_t> b(NLMSG_HDRLEN + sizeof(nlmsgerr), 0);
  nlmsghdr h{};
  h.nlmsg_type = NLMSG_ERROR;
  h.nlmsg_flags = NLM_F_CAPPED | NLM_F_ACK_TLVS;
  std::memcpy(b.data(), &h, sizeof h);
  nlmsgerr e{};
  e.error = -ENOSYS;
  e.msg.nlmsg_len = req.size();
  std::memcpy(b.data() + NLMSG_HDRLEN, &e, sizeof e);
  const char text[] = "Requested AEAD algorithm not found";
  put_attr(b, NLMSGERR_ATTR_MSG, text, sizeof text);
  put_attr(b, NLMSGERR_ATTR_OFFS, &off, sizeof off);
  finish(b);
  auto ne = codec::decode_error(b);
  ASSERT_TRUE(ne.ok()) << ne.error().to_string();
  EXPECT_EQ(ne->error, -ENOSYS);
  EXPECT_EQ(ne->message, text);
  ASSERT_TRUE(ne->offset.has_value());
  EXPECT_EQ(*ne->offset, off);
}

TEST(Codec, MalformedInputIsAnErrorNotACrash) {
  Sa sa = base_sa(false);
  sa.enc = EncAlgo::kAesGcm256;
  sa.enc_key = pattern(36, 0);
  SecretBytes wire = codec::encode_sa(sa, false);
  // Every truncation fails cleanly (the length field no longer fits).
  for (std::size_t n = 0; n < wire.size(); ++n) {
    auto r = codec::decode_sa(wire.view().first(n));
    EXPECT_FALSE(r.ok()) << n;
  }
  // A wrong type is refused.
  Policy p;
  auto pw = codec::encode_policy(p, false);
  EXPECT_FALSE(codec::decode_sa(pw.view()).ok());
  EXPECT_FALSE(codec::decode_event(pw.view()).ok());
  // An unknown AEAD name is reported as unsupported, naming it.
  SecretBytes bad = wire.clone();
  const std::size_t name_at = NLMSG_HDRLEN + NLMSG_ALIGN(sizeof(xfrm_usersa_info)) + NLA_HDRLEN;
  std::memcpy(bad.data() + name_at, "rfc4309(ccm(aes))", 18);
  auto r = codec::decode_sa(bad.view());
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code(), ErrorCode::kUnsupported);
  EXPECT_NE(r.error().message().find("rfc4309"), std::string::npos);
  EXPECT_TRUE(codec::split_messages({}).empty());
  EXPECT_EQ(codec::split_messages(wire.view()).size(), 1u);
}
