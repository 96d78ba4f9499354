// SedService (drive/ear nouns) against the in-memory Opal model
// (sed::FakeSedIoctl), real key media in a temporary directory and the
// controller's SQLite state and journal. Crashes are injected with the
// service's crash hook or by leaving a journalled operation half done; a
// "restart" is a new service on the same database, journal and media.
#include <gtest/gtest.h>

#include <filesystem>
#include <memory>

#include "storcrypt/controller/db.h"
#include "storcrypt/controller/journal_store.h"
#include "storcrypt/controller/sed.h"
#include "storcrypt/keys/key_media.h"
#include "storcrypt/testing/fake_opal.h"
#include "temp_dir.h"

namespace storcrypt::controller::test {
namespace {

struct SedNode {
  explicit SedNode(TempDir& t, sed::FakeSedIoctl& io) : dir(t), fake(io) {
    std::filesystem::create_directories(t.file("m1"));
    std::filesystem::create_directories(t.file("m2"));
    keys::KeyMediaConfig mc;
    mc.media_dirs = {t.file("m1"), t.file("m2")};
    mc.system_id = "node-a";
    mc.desired_copies = 2;
    provider = std::make_unique<keys::KeyMediaProvider>(mc);
    restart();
  }
  void restart(std::function<bool(std::string_view)> crash = {}) {
    svc.reset();
    journal.reset();
    db.reset();
    auto d = Db::open(dir.file("state.db"));
    ASSERT_TRUE(d.ok());
    db = std::move(d).value();
    auto j = open_db_journal(*db);
    ASSERT_TRUE(j.ok());
    journal = std::move(j).value();
    SedConfig cfg;
    cfg.list_devices = [this] {
      std::vector<std::string> out;
      for (const auto& [dev, _] : fake.drives) out.push_back(dev);
      return out;
    };
    if (crash) journal->set_stop_hook([crash](std::string_view, std::string_view p) { return crash(p); });
    auto s = SedService::create(*db, *journal, fake, *provider, cfg);
    ASSERT_TRUE(s.ok()) << s.error().to_string();
    svc = std::move(s).value();
    auto rec = journal->recover();
    ASSERT_TRUE(rec.ok());
    outcomes = std::move(rec).value();
  }
  std::string ak(std::uint64_t g) {
    auto k = provider->fetch({kSedAkKeyId, g});
    if (!k.ok()) return "";
    return std::string(reinterpret_cast<const char*>(k->ak.data()), k->ak.size());
  }
  std::string sid() {
    auto k = provider->fetch({kSedSidKeyId, 1});
    return k.ok() ? std::string(reinterpret_cast<const char*>(k->ak.data()), k->ak.size()) : "";
  }
  TempDir& dir;
  sed::FakeSedIoctl& fake;
  std::unique_ptr<keys::KeyMediaProvider> provider;
  std::unique_ptr<Db> db;
  std::unique_ptr<journal::Journal> journal;
  std::unique_ptr<SedService> svc;
  std::vector<journal::RecoveryOutcome> outcomes;
};

class SedServiceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    fake.drives["/dev/nvme0n1"] = {};
    fake.drives["/dev/sdb"].opal = false;
    node = std::make_unique<SedNode>(tmp, fake);
  }
  sed::FakeDriveModel& drive() { return fake.drives["/dev/nvme0n1"]; }
  TempDir tmp;
  sed::FakeSedIoctl fake;
  std::unique_ptr<SedNode> node;
};

TEST_F(SedServiceTest, DiscoveryTellsCapableFromNotAndWhy) {
  auto drives = node->svc->refresh();
  ASSERT_TRUE(drives.ok());
  ASSERT_EQ(drives->size(), 2u);
  const auto& nvme = (*drives)[0];
  const auto& sdb = (*drives)[1];
  EXPECT_EQ(nvme.device, "/dev/nvme0n1");
  EXPECT_TRUE(nvme.capable);
  EXPECT_EQ(nvme.state(), "available");
  EXPECT_FALSE(sdb.capable);
  EXPECT_NE(sdb.reason.find("not a TCG Opal drive"), std::string::npos) << sdb.reason;
  EXPECT_TRUE(fake.calls.size() == 2u) << "discovery only reads the status";
}

