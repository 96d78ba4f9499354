#include "storcrypt/common/ip.h"

#include <gtest/gtest.h>

using namespace storcrypt;

TEST(Ip, ValueRoundTripsBothFamilies) {
  auto a = IpAddress::parse("192.0.2.7");
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(a->value(), U128{0xc0000207u});
  EXPECT_EQ(IpAddress::v4(0xc0000207u), *a);
  auto b = IpAddress::parse("2001:db8::1");
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(b->value(), (U128{0x20010db8u} << 96) + 1);
  EXPECT_EQ(IpAddress::from_value(Family::kIPv6, b->value()), *b);
  EXPECT_EQ(IpAddress::from_value(Family::kIPv6, family_max(Family::kIPv6)).to_string(),
            "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff");
  EXPECT_EQ(IpAddress::from_value(Family::kIPv4, family_max(Family::kIPv4)).to_string(), "255.255.255.255");
}

TEST(Ip, ErrorsNameTheFieldOnlyWhenGiven) {
  auto a = IpAddress::parse("192.0.2.300", "peer");
  ASSERT_FALSE(a.ok());
  EXPECT_EQ(a.error().message().rfind("peer: '192.0.2.300'", 0), 0u) << a.error().message();
  auto b = IpAddress::parse("nope", "");
  ASSERT_FALSE(b.ok());
  EXPECT_EQ(b.error().message().rfind("'nope' is not", 0), 0u) << b.error().message();
  EXPECT_FALSE(IpAddress::parse("").ok());
}

TEST(Ip, PrefixClearsHostBits) {
  auto p = Prefix::parse("198.51.100.77/24");
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(p->to_string(), "198.51.100.0/24");
  EXPECT_TRUE(p->contains(IpAddress::v4(0xc6336401u)));
  EXPECT_FALSE(Prefix::make(*IpAddress::parse("192.0.2.1"), 33).ok());
}
