// Fixture for CertStore tests that use the openssl command as the judge.
#pragma once

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "storcrypt/certs/certs.h"
#include "storcrypt/testing/environment.h"
#include "storcrypt/testing/process.h"

namespace storcrypt::certs::testing {

namespace fs = std::filesystem;
using storcrypt::testing::find_program;
using storcrypt::testing::ProcessResult;
using storcrypt::testing::run;

inline CreateOptions full_options() {
  CreateOptions o;
  o.subject.country = "DE";
  o.subject.state = "Bavaria";
  o.subject.locality = "Munich";
  o.subject.organization = "Example Storage";
  o.subject.unit = "Replication";
  o.subject.common_name = "node1.example.com";
  o.subject.email = "ops@example.com";
  o.sans.dns = {"node1.example.com", "node1"};
  o.sans.ip = {"192.0.2.10", "2001:db8::10"};
  return o;
}

class StoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    STORCRYPT_REQUIRE(!find_program("openssl").empty(), "needs the openssl command");
    char tmpl[] = "/tmp/storcrypt-certs-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    tmp_ = tmpl;
    auto s = CertStore::open(tmp_ / "state", [this] { return clock_ ? *clock_ : (UnixTime)::time(nullptr); });
    ASSERT_TRUE(s.ok()) << s.error().to_string();
    store_.emplace(std::move(s).value());
  }
  void TearDown() override {
    if (!tmp_.empty()) fs::remove_all(tmp_);
  }

  std::string write(const std::string& name, const std::string& content) {
    fs::path p = tmp_ / name;
    std::ofstream(p, std::ios::binary) << content;
    return p.string();
  }
  static std::string slurp(const std::string& p) {
    std::ifstream f(p, std::ios::binary);
    std::stringstream ss;
    ss << f.rdbuf();
    return ss.str();
  }
  ProcessResult ossl(std::vector<std::string> args) {
    args.insert(args.begin(), "openssl");
    return run(args);
  }
  std::string path(const std::string& name) const { return (tmp_ / name).string(); }

  /// A foreign CA made with openssl commands: root -> intermediate.
  void make_foreign_ca(const std::string& prefix = "f") {
    const std::string r = path(prefix + "root"), i = path(prefix + "int");
    auto rr =
        ossl({"req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-384", "-nodes", "-keyout", r + ".key",
              "-out", r + ".pem", "-subj", "/O=Foreign/CN=" + prefix + " Foreign Root CA", "-days", "3650", "-addext",
              "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign"});
    ASSERT_EQ(rr.exit_code, 0) << rr.err;
    auto ir = ossl({"req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-384", "-nodes", "-keyout",
                    i + ".key", "-out", i + ".csr", "-subj", "/O=Foreign/CN=" + prefix + " Foreign Intermediate CA"});
    ASSERT_EQ(ir.exit_code, 0) << ir.err;
    write(prefix + "int.ext",
          "basicConstraints=critical,CA:TRUE,pathlen:0\nkeyUsage=critical,keyCertSign,cRLSign\n"
          "subjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid:always\n");
    auto is = ossl({"x509", "-req", "-in", i + ".csr", "-CA", r + ".pem", "-CAkey", r + ".key", "-CAcreateserial",
                    "-days", "1825", "-extfile", i + ".ext", "-out", i + ".pem"});
    ASSERT_EQ(is.exit_code, 0) << is.err;
  }
  /// Sign a CSR file with the foreign intermediate; extra args (e.g. -days -1).
  static constexpr const char* kLeafEku = "serverAuth,clientAuth";
  ProcessResult foreign_sign(const std::string& csr, const std::string& out, std::vector<std::string> extra = {},
                             const std::string& prefix = "f", const std::string& eku = kLeafEku) {
    const std::string i = path(prefix + "int");
    write("leaf.ext",
          "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\n"
          "extendedKeyUsage=" +
              eku +
              "\nsubjectKeyIdentifier=hash\n"
              "authorityKeyIdentifier=keyid:always\n");
    std::vector<std::string> a = {
        "x509", "-req",     "-in",           csr, "-CA", i + ".pem", "-CAkey", i + ".key", "-CAcreateserial", "-out",
        out,    "-extfile", path("leaf.ext")};
    bool has_days = false;
    for (const auto& e : extra) has_days |= e == "-days";
    if (!has_days) a.insert(a.end(), {"-days", "365"});
    a.insert(a.end(), extra.begin(), extra.end());
    return ossl(a);
  }
  /// A peer's key + certificate signed by the foreign intermediate `prefix`.
  std::string foreign_peer(const std::string& name, std::vector<std::string> extra = {},
                           const std::string& prefix = "f", const std::string& eku = kLeafEku) {
    auto r = ossl({"req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-384", "-nodes", "-keyout",
                   path(name + ".key"), "-out", path(name + ".csr"), "-subj", "/O=Peer/CN=" + name});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    auto s = foreign_sign(path(name + ".csr"), path(name + ".pem"), std::move(extra), prefix, eku);
    EXPECT_EQ(s.exit_code, 0) << s.err;
    return slurp(path(name + ".pem"));
  }
  std::string our_csr_file() {
    auto csr = store_->create_csr(full_options());
    EXPECT_TRUE(csr.ok()) << csr.error().to_string();
    return write("our.csr", csr.ok() ? csr->csr_pem : "");
  }

  fs::path tmp_;
  std::optional<UnixTime> clock_;
  std::optional<CertStore> store_;
};

inline mode_t file_mode(const fs::path& p) {
  struct stat st {};
  if (::stat(p.c_str(), &st) != 0) return 0;
  return st.st_mode & 07777;
}

}  // namespace storcrypt::certs::testing
