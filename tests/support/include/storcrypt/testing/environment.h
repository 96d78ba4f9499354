// Test-tier helpers: capability checks that skip locally and fail in CI.
#pragma once
#include <gtest/gtest.h>

#include <string>

namespace storcrypt::testing {

/// True when missing capabilities must fail the test (CI=true or
/// STORCRYPT_REQUIRE_ALL=1), false when a developer may skip with a reason.
bool require_all();

bool is_root();
/// True when `ip netns add` works here (root + network namespaces).
bool can_use_netns();

/// Absolute path of an installed program, or "" when it is not on PATH.
std::string find_program(const std::string& name);

}  // namespace storcrypt::testing

/// Use at the top of a host/vm test: STORCRYPT_REQUIRE(cond, "needs root").
/// Locally the test is skipped with the reason; in CI it fails.
#define STORCRYPT_REQUIRE(cond, reason)                                      \
  do {                                                                       \
    if (!(cond)) {                                                           \
      if (::storcrypt::testing::require_all()) {                             \
        FAIL() << "missing capability in CI: " << (reason);                  \
      } else {                                                               \
        GTEST_SKIP() << "skipped: " << (reason) << " (set CI=true to fail)"; \
      }                                                                      \
    }                                                                        \
  } while (0)
