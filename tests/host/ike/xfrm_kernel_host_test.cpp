// Host tier: XfrmChildSaKernel against the host kernel's XFRM in a network
// namespace created by the test, read back with `ip -s xfrm` (an
// independent tool). The host kernel has XFRM but no ESP (reference/
// ipsec.md §0): ALLOCSPI works, an ESP SA cannot be installed, policies can.
// So: reserve() on the real kernel; install() refused cleanly (nothing left
// behind) when the kernel lacks ESP; the policies install() would add,
// added through the same IKE-scoped XfrmApi, are what `ip xfrm policy`
// shows (selectors, indexes in the IKE range, priorities, templates), and
// remove() deletes exactly those, leaving a charon-like policy and the
// manual list's policy on the same selectors untouched. The SA side on a
// kernel with ESP: tests/vm/ike.
#include <gtest/gtest.h>

#include <set>

#include "../netlink/ip_xfrm_parse.h"
#include "storcrypt/ike/xfrm_kernel.h"
#include "storcrypt/testing/environment.h"
#include "storcrypt/testing/netns.h"
#include "storcrypt/testing/process.h"

namespace storcrypt::ike {
namespace {

namespace nl = storcrypt::netlink;
using storcrypt::testing::IpXfrmBlock;
using storcrypt::testing::parse_ip_xfrm;
using storcrypt::testing::TestNetns;

IpAddress ip(const char* s) { return *IpAddress::parse(s); }

std::string hex32(std::uint32_t v) {
  char buf[16];
  snprintf(buf, sizeof buf, "0x%08x", v);
  return buf;
}

std::unique_ptr<nl::XfrmApi> open_in(const TestNetns& ns, nl::Ownership own) {
  nl::XfrmOptions o;
  o.netns = ns.name();
  o.ownership = own;
  auto x = nl::open_xfrm(o);
  EXPECT_TRUE(x.ok()) << x.error().to_string();
  return x.ok() ? std::move(*x) : nullptr;
}

std::vector<IpXfrmBlock> ip_xfrm(const TestNetns& ns, const std::string& what) {
  std::string out;
  EXPECT_EQ(ns.ip("-s xfrm " + what, &out), 0) << out;
  return parse_ip_xfrm(out);
}

TsRange ts(const char* lo, const char* hi) {
  TsRange t;
  t.start = ip(lo);
  t.end = ip(hi);
  return t;
}

ChildSaSpec spec_for(const ChildSaSlot& slot) {
  ChildSaSpec s;
  s.slot = slot;
  s.spi_out = 0xc0ffee01;
  s.local = ip("192.0.2.1");
  s.remote = ip("192.0.2.2");
  s.suite.protocol = ProtocolId::kEsp;
  s.suite.encr = transform_id::kEncrAesGcm16;
  s.suite.encr_key_bits = 256;
  s.in.encr = SecretBytes(36);
  s.out.encr = SecretBytes(36);
  s.local_ts = {ts("198.51.100.0", "198.51.100.255"), ts("198.51.101.0", "198.51.101.127")};
  s.remote_ts = {ts("203.0.113.0", "203.0.113.255")};
  return s;
}

bool kernel_has_esp(const TestNetns& ns) {
  auto x = open_in(ns, nl::Ownership::all());
  nl::Sa sa;
  sa.src = ip("192.0.2.9");
  sa.dst = ip("192.0.2.8");
  sa.spi = 0x4242;
  sa.enc = nl::EncAlgo::kAesGcm256;
  sa.enc_key = SecretBytes(36);
  const bool ok = x && x->add_sa(sa).ok();
  if (ok) (void)x->delete_sa(sa.id());
  return ok;
}

TEST(XfrmChildSaKernelHost, ReservePoliciesAndRemoveOnTheRealKernel) {
  STORCRYPT_REQUIRE(storcrypt::testing::can_use_netns(), "needs root and network namespaces");
  TestNetns ns("sc-ike");
  ASSERT_TRUE(ns.ok());

  // Neighbours on the same selectors: charon's (kernel-chosen index, reqid 1,
  // its own mark so the kernel keeps both) and the manual list's (index in
  // the lower half).
  std::string out;
  ASSERT_EQ(ns.ip("xfrm policy add src 198.51.100.0/24 dst 203.0.113.0/24 dir out priority 367231 mark 0x20 mask "
                  "0xff tmpl src 192.0.2.1 dst 192.0.2.2 proto esp reqid 1 mode tunnel",
                  &out),
            0)
      << out;
  auto manual = open_in(ns, nl::Ownership::manual());
  ASSERT_TRUE(manual);
  nl::Policy mp;
  mp.selector = *nl::Selector::between(*nl::Prefix::parse("203.0.113.0/24"), *nl::Prefix::parse("198.51.100.0/24"));
  mp.dir = nl::Direction::kIn;
  mp.priority = 1000;
  mp.action = nl::PolicyAction::kBlock;
  mp.mark = nl::Mark{0x10, 0xff};
  mp.index = *nl::Ownership::manual().policy_index(0, nl::Direction::kIn);
  ASSERT_TRUE(manual->add_policy(mp).ok());
  const auto before = ip_xfrm(ns, "policy");
  ASSERT_EQ(before.size(), 2u);

  auto xfrm = open_in(ns, nl::Ownership::ike());
  ASSERT_TRUE(xfrm);
  auto k = std::move(*XfrmChildSaKernel::create(*xfrm));

  // reserve(): ALLOCSPI on this kernel (no ESP module needed).
  auto slot = k->reserve(ip("192.0.2.1"), ip("192.0.2.2"));
  ASSERT_TRUE(slot.ok()) << slot.error().to_string();
  EXPECT_TRUE(nl::Ownership::ike().owns_reqid(slot->reqid));
  auto states = ip_xfrm(ns, "state");
  ASSERT_EQ(states.size(), 1u);
  EXPECT_EQ(states[0].head.at("src"), "192.0.2.2");
  EXPECT_EQ(states[0].head.at("dst"), "192.0.2.1");
  EXPECT_EQ(states[0].get("spi"), hex32(slot->spi_in));
  EXPECT_EQ(states[0].get("reqid"), std::to_string(slot->reqid));
  EXPECT_EQ(states[0].get("mode"), "tunnel");
  auto slot2 = k->reserve(ip("192.0.2.1"), ip("192.0.2.2"));
  ASSERT_TRUE(slot2.ok());
  EXPECT_NE(slot2->reqid, slot->reqid);
  EXPECT_NE(slot2->spi_in, slot->spi_in);

  ChildSaSpec spec = spec_for(*slot);
  if (!kernel_has_esp(ns)) {
    // install(): the kernel refuses the ESP SA; nothing is left behind but the larval SA.
    auto st = k->install(spec);
    ASSERT_FALSE(st.ok());
    EXPECT_EQ(st.error().code(), ErrorCode::kUnsupported) << st.error().to_string();
    EXPECT_EQ(ip_xfrm(ns, "policy").size(), 2u);
    EXPECT_EQ(ip_xfrm(ns, "state").size(), 2u);
  }

  // The policies install() adds (2 pairs x out/in/fwd), through the same XfrmApi.
  auto objs = child_sa_objects(spec);
  ASSERT_TRUE(objs.ok()) << objs.error().to_string();
  ASSERT_EQ(objs->policies.size(), 6u);
  for (const auto& p : objs->policies) {
    auto idx = xfrm->add_policy(p);
    ASSERT_TRUE(idx.ok()) << idx.error().to_string();
    EXPECT_EQ(*idx, p.index);  // the kernel honoured our index
  }
  auto shown = ip_xfrm(ns, "policy");
  ASSERT_EQ(shown.size(), 8u);
  std::set<std::string> indexes;
  for (const auto& b : shown) {
    const std::uint32_t index = static_cast<std::uint32_t>(std::stoul(b.get("index")));
    if (!nl::Ownership::ike().owns_index(index)) continue;
    indexes.insert(b.get("index"));
    const bool out_dir = b.get("dir") == "out";
    const std::string local_net = b.head.at(out_dir ? "src" : "dst");
    EXPECT_EQ(b.head.at(out_dir ? "dst" : "src"), "203.0.113.0/24") << b.text;
    EXPECT_TRUE(local_net == "198.51.100.0/24" || local_net == "198.51.101.0/25") << b.text;
    const std::uint32_t plen = local_net == "198.51.100.0/24" ? 48 : 49;
    EXPECT_EQ(b.get("priority"), std::to_string(400000 - plen * 512 - 1)) << b.text;
    ASSERT_EQ(b.tmpls.size(), 1u) << b.text;
    const auto& t = b.tmpls[0];
    EXPECT_EQ(t.at("src"), out_dir ? "192.0.2.1" : "192.0.2.2") << b.text;
    EXPECT_EQ(t.at("dst"), out_dir ? "192.0.2.2" : "192.0.2.1") << b.text;
    EXPECT_EQ(t.at("reqid"), std::to_string(slot->reqid)) << b.text;
    EXPECT_EQ(t.at("mode"), "tunnel") << b.text;
    EXPECT_EQ(t.at("spi"), hex32(0)) << "templates match by reqid (a rekey adds SAs under it)\n" << b.text;
  }
  EXPECT_EQ(indexes.size(), 6u);

  // remove(): exactly this CHILD_SA's policies and SA; the neighbours and the other reservation stay.
  auto st = k->remove(*slot, spec.local, spec.remote, spec.spi_out);
  ASSERT_TRUE(st.ok()) << st.error().to_string();
  auto after = ip_xfrm(ns, "policy");
  ASSERT_EQ(after.size(), 2u);
  for (const auto& b : after) {
    bool same = false;
    for (const auto& o : before) same = same || o.text == b.text;
    EXPECT_TRUE(same) << "changed or new: " << b.text;
  }
  states = ip_xfrm(ns, "state");
  ASSERT_EQ(states.size(), 1u);
  EXPECT_EQ(states[0].get("reqid"), std::to_string(slot2->reqid));
  ASSERT_TRUE(k->remove(*slot2, spec.local, spec.remote, 0).ok());
  EXPECT_EQ(ip_xfrm(ns, "state").size(), 0u);
  EXPECT_TRUE(k->remove(*slot2, spec.local, spec.remote, 0).ok());  // gone is fine
}

}  // namespace
}  // namespace storcrypt::ike
