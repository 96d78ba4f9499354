// TTLV codec: byte-exact vectors from KMIP 1.4 spec section 9.1.2 (examples
// of each item type), round trips, and malformed input rejected with errors.
#include "storcrypt/kmip/ttlv.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "storcrypt/common/hex.h"
#include "storcrypt/kmip/tags.h"

namespace storcrypt::kmip {
namespace {

std::vector<std::uint8_t> unhex(std::string_view h) {
  std::string clean;
  for (char c : h)
    if (c != ' ' && c != '|') clean.push_back(c);
  auto v = parse_hex(clean);
  EXPECT_TRUE(v.has_value()) << h;
  return v.value_or(std::vector<std::uint8_t>{});
}

std::string hex_of(const Bytes& b) { return to_hex(std::span<const std::uint8_t>(b.data(), b.size())); }
std::string hex_of(const std::vector<std::uint8_t>& b) { return to_hex(b); }

void expect_vector(const Ttlv& item, std::string_view expected_hex) {
  auto enc = encode(item);
  ASSERT_TRUE(enc.ok()) << enc.error().to_string();
  auto want = unhex(expected_hex);
  EXPECT_EQ(hex_of(*enc), hex_of(want));
  auto dec = decode(want);
  ASSERT_TRUE(dec.ok()) << dec.error().to_string();
  EXPECT_TRUE(*dec == item) << dump(*dec);
}

// KMIP 1.4 spec 9.1.2 "Examples".
TEST(TtlvSpecVectors, Integer) {
  expect_vector(Ttlv::integer(0x420020, 8), "420020 | 02 | 00000004 | 00000008 00000000");
}
TEST(TtlvSpecVectors, LongInteger) {
  expect_vector(Ttlv::long_integer(0x420020, 123456789000000000LL), "420020 | 03 | 00000008 | 01B69B4BA5749200");
}
TEST(TtlvSpecVectors, BigInteger) {
  auto v = unhex("0000000003FD35EB6BC2DF4618080000");
  expect_vector(Ttlv::big_integer(0x420020, v), "420020 | 04 | 00000010 | 0000000003FD35EB6BC2DF4618080000");
}
TEST(TtlvSpecVectors, Enumeration) {
  expect_vector(Ttlv::enumeration(0x420020, 255), "420020 | 05 | 00000004 | 000000FF 00000000");
}
TEST(TtlvSpecVectors, Boolean) {
  expect_vector(Ttlv::boolean(0x420020, true), "420020 | 06 | 00000008 | 0000000000000001");
}
TEST(TtlvSpecVectors, TextString) {
  expect_vector(Ttlv::text_string(0x420020, "Hello World"),
                "420020 | 07 | 0000000B | 48656C6C6F20576F726C640000000000");
}
TEST(TtlvSpecVectors, ByteString) {
  std::vector<std::uint8_t> b{1, 2, 3};
  expect_vector(Ttlv::byte_string(0x420020, b), "420020 | 08 | 00000003 | 0102030000000000");
}
TEST(TtlvSpecVectors, DateTime) {
  // Friday, March 14, 2008, 11:56:40 GMT
  expect_vector(Ttlv::date_time(0x420020, 0x47DA67F8), "420020 | 09 | 00000008 | 0000000047DA67F8");
}
TEST(TtlvSpecVectors, Interval) {
  // 10 days
  expect_vector(Ttlv::interval(0x420020, 864000), "420020 | 0A | 00000004 | 000D2F00 00000000");
}
TEST(TtlvSpecVectors, Structure) {
  expect_vector(Ttlv::structure(0x420020, {Ttlv::enumeration(0x420004, 254), Ttlv::integer(0x420005, 255)}),
                "420020 | 01 | 00000020 | 420004 | 05 | 00000004 | 000000FE 00000000 |"
                " 420005 | 02 | 00000004 | 000000FF 00000000");
}
TEST(TtlvCodec, DateTimeExtendedKmip20Layout) {
  expect_vector(Ttlv::date_time_extended(0x420020, 0x0004AB0A7B5D2E00LL), "420020 | 0B | 00000008 | 0004AB0A7B5D2E00");
}

TEST(TtlvCodec, NegativeIntegerAndEmptyStrings) {
  expect_vector(Ttlv::integer(0x420020, -1), "420020 02 00000004 FFFFFFFF 00000000");
  expect_vector(Ttlv::text_string(0x420020, ""), "420020 07 00000000");
  expect_vector(Ttlv::byte_string(0x420020, {}), "420020 08 00000000");
  expect_vector(Ttlv::structure(0x420020), "420020 01 00000000");
  expect_vector(Ttlv::byte_string(0x420020, unhex("0102030405060708")), "420020 08 00000008 0102030405060708");
}

TEST(TtlvCodec, FindChildren) {
  auto s = Ttlv::structure(tag::kTemplateAttribute,
                           {Ttlv::integer(tag::kAttributeIndex, 1), Ttlv::text_string(tag::kAttributeName, "a"),
                            Ttlv::text_string(tag::kAttributeName, "b")});
  ASSERT_NE(s.find(tag::kAttributeIndex), nullptr);
  EXPECT_EQ(s.find(tag::kAttributeIndex)->num, 1);
  EXPECT_EQ(s.find(tag::kName), nullptr);
  EXPECT_EQ(s.find_all(tag::kAttributeName).size(), 2u);
}

TEST(TtlvCodec, EncodeRejectsUnencodableValues) {
  Ttlv big = Ttlv::big_integer(0x420020, unhex("010203"));
  EXPECT_EQ(encode(big).error().code(), ErrorCode::kInvalidInput);
  Ttlv b = Ttlv::boolean(0x420020, true);
  b.num = 2;
  EXPECT_FALSE(encode(b).ok());
  Ttlv e = Ttlv::enumeration(0x420020, 1);
  e.num = -1;
  EXPECT_FALSE(encode(e).ok());
  Ttlv t = Ttlv::integer(0x1000000, 1);
  EXPECT_FALSE(encode(t).ok());
}

void expect_malformed(std::string_view hex, std::string_view why_substring) {
  auto in = unhex(hex);
  auto r = decode(in);
  ASSERT_FALSE(r.ok()) << "decoded malformed input: " << hex;
  EXPECT_EQ(r.error().code(), ErrorCode::kProtocol);
  EXPECT_NE(r.error().message().find(why_substring), std::string::npos) << r.error().message();
}

TEST(TtlvMalformed, Rejected) {
  expect_malformed("", "truncated item header");
  expect_malformed("420020 02 000000", "truncated item header");
  expect_malformed("420020 0C 00000004 00000008 00000000", "unknown type");
  expect_malformed("420020 00 00000004 00000008 00000000", "unknown type");
  expect_malformed("420020 02 00000008 00000008 00000000", "expected 4");
  expect_malformed("420020 03 00000004 00000008 00000000", "expected 8");
  expect_malformed("420020 02 00000004 00000008", "only 4 present");
  expect_malformed("420020 06 00000008 0000000000000002", "neither 0 nor 1");
  expect_malformed("420020 07 0000000B 48656C6C6F20576F726C640000000001", "non-zero padding");
  expect_malformed("420020 07 FFFFFFFF 48656C6C6F20576F", "claims 4294967295 bytes");
  expect_malformed("420020 04 00000003 0102030000000000", "Big Integer");
  expect_malformed("420020 01 00000010 420004 05 00000004 000000FE 00000000 FF", "trailing");
  expect_malformed("420020 01 00000018 420004 05 00000004 000000FE 00000000", "claims 24");
  expect_malformed("420020 01 00000004 42000405", "not a multiple of 8");
  // Child whose length overruns its parent structure (but not the buffer).
  expect_malformed("420020 01 00000008 420004 07 00000008 4142434445464748", "only 0 present");
  expect_malformed("420020 02 00000004 00000008 00000000 420020", "trailing");
}

TEST(TtlvMalformed, DepthLimit) {
  // 40 nested empty-ish structures: each level adds an 8-byte header.
  Bytes deep;
  const int levels = 40;
  for (int i = 0; i < levels; ++i) {
    std::uint32_t len = static_cast<std::uint32_t>(8 * (levels - 1 - i));
    std::uint8_t h[8] = {0x42,
                         0x00,
                         0x20,
                         0x01,
                         static_cast<std::uint8_t>(len >> 24),
                         static_cast<std::uint8_t>(len >> 16),
                         static_cast<std::uint8_t>(len >> 8),
                         static_cast<std::uint8_t>(len)};
    deep.insert(deep.end(), h, h + 8);
  }
  auto r = decode(std::span<const std::uint8_t>(deep.data(), deep.size()));
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message().find("deeper"), std::string::npos);
}

TEST(TtlvFraming, FramedSize) {
  auto h = unhex("42007B 01 00000010");
  EXPECT_EQ(*framed_size(h), 24u);
  EXPECT_FALSE(framed_size(unhex("42007B 02 00000010")).ok());
  EXPECT_FALSE(framed_size(unhex("42007B 01 7FFFFFF8")).ok());
  EXPECT_FALSE(framed_size(unhex("42007B 01 00000011")).ok());
}

TEST(TtlvDump, NeverShowsByteStringContent) {
  auto s = Ttlv::structure(tag::kKeyValue, {Ttlv::byte_string(tag::kKeyMaterial, unhex("DEADBEEFCAFEF00D"))});
  auto d = dump(s);
  EXPECT_EQ(d.find("DEAD"), std::string::npos);
  EXPECT_EQ(d.find("dead"), std::string::npos);
  EXPECT_NE(d.find("Key Material (ByteString) <8 bytes>"), std::string::npos) << d;
}

}  // namespace
}  // namespace storcrypt::kmip
