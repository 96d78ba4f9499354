#include "storcrypt/policy/keys.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sstream>

namespace storcrypt::policy {
namespace {

SecretBytes pass(std::string_view s) { return SecretBytes(reinterpret_cast<const std::uint8_t*>(s.data()), s.size()); }

KeyExportOptions fast_scrypt() {
  KeyExportOptions o;
  o.scrypt_n = 1024;  // keep unit tests quick; the default is 2^15
  return o;
}

TEST(KeyStore, CreateAndLengthChecks) {
  KeyStore ks;
  ASSERT_TRUE(ks.create_random("gcm", Algorithm::kAesGcm256).ok());
  EXPECT_EQ(ks.find("gcm")->value.size(), 36u);
  ASSERT_TRUE(ks.create_hex("sha1", Algorithm::kHmacSha1_96, std::string(40, 'a')).ok());
  auto short_key = ks.create_hex("sha1b", Algorithm::kHmacSha1_96, std::string(38, 'a'));
  ASSERT_FALSE(short_key.ok());
  EXPECT_NE(short_key.error().message().find("needs a key of 20 bytes, the value has 19"), std::string::npos);
  EXPECT_NE(short_key.error().fix().find("40 hex digits"), std::string::npos);
  ASSERT_TRUE(ks.create_ascii("cbc", Algorithm::kAesCbc128, "0123456789abcdef").ok());
  EXPECT_FALSE(ks.create_ascii("cbc2", Algorithm::kAesCbc128, "short").ok());
  EXPECT_FALSE(ks.create_ascii("cbc3", Algorithm::kAesCbc128, std::string("0123456789abcde\n")).ok());
  auto bad_hex = ks.create_hex("h", Algorithm::kAesCbc128, "zz" + std::string(30, '0'));
  ASSERT_FALSE(bad_hex.ok());
  EXPECT_EQ(bad_hex.error().to_string().find("zz"), std::string::npos);  // value never echoed
  EXPECT_EQ(ks.create_random("gcm", Algorithm::kAesGcm256).error().code(), ErrorCode::kConflict);
  EXPECT_FALSE(ks.create_random("bad name", Algorithm::kAesGcm256).ok());
  auto list = ks.list();
  ASSERT_EQ(list.size(), 3u);
  EXPECT_EQ(list[0].name, "cbc");
  EXPECT_EQ(list[0].bytes, 16u);
  ASSERT_TRUE(ks.remove("cbc").ok());
  EXPECT_EQ(ks.remove("cbc").error().code(), ErrorCode::kNotFound);
}

TEST(KeyFile, RoundTripScryptAndPbkdf2) {
  KeyStore a;
  ASSERT_TRUE(a.create_random("gcm", Algorithm::kAesGcm256).ok());
  ASSERT_TRUE(a.create_random("mac", Algorithm::kHmacSha512_256).ok());
  ASSERT_TRUE(a.create_random("other", Algorithm::kAesCbc256).ok());
  for (Kdf kdf : {Kdf::kScrypt, Kdf::kPbkdf2Sha256}) {
    KeyExportOptions o = fast_scrypt();
    o.kdf = kdf;
    o.pbkdf2_iterations = 1000;
    auto file = export_keys(a, {"gcm", "mac"}, pass("correct horse battery"), o);
    ASSERT_TRUE(file.ok()) << file.error().to_string();
    // No key value appears in the file.
    for (const char* n : {"gcm", "mac"}) {
      EXPECT_EQ(file->find(a.find(n)->value.reveal_hex()), std::string::npos);
    }
    KeyStore b;
    ASSERT_TRUE(import_keys_into(b, *file, pass("correct horse battery")).ok());
    EXPECT_EQ(b.size(), 2u);
    EXPECT_TRUE(b.find("gcm")->value.equals(a.find("gcm")->value));
    EXPECT_TRUE(b.find("mac")->value.equals(a.find("mac")->value));
    EXPECT_EQ(b.find("mac")->algorithm, Algorithm::kHmacSha512_256);
    EXPECT_EQ(b.find("other"), nullptr);
    // Importing again conflicts unless replace.
    EXPECT_EQ(import_keys_into(b, *file, pass("correct horse battery")).error().code(), ErrorCode::kConflict);
    EXPECT_TRUE(import_keys_into(b, *file, pass("correct horse battery"), true).ok());
  }
}

TEST(KeyFile, WrongPassphraseAndTampering) {
  KeyStore a;
  ASSERT_TRUE(a.create_random("gcm", Algorithm::kAesGcm256).ok());
  auto file = export_keys(a, {}, pass("correct horse battery"), fast_scrypt());
  ASSERT_TRUE(file.ok());
  auto wrong = import_keys(*file, pass("incorrect horse battery"));
  ASSERT_FALSE(wrong.ok());
  EXPECT_EQ(wrong.error().code(), ErrorCode::kPermission);
  EXPECT_NE(wrong.error().message().find("wrong passphrase"), std::string::npos);
  // The KDF parameters are authenticated: changing them fails like a wrong passphrase.
  std::string tampered = *file;
  tampered.replace(tampered.find("scrypt-n = 1024"), 15, "scrypt-n = 2048");
  EXPECT_EQ(import_keys(tampered, pass("correct horse battery")).error().code(), ErrorCode::kPermission);
  std::string flipped = *file;
  char& c = flipped[flipped.size() - 3];
  c = c == '0' ? '1' : '0';
  EXPECT_EQ(import_keys(flipped, pass("correct horse battery")).error().code(), ErrorCode::kPermission);
  EXPECT_EQ(import_keys("hello\n", pass("correct horse battery")).error().code(), ErrorCode::kInvalidInput);
  EXPECT_FALSE(export_keys(a, {}, pass("short")).ok());
  EXPECT_EQ(export_keys(a, {"nope"}, pass("long enough pass")).error().code(), ErrorCode::kNotFound);
}

TEST(KeyFile, EnvelopeAndPayloadParsers) {
  EXPECT_FALSE(parse_key_file("storcrypt-key-file 1\nkdf = scrypt\n").ok());
  std::string huge_n =
      "storcrypt-key-file 1\nkdf = scrypt\nscrypt-n = 1073741824\nscrypt-r = 8\nscrypt-p = 1\nsalt = "
      "00112233445566778899aabbccddeeff\nnonce = 00112233445566778899aabb\ndata = "
      "00112233445566778899aabbccddeeff\n";
  auto r = parse_key_file(huge_n);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message().find("scrypt parameters"), std::string::npos);
  std::string body = "k1 AES-CBC-128 00112233445566778899aabbccddeeff\n";
  auto keys = parse_key_payload({reinterpret_cast<const std::uint8_t*>(body.data()), body.size()});
  ASSERT_TRUE(keys.ok());
  EXPECT_EQ((*keys)[0].name, "k1");
  std::string bad = "k1 AES-CBC-256 00112233445566778899aabbccddeeff\n";
  EXPECT_FALSE(parse_key_payload({reinterpret_cast<const std::uint8_t*>(bad.data()), bad.size()}).ok());
}

TEST(KeyStore, ValuesNeverPrinted) {
  KeyStore ks;
  ASSERT_TRUE(ks.create_hex("k", Algorithm::kAesCbc128, "00112233445566778899aabbccddeeff").ok());
  std::ostringstream os;
  os << ks.find("k")->value;
  EXPECT_EQ(os.str(), "<redacted>");
}

}  // namespace
}  // namespace storcrypt::policy
