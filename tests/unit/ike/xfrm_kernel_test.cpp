// XfrmChildSaKernel over FakeXfrm: reqid choice, the exact objects of a
// CHILD_SA, all-or-nothing install, and that nothing outside the IKE scope
// (the manual list's objects, another daemon's) is ever touched.
#include "storcrypt/ike/xfrm_kernel.h"

#include <gtest/gtest.h>

#include <algorithm>

#include "storcrypt/testing/fake_xfrm.h"

using namespace storcrypt;
using namespace storcrypt::ike;
namespace nl = storcrypt::netlink;

namespace {

IpAddress ip(const char* s) { return *IpAddress::parse(s); }

TsRange ts(const char* lo, const char* hi, std::uint8_t proto = 0, std::uint16_t p0 = 0, std::uint16_t p1 = 65535) {
  TsRange t;
  t.start = ip(lo);
  t.end = ip(hi);
  t.ip_protocol = proto;
  t.start_port = p0;
  t.end_port = p1;
  return t;
}

SecretBytes key(std::size_t n, std::uint8_t fill) {
  SecretBytes k(n);
  std::fill(k.mutable_view().begin(), k.mutable_view().end(), fill);
  return k;
}

Suite gcm256() {
  Suite s;
  s.protocol = ProtocolId::kEsp;
  s.encr = transform_id::kEncrAesGcm16;
  s.encr_key_bits = 256;
  s.esn = transform_id::kEsnNo;
  return s;
}

Suite cbc256_sha384() {
  Suite s = gcm256();
  s.encr = transform_id::kEncrAesCbc;
  s.integ = transform_id::kIntegHmacSha384_192;
  return s;
}

ChildSaSpec spec_for(const ChildSaSlot& slot, Suite suite = gcm256()) {
  ChildSaSpec s;
  s.slot = slot;
  s.spi_out = 0xc0ffee01;
  s.local = ip("192.0.2.1");
  s.remote = ip("192.0.2.2");
  s.suite = suite;
  const bool aead = suite.integ == 0;
  s.in.encr = key(aead ? 36 : 32, 0x11);
  s.out.encr = key(aead ? 36 : 32, 0x22);
  if (!aead) {
    s.in.integ = key(48, 0x33);
    s.out.integ = key(48, 0x44);
  }
  s.local_ts = {ts("198.51.100.0", "198.51.100.255")};
  s.remote_ts = {ts("203.0.113.0", "203.0.113.255")};
  s.lifetime.soft_add = std::chrono::seconds(3000);
  s.lifetime.hard_add = std::chrono::seconds(3600);
  s.replay_window = 64;
  return s;
}

struct Rig {
  nl::FakeXfrm fake{nl::Ownership::ike()};
  std::unique_ptr<XfrmChildSaKernel> k = std::move(*XfrmChildSaKernel::create(fake));
};

std::vector<nl::Policy> policies_of(nl::FakeXfrm& f, std::uint32_t reqid) {
  std::vector<nl::Policy> out;
  auto all = f.dump_policies();
  for (auto& p : *all)
    if (!p.templates.empty() && p.templates[0].reqid == reqid) out.push_back(p);
  return out;
}

/// The CHILD_SA `now_reqid` took the policies `was` (of another reqid) over:
/// 3 policies, each in the same kernel slot and index as before, with the new
/// template; none of `was_reqid` left.
void expect_taken_over(nl::FakeXfrm& f, std::uint32_t was_reqid, std::uint32_t now_reqid,
                       const std::vector<nl::Policy>& was) {
  EXPECT_EQ(policies_of(f, was_reqid).size(), 0u);
  auto now = policies_of(f, now_reqid);
  ASSERT_EQ(now.size(), 3u);
  for (const nl::Policy& p : now) {
    auto w = std::find_if(was.begin(), was.end(),
                          [&](const nl::Policy& s) { return s.selector == p.selector && s.dir == p.dir; });
    ASSERT_NE(w, was.end());
    EXPECT_EQ(p.index, w->index);
  }
}

/// The manual list's objects and another daemon's, on the same addresses.
void add_neighbours(nl::FakeXfrm& f) {
  nl::Sa manual;
  manual.src = ip("192.0.2.1");
  manual.dst = ip("192.0.2.2");
  manual.spi = 0x5000;
  manual.reqid = nl::kOwnedReqidMin + 7;  // manual half
  manual.enc = nl::EncAlgo::kAesGcm256;
  manual.enc_key = key(36, 1);
  f.add_foreign_sa(manual);
  nl::Sa charon = manual.clone();
  charon.spi = 0xc1000001;
  charon.reqid = 1;  // charon counts from 1
  f.add_foreign_sa(charon);

  nl::Policy mp;
  mp.selector = *nl::Selector::between(*nl::Prefix::parse("198.51.100.0/24"), *nl::Prefix::parse("203.0.113.0/24"));
  mp.dir = nl::Direction::kOut;
  mp.priority = 1000;
  mp.action = nl::PolicyAction::kBlock;
  mp.mark = nl::Mark{0x10, 0xff};  // same selector, another key (the kernel's identity includes the mark)
  mp.index = *nl::Ownership::manual().policy_index(3, nl::Direction::kOut);
  f.add_foreign_policy(mp);
  nl::Policy cp = mp;
  cp.mark = nl::Mark{0x20, 0xff};
  cp.index = 0;  // kernel-chosen, as charon's
  cp.priority = 367231;
  cp.action = nl::PolicyAction::kAllow;
  cp.templates.push_back(nl::Template{nl::XfrmProto::kEsp, nl::Mode::kTunnel, Family::kIPv4, ip("192.0.2.1"),
                                      ip("192.0.2.2"), 1, 0, false});
  f.add_foreign_policy(cp);
}

}  // namespace

