#include "storcrypt/testing/fake_xfrm.h"

#include <gtest/gtest.h>

#include <thread>

using namespace storcrypt;
using namespace storcrypt::netlink;
using namespace std::chrono_literals;

namespace {

Ownership scope() {
  Ownership o;
  o.reqid_min = 100;
  o.reqid_max = 199;
  o.index_min = kOwnedIndexMin;
  o.index_max = kOwnedIndexMin + 0xffff;
  return o;
}

std::uint32_t next_slot = 0;

Sa make_sa(std::uint32_t spi, std::uint32_t reqid = 100) {
  Sa sa;
  sa.src = *IpAddress::parse("192.0.2.1");
  sa.dst = *IpAddress::parse("192.0.2.2");
  sa.spi = spi;
  sa.reqid = reqid;
  sa.enc = EncAlgo::kAesGcm128;
  sa.enc_key = SecretBytes(20);
  return sa;
}

Policy make_policy(const char* dst, std::uint32_t prio, Direction dir = Direction::kOut) {
  Policy p;
  p.selector = *Selector::between(*Prefix::parse("10.0.0.0/8"), *Prefix::parse(dst));
  p.dir = dir;
  p.priority = prio;
  p.action = PolicyAction::kBlock;
  p.index = *scope().policy_index(next_slot++, dir);  // the ownership tag
  return p;
}

/// Another daemon's policy: a kernel-chosen index, any priority.
Policy foreign_policy(const char* dst, std::uint32_t prio, Direction dir = Direction::kOut) {
  Policy p = make_policy(dst, prio, dir);
  p.index = 0;
  return p;
}

}  // namespace

TEST(FakeXfrm, SaLifecycleAndConflicts) {
  FakeXfrm x(scope());
  ASSERT_TRUE(x.add_sa(make_sa(0x1000)).ok());
  auto dup = x.add_sa(make_sa(0x1000));
  ASSERT_FALSE(dup.ok());
  EXPECT_EQ(dup.error().code(), ErrorCode::kConflict);
  auto got = x.get_sa(make_sa(0x1000).id());
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(got->sa.enc, EncAlgo::kAesGcm128);
  EXPECT_EQ(got->sa.enc_key.size(), 20u);
  ASSERT_TRUE(x.add_traffic(make_sa(0x1000).id(), 1500, 3).ok());
  EXPECT_EQ(x.get_sa(make_sa(0x1000).id())->counters.packets, 3u);
  Sa upd = make_sa(0x1000);
  upd.replay_window = 32;
  ASSERT_TRUE(x.update_sa(upd).ok());
  EXPECT_EQ(x.get_sa(upd.id())->sa.replay_window, 32u);
  EXPECT_EQ(x.update_sa(make_sa(0x2000)).error().code(), ErrorCode::kNotFound);
  ASSERT_TRUE(x.delete_sa(upd.id()).ok());
  EXPECT_EQ(x.delete_sa(upd.id()).error().code(), ErrorCode::kNotFound);
  EXPECT_EQ(x.get_sa(upd.id()).error().code(), ErrorCode::kNotFound);
}

TEST(FakeXfrm, ValidatesLikeTheRealBackend) {
  FakeXfrm x(scope());
  Sa bad = make_sa(0x80);
  auto st = x.add_sa(bad);
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.error().code(), ErrorCode::kInvalidInput);
  EXPECT_EQ(st.error().message().rfind("spi:", 0), 0u);
  auto out = x.add_sa(make_sa(0x1000, 5));
  ASSERT_FALSE(out.ok());
  EXPECT_EQ(out.error().message().rfind("reqid:", 0), 0u);
  EXPECT_EQ(x.total_sas(), 0u);
}

TEST(FakeXfrm, ForeignObjectsAreInvisibleAndUntouched) {
  FakeXfrm x(scope());
  x.add_foreign_sa(make_sa(0x3000, 7));
  x.add_foreign_policy(foreign_policy("10.9.0.0/16", 50));
  // Charon-like priority, formerly inside storcrypt's priority band: still foreign.
  x.add_foreign_policy(foreign_policy("10.8.0.0/16", 1001));
  ASSERT_TRUE(x.add_sa(make_sa(0x1000)).ok());
  ASSERT_TRUE(x.add_policy(make_policy("10.1.0.0/16", 1000)).ok());
  EXPECT_EQ(x.dump_sas()->size(), 1u);
  EXPECT_EQ(x.dump_policies()->size(), 1u);
  EXPECT_EQ(x.delete_sa(make_sa(0x3000, 7).id()).error().code(), ErrorCode::kConflict);
  EXPECT_EQ(x.delete_policy(make_policy("10.9.0.0/16", 50).id()).error().code(), ErrorCode::kConflict);
  EXPECT_EQ(x.delete_policy(make_policy("10.8.0.0/16", 1001).id()).error().code(), ErrorCode::kConflict);
  EXPECT_EQ(x.update_policy(make_policy("10.8.0.0/16", 1001)).error().code(), ErrorCode::kConflict);
  EXPECT_EQ(x.total_sas(), 2u);
  EXPECT_EQ(x.total_policies(), 3u);
  EXPECT_EQ(x.get_policy(make_policy("10.8.0.0/16", 1001).id()).error().code(), ErrorCode::kNotFound);
}

