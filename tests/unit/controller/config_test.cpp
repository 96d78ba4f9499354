#include "storcrypt/controller/config.h"

#include <gtest/gtest.h>

#include <fstream>

#include "temp_dir.h"

namespace storcrypt::controller {
namespace {

TEST(Config, DefaultsWhenEmpty) {
  auto c = parse_config("", "t.conf");
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->state_directory, "/var/lib/storcrypt");
  EXPECT_EQ(c->socket_path, "/run/storcrypt/storcrypt.sock");
  EXPECT_EQ(c->log_level, "info");
}

TEST(Config, ParsesAllKeysCommentsAndQuotes) {
  auto c = parse_config(
      "# comment\n"
      "\n"
      "state_directory = /srv/sc   # trailing comment\n"
      "socket_path=\"/run/x y.sock\"\n"
      "  log_level =  debug \r\n"
      "socket_group = wheel\n"
      "request_timeout_seconds = 5\n"
      "max_request_bytes = 4096\n"
      "worker_threads = 3\n",
      "t.conf");
  ASSERT_TRUE(c.ok()) << c.error().to_string();
  EXPECT_EQ(c->state_directory, "/srv/sc");
  EXPECT_EQ(c->socket_path, "/run/x y.sock");
  EXPECT_EQ(c->log_level, "debug");
  EXPECT_EQ(c->socket_group, "wheel");
  EXPECT_EQ(c->request_timeout_seconds, 5);
  EXPECT_EQ(c->max_request_bytes, 4096u);
  EXPECT_EQ(c->worker_threads, 3);
}

struct BadCase {
  const char* text;
  const char* expect;  // substring of the message
};

class ConfigErrors : public ::testing::TestWithParam<BadCase> {};

TEST_P(ConfigErrors, NameFileLineKeyAndProblem) {
  auto c = parse_config(GetParam().text, "my.conf");
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.error().code(), ErrorCode::kInvalidInput);
  EXPECT_EQ(c.error().name(), "xConfigInvalid");
  EXPECT_NE(c.error().message().find("my.conf:"), std::string::npos) << c.error().message();
  EXPECT_NE(c.error().message().find(GetParam().expect), std::string::npos) << c.error().message();
  EXPECT_FALSE(c.error().fix().empty());
}

INSTANTIATE_TEST_SUITE_P(
    Cases, ConfigErrors,
    ::testing::Values(
        BadCase{"no equals sign\n", "my.conf:1: expected 'key = value'"},
        BadCase{"\nfoo = bar\n", "my.conf:2: foo: unknown key"},
        BadCase{"log_level = loud\n", "log_level: 'loud' is not one of"},
        BadCase{"state_directory = relative/dir\n", "not an absolute path"},
        BadCase{"request_timeout_seconds = 0\n", "out of range (1..3600)"},
        BadCase{"request_timeout_seconds = 12abc\n", "not a whole number"},
        BadCase{"worker_threads = 99999999999999999999\n", "not a whole number"},
        BadCase{"log_level = info\nlog_level = warn\n", "my.conf:2: log_level: key given more than once"},
        BadCase{"socket_path = \"/x\n", "unterminated quoted value"}, BadCase{"state_directory =\n", "missing value"},
        BadCase{" = x\n", "missing key"},
        BadCase{"socket_path = "
                "/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
                "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.sock\n",
                "longer than 107 bytes"}));

TEST(Config, IkeKeys) {
  auto d = parse_config("", "t.conf");
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(d->ike_listen, "0.0.0.0,::");
  EXPECT_EQ(d->ike_port, 500);
  EXPECT_EQ(d->ike_natt_port, 4500);
  auto c = parse_config("ike_listen = 192.0.2.1, 2001:db8::1\nike_port = 1500\nike_natt_port = 14500\n", "t.conf");
  ASSERT_TRUE(c.ok()) << c.error().to_string();
  EXPECT_EQ(c->ike_listen, "192.0.2.1, 2001:db8::1");
  EXPECT_EQ(c->ike_port, 1500);
  EXPECT_EQ(c->ike_natt_port, 14500);
  const std::pair<const char*, const char*> bad[] = {
      {"ike_listen = 192.0.2.300\n", "t.conf:1: ike_listen: '192.0.2.300' is not an IP address"},
      {"ike_listen = 192.0.2.1,192.0.2.1\n", "'192.0.2.1' is given twice"},
      {"ike_listen = 192.0.2.1,\n", "'' is not an IP address"},
      {"ike_port = 0\n", "ike_port: 0 is out of range (1..65535)"},
      {"ike_natt_port = 70000\n", "ike_natt_port: 70000 is out of range"},
      {"ike_port = 4500\n", "ike_port and ike_natt_port are both 4500"},
  };
  for (const auto& [text, msg] : bad) {
    auto r = parse_config(text, "t.conf");
    ASSERT_FALSE(r.ok()) << text;
    EXPECT_NE(r.error().message().find(msg), std::string::npos) << text << ": " << r.error().message();
    EXPECT_EQ(r.error().name(), "xConfigInvalid");
  }
}

TEST(Config, LoadMissingFile) {
  test::TempDir dir;
  auto d = load_config(dir.file("none.conf"), false);
  ASSERT_TRUE(d.ok());
  auto e = load_config(dir.file("none.conf"), true);
  ASSERT_FALSE(e.ok());
  EXPECT_EQ(e.error().code(), ErrorCode::kNotFound);
  EXPECT_NE(e.error().message().find("none.conf"), std::string::npos);
}