TEST(XfrmChildSaKernel, RefusesAnXfrmScopeOtherThanIke) {
  nl::FakeXfrm all;
  EXPECT_EQ(XfrmChildSaKernel::create(all).error().code(), ErrorCode::kInvalidInput);
  nl::FakeXfrm storcrypt(nl::Ownership::storcrypt());
  EXPECT_EQ(XfrmChildSaKernel::create(storcrypt).error().code(), ErrorCode::kInvalidInput);
  nl::FakeXfrm manual(nl::Ownership::manual());
  EXPECT_EQ(XfrmChildSaKernel::create(manual).error().code(), ErrorCode::kInvalidInput);
  nl::FakeXfrm ike(nl::Ownership::ike());
  EXPECT_TRUE(XfrmChildSaKernel::create(ike).ok());
}

TEST(XfrmChildSaKernel, IkeAndManualScopesSplitStorcryptsRanges) {
  const auto s = nl::Ownership::storcrypt(), m = nl::Ownership::manual(), i = nl::Ownership::ike();
  EXPECT_EQ(m.reqid_min, s.reqid_min);
  EXPECT_EQ(m.reqid_max + 1, i.reqid_min);
  EXPECT_EQ(i.reqid_max, s.reqid_max);
  EXPECT_EQ(i.reqid_min, 0x6c000u);
  EXPECT_EQ(m.index_min, s.index_min);
  EXPECT_EQ(m.index_max + 1, i.index_min);
  EXPECT_EQ(i.index_min, 0xf8000000u);
  EXPECT_EQ(i.index_max, s.index_max);
}

TEST(XfrmChildSaKernel, ReservePicksFreeReqidsInTheIkeHalfAndAllocatesAnSpi) {
  Rig r;
  add_neighbours(r.fake);
  // Reqids already used by owned objects (e.g. before a restart) are skipped.
  nl::Sa old;
  old.src = ip("192.0.2.9");
  old.dst = ip("192.0.2.1");
  old.spi = 0x9999;
  old.reqid = nl::kIkeReqidMin;
  old.enc = nl::EncAlgo::kAesGcm256;
  old.enc_key = key(36, 2);
  ASSERT_TRUE(r.fake.add_sa(old).ok());
  nl::Policy op;
  op.selector = nl::Selector::any(Family::kIPv4);
  op.dir = nl::Direction::kIn;
  op.priority = 5;
  op.templates.push_back(nl::Template{nl::XfrmProto::kEsp, nl::Mode::kTunnel, Family::kIPv4, ip("192.0.2.9"),
                                      ip("192.0.2.1"), nl::kIkeReqidMin + 1, 0, false});
  op.index = *nl::Ownership::ike().policy_index(0x7fff0, nl::Direction::kIn);
  ASSERT_TRUE(r.fake.add_policy(op).ok());

  std::set<std::uint32_t> reqids, spis;
  for (int n = 0; n < 5; ++n) {
    auto slot = r.k->reserve(ip("192.0.2.1"), ip("192.0.2.2"));
    ASSERT_TRUE(slot.ok()) << slot.error().to_string();
    EXPECT_TRUE(nl::Ownership::ike().owns_reqid(slot->reqid));
    EXPECT_NE(slot->reqid, nl::kIkeReqidMin);
    EXPECT_NE(slot->reqid, nl::kIkeReqidMin + 1);
    EXPECT_GE(slot->spi_in, nl::kMinSpi);
    reqids.insert(slot->reqid);
    spis.insert(slot->spi_in);
    // The larval inbound SA: remote -> local, tagged with the reqid.
    auto larval = r.fake.get_sa(nl::SaId{ip("192.0.2.1"), slot->spi_in, nl::XfrmProto::kEsp, {}});
    ASSERT_TRUE(larval.ok());
    EXPECT_EQ(larval->sa.reqid, slot->reqid);
    EXPECT_EQ(larval->sa.src, ip("192.0.2.2"));
  }
  EXPECT_EQ(reqids.size(), 5u);
  EXPECT_EQ(spis.size(), 5u);
  EXPECT_EQ(*reqids.begin(), nl::kIkeReqidMin + 2);

  EXPECT_EQ(r.k->reserve(ip("192.0.2.1"), ip("2001:db8::2")).error().code(), ErrorCode::kInvalidInput);
}

TEST(XfrmChildSaKernel, ReserveGivesBackTheReqidWhenSpiAllocationFails) {
  Rig r;
  r.fake.fail_next("allocate_spi", Error(ErrorCode::kKernel, "boom"));
  auto bad = r.k->reserve(ip("192.0.2.1"), ip("192.0.2.2"));
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.error().message().find("boom"), std::string::npos);
  auto good = r.k->reserve(ip("192.0.2.1"), ip("192.0.2.2"));
  ASSERT_TRUE(good.ok());
  EXPECT_EQ(good->reqid, nl::kIkeReqidMin);
}

