// The probe's decisions and messages against a scripted system.
#include "storcrypt/kmodule/probe.h"

#include <gtest/gtest.h>

#include <set>

using namespace storcrypt;
using namespace storcrypt::kmodule;

namespace {

class FakeSystem : public SystemView {
 public:
  std::optional<std::map<std::string, std::string>> config;
  std::map<std::string, std::pair<ModuleState, std::string>> modules;  // name/alias -> state, resolved
  std::set<std::string> loadable_ok;                                   // load succeeds for these
  std::vector<std::string> registered;
  std::map<std::string, int> bind_result;  // algorithm -> errno
  int default_bind = EAFNOSUPPORT;
  bool xfrm = false, dm = false;
  std::vector<std::string> loaded;

  std::string kernel_release() override { return "6.1.0-test"; }
  std::optional<std::map<std::string, std::string>> kernel_config() override { return config; }
  bool modules_supported() override { return true; }
  ModuleState module_state(const std::string& n, std::string* resolved) override {
    auto it = modules.find(n);
    if (it == modules.end()) return ModuleState::kAbsent;
    *resolved = it->second.second;
    return it->second.first;
  }
  Status load_module(const std::string& n) override {
    if (!loadable_ok.count(n)) return Error(ErrorCode::kPermission, "Operation not permitted");
    loaded.push_back(n);
    return ok_status();
  }
  std::vector<std::string> registered_algorithms() override { return registered; }
  int alg_bind(const std::string&, const std::string& name) override {
    auto it = bind_result.find(name);
    return it == bind_result.end() ? default_bind : it->second;
  }
  bool xfrm_netlink_available() override { return xfrm; }
  bool device_mapper_available() override { return dm; }
};

Feature esp4() {
  for (auto& f : ipsec_features())
    if (f.name == "esp4") return f;
  return {};
}
Feature feature(const std::string& name) {
  for (auto& f : ipsec_features())
    if (f.name == name) return f;
  for (auto& f : at_rest_features())
    if (f.name == name) return f;
  ADD_FAILURE() << "no feature " << name;
  return {};
}

}  // namespace

TEST(KernelConfig, ParsesSetModuleAndNotSet) {
  auto c = parse_kernel_config(
      "CONFIG_XFRM_USER=y\n# CONFIG_INET_ESP is not set\nCONFIG_DM_CRYPT=m\n"
      "CONFIG_LOCALVERSION=\"\"\n# comment\n");
  EXPECT_EQ(c["CONFIG_XFRM_USER"], "y");
  EXPECT_EQ(c["CONFIG_INET_ESP"], "n");
  EXPECT_EQ(c["CONFIG_DM_CRYPT"], "m");
  EXPECT_EQ(c.count("CONFIG_MISSING"), 0u);
}

TEST(Probe, NoEspInConfigGivesThePreciseReason) {
  FakeSystem sys;
  sys.config = parse_kernel_config("# CONFIG_INET_ESP is not set\n");
  auto r = probe(sys, {esp4()});
  ASSERT_EQ(r.checks.size(), 1u);
  EXPECT_EQ(r.checks[0].state, CheckState::kMissing);
  EXPECT_EQ(r.checks[0].problem, "kernel has no ESP support (CONFIG_INET_ESP)");
  EXPECT_FALSE(r.ok());
  EXPECT_NE(r.to_text().find("FAIL esp4: kernel has no ESP support (CONFIG_INET_ESP)"), std::string::npos)
      << r.to_text();
}

TEST(Probe, ModuleStatesAndLoading) {
  FakeSystem sys;
  sys.config = parse_kernel_config("CONFIG_INET_ESP=m\nCONFIG_INET6_ESP=m\nCONFIG_XFRM_USER=m\n");
  sys.modules["esp4"] = {SystemView::ModuleState::kAvailable, "esp4"};
  sys.modules["esp6"] = {SystemView::ModuleState::kAvailable, "esp6"};
  sys.modules["xfrm_user"] = {SystemView::ModuleState::kLive, "xfrm_user"};
  sys.loadable_ok = {"esp4"};
  auto r = probe(sys, {feature("esp4"), feature("esp6"), feature("xfrm_user")});
  EXPECT_EQ(r.find("esp4")->state, CheckState::kPresent);
  EXPECT_EQ(r.find("esp4")->how, "module esp4 loaded now");
  EXPECT_EQ(sys.loaded, std::vector<std::string>{"esp4"});
  EXPECT_EQ(r.find("esp6")->state, CheckState::kMissing);
  EXPECT_NE(r.find("esp6")->problem.find("could not be loaded"), std::string::npos);
  EXPECT_NE(r.find("esp6")->fix.find("modprobe esp6"), std::string::npos);
  EXPECT_EQ(r.find("xfrm_user")->how, "module xfrm_user loaded");

  // Without load, an installed module counts as loadable on demand.
  FakeSystem sys2 = sys;
  sys2.loaded.clear();
  ProbeOptions o;
  o.load = false;
  auto r2 = probe(sys2, {feature("esp6")}, o);
  EXPECT_EQ(r2.checks[0].state, CheckState::kLoadable);
  EXPECT_TRUE(sys2.loaded.empty());
  EXPECT_TRUE(r2.ok());
}

