// The volume/keymedia API methods through the controller's dispatcher, with
// the real libcryptsetup on a LUKS2 image file (no device-mapper needed:
// create, show, list, rekey, erase; open is covered by the VM tests).
#include "storcrypt/controller/nouns.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "storcrypt/controller/dispatcher.h"
#include "storcrypt/controller/journal_store.h"
#include "storcrypt/testing/environment.h"

namespace storcrypt::controller {
namespace {
namespace fs = std::filesystem;
using nlohmann::json;

class AtRestNouns : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = fs::temp_directory_path() / ("storcrypt-nouns-" + std::to_string(::getpid()) + "-" +
                                         ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(root_);
    for (auto* d : {"etc", "m1", "m2", "bk"}) fs::create_directories(root_ / d);
    std::ofstream(root_ / "img").close();
    fs::resize_file(root_ / "img", 20u << 20);
    db_ = Db::open(":memory:").value();
    journal_ = open_db_journal(*db_).value();
    ctx_.db = db_.get();
    ctx_.journal = journal_.get();
    ctx_.config_path = (root_ / "etc" / "storcrypt.conf").string();
  }
  void TearDown() override {
    ::unsetenv("STORCRYPT_AT_REST_CONFIG");
    fs::remove_all(root_);
  }
  void configure(bool always_on) {
    json c = {{"system_id", "node-a"},
              {"media_dirs", {(root_ / "m1").string(), (root_ / "m2").string()}},
              {"desired_copies", 2},
              {"encryption_always_on", always_on},
              {"header_backup_dir", (root_ / "bk").string()}};
    std::ofstream(root_ / "etc" / "at-rest.json") << c.dump();
  }
  void start() {
    ASSERT_TRUE(register_volume_methods(d_, ctx_).ok());
    ASSERT_TRUE(register_keymedia_methods(d_, ctx_).ok());
  }
  fs::path root_;
  std::unique_ptr<Db> db_;
  std::unique_ptr<journal::Journal> journal_;
  std::unique_ptr<EventLog> events_;  ///< outlives ctx_ (the unlock worker raises into it)
  Context ctx_;
  Dispatcher d_;
};

TEST_F(AtRestNouns, NotConfiguredIsAClearError) {
  start();
  auto r = d_.call("volume.list", json::object());
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().name(), "xAtRestNotConfigured");
  EXPECT_NE(r.error().fix().find("at-rest.json"), std::string::npos);
}

TEST_F(AtRestNouns, BadConfigNamesTheField) {
  std::ofstream(root_ / "etc" / "at-rest.json") << R"({"media_dirs": "/media/x"})";
  start();
  auto r = d_.call("keymedia.list", json::object());
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message().find("media_dirs"), std::string::npos) << r.error().message();
}

TEST_F(AtRestNouns, CreateShowRekeyEraseThroughTheApi) {
  STORCRYPT_REQUIRE(::storcrypt::testing::is_root(), "needs root for libcryptsetup header locking");
  configure(true);
  start();
  std::string img = (root_ / "img").string();
  auto plain = d_.call("volume.create", {{"device", img}, {"name", "vol1"}, {"encrypted", false}});
  ASSERT_FALSE(plain.ok());
  EXPECT_EQ(plain.error().name(), "xEncryptionRequired");

  auto c = d_.call("volume.create", {{"device", img}, {"name", "vol1"}, {"key_id", "key1"}});
  ASSERT_TRUE(c.ok()) << c.error().to_string();
  EXPECT_EQ((*c)["cipher"], "aes-xts-plain64");
  EXPECT_EQ((*c)["key_bits"], 512);
  EXPECT_EQ((*c)["generation"], 1);

  auto s = d_.call("volume.show", {{"volume", "vol1"}});
  ASSERT_TRUE(s.ok()) << s.error().to_string();
  EXPECT_EQ((*s)["device"], img);
  EXPECT_EQ((*s)["state"], "closed");

  auto ks = d_.call("keymedia.status", json::object());
  ASSERT_TRUE(ks.ok());
  ASSERT_EQ((*ks)["keys"].size(), 1u);
  EXPECT_EQ((*ks)["keys"][0]["valid_copies"], 2);

  auto rk = d_.call("volume.rekey", {{"volume", "vol1"}});
  ASSERT_TRUE(rk.ok()) << rk.error().to_string();
  EXPECT_EQ((*rk)["generation"], 2);
  EXPECT_EQ((*rk)["keyslots"], json::array({1}));

  auto l = d_.call("volume.list", json::object());
  ASSERT_TRUE(l.ok());
  ASSERT_EQ((*l)["volumes"].size(), 1u);

  EXPECT_FALSE(d_.call("volume.erase", {{"volume", "vol1"}, {"confirm", false}}).ok());
  auto e = d_.call("volume.erase", {{"volume", "vol1"}, {"confirm", true}});
  ASSERT_TRUE(e.ok()) << e.error().to_string();
  EXPECT_TRUE(d_.call("volume.list", json::object())->at("volumes").empty());
  EXPECT_TRUE(fs::is_empty(root_ / "m1"));
  EXPECT_TRUE(fs::is_empty(root_ / "bk"));
  auto gone = d_.call("volume.show", {{"volume", img}});
  ASSERT_FALSE(gone.ok());
  EXPECT_EQ(gone.error().name(), "xVolumeNotFound");
}