TEST(XfrmChildSaKernel, InstallGcmCreatesTwoSasAndThreePoliciesPerPair) {
  Rig r;
  auto slot = *r.k->reserve(ip("192.0.2.1"), ip("192.0.2.2"));
  ChildSaSpec spec = spec_for(slot);
  spec.encap = std::pair<std::uint16_t, std::uint16_t>{4500, 31337};
  ASSERT_TRUE(r.k->install(spec).ok());

  auto sas = *r.fake.dump_sas();
  ASSERT_EQ(sas.size(), 2u);
  auto in = *r.fake.get_sa(nl::SaId{ip("192.0.2.1"), slot.spi_in, nl::XfrmProto::kEsp, {}});
  auto out = *r.fake.get_sa(nl::SaId{ip("192.0.2.2"), 0xc0ffee01, nl::XfrmProto::kEsp, {}});
  for (const nl::SaState* s : {&in, &out}) {
    EXPECT_EQ(s->sa.reqid, slot.reqid);
    EXPECT_EQ(s->sa.mode, nl::Mode::kTunnel);
    EXPECT_EQ(s->sa.enc, nl::EncAlgo::kAesGcm256);
    EXPECT_EQ(nl::enc_kernel_name(s->sa.enc), "rfc4106(gcm(aes))");
    EXPECT_EQ(s->sa.enc_key.size() * 8, 288u);
    EXPECT_EQ(nl::enc_icv_bits(s->sa.enc), 128u);
    EXPECT_EQ(s->sa.integ, nl::IntegAlgo::kNone);
    EXPECT_EQ(s->sa.lifetime.soft_add_seconds, 3000u);
    EXPECT_EQ(s->sa.lifetime.hard_add_seconds, 3600u);
  }
  EXPECT_EQ(in.sa.src, ip("192.0.2.2"));
  EXPECT_EQ(in.sa.enc_key.view()[0], 0x11);  // keys of the right direction
  EXPECT_EQ(out.sa.enc_key.view()[0], 0x22);
  EXPECT_EQ(in.sa.replay_window, 64u);
  EXPECT_EQ(out.sa.replay_window, 0u);
  ASSERT_TRUE(in.sa.encap && out.sa.encap);
  EXPECT_EQ(*in.sa.encap, (nl::UdpEncap{31337, 4500}));  // sent by the peer
  EXPECT_EQ(*out.sa.encap, (nl::UdpEncap{4500, 31337}));

  auto pols = *r.fake.dump_policies();
  ASSERT_EQ(pols.size(), 3u);
  const auto net_l = *nl::Prefix::parse("198.51.100.0/24"), net_r = *nl::Prefix::parse("203.0.113.0/24");
  for (const auto& p : pols) {
    ASSERT_EQ(p.templates.size(), 1u);
    const auto& t = p.templates[0];
    EXPECT_EQ(t.reqid, slot.reqid);
    EXPECT_EQ(t.mode, nl::Mode::kTunnel);
    EXPECT_EQ(p.action, nl::PolicyAction::kAllow);
    EXPECT_EQ(p.priority, 400000u - 48 * 512 - 1);  // charon's DEFAULT class for /24 <-> /24
    EXPECT_EQ(p.index, *nl::Ownership::ike().policy_index((slot.reqid - 0x6c000) * 16, p.dir));
    if (p.dir == nl::Direction::kOut) {
      EXPECT_EQ(p.selector.src, net_l);
      EXPECT_EQ(p.selector.dst, net_r);
      EXPECT_EQ(t.src, ip("192.0.2.1"));
      EXPECT_EQ(t.dst, ip("192.0.2.2"));
      EXPECT_EQ(t.spi, 0u) << "no SPI in a template: a rekey adds SAs under the reqid";
    } else {
      EXPECT_EQ(p.selector.src, net_r);
      EXPECT_EQ(p.selector.dst, net_l);
      EXPECT_EQ(t.src, ip("192.0.2.2"));
      EXPECT_EQ(t.dst, ip("192.0.2.1"));
      EXPECT_EQ(t.spi, 0u);
    }
  }
  std::set<nl::Direction> dirs;
  for (const auto& p : pols) dirs.insert(p.dir);
  EXPECT_EQ(dirs.size(), 3u);

  // Traffic from 198.51.100.7 to 203.0.113.9 goes through this CHILD_SA.
  auto hit = r.fake.lookup_policy(nl::Direction::kOut, ip("198.51.100.7"), ip("203.0.113.9"), 6, 1234, 80);
  ASSERT_TRUE(hit.has_value());
  EXPECT_EQ(hit->templates[0].reqid, slot.reqid);
}

TEST(XfrmChildSaKernel, InstallCbcSha384WithoutEncap) {
  Rig r;
  auto slot = *r.k->reserve(ip("192.0.2.1"), ip("192.0.2.2"));
  ASSERT_TRUE(r.k->install(spec_for(slot, cbc256_sha384())).ok());
  auto out = *r.fake.get_sa(nl::SaId{ip("192.0.2.2"), 0xc0ffee01, nl::XfrmProto::kEsp, {}});
  EXPECT_EQ(nl::enc_kernel_name(out.sa.enc), "cbc(aes)");
  EXPECT_EQ(out.sa.enc_key.size(), 32u);
  EXPECT_EQ(nl::integ_kernel_name(out.sa.integ), "hmac(sha384)");
  EXPECT_EQ(nl::integ_trunc_bits(out.sa.integ), 192u);
  EXPECT_EQ(out.sa.integ_key.view()[0], 0x44);
  EXPECT_FALSE(out.sa.encap.has_value());
}