TEST(FakeXfrm, OwnershipIsTheIndexNotThePriority) {
  FakeXfrm x(scope());
  // Any priority is fine for our policy, as long as it carries our index.
  auto idx = x.add_policy(make_policy("10.1.0.0/16", 400000));
  ASSERT_TRUE(idx.ok());
  EXPECT_TRUE(scope().owns_index(*idx));
  ASSERT_EQ(x.dump_policies()->size(), 1u);
  // Without an index from the range (kernel's choice), the add is refused before the kernel.
  Policy untagged = make_policy("10.2.0.0/16", 1000);
  untagged.index = 0;
  auto st = x.add_policy(untagged);
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.error().code(), ErrorCode::kInvalidInput);
  EXPECT_EQ(st.error().message().rfind("index:", 0), 0u);
  // An index that is taken: the kernel would give another (foreign) index, so the add is undone.
  Policy taken = make_policy("10.3.0.0/16", 1000);
  taken.index = *idx;
  auto clash = x.add_policy(taken);
  ASSERT_FALSE(clash.ok());
  EXPECT_EQ(clash.error().code(), ErrorCode::kConflict);
  EXPECT_EQ(x.total_policies(), 1u);
  // The index must encode the direction (index % 8 == dir), as the kernel requires.
  Policy wrong_dir = make_policy("10.4.0.0/16", 1000);
  wrong_dir.index = *scope().policy_index(500, Direction::kIn);
  EXPECT_EQ(x.add_policy(wrong_dir).error().message().rfind("index:", 0), 0u);
}

TEST(Ownership, PolicyIndexSlotsEncodeTheDirection) {
  Ownership o = Ownership::storcrypt();
  EXPECT_EQ(*o.policy_index(0, Direction::kIn), kOwnedIndexMin);
  EXPECT_EQ(*o.policy_index(0, Direction::kOut), kOwnedIndexMin + 1);
  EXPECT_EQ(*o.policy_index(3, Direction::kFwd), kOwnedIndexMin + 26);
  EXPECT_FALSE(o.policy_index((kOwnedIndexMax - kOwnedIndexMin) / 8 + 1, Direction::kIn).has_value());
  EXPECT_EQ(*o.policy_index((kOwnedIndexMax - kOwnedIndexMin) / 8, Direction::kFwd), kOwnedIndexMax - 5);
  Ownership odd;
  odd.index_min = 13;  // rounded up to 16
  EXPECT_EQ(*odd.policy_index(0, Direction::kOut), 17u);
}

TEST(FakeXfrm, PolicyKeysIndexesAndLookup) {
  FakeXfrm x(scope());
  auto i1 = x.add_policy(make_policy("10.1.0.0/16", 1500));
  ASSERT_TRUE(i1.ok());
  EXPECT_EQ(*i1 & 7, 1u);  // out
  auto i2 = x.add_policy(make_policy("10.1.0.0/16", 1500, Direction::kIn));
  ASSERT_TRUE(i2.ok());
  EXPECT_EQ(*i2 & 7, 0u);
  EXPECT_NE(*i1, *i2);
  auto dup = x.add_policy(make_policy("10.1.0.0/16", 1600));
  ASSERT_FALSE(dup.ok());
  EXPECT_EQ(dup.error().code(), ErrorCode::kConflict);
  // Update keeps the index and replaces the rest.
  auto i3 = x.update_policy(make_policy("10.1.0.0/16", 1100));
  ASSERT_TRUE(i3.ok());
  EXPECT_EQ(*i3, *i1);
  PolicyId by_index;
  by_index.dir = Direction::kOut;
  by_index.index = *i1;
  EXPECT_EQ(x.get_policy(by_index)->priority, 1100u);
  // More specific but lower-preference (higher number) loses to the broad one.
  ASSERT_TRUE(x.add_policy(make_policy("10.1.2.0/24", 1200)).ok());
  auto hit = x.lookup_policy(Direction::kOut, *IpAddress::parse("10.0.0.1"), *IpAddress::parse("10.1.2.3"), 6, 1, 2);
  ASSERT_TRUE(hit.has_value());
  EXPECT_EQ(hit->priority, 1100u);
  EXPECT_FALSE(x.lookup_policy(Direction::kOut, *IpAddress::parse("10.0.0.1"), *IpAddress::parse("10.7.0.1"), 6, 1, 2)
                   .has_value());
  auto prio = x.add_policy(make_policy("10.3.0.0/16", 999));
  ASSERT_TRUE(prio.ok());  // the priority is no ownership tag: any value is ours to choose
}

