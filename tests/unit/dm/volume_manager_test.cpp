#include "storcrypt/dm/volume_manager.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <map>

#include "storcrypt/testing/fake_device_probe.h"
#include "storcrypt/testing/fake_crypt_backend.h"
#include "storcrypt/keys/key_media.h"

namespace storcrypt::dm {
namespace {
namespace fs = std::filesystem;

const std::string kDev = "/dev/fake0";

// A fake backend, real key media in a temp dir, a file journal and a registry:
// all of them outlive a VolumeManager, so a "crash" is a manager stopped by
// the journal's stop hook and a fresh manager resumes.
class VolumeManagerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = fs::temp_directory_path() / ("storcrypt-vm-" + std::to_string(::getpid()) + "-" +
                                         ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(root_);
    for (int i = 0; i < 2; ++i) {
      media_.push_back(root_ / ("m" + std::to_string(i)));
      fs::create_directories(media_.back());
    }
    fs::create_directories(root_ / "backup");
    keys::KeyMediaConfig c;
    c.media_dirs = media_;
    c.system_id = "node-a";
    c.desired_copies = 2;
    c.after_medium_write = [this](const fs::path&) { return crash_on_ && *crash_on_ == "provider-partial"; };
    provider_ = std::make_unique<keys::KeyMediaProvider>(keys::KeyMediaProvider::create(c).value());
    journal_ = std::make_unique<journal::Journal>(std::make_unique<journal::FileStore>(root_ / "journal"));
    journal_->set_stop_hook([this](std::string_view, std::string_view p) { return crash_on_ && *crash_on_ == p; });
    backend_.add_device(kDev);
    cfg_.header_backup_dir = root_ / "backup";
    cfg_.activation.no_read_workqueue = true;
  }
  void TearDown() override { fs::remove_all(root_); }

  VolumeManager manager() {
    VolumeRegistry reg;
    reg.add = [this](const VolumeInfo& vi) {
      registry_[vi.uuid] = vi.name;
      return ok_status();
    };
    reg.remove = [this](const std::string& uuid) {
      registry_.erase(uuid);
      return ok_status();
    };
    return VolumeManager(backend_, probe_, {provider_.get()}, *journal_, cfg_, reg);
  }
  VolumeInfo create_volume() {
    auto m = manager();
    auto vi = m.create({kDev, "vol1", "key1", true});
    EXPECT_TRUE(vi.ok()) << vi.error().to_string();
    return vi.ok() ? *vi : VolumeInfo{};
  }
  // Opens with a fresh manager, then closes; returns the open status.
  Status open_close(OpReport* rep = nullptr) {
    auto m = manager();
    auto st = m.open(kDev, "", rep);
    if (st.ok()) {
      EXPECT_TRUE(m.close("vol1").ok());
    }
    return st;
  }
  // Operations of `kind` the journal holds (running or settled).
  std::size_t ops(const std::string& kind) {
    std::size_t n = 0;
    auto all = journal_->list(false, 1000);
    EXPECT_TRUE(all.ok());
    if (all.ok())
      for (const auto& e : *all) n += e.kind == kind;
    return n;
  }
  std::vector<int> keyslots() const {
    std::vector<int> out;
    for (auto& [s, _] : backend_.devices().at(kDev).slots) out.push_back(s);
    return out;
  }
  std::size_t key_copies(std::uint64_t gen) const {
    std::size_t n = 0;
    for (auto& m : media_) n += fs::exists(m / keys::key_file_name({"key1", gen}));
    return n;
  }