TEST(XfrmChildSaKernel, RangesBecomeSeveralPairsWithDistinctIndexesAndMoreThan16AreRefused) {
  Rig r;
  auto slot = *r.k->reserve(ip("192.0.2.1"), ip("192.0.2.2"));
  ChildSaSpec spec = spec_for(slot);
  // 198.51.100.0-198.51.100.2 = /31 + /32; TCP 80-81 = one mask; x 2 remote ranges
  spec.local_ts = {ts("198.51.100.0", "198.51.100.2", 6, 80, 81)};
  spec.remote_ts = {ts("203.0.113.0", "203.0.113.255"), ts("2001:db8::", "2001:db8::ffff")};
  ASSERT_TRUE(r.k->install(spec).ok());
  auto pols = policies_of(r.fake, slot.reqid);
  ASSERT_EQ(pols.size(), 2u * 3u);  // the IPv6 remote range pairs with no local range
  std::set<std::uint32_t> idx;
  for (const auto& p : pols) {
    idx.insert(p.index);
    EXPECT_EQ(p.selector.proto, 6);
    const auto& port = p.dir == nl::Direction::kOut ? p.selector.sport : p.selector.dport;
    EXPECT_EQ(port, (nl::PortMatch{80, 0xfffe}));
  }
  EXPECT_EQ(idx.size(), 6u);

  auto slot2 = *r.k->reserve(ip("192.0.2.1"), ip("192.0.2.2"));
  ChildSaSpec big = spec_for(slot2);
  big.spi_out = 0xc0ffee02;
  big.local_ts = {ts("198.51.100.1", "198.51.100.6")};  // 3 prefixes (.1, .2/31, .4/31, .6) = 4
  big.remote_ts = {ts("203.0.113.1", "203.0.113.6"),    // 4
                   ts("203.0.113.9", "203.0.113.9")};   // 1 -> 4 x 5 = 20 > 16
  const auto before_sas = r.fake.total_sas(), before_pols = r.fake.total_policies();
  auto st = r.k->install(big);
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.error().code(), ErrorCode::kInvalidInput);
  EXPECT_NE(st.error().message().find("20 kernel selector pairs"), std::string::npos) << st.error().message();
  EXPECT_EQ(r.fake.total_sas(), before_sas);
  EXPECT_EQ(r.fake.total_policies(), before_pols);
}

TEST(XfrmChildSaKernel, FailureAtEachStepUndoesEverything) {
  // update_sa: the inbound SA; add_sa: the outbound one (after the inbound);
  // add_policy: the first policy (after both SAs). A failure in the middle of
  // the policies: ConflictOnALaterPolicyUndoesTheEarlierOnes.
  for (const char* op : {"update_sa", "add_sa", "add_policy"}) {
    SCOPED_TRACE(op);
    Rig r;
    add_neighbours(r.fake);
    auto slot = *r.k->reserve(ip("192.0.2.1"), ip("192.0.2.2"));
    ChildSaSpec spec = spec_for(slot);
    spec.local_ts.push_back(ts("198.51.101.0", "198.51.101.255"));  // 2 pairs, 6 policies
    const auto pols0 = r.fake.total_policies();
    r.fake.fail_next(op, Error(ErrorCode::kKernel, "injected refusal"));
    auto st = r.k->install(spec);
    ASSERT_FALSE(st.ok());
    EXPECT_EQ(st.error().code(), ErrorCode::kKernel);
    EXPECT_NE(st.error().message().find("injected refusal"), std::string::npos);
    EXPECT_NE(st.error().message().find("reqid 0x"), std::string::npos);
    EXPECT_EQ(r.fake.total_policies(), pols0);  // the neighbours' two
    EXPECT_EQ(r.fake.dump_policies()->size(), 0u);
    // Nothing of the CHILD_SA but (when the inbound update itself failed) the reservation's larval SA.
    EXPECT_EQ(r.fake.dump_sas()->size(), std::string(op) == "update_sa" ? 1u : 0u);
    EXPECT_EQ(r.fake.total_sas() - r.fake.dump_sas()->size(), 2u);  // the neighbours' two
  }
}

TEST(XfrmChildSaKernel, ConflictOnALaterPolicyUndoesTheEarlierOnes) {
  Rig r;
  auto slot = *r.k->reserve(ip("192.0.2.1"), ip("192.0.2.2"));
  ChildSaSpec spec = spec_for(slot);
  spec.local_ts.push_back(ts("198.51.101.0", "198.51.101.255"));  // pair 1
  // Another daemon already holds pair 1's FWD selector (same selector, dir, no mark).
  nl::Policy foreign;
  foreign.selector =
      *nl::Selector::between(*nl::Prefix::parse("203.0.113.0/24"), *nl::Prefix::parse("198.51.101.0/24"));
  foreign.dir = nl::Direction::kFwd;
  foreign.priority = 1;
  foreign.action = nl::PolicyAction::kBlock;
  r.fake.add_foreign_policy(foreign);
  const auto sas0 = r.fake.total_sas();
  auto st = r.k->install(spec);
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.error().code(), ErrorCode::kConflict);
  EXPECT_EQ(r.fake.dump_policies()->size(), 0u);  // pair 0's three and pair 1's OUT, IN removed
  EXPECT_EQ(r.fake.total_policies(), 1u);         // the foreign one survived
  EXPECT_EQ(r.fake.dump_sas()->size(), 0u);       // in (was larval) and out removed
  EXPECT_EQ(r.fake.total_sas(), sas0 - 1);
  EXPECT_EQ(r.fake.dump_foreign_policies()->at(0).dir, nl::Direction::kFwd);
}

TEST(XfrmChildSaKernel, InstallFallsBackToAddWhenTheLarvalSaExpired) {
  Rig r;
  auto slot = *r.k->reserve(ip("192.0.2.1"), ip("192.0.2.2"));
  ASSERT_TRUE(r.fake.delete_sa(nl::SaId{ip("192.0.2.1"), slot.spi_in, nl::XfrmProto::kEsp, {}}).ok());
  ASSERT_TRUE(r.k->install(spec_for(slot)).ok());
  EXPECT_EQ(r.fake.dump_sas()->size(), 2u);
}

