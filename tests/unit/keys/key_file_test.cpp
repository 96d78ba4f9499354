#include "storcrypt/keys/key_file.h"

#include <gtest/gtest.h>

#include <fstream>
#include <iterator>
#include <string>

namespace storcrypt::keys {
namespace {

std::span<const std::uint8_t> as_bytes(const std::string& s) {
  return {reinterpret_cast<const std::uint8_t*>(s.data()), s.size()};
}

KeyFile sample(std::string sys = "node-a", std::string kid = "vol1", std::uint64_t gen = 3) {
  auto ak = SecretBytes::from_hex("000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f");
  return KeyFile{std::move(sys), std::move(kid), gen, std::move(ak).value()};
}

TEST(KeyFile, RoundTrip) {
  auto text = encode_key_file(sample());
  ASSERT_TRUE(text.ok()) << text.error().to_string();
  EXPECT_EQ(text->rfind("STORCRYPT-KEYFILE 1\n", 0), 0u);
  KeyFileProblem p = KeyFileProblem::kCorrupt;
  auto kf = load_key_file(as_bytes(*text), "node-a", "vol1", 3, &p);
  ASSERT_TRUE(kf.ok()) << kf.error().to_string();
  EXPECT_EQ(p, KeyFileProblem::kNone);
  EXPECT_EQ(kf->ak.reveal_hex(), "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f");
  EXPECT_EQ(kf->generation, 3u);
}

TEST(KeyFile, EveryFlippedByteIsDetected) {
  auto text = encode_key_file(sample()).value();
  for (std::size_t i = 0; i < text.size(); ++i) {
    std::string bad = text;
    bad[i] = static_cast<char>(bad[i] ^ 0x01);
    KeyFileProblem p = KeyFileProblem::kNone;
    auto kf = load_key_file(as_bytes(bad), "node-a", "vol1", 3, &p);
    EXPECT_FALSE(kf.ok()) << "flip at " << i << " accepted";
    // A flip in the system id line yields a valid-looking file only if the MAC matched: never.
    EXPECT_EQ(p, KeyFileProblem::kCorrupt) << "flip at " << i;
  }
}

TEST(KeyFile, TruncationIsCorrupt) {
  auto text = encode_key_file(sample()).value();
  for (std::size_t n = 0; n < text.size(); n += 7) {
    KeyFileProblem p = KeyFileProblem::kNone;
    EXPECT_FALSE(parse_key_file(as_bytes(text.substr(0, n)), &p).ok());
    EXPECT_EQ(p, KeyFileProblem::kCorrupt);
  }
}

TEST(KeyFile, OtherSystemIsReportedNotUsed) {
  auto text = encode_key_file(sample("node-b")).value();
  KeyFileProblem p = KeyFileProblem::kNone;
  auto kf = load_key_file(as_bytes(text), "node-a", "vol1", 3, &p);
  ASSERT_FALSE(kf.ok());
  EXPECT_EQ(p, KeyFileProblem::kOtherSystem);
  EXPECT_NE(kf.error().message().find("node-b"), std::string::npos);
}

TEST(KeyFile, SystemIdEditedToOursIsCorrupt) {
  // Someone edits a foreign file's system id to ours: the MAC (keyed from the id) breaks.
  auto text = encode_key_file(sample("node-b")).value();
  text.replace(text.find("node-b"), 6, "node-a");
  KeyFileProblem p = KeyFileProblem::kNone;
  EXPECT_FALSE(load_key_file(as_bytes(text), "node-a", "vol1", 3, &p).ok());
  EXPECT_EQ(p, KeyFileProblem::kCorrupt);
}

TEST(KeyFile, WrongKeyIdOrGeneration) {
  auto text = encode_key_file(sample()).value();
  KeyFileProblem p = KeyFileProblem::kNone;
  EXPECT_FALSE(load_key_file(as_bytes(text), "node-a", "vol2", 3, &p).ok());
  EXPECT_EQ(p, KeyFileProblem::kWrongKey);
  EXPECT_FALSE(load_key_file(as_bytes(text), "node-a", "vol1", 4, &p).ok());
  EXPECT_EQ(p, KeyFileProblem::kWrongKey);
}

TEST(KeyFile, ErrorsNeverContainTheKey) {
  auto text = encode_key_file(sample()).value();
  std::string bad = text;
  bad[bad.find("mac: ") + 5] = 'Z';
  auto kf = parse_key_file(as_bytes(bad));
  ASSERT_FALSE(kf.ok());
  EXPECT_EQ(kf.error().to_string().find("0001020304"), std::string::npos);
}

TEST(KeyFile, EncodeRejectsBadFields) {
  auto k = sample();
  k.key_id = "has space";
  EXPECT_FALSE(encode_key_file(k).ok());
  auto k2 = sample();
  k2.generation = 0;
  EXPECT_FALSE(encode_key_file(k2).ok());
  auto k3 = sample();
  k3.ak.resize(16);
  EXPECT_FALSE(encode_key_file(k3).ok());
  auto k4 = sample();
  k4.system_id = "";
  EXPECT_FALSE(encode_key_file(k4).ok());
}

TEST(KeyFile, RejectsTrailingDataAndOtherVersions) {
  auto text = encode_key_file(sample()).value();
  EXPECT_FALSE(parse_key_file(as_bytes(text + "x")).ok());
  std::string v2 = text;
  v2[18] = '2';
  auto r = parse_key_file(as_bytes(v2));
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message().find("version"), std::string::npos);
}

}  // namespace
}  // namespace storcrypt::keys

namespace storcrypt::keys {
namespace {
// tests/fuzz/keys/corpus/valid was produced by an independent Python
// implementation (hmac + hashlib HKDF) of the documented format.
TEST(KeyFile, IndependentlyProducedFileVerifies) {
  std::ifstream f(std::string(STORCRYPT_KEYS_CORPUS) + "/valid", std::ios::binary);
  std::string text((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  ASSERT_FALSE(text.empty());
  auto kf = load_key_file(as_bytes(text), "node-a", "vol1", 7);
  ASSERT_TRUE(kf.ok()) << kf.error().to_string();
  std::string want;
  for (int i = 0; i < 32; ++i) want += "ab";
  EXPECT_EQ(kf->ak.reveal_hex(), want);
  EXPECT_EQ(kf->generation, 7u);
}
}  // namespace
}  // namespace storcrypt::keys
