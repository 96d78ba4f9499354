#include "storcrypt/controller/events.h"

#include <gtest/gtest.h>

namespace storcrypt::controller {
namespace {

using nlohmann::json;

TEST(EventLog, RaiseListShowFix) {
  auto db = Db::open(":memory:");
  ASSERT_TRUE(db.ok());
  auto log = EventLog::create(**db);
  ASSERT_TRUE(log.ok());
  EventLog& ev = **log;
  ev.define({2020,
             Severity::kError,
             "IPsec authentication failure",
             {"the remote root CA is not in this system's truststore"},
             {"add the partner's CA with `storcrypt truststore add`"}});
  auto a = ev.raise(2020, "peer 192.0.2.2 rejected", {{"peer", "192.0.2.2"}, {"step", "IKE_AUTH"}});
  ASSERT_TRUE(a.ok()) << a.error().to_string();
  auto b = ev.raise(event_code::kTestEvent, "hello");
  ASSERT_TRUE(b.ok());

  auto e = ev.get(*a);
  ASSERT_TRUE(e.ok());
  EXPECT_EQ(e->code, 2020);
  EXPECT_EQ(e->severity, Severity::kError);
  EXPECT_EQ(e->sense["step"], "IKE_AUTH");
  ASSERT_EQ(e->probable_causes.size(), 1u);
  EXPECT_FALSE(e->fixed);

  auto all = ev.list({});
  ASSERT_EQ(all->size(), 2u);
  EXPECT_EQ(all->front().id, *b);  // newest first
  auto errors = ev.list({false, Severity::kError, std::nullopt, 10});
  ASSERT_EQ(errors->size(), 1u);
  auto counts = ev.unfixed_counts();
  EXPECT_EQ((*counts)[Severity::kError], 1);
  EXPECT_EQ((*counts)[Severity::kInfo], 1);

  auto fixed = ev.mark_fixed(*a);
  ASSERT_TRUE(fixed.ok());
  EXPECT_TRUE(fixed->fixed);
  EXPECT_GT(fixed->fixed_time, 0);
  EXPECT_TRUE(ev.mark_fixed(*a).ok());  // again: not an error
  EXPECT_EQ(ev.list({true, std::nullopt, std::nullopt, 10})->size(), 1u);
  EXPECT_EQ(ev.get(12345).error().code(), ErrorCode::kNotFound);
  EXPECT_EQ(ev.mark_fixed(12345).error().name(), "xEventNotFound");
  json j = fixed->to_json();
  EXPECT_EQ(j["severity"], "error");
  EXPECT_EQ(j["fixed"], true);
}

TEST(EventLog, UndefinedCodeIsRefused) {
  auto db = Db::open(":memory:");
  auto log = EventLog::create(**db);
  EXPECT_FALSE((*log)->raise(4242, "x").ok());
}

TEST(EventLog, SeverityNamesRoundTrip) {
  for (auto s : {Severity::kInfo, Severity::kWarning, Severity::kError, Severity::kCritical}) {
    EXPECT_EQ(parse_severity(severity_name(s)), s);
  }
  EXPECT_FALSE(parse_severity("fatal").has_value());
}

}  // namespace
}  // namespace storcrypt::controller