TEST(XfrmChildSaKernel, RefusesWhatTheKernelMappingLacks) {
  Rig r;
  auto slot = *r.k->reserve(ip("192.0.2.1"), ip("192.0.2.2"));
  Suite gcm8 = gcm256();
  gcm8.encr = transform_id::kEncrAesGcm8;
  EXPECT_EQ(r.k->install(spec_for(slot, gcm8)).error().code(), ErrorCode::kUnsupported);
  ChildSaSpec shortkey = spec_for(slot);
  shortkey.in.encr = key(32, 1);  // GCM needs key + salt
  auto st = r.k->install(shortkey);
  EXPECT_EQ(st.error().code(), ErrorCode::kInvalidInput);
  EXPECT_NE(st.error().message().find("enc_key"), std::string::npos);
  ChildSaSpec foreign = spec_for(slot);
  foreign.slot.reqid = 1;  // charon's
  EXPECT_EQ(r.k->install(foreign).error().code(), ErrorCode::kInvalidInput);
  EXPECT_EQ(r.k->remove(foreign.slot, foreign.local, foreign.remote, foreign.spi_out).error().code(),
            ErrorCode::kInvalidInput);
  EXPECT_EQ(r.fake.dump_policies()->size(), 0u);
}

TEST(XfrmChildSaKernel, RemoveRemovesOnlyThatChildSa) {
  Rig r;
  add_neighbours(r.fake);
  auto a = *r.k->reserve(ip("192.0.2.1"), ip("192.0.2.2"));
  auto b = *r.k->reserve(ip("192.0.2.1"), ip("192.0.2.2"));
  ChildSaSpec sa = spec_for(a), sb = spec_for(b);
  sb.spi_out = 0xc0ffee02;
  sb.local_ts = {ts("198.51.101.0", "198.51.101.255")};
  ASSERT_TRUE(r.k->install(sa).ok());
  ASSERT_TRUE(r.k->install(sb).ok());
  const auto foreign_sas = r.fake.total_sas() - r.fake.dump_sas()->size();
  const auto foreign_pols = r.fake.dump_foreign_policies()->size();
  ASSERT_EQ(foreign_sas, 2u);
  ASSERT_EQ(foreign_pols, 2u);

  ASSERT_TRUE(r.k->remove(a, sa.local, sa.remote, sa.spi_out).ok());
  EXPECT_EQ(policies_of(r.fake, a.reqid).size(), 0u);
  EXPECT_EQ(policies_of(r.fake, b.reqid).size(), 3u);
  auto left = *r.fake.dump_sas();
  ASSERT_EQ(left.size(), 2u);
  for (const auto& s : left) EXPECT_EQ(s.sa.reqid, b.reqid);
  EXPECT_EQ(r.fake.total_sas() - left.size(), foreign_sas);
  EXPECT_EQ(r.fake.dump_foreign_policies()->size(), foreign_pols);
  EXPECT_TRUE(r.k->counters(b, sb.local, sb.remote, sb.spi_out).ok());
  EXPECT_EQ(r.k->counters(a, sa.local, sa.remote, sa.spi_out).error().code(), ErrorCode::kNotFound);

  // Again: already gone is fine. A stale SPI naming b's SA leaves it alone.
  EXPECT_TRUE(r.k->remove(a, sa.local, sa.remote, sa.spi_out).ok());
  auto st = r.k->remove(a, sa.local, sa.remote, sb.spi_out);
  EXPECT_EQ(st.error().code(), ErrorCode::kConflict);
  EXPECT_EQ(r.fake.dump_sas()->size(), 2u);

  // A fresh instance (after a restart) does not know b's pair count: it still finds everything.
  auto k2 = std::move(*XfrmChildSaKernel::create(r.fake));
  ASSERT_TRUE(k2->remove(b, sb.local, sb.remote, sb.spi_out).ok());
  EXPECT_EQ(r.fake.dump_sas()->size(), 0u);
  EXPECT_EQ(r.fake.dump_policies()->size(), 0u);
  EXPECT_EQ(r.fake.total_sas(), foreign_sas);
  EXPECT_EQ(r.fake.total_policies(), foreign_pols);
}