  fs::path root_;
  std::vector<fs::path> media_;
  FakeCryptBackend backend_;
  FakeDeviceProbe probe_;
  std::unique_ptr<keys::KeyMediaProvider> provider_;
  std::unique_ptr<journal::Journal> journal_;
  std::map<std::string, std::string> registry_;  ///< uuid -> name
  VolumeManagerConfig cfg_;
  std::optional<std::string> crash_on_;
};

TEST_F(VolumeManagerTest, CreateOpenShowClose) {
  auto vi = create_volume();
  EXPECT_EQ(vi.cipher, "aes-xts-plain64");
  EXPECT_EQ(vi.key_bits, 512u);
  EXPECT_EQ(vi.sector_size, 4096u);
  EXPECT_EQ(vi.key_id, "key1");
  EXPECT_EQ(vi.provider_kind, "keymedia");
  EXPECT_EQ(vi.generation, 1u);
  EXPECT_EQ(vi.keyslot, 0);
  EXPECT_EQ(vi.state, "closed");
  EXPECT_EQ(key_copies(1), 2u);
  EXPECT_TRUE(fs::exists(root_ / "backup" / ("storcrypt-" + vi.uuid + ".luks2hdr")));
  auto& tokens = backend_.devices().at(kDev).header.tokens;
  ASSERT_EQ(tokens.size(), 1u);
  EXPECT_NE(tokens.begin()->second.find(R"("type":"storcrypt")"), std::string::npos);

  auto m = manager();
  ASSERT_TRUE(m.open(kDev).ok());
  ASSERT_TRUE(backend_.mappings().count("vol1"));
  EXPECT_TRUE(backend_.mappings()["vol1"].flags.no_read_workqueue);
  EXPECT_FALSE(backend_.mappings()["vol1"].flags.no_write_workqueue);
  EXPECT_EQ(m.show(kDev)->state, "open");
  auto again = m.open(kDev);
  ASSERT_FALSE(again.ok());
  EXPECT_EQ(again.error().name(), "xVolumeOpen");
  ASSERT_TRUE(m.close("vol1").ok());
  EXPECT_EQ(m.show(kDev)->state, "closed");
  EXPECT_EQ(m.close("vol1").error().code(), ErrorCode::kNotFound);
  auto l = m.list({kDev, "/dev/unknown"});
  ASSERT_TRUE(l.ok());
  EXPECT_EQ(l->size(), 1u);
}

TEST_F(VolumeManagerTest, CreateRefusals) {
  create_volume();
  auto m = manager();
  auto dup = m.create({kDev, "vol2", "key2", true});
  ASSERT_FALSE(dup.ok());
  EXPECT_EQ(dup.error().name(), "xVolumeExists");
  backend_.add_device("/dev/fake1");
  EXPECT_EQ(m.create({"/dev/fake1", "bad name", "", true}).error().code(), ErrorCode::kInvalidInput);
  EXPECT_FALSE(m.create({"/dev/fake1", "vol2", "", false}).ok());
  cfg_.policy.encryption_always_on = true;
  auto m2 = manager();
  EXPECT_EQ(m2.create({"/dev/fake1", "vol2", "", false}).error().name(), "xEncryptionRequired");
  auto ok = m2.create({"/dev/fake1", "vol2", "", true});
  ASSERT_TRUE(ok.ok()) << ok.error().to_string();
  EXPECT_EQ(ok->key_id.rfind("vol-", 0), 0u);
}

// A key id that already names a key is refused before anything is written:
// a create that then failed (or was rolled back after a crash) would destroy
// every generation of that id, i.e. the other volume's keys.
TEST_F(VolumeManagerTest, CreateRefusesAKeyIdInUseAndLeavesThatKeyAlone) {
  create_volume();  // vol1 on kDev with key1 generation 1
  backend_.add_device("/dev/fake1");
  backend_.fail_next("format", Error(ErrorCode::kKernel, "boom"));
  auto m = manager();
  auto r = m.create({"/dev/fake1", "vol2", "key1", true});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().name(), "xKeyIdInUse") << r.error().to_string();
  EXPECT_EQ(backend_.calls("format"), 1) << "only vol1's format ran";
  EXPECT_EQ(key_copies(1), 2u) << "vol1's key copies are untouched";
  EXPECT_TRUE(open_close().ok());
}

TEST_F(VolumeManagerTest, FormatFailureLeavesNoKeyBehind) {
  backend_.fail_next("format", Error(ErrorCode::kKernel, "boom"));
  auto m = manager();
  EXPECT_FALSE(m.create({kDev, "vol1", "key1", true}).ok());
  EXPECT_EQ(key_copies(1), 0u);
}

TEST_F(VolumeManagerTest, OpenWithoutMediaFailsClearly) {
  create_volume();
  for (auto& m : media_) fs::remove_all(m);
  auto st = open_close();
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.error().code(), ErrorCode::kNotFound);
  EXPECT_NE(st.error().message().find("not present"), std::string::npos) << st.error().message();
  EXPECT_NE(st.error().message().find("key 'key1' generation 1"), std::string::npos);
  EXPECT_FALSE(st.error().fix().empty());
}

TEST_F(VolumeManagerTest, OpenUsesGoodCopyAndReportsCorruptOne) {
  create_volume();
  {
    std::fstream f(media_[0] / keys::key_file_name({"key1", 1}), std::ios::in | std::ios::out);
    f.seekp(70);
    f.put('#');
  }
  OpReport rep;
  ASSERT_TRUE(open_close(&rep).ok());
  ASSERT_EQ(rep.warnings.size(), 1u);
  EXPECT_NE(rep.warnings[0].find("corrupt"), std::string::npos);
  EXPECT_NE(rep.warnings[0].find(media_[0].string()), std::string::npos);
}

TEST_F(VolumeManagerTest, WrongKeyOnMediaIsRefusedByTheKeyslot) {
  create_volume();
  // A valid key file of ours, but not the key of this volume's keyslot.
  ASSERT_TRUE(provider_->store({"key1", 1}, SecretBytes::random(32).value()).ok());
  auto st = open_close();
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.error().code(), ErrorCode::kPermission);
}

TEST_F(VolumeManagerTest, UnknownProviderIsNamed) {
  create_volume();
  keys::KeyMediaConfig c;
  c.media_dirs = media_;
  c.system_id = "node-a";
  c.provider_id = "other";
  auto other = keys::KeyMediaProvider::create(c).value();
  VolumeManager m(backend_, probe_, {&other}, *journal_, cfg_);
  auto st = m.open(kDev);
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.error().name(), "xKeyProviderMissing");
  EXPECT_NE(st.error().message().find("keymedia/local"), std::string::npos);
}

