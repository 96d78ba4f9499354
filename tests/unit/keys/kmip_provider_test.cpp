// The KMIP key provider's rules against fake key servers (the PyKMIP host
// test, tests/host/kmip/kmip_provider_host_test.cpp, is the real judge).
#include "storcrypt/keys/kmip_provider.h"

#include <gtest/gtest.h>

#include <map>

namespace storcrypt::keys {
namespace {

Error unavailable() { return Error(ErrorCode::kUnavailable, "connection refused", "", "xKmipUnavailable"); }
Error not_found() {
  return Error(ErrorCode::kNotFound, "KMIP Get failed: no such object [result reason 0x00000001]", "",
               "xKmipServerError");
}

/// A KMIP server in memory: objects with name, group, state and value.
class FakeServer final : public KmipKeyServerOps {
 public:
  struct Object {
    std::string name, group;
    kmip::State state = kmip::State::kPreActive;
    SecretBytes value;
  };
  bool up = true;
  int registers = 0, gets = 0, locates = 0;
  std::map<std::string, Object> objects;
  int next = 1;

  Result<std::vector<std::string>> locate(const kmip::LocateFilter& f) override {
    if (!up) return unavailable();
    ++locates;
    std::vector<std::string> out;
    for (const auto& [uid, o] : objects)
      if ((!f.name || *f.name == o.name) && (!f.object_group || *f.object_group == o.group)) out.push_back(uid);
    return out;
  }
  Result<std::string> register_key(const kmip::RegisterParams& p, const SecretBytes& m) override {
    if (!up) return unavailable();
    ++registers;
    std::string uid = std::to_string(next++);
    objects[uid] = Object{p.name, p.object_group, kmip::State::kPreActive, m.clone()};
    return uid;
  }
  Status activate(const std::string& uid) override {
    if (!up) return unavailable();
    if (!objects.count(uid)) return not_found();
    objects[uid].state = kmip::State::kActive;
    return ok_status();
  }
  Result<kmip::ManagedObject> get(const std::string& uid) override {
    if (!up) return unavailable();
    ++gets;
    if (!objects.count(uid)) return not_found();
    kmip::ManagedObject mo;
    mo.unique_identifier = uid;
    mo.material = objects[uid].value.clone();
    return mo;
  }
  Result<kmip::State> state(const std::string& uid) override {
    if (!up) return unavailable();
    if (!objects.count(uid)) return not_found();
    return objects[uid].state;
  }
  Status revoke(const std::string& uid, const kmip::RevokeParams&) override {
    if (!up) return unavailable();
    if (!objects.count(uid)) return not_found();
    objects[uid].state = kmip::State::kDeactivated;
    return ok_status();
  }
  Status destroy(const std::string& uid) override {
    if (!up) return unavailable();
    if (!objects.count(uid)) return not_found();
    // Like PyKMIP: an active key is not destroyed.
    if (objects[uid].state == kmip::State::kActive)
      return Error(ErrorCode::kPermission, "active [result reason 0x00000016]", "", "xKmipServerError");
    objects.erase(uid);
    return ok_status();
  }
};

class KmipProviderTest : public ::testing::Test {
 protected:
  KmipKeyProvider provider(std::size_t n) {
    std::vector<KmipServerHandle> h;
    for (std::size_t i = 0; i < n; ++i) {
      servers_.push_back(std::make_shared<FakeServer>());
      h.push_back({"key server " + std::to_string(i + 1), servers_.back()});
    }
    return KmipKeyProvider({"7", "node-a", {}}, std::move(h));
  }
  static SecretBytes key() { return SecretBytes::random(32).value(); }
  std::vector<std::shared_ptr<FakeServer>> servers_;
};

TEST_F(KmipProviderTest, StoreRegistersOnEveryServerActivatedWithDerivedNameAndGroup) {
  auto p = provider(2);
  EXPECT_EQ(p.kind(), "kmip");
  EXPECT_EQ(p.id(), "7");
  auto ak = key();
  auto rep = p.store({"vol-1", 1}, ak);
  ASSERT_TRUE(rep.ok()) << rep.error().to_string();
  EXPECT_EQ(rep->copies_written, 2u);
  for (auto& s : servers_) {
    ASSERT_EQ(s->objects.size(), 1u);
    const auto& o = s->objects.begin()->second;
    EXPECT_EQ(o.name, "node-a-vol-1-g1");
    EXPECT_EQ(o.group, "node-a-vol-1");
    EXPECT_EQ(o.state, kmip::State::kActive);
    EXPECT_TRUE(o.value.equals(ak));
  }
  EXPECT_TRUE(p.cached_uid(0, {"vol-1", 1}).has_value());
}

TEST_F(KmipProviderTest, StoreIsIdempotentAndNeverOverwritesADifferentKey) {
  auto p = provider(1);
  auto ak = key();
  ASSERT_TRUE(p.store({"vol-1", 1}, ak).ok());
  // A retry (e.g. after a timeout) finds the same value: no second object.
  auto again = p.store({"vol-1", 1}, ak);
  ASSERT_TRUE(again.ok()) << again.error().to_string();
  EXPECT_EQ(servers_[0]->registers, 1);
  EXPECT_EQ(servers_[0]->objects.size(), 1u);
  // Another value under the same name: a conflict, the server's key kept.
  auto other = key();
  auto clash = p.store({"vol-1", 1}, other);
  ASSERT_FALSE(clash.ok());
  EXPECT_EQ(clash.error().name(), "xKeyServerFailedKeyAlreadyExists");
  EXPECT_TRUE(servers_[0]->objects.begin()->second.value.equals(ak));
  // No key material in the error.
  EXPECT_EQ(clash.error().to_string().find(other.reveal_hex()), std::string::npos);
  EXPECT_EQ(clash.error().to_string().find(ak.reveal_hex()), std::string::npos);
}

TEST_F(KmipProviderTest, StoreFailsNamingTheUnreachableServer) {
  auto p = provider(2);
  servers_[1]->up = false;
  auto rep = p.store({"vol-1", 1}, key());
  ASSERT_FALSE(rep.ok());
  EXPECT_NE(rep.error().message().find("key server 2"), std::string::npos) << rep.error().message();
}

TEST_F(KmipProviderTest, FetchFailsOverInPriorityOrderWithAWarning) {
  auto p = provider(2);
  auto ak = key();
  ASSERT_TRUE(p.store({"vol-1", 1}, ak).ok());
  servers_[0]->up = false;
  auto f = p.fetch({"vol-1", 1});
  ASSERT_TRUE(f.ok()) << f.error().to_string();
  EXPECT_TRUE(f->ak.equals(ak));
  ASSERT_EQ(f->warnings.size(), 1u);
  EXPECT_NE(f->warnings[0].find("key server 1"), std::string::npos);
  EXPECT_NE(f->warnings[0].find("served by key server 2"), std::string::npos);
  servers_[1]->up = false;
  auto none = p.fetch({"vol-1", 1});
  ASSERT_FALSE(none.ok());
  EXPECT_EQ(none.error().code(), ErrorCode::kUnavailable);
  EXPECT_EQ(none.error().to_string().find(ak.reveal_hex()), std::string::npos);
}

TEST_F(KmipProviderTest, FetchUsesTheRecordedUidAndLocatesByNameAfterARestart) {
  auto p = provider(1);
  auto ak = key();
  ASSERT_TRUE(p.store({"vol-1", 1}, ak).ok());
  int locates = servers_[0]->locates;
  ASSERT_TRUE(p.fetch({"vol-1", 1}).ok());
  EXPECT_EQ(servers_[0]->locates, locates);  // Get by the uid store() recorded
  // A new process (no cache) finds it by name.
  KmipKeyProvider fresh({"7", "node-a", {}}, {{"key server 1", servers_[0]}});
  auto f = fresh.fetch({"vol-1", 1});
  ASSERT_TRUE(f.ok()) << f.error().to_string();
  EXPECT_TRUE(f->ak.equals(ak));
  EXPECT_EQ(servers_[0]->locates, locates + 1);
  auto missing = fresh.fetch({"vol-1", 2});
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.error().code(), ErrorCode::kNotFound);
}

TEST_F(KmipProviderTest, RetireAndDestroyAllRevokeAndDestroy) {
  auto p = provider(2);
  ASSERT_TRUE(p.store({"vol-1", 1}, key()).ok());
  ASSERT_TRUE(p.rekey({"vol-1", 1}, {"vol-1", 2}, key()).ok());
  ASSERT_TRUE(p.store({"vol-2", 1}, key()).ok());
  EXPECT_TRUE(p.holds("vol-1").value());
  auto r = p.retire({"vol-1", 1});
  ASSERT_TRUE(r.ok()) << r.error().to_string();
  EXPECT_EQ(r->copies_removed, 2u);
  EXPECT_FALSE(p.fetch({"vol-1", 1}).ok());
  EXPECT_TRUE(p.fetch({"vol-1", 2}).ok());
  auto d = p.destroy_all("vol-1");
  ASSERT_TRUE(d.ok()) << d.error().to_string();
  EXPECT_EQ(d->copies_removed, 2u);
  EXPECT_FALSE(p.holds("vol-1").value());
  EXPECT_TRUE(p.holds("vol-2").value());  // other volumes untouched
  EXPECT_EQ(servers_[0]->objects.size(), 1u);
}

TEST_F(KmipProviderTest, DestroyWithAServerUnreachableIsAnErrorNamingIt) {
  auto p = provider(2);
  ASSERT_TRUE(p.store({"vol-1", 1}, key()).ok());
  servers_[0]->up = false;
  auto d = p.destroy_all("vol-1");
  ASSERT_FALSE(d.ok());
  EXPECT_NE(d.error().message().find("key server 1"), std::string::npos) << d.error().message();
  EXPECT_TRUE(servers_[1]->objects.empty());  // the reachable one is done
  EXPECT_FALSE(p.holds("vol-1").ok());
  servers_[0]->up = true;
  ASSERT_TRUE(p.destroy_all("vol-1").ok());  // repeatable
  EXPECT_TRUE(servers_[0]->objects.empty());
}

TEST_F(KmipProviderTest, RekeyNeedsTheCurrentKey) {
  auto p = provider(1);
  auto r = p.rekey({"vol-1", 1}, {"vol-1", 2}, key());
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(servers_[0]->objects.empty());
}

TEST_F(KmipProviderTest, NoServersIsAConfigurationError) {
  auto p = provider(0);
  auto r = p.store({"vol-1", 1}, key());
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().name(), "xKeyProviderConfigurationError");
  EXPECT_FALSE(p.fetch({"vol-1", 1}).ok());
}

}  // namespace
}  // namespace storcrypt::keys