// Restart after SIGKILL: the dead instance's CHILD_SAs stay in the kernel.
// The new instance deletes their SAs at once and keeps their policies (the
// traffic finds no SA: dropped, not sent in clear); a new CHILD_SA of the same
// selectors takes each policy over in one step (no moment without a policy),
// and its remove() finds them by the index the kernel kept. Stale policies of
// peers no longer configured are pruned; neighbours are never touched.
TEST(XfrmChildSaKernel, RestartClearsStaleSasAndANewChildSaTakesOverTheStalePolicies) {
  Rig r;
  add_neighbours(r.fake);
  const auto foreign_sas = r.fake.total_sas() - r.fake.dump_sas()->size();
  const auto foreign_pols = r.fake.dump_foreign_policies()->size();
  auto old = *r.k->reserve(ip("192.0.2.1"), ip("192.0.2.2"));
  ChildSaSpec so = spec_for(old);
  ASSERT_TRUE(r.k->install(so).ok());
  // A second dead CHILD_SA with another peer (no longer configured).
  auto gone = *r.k->reserve(ip("192.0.2.1"), ip("192.0.2.9"));
  ChildSaSpec sg = spec_for(gone);
  sg.remote = ip("192.0.2.9");
  sg.spi_out = 0xc0ffee09;
  sg.remote_ts = {ts("203.0.113.128", "203.0.113.255")};
  sg.local_ts = {ts("198.51.100.128", "198.51.100.255")};
  ASSERT_TRUE(r.k->install(sg).ok());
  const std::vector<nl::Policy> stale_old = policies_of(r.fake, old.reqid);
  ASSERT_EQ(stale_old.size(), 3u);

  // "SIGKILL": the old instance is gone without removing anything.
  auto k2 = std::move(*XfrmChildSaKernel::create(r.fake));
  // A new instance that already reserved a CHILD_SA must not call it.
  {
    auto k3 = std::move(*XfrmChildSaKernel::create(r.fake));
    (void)k3->reserve(ip("192.0.2.1"), ip("192.0.2.2"));
    EXPECT_EQ(k3->clear_stale().error().code(), ErrorCode::kInvalidInput);
    auto extra = *r.fake.dump_sas();  // k3's larval SA: remove it again
    for (const auto& s : extra)
      if (s.sa.reqid != old.reqid && s.sa.reqid != gone.reqid) {
        ASSERT_TRUE(r.fake.delete_sa(s.sa.id()).ok());
      }
  }
  auto st = k2->clear_stale();
  ASSERT_TRUE(st.ok()) << st.error().to_string();
  EXPECT_EQ(st->sas_deleted, 4u);
  EXPECT_EQ(st->policies_kept, 6u);
  EXPECT_EQ(r.fake.dump_sas()->size(), 0u);
  EXPECT_EQ(r.fake.dump_policies()->size(), 6u);
  EXPECT_EQ(r.fake.total_sas(), foreign_sas);

  // Only the configured peer's stale policies stay.
  auto pruned = k2->prune_stale({ip("192.0.2.2")});
  ASSERT_TRUE(pruned.ok()) << pruned.error().to_string();
  EXPECT_EQ(*pruned, 3u);
  EXPECT_EQ(policies_of(r.fake, gone.reqid).size(), 0u);
  EXPECT_EQ(policies_of(r.fake, old.reqid).size(), 3u);

  // The new CHILD_SA of the same selectors: a fresh reqid (not the stale
  // one, whose indexes the kept policies hold), the stale policies replaced.
  // (Meanwhile that peer's traffic meets its stale policies without an SA:
  // dropped by the kernel, never sent in clear; vm.ike_interop's
  // interop_restart.sh proves that with real ESP.)
  auto fresh = *k2->reserve(ip("192.0.2.1"), ip("192.0.2.2"));
  EXPECT_NE(fresh.reqid, old.reqid);
  ChildSaSpec sf = spec_for(fresh);
  sf.spi_out = 0xc0ffee11;
  auto inst = k2->install(sf);
  ASSERT_TRUE(inst.ok()) << inst.error().to_string();
  expect_taken_over(r.fake, old.reqid, fresh.reqid, stale_old);
  EXPECT_EQ(r.fake.dump_sas()->size(), 2u);

  // A second restart before anything was removed: the same again.
  ASSERT_TRUE(k2->remove(fresh, sf.local, sf.remote, sf.spi_out).ok());
  EXPECT_EQ(r.fake.dump_policies()->size(), 0u);
  EXPECT_EQ(r.fake.dump_sas()->size(), 0u);
  EXPECT_EQ(r.fake.total_sas(), foreign_sas);
  EXPECT_EQ(r.fake.dump_foreign_policies()->size(), foreign_pols);
}

// A dead peer to be restarted (dpd-action restart): retire() deletes its
// CHILD_SA's SAs and keeps the policies as stale (its traffic is dropped, not
// sent in clear); the restarted CHILD_SA takes them over in place, a second
// retire() keeps the taken-over ones too, and prune_stale() without the peer
// deletes them. Neighbours are untouched throughout.
TEST(XfrmChildSaKernel, RetireOfADeadPeersChildSaKeepsItsPoliciesForTheRestart) {
  Rig r;
  add_neighbours(r.fake);
  const auto foreign_sas = r.fake.total_sas() - r.fake.dump_sas()->size();
  const auto foreign_pols = r.fake.dump_foreign_policies()->size();
  auto old = *r.k->reserve(ip("192.0.2.1"), ip("192.0.2.2"));
  ChildSaSpec so = spec_for(old);
  ASSERT_TRUE(r.k->install(so).ok());
  const std::vector<nl::Policy> was = policies_of(r.fake, old.reqid);
  ASSERT_EQ(was.size(), 3u);

  auto st = r.k->retire(old, so.local, so.remote, so.spi_out);
  ASSERT_TRUE(st.ok()) << st.error().to_string();
  EXPECT_EQ(r.fake.dump_sas()->size(), 0u);
  EXPECT_EQ(policies_of(r.fake, old.reqid).size(), 3u);

  // The restart: a new reqid (the kept indexes derive from the old one), the
  // kept policies replaced in place.
  auto fresh = *r.k->reserve(ip("192.0.2.1"), ip("192.0.2.2"));
  EXPECT_NE(fresh.reqid, old.reqid);
  ChildSaSpec sf = spec_for(fresh);
  sf.spi_out = 0xc0ffee12;
  auto inst = r.k->install(sf);
  ASSERT_TRUE(inst.ok()) << inst.error().to_string();
  expect_taken_over(r.fake, old.reqid, fresh.reqid, was);
  EXPECT_EQ(r.fake.dump_sas()->size(), 2u);

  // Dead again, then the peer is removed from the configuration.
  ASSERT_TRUE(r.k->retire(fresh, sf.local, sf.remote, sf.spi_out).ok());
  EXPECT_EQ(r.fake.dump_sas()->size(), 0u);
  EXPECT_EQ(policies_of(r.fake, fresh.reqid).size(), 3u);
  auto pruned = r.k->prune_stale({ip("192.0.2.99")});
  ASSERT_TRUE(pruned.ok()) << pruned.error().to_string();
  EXPECT_EQ(*pruned, 3u);
  EXPECT_EQ(r.fake.dump_policies()->size(), 0u);
  EXPECT_EQ(r.fake.total_sas(), foreign_sas);
  EXPECT_EQ(r.fake.dump_foreign_policies()->size(), foreign_pols);
}