// CreateRequest names the provider (volume create --key-provider); the first
// provider is only the default, and set_providers() changes the list.
TEST_F(VolumeManagerTest, CreateUsesTheRequestedProvider) {
  fs::create_directories(root_ / "other");
  keys::KeyMediaConfig c;
  c.media_dirs = {root_ / "other"};
  c.system_id = "node-a";
  c.provider_id = "other";
  c.desired_copies = 1;
  auto other = keys::KeyMediaProvider::create(c).value();
  auto m = manager();
  m.set_providers({provider_.get(), &other});
  CreateRequest req{kDev, "vol1", "key1", true};
  req.provider_kind = "keymedia";
  req.provider_id = "nope";
  auto bad = m.create(req);
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.error().name(), "xKeyProviderMissing");
  EXPECT_EQ(ops(kCreateKind), 0u);  // refused before anything was written
  req.provider_id = "other";
  auto vi = m.create(req);
  ASSERT_TRUE(vi.ok()) << vi.error().to_string();
  EXPECT_EQ(vi->provider_id, "other");
  EXPECT_EQ(key_copies(1), 0u);  // not on the default provider's media
  EXPECT_TRUE(fs::exists(root_ / "other" / keys::key_file_name({"key1", 1})));
  EXPECT_TRUE(m.open(kDev).ok());
}

TEST_F(VolumeManagerTest, InterruptedRekeyOpensWithPreviousKeyAndSaysSo) {
  create_volume();
  crash_on_ = "token-updated";
  EXPECT_FALSE(manager().rekey(kDev).ok());
  crash_on_.reset();
  OpReport rep;
  ASSERT_TRUE(open_close(&rep).ok());
  ASSERT_FALSE(rep.warnings.empty());
  EXPECT_NE(rep.warnings.back().find("previous key"), std::string::npos);
  EXPECT_TRUE(manager().show(kDev)->rekey_in_progress);
}

TEST_F(VolumeManagerTest, RekeyWhileOpen) {
  create_volume();
  auto m = manager();
  ASSERT_TRUE(m.open(kDev).ok());
  OpReport rep;
  ASSERT_TRUE(m.rekey(kDev, &rep).ok());
  EXPECT_EQ(keyslots(), std::vector<int>{1});
  EXPECT_EQ(key_copies(1), 0u);
  EXPECT_EQ(key_copies(2), 2u);
  auto vi = m.show(kDev);
  EXPECT_EQ(vi->generation, 2u);
  EXPECT_EQ(vi->keyslot, 1);
  EXPECT_FALSE(vi->rekey_in_progress);
  EXPECT_EQ(vi->state, "open");
  ASSERT_TRUE(m.close("vol1").ok());
  ASSERT_TRUE(open_close().ok());
  // second rekey reuses the freed slot 0: never in place (the fake refuses that)
  ASSERT_TRUE(m.rekey(kDev).ok());
  EXPECT_EQ(keyslots(), std::vector<int>{0});
  EXPECT_EQ(key_copies(3), 2u);
  ASSERT_TRUE(open_close().ok());
  EXPECT_TRUE(journal_->pending()->empty()) << "finished operations are settled";
}

TEST_F(VolumeManagerTest, RekeyNeedsTheCurrentKey) {
  create_volume();
  for (auto& m : media_) fs::remove(m / keys::key_file_name({"key1", 1}));
  auto m = manager();
  auto st = m.rekey(kDev);
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.error().code(), ErrorCode::kNotFound);
  EXPECT_EQ(keyslots(), std::vector<int>{0});
  EXPECT_TRUE(ops(kRekeyKind) + ops(kEraseKind) == 0) << "nothing journalled when nothing changed";
}

class RekeyCrash : public VolumeManagerTest, public ::testing::WithParamInterface<std::string> {};

TEST_P(RekeyCrash, VolumeOpensAtEveryStepAndResumeConverges) {
  create_volume();
  {
    auto m = manager();
    ASSERT_TRUE(m.open(kDev).ok());  // in use during the rekey
  }
  crash_on_ = GetParam();
  {
    auto m = manager();
    auto st = m.rekey(kDev);
    ASSERT_FALSE(st.ok());
    EXPECT_NE(st.error().message().find("injected crash"), std::string::npos) << st.error().message();
  }
  crash_on_.reset();
  ASSERT_TRUE(backend_.deactivate("vol1").ok());
  // After the crash, before resume: the volume opens (with old or new key).
  OpReport rep;
  ASSERT_TRUE(open_close(&rep).ok()) << "crash at " << GetParam();
  // A new rekey is refused until resume.
  auto m = manager();
  if (GetParam() != "done") {
    auto refused = m.rekey(kDev);
    ASSERT_FALSE(refused.ok());
    EXPECT_EQ(refused.error().name(), "xOperationPending");
  }
  auto res = m.resume();
  ASSERT_TRUE(res.ok()) << res.error().to_string();
  ASSERT_TRUE(journal_->pending()->empty());
  auto vi = m.show(kDev);
  ASSERT_TRUE(vi.ok());
  EXPECT_FALSE(vi->rekey_in_progress);
  // Exactly one keyslot and one key generation remain, and they match.
  ASSERT_EQ(keyslots().size(), 1u) << "crash at " << GetParam();
  EXPECT_EQ(keyslots()[0], vi->keyslot);
  EXPECT_EQ(key_copies(vi->generation), 2u);
  EXPECT_EQ(key_copies(vi->generation == 1 ? 2 : 1), 0u);
  bool forward = GetParam() == "provider-partial" || GetParam() == "provider-commit" ||
                 GetParam() == "provider-committed" || GetParam() == "destroy-old" || GetParam() == "old-destroyed" ||
                 GetParam() == "token-final" || GetParam() == "retire-old" || GetParam() == "done";
  EXPECT_EQ(vi->generation, forward ? 2u : 1u) << "crash at " << GetParam();
  if (!res->items.empty()) {
    EXPECT_EQ(res->items[0].outcome, forward ? "completed" : "rolled-back");
  }
  ASSERT_TRUE(open_close().ok());
  // And the volume can be rekeyed again.
  ASSERT_TRUE(m.rekey(kDev).ok());
  ASSERT_TRUE(open_close().ok());
}

