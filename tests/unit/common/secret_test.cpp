#include "storcrypt/common/secret.h"

#include <gtest/gtest.h>

#include <sstream>

#include "storcrypt/common/hex.h"

namespace storcrypt {
namespace {

TEST(SecretBytes, HexRoundTrip) {
  auto s = SecretBytes::from_hex("00FFa1b2");
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(s->size(), 4u);
  EXPECT_EQ(s->reveal_hex(), "00ffa1b2");
}

TEST(SecretBytes, BadHexErrorDoesNotEchoTheKey) {
  auto s = SecretBytes::from_hex("deadbeefzz");
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error().message().find("deadbeef"), std::string::npos);
  EXPECT_NE(s.error().message().find("position 8"), std::string::npos);
  EXPECT_FALSE(SecretBytes::from_hex("abc").ok());
}

TEST(SecretBytes, PrintsRedacted) {
  auto s = SecretBytes::from_hex("0102030405060708");
  ASSERT_TRUE(s.ok());
  std::ostringstream os;
  os << *s;
  EXPECT_EQ(os.str(), "<redacted>");
}

TEST(SecretBytes, RandomIsRandomAndMoveEmptiesSource) {
  auto a = SecretBytes::random(32);
  auto b = SecretBytes::random(32);
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_FALSE(a->equals(*b));
  SecretBytes c = std::move(*a);
  EXPECT_EQ(c.size(), 32u);
  EXPECT_EQ(a->size(), 0u);  // NOLINT(bugprone-use-after-move): moved-from state is part of the contract
  SecretBytes d = c.clone();
  EXPECT_TRUE(d.equals(c));
}

TEST(SecretBytes, ResizeAndAppend) {
  auto s = SecretBytes::from_hex("0102");
  ASSERT_TRUE(s.ok());
  const std::uint8_t more[] = {3, 4};
  s->append(more);
  EXPECT_EQ(s->reveal_hex(), "01020304");
  s->resize(1);
  EXPECT_EQ(s->reveal_hex(), "01");
}

TEST(Hex, PublicBytes) {
  const std::uint8_t b[] = {0xde, 0xad};
  EXPECT_EQ(to_hex(b), "dead");
  EXPECT_FALSE(parse_hex("xyz").has_value());
  EXPECT_EQ(parse_hex("dead")->size(), 2u);
}

}  // namespace
}  // namespace storcrypt
