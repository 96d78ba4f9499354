// Host test: the KMIP key provider (keys::KmipKeyProvider, issue 17) against
// a real PyKMIP 0.10 server over mutual TLS. One server for the whole binary
// (PyKMIP starts slowly); every test uses its own key ids. A second, plain
// kmip::Client checks what the provider left on the server.
#include <gtest/gtest.h>

#include <atomic>
#include <memory>
#include <string>

#include "pykmip_fixture.h"
#include "storcrypt/keys/kmip_provider.h"
#include "storcrypt/testing/environment.h"

namespace storcrypt::keys {
namespace {

using kmip::testing::client_config;
using kmip::testing::PyKmipServer;
using kmip::testing::TestPki;

std::string unique_id(const std::string& base) {
  static std::atomic<int> n{0};
  return base + "-" + std::to_string(getpid()) + "-" + std::to_string(n++);
}

class KmipProviderPyKmip : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    std::string why;
    if (!kmip::testing::pykmip_available(why)) {
      skip_ = why;
      return;
    }
    std::string err;
    pki_ = kmip::testing::make_pki(err);
    if (!err.empty()) {
      setup_error_ = err;
      return;
    }
    server_ = new PyKmipServer();
    if (!server_->start(pki_, err)) setup_error_ = err;
  }
  static void TearDownTestSuite() {
    delete server_;
    server_ = nullptr;
  }
  void SetUp() override {
    STORCRYPT_REQUIRE(skip_.empty(), skip_);
    ASSERT_TRUE(setup_error_.empty()) << setup_error_;
  }

  /// A key server: a kmip::Client for these ports on 127.0.0.1, in order.
  static KmipServerHandle server(const std::string& label, const std::vector<std::uint16_t>& ports) {
    auto c = kmip::Client::create(client_config(pki_, ports));
    EXPECT_TRUE(c.ok()) << c.error().to_string();
    return {label, make_kmip_client_ops(std::move(c).value())};
  }
  static std::unique_ptr<kmip::Client> judge() { return kmip::Client::create(client_config(pki_, {port()})).value(); }
  static std::uint16_t port() { return server_->port(); }
  static SecretBytes key() { return SecretBytes::random(32).value(); }

  static inline TestPki pki_;
  static inline PyKmipServer* server_ = nullptr;
  static inline std::string skip_, setup_error_;
};

const kmip::Attribute* find_attr(const std::vector<kmip::Attribute>& attrs, const std::string& name) {
  for (const auto& a : attrs)
    if (a.name == name) return &a;
  return nullptr;
}

