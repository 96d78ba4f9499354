// End to end (issue 17): a volume keyed from a KMIP key provider, through the
// controller's dispatcher, against a real PyKMIP server and the real
// libcryptsetup on a LUKS2 image file (no device-mapper: the VM tier opens).
// The node's KMIP client certificate is issued by the test CA for the CSR of
// GetClientCertificateSignRequest; a second KMIP client (the same CN, so
// PyKMIP's owner policy lets it read the node's keys) fetches the key from
// the server, and stock `cryptsetup open --test-passphrase --key-file` checks
// that it opens the volume. A "restart" is a new dispatcher on the same state
// database (nothing cached in memory).
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "../kmip/pykmip_fixture.h"
#include "storcrypt/controller/dispatcher.h"
#include "storcrypt/controller/journal_store.h"
#include "storcrypt/controller/nouns.h"
#include "storcrypt/testing/environment.h"
#include "storcrypt/testing/process.h"

namespace storcrypt::controller {
namespace {
namespace fs = std::filesystem;
namespace kt = storcrypt::kmip::testing;
using nlohmann::json;
using storcrypt::testing::run;

std::string read_all(const fs::path& p) {
  std::ifstream in(p);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

class KmipVolume : public ::testing::Test {
 protected:
  // One PyKMIP server for the binary (it starts slowly); tests use their own key ids.
  static void SetUpTestSuite() {
    std::string why;
    if (!kt::pykmip_available(why)) return;
    std::string err;
    pki_ = kt::make_pki(err);
    if (!err.empty()) {
      setup_error_ = err;
      return;
    }
    srv_ = new kt::PyKmipServer();
    if (!srv_->start(pki_, err)) setup_error_ = err;
  }
  static void TearDownTestSuite() {
    delete srv_;
    srv_ = nullptr;
  }
  void SetUp() override {
    STORCRYPT_REQUIRE(::storcrypt::testing::is_root(), "needs root for libcryptsetup header locking");
    std::string why;
    STORCRYPT_REQUIRE(kt::pykmip_available(why), why);
    ASSERT_TRUE(setup_error_.empty()) << setup_error_;
    ASSERT_NE(srv_, nullptr);
    root_ = fs::temp_directory_path() / ("storcrypt-kmipvol-" + std::to_string(::getpid()));
    fs::remove_all(root_);
    for (auto* d : {"etc", "m1", "state"}) fs::create_directories(root_ / d);
    std::ofstream(root_ / "img").close();
    fs::resize_file(root_ / "img", 20u << 20);
    json c = {{"system_id", "node-e2e"},
              {"media_dirs", {(root_ / "m1").string()}},
              {"desired_copies", 1},
              {"sed_devices", json::array()}};
    std::ofstream(root_ / "etc" / "at-rest.json") << c.dump();
    db_ = Db::open((root_ / "state" / "state.db").string()).value();
    journal_ = open_db_journal(*db_).value();
    start();
  }
  void TearDown() override {
    node_.reset();
    journal_.reset();
    db_.reset();
    if (!root_.empty()) fs::remove_all(root_);
  }
  /// A fresh dispatcher over the same state (the "daemon restart").
  void start() {
    node_.reset();
    node_ = std::make_unique<Node>();
    node_->ctx.db = db_.get();
    node_->ctx.journal = journal_.get();
    node_->ctx.config_path = (root_ / "etc" / "storcrypt.conf").string();
    node_->ctx.config.state_directory = (root_ / "state").string();
    ASSERT_TRUE(register_volume_methods(node_->d, node_->ctx).ok());
    ASSERT_TRUE(register_keymedia_methods(node_->d, node_->ctx).ok());
    ASSERT_TRUE(register_ear_methods(node_->d, node_->ctx).ok());
    ASSERT_TRUE(register_kmip_methods(node_->d, node_->ctx).ok());
  }
  Result<json> call(const std::string& m, const json& p = json::object()) { return node_->d.call(m, p); }
  json ok(const std::string& m, const json& p = json::object()) {
    auto r = call(m, p);
    EXPECT_TRUE(r.ok()) << m << ": " << r.error().to_string();
    return r.ok() ? *r : json::object();
  }
  /// Key pair, CSR signed by the test CA, key server on PyKMIP, provider: its id.
  int64_t provider_on_pykmip() {
    ok("CreatePublicPrivateKeyPair", {{"commonName", "storcrypt-node"}});
    std::string csr = ok("GetClientCertificateSignRequest")["clientCertificateSignRequest"];
    std::ofstream(root_ / "node.csr") << csr;
    std::ofstream(root_ / "ext") << "extendedKeyUsage=clientAuth\nbasicConstraints=CA:FALSE\n";
    auto r = run({"openssl", "x509", "-req", "-in", (root_ / "node.csr").string(), "-CA", pki_.dir + "/ca.pem",
                  "-CAkey", pki_.dir + "/ca.key", "-set_serial", "4242", "-days", "2", "-out",
                  (root_ / "node.pem").string(), "-extfile", (root_ / "ext").string()});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    json s = ok("CreateKeyServerKmip", {{"keyServerName", "kms1"},
                                        {"kmipKeyServerHostnames", {"127.0.0.1"}},
                                        {"kmipKeyServerPort", srv_->port()},
                                        {"kmipCaCertificate", read_all(pki_.ca)},
                                        {"kmipClientCertificate", read_all(root_ / "node.pem")}});
    int64_t p = ok("CreateKeyProviderKmip", {{"keyProviderName", "kmip"}})["keyProviderID"];
    ok("AddKeyServerToProviderKmip", {{"keyProviderID", p}, {"keyServerID", s["keyServerID"]}});
    return p;
  }
  /// The key named `name` from PyKMIP by a second client, into a key file; "" when absent.
  std::string key_file_from_server(const std::string& name, const std::string& file) {
    auto c = kmip::Client::create(kt::client_config(pki_, {srv_->port()})).value();
    kmip::LocateFilter f;
    f.name = name;
    auto uids = c->locate(f);
    EXPECT_TRUE(uids.ok()) << uids.error().to_string();
    if (!uids.ok() || uids->size() != 1) return {};
    auto obj = c->get((*uids)[0]);
    EXPECT_TRUE(obj.ok()) << obj.error().to_string();
    if (!obj.ok()) return {};
    std::ofstream out(root_ / file, std::ios::binary);
    out.write(reinterpret_cast<const char*>(obj->material.data()), static_cast<std::streamsize>(obj->material.size()));
    fs::permissions(root_ / file, fs::perms::owner_read | fs::perms::owner_write);
    return (root_ / file).string();
  }
  int cryptsetup_test_open(const std::string& key_file) {
    return run({"cryptsetup", "open", "--test-passphrase", "--key-file", key_file, (root_ / "img").string()}).exit_code;
  }

  struct Node {
    Context ctx;
    Dispatcher d;
  };
  static inline kt::TestPki pki_;
  static inline kt::PyKmipServer* srv_ = nullptr;
  static inline std::string setup_error_;
  fs::path root_;
  std::unique_ptr<Db> db_;
  std::unique_ptr<journal::Journal> journal_;
  std::unique_ptr<Node> node_;
};

TEST_F(KmipVolume, CreateOnTheActiveProviderReopenAfterRestartRekeyErase) {
  int64_t p = provider_on_pykmip();
  auto unknown = call("EnableEncryptionAtRest", {{"keyProviderID", "77"}});
  ASSERT_FALSE(unknown.ok());
  EXPECT_EQ(unknown.error().name(), "xNoOnlineKeyProviderWithThatID");
  json en = ok("EnableEncryptionAtRest", {{"keyProviderID", std::to_string(p)}});
  EXPECT_EQ(en["enabled"], true);

  const std::string img = (root_ / "img").string();
  json c = ok("volume.create", {{"device", img}, {"name", "vol1"}, {"key_id", "key1"}});
  EXPECT_EQ(c["provider"]["kind"], "kmip");
  EXPECT_EQ(c["provider"]["id"], std::to_string(p));
  EXPECT_TRUE(fs::is_empty(root_ / "m1"));  // nothing on the key media
  const std::string k1 = key_file_from_server("node-e2e-key1-g1", "k1");
  ASSERT_FALSE(k1.empty());
  EXPECT_EQ(cryptsetup_test_open(k1), 0) << "the key on PyKMIP opens the volume with stock cryptsetup";

  auto dis = call("DisableEncryptionAtRest");
  ASSERT_FALSE(dis.ok());
  EXPECT_EQ(dis.error().name(), "xKeyProviderHasVolumes");

  // "Restart": a new dispatcher, nothing in memory; the key is found by name.
  start();
  json s = ok("volume.show", {{"volume", "vol1"}});
  EXPECT_EQ(s["provider"]["kind"], "kmip");
  json rk = ok("volume.rekey", {{"volume", "vol1"}});
  EXPECT_EQ(rk["generation"], 2);
  const std::string k2 = key_file_from_server("node-e2e-key1-g2", "k2");
  ASSERT_FALSE(k2.empty());
  EXPECT_EQ(cryptsetup_test_open(k2), 0);
  EXPECT_NE(cryptsetup_test_open(k1), 0) << "the old keyslot is gone";
  EXPECT_TRUE(key_file_from_server("node-e2e-key1-g1", "k1b").empty()) << "the old key is destroyed on the server";

  // Crypto erase destroys the key on the server.
  ok("volume.erase", {{"volume", "vol1"}, {"confirm", true}});
  EXPECT_TRUE(key_file_from_server("node-e2e-key1-g2", "k2b").empty());
  EXPECT_NE(cryptsetup_test_open(k2), 0);
  json d = ok("DisableEncryptionAtRest");
  EXPECT_EQ(d["enabled"], false);
}

TEST_F(KmipVolume, ExplicitProviderPerVolume) {
  int64_t p = provider_on_pykmip();
  const std::string img = (root_ / "img").string();
  auto bad = call("volume.create", {{"device", img}, {"name", "vol1"}, {"key_provider", "99"}});
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.error().name(), "xNoOnlineKeyProviderWithThatID");
  // Not active: explicit choice.
  json c =
      ok("volume.create", {{"device", img}, {"name", "vol1"}, {"key_id", "key2"}, {"key_provider", std::to_string(p)}});
  EXPECT_EQ(c["provider"]["kind"], "kmip");
  const std::string k = key_file_from_server("node-e2e-key2-g1", "k");
  ASSERT_FALSE(k.empty());
  EXPECT_EQ(cryptsetup_test_open(k), 0);
  // The provider keeps a volume's key: it cannot be deleted.
  auto del = call("DeleteKeyProviderKmip", {{"keyProviderID", p}});
  ASSERT_FALSE(del.ok());
  EXPECT_EQ(del.error().name(), "xKeyProviderActive");
  ok("volume.erase", {{"volume", "vol1"}, {"confirm", true}});
  // And 'local' keeps the key on the key media.
  json l = ok("volume.create", {{"device", img}, {"name", "vol2"}, {"key_provider", "local"}});
  EXPECT_EQ(l["provider"]["kind"], "keymedia");
  EXPECT_FALSE(fs::is_empty(root_ / "m1"));
}

}  // namespace
}  // namespace storcrypt::controller
