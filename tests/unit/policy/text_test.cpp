#include "storcrypt/policy/text.h"

#include <gtest/gtest.h>

#include "test_helpers.h"

namespace storcrypt::policy {
namespace {
using testing::ip;
using testing::simple;

PolicyList sample() {
  PolicyList l;
  Policy prot = simple("db", Direction::kOutbound, Disposition::kProtect, proto::kTcp, "192.0.2.1", "192.0.2.2",
                       "1024-65535", "5000-5001,6000");
  prot.protection = testing::esp_gcm(0x1000, "db-key");
  EXPECT_TRUE(l.add(prot).ok());
  Policy tun = simple("tun", Direction::kInbound, Disposition::kProtect, proto::kUdp, "2001:db8:1::/48",
                      "2001:db8:2::10-2001:db8:2::20", "ANY", "53");
  Protection pr;
  pr.service = Service::kEspIntegrityConfidentiality;
  pr.mode = Mode::kTunnel;
  pr.spi = 0xdeadbeef;
  pr.local_endpoint = ip("2001:db8::1");
  pr.remote_endpoint = ip("2001:db8::2");
  pr.encryption = Algorithm::kAesCbc256;
  pr.encryption_key = "cbc";
  pr.integrity = Algorithm::kHmacSha512_256;
  pr.integrity_key = "mac";
  tun.protection = pr;
  EXPECT_TRUE(l.add(tun).ok());
  EXPECT_TRUE(
      l.add(simple("nd", Direction::kInbound, Disposition::kBypass, proto::kIcmpv6, "ANY", "ANY", "133-137", "0"))
          .ok());
  EXPECT_TRUE(l.add(simple("gre", Direction::kOutbound, Disposition::kDiscard, 47)).ok());
  EXPECT_TRUE(l.add(simple("rest", Direction::kOutbound, Disposition::kBypass)).ok());
  return l;
}

TEST(PolicyText, RoundTrip) {
  const PolicyList l = sample();
  const std::string text = export_policies(l);
  EXPECT_NE(text.find("RemotePort = 5000-5001,6000"), std::string::npos) << text;
  EXPECT_NE(text.find("IcmpType = 133-137"), std::string::npos) << text;
  EXPECT_NE(text.find("SPI = 0xdeadbeef"), std::string::npos) << text;
  auto back = import_policies(text);
  ASSERT_TRUE(back.ok()) << back.error().to_string();
  EXPECT_EQ(*back, l);
  EXPECT_EQ(export_policies(*back), text);
}

TEST(PolicyText, SwapForPartner) {
  const PolicyList l = sample();
  auto sw = import_policies(export_policies(l), ImportOptions{true});
  ASSERT_TRUE(sw.ok());
  const Policy& db = sw->policies()[0];
  EXPECT_EQ(db.direction, Direction::kInbound);
  EXPECT_EQ(db.selector.local.to_string(), "192.0.2.2");
  EXPECT_EQ(db.selector.remote.to_string(), "192.0.2.1");
  EXPECT_EQ(db.selector.local_ports.to_string(), "5000-5001,6000");
  EXPECT_EQ(db.selector.remote_ports.to_string(), "1024-65535");
  EXPECT_EQ(db.protection->spi, 0x1000u);
  const Policy& tun = sw->policies()[1];
  EXPECT_EQ(tun.direction, Direction::kOutbound);
  EXPECT_EQ(tun.protection->local_endpoint->to_string(), "2001:db8::2");
  const Policy& nd = sw->policies()[2];
  EXPECT_EQ(nd.selector.local_ports.to_string(), "133-137");  // ICMP types are not swapped
  // A packet matching the original on this side matches the swapped one on the partner.
  Packet pkt{Direction::kOutbound, ip("192.0.2.1"), ip("192.0.2.2"), proto::kTcp, 40000, 5001};
  Packet mirrored{Direction::kInbound, ip("192.0.2.2"), ip("192.0.2.1"), proto::kTcp, 5001, 40000};
  EXPECT_TRUE(matches(l.policies()[0], pkt));
  EXPECT_TRUE(matches(db, mirrored));
  // Swapping twice gives the original.
  auto twice = import_policies(export_policies(*sw), ImportOptions{true});
  ASSERT_TRUE(twice.ok());
  EXPECT_EQ(*twice, l);
}

TEST(PolicyText, ErrorsNameLineAndField) {
  auto expect = [](const std::string& text, const std::string& fragment) {
    auto r = import_policies(text);
    ASSERT_FALSE(r.ok()) << text;
    EXPECT_NE(r.error().to_string().find(fragment), std::string::npos) << r.error().to_string();
  };
  expect("Name = a\nDirection = outbound\nAction = BYPASS\nColour = red\n", "line 4: unknown key 'Colour'");
  expect("Name = a\nDirection = sideways\nAction = BYPASS\n", "line 2: Direction");
  expect("Name = a\nDirection = outbound\n", "has no Action");
  expect("Name = a\nDirection = outbound\nAction = BYPASS\nRemotePort = 80\n", "no ports");
  expect("Name = a\nDirection = outbound\nAction = BYPASS\nProtocol = TCP\nRemotePort = 99999\n", "line 5: RemotePort");
  expect("Name = a\nDirection = outbound\nAction = BYPASS\nProtocol = ICMP\nRemotePort = 1\n",
         "RemotePort does not apply");
  expect("Name = a\nDirection = outbound\nAction = BYPASS\n\nName = a\nDirection = inbound\nAction = BYPASS\n",
         "already exists");
  expect("Name = a\nDirection = outbound\nDirection = inbound\n", "given twice");
  expect("Name = a\nDirection = outbound\nAction = PROTECT\n", "has no SPI");
  expect("Name = a\nDirection = outbound\nAction = BYPASS\nLocalAddress = 10.0.0.1/8\n", "host bits");
  expect("just words\n", "expected 'Name = Value'");
  // Blocks can also be separated by 'Name =' alone, and comments are ignored.
  auto ok = import_policies(
      "# c\nName = a\nDirection = outbound\nAction = BYPASS\nName = b\nDirection = in\n"
      "Action = DISCARD\n");
  ASSERT_TRUE(ok.ok());
  EXPECT_EQ(ok->size(), 2u);
}

}  // namespace
}  // namespace storcrypt::policy