TEST_F(KmipProviderPyKmip, RegistersFetchesWithAFailoverHostAndDestroys) {
  // One key server whose first host name is a dead port: the client fails
  // over to the second (the PyKMIP server), no operation fails.
  KmipKeyProvider p({"1", "node-a", {}}, {server("key server 1 ('kms')", {kmip::testing::free_port(), port()})});
  const std::string id = unique_id("vol");
  auto ak = key();
  auto st = p.store({id, 1}, ak);
  ASSERT_TRUE(st.ok()) << st.error().to_string();
  EXPECT_EQ(st->copies_written, 1u);
  EXPECT_TRUE(st->warnings.empty());

  // What is on the server: an active AES-256 key with the value, name and group.
  auto j = judge();
  kmip::LocateFilter f;
  f.name = p.object_name({id, 1});
  auto uids = j->locate(f);
  ASSERT_TRUE(uids.ok()) << uids.error().to_string();
  ASSERT_EQ(uids->size(), 1u);
  EXPECT_EQ(p.cached_uid(0, {id, 1}), (*uids)[0]);
  auto obj = j->get((*uids)[0]);
  ASSERT_TRUE(obj.ok()) << obj.error().to_string();
  EXPECT_EQ(obj->object_type, kmip::ObjectType::kSymmetricKey);
  EXPECT_TRUE(obj->material.equals(ak));
  auto attrs =
      j->get_attributes((*uids)[0], {"State", "Cryptographic Algorithm", "Cryptographic Length", "Object Group"});
  ASSERT_TRUE(attrs.ok()) << attrs.error().to_string();
  ASSERT_NE(find_attr(*attrs, "State"), nullptr);
  EXPECT_EQ(find_attr(*attrs, "State")->value.num, static_cast<std::int64_t>(kmip::State::kActive));
  ASSERT_NE(find_attr(*attrs, "Cryptographic Length"), nullptr);
  EXPECT_EQ(find_attr(*attrs, "Cryptographic Length")->value.num, 256);

  // Idempotent after a timeout: the same store again adds nothing.
  ASSERT_TRUE(p.store({id, 1}, ak).ok());
  EXPECT_EQ(j->locate(f)->size(), 1u);
  // A different value under the name: a conflict, never overwritten.
  auto other = p.store({id, 1}, key());
  ASSERT_FALSE(other.ok());
  EXPECT_EQ(other.error().name(), "xKeyServerFailedKeyAlreadyExists");

  auto got = p.fetch({id, 1});
  ASSERT_TRUE(got.ok()) << got.error().to_string();
  EXPECT_TRUE(got->ak.equals(ak));
  // A new process (nothing cached) finds it by name.
  KmipKeyProvider fresh({"1", "node-a", {}}, {server("key server 1 ('kms')", {kmip::testing::free_port(), port()})});
  auto again = fresh.fetch({id, 1});
  ASSERT_TRUE(again.ok()) << again.error().to_string();
  EXPECT_TRUE(again->ak.equals(ak));
  EXPECT_TRUE(fresh.holds(id).value());

  // Rekey, retire the old generation, then crypto erase: Revoke + Destroy.
  auto ak2 = key();
  ASSERT_TRUE(p.rekey({id, 1}, {id, 2}, ak2).ok());
  auto r = p.retire({id, 1});
  ASSERT_TRUE(r.ok()) << r.error().to_string();
  EXPECT_EQ(r->copies_removed, 1u);
  auto gone = j->get((*uids)[0]);
  ASSERT_FALSE(gone.ok());
  EXPECT_EQ(kmip::server_result_reason(gone.error()), kmip::ResultReason::kItemNotFound) << gone.error().to_string();
  EXPECT_TRUE(p.fetch({id, 2}).ok());
  auto d = p.destroy_all(id);
  ASSERT_TRUE(d.ok()) << d.error().to_string();
  EXPECT_EQ(d->copies_removed, 1u);
  auto none = p.fetch({id, 2});
  ASSERT_FALSE(none.ok());
  EXPECT_EQ(none.error().code(), ErrorCode::kNotFound) << none.error().to_string();
  EXPECT_FALSE(p.holds(id).value());
  kmip::LocateFilter g;
  g.object_group = p.object_group(id);
  EXPECT_TRUE(j->locate(g)->empty());
}

TEST_F(KmipProviderPyKmip, ProviderFailsOverToTheNextKeyServerAndNamesADeadOne) {
  const std::string id = unique_id("vol");
  auto ak = key();
  KmipKeyProvider live({"2", "node-a", {}}, {server("key server 2 ('live')", {port()})});
  ASSERT_TRUE(live.store({id, 1}, ak).ok());
  // Key servers in priority order: the first is down; the fetch succeeds from
  // the second, with a warning that names the first.
  KmipKeyProvider p({"2", "node-a", {}}, {server("key server 1 ('dead')", {kmip::testing::free_port()}),
                                          server("key server 2 ('live')", {port()})});
  auto got = p.fetch({id, 1});
  ASSERT_TRUE(got.ok()) << got.error().to_string();
  EXPECT_TRUE(got->ak.equals(ak));
  ASSERT_EQ(got->warnings.size(), 1u);
  EXPECT_NE(got->warnings[0].find("key server 1 ('dead')"), std::string::npos) << got->warnings[0];
  // Storing needs every key server; destroying too: errors name the dead one
  // and never claim success (the live server's copy is destroyed).
  auto st = p.store({unique_id("vol"), 1}, key());
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.error().message().find("key server 1 ('dead')"), std::string::npos) << st.error().to_string();
  auto d = p.destroy_all(id);
  ASSERT_FALSE(d.ok());
  EXPECT_NE(d.error().message().find("key server 1 ('dead')"), std::string::npos) << d.error().to_string();
  EXPECT_EQ(d.error().to_string().find(ak.reveal_hex()), std::string::npos);
  EXPECT_FALSE(live.holds(id).value());
}

}  // namespace
}  // namespace storcrypt::keys
