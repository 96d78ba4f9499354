#include <gtest/gtest.h>

#include <vector>

#include "storcrypt/certs/certs.h"

namespace storcrypt::certs {
namespace {

constexpr UnixTime kDay = 86400;

TEST(Expiry, Classes) {
  const UnixTime nb = 1'000'000, now = 2'000'000;
  EXPECT_EQ(classify_expiry(nb, now + 365 * kDay, now), ExpiryClass::kOk);
  EXPECT_EQ(classify_expiry(nb, now + 30 * kDay, now), ExpiryClass::kOk);
  EXPECT_EQ(classify_expiry(nb, now + 30 * kDay - 1, now), ExpiryClass::kWarning);
  EXPECT_EQ(classify_expiry(nb, now + 7 * kDay, now), ExpiryClass::kWarning);
  EXPECT_EQ(classify_expiry(nb, now + 7 * kDay - 1, now), ExpiryClass::kError);
  EXPECT_EQ(classify_expiry(nb, now + 3 * kDay, now), ExpiryClass::kError);
  EXPECT_EQ(classify_expiry(nb, now + 3 * kDay - 1, now), ExpiryClass::kCritical);
  EXPECT_EQ(classify_expiry(nb, now, now), ExpiryClass::kCritical);
  EXPECT_EQ(classify_expiry(nb, now - 1, now), ExpiryClass::kExpired);
  EXPECT_EQ(classify_expiry(now + 1, now + 365 * kDay, now), ExpiryClass::kNotYetValid);
  EXPECT_EQ(expiry_class_name(ExpiryClass::kWarning), "warning");
  EXPECT_EQ(expiry_class_name(ExpiryClass::kExpired), "expired");
  EXPECT_EQ(expiry_severity(ExpiryClass::kOk), "ok");
  EXPECT_EQ(expiry_severity(ExpiryClass::kWarning), "warning");
  EXPECT_EQ(expiry_severity(ExpiryClass::kError), "error");
  EXPECT_EQ(expiry_severity(ExpiryClass::kCritical), "critical");
  EXPECT_EQ(expiry_severity(ExpiryClass::kExpired), "critical");
  EXPECT_EQ(expiry_severity(ExpiryClass::kNotYetValid), "critical");
}

TEST(Time, FormatUtc) {
  EXPECT_EQ(format_utc(0), "1970-01-01T00:00:00Z");
  EXPECT_EQ(format_utc(1'700'000'000), "2023-11-14T22:13:20Z");
}

TEST(KeyType, Names) {
  EXPECT_EQ(parse_key_type("ec-p384").value(), KeyType::kEcP384);
  EXPECT_EQ(parse_key_type("RSA4096").value(), KeyType::kRsa4096);
  EXPECT_EQ(parse_key_type("rsa-3072").value(), KeyType::kRsa3072);
  auto bad = parse_key_type("rsa-2048");
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.error().name(), "xCertBadKeyType");
}

TEST(KeyGen, EcP384DefaultAndPemRoundTrip) {
  auto k = PrivateKey::generate(KeyType::kEcP384);
  ASSERT_TRUE(k.ok()) << k.error().to_string();
  EXPECT_EQ(k->describe(), "ec-p384");
  auto pem = k->to_pem();
  ASSERT_TRUE(pem.ok());
  auto k2 = PrivateKey::from_pem(*pem);
  ASSERT_TRUE(k2.ok());
  EXPECT_EQ(k2->public_key_pem().value(), k->public_key_pem().value());
  SecretBytes junk(reinterpret_cast<const std::uint8_t*>("nope"), 4);
  EXPECT_FALSE(PrivateKey::from_pem(junk).ok());
}

TEST(KeyGen, Rsa3072) {
  auto k = PrivateKey::generate(KeyType::kRsa3072);
  ASSERT_TRUE(k.ok());
  EXPECT_EQ(k->describe(), "rsa-3072");
}

TEST(Subject, Validation) {
  SubjectFields s;
  s.common_name = "node1.example.com";
  s.country = "DE";
  s.email = "ops@example.com";
  EXPECT_TRUE(validate_subject(s).ok());
  auto no_cn = s;
  no_cn.common_name.clear();
  auto e = validate_subject(no_cn);
  ASSERT_FALSE(e.ok());
  EXPECT_EQ(e.error().name(), "xCertBadSubject");
  EXPECT_NE(e.error().message().find("CN"), std::string::npos);
  auto bad_c = s;
  bad_c.country = "DEU";
  e = validate_subject(bad_c);
  ASSERT_FALSE(e.ok());
  EXPECT_NE(e.error().message().find("country"), std::string::npos);
  auto bad_mail = s;
  bad_mail.email = "no-at-sign";
  EXPECT_FALSE(validate_subject(bad_mail).ok());
  auto ctrl = s;
  ctrl.organization = std::string("a\nb");
  EXPECT_FALSE(validate_subject(ctrl).ok());
}

TEST(Sans, Validation) {
  SubjectAltNames ok{{"node1.example.com", "*.example.com", "localhost"}, {"192.0.2.1", "2001:db8::1"}};
  EXPECT_TRUE(validate_sans(ok).ok());
  for (std::string d :
       std::vector<std::string>{"", "-bad.example", "a..b", "sp ace.example", std::string(64, 'a') + ".com"}) {
    auto e = validate_sans(SubjectAltNames{{d}, {}});
    ASSERT_FALSE(e.ok()) << d;
    EXPECT_EQ(e.error().name(), "xCertBadSan");
  }
  auto e = validate_sans(SubjectAltNames{{}, {"300.1.1.1"}});
  ASSERT_FALSE(e.ok());
  EXPECT_EQ(e.error().name(), "xCertBadSan");
}

TEST(TrustUse, Parse) {
  auto u = parse_trust_uses("ipsec, KMIP,rest-api");
  ASSERT_TRUE(u.ok());
  EXPECT_EQ(u->size(), 3u);
  EXPECT_EQ(trust_use_name(TrustUse::kRestApi), "restapi");
  auto bad = parse_trust_uses("ipsec,smtp");
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.error().name(), "xTrustBadUse");
  EXPECT_FALSE(parse_trust_uses(" , ").ok());
}

}  // namespace
}  // namespace storcrypt::certs