INSTANTIATE_TEST_SUITE_P(EveryStep, RekeyCrash, ::testing::ValuesIn(rekey_crash_points()), [](const auto& info) {
  std::string s = info.param;
  std::replace(s.begin(), s.end(), '-', '_');
  return s;
});

TEST_F(VolumeManagerTest, ResumeWithoutMediaKeepsTheJournal) {
  create_volume();
  crash_on_ = "provider-committed";
  EXPECT_FALSE(manager().rekey(kDev).ok());
  crash_on_.reset();
  std::vector<fs::path> aside;
  for (auto& m : media_) fs::rename(m, m.string() + ".away");
  auto res = manager().resume();
  ASSERT_FALSE(res.ok());
  EXPECT_EQ(keyslots().size(), 2u) << "old slot kept while the new key is unreachable";
  for (auto& m : media_) fs::rename(m.string() + ".away", m);
  ASSERT_TRUE(manager().resume().ok());
  EXPECT_EQ(keyslots(), std::vector<int>{1});
}

TEST_F(VolumeManagerTest, EraseLeavesNothingThatUnlocks) {
  auto vi = create_volume();
  auto m = manager();
  ASSERT_TRUE(m.open(kDev).ok());
  auto busy = m.erase(kDev);
  ASSERT_FALSE(busy.ok());
  EXPECT_EQ(busy.error().name(), "xVolumeOpen");
  ASSERT_TRUE(m.close("vol1").ok());
  ASSERT_TRUE(m.erase(kDev).ok());
  EXPECT_FALSE(*backend_.is_luks(kDev));
  EXPECT_EQ(key_copies(1), 0u);
  EXPECT_FALSE(fs::exists(root_ / "backup" / ("storcrypt-" + vi.uuid + ".luks2hdr")));
  EXPECT_FALSE(open_close().ok());
  EXPECT_TRUE(journal_->pending()->empty());
}

class EraseCrash : public VolumeManagerTest, public ::testing::WithParamInterface<std::string> {};

TEST_P(EraseCrash, ResumeFinishesTheErase) {
  auto vi = create_volume();
  crash_on_ = GetParam();
  EXPECT_FALSE(manager().erase(kDev).ok());
  crash_on_.reset();
  auto res = manager().resume();
  ASSERT_TRUE(res.ok()) << res.error().to_string();
  ASSERT_EQ(res->items.size(), 1u);
  EXPECT_EQ(res->items[0].outcome, "completed");
  EXPECT_FALSE(*backend_.is_luks(kDev));
  EXPECT_EQ(key_copies(1), 0u);
  EXPECT_FALSE(fs::exists(root_ / "backup" / ("storcrypt-" + vi.uuid + ".luks2hdr")));
  EXPECT_FALSE(open_close().ok());
}

INSTANTIATE_TEST_SUITE_P(EveryStep, EraseCrash, ::testing::ValuesIn(erase_crash_points()), [](const auto& info) {
  std::string s = info.param;
  std::replace(s.begin(), s.end(), '-', '_');
  return s;
});

// ---- guards against the wrong device (issue 13) ------------------------------

DeviceSignature sig(std::string type, std::string usage, std::string version = {}) {
  return {std::move(type), std::move(usage), std::move(version), 0};
}

TEST(DeviceSignatureTest, DescribeSaysWhatWasFound) {
  EXPECT_EQ(describe(sig("ext4", "filesystem", "1.0")), "ext4 filesystem");
  EXPECT_EQ(describe(sig("LVM2_member", "raid", "LVM2 001")), "LVM2_member");
  EXPECT_EQ(describe(sig("crypto_LUKS", "crypto", "1")), "crypto_LUKS version 1");
  EXPECT_EQ(describe(sig("dos", "partition table")), "dos partition table");
  EXPECT_EQ(describe(std::vector<DeviceSignature>{sig("gpt", "partition table"), sig("linux_raid_member", "raid")}),
            "gpt partition table, linux_raid_member");
}

TEST_F(VolumeManagerTest, CreateRefusesEverySignatureUnlessForced) {
  const std::vector<std::pair<DeviceSignature, std::string>> cases = {
      {sig("ext4", "filesystem", "1.0"), "ext4 filesystem"},
      {sig("LVM2_member", "raid", "LVM2 001"), "LVM2_member"},
      {sig("linux_raid_member", "raid", "1.2"), "linux_raid_member"},
      {sig("crypto_LUKS", "crypto", "1"), "crypto_LUKS version 1"},
      {sig("crypto_LUKS", "crypto", "2"), "crypto_LUKS version 2"},
      {sig("gpt", "partition table"), "gpt partition table"}};
  int n = 0;
  for (const auto& [s, text] : cases) {
    std::string dev = "/dev/sig" + std::to_string(n++);
    backend_.add_device(dev);
    probe_.sigs[dev] = {s};
    auto m = manager();
    auto r = m.create({dev, "vol1", "key1", true});
    ASSERT_FALSE(r.ok()) << text;
    EXPECT_EQ(r.error().name(), "xDeviceNotBlank") << text;
    EXPECT_NE(r.error().message().find(dev + " is not blank: it holds " + text), std::string::npos)
        << r.error().message();
    EXPECT_NE(r.error().fix().find("--force"), std::string::npos);
    EXPECT_EQ(backend_.calls("format"), 0) << text;
    EXPECT_EQ(key_copies(1), 0u) << "a key was stored for a refused create: " << text;
  }
  // --force overwrites (and says what it overwrote).
  OpReport rep;
  CreateRequest req{"/dev/sig0", "vol1", "key1", true};
  req.force = true;
  auto r = manager().create(req, &rep);
  ASSERT_TRUE(r.ok()) << r.error().to_string();
  ASSERT_EQ(rep.warnings.size(), 1u);
  EXPECT_EQ(rep.warnings[0], "overwriting ext4 filesystem on /dev/sig0 (--force)");
}