// Without clear_stale() (the state before this fix) a restarted instance
// cannot install a CHILD_SA over its predecessor's policies: the kernel's
// duplicate check ignores index and priority.
TEST(XfrmChildSaKernel, WithoutTheStaleScanTheKernelRefusesTheSameSelectors) {
  Rig r;
  auto old = *r.k->reserve(ip("192.0.2.1"), ip("192.0.2.2"));
  ASSERT_TRUE(r.k->install(spec_for(old)).ok());
  auto k2 = std::move(*XfrmChildSaKernel::create(r.fake));
  auto fresh = *k2->reserve(ip("192.0.2.1"), ip("192.0.2.2"));
  ChildSaSpec sf = spec_for(fresh);
  sf.spi_out = 0xc0ffee11;
  EXPECT_EQ(k2->install(sf).error().code(), ErrorCode::kConflict);
  // All or nothing: the old CHILD_SA's policies are untouched.
  EXPECT_EQ(policies_of(r.fake, old.reqid).size(), 3u);
  EXPECT_EQ(policies_of(r.fake, fresh.reqid).size(), 0u);
}

// A new CHILD_SA that fails half-way (here: another daemon holds the FWD
// policy of the same selector) puts the stale policies it took back.
TEST(XfrmChildSaKernel, AFailedInstallPutsTheStalePoliciesBack) {
  Rig r;
  auto old = *r.k->reserve(ip("192.0.2.1"), ip("192.0.2.2"));
  ASSERT_TRUE(r.k->install(spec_for(old)).ok());
  auto stale = policies_of(r.fake, old.reqid);
  auto fwd = std::find_if(stale.begin(), stale.end(), [](const nl::Policy& p) { return p.dir == nl::Direction::kFwd; });
  ASSERT_NE(fwd, stale.end());
  nl::PolicyId fid;
  fid.dir = fwd->dir;
  fid.index = fwd->index;
  ASSERT_TRUE(r.fake.delete_policy(fid).ok());
  nl::Policy charon = *fwd;
  charon.index = 0;  // kernel-chosen: not ours
  charon.templates.at(0).reqid = 1;
  r.fake.add_foreign_policy(charon);
  stale.erase(fwd);

  auto k2 = std::move(*XfrmChildSaKernel::create(r.fake));
  auto cleared = k2->clear_stale();
  ASSERT_TRUE(cleared.ok());
  EXPECT_EQ(cleared->policies_kept, 2u);
  auto fresh = *k2->reserve(ip("192.0.2.1"), ip("192.0.2.2"));
  ChildSaSpec sf = spec_for(fresh);
  sf.spi_out = 0xc0ffee11;
  auto st = k2->install(sf);
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.error().code(), ErrorCode::kConflict);
  // OUT and IN were taken over, then put back exactly as they were.
  auto back = policies_of(r.fake, old.reqid);
  ASSERT_EQ(back.size(), 2u);
  for (const nl::Policy& p : back)
    EXPECT_NE(std::find(stale.begin(), stale.end(), p), stale.end()) << p.to_string();
  EXPECT_EQ(policies_of(r.fake, fresh.reqid).size(), 0u);
  EXPECT_EQ(r.fake.dump_sas()->size(), 0u);
  EXPECT_EQ(r.fake.dump_foreign_policies()->size(), 1u);
}

TEST(XfrmChildSaKernel, RemoveOfAReservationOnly) {
  Rig r;
  auto a = *r.k->reserve(ip("192.0.2.1"), ip("192.0.2.2"));
  ASSERT_TRUE(r.k->remove(a, ip("192.0.2.1"), ip("192.0.2.2"), 0).ok());
  EXPECT_EQ(r.fake.total_sas(), 0u);
  // The reqid is free again.
  auto b = *r.k->reserve(ip("192.0.2.1"), ip("192.0.2.2"));
  EXPECT_NE(b.reqid, 0u);
}

