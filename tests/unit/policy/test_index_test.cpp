// Property tests of the test tool's index (TestIndex): on random lists large
// enough that the index splits on every dimension -- address ranges, prefixes
// and named selectors at both ends, port lists and ranges, ANY protocol and
// ANY ports, overlapping and shadowed policies, IPv4 and IPv6 -- its answers
// equal brute-force first match, for single flows and for wide queries.
#include <gtest/gtest.h>

#include <algorithm>

#include "random_policies.h"
#include "storcrypt/policy/test_tool.h"

namespace storcrypt::policy {
namespace {
using testing::Gen;

// A random list of n policies, some of them naming address selectors, and
// some repeating an earlier policy's selector (shadowed) or widening it.
PolicyList random_list(Gen& g, int n) {
  PolicyList list;
  for (int i = 0; i < n; ++i) {
    Policy p = g.policy(i);
    if (i > 0 && g.chance(10)) {
      // Shadowed: an earlier policy's selector again, with another action.
      const Policy& earlier = list.policies()[static_cast<std::size_t>(g.pick(i))];
      Policy s = earlier;
      s.name = p.name;
      s.disposition = p.disposition;
      s.protection = p.protection;
      if (check_policy(s).ok()) p = s;
    }
    for (bool local : {true, false}) g.name_side(list, p, i, local, 10);
    EXPECT_TRUE(list.add(p).ok());
  }
  return list;
}

struct Brute {
  Decision decision;
  std::vector<std::size_t> all;  // effective positions of every matching entry
  std::vector<std::string> bypass, discard, protect;
};

Brute brute(const std::vector<EffectivePolicy>& eff, const Packet& pkt) {
  Brute b;
  b.decision = first_match(eff, pkt);
  for (std::size_t i = 0; i < eff.size(); ++i) {
    if (!matches(eff[i].policy, pkt)) continue;
    b.all.push_back(i);
    if (eff[i].origin != Origin::kUser) continue;
    const Policy& p = eff[i].policy;
    (p.disposition == Disposition::kBypass    ? b.bypass
     : p.disposition == Disposition::kDiscard ? b.discard
                                              : b.protect)
        .push_back(p.name);
  }
  return b;
}

TEST(TestIndex, SingleFlowsEqualBruteForceOnLargeRandomLists) {
  Gen g(0x1de7);
  std::size_t flows = 0, user_decided = 0, multi = 0, split_nodes = 0;
  for (int li = 0; li < 60; ++li) {
    const PolicyList list = random_list(g, 20 + g.pick(380));
    const EnforcementOptions opt{static_cast<DefaultDisposition>(g.pick(4))};
    const auto index = TestIndex::build(list, opt);
    const auto& eff = index->effective();
    ASSERT_EQ(eff.size(), effective_policies(list, opt).size());
    split_nodes += index->stats().nodes;
    for (int pi = 0; pi < 1000; ++pi) {
      const Packet pkt = g.packet();
      const Brute b = brute(eff, pkt);
      const Decision d = index->first_match(pkt);
      ASSERT_EQ(d.effective_index, b.decision.effective_index) << "list " << li << " packet " << pi;
      ASSERT_EQ(d.name, b.decision.name);
      ASSERT_EQ(d.disposition, b.decision.disposition);
      ASSERT_EQ(d.origin, b.decision.origin);
      ASSERT_EQ(index->all_matches(pkt), b.all) << "list " << li << " packet " << pi;

      // The public entry point (the list's cached index) gives the same row.
      TestQuery q{pkt.direction,
                  pkt.protocol,
                  pkt.local,
                  pkt.remote,
                  {pkt.local_port, pkt.local_port},
                  {pkt.remote_port, pkt.remote_port}};
      auto rows = test_traffic(list, opt, q);
      ASSERT_TRUE(rows.ok());
      ASSERT_EQ(rows->size(), 1u);
      const TestRow& row = (*rows)[0];
      ASSERT_EQ(row.first_match, b.decision.name) << "list " << li << " packet " << pi;
      ASSERT_EQ(row.disposition, b.decision.disposition);
      ASSERT_EQ(row.origin, b.decision.origin);
      ASSERT_EQ(row.bypass, b.bypass);
      ASSERT_EQ(row.discard, b.discard);
      ASSERT_EQ(row.protect, b.protect);
      ++flows;
      user_decided += b.decision.origin == Origin::kUser;
      multi += b.bypass.size() + b.discard.size() + b.protect.size() > 1;
    }
  }
  // The lists must overlap and decide often, and the index must really split.
  EXPECT_GT(user_decided, flows / 4);
  EXPECT_GT(multi, flows / 20);
  EXPECT_GT(split_nodes, 60u * 64);
  std::printf("flows=%zu decided by a user policy=%zu with several matching policies=%zu nodes=%zu\n", flows,
              user_decided, multi, split_nodes);
}

TEST(TestIndex, WideQueriesTileAndAgreeWithBruteForce) {
  Gen g(0x3a11);
  for (int li = 0; li < 120; ++li) {
    const PolicyList list = random_list(g, 20 + g.pick(200));
    const EnforcementOptions opt{static_cast<DefaultDisposition>(g.pick(4))};
    const auto eff = effective_policies(list, opt);
    Packet pkt = g.packet();
    const bool icmp = protocol_is_icmp(pkt.protocol);
    if (!protocol_has_ports(pkt.protocol) && !icmp) continue;
    const std::uint16_t max = icmp ? 255 : 65535;
    auto range = [&] {
      std::uint16_t a = static_cast<std::uint16_t>(g.pick(icmp ? 140 : 600));
      std::uint16_t b = g.chance(20) ? max : static_cast<std::uint16_t>(std::min<int>(max, a + g.pick(200)));
      return PortRange{a, b};
    };
    TestQuery q{pkt.direction, pkt.protocol, pkt.local, pkt.remote, range(), range()};
    auto rows = test_traffic(list, opt, q);
    ASSERT_TRUE(rows.ok());
    std::uint64_t cells = 0;
    for (const TestRow& r : *rows) {
      cells += static_cast<std::uint64_t>(r.local_ports.hi - r.local_ports.lo + 1) *
               (r.remote_ports.hi - r.remote_ports.lo + 1);
      // Corners and a few inner points of every row agree with brute force.
      for (int k = 0; k < 6; ++k) {
        auto inner = [&](PortRange pr) { return static_cast<std::uint16_t>(pr.lo + g.pick(pr.hi - pr.lo + 1)); };
        pkt.local_port = k < 2 ? r.local_ports.lo : k < 4 ? r.local_ports.hi : inner(r.local_ports);
        pkt.remote_port = k == 4 ? inner(r.remote_ports) : k % 2 ? r.remote_ports.lo : r.remote_ports.hi;
        const Brute b = brute(eff, pkt);
        ASSERT_EQ(r.first_match, b.decision.name) << "list " << li << "\n" << format_test_rows(q, *rows);
        ASSERT_EQ(r.bypass, b.bypass);
        ASSERT_EQ(r.discard, b.discard);
        ASSERT_EQ(r.protect, b.protect) << "point " << pkt.local_port << "," << pkt.remote_port << " proto "
                                        << int(pkt.protocol) << "\n"
                                        << format_test_rows(q, *rows);
      }
    }
    ASSERT_EQ(cells, static_cast<std::uint64_t>(q.local_ports.hi - q.local_ports.lo + 1) *
                         (q.remote_ports.hi - q.remote_ports.lo + 1));  // rows tile the queried rectangle
  }
}

TEST(TestIndex, EditsAndOptionsAreNeverAnsweredFromAStaleIndex) {
  PolicyList list;
  Policy p;
  p.name = "web";
  p.direction = Direction::kOutbound;
  p.selector.protocol = proto::kTcp;
  p.selector.remote_ports = PortSpec::of(80, 80);
  p.disposition = Disposition::kDiscard;
  ASSERT_TRUE(list.add(p).ok());
  TestQuery q{Direction::kOutbound,      proto::kTcp,  IpAddress::v4(0xc0000201),
              IpAddress::v4(0xc0000202), {1000, 1000}, {80, 80}};
  auto first = [&](const PolicyList& l, const EnforcementOptions& o) {
    auto rows = test_traffic(l, o, q);
    return rows.ok() && rows->size() == 1 ? (*rows)[0].first_match : std::string("?");
  };
  const EnforcementOptions bypass{DefaultDisposition::kBypass};
  EXPECT_EQ(first(list, bypass), "web");
  const PolicyList copy = list;  // shares the built index
  Policy before = p;
  before.name = "before";
  before.disposition = Disposition::kBypass;
  ASSERT_TRUE(list.insert(0, before).ok());
  EXPECT_EQ(first(list, bypass), "before");
  EXPECT_EQ(first(copy, bypass), "web");  // the copy was not edited
  ASSERT_TRUE(list.remove("before").ok());
  EXPECT_EQ(first(list, bypass), "web");
  ASSERT_TRUE(list.move("web", 0).ok());
  p.selector.remote_ports = PortSpec::of(81, 81);
  ASSERT_TRUE(list.modify("web", p).ok());
  EXPECT_EQ(first(list, bypass), "(no policy: BYPASS)");
  EXPECT_EQ(first(list, EnforcementOptions{DefaultDisposition::kDenyAll}), "(default: DENYALL)");
  EXPECT_EQ(first(list, bypass), "(no policy: BYPASS)");
  // Named address selectors: defining, then removing.
  p.selector.remote = AddressSpec::named("PEERS");
  p.selector.remote_ports = PortSpec::of(80, 80);
  ASSERT_TRUE(list.modify("web", p).ok());
  EXPECT_FALSE(test_traffic(list, bypass, q).ok());  // undefined name: the caller's error
  ASSERT_TRUE(list.add_addresses("PEERS", {AddressSpec::single(IpAddress::v4(0xc0000202))}).ok());
  EXPECT_EQ(first(list, bypass), "web");
  ASSERT_TRUE(list.remove("web").ok());
  ASSERT_TRUE(list.remove_addresses("PEERS").ok());
  EXPECT_EQ(first(list, bypass), "(no policy: BYPASS)");
}

}  // namespace
}  // namespace storcrypt::policy