TEST_F(VolumeManagerTest, CreateNeverOnADeviceInUseEvenForced) {
  probe_.users_of[kDev] = {"mounted at /mnt/x", "held by dm-3 (/dev/mapper/other)"};
  for (bool force : {false, true}) {
    CreateRequest req{kDev, "vol1", "key1", true};
    req.force = force;
    auto r = manager().create(req);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().name(), "xDeviceInUse");
    EXPECT_NE(r.error().message().find("mounted at /mnt/x; held by dm-3 (/dev/mapper/other)"), std::string::npos)
        << r.error().message();
  }
  probe_.users_of[kDev] = {"opened exclusively by another process (open O_EXCL: busy)"};
  EXPECT_EQ(manager().create({kDev, "vol1", "key1", true}).error().name(), "xDeviceInUse");
  EXPECT_EQ(backend_.calls("format"), 0);
  EXPECT_EQ(key_copies(1), 0u);
}

TEST_F(VolumeManagerTest, ReadErrorsAreErrorsNotBlankDevices) {
  probe_.read_errors.insert_or_assign(kDev, errno_error(EIO, "reading the first 64 KiB of " + kDev));
  auto r = manager().create({kDev, "vol1", "key1", true});
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message().find("Input/output error"), std::string::npos) << r.error().message();
  probe_.read_errors.clear();
  backend_.fail_next("is_luks", errno_error(EIO, "reading the LUKS2 header area of " + kDev));
  r = manager().create({kDev, "vol1", "key1", true});
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message().find("Input/output error"), std::string::npos) << r.error().message();
  EXPECT_EQ(backend_.calls("format"), 0);
  EXPECT_EQ(key_copies(1), 0u);
}

TEST_F(VolumeManagerTest, CreateNeverOverwritesAStorcryptVolumeEvenForced) {
  auto vi = create_volume();
  CreateRequest req{kDev, "vol2", "key2", true};
  req.force = true;
  auto r = manager().create(req);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().name(), "xVolumeExists");
  EXPECT_NE(r.error().message().find("storcrypt volume vol1 (uuid " + vi.uuid + ")"), std::string::npos);
  EXPECT_EQ(backend_.calls("format"), 1);
  EXPECT_EQ(key_copies(1), 2u);
}

TEST_F(VolumeManagerTest, EraseRefusesForeignAndNonLuksDevices) {
  // A LUKS2 volume of another tool: no storcrypt token.
  ASSERT_TRUE(backend_.format(kDev, FormatParams{}, 0, SecretBytes::random(32).value()).ok());
  auto r = manager().erase(kDev);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().name(), "xNotStorcryptVolume");
  EXPECT_NE(r.error().message().find("has no storcrypt token"), std::string::npos) << r.error().message();
  EXPECT_EQ(keyslots(), std::vector<int>{0});
  EXPECT_EQ(backend_.calls("wipe_area"), 0);
  EXPECT_TRUE(journal_->list(false)->empty());
  // Not LUKS2 at all: says what is there.
  backend_.add_device("/dev/luks1");
  probe_.sigs["/dev/luks1"] = {sig("crypto_LUKS", "crypto", "1")};
  r = manager().erase("/dev/luks1");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().name(), "xNotStorcryptVolume");
  EXPECT_NE(r.error().message().find("/dev/luks1 is not a storcrypt volume: it holds crypto_LUKS version 1"),
            std::string::npos)
      << r.error().message();
  EXPECT_EQ(backend_.calls("wipe_area"), 0);
  // Blank: "no LUKS2 header" as before.
  backend_.add_device("/dev/blank");
  EXPECT_EQ(manager().erase("/dev/blank").error().name(), "xVolumeNotFound");
}

TEST_F(VolumeManagerTest, EraseRefusesAVolumeInUse) {
  create_volume();
  probe_.users_of[kDev] = {"held by dm-7 (/dev/mapper/elsewhere)"};
  auto r = manager().erase(kDev);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().name(), "xDeviceInUse");
  EXPECT_NE(r.error().message().find("held by dm-7 (/dev/mapper/elsewhere)"), std::string::npos);
  EXPECT_TRUE(*backend_.is_luks(kDev));
  EXPECT_EQ(key_copies(1), 2u);
  EXPECT_TRUE(ops(kRekeyKind) + ops(kEraseKind) == 0);
  probe_.users_of.clear();
  EXPECT_TRUE(manager().erase(kDev).ok());
}