TEST_F(SedServiceTest, EnableOwnsLocksAndSetsTheAkOnEveryCapableDrive) {
  auto rep = node->svc->enable("");
  ASSERT_TRUE(rep.ok()) << rep.error().to_string();
  const std::string ak = node->ak(1), sid = node->sid();
  ASSERT_EQ(ak.size(), 32u);
  ASSERT_EQ(sid.size(), 32u);
  EXPECT_NE(ak, sid);
  EXPECT_EQ(drive().sid, sid);
  EXPECT_TRUE(drive().lsp_active);
  EXPECT_EQ(drive().admin1, ak);
  EXPECT_TRUE(drive().lock_enabled);
  EXPECT_FALSE(drive().locked);
  ASSERT_FALSE(drive().saved.empty());
  EXPECT_EQ(drive().saved.back(), ak) << "the unlock is saved for resume";
  auto st = node->svc->status();
  ASSERT_TRUE(st.ok());
  EXPECT_TRUE(st->enabled);
  EXPECT_EQ(st->ak_generation, 1u);
  auto r = node->svc->show("/dev/nvme0n1");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->state(), "unlocked");
  EXPECT_EQ(r->ak_generation, 1u);
  EXPECT_TRUE(fake.count("/dev/sdb", 222) == 0) << "no take-ownership on a non-Opal drive";
}

TEST_F(SedServiceTest, EnableRefusesAnUnknownKeyProvider) {
  auto rep = node->svc->enable("kmip-1");
  ASSERT_FALSE(rep.ok());
  EXPECT_EQ(rep.error().name(), "xNoOnlineKeyProviderWithThatID");
  EXPECT_TRUE(drive().sid.empty());
}

TEST_F(SedServiceTest, ADriveOwnedBySomeoneElseIsRefusedAndUntouched) {
  drive().sid = "their-sid";
  auto before = drive();
  auto rep = node->svc->enable("");
  ASSERT_FALSE(rep.ok());
  EXPECT_EQ(rep.error().name(), "xSedDriveForeign");
  EXPECT_NE(rep.error().message().find("/dev/nvme0n1"), std::string::npos);
  EXPECT_EQ(drive().sid, before.sid);
  EXPECT_FALSE(drive().lsp_active);
  EXPECT_EQ(drive().media_key, before.media_key);
  EXPECT_EQ(node->svc->show("/dev/nvme0n1")->state(), "foreign");
  EXPECT_FALSE(node->svc->status()->enabled);
  // PSID revert makes it usable; enable then enrolls it.
  EXPECT_FALSE(node->svc->revert("/dev/nvme0n1", std::string("wrong")).ok());
  ASSERT_TRUE(node->svc->revert("/dev/nvme0n1", std::string("PSID")).ok());
  ASSERT_TRUE(node->svc->enable("").ok());
  EXPECT_EQ(drive().admin1, node->ak(1));
}

TEST_F(SedServiceTest, ADriveWithLockingActiveAndNoRecordIsForeign) {
  drive().sid = "x";
  drive().lsp_active = true;
  drive().admin1 = "x";
  auto drives = node->svc->refresh();
  ASSERT_TRUE(drives.ok());
  EXPECT_TRUE((*drives)[0].foreign);
  EXPECT_EQ(fake.count("/dev/nvme0n1", 222), 0u) << "refused without trying";
}

TEST_F(SedServiceTest, RestartUnlocksWithTheAkFromKeyMedia) {
  ASSERT_TRUE(node->svc->enable("").ok());
  drive().power_cycle();
  node->restart();
  auto lockable = node->svc->lockable();
  ASSERT_TRUE(lockable.ok());
  ASSERT_EQ(lockable->size(), 1u);
  EXPECT_TRUE((*lockable)[0].locked);
  const auto saves = fake.count("/dev/nvme0n1", 220);
  ASSERT_TRUE(node->svc->unlock("/dev/nvme0n1").ok());
  EXPECT_FALSE(drive().locked);
  EXPECT_EQ(fake.count("/dev/nvme0n1", 220), saves + 1) << "SAVE after the unlock";
}

TEST_F(SedServiceTest, WrongAkLeavesTheDriveLockedAndSaysWhy) {
  ASSERT_TRUE(node->svc->enable("").ok());
  drive().admin1 = "changed-elsewhere";
  drive().power_cycle();
  auto r = node->svc->unlock("/dev/nvme0n1");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message().find("stays locked"), std::string::npos);
  EXPECT_NE(r.error().message().find("NOT_AUTHORIZED"), std::string::npos);
  EXPECT_TRUE(drive().locked);
  EXPECT_EQ(node->svc->show("/dev/nvme0n1")->last_error.empty(), false);
}

TEST_F(SedServiceTest, MissingKeyMediaIsAClearError) {
  ASSERT_TRUE(node->svc->enable("").ok());
  std::filesystem::rename(tmp.file("m1"), tmp.file("m1.away"));
  std::filesystem::rename(tmp.file("m2"), tmp.file("m2.away"));
  drive().power_cycle();
  auto r = node->svc->unlock("/dev/nvme0n1");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().name(), "xKeyProviderUnavailable");
  EXPECT_TRUE(drive().locked);
}