TEST(Config, LoadFile) {
  test::TempDir dir;
  std::ofstream(dir.file("a.conf")) << "log_level = warn\n";
  auto c = load_config(dir.file("a.conf"), true);
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->log_level, "warn");
}

}  // namespace
}  // namespace storcrypt::controller

namespace storcrypt::controller {
namespace {

// The shipped example file parses and states exactly the built-in defaults.
TEST(Config, ShippedExampleIsValidAndMatchesDefaults) {
  auto c = load_config(STORCRYPT_EXAMPLE_CONF, true);
  ASSERT_TRUE(c.ok()) << c.error().to_string();
  Config d;
  EXPECT_EQ(c->state_directory, d.state_directory);
  EXPECT_EQ(c->socket_path, d.socket_path);
  EXPECT_EQ(c->socket_group, d.socket_group);
  EXPECT_EQ(c->log_level, d.log_level);
  EXPECT_EQ(c->request_timeout_seconds, d.request_timeout_seconds);
  EXPECT_EQ(c->max_request_bytes, d.max_request_bytes);
  EXPECT_EQ(c->worker_threads, d.worker_threads);
  EXPECT_EQ(c->ike_listen, d.ike_listen);
  EXPECT_EQ(c->ike_port, d.ike_port);
  EXPECT_EQ(c->ike_natt_port, d.ike_natt_port);
  EXPECT_EQ(c->ike_cookie_threshold, d.ike_cookie_threshold);
  EXPECT_EQ(c->ike_cookie_threshold_ip, d.ike_cookie_threshold_ip);
  EXPECT_EQ(c->ike_block_threshold, d.ike_block_threshold);
  EXPECT_EQ(c->ike_half_open_limit, d.ike_half_open_limit);
  EXPECT_EQ(c->ike_half_open_timeout_seconds, d.ike_half_open_timeout_seconds);
  EXPECT_EQ(c->policy_warn_kernel_policies, d.policy_warn_kernel_policies);
  EXPECT_EQ(c->kmip_watch_interval_seconds, d.kmip_watch_interval_seconds);
}

TEST(Config, KmipWatchInterval) {
  EXPECT_EQ(Config{}.kmip_watch_interval_seconds, 60);
  auto c = parse_config("kmip_watch_interval_seconds = 1\n", "t.conf");
  ASSERT_TRUE(c.ok()) << c.error().to_string();
  EXPECT_EQ(c->kmip_watch_interval_seconds, 1);
  for (const char* bad : {"kmip_watch_interval_seconds = 0\n", "kmip_watch_interval_seconds = 86401\n"}) {
    auto b = parse_config(bad, "t.conf");
    ASSERT_FALSE(b.ok()) << bad;
    EXPECT_NE(b.error().message().find("kmip_watch_interval_seconds"), std::string::npos);
  }
}

TEST(Config, IkeHalfOpenLimits) {
  Config d;
  EXPECT_EQ(d.ike_cookie_threshold, 10u);
  EXPECT_EQ(d.ike_cookie_threshold_ip, 3u);
  EXPECT_EQ(d.ike_block_threshold, 5u);
  EXPECT_EQ(d.ike_half_open_limit, 1000u);
  EXPECT_EQ(d.ike_half_open_timeout_seconds, 30);
  auto c = parse_config(
      "ike_cookie_threshold = 0\nike_cookie_threshold_ip = 2\nike_block_threshold = 4\nike_half_open_limit = 50\n"
      "ike_half_open_timeout_seconds = 2\n",
      "t.conf");
  ASSERT_TRUE(c.ok()) << c.error().to_string();
  EXPECT_EQ(c->ike_cookie_threshold, 0u);
  EXPECT_EQ(c->ike_cookie_threshold_ip, 2u);
  EXPECT_EQ(c->ike_block_threshold, 4u);
  EXPECT_EQ(c->ike_half_open_limit, 50u);
  EXPECT_EQ(c->ike_half_open_timeout_seconds, 2);
  for (const char* bad : {"ike_block_threshold = 0\n", "ike_half_open_limit = 0\n", "ike_half_open_timeout_seconds = 0\n",
                          "ike_half_open_timeout_seconds = 301\n", "ike_cookie_threshold = -1\n"}) {
    auto b = parse_config(bad, "t.conf");
    ASSERT_FALSE(b.ok()) << bad;
    EXPECT_NE(b.error().message().find(std::string(bad).substr(0, std::string(bad).find(' '))), std::string::npos)
        << b.error().message();
  }
}

TEST(Config, PolicyWarnKernelPolicies) {
  EXPECT_EQ(Config{}.policy_warn_kernel_policies, 100000u);
  auto c = parse_config("policy_warn_kernel_policies = 0\n", "t.conf");
  ASSERT_TRUE(c.ok()) << c.error().to_string();
  EXPECT_EQ(c->policy_warn_kernel_policies, 0u);
  c = parse_config("policy_warn_kernel_policies = 250000\n", "t.conf");
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->policy_warn_kernel_policies, 250000u);
  auto bad = parse_config("policy_warn_kernel_policies = -1\n", "t.conf");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.error().message().find("policy_warn_kernel_policies"), std::string::npos);
}

}  // namespace
}  // namespace storcrypt::controller