TEST_F(VolumeManagerTest, AdoptNeedsAStorcryptTokenAndItsKey) {
  auto vi = create_volume();
  auto a = manager().adopt(kDev);
  ASSERT_TRUE(a.ok()) << a.error().to_string();
  EXPECT_EQ(a->uuid, vi.uuid);
  EXPECT_EQ(a->name, "vol1");
  EXPECT_EQ(a->key_id, "key1");
  // Key media gone: not adopted, and the error says which key.
  for (auto& m : media_) fs::rename(m, m.string() + ".away");
  a = manager().adopt(kDev);
  ASSERT_FALSE(a.ok());
  EXPECT_NE(a.error().message().find("not adopting " + kDev + ": key key1 generation 1"), std::string::npos)
      << a.error().message();
  for (auto& m : media_) fs::rename(m.string() + ".away", m);
  // A foreign LUKS2 volume is not adopted.
  backend_.add_device("/dev/foreign");
  ASSERT_TRUE(backend_.format("/dev/foreign", FormatParams{}, 0, SecretBytes::random(32).value()).ok());
  a = manager().adopt("/dev/foreign");
  ASSERT_FALSE(a.ok());
  EXPECT_EQ(a.error().name(), "xNotStorcryptVolume");
  EXPECT_EQ(backend_.calls("set_token"), 1) << "adopt writes nothing";
}

// ---- journalled create (issue 13) ----------------------------------------------

class CreateCrash : public VolumeManagerTest, public ::testing::WithParamInterface<std::string> {};

// Interrupted at any point, create ends after resume either as a complete,
// registered volume that opens with its key, or with nothing left: no header
// it wrote, no key copy, no backup, no registration.
TEST_P(CreateCrash, ResumeCompletesOrLeavesNothing) {
  crash_on_ = GetParam();
  auto r = manager().create({kDev, "vol1", "key1", true});
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message().find("injected crash"), std::string::npos) << r.error().message();
  crash_on_.reset();
  auto res = manager().resume();
  ASSERT_TRUE(res.ok()) << res.error().to_string();
  EXPECT_TRUE(journal_->pending()->empty());
  // "set-token": the token is written but not recorded: rolled back too.
  const std::vector<std::string> forward = {"token-set", "register", "registered", "done"};
  bool fwd = std::find(forward.begin(), forward.end(), GetParam()) != forward.end();
  if (GetParam() != "done") {
    ASSERT_EQ(res->items.size(), 1u);
    EXPECT_EQ(res->items[0].outcome, fwd ? "completed" : "rolled-back");
  }
  if (fwd) {
    auto vi = manager().show(kDev);
    ASSERT_TRUE(vi.ok()) << vi.error().to_string();
    EXPECT_EQ(registry_.count(vi->uuid), 1u);
    EXPECT_EQ(key_copies(1), 2u);
    EXPECT_TRUE(fs::exists(root_ / "backup" / ("storcrypt-" + vi->uuid + ".luks2hdr")));
    ASSERT_TRUE(open_close().ok());
  } else {
    EXPECT_FALSE(*backend_.is_luks(kDev)) << "the header this create wrote is wiped";
    EXPECT_EQ(key_copies(1), 0u);
    EXPECT_TRUE(registry_.empty());
    EXPECT_TRUE(fs::is_empty(root_ / "backup"));
    // And the device can be used again.
    create_volume();
    ASSERT_TRUE(open_close().ok());
  }
}

INSTANTIATE_TEST_SUITE_P(EveryStep, CreateCrash, ::testing::ValuesIn(create_crash_points()), [](const auto& info) {
  std::string s = info.param;
  std::replace(s.begin(), s.end(), '-', '_');
  return s;
});

TEST_F(VolumeManagerTest, CreateRollbackLeavesAForeignHeaderItDidNotWrite) {
  // --force over another tool's LUKS2 volume, interrupted before the format:
  // the rollback must not wipe what was there (it was never overwritten).
  ASSERT_TRUE(backend_.format(kDev, FormatParams{}, 0, SecretBytes::random(32).value()).ok());
  probe_.sigs[kDev] = {sig("crypto_LUKS", "crypto", "2")};
  std::string foreign = backend_.inspect(kDev)->uuid;
  crash_on_ = "key-stored";
  CreateRequest req{kDev, "vol1", "key1", true};
  req.force = true;
  ASSERT_FALSE(manager().create(req).ok());
  crash_on_.reset();
  ASSERT_TRUE(manager().resume().ok());
  ASSERT_TRUE(*backend_.is_luks(kDev));
  EXPECT_EQ(backend_.inspect(kDev)->uuid, foreign);
  EXPECT_EQ(key_copies(1), 0u);
}

TEST_F(VolumeManagerTest, FailedCreateStepUndoesWhatItDid) {
  backend_.fail_next("set_token", Error(ErrorCode::kKernel, "token write failed"));
  auto r = manager().create({kDev, "vol1", "key1", true});
  ASSERT_FALSE(r.ok());
  EXPECT_FALSE(*backend_.is_luks(kDev));
  EXPECT_EQ(key_copies(1), 0u);
  EXPECT_TRUE(registry_.empty());
  EXPECT_TRUE(journal_->pending()->empty());
  EXPECT_EQ(ops(kCreateKind), 1u);
}

// ---- migration to an external key provider (issue 17) -------------------------