TEST_F(SedServiceTest, RekeyMovesEveryDriveToTheNewKeyAndRetiresTheOld) {
  ASSERT_TRUE(node->svc->enable("").ok());
  const std::string old_ak = node->ak(1);
  auto rep = node->svc->rekey();
  ASSERT_TRUE(rep.ok()) << rep.error().to_string();
  const std::string new_ak = node->ak(2);
  ASSERT_EQ(new_ak.size(), 32u);
  EXPECT_NE(new_ak, old_ak);
  EXPECT_EQ(drive().admin1, new_ak);
  EXPECT_EQ(drive().saved.back(), new_ak) << "the saved resume unlock follows the key";
  EXPECT_EQ(node->ak(1), "") << "the old generation is retired";
  EXPECT_EQ(node->svc->status()->ak_generation, 2u);
  EXPECT_EQ(node->svc->show("/dev/nvme0n1")->ak_generation, 2u);
  EXPECT_EQ(drive().sid, node->sid()) << "the SID is not rotated (no SET_SID_PW on 6.1)";
}

TEST_F(SedServiceTest, RekeyCrashAfterTheDriveChangedRollsForward) {
  ASSERT_TRUE(node->svc->enable("").ok());
  node->restart([](std::string_view p) { return p == "drive-changed"; });
  auto rep = node->svc->rekey();
  ASSERT_FALSE(rep.ok());
  // The drive has the new key; the journal does not know yet; both keys are on the media.
  const std::string new_ak = node->ak(2);
  EXPECT_EQ(drive().admin1, new_ak);
  EXPECT_FALSE(node->ak(1).empty());
  drive().power_cycle();
  node->restart();
  ASSERT_EQ(node->outcomes.size(), 1u);
  EXPECT_EQ(node->outcomes[0].outcome, "done") << node->outcomes[0].detail;
  EXPECT_EQ(node->svc->status()->ak_generation, 2u);
  EXPECT_EQ(node->ak(1), "");
  ASSERT_TRUE(node->svc->unlock("/dev/nvme0n1").ok());
  EXPECT_FALSE(drive().locked);
}

TEST_F(SedServiceTest, RekeyCrashBeforeAnyDriveChangedRollsForwardFromTheOldKey) {
  ASSERT_TRUE(node->svc->enable("").ok());
  const std::string old_ak = node->ak(1);
  // Leave the operation as a crash right after "new-key-stored" would.
  auto id = node->journal->begin("sed.rekey", {{"old", 1}, {"new", 2}, {"drives", {"/dev/nvme0n1"}}});
  ASSERT_TRUE(id.ok());
  auto nk = SecretBytes::random(32);
  ASSERT_TRUE(node->provider->rekey({kSedAkKeyId, 1}, {kSedAkKeyId, 2}, *nk).ok());
  ASSERT_TRUE(node->journal->step(*id, "new-key-stored").ok());
  EXPECT_EQ(drive().admin1, old_ak);
  node->restart();
  ASSERT_EQ(node->outcomes.size(), 1u);
  EXPECT_EQ(node->outcomes[0].outcome, "done") << node->outcomes[0].detail;
  EXPECT_EQ(drive().admin1, node->ak(2));
  EXPECT_EQ(node->ak(1), "");
}

TEST_F(SedServiceTest, RekeyCrashBeforeTheNewKeyWasStoredRollsBack) {
  ASSERT_TRUE(node->svc->enable("").ok());
  const std::string old_ak = node->ak(1);
  auto id = node->journal->begin("sed.rekey", {{"old", 1}, {"new", 2}, {"drives", {"/dev/nvme0n1"}}});
  ASSERT_TRUE(id.ok());
  auto nk = SecretBytes::random(32);
  ASSERT_TRUE(node->provider->rekey({kSedAkKeyId, 1}, {kSedAkKeyId, 2}, *nk).ok());  // written, step not recorded
  node->restart();
  ASSERT_EQ(node->outcomes.size(), 1u);
  EXPECT_EQ(node->outcomes[0].outcome, "rolled-back");
  EXPECT_EQ(node->ak(2), "") << "partial new key removed";
  EXPECT_EQ(node->ak(1), old_ak);
  EXPECT_EQ(drive().admin1, old_ak);
  EXPECT_EQ(node->svc->status()->ak_generation, 1u);
}

TEST_F(SedServiceTest, RekeyThatADriveRefusesRollsBackEverything) {
  ASSERT_TRUE(node->svc->enable("").ok());
  const std::string old_ak = node->ak(1);
  fake.fail = [](const std::string&, unsigned nr) -> long { return nr == 224 ? 0x3f : 0; };
  auto rep = node->svc->rekey();
  ASSERT_FALSE(rep.ok());
  EXPECT_NE(rep.error().message().find("rolled back"), std::string::npos);
  fake.fail = nullptr;
  EXPECT_EQ(drive().admin1, old_ak);
  EXPECT_EQ(node->ak(2), "");
  EXPECT_EQ(node->ak(1), old_ak);
}

