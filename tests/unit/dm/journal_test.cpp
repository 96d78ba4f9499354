#include "storcrypt/dm/journal.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>

#include "storcrypt/common/files.h"

namespace storcrypt::dm {
namespace {
namespace fs = std::filesystem;

class FileJournalTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("storcrypt-journal-" + std::to_string(::getpid()) + "-" +
                                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  fs::path dir_;
};

TEST_F(FileJournalTest, AppendReloadPendingCompact) {
  FileJournal j(dir_ / "journal");
  JournalEntry a{0, "rekey", "u1", "/dev/a", "begin", R"({"x":1})"};
  JournalEntry b{0, "erase", "u2", "/dev/b", "erase-begin", "{}"};
  JournalEntry c{0, "rekey", "u1", "/dev/a", "done", R"({"x":1})"};
  ASSERT_TRUE(j.append(a).ok());
  ASSERT_TRUE(j.append(b).ok());
  ASSERT_TRUE(j.append(c).ok());
  EXPECT_EQ(c.seq, 3u);
  struct stat sb {};
  ASSERT_EQ(::stat((dir_ / "journal").c_str(), &sb), 0);
  EXPECT_EQ(sb.st_mode & 0777, 0600u);

  FileJournal again(dir_ / "journal");
  auto all = again.entries();
  ASSERT_TRUE(all.ok());
  ASSERT_EQ(all->size(), 3u);
  EXPECT_EQ((*all)[0].data, R"({"x":1})");
  auto pend = pending_operations(again);
  ASSERT_TRUE(pend.ok());
  ASSERT_EQ(pend->size(), 1u);
  EXPECT_EQ((*pend)[0].volume_uuid, "u2");
  ASSERT_TRUE(again.compact().ok());
  EXPECT_EQ(again.entries()->size(), 1u);
  // no temp file left behind
  for (const auto& e : fs::directory_iterator(dir_))
    EXPECT_FALSE(storcrypt::atomic_write_target(e.path().filename().string())) << e.path();
}

TEST_F(FileJournalTest, TornOrForeignContentIsAnErrorNotIgnored) {
  {
    std::ofstream f(dir_ / "journal");
    f << R"({"seq":1,"op":"rekey","uuid":"u","device":"/d","step":"begin","data":"{}"})"
      << "\n"
      << R"({"seq":2,"op":"rekey","uu)";
  }
  FileJournal j(dir_ / "journal");
  auto e = j.entries();
  ASSERT_FALSE(e.ok());
  EXPECT_NE(e.error().message().find("line 2"), std::string::npos);
  JournalEntry x{0, "rekey", "u", "/d", "slot-added", "{}"};
  EXPECT_FALSE(j.append(x).ok()) << "must not append after a line it cannot read";
}

TEST(MemoryJournal, PendingIsLastEntryPerVolume) {
  MemoryJournal j;
  JournalEntry e1{0, "rekey", "u1", "/a", "begin", "{}"};
  JournalEntry e2{0, "rekey", "u1", "/a", "token-updated", "{}"};
  JournalEntry e3{0, "rekey", "u3", "/c", "rolled-back", "{}"};
  ASSERT_TRUE(j.append(e1).ok());
  ASSERT_TRUE(j.append(e2).ok());
  ASSERT_TRUE(j.append(e3).ok());
  auto p = pending_operations(j);
  ASSERT_EQ(p->size(), 1u);
  EXPECT_EQ((*p)[0].step, "token-updated");
}

}  // namespace
}  // namespace storcrypt::dm
