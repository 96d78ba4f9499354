#include "storcrypt/policy/test_tool.h"

#include <gtest/gtest.h>

#include "test_helpers.h"

namespace storcrypt::policy {
namespace {
using testing::ip;
using testing::shadow_example;
using testing::simple;

TestQuery tcp_out(std::uint16_t rlo, std::uint16_t rhi) {
  TestQuery q;
  q.direction = Direction::kOutbound;
  q.protocol = proto::kTcp;
  q.local = ip("192.0.2.1");
  q.remote = ip("192.0.2.2");
  q.local_ports = {40000, 40000};
  q.remote_ports = {rlo, rhi};
  return q;
}

TEST(TestTool, ShadowedProtectExampleGivesThreeRows) {
  for (DefaultDisposition d : {DefaultDisposition::kIPv6Only, DefaultDisposition::kBypass, DefaultDisposition::kDeny,
                               DefaultDisposition::kDenyAll}) {
    auto rows = test_traffic(shadow_example(), EnforcementOptions{d}, tcp_out(1, 65535));
    ASSERT_TRUE(rows.ok());
    ASSERT_EQ(rows->size(), 3u) << format_test_rows(tcp_out(1, 65535), *rows);
    const auto& r = *rows;
    EXPECT_EQ(r[0].remote_ports, (PortRange{1, 4999}));
    EXPECT_EQ(r[1].remote_ports, (PortRange{5000, 5001}));
    EXPECT_EQ(r[2].remote_ports, (PortRange{5002, 65535}));
    for (const auto& row : r) {
      EXPECT_EQ(row.disposition, Disposition::kBypass);
      EXPECT_EQ(row.first_match, "bypass-tcp");
      EXPECT_EQ(row.origin, Origin::kUser);
      EXPECT_EQ(row.bypass, std::vector<std::string>{"bypass-tcp"});
      EXPECT_TRUE(row.discard.empty());
      EXPECT_EQ(row.local_ports, (PortRange{40000, 40000}));
    }
    EXPECT_TRUE(r[0].protect.empty());
    EXPECT_EQ(r[1].protect, std::vector<std::string>{"protect-5000"});
    EXPECT_TRUE(r[2].protect.empty());
  }
}

TEST(TestTool, ProtectFirstThenBypass) {
  PolicyList l = shadow_example();
  ASSERT_TRUE(l.move("protect-5000", 0).ok());
  auto rows = test_traffic(l, {}, tcp_out(4000, 6000));
  ASSERT_TRUE(rows.ok());
  ASSERT_EQ(rows->size(), 3u);
  EXPECT_EQ((*rows)[1].disposition, Disposition::kProtect);
  EXPECT_EQ((*rows)[1].first_match, "protect-5000");
  EXPECT_EQ((*rows)[1].bypass, std::vector<std::string>{"bypass-tcp"});
  EXPECT_EQ((*rows)[0].disposition, Disposition::kBypass);
  // Other addresses do not match the PROTECT policy: one row.
  auto q = tcp_out(4000, 6000);
  q.remote = ip("192.0.2.3");
  rows = test_traffic(l, {}, q);
  ASSERT_TRUE(rows.ok());
  EXPECT_EQ(rows->size(), 1u);
}

TEST(TestTool, DefaultDenyWithControlExemptions) {
  PolicyList l;
  ASSERT_TRUE(
      l.add(simple("web", Direction::kOutbound, Disposition::kBypass, proto::kTcp, "ANY", "ANY", "ANY", "80,443"))
          .ok());
  auto q = tcp_out(1, 65535);
  auto rows = test_traffic(l, EnforcementOptions{DefaultDisposition::kDeny}, q);
  ASSERT_TRUE(rows.ok());
  // 1-79 deny, 80, 81-442, 443, 444-5695 deny, 5696 KMIP exemption, 5697-65535 deny.
  ASSERT_EQ(rows->size(), 7u) << format_test_rows(q, *rows);
  EXPECT_EQ((*rows)[0].disposition, Disposition::kDiscard);
  EXPECT_EQ((*rows)[0].first_match, "(default: DENY)");
  EXPECT_EQ((*rows)[0].origin, Origin::kDefault);
  EXPECT_EQ((*rows)[1].first_match, "web");
  EXPECT_EQ((*rows)[5].remote_ports, (PortRange{5696, 5696}));
  EXPECT_EQ((*rows)[5].disposition, Disposition::kBypass);
  EXPECT_EQ((*rows)[5].origin, Origin::kControlExemption);
  // DENYALL: no exemption, so 444-65535 is one row.
  rows = test_traffic(l, EnforcementOptions{DefaultDisposition::kDenyAll}, q);
  ASSERT_TRUE(rows.ok());
  EXPECT_EQ(rows->size(), 5u) << format_test_rows(q, *rows);
  EXPECT_EQ(rows->back().disposition, Disposition::kDiscard);
}

TEST(TestTool, IPv6OnlyDefault) {
  PolicyList l;
  TestQuery q;
  q.protocol = proto::kUdp;
  q.local = ip("192.0.2.1");
  q.remote = ip("192.0.2.2");
  auto rows = test_traffic(l, {}, q);
  ASSERT_TRUE(rows.ok());
  ASSERT_EQ(rows->size(), 1u);
  EXPECT_EQ((*rows)[0].disposition, Disposition::kBypass);
  q.local = ip("2001:db8::1");
  q.remote = ip("2001:db8::2");
  q.local_ports = {500, 500};
  q.remote_ports = {1, 1000};
  rows = test_traffic(l, {}, q);
  ASSERT_TRUE(rows.ok());
  ASSERT_EQ(rows->size(), 1u);
  EXPECT_EQ((*rows)[0].disposition, Disposition::kBypass);  // IKE exemption (local port 500)
  EXPECT_EQ((*rows)[0].origin, Origin::kControlExemption);
  q.local_ports = {501, 501};
  rows = test_traffic(l, {}, q);
  ASSERT_TRUE(rows.ok());
  ASSERT_EQ(rows->size(), 3u);  // 1-499 discard, 500 IKE, 501-1000 discard
  EXPECT_EQ((*rows)[0].disposition, Disposition::kDiscard);
  EXPECT_EQ((*rows)[1].origin, Origin::kControlExemption);
}

TEST(TestTool, IcmpV6NeighbourDiscoveryWarning) {
  PolicyList l;
  ASSERT_TRUE(
      l.add(simple("nd", Direction::kInbound, Disposition::kBypass, proto::kIcmpv6, "ANY", "ANY", "135-136")).ok());
  TestQuery q;
  q.direction = Direction::kInbound;
  q.protocol = proto::kIcmpv6;
  q.local = ip("2001:db8::1");
  q.remote = ip("2001:db8::2");
  q.local_ports = {128, 140};
  q.remote_ports = {0, 255};
  auto rows = test_traffic(l, {}, q);
  ASSERT_TRUE(rows.ok());
  ASSERT_EQ(rows->size(), 3u) << format_test_rows(q, *rows);
  EXPECT_EQ((*rows)[0].local_ports, (PortRange{128, 134}));
  EXPECT_EQ((*rows)[0].disposition, Disposition::kDiscard);
  ASSERT_FALSE((*rows)[0].notes.empty());
  EXPECT_NE((*rows)[0].notes[0].find("neighbour"), std::string::npos);
  EXPECT_EQ((*rows)[1].disposition, Disposition::kBypass);
  EXPECT_TRUE((*rows)[1].notes.empty());
  EXPECT_EQ((*rows)[2].local_ports, (PortRange{137, 140}));
  EXPECT_FALSE((*rows)[2].notes.empty());
  EXPECT_NE(format_test_rows(q, *rows).find("WARNING"), std::string::npos);
}

TEST(TestTool, TwoDimensionalSplitAndBadInput) {
  PolicyList l;
  ASSERT_TRUE(
      l.add(simple("a", Direction::kOutbound, Disposition::kDiscard, proto::kUdp, "ANY", "ANY", "10-19", "100-199"))
          .ok());
  TestQuery q;
  q.protocol = proto::kUdp;
  q.local = ip("192.0.2.1");
  q.remote = ip("192.0.2.2");
  q.local_ports = {0, 29};
  q.remote_ports = {0, 299};
  auto rows = test_traffic(l, EnforcementOptions{DefaultDisposition::kBypass}, q);
  ASSERT_TRUE(rows.ok());
  // local 0-9: one row; 10-19: three rows; 20-29: one row.
  ASSERT_EQ(rows->size(), 5u) << format_test_rows(q, *rows);
  EXPECT_EQ((*rows)[2].disposition, Disposition::kDiscard);
  EXPECT_EQ((*rows)[2].local_ports, (PortRange{10, 19}));
  EXPECT_EQ((*rows)[2].remote_ports, (PortRange{100, 199}));
  q.remote_ports = {10, 5};
  EXPECT_FALSE(test_traffic(l, {}, q).ok());
  q.remote = ip("2001:db8::1");
  EXPECT_FALSE(test_traffic(l, {}, q).ok());
}

}  // namespace
}  // namespace storcrypt::policy
