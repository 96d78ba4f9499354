#include <gtest/gtest.h>

#include <string>

#include "storcrypt/certs/certs.h"
#include "test_pki.h"

namespace storcrypt::certs {
namespace {

using testing::make_cert;
using testing::MakeOptions;

std::string replace_all(std::string s, const std::string& from, const std::string& to) {
  std::size_t pos = 0;
  while ((pos = s.find(from, pos)) != std::string::npos) {
    s.replace(pos, from.size(), to);
    pos += to.size();
  }
  return s;
}

class ParseTest : public ::testing::Test {
 protected:
  void SetUp() override {
    MakeOptions o;
    o.cn = "parse-leaf";
    leaf_ = make_cert(o);
    pem_ = leaf_.cert.to_pem();
    ASSERT_NE(pem_.find("-----BEGIN CERTIFICATE-----"), std::string::npos);
  }
  std::string fp() const { return leaf_.cert.info().sha256_fingerprint; }
  testing::MadeCert leaf_;
  std::string pem_;
};

TEST_F(ParseTest, PlainPem) {
  auto c = parse_certificate(pem_);
  ASSERT_TRUE(c.ok()) << c.error().to_string();
  EXPECT_EQ(c->info().sha256_fingerprint, fp());
  EXPECT_NE(c->info().subject.find("CN=parse-leaf"), std::string::npos);
}

TEST_F(ParseTest, CrlfAndSurroundingWhitespace) {
  std::string in = "\r\n  \t" + replace_all(pem_, "\n", "\r\n") + "\r\n\r\n   ";
  auto c = parse_certificate(in);
  ASSERT_TRUE(c.ok()) << c.error().to_string();
  EXPECT_EQ(c->info().sha256_fingerprint, fp());
}

TEST_F(ParseTest, LiteralBackslashNSequences) {
  std::string in = replace_all(pem_, "\n", "\\n");
  ASSERT_EQ(in.find('\n'), std::string::npos);
  auto c = parse_certificate(in);
  ASSERT_TRUE(c.ok()) << c.error().to_string();
  EXPECT_EQ(c->info().sha256_fingerprint, fp());
  // JSON-quoted with escaped CRLF
  std::string q = "\"" + replace_all(pem_, "\n", "\\r\\n") + "\"";
  auto c2 = parse_certificate(q);
  ASSERT_TRUE(c2.ok()) << c2.error().to_string();
  EXPECT_EQ(c2->info().sha256_fingerprint, fp());
}

TEST_F(ParseTest, IndentedLines) {
  std::string in = "    " + replace_all(pem_, "\n", "\n    ");
  auto c = parse_certificate(in);
  ASSERT_TRUE(c.ok()) << c.error().to_string();
}

TEST_F(ParseTest, Der) {
  auto der = leaf_.cert.to_der();
  ASSERT_FALSE(der.empty());
  std::string in(der.begin(), der.end());
  auto c = parse_certificate(in);
  ASSERT_TRUE(c.ok()) << c.error().to_string();
  EXPECT_EQ(c->info().sha256_fingerprint, fp());
}

TEST_F(ParseTest, DerWithSurroundingNewline) {
  auto der = leaf_.cert.to_der();
  std::string in(der.begin(), der.end());
  auto c = parse_certificate(in + "\r\n");
  ASSERT_TRUE(c.ok()) << c.error().to_string();
  EXPECT_EQ(c->info().sha256_fingerprint, fp());
}

TEST_F(ParseTest, DerWithTrailingBytesIsGarbage) {
  auto der = leaf_.cert.to_der();
  std::string in(der.begin(), der.end());
  in += "xyz";
  auto c = parse_certificates(in);
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.error().name(), "xCertGarbage");
}

TEST_F(ParseTest, BundleAnyOrderWithTextBetween) {
  MakeOptions o;
  o.cn = "other";
  auto other = make_cert(o);
  std::string in = "subject=foo\n" + pem_ + "some text\n" + other.cert.to_pem() + "\n";
  auto v = parse_certificates(in);
  ASSERT_TRUE(v.ok()) << v.error().to_string();
  ASSERT_EQ(v->size(), 2u);
  EXPECT_EQ((*v)[0].info().sha256_fingerprint, fp());
  auto one = parse_certificate(in);
  ASSERT_FALSE(one.ok());
  EXPECT_EQ(one.error().name(), "xCertGarbage");
  EXPECT_NE(one.error().message().find("found 2"), std::string::npos);
}

TEST(Parse, GarbageInputsHaveTheGarbageName) {
  for (std::string in : {std::string(), std::string("   \r\n"), std::string("hello world"),
                         std::string("\x30\x82\x01\x00garbage", 12), std::string("-----BEGIN CERTIFICATE-----\n"),
                         std::string("-----BEGIN CERTIFICATE-----\nAAAA!!!!\n-----END CERTIFICATE-----\n"),
                         std::string("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"),
                         std::string("-----BEGIN FOO-----\nAAAA\n-----END FOO-----\n")}) {
    auto c = parse_certificates(in);
    ASSERT_FALSE(c.ok()) << "accepted: " << in;
    EXPECT_EQ(c.error().name(), "xCertGarbage") << in;
    EXPECT_EQ(c.error().code(), ErrorCode::kInvalidInput);
    EXPECT_FALSE(c.error().message().empty());
    EXPECT_FALSE(c.error().fix().empty());
  }
}

TEST(Parse, PlainTextSaysWhatIsMissing) {
  auto c = parse_certificates("this is my certificate, trust me\n");
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.error().message().find("without a -----BEGIN CERTIFICATE----- line"), std::string::npos);
}