TEST(XfrmChildSaKernel, RekeyAddsSasUnderTheOldReqidAndRemovesTheOldOnesOneByOne) {
  Rig r;
  add_neighbours(r.fake);
  const std::size_t foreign_sas = r.fake.total_sas();
  auto a = *r.k->reserve(ip("192.0.2.1"), ip("192.0.2.2"));
  ChildSaSpec old = spec_for(a);
  ASSERT_TRUE(r.k->install(old).ok());
  const auto policies_before = policies_of(r.fake, a.reqid);
  ASSERT_EQ(policies_before.size(), 3u);

  auto n = r.k->reserve_rekey(a, old.local, old.remote);
  ASSERT_TRUE(n.ok()) << n.error().to_string();
  EXPECT_EQ(n->reqid, a.reqid);
  EXPECT_NE(n->spi_in, a.spi_in);
  ChildSaSpec next = spec_for(*n);
  next.spi_out = 0xc0ffee77;
  next.in.encr = key(36, 0x55);
  next.out.encr = key(36, 0x66);
  ASSERT_TRUE(r.k->install_sa(next, SaDirection::kIn).ok());
  ASSERT_TRUE(r.k->install_sa(next, SaDirection::kOut).ok());
  EXPECT_EQ(r.fake.dump_sas()->size(), 4u);  // old and new pairs, one reqid
  const auto both = *r.fake.dump_sas();
  for (const auto& sa : both) EXPECT_EQ(sa.sa.reqid, a.reqid);
  auto in_new = r.fake.get_sa(nl::SaId{ip("192.0.2.1"), n->spi_in, nl::XfrmProto::kEsp, {}});
  ASSERT_TRUE(in_new.ok());
  EXPECT_TRUE(in_new->sa.enc_key.size() == next.in.encr.size() &&
              std::equal(next.in.encr.data(), next.in.encr.data() + next.in.encr.size(), in_new->sa.enc_key.data()));
  EXPECT_EQ(policies_of(r.fake, a.reqid).size(), 3u) << "a rekey touches no policy";

  ASSERT_TRUE(r.k->remove_sa(a.reqid, old.local, a.spi_in).ok());
  ASSERT_TRUE(r.k->remove_sa(a.reqid, old.remote, old.spi_out).ok());
  EXPECT_TRUE(r.k->remove_sa(a.reqid, old.remote, old.spi_out).ok()) << "already gone is fine";
  EXPECT_EQ(r.fake.dump_sas()->size(), 2u);
  EXPECT_EQ(policies_of(r.fake, a.reqid).size(), 3u);
  // Charon's SAs (reqid 1, no mark of ours) are out of reach: not found in our scope, left alone.
  EXPECT_TRUE(r.k->remove_sa(a.reqid, ip("192.0.2.2"), 0xc1000001).ok());
  EXPECT_EQ(r.k->remove_sa(1, ip("192.0.2.2"), 0xc1000001).error().code(), ErrorCode::kInvalidInput);
  EXPECT_EQ(r.fake.total_sas(), foreign_sas + 2);
  // Another CHILD_SA of ours is not removed by a remove_sa naming this reqid.
  auto b = *r.k->reserve(ip("192.0.2.1"), ip("192.0.2.2"));
  ChildSaSpec other = spec_for(b);
  other.local_ts = {ts("198.51.100.0", "198.51.100.0", 6, 22, 22)};  // another CHILD_SA: other selectors
  ASSERT_TRUE(r.k->install(other).ok());
  EXPECT_EQ(r.k->remove_sa(a.reqid, ip("192.0.2.1"), b.spi_in).error().code(), ErrorCode::kConflict);
  ASSERT_TRUE(r.k->remove(b, ip("192.0.2.1"), ip("192.0.2.2"), other.spi_out).ok());
  EXPECT_EQ(r.fake.total_sas(), foreign_sas + 2);

  // The new pair is the CHILD_SA now: counters and remove() find it.
  EXPECT_TRUE(r.k->counters(*n, next.local, next.remote, next.spi_out).ok());
  ASSERT_TRUE(r.k->remove(*n, next.local, next.remote, next.spi_out).ok());
  EXPECT_EQ(r.fake.dump_sas()->size(), 0u);
  EXPECT_EQ(r.fake.dump_policies()->size(), 0u);
  EXPECT_EQ(r.fake.total_sas(), foreign_sas);
}

TEST(XfrmChildSaKernel, CountersComeFromBothSas) {
  Rig r;
  auto a = *r.k->reserve(ip("192.0.2.1"), ip("192.0.2.2"));
  ChildSaSpec s = spec_for(a);
  ASSERT_TRUE(r.k->install(s).ok());
  ASSERT_TRUE(r.fake.add_traffic(nl::SaId{ip("192.0.2.1"), a.spi_in, nl::XfrmProto::kEsp, {}}, 1000, 10).ok());
  ASSERT_TRUE(r.fake.add_traffic(nl::SaId{ip("192.0.2.2"), s.spi_out, nl::XfrmProto::kEsp, {}}, 500, 4).ok());
  auto c = r.k->counters(a, s.local, s.remote, s.spi_out);
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->bytes_in, 1000u);
  EXPECT_EQ(c->packets_in, 10u);
  EXPECT_EQ(c->bytes_out, 500u);
  EXPECT_EQ(c->packets_out, 4u);
}

TEST(XfrmChildSaKernel, TheXfrmScopeItselfRefusesForeignObjects) {
  // Even a buggy caller cannot reach outside the IKE half through this XfrmApi.
  nl::FakeXfrm f(nl::Ownership::ike());
  add_neighbours(f);
  nl::Sa manual;
  manual.src = ip("192.0.2.1");
  manual.dst = ip("192.0.2.2");
  manual.spi = 0x5000;
  EXPECT_EQ(f.delete_sa(manual.id()).error().code(), ErrorCode::kConflict);
  EXPECT_EQ(f.get_sa(manual.id()).error().code(), ErrorCode::kNotFound);
  nl::PolicyId mid;
  mid.dir = nl::Direction::kOut;
  mid.index = *nl::Ownership::manual().policy_index(3, nl::Direction::kOut);
  EXPECT_FALSE(f.delete_policy(mid).ok());
  EXPECT_EQ(f.total_sas(), 2u);
  EXPECT_EQ(f.total_policies(), 2u);
}

TEST(ChildSaObjects, IcmpAndTransportMode) {
  ChildSaSpec s = spec_for(ChildSaSlot{nl::kIkeReqidMin + 5, 0x1234});
  s.tunnel = false;
  s.local_ts = {ts("192.0.2.1", "192.0.2.1", 1, 0x0800, 0x08ff)};  // ICMP echo request, any code
  s.remote_ts = {ts("192.0.2.2", "192.0.2.2")};
  auto o = child_sa_objects(s);
  ASSERT_TRUE(o.ok()) << o.error().to_string();
  EXPECT_EQ(o->in.mode, nl::Mode::kTransport);
  ASSERT_EQ(o->policies.size(), 3u);
  for (const auto& p : o->policies) {
    EXPECT_EQ(p.selector.proto, 1);
    EXPECT_EQ(p.selector.icmp_type, std::optional<std::uint8_t>(8));
    EXPECT_FALSE(p.selector.icmp_code.has_value());
    EXPECT_EQ(p.templates[0].mode, nl::Mode::kTransport);
    EXPECT_TRUE(p.templates[0].src.is_any());
  }
  EXPECT_EQ(o->policies[0].priority, 400000u - 64 * 512 - 256 - 1);
}
