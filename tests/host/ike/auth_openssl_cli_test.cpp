// Host tier: our AUTH signatures and peer chain decisions against the
// openssl command line (an independent implementation of the encodings and
// of `openssl verify`), no root needed.
//
//  - RSASSA-PSS, PKCS#1 v1.5 and ECDSA AUTH signatures made by sign_auth()
//    verify with `openssl dgst -verify` using the parameters our
//    AlgorithmIdentifier announces; a flipped bit does not.
//  - `openssl asn1parse` reads our RSASSA-PSS AlgorithmIdentifier as
//    rsassaPss / sha384 / mgf1 sha384 / salt 48.
//  - PeerValidator and `openssl verify` agree on good and bad chains, and our
//    refusal carries OpenSSL's reason text.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "storcrypt/ike/auth.h"
#include "storcrypt/ike/peer_auth.h"
#include "storcrypt/testing/process.h"
#include "storcrypt/testing/test_pki.h"

namespace storcrypt::ike {
namespace {

namespace fs = std::filesystem;
using storcrypt::testing::CertSpec;
using storcrypt::testing::TestKey;

class OpensslCli : public ::testing::Test {
 protected:
  void SetUp() override {
    if (storcrypt::testing::run({"openssl", "version"}).exit_code != 0) GTEST_SKIP() << "needs the openssl command";
    dir = fs::temp_directory_path() / ("storcrypt-auth-cli-" + std::to_string(::getpid()) + "-" +
                                       ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir);
    fs::create_directories(dir);
  }
  void TearDown() override {
    if (!dir.empty()) fs::remove_all(dir);
  }
  std::string write(const std::string& name, const std::string& data) {
    const std::string p = (dir / name).string();
    std::ofstream(p, std::ios::binary) << data;
    return p;
  }
  std::string write(const std::string& name, const Bytes& data) {
    return write(name, std::string(data.begin(), data.end()));
  }
  fs::path dir;
};

Bytes octets() {
  Bytes b;
  for (int i = 0; i < 500; ++i) b.push_back(static_cast<std::uint8_t>(i * 13 + 1));
  return b;
}

Bytes alg_of(const AuthPayload& a) { return Bytes(a.data.begin() + 1, a.data.begin() + 1 + a.data[0]); }
Bytes sig_of(const AuthPayload& a) { return Bytes(a.data.begin() + 1 + a.data[0], a.data.end()); }

std::string pubkey_pem(X509* cert) {
  auto r = storcrypt::testing::run({"openssl", "x509", "-noout", "-pubkey"}, storcrypt::testing::cert_pem(cert));
  return r.out;
}

TEST_F(OpensslCli, OurSignaturesVerifyWithOpensslDgst) {
  auto rsa = storcrypt::testing::generate_key(TestKey::kRsa3072);
  auto ec = storcrypt::testing::generate_key(TestKey::kEcP384);
  auto rsa_cert = storcrypt::testing::issue_cert(rsa.get(), CertSpec{.common_name = "rsa.lab"});
  auto ec_cert = storcrypt::testing::issue_cert(ec.get(), CertSpec{.common_name = "ec.lab"});
  const std::string msg = write("octets", octets());
  const std::string rsa_pub = write("rsa.pub", pubkey_pem(rsa_cert.get()));
  const std::string ec_pub = write("ec.pub", pubkey_pem(ec_cert.get()));
  struct Case {
    EVP_PKEY* key;
    std::uint16_t hash;
    RsaPadding pad;
    std::string pub;
    std::vector<std::string> opts;
  };
  const std::vector<Case> cases = {
      {rsa.get(),
       hash_alg::kSha384,
       RsaPadding::kPss,
       rsa_pub,
       {"-sha384", "-sigopt", "rsa_padding_mode:pss", "-sigopt", "rsa_pss_saltlen:48", "-sigopt",
        "rsa_mgf1_md:sha384"}},
      {rsa.get(),
       hash_alg::kSha512,
       RsaPadding::kPss,
       rsa_pub,
       {"-sha512", "-sigopt", "rsa_padding_mode:pss", "-sigopt", "rsa_pss_saltlen:64", "-sigopt",
        "rsa_mgf1_md:sha512"}},
      {rsa.get(), hash_alg::kSha384, RsaPadding::kPkcs1, rsa_pub, {"-sha384"}},
      {rsa.get(), hash_alg::kSha512, RsaPadding::kPkcs1, rsa_pub, {"-sha512"}},
      {ec.get(), hash_alg::kSha384, RsaPadding::kPss, ec_pub, {"-sha384"}},
  };
  for (const Case& c : cases) {
    auto a = sign_auth(c.key, octets(), c.hash, c.pad);
    ASSERT_TRUE(a.ok()) << a.error().to_string();
    const std::string sig = write("sig", sig_of(*a));
    std::vector<std::string> argv = {"openssl", "dgst"};
    argv.insert(argv.end(), c.opts.begin(), c.opts.end());
    argv.insert(argv.end(), {"-verify", c.pub, "-signature", sig, msg});
    auto r = storcrypt::testing::run(argv);
    EXPECT_EQ(r.exit_code, 0) << c.opts[0] << ": " << r.out << r.err;
    EXPECT_NE(r.out.find("Verified OK"), std::string::npos) << r.out;
    Bytes bad = sig_of(*a);
    bad[bad.size() / 2] ^= 0x10;
    write("sig", bad);
    EXPECT_NE(storcrypt::testing::run(argv).exit_code, 0) << c.opts[0] << ": a flipped bit must not verify";
  }
}

TEST_F(OpensslCli, PssAlgorithmIdentifierReadsBack) {
  auto rsa = storcrypt::testing::generate_key(TestKey::kRsa3072);
  auto a = sign_auth(rsa.get(), octets(), hash_alg::kSha384);
  ASSERT_TRUE(a.ok());
  const std::string aid = write("aid.der", alg_of(*a));
  auto r = storcrypt::testing::run({"openssl", "asn1parse", "-inform", "DER", "-in", aid});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  // Order matters: algorithm, hash, MGF1 and its hash, salt length 48 (0x30).
  std::size_t at = 0;
  for (const char* want : {"rsassaPss", "sha384", "mgf1", "sha384", "INTEGER           :30"}) {
    at = r.out.find(want, at);
    ASSERT_NE(at, std::string::npos) << "missing " << want << " in\n" << r.out;
    ++at;
  }
}

TEST_F(OpensslCli, ChainDecisionsAgreeWithOpensslVerify) {
  const std::int64_t now = storcrypt::testing::unix_now();
  auto pki = storcrypt::testing::make_chain();
  auto theirs = storcrypt::testing::make_chain(storcrypt::testing::ChainSpec{.root_cn = "their root CA"});
  auto k = storcrypt::testing::generate_key(TestKey::kEcP384);
  auto expired = storcrypt::testing::issue_cert(
      k.get(),
      CertSpec{
          .common_name = "old.lab", .san = "DNS:old.lab", .not_before = now - 90 * 86400, .not_after = now - 86400},
      pki.intermediate.get(), pki.intermediate_key.get());
  const std::string root = write("root.pem", storcrypt::testing::cert_pem(pki.root.get()));
  const std::string inter = write("inter.pem", storcrypt::testing::cert_pem(pki.intermediate.get()));
  auto v = PeerValidator::from_certificates(std::vector<X509*>{pki.root.get()});
  ASSERT_TRUE(v.ok());
  struct Case {
    const char* what;
    X509* ee;
    std::vector<X509*> chain;
    bool ok;
  };
  const std::vector<Case> cases = {
      {"good", pki.ee.get(), {pki.intermediate.get()}, true},
      {"missing intermediate", pki.ee.get(), {}, false},
      {"wrong root", theirs.ee.get(), {theirs.intermediate.get()}, false},
      {"expired", expired.get(), {pki.intermediate.get()}, false},
  };
  for (const Case& c : cases) {
    const std::string ee = write("ee.pem", storcrypt::testing::cert_pem(c.ee));
    std::string untrusted;
    for (X509* x : c.chain) untrusted += storcrypt::testing::cert_pem(x);
    std::vector<std::string> argv = {"openssl", "verify", "-CAfile", root};
    if (!untrusted.empty()) argv.insert(argv.end(), {"-untrusted", write("untrusted.pem", untrusted)});
    argv.push_back(ee);
    auto r = storcrypt::testing::run(argv);
    auto sid = id_from_subject(c.ee);
    ASSERT_TRUE(sid.ok());
    auto st = v->validate(c.ee, c.chain, *sid, now);
    EXPECT_EQ(r.exit_code == 0, c.ok) << c.what << ": openssl: " << r.out << r.err;
    EXPECT_EQ(st.ok(), c.ok) << c.what << ": ours: " << (st.ok() ? "ok" : st.error().to_string());
    if (!st.ok() && r.exit_code != 0) {
      // "error 20 at 1 depth lookup: unable to get local issuer certificate" -> the same reason in ours.
      const std::string cli = r.out + r.err;
      const auto lookup = cli.find("lookup: ");
      ASSERT_NE(lookup, std::string::npos) << cli;
      const std::string reason = cli.substr(lookup + 8, cli.find('\n', lookup) - lookup - 8);
      if (std::string(c.what) != "expired") {
        EXPECT_NE(st.error().message().find(reason), std::string::npos)
            << c.what << ": openssl says \"" << reason << "\", we say " << st.error().message();
      }
    }
  }
}

}  // namespace
}  // namespace storcrypt::ike