TEST(FakeXfrm, EqualPriorityKeepsTheOlderPolicy) {
  FakeXfrm x(scope());
  ASSERT_TRUE(x.add_policy(make_policy("10.1.0.0/16", 1000)).ok());
  Policy newer = make_policy("10.1.2.0/24", 1000);
  newer.action = PolicyAction::kAllow;
  ASSERT_TRUE(x.add_policy(newer).ok());
  auto hit = x.lookup_policy(Direction::kOut, *IpAddress::parse("10.0.0.1"), *IpAddress::parse("10.1.2.3"), 6, 1, 2);
  ASSERT_TRUE(hit.has_value());
  EXPECT_EQ(hit->action, PolicyAction::kBlock);
}

TEST(FakeXfrm, SpiAllocationAvoidsReservedAndUsedSpis) {
  FakeXfrm x(scope());
  SpiRequest r;
  r.src = *IpAddress::parse("192.0.2.1");
  r.dst = *IpAddress::parse("192.0.2.2");
  r.reqid = 100;
  r.min = 1;
  r.max = 257;
  auto a = x.allocate_spi(r);
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(*a, 256u);
  auto b = x.allocate_spi(r);
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(*b, 257u);
  EXPECT_EQ(x.allocate_spi(r).error().code(), ErrorCode::kConflict);
  // The larval SA must be completed with update_sa (add_sa conflicts, as in the kernel).
  Sa sa = make_sa(*a);
  EXPECT_EQ(x.add_sa(sa).error().code(), ErrorCode::kConflict);
  EXPECT_TRUE(x.update_sa(sa).ok());
}

TEST(FakeXfrm, BatchReportsEachFailureByIndex) {
  FakeXfrm x(scope());
  std::vector<Policy> ps = {make_policy("10.1.0.0/16", 1000), make_policy("10.1.0.0/16", 1001),
                            make_policy("10.2.0.0/16", 1002)};
  auto r = x.add_policies(ps);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->succeeded, 2u);
  ASSERT_EQ(r->failures.size(), 1u);
  EXPECT_EQ(r->failures[0].first, 1u);
  EXPECT_EQ(r->failures[0].second.code(), ErrorCode::kConflict);
  EXPECT_FALSE(r->first_error().ok());
}

TEST(FakeXfrm, InjectedFailuresAndEvents) {
  FakeXfrm x(scope());
  x.fail_next("add_sa", Error(ErrorCode::kKernel, "injected"));
  EXPECT_EQ(x.add_sa(make_sa(0x1000)).error().code(), ErrorCode::kKernel);
  EXPECT_TRUE(x.add_sa(make_sa(0x1000)).ok());

  auto sub = x.subscribe(EventMask{});
  ASSERT_TRUE(sub.ok());
  auto none = (*sub)->next(1ms);
  ASSERT_TRUE(none.ok());
  EXPECT_FALSE(none->has_value());
  x.emit(SaExpireEvent{make_sa(0x1000).id(), {}, 7, true});  // foreign reqid: filtered
  x.emit(SaExpireEvent{make_sa(0x1000).id(), {}, 100, true});
  std::thread t([&] { x.emit(AcquireEvent{Selector::any(Family::kIPv4), XfrmProto::kEsp, {}, {}, 150, 9, 0, {}}); });
  auto e1 = (*sub)->next(5s);
  ASSERT_TRUE(e1.ok() && e1->has_value());
  ASSERT_TRUE(std::holds_alternative<SaExpireEvent>(**e1));
  EXPECT_TRUE(std::get<SaExpireEvent>(**e1).hard);
  EXPECT_EQ(std::get<SaExpireEvent>(**e1).reqid, 100u);
  auto e2 = (*sub)->next(5s);
  t.join();
  ASSERT_TRUE(e2.ok() && e2->has_value());
  EXPECT_EQ(std::get<AcquireEvent>(**e2).seq, 9u);

  ASSERT_TRUE(
      x.set_default_policy(DefaultPolicy{PolicyAction::kBlock, PolicyAction::kBlock, PolicyAction::kAllow}).ok());
  EXPECT_EQ(x.get_default_policy()->in, PolicyAction::kBlock);
}