TEST_F(AtRestNouns, BadUnlockRetryNamesTheField) {
  for (const char* v : {"0", "-5", "\"60\"", "86401"}) {
    std::ofstream(root_ / "etc" / "at-rest.json")
        << R"({"media_dirs": ["/media/x"], "unlock_retry_seconds": )" << v << "}";
    Context ctx;
    ctx.db = db_.get();
    ctx.journal = journal_.get();
    ctx.config_path = ctx_.config_path;
    Dispatcher d;
    ASSERT_TRUE(register_volume_methods(d, ctx).ok());
    auto r = d.call("volume.list", json::object());
    ASSERT_FALSE(r.ok()) << v;
    EXPECT_NE(r.error().message().find("unlock_retry_seconds"), std::string::npos) << r.error().message();
  }
}

// Start-up unlock with the key media gone: the volume stays closed and one
// error event (5010) names it and the reason; the start hook's first pass is
// synchronous, so the event is there when the hooks return.
TEST_F(AtRestNouns, StartHookRaisesLockedVolumeEventWhenMediaAreMissing) {
  STORCRYPT_REQUIRE(::storcrypt::testing::is_root(), "needs root for libcryptsetup header locking");
  events_ = EventLog::create(*db_).value();
  ctx_.events = events_.get();
  configure(true);
  start();
  std::string img = (root_ / "img").string();
  auto c = d_.call("volume.create", {{"device", img}, {"name", "vol1"}, {"key_id", "key1"}});
  ASSERT_TRUE(c.ok()) << c.error().to_string();
  ASSERT_EQ(ctx_.start_hooks.size(), 1u);
  fs::rename(root_ / "m1", root_ / "m1.away");
  fs::rename(root_ / "m2", root_ / "m2.away");
  for (auto& h : ctx_.start_hooks) h();
  auto evs = events_->list({false, std::nullopt, 5010, 10});
  ASSERT_TRUE(evs.ok());
  ASSERT_EQ(evs->size(), 1u);
  const Event& e = evs->front();
  EXPECT_EQ(e.severity, Severity::kError);
  EXPECT_FALSE(e.fixed);
  EXPECT_EQ(e.sense["volume"], "vol1");
  EXPECT_NE(e.message.find("vol1"), std::string::npos) << e.message;
  EXPECT_NE(e.message.find("no valid copy"), std::string::npos) << e.message;
  EXPECT_NE(e.message.find("0 of 2 key media present"), std::string::npos) << e.message;
  EXPECT_FALSE(e.user_actions.empty());
  auto s = d_.call("volume.show", {{"volume", "vol1"}});
  ASSERT_TRUE(s.ok());
  EXPECT_EQ((*s)["state"], "closed");
}

}  // namespace
}  // namespace storcrypt::controller