TEST_F(SedServiceTest, DisableTurnsLockingOffKeepsOwnershipAndData) {
  ASSERT_TRUE(node->svc->enable("").ok());
  const auto key = drive().media_key;
  ASSERT_TRUE(node->svc->disable().ok());
  EXPECT_FALSE(drive().lock_enabled);
  EXPECT_FALSE(drive().sid.empty());
  EXPECT_TRUE(drive().lsp_active);
  EXPECT_EQ(drive().media_key, key);
  drive().power_cycle();
  EXPECT_FALSE(drive().locked);
  EXPECT_EQ(node->svc->show("/dev/nvme0n1")->state(), "locking-off");
  EXPECT_FALSE(node->svc->status()->enabled);
  // and back on
  ASSERT_TRUE(node->svc->enable("").ok());
  EXPECT_TRUE(drive().lock_enabled);
  EXPECT_EQ(node->svc->show("/dev/nvme0n1")->state(), "unlocked");
}

TEST_F(SedServiceTest, SecureEraseNeedsAnOwnedDriveNotInUse) {
  EXPECT_EQ(node->svc->erase({"/dev/nvme0n1"}).error().name(), "xDriveNotOwned");
  ASSERT_TRUE(node->svc->enable("").ok());
  drive().in_use = true;
  const auto key = drive().media_key;
  EXPECT_EQ(node->svc->erase({"/dev/nvme0n1"}).error().name(), "xSedDriveInUse");
  EXPECT_EQ(drive().media_key, key);
  drive().in_use = false;
  EXPECT_EQ(node->svc->erase({"/dev/sdb"}).error().name(), "xSedNotOpal");
  EXPECT_EQ(node->svc->erase({"/dev/nope"}).error().name(), "xDriveNotFound");
  ASSERT_TRUE(node->svc->erase({"/dev/nvme0n1"}).ok());
  EXPECT_NE(drive().media_key, key);
  EXPECT_TRUE(drive().lock_enabled) << "still enrolled and usable";
}

TEST_F(SedServiceTest, LockForgetsTheSavedUnlock) {
  ASSERT_TRUE(node->svc->enable("").ok());
  ASSERT_TRUE(node->svc->lock("/dev/nvme0n1").ok());
  EXPECT_TRUE(drive().locked);
  EXPECT_EQ(drive().saved.back(), "") << "an empty key replaces the saved one";
  EXPECT_EQ(node->svc->show("/dev/nvme0n1")->state(), "locked");
}

TEST_F(SedServiceTest, DrivesFoundLaterAreEnrolledWhileEarIsOn) {
  ASSERT_TRUE(node->svc->enable("").ok());
  fake.drives["/dev/nvme1n1"] = {};
  SedReport rep;
  ASSERT_TRUE(node->svc->refresh(&rep).ok());
  ASSERT_EQ(rep.drives.size(), 1u);
  EXPECT_EQ(rep.drives[0].device, "/dev/nvme1n1");
  EXPECT_EQ(fake.drives["/dev/nvme1n1"].admin1, node->ak(1));
}

TEST_F(SedServiceTest, EnableCrashWhileStoringKeysRollsBackWithNoDriveTouched) {
  auto id = node->journal->begin("sed.enable", {{"new_keys", true}, {"drives", {"/dev/nvme0n1"}}});
  ASSERT_TRUE(id.ok());
  auto k = SecretBytes::random(32);
  ASSERT_TRUE(node->provider->store({kSedSidKeyId, 1}, *k).ok());
  node->restart();
  ASSERT_EQ(node->outcomes.size(), 1u);
  EXPECT_EQ(node->outcomes[0].outcome, "rolled-back");
  EXPECT_EQ(node->sid(), "");
  EXPECT_TRUE(drive().sid.empty());
}

TEST_F(SedServiceTest, EnableCrashMidEnrollmentFinishesOnRestart) {
  // Keys stored and the drive taken over (SID set) but nothing else recorded.
  ASSERT_TRUE(node->svc->enable("").ok());
  const std::string ak = node->ak(1);
  auto id = node->journal->begin("sed.enable", {{"new_keys", false}, {"drives", {"/dev/nvme1n1"}}});
  ASSERT_TRUE(id.ok());
  ASSERT_TRUE(node->journal->step(*id, "keys-stored").ok());
  fake.drives["/dev/nvme1n1"].sid = node->sid();  // took ownership, then "crashed"
  node->restart();
  EXPECT_EQ(node->outcomes.at(0).outcome, "done") << node->outcomes.at(0).detail;
  EXPECT_EQ(fake.drives["/dev/nvme1n1"].admin1, ak);
  EXPECT_TRUE(fake.drives["/dev/nvme1n1"].lock_enabled);
}

}  // namespace
}  // namespace storcrypt::controller::test