// An in-memory external provider (kind "kmip"), as the KMIP key provider
// behaves towards the manager: store is idempotent for the same value and a
// conflict for another; `down` makes every call fail as an unreachable server.
class FakeExternalProvider final : public keys::KeyProvider {
 public:
  std::string kind() const override { return "kmip"; }
  std::string id() const override { return "7"; }
  Result<keys::ProviderReport> store(const keys::KeyRef& r, const SecretBytes& ak) override {
    STORCRYPT_TRY(up());
    auto it = keys_.find(name(r));
    if (it != keys_.end() && !it->second.equals(ak)) return Error(ErrorCode::kConflict, "different value");
    keys_[name(r)] = ak.clone();
    return keys::ProviderReport{1, 0, {}};
  }
  Result<keys::FetchedKey> fetch(const keys::KeyRef& r) override {
    STORCRYPT_TRY(up());
    auto it = keys_.find(name(r));
    if (it == keys_.end()) return Error(ErrorCode::kNotFound, "no key " + name(r), "", "xKeyNotFound");
    keys::FetchedKey k;
    k.ak = it->second.clone();
    k.valid_copies = 1;
    return k;
  }
  Result<keys::ProviderReport> rekey(const keys::KeyRef&, const keys::KeyRef& n, const SecretBytes& ak) override {
    return store(n, ak);
  }
  Result<keys::ProviderReport> retire(const keys::KeyRef& r) override {
    STORCRYPT_TRY(up());
    keys::ProviderReport rep;
    rep.copies_removed = keys_.erase(name(r));
    return rep;
  }
  Result<keys::ProviderReport> destroy_all(const std::string& key_id) override {
    STORCRYPT_TRY(up());
    keys::ProviderReport rep;
    for (auto it = keys_.begin(); it != keys_.end();)
      if (it->first.rfind(key_id + "-g", 0) == 0) {
        it = keys_.erase(it);
        ++rep.copies_removed;
      } else {
        ++it;
      }
    return rep;
  }
  Result<bool> holds(const std::string& key_id) override {
    STORCRYPT_TRY(up());
    for (auto& [n, _] : keys_)
      if (n.rfind(key_id + "-g", 0) == 0) return true;
    return false;
  }
  std::size_t count() const { return keys_.size(); }
  bool down = false;

 private:
  Status up() const {
    if (down) return Error(ErrorCode::kUnavailable, "key server unreachable", "", "xKeyServerUnavailable");
    return ok_status();
  }
  static std::string name(const keys::KeyRef& r) { return r.key_id + "-g" + std::to_string(r.generation); }
  std::map<std::string, SecretBytes> keys_;
};

class MigrateTest : public VolumeManagerTest {
 protected:
  VolumeManager manager2() {
    auto m = manager();
    m.set_providers({provider_.get(), &kmip_});
    return m;
  }
  Status open_close2() {
    auto m = manager2();
    auto st = m.open(kDev);
    if (st.ok()) {
      EXPECT_TRUE(m.close("vol1").ok());
    }
    return st;
  }
  FakeExternalProvider kmip_;
  std::string uuid_;
};

TEST_F(MigrateTest, MovesTheKeyOnlineAndShredsTheMediaCopies) {
  uuid_ = create_volume().uuid;
  auto m = manager2();
  ASSERT_TRUE(m.open(kDev).ok());  // in use during the migration
  bool moved = false;
  OpReport rep;
  auto st = m.migrate(kDev, kmip_, &rep, &moved);
  ASSERT_TRUE(st.ok()) << st.error().to_string();
  EXPECT_TRUE(moved);
  auto vi = m.show(kDev);
  ASSERT_TRUE(vi.ok());
  EXPECT_EQ(vi->provider_kind, "kmip");
  EXPECT_EQ(vi->provider_id, "7");
  EXPECT_EQ(vi->generation, 2u);
  EXPECT_EQ(vi->key_id, "key1");
  EXPECT_EQ(keyslots(), std::vector<int>{1});
  EXPECT_EQ(key_copies(1), 0u);
  EXPECT_EQ(kmip_.count(), 1u);
  EXPECT_EQ(registry_.at(uuid_), "vol1");
  EXPECT_EQ(ops(kMigrateKind), 1u);
  EXPECT_TRUE(journal_->pending()->empty());
  EXPECT_TRUE(fs::exists(root_ / "backup" / ("storcrypt-" + uuid_ + ".luks2hdr")));
  ASSERT_TRUE(m.close("vol1").ok());
  ASSERT_TRUE(open_close2().ok());
  // Again: nothing to do.
  ASSERT_TRUE(m.migrate(kDev, kmip_, nullptr, &moved).ok());
  EXPECT_FALSE(moved);
  EXPECT_EQ(ops(kMigrateKind), 1u);
}

TEST_F(MigrateTest, ExternalVolumesNeverMove) {
  CreateRequest req{kDev, "vol1", "key1", true};
  req.provider_kind = "kmip";
  req.provider_id = "7";
  auto m = manager2();
  ASSERT_TRUE(m.create(req).ok());
  keys::KeyMediaConfig c;
  c.media_dirs = media_;
  c.system_id = "node-a";
  c.provider_id = "other";
  auto other = keys::KeyMediaProvider::create(c).value();
  auto st = m.migrate(kDev, other);
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.error().name(), "xMigrationNotSupported");
  EXPECT_NE(st.error().message().find("TS7700"), std::string::npos);
  EXPECT_EQ(ops(kMigrateKind), 0u);
}

