#include "storcrypt/policy/selector.h"

#include <gtest/gtest.h>

#include "test_helpers.h"

namespace storcrypt::policy {
namespace {
using testing::addr;
using testing::ip;

std::vector<std::string> prefixes(const std::string& range) {
  auto spec = AddressSpec::parse(range);
  EXPECT_TRUE(spec.ok()) << range;
  std::vector<std::string> out;
  for (const Prefix& p : range_to_prefixes(*spec->range(*spec->family()))) out.push_back(p.to_string());
  return out;
}

TEST(Address, ParsesAndPrints) {
  EXPECT_EQ(ip("192.0.2.1").to_string(), "192.0.2.1");
  EXPECT_EQ(ip("2001:db8::1").to_string(), "2001:db8::1");
  EXPECT_EQ(ip("2001:db8::1").family, Family::kIPv6);
  EXPECT_FALSE(IpAddress::parse("192.0.2").ok());
  EXPECT_FALSE(IpAddress::parse("").ok());
  EXPECT_FALSE(IpAddress::parse("2001:db8::g").ok());
}

TEST(AddressSpec, Kinds) {
  EXPECT_TRUE(addr("ANY").is_any());
  EXPECT_EQ(addr("192.0.2.0/24").kind, AddressSpec::Kind::kPrefix);
  EXPECT_EQ(addr("192.0.2.7/32").kind, AddressSpec::Kind::kSingle);
  EXPECT_EQ(addr("192.0.2.1-192.0.2.9").to_string(), "192.0.2.1-192.0.2.9");
  EXPECT_TRUE(addr("192.0.2.0/24").matches(ip("192.0.2.255")));
  EXPECT_FALSE(addr("192.0.2.0/24").matches(ip("192.0.3.0")));
  EXPECT_FALSE(addr("192.0.2.0/24").matches(ip("2001:db8::1")));
  EXPECT_TRUE(addr("ANY").matches(ip("2001:db8::1")));
  auto bad = AddressSpec::parse("192.0.2.1/24");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.error().message().find("host bits"), std::string::npos);
  EXPECT_NE(bad.error().fix().find("192.0.2.0/24"), std::string::npos);
  EXPECT_FALSE(AddressSpec::parse("192.0.2.9-192.0.2.1").ok());
  EXPECT_FALSE(AddressSpec::parse("192.0.2.1-2001:db8::1").ok());
  EXPECT_FALSE(AddressSpec::parse("192.0.2.0/33").ok());
}

TEST(Decompose, AddressRangeToPrefixes) {
  EXPECT_EQ(prefixes("192.0.2.0-192.0.2.255"), std::vector<std::string>{"192.0.2.0/24"});
  EXPECT_EQ(prefixes("192.0.2.1-192.0.2.6"),
            (std::vector<std::string>{"192.0.2.1/32", "192.0.2.2/31", "192.0.2.4/31", "192.0.2.6/32"}));
  EXPECT_EQ(prefixes("10.0.0.255-10.0.1.0"), (std::vector<std::string>{"10.0.0.255/32", "10.0.1.0/32"}));
  EXPECT_EQ(prefixes("0.0.0.0-255.255.255.255"), std::vector<std::string>{"0.0.0.0/0"});
  EXPECT_EQ(prefixes("0.0.0.1-255.255.255.255").size(), 32u);
  EXPECT_EQ(prefixes("2001:db8::-2001:db8::ffff"), std::vector<std::string>{"2001:db8::/112"});
  AddressRange all6{Family::kIPv6, 0, family_max(Family::kIPv6)};
  ASSERT_EQ(range_to_prefixes(all6).size(), 1u);
  EXPECT_EQ(range_to_prefixes(all6)[0].len, 0);
  AddressRange top6{Family::kIPv6, 1, family_max(Family::kIPv6)};
  EXPECT_EQ(range_to_prefixes(top6).size(), 128u);
}

TEST(Decompose, PrefixesCoverRangeExactly) {
  // Exhaustive on a small window of IPv4 space: union == range, no overlap.
  for (std::uint32_t lo = 0; lo < 70; lo += 3) {
    for (std::uint32_t hi = lo; hi < 80; hi += 5) {
      auto ps = range_to_prefixes({Family::kIPv4, 1000 + lo, 1000 + hi});
      for (std::uint32_t v = 990; v < 1090; ++v) {
        int hits = 0;
        for (const Prefix& p : ps) {
          const U128 size = U128{1} << (32 - p.len);
          if (v >= p.addr.value() && v < p.addr.value() + size) ++hits;
        }
        EXPECT_EQ(hits, (v >= 1000 + lo && v <= 1000 + hi) ? 1 : 0) << lo << "-" << hi << " v=" << v;
      }
    }
  }
}

TEST(Decompose, PortRangeToMasks) {
  EXPECT_EQ(port_range_to_masks({5000, 5001}), (std::vector<PortMask>{{5000, 0xfffe}}));
  EXPECT_EQ(port_range_to_masks({0, 65535}), (std::vector<PortMask>{{0, 0}}));
  EXPECT_EQ(port_range_to_masks({80, 80}), (std::vector<PortMask>{{80, 0xffff}}));
  EXPECT_EQ(port_range_to_masks({1, 65535}).size(), 16u);
  EXPECT_EQ(port_range_to_masks({1024, 65535}),
            (std::vector<PortMask>{
                {1024, 0xfc00}, {2048, 0xf800}, {4096, 0xf000}, {8192, 0xe000}, {16384, 0xc000}, {32768, 0x8000}}));
  for (std::uint32_t lo : {0u, 1u, 7u, 100u, 1023u, 65534u}) {
    for (std::uint32_t hi : {lo, lo + 1, lo + 13, 1024u, 65535u}) {
      if (hi < lo || hi > 65535) continue;
      auto ms = port_range_to_masks({static_cast<std::uint16_t>(lo), static_cast<std::uint16_t>(hi)});
      for (std::uint32_t v = 0; v <= 65535; v += (v < 2000 || v > 65000) ? 1 : 97) {
        int hits = 0;
        for (const PortMask& m : ms) hits += m.matches(static_cast<std::uint16_t>(v)) ? 1 : 0;
        EXPECT_EQ(hits, (v >= lo && v <= hi) ? 1 : 0) << lo << "-" << hi << " v=" << v;
      }
    }
  }
}

TEST(PortSpec, ParseListsAndErrors) {
  auto p = PortSpec::parse("443, 80,8000-8080,8081", 65535, "RemotePort");
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(p->to_string(), "80,443,8000-8081");
  EXPECT_TRUE(p->matches(8081));
  EXPECT_FALSE(p->matches(8082));
  EXPECT_TRUE(PortSpec::parse("0-65535", 65535, "x")->is_any());
  auto bad = PortSpec::parse("70000", 65535, "RemotePort");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.error().message().find("RemotePort"), std::string::npos);
  EXPECT_FALSE(PortSpec::parse("9-1", 65535, "x").ok());
  EXPECT_FALSE(PortSpec::parse("256", 255, "IcmpType").ok());
  EXPECT_FALSE(PortSpec::parse("1,,2", 65535, "x").ok());
  EXPECT_FALSE(PortSpec::parse("", 65535, "x").ok());
}

}  // namespace
}  // namespace storcrypt::policy
