#include "storcrypt/common/result.h"

#include <gtest/gtest.h>

#include <set>

namespace storcrypt {
namespace {

Result<int> parse_positive(int v) {
  if (v <= 0) return Error(ErrorCode::kInvalidInput, "value must be positive", "give a number > 0");
  return v;
}

Result<int> doubled(int v) {
  STORCRYPT_ASSIGN_OR_RETURN(int x, parse_positive(v));
  return 2 * x;
}

Status check(int v) {
  STORCRYPT_TRY(parse_positive(v));
  return {};
}

TEST(Result, PropagatesValuesAndErrors) {
  auto ok = doubled(21);
  ASSERT_TRUE(ok.ok());
  EXPECT_EQ(*ok, 42);
  auto bad = doubled(-1);
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.error().code(), ErrorCode::kInvalidInput);
  EXPECT_EQ(bad.error().message(), "value must be positive");
  EXPECT_FALSE(check(-5).ok());
  EXPECT_TRUE(check(5).ok());
}

TEST(Result, ErrorTextCarriesNameContextAndFix) {
  Error e = Error(ErrorCode::kConflict, "provider is in use")
                .with_name("xKeyProviderActive")
                .context("deleting key provider 3");
  e.with_fix("migrate the volumes first");
  EXPECT_EQ(
      e.to_string(),
      "conflict (xKeyProviderActive): deleting key provider 3: provider is in use (fix: migrate the volumes first)");
}

TEST(Result, ErrnoMapsToCategories) {
  EXPECT_EQ(errno_error(ENOENT, "x").code(), ErrorCode::kNotFound);
  EXPECT_EQ(errno_error(EEXIST, "x").code(), ErrorCode::kConflict);
  EXPECT_EQ(errno_error(EPERM, "x").code(), ErrorCode::kPermission);
  EXPECT_EQ(errno_error(ENOSYS, "x").code(), ErrorCode::kUnsupported);
  Error e = errno_error(ENOENT, "opening /nonexistent");
  EXPECT_EQ(e.message(), "opening /nonexistent: No such file or directory");
  EXPECT_EQ(e.sys_errno(), ENOENT);
}

TEST(Result, ExitCodesAreDistinctPerCategory) {
  std::set<int> seen;
  for (auto c : {ErrorCode::kInvalidInput, ErrorCode::kNotFound, ErrorCode::kConflict, ErrorCode::kUnavailable,
                 ErrorCode::kPermission, ErrorCode::kKernel, ErrorCode::kTls, ErrorCode::kProtocol,
                 ErrorCode::kUnsupported, ErrorCode::kInternal}) {
    int code = category_exit_code(c);
    EXPECT_NE(code, 0);
    EXPECT_NE(code, 1);  // 1 is the CLI's own usage error
    EXPECT_TRUE(seen.insert(code).second) << error_code_name(c);
  }
}

}  // namespace
}  // namespace storcrypt