TEST_F(MigrateTest, UnreachableTargetChangesNothing) {
  uuid_ = create_volume().uuid;
  kmip_.down = true;
  auto st = manager2().migrate(kDev, kmip_);
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.error().name(), "xKeyServerUnavailable");
  EXPECT_EQ(ops(kMigrateKind), 0u);
  kmip_.down = false;
  EXPECT_EQ(manager2().show(kDev)->provider_kind, "keymedia");
  EXPECT_EQ(key_copies(1), 2u);
}

TEST_F(MigrateTest, FailedKeyslotAddIsUndone) {
  uuid_ = create_volume().uuid;
  backend_.fail_next("add_keyslot", Error(ErrorCode::kKernel, "keyslot write failed"));
  ASSERT_FALSE(manager2().migrate(kDev, kmip_).ok());
  EXPECT_TRUE(journal_->pending()->empty());
  EXPECT_EQ(kmip_.count(), 0u);
  EXPECT_EQ(keyslots(), std::vector<int>{0});
  EXPECT_EQ(key_copies(1), 2u);
  ASSERT_TRUE(open_close2().ok());
}

class MigrateCrash : public MigrateTest, public ::testing::WithParamInterface<std::string> {};

// Killed at any point, the volume opens (with the key its token names) before
// resume, and after resume it is either still on the key media (nothing on
// the target, one keyslot) or fully on the target (one keyslot, no media
// copy, a header backup without the old keyslot).
TEST_P(MigrateCrash, VolumeOpensAtEveryStepAndResumeConverges) {
  uuid_ = create_volume().uuid;
  const int backups = backend_.calls("header_backup");
  crash_on_ = GetParam();
  {
    auto st = manager2().migrate(kDev, kmip_);
    ASSERT_FALSE(st.ok());
    EXPECT_NE(st.error().message().find("injected crash"), std::string::npos) << st.error().message();
  }
  crash_on_.reset();
  ASSERT_TRUE(open_close2().ok()) << "crash at " << GetParam();
  auto m = manager2();
  if (GetParam() != "done") {
    auto again = m.migrate(kDev, kmip_);
    ASSERT_FALSE(again.ok());
    EXPECT_EQ(again.error().name(), "xOperationPending");
    auto rk = m.rekey(kDev);
    ASSERT_FALSE(rk.ok());
    EXPECT_EQ(rk.error().name(), "xOperationPending");
  }
  auto res = m.resume();
  ASSERT_TRUE(res.ok()) << res.error().to_string();
  ASSERT_TRUE(journal_->pending()->empty());
  // "add-slot" and "set-token" did their action but did not record it:
  // resume sees the new key on the target opening the new keyslot and goes
  // forward too.
  const std::vector<std::string> back = {"begin", "store-key", "key-stored"};
  bool fwd = std::find(back.begin(), back.end(), GetParam()) == back.end();
  if (GetParam() != "done") {
    ASSERT_EQ(res->items.size(), 1u);
    EXPECT_EQ(res->items[0].outcome, fwd ? "completed" : "rolled-back") << GetParam();
  }
  auto vi = m.show(kDev);
  ASSERT_TRUE(vi.ok());
  ASSERT_EQ(keyslots().size(), 1u) << "crash at " << GetParam();
  EXPECT_EQ(keyslots()[0], vi->keyslot);
  if (fwd) {
    EXPECT_EQ(vi->provider_kind, "kmip");
    EXPECT_EQ(key_copies(1), 0u);
    EXPECT_EQ(kmip_.count(), 1u);
    EXPECT_EQ(backend_.calls("header_backup"), backups + 1) << "the backup holding the old keyslot is replaced";
    EXPECT_TRUE(fs::exists(root_ / "backup" / ("storcrypt-" + uuid_ + ".luks2hdr")));
  } else {
    EXPECT_EQ(vi->provider_kind, "keymedia");
    EXPECT_EQ(key_copies(1), 2u);
    EXPECT_EQ(kmip_.count(), 0u);
    EXPECT_EQ(backend_.calls("header_backup"), backups);
  }
  ASSERT_TRUE(open_close2().ok());
  // A rolled-back volume migrates on the next try.
  ASSERT_TRUE(m.migrate(kDev, kmip_).ok());
  EXPECT_EQ(m.show(kDev)->provider_kind, "kmip");
  ASSERT_TRUE(open_close2().ok());
}

INSTANTIATE_TEST_SUITE_P(EveryStep, MigrateCrash, ::testing::ValuesIn(migrate_crash_points()), [](const auto& info) {
  std::string s = info.param;
  std::replace(s.begin(), s.end(), '-', '_');
  return s;
});

TEST_F(MigrateTest, ResumeWithTheTargetDownStaysPendingAndTheVolumeOpens) {
  uuid_ = create_volume().uuid;
  crash_on_ = "slot-added";
  ASSERT_FALSE(manager2().migrate(kDev, kmip_).ok());
  crash_on_.reset();
  kmip_.down = true;
  ASSERT_FALSE(manager2().resume().ok());
  EXPECT_EQ(journal_->pending()->size(), 1u);
  ASSERT_TRUE(open_close2().ok()) << "still on the key media";
  kmip_.down = false;
  auto res = manager2().resume();
  ASSERT_TRUE(res.ok());
  EXPECT_EQ(res->items[0].outcome, "completed");
  EXPECT_EQ(key_copies(1), 0u);
}

}  // namespace
}  // namespace storcrypt::dm
