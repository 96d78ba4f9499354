#include "storcrypt/keys/key_media.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>

namespace storcrypt::keys {
namespace {
namespace fs = std::filesystem;

class KeyMediaTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = fs::temp_directory_path() / ("storcrypt-keymedia-" + std::to_string(::getpid()) + "-" +
                                         ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(root_);
    for (int i = 0; i < 4; ++i) {
      media_.push_back(root_ / ("m" + std::to_string(i)));
      fs::create_directories(media_.back());
    }
  }
  void TearDown() override { fs::remove_all(root_); }
  KeyMediaProvider provider(std::string sys = "node-a") {
    KeyMediaConfig c;
    c.media_dirs = media_;
    c.system_id = std::move(sys);
    return KeyMediaProvider::create(std::move(c)).value();
  }
  static SecretBytes key() { return SecretBytes::random(32).value(); }
  fs::path root_;
  std::vector<fs::path> media_;
};

TEST_F(KeyMediaTest, StoreWritesEveryPresentMediumWith0600) {
  auto p = provider();
  auto ak = key();
  auto rep = p.store({"vol1", 1}, ak);
  ASSERT_TRUE(rep.ok()) << rep.error().to_string();
  EXPECT_EQ(rep->copies_written, 4u);
  EXPECT_TRUE(rep->warnings.empty());
  for (auto& m : media_) {
    struct stat sb {};
    ASSERT_EQ(::stat((m / key_file_name({"vol1", 1})).c_str(), &sb), 0);
    EXPECT_EQ(sb.st_mode & 0777, 0600u);
  }
  auto f = p.fetch({"vol1", 1});
  ASSERT_TRUE(f.ok());
  EXPECT_TRUE(f->ak.equals(ak));
  EXPECT_EQ(f->valid_copies, 4u);
}

TEST_F(KeyMediaTest, FewerMediaWarnsWithCount) {
  fs::remove_all(media_[2]);
  fs::remove_all(media_[3]);
  auto p = provider();
  auto rep = p.store({"vol1", 1}, key());
  ASSERT_TRUE(rep.ok());
  EXPECT_EQ(rep->copies_written, 2u);
  ASSERT_EQ(rep->warnings.size(), 1u);
  EXPECT_NE(rep->warnings[0].find("only 2 of 4"), std::string::npos) << rep->warnings[0];
}

TEST_F(KeyMediaTest, NoMediaIsAClearError) {
  auto p = provider();
  ASSERT_TRUE(p.store({"vol1", 1}, key()).ok());
  for (auto& m : media_) fs::remove_all(m);
  auto f = p.fetch({"vol1", 1});
  ASSERT_FALSE(f.ok());
  EXPECT_EQ(f.error().code(), ErrorCode::kNotFound);
  EXPECT_NE(f.error().message().find("not present"), std::string::npos);
  EXPECT_FALSE(f.error().fix().empty());
  auto s = p.store({"vol2", 1}, key());
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error().name(), "xKeyMediaMissing");
}

TEST_F(KeyMediaTest, CorruptCopyIsReportedAndGoodOneUsed) {
  auto p = provider();
  auto ak = key();
  ASSERT_TRUE(p.store({"vol1", 1}, ak).ok());
  fs::remove_all(media_[2]);
  fs::remove_all(media_[3]);
  {
    std::fstream f(media_[0] / key_file_name({"vol1", 1}), std::ios::in | std::ios::out);
    f.seekp(60);
    f.put('~');
  }
  auto got = p.fetch({"vol1", 1});
  ASSERT_TRUE(got.ok()) << got.error().to_string();
  EXPECT_TRUE(got->ak.equals(ak));
  EXPECT_EQ(got->valid_copies, 1u);
  ASSERT_EQ(got->warnings.size(), 1u);
  EXPECT_NE(got->warnings[0].find("corrupt"), std::string::npos);
  EXPECT_NE(got->warnings[0].find(media_[0].string()), std::string::npos);
  // Only corrupt copies left: not found, and the reason names the corruption.
  fs::remove(media_[1] / key_file_name({"vol1", 1}));
  auto none = p.fetch({"vol1", 1});
  ASSERT_FALSE(none.ok());
  EXPECT_NE(none.error().message().find("corrupt"), std::string::npos);
}

TEST_F(KeyMediaTest, OtherSystemsCopyIsNeverUsed) {
  auto other = provider("node-b");
  ASSERT_TRUE(other.store({"vol1", 1}, key()).ok());
  auto p = provider("node-a");
  auto got = p.fetch({"vol1", 1});
  ASSERT_FALSE(got.ok());
  EXPECT_NE(got.error().message().find("other-system"), std::string::npos) << got.error().message();
  auto scan = p.scan();
  ASSERT_EQ(scan.size(), 4u);
  ASSERT_EQ(scan[0].files.size(), 1u);
  EXPECT_EQ(scan[0].files[0].problem, KeyFileProblem::kOtherSystem);
}

