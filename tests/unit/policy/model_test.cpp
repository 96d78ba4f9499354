#include "storcrypt/policy/model.h"

#include <gtest/gtest.h>

#include "test_helpers.h"

namespace storcrypt::policy {
namespace {
using testing::esp_gcm;
using testing::simple;

std::vector<std::string> names(const PolicyList& l) {
  std::vector<std::string> out;
  for (const auto& p : l.policies()) out.push_back(p.name);
  return out;
}

TEST(PolicyList, Editing) {
  PolicyList l;
  ASSERT_TRUE(l.add(simple("a", Direction::kOutbound, Disposition::kBypass)).ok());
  ASSERT_TRUE(l.add(simple("b", Direction::kOutbound, Disposition::kDiscard)).ok());
  ASSERT_TRUE(l.insert(0, simple("c", Direction::kInbound, Disposition::kBypass)).ok());
  EXPECT_EQ(names(l), (std::vector<std::string>{"c", "a", "b"}));
  auto dup = l.add(simple("a", Direction::kInbound, Disposition::kBypass));
  ASSERT_FALSE(dup.ok());
  EXPECT_EQ(dup.error().code(), ErrorCode::kConflict);
  EXPECT_FALSE(l.insert(9, simple("z", Direction::kInbound, Disposition::kBypass)).ok());
  ASSERT_TRUE(l.move("c", 2).ok());
  EXPECT_EQ(names(l), (std::vector<std::string>{"a", "b", "c"}));
  ASSERT_TRUE(l.clone("a", "a2").ok());
  EXPECT_EQ(names(l), (std::vector<std::string>{"a", "a2", "b", "c"}));
  EXPECT_EQ(l.policies()[1].selector, l.policies()[0].selector);
  EXPECT_FALSE(l.clone("a", "b").ok());
  auto m = simple("b2", Direction::kOutbound, Disposition::kBypass, proto::kTcp);
  ASSERT_TRUE(l.modify("b", m).ok());
  EXPECT_EQ(names(l), (std::vector<std::string>{"a", "a2", "b2", "c"}));
  EXPECT_FALSE(l.modify("a", simple("c", Direction::kOutbound, Disposition::kBypass)).ok());
  ASSERT_TRUE(l.remove("a2").ok());
  EXPECT_EQ(l.remove("nope").error().code(), ErrorCode::kNotFound);
  EXPECT_EQ(names(l), (std::vector<std::string>{"a", "b2", "c"}));
}

TEST(CheckPolicy, Messages) {
  auto expect_error = [](const Policy& p, const std::string& fragment) {
    auto s = check_policy(p);
    ASSERT_FALSE(s.ok()) << fragment;
    EXPECT_NE(s.error().message().find(fragment), std::string::npos) << s.error().to_string();
    EXPECT_FALSE(s.error().fix().empty());
  };
  expect_error(simple("bad name", Direction::kOutbound, Disposition::kBypass), "not valid");
  expect_error(simple("x", Direction::kOutbound, Disposition::kBypass, {}, "192.0.2.1", "2001:db8::1"),
               "different address families");
  expect_error(simple("x", Direction::kOutbound, Disposition::kBypass, proto::kIcmpv6, "192.0.2.1"),
               "different address families");
  expect_error(simple("x", Direction::kOutbound, Disposition::kBypass, proto::kEsp, "ANY", "ANY", "1"), "no ports");
  Policy pr = simple("p", Direction::kOutbound, Disposition::kProtect, proto::kTcp, "192.0.2.1", "192.0.2.2");
  expect_error(pr, "needs Service");
  pr.protection = esp_gcm(100);
  expect_error(pr, "reserved");
  pr.protection = esp_gcm(0x1000);
  EXPECT_TRUE(check_policy(pr).ok());
  pr.protection->integrity = Algorithm::kHmacSha256_128;
  pr.protection->integrity_key = "k";
  expect_error(pr, "already provides integrity");
  pr.protection = esp_gcm(0x1000);
  pr.protection->service = Service::kEspConfidentiality;
  expect_error(pr, "AES-GCM-256 provides");
  pr.protection = esp_gcm(0x1000);
  pr.protection->mode = Mode::kTunnel;
  expect_error(pr, "tunnel mode needs");
  pr.protection->local_endpoint = testing::ip("198.51.100.1");
  pr.protection->remote_endpoint = testing::ip("198.51.100.2");
  EXPECT_TRUE(check_policy(pr).ok());
  Policy tr = simple("t", Direction::kOutbound, Disposition::kProtect, proto::kTcp, "192.0.2.1", "192.0.2.0/24");
  tr.protection = esp_gcm(0x1000);
  expect_error(tr, "one local and one remote address");
  Policy ah = simple("ah", Direction::kOutbound, Disposition::kProtect, {}, "192.0.2.1", "192.0.2.2");
  ah.protection = Protection{};
  ah.protection->service = Service::kAh;
  ah.protection->spi = 0x2000;
  expect_error(ah, "needs an integrity algorithm");
  ah.protection->integrity = Algorithm::kAesCbc128;
  ah.protection->integrity_key = "k";
  expect_error(ah, "not an integrity algorithm");
  ah.protection->integrity = Algorithm::kHmacSha1_96;
  EXPECT_TRUE(check_policy(ah).ok());
  Policy bp = simple("b", Direction::kOutbound, Disposition::kBypass);
  bp.protection = esp_gcm(0x1000);
  expect_error(bp, "action is BYPASS");
}

TEST(Matching, FamiliesAndPorts) {
  Packet pkt{Direction::kOutbound, testing::ip("192.0.2.1"), testing::ip("192.0.2.2"), proto::kTcp, 1234, 80};
  EXPECT_TRUE(matches(simple("a", Direction::kOutbound, Disposition::kBypass), pkt));
  EXPECT_FALSE(matches(simple("a", Direction::kInbound, Disposition::kBypass), pkt));
  EXPECT_TRUE(
      matches(simple("a", Direction::kOutbound, Disposition::kBypass, proto::kTcp, "ANY", "ANY", "ANY", "80"), pkt));
  EXPECT_FALSE(matches(simple("a", Direction::kOutbound, Disposition::kBypass, proto::kTcp, "ANY", "ANY", "80"), pkt));
  EXPECT_FALSE(matches(simple("a", Direction::kOutbound, Disposition::kBypass, proto::kUdp), pkt));
  EXPECT_FALSE(matches(simple("a", Direction::kOutbound, Disposition::kBypass, {}, "2001:db8::/32"), pkt));
  Packet icmp6{Direction::kOutbound, testing::ip("2001:db8::1"), testing::ip("2001:db8::2"), proto::kIcmpv6, 135, 0};
  EXPECT_FALSE(matches(simple("a", Direction::kOutbound, Disposition::kBypass, proto::kIcmp), icmp6));
  EXPECT_TRUE(
      matches(simple("a", Direction::kOutbound, Disposition::kBypass, proto::kIcmpv6, "ANY", "ANY", "133-137"), icmp6));
}

TEST(Enums, ParseAndPrint) {
  EXPECT_EQ(*parse_algorithm("hmac-sha-256-128"), Algorithm::kHmacSha256_128);
  EXPECT_EQ(to_string(Algorithm::kAesGcm256), "AES-GCM-256");
  auto bad = parse_algorithm("des");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.error().fix().find("AES-GCM-256"), std::string::npos);
  EXPECT_EQ(**parse_protocol("icmpv6"), proto::kIcmpv6);
  EXPECT_EQ(**parse_protocol("47"), 47);
  EXPECT_FALSE(parse_protocol("ANY")->has_value());
  EXPECT_FALSE(parse_protocol("300").ok());
  EXPECT_EQ(*parse_default_disposition("ipv6only"), DefaultDisposition::kIPv6Only);
  EXPECT_EQ(algorithm_key_bytes(Algorithm::kHmacSha1_96), 20u);
  EXPECT_EQ(algorithm_key_bytes(Algorithm::kAesGcm256), 36u);
}

}  // namespace
}  // namespace storcrypt::policy