TEST(Parse, Base64WithoutHeaderGetsAFix) {
  auto c = parse_certificates("MIIBszCCATmgAwIBAgIUYWJjZGVmZ2hpamtsbW5vcHFyc3R1dnd4");
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.error().name(), "xCertGarbage");
  EXPECT_NE(c.error().fix().find("BEGIN CERTIFICATE"), std::string::npos);
}

TEST(Parse, PrivateKeyIsRefusedWithoutEcho) {
  auto k = PrivateKey::generate(KeyType::kEcP384);
  ASSERT_TRUE(k.ok());
  auto pem = k->to_pem();
  ASSERT_TRUE(pem.ok());
  std::string in(reinterpret_cast<const char*>(pem->data()), pem->size());
  auto c = parse_certificates(in);
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.error().name(), "xCertGarbage");
  EXPECT_NE(c.error().message().find("private key"), std::string::npos);
  // no line of the key's base64 appears in the error
  std::string body = in.substr(in.find('\n') + 1, 40);
  EXPECT_EQ(c.error().to_string().find(body), std::string::npos);
}

TEST(Parse, TooLargeInput) {
  std::string big(2 << 20, 'A');
  auto c = parse_certificates(big);
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.error().name(), "xCertGarbage");
}

TEST(Normalize, LeavesNonPemAlone) {
  std::string der("\x30\x03\x02\x01\x0a", 5);
  EXPECT_EQ(normalize_pem_text(der), der);
}

TEST(Normalize, ProducesLfLines) {
  EXPECT_EQ(normalize_pem_text("  -----BEGIN X-----\\r\\nAB\r\n-----END X-----  "),
            "-----BEGIN X-----\nAB\n-----END X-----\n");
}

TEST(Info, FieldsOfATestCert) {
  MakeOptions o;
  o.cn = "info";
  auto m = make_cert(o);
  CertInfo i = m.cert.info();
  EXPECT_EQ(i.key, "ec-p384");
  EXPECT_FALSE(i.is_ca);
  EXPECT_TRUE(i.self_signed);
  EXPECT_EQ(i.sha256_fingerprint.size(), 32u * 3 - 1);
  EXPECT_LT(i.not_before, i.not_after);
  ASSERT_EQ(i.ext_key_usage.size(), 2u);
  EXPECT_EQ(i.ext_key_usage[0], "serverAuth");
  EXPECT_EQ(i.ext_key_usage[1], "clientAuth");
  EXPECT_TRUE(m.cert.matches(m.key));
  auto other = PrivateKey::generate(KeyType::kEcP384);
  ASSERT_TRUE(other.ok());
  EXPECT_FALSE(m.cert.matches(*other));
}

}  // namespace
}  // namespace storcrypt::certs