TEST_F(KeyMediaTest, RenamedFileIsWrongKey) {
  auto p = provider();
  ASSERT_TRUE(p.store({"vol1", 1}, key()).ok());
  for (auto& m : media_) fs::rename(m / key_file_name({"vol1", 1}), m / key_file_name({"vol2", 1}));
  auto got = p.fetch({"vol2", 1});
  ASSERT_FALSE(got.ok());
  EXPECT_NE(got.error().message().find("wrong-key"), std::string::npos);
}

TEST_F(KeyMediaTest, RekeyNeedsCurrentKeyAndWritesNewEverywhere) {
  auto p = provider();
  auto ak1 = key();
  auto ak2 = key();
  ASSERT_TRUE(p.store({"vol1", 1}, ak1).ok());
  // Current key missing on all media: refused, nothing written.
  for (auto& m : media_) fs::rename(m / key_file_name({"vol1", 1}), m / "aside");
  auto bad = p.rekey({"vol1", 1}, {"vol1", 2}, ak2);
  ASSERT_FALSE(bad.ok());
  EXPECT_FALSE(fs::exists(media_[0] / key_file_name({"vol1", 2})));
  for (auto& m : media_) fs::rename(m / "aside", m / key_file_name({"vol1", 1}));
  // One valid copy is enough.
  for (int i = 1; i < 4; ++i) fs::remove(media_[i] / key_file_name({"vol1", 1}));
  auto ok = p.rekey({"vol1", 1}, {"vol1", 2}, ak2);
  ASSERT_TRUE(ok.ok()) << ok.error().to_string();
  EXPECT_EQ(ok->copies_written, 4u);
  EXPECT_TRUE(p.fetch({"vol1", 2})->ak.equals(ak2));
  EXPECT_TRUE(p.fetch({"vol1", 1}).ok()) << "old generation stays until retire";
  auto r = p.retire({"vol1", 1});
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->copies_removed, 1u);
  EXPECT_FALSE(p.fetch({"vol1", 1}).ok());
  EXPECT_FALSE(p.rekey({"vol1", 2}, {"vol1", 2}, ak2).ok()) << "generation must grow";
}

TEST_F(KeyMediaTest, DestroyAllShredsEveryGenerationAndTempFile) {
  auto p = provider();
  ASSERT_TRUE(p.store({"vol1", 1}, key()).ok());
  ASSERT_TRUE(p.store({"vol1", 2}, key()).ok());
  ASSERT_TRUE(p.store({"vol10", 1}, key()).ok());
  // Left by interrupted writes: write_file_atomic()'s temporary, and the
  // name versions before it used.
  { std::ofstream(media_[0] / ("." + key_file_name({"vol1", 3}) + ".tmp")) << "partial"; }
  { std::ofstream(media_[1] / ("." + key_file_name({"vol1", 4}) + ".tmp-0badcafe")) << "partial"; }
  auto r = p.destroy_all("vol1");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->copies_removed, 10u);
  for (auto& m : media_) {
    EXPECT_FALSE(fs::exists(m / key_file_name({"vol1", 1})));
    EXPECT_FALSE(fs::exists(m / key_file_name({"vol1", 2})));
    EXPECT_TRUE(fs::exists(m / key_file_name({"vol10", 1}))) << "other keys untouched";
  }
  EXPECT_FALSE(fs::exists(media_[0] / ("." + key_file_name({"vol1", 3}) + ".tmp")));
  EXPECT_FALSE(fs::exists(media_[1] / ("." + key_file_name({"vol1", 4}) + ".tmp-0badcafe")));
}

TEST_F(KeyMediaTest, InitMediumCopiesValidKeys) {
  fs::remove_all(media_[3]);
  auto p = provider();
  auto ak = key();
  ASSERT_TRUE(p.store({"vol1", 1}, ak).ok());
  fs::create_directories(media_[3]);
  auto r = p.init_medium(media_[3]);
  ASSERT_TRUE(r.ok()) << r.error().to_string();
  EXPECT_EQ(r->copies_written, 1u);
  for (int i = 0; i < 3; ++i) fs::remove(media_[i] / key_file_name({"vol1", 1}));
  EXPECT_TRUE(p.fetch({"vol1", 1})->ak.equals(ak));
  EXPECT_FALSE(p.init_medium("/not/configured").ok());
}

TEST_F(KeyMediaTest, ConfigValidation) {
  KeyMediaConfig c;
  c.system_id = "node a";
  c.media_dirs = media_;
  EXPECT_FALSE(KeyMediaProvider::create(c).ok());
  c.system_id = "node-a";
  c.media_dirs = {"relative/dir"};
  EXPECT_FALSE(KeyMediaProvider::create(c).ok());
  c.media_dirs.clear();
  EXPECT_FALSE(KeyMediaProvider::create(c).ok());
}

}  // namespace
}  // namespace storcrypt::keys