TEST(Probe, ConfigModuleButNoModuleFileAndUnknownConfig) {
  FakeSystem sys;
  sys.config = parse_kernel_config("CONFIG_DM_CRYPT=m\n");
  auto r = probe(sys, {feature("dm-crypt")});
  EXPECT_EQ(r.checks[0].state, CheckState::kMissing);
  EXPECT_NE(r.checks[0].problem.find("CONFIG_DM_CRYPT=m but module dm_crypt is not installed for kernel 6.1.0-test"),
            std::string::npos)
      << r.checks[0].problem;
  FakeSystem none;
  auto r2 = probe(none, {feature("esp6")});
  EXPECT_EQ(r2.checks[0].state, CheckState::kUnknown);
  EXPECT_FALSE(r2.config_available);
  EXPECT_FALSE(r2.ok());
  EXPECT_NE(r2.checks[0].fix.find("CONFIG_IKCONFIG_PROC"), std::string::npos);
}

TEST(Probe, BuiltinsFoundByFunctionalProbeOrConfig) {
  FakeSystem sys;
  sys.config = parse_kernel_config("CONFIG_INET_ESP=y\n");
  sys.xfrm = true;
  auto r = probe(sys, {feature("xfrm_user"), feature("esp4"), feature("dm-mod")});
  EXPECT_EQ(r.find("xfrm_user")->state, CheckState::kPresent);
  EXPECT_NE(r.find("xfrm_user")->how.find("NETLINK_XFRM"), std::string::npos);
  EXPECT_EQ(r.find("esp4")->how, "built in (CONFIG_INET_ESP=y)");
  EXPECT_EQ(r.find("dm-mod")->state, CheckState::kMissing);
  EXPECT_EQ(r.find("dm-mod")->problem, "kernel has no device-mapper support (CONFIG_BLK_DEV_DM)");
}

TEST(Probe, AlgorithmsRegisteredInstantiatedOrMissing) {
  FakeSystem sys;
  sys.config = parse_kernel_config(
      "CONFIG_CRYPTO_AES=y\nCONFIG_CRYPTO_CBC=y\n# CONFIG_CRYPTO_GCM is not set\n"
      "CONFIG_CRYPTO_HMAC=y\nCONFIG_CRYPTO_SHA256=y\n");
  sys.registered = {"cbc(aes)", "cbc-aes-aesni"};
  sys.bind_result["hmac(sha256)"] = 0;
  sys.bind_result["rfc4106(gcm(aes))"] = ENOENT;
  auto r = probe(sys, {feature("cbc(aes)"), feature("hmac(sha256)"), feature("rfc4106(gcm(aes))")});
  EXPECT_EQ(r.find("cbc(aes)")->how, "registered in /proc/crypto");
  EXPECT_EQ(r.find("hmac(sha256)")->how, "instantiated through AF_ALG (hash)");
  const auto* gcm = r.find("rfc4106(gcm(aes))");
  EXPECT_EQ(gcm->state, CheckState::kMissing);
  EXPECT_EQ(gcm->problem, "kernel has no rfc4106(gcm(aes)) (CONFIG_CRYPTO_GCM not set)");
}

TEST(Probe, WithoutAfAlgTemplatesAreReportedByModule) {
  FakeSystem sys;
  sys.config = parse_kernel_config("CONFIG_CRYPTO_GCM=m\nCONFIG_CRYPTO_AES=y\n# CONFIG_CRYPTO_XTS is not set\n");
  sys.default_bind = EAFNOSUPPORT;
  sys.registered = {"aes"};
  sys.modules["crypto-rfc4106"] = {SystemView::ModuleState::kAvailable, "gcm"};
  sys.modules["crypto-gcm"] = {SystemView::ModuleState::kAvailable, "gcm"};
  auto r = probe(sys, {feature("rfc4106(gcm(aes))"), feature("xts(aes)")});
  const auto* gcm = r.find("rfc4106(gcm(aes))");
  EXPECT_EQ(gcm->state, CheckState::kLoadable) << gcm->problem;
  EXPECT_NE(gcm->how.find("not instantiated yet"), std::string::npos);
  EXPECT_NE(gcm->how.find("module gcm"), std::string::npos);
  const auto* xts = r.find("xts(aes)");
  EXPECT_EQ(xts->state, CheckState::kMissing);
  EXPECT_EQ(xts->problem, "kernel has no xts(aes) (missing xts: CONFIG_CRYPTO_XTS not set)");
}

TEST(Probe, OptionalFeaturesOnlyWarn) {
  FakeSystem sys;
  sys.config = parse_kernel_config("# CONFIG_INET_AH is not set\n");
  auto r = probe(sys, {feature("ah4")});
  EXPECT_FALSE(r.checks[0].usable());
  EXPECT_TRUE(r.ok());
  EXPECT_NE(r.to_text().find("warn ah4"), std::string::npos);
}
