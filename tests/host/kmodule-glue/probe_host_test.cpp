// The probe on the real host, judged by independent sources: the kernel
// config read with zcat, /proc/crypto after the probe, and the kernel's own
// answer to a NETLINK_XFRM socket.
#include <gtest/gtest.h>

#include "storcrypt/kmodule/probe.h"
#include "storcrypt/testing/environment.h"
#include "storcrypt/testing/process.h"

namespace storcrypt::testing {
namespace {

using namespace storcrypt::kmodule;

std::string config_value(const std::string& sym) {
  auto r = sh("(zcat /proc/config.gz 2>/dev/null || cat /boot/config-$(uname -r) 2>/dev/null) | grep -E '^(# )?" + sym +
              "[= ]'");
  if (r.out.find(sym + "=y") != std::string::npos) return "y";
  if (r.out.find(sym + "=m") != std::string::npos) return "m";
  if (r.out.find("is not set") != std::string::npos) return "n";
  return "?";
}

TEST(KmoduleHost, EspVerdictAgreesWithKernelConfig) {
  STORCRYPT_REQUIRE(is_root(), "needs root to load modules");
  auto report = probe_all();
  const auto* esp = report.find("esp4");
  ASSERT_NE(esp, nullptr);
  const std::string v = config_value("CONFIG_INET_ESP");
  SCOPED_TRACE(report.to_text());
  if (v == "n") {
    EXPECT_EQ(esp->state, CheckState::kMissing);
    EXPECT_EQ(esp->problem, "kernel has no ESP support (CONFIG_INET_ESP)");
    EXPECT_FALSE(report.ok());
  } else if (v == "y") {
    EXPECT_EQ(esp->state, CheckState::kPresent);
  } else if (v == "m") {
    // Either loaded (now or before) or the precise reason why not.
    if (!esp->usable()) {
      EXPECT_FALSE(esp->problem.empty());
    }
  }
  // xfrm_user: the kernel itself is the judge.
  const auto* xu = report.find("xfrm_user");
  ASSERT_NE(xu, nullptr);
  auto sock = sh("python3 -c 'import socket; socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 6)'");
  EXPECT_EQ(xu->usable(), sock.exit_code == 0) << xu->how << xu->problem;
}

TEST(KmoduleHost, AlgorithmsReportedPresentAreInProcCryptoAfterwards) {
  STORCRYPT_REQUIRE(is_root(), "needs root");
  auto report = probe_all();
  SCOPED_TRACE(report.to_text());
  auto crypto = sh("cat /proc/crypto");
  ASSERT_EQ(crypto.exit_code, 0);
  for (const auto& c : report.checks) {
    if (c.feature.kind != FeatureKind::kAlgorithm) continue;
    if (c.state == CheckState::kPresent) {
      // Registered or instantiated through AF_ALG: either way the kernel now lists it.
      EXPECT_NE(crypto.out.find(": " + c.feature.name + "\n"), std::string::npos) << c.feature.name << ": " << c.how;
    } else if (c.state == CheckState::kMissing) {
      EXPECT_EQ(crypto.out.find(": " + c.feature.name + "\n"), std::string::npos) << c.feature.name;
      EXPECT_FALSE(c.problem.empty());
      EXPECT_FALSE(c.fix.empty());
    }
  }
}

}  // namespace
}  // namespace storcrypt::testing
