#include "storcrypt/common/files.h"

#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <sstream>

namespace storcrypt {
namespace {

namespace fs = std::filesystem;

class AtomicWrite : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string t = (fs::temp_directory_path() / "storcrypt-files-XXXXXX").string();
    ASSERT_NE(::mkdtemp(t.data()), nullptr);
    dir_ = t;
  }
  void TearDown() override { fs::remove_all(dir_); }
  static std::string slurp(const fs::path& p) {
    std::ifstream in(p);
    std::ostringstream os;
    os << in.rdbuf();
    return os.str();
  }
  static unsigned mode_of(const fs::path& p) {
    struct stat st {};
    EXPECT_EQ(::stat(p.c_str(), &st), 0);
    return st.st_mode & 07777;
  }
  std::vector<std::string> names() const {
    std::vector<std::string> out;
    for (const auto& e : fs::directory_iterator(dir_)) out.push_back(e.path().filename().string());
    return out;
  }
  fs::path dir_;
};

TEST_F(AtomicWrite, CreatesWithTheModeAndReplacesLeavingNoTemporary) {
  const fs::path p = dir_ / "keys";
  ASSERT_TRUE(write_file_atomic(p, "first\n").ok());
  EXPECT_EQ(slurp(p), "first\n");
  EXPECT_EQ(mode_of(p), 0600u);
  ASSERT_TRUE(write_file_atomic(p, "second\n", 0644).ok());
  EXPECT_EQ(slurp(p), "second\n");
  EXPECT_EQ(mode_of(p), 0644u);
  EXPECT_EQ(names(), std::vector<std::string>{"keys"});
}

TEST_F(AtomicWrite, ReplacesASymlinkInsteadOfWritingThroughIt) {
  const fs::path victim = dir_ / "victim";
  std::ofstream(victim) << "keep";
  fs::create_symlink(victim, dir_ / "link");
  ASSERT_TRUE(write_file_atomic(dir_ / "link", "new").ok());
  EXPECT_EQ(slurp(victim), "keep");
  EXPECT_FALSE(fs::is_symlink(dir_ / "link"));
  EXPECT_EQ(slurp(dir_ / "link"), "new");
}

TEST_F(AtomicWrite, FailureNamesThePathAndLeavesNothing) {
  Status st = write_file_atomic(dir_ / "missing-dir" / "f", "x");
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.error().code(), ErrorCode::kNotFound);
  EXPECT_NE(st.error().message().find("missing-dir"), std::string::npos) << st.error().message();
  // A path that is a directory: the rename fails, the temporary goes.
  fs::create_directory(dir_ / "d");
  fs::create_directory(dir_ / "d" / "sub");
  std::ofstream(dir_ / "d" / "sub" / "x") << "x";
  EXPECT_FALSE(write_file_atomic(dir_ / "d" / "sub", "x").ok());
  for (const auto& e : fs::directory_iterator(dir_ / "d"))
    EXPECT_FALSE(atomic_write_target(e.path().filename().string())) << e.path();
}

TEST_F(AtomicWrite, TemporaryNamesAreRecognised) {
  EXPECT_EQ(atomic_write_target(".storcrypt-v.g1.key.tmp-0123abcd"), "storcrypt-v.g1.key");
  EXPECT_FALSE(atomic_write_target("storcrypt-v.g1.key"));
  EXPECT_FALSE(atomic_write_target(".x.tmp-0123abcg"));
  EXPECT_FALSE(atomic_write_target(".x.tmp"));
  EXPECT_FALSE(atomic_write_target(".tmp-0123abcd"));
}

TEST_F(AtomicWrite, NonTextPathsAreEscapedInMessages) {
  Status st = write_file_atomic(dir_ / "no\xff" "dir" / "f", "x");
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.error().message().find("no\\xffdir"), std::string::npos) << st.error().message();
}

TEST_F(AtomicWrite, ReadSecretFileReadsEveryByteAndNamesWhatIsWrong) {
  std::string content = "#generation op-7\n";
  for (int i = 0; i < 5000; ++i) content += static_cast<char>(i * 37);  // binary, larger than one read
  const fs::path p = dir_ / "keys";
  ASSERT_TRUE(write_file_atomic(p, content).ok());
  auto got = read_secret_file(p);
  ASSERT_TRUE(got.ok()) << got.error().to_string();
  ASSERT_EQ(got->size(), content.size());
  EXPECT_TRUE(std::equal(content.begin(), content.end(), reinterpret_cast<const char*>(got->data())));

  ASSERT_TRUE(write_file_atomic(dir_ / "empty", "").ok());
  auto empty = read_secret_file(dir_ / "empty");
  ASSERT_TRUE(empty.ok());
  EXPECT_TRUE(empty->empty());

  auto missing = read_secret_file(dir_ / "absent");
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.error().code(), ErrorCode::kNotFound);
  EXPECT_NE(missing.error().message().find("absent"), std::string::npos) << missing.error().message();

  auto big = read_secret_file(p, 100);
  ASSERT_FALSE(big.ok());
  EXPECT_EQ(big.error().code(), ErrorCode::kInvalidInput);
  EXPECT_NE(big.error().message().find("larger than 100 bytes"), std::string::npos) << big.error().message();
  // A read error (a directory) is named, not taken for an empty file.
  auto dir = read_secret_file(dir_);
  ASSERT_FALSE(dir.ok());
}

}  // namespace
}  // namespace storcrypt
