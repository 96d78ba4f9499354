// AutoUnlock: start-up unlock of registered volumes, retries, event dedup and fix.
#include "storcrypt/controller/auto_unlock.h"

#include <gtest/gtest.h>

#include <algorithm>

namespace storcrypt::controller {
namespace {

/// Fake volumes: per name, open or not, and the error the next open returns (empty: success).
struct FakeVolumes {
  std::map<std::string, bool> open;
  std::map<std::string, std::string> fail;                  ///< reason an open fails with
  std::vector<std::pair<std::string, std::string>> raised;  ///< (volume, reason), in order
  std::vector<int64_t> fixed;
  std::vector<std::string> open_calls;
  bool list_fails = false;

  AutoUnlockHooks hooks() {
    AutoUnlockHooks h;
    h.list = [this]() -> Result<std::vector<RegisteredVolume>> {
      if (list_fails) return Error(ErrorCode::kInternal, "db gone");
      std::vector<RegisteredVolume> out;
      for (auto& [n, o] : open) out.push_back({n, "/dev/" + n, o});
      return out;
    };
    h.open = [this](const RegisteredVolume& v) -> Status {
      open_calls.push_back(v.name);
      auto it = fail.find(v.name);
      if (it != fail.end() && !it->second.empty()) return Error(ErrorCode::kNotFound, it->second);
      open[v.name] = true;
      return ok_status();
    };
    h.raise = [this](const RegisteredVolume& v, const std::string& reason) -> Result<int64_t> {
      raised.emplace_back(v.name, reason);
      return static_cast<int64_t>(raised.size());  // event id = 1-based index
    };
    h.mark_fixed = [this](int64_t id) { fixed.push_back(id); };
    return h;
  }
};

TEST(AutoUnlock, StartOpensWhatItCanAndRaisesOneEventPerLockedVolume) {
  FakeVolumes f;
  f.open = {{"a", false}, {"b", false}, {"c", true}};
  f.fail["b"] = "no valid copy of k g1 on any key medium";
  AutoUnlock u(f.hooks());
  auto p = u.start();
  EXPECT_EQ(p.opened, std::vector<std::string>{"a"});
  EXPECT_EQ(p.still_locked, std::vector<std::string>{"b"});
  EXPECT_EQ(f.open_calls, (std::vector<std::string>{"a", "b"}));  // c already open: not touched
  ASSERT_EQ(f.raised.size(), 1u);
  EXPECT_EQ(f.raised[0].first, "b");
  EXPECT_EQ(f.raised[0].second, "no valid copy of k g1 on any key medium");
  EXPECT_TRUE(f.fixed.empty());
  ASSERT_EQ(u.locked().size(), 1u);
  EXPECT_EQ(u.locked().at("b").event_id, 1);
}

TEST(AutoUnlock, RetrySameReasonRaisesNoDuplicateThenSuccessMarksFixed) {
  FakeVolumes f;
  f.open = {{"b", false}};
  f.fail["b"] = "media missing";
  AutoUnlock u(f.hooks());
  u.start();
  for (int i = 0; i < 3; ++i) {
    auto p = u.retry();
    EXPECT_EQ(p.still_locked, std::vector<std::string>{"b"});
    EXPECT_TRUE(p.raised.empty());
  }
  EXPECT_EQ(f.raised.size(), 1u);
  EXPECT_EQ(f.open_calls.size(), 4u);
  f.fail.erase("b");
  auto p = u.retry();
  EXPECT_EQ(p.opened, std::vector<std::string>{"b"});
  EXPECT_EQ(f.fixed, std::vector<int64_t>{1});
  EXPECT_TRUE(u.locked().empty());
  f.open_calls.clear();
  u.retry();  // nothing locked: nothing tried
  EXPECT_TRUE(f.open_calls.empty());
}

TEST(AutoUnlock, NewReasonRaisesNewEventAndFixesThePreviousOne) {
  FakeVolumes f;
  f.open = {{"b", false}};
  f.fail["b"] = "no medium present";
  AutoUnlock u(f.hooks());
  u.start();
  f.fail["b"] = "copy on /m1 corrupt";
  auto p = u.retry();
  EXPECT_EQ(p.raised, std::vector<std::string>{"b"});
  ASSERT_EQ(f.raised.size(), 2u);
  EXPECT_EQ(f.raised[1].second, "copy on /m1 corrupt");
  EXPECT_EQ(f.fixed, std::vector<int64_t>{1});
  EXPECT_EQ(u.locked().at("b").event_id, 2);
}

TEST(AutoUnlock, OpenedByOperatorOrErasedIsFixedWithoutAnotherAttempt) {
  FakeVolumes f;
  f.open = {{"b", false}, {"d", false}};
  f.fail["b"] = "x";
  f.fail["d"] = "y";
  AutoUnlock u(f.hooks());
  u.start();
  f.open["b"] = true;  // `storcrypt volume open b`
  f.open.erase("d");   // erased
  f.open_calls.clear();
  auto p = u.retry();
  EXPECT_TRUE(f.open_calls.empty());
  std::sort(f.fixed.begin(), f.fixed.end());
  EXPECT_EQ(f.fixed, (std::vector<int64_t>{1, 2}));
  EXPECT_TRUE(u.locked().empty());
}

TEST(AutoUnlock, VolumeClosedAfterStartIsNotReopened) {
  FakeVolumes f;
  f.open = {{"a", false}, {"b", false}};
  f.fail["b"] = "x";
  AutoUnlock u(f.hooks());
  u.start();
  f.open["a"] = false;  // operator closed it
  f.open_calls.clear();
  u.retry();
  EXPECT_EQ(f.open_calls, std::vector<std::string>{"b"});
  EXPECT_FALSE(f.open["a"]);
}

TEST(AutoUnlock, ListingFailureKeepsLockedSetAndReports) {
  FakeVolumes f;
  f.open = {{"b", false}};
  f.fail["b"] = "x";
  AutoUnlock u(f.hooks());
  u.start();
  f.list_fails = true;
  auto p = u.retry();
  ASSERT_EQ(p.errors.size(), 1u);
  EXPECT_NE(p.errors[0].find("db gone"), std::string::npos);
  EXPECT_EQ(p.still_locked, std::vector<std::string>{"b"});
  f.list_fails = false;
  f.fail.erase("b");
  EXPECT_EQ(u.retry().opened, std::vector<std::string>{"b"});
  EXPECT_EQ(f.fixed, std::vector<int64_t>{1});
}

TEST(AutoUnlock, FailedRaiseIsRetriedOnTheNextPass) {
  FakeVolumes f;
  f.open = {{"b", false}};
  f.fail["b"] = "x";
  auto h = f.hooks();
  bool raise_ok = false;
  auto real = h.raise;
  h.raise = [&](const RegisteredVolume& v, const std::string& r) -> Result<int64_t> {
    if (!raise_ok) return Error(ErrorCode::kInternal, "event log busy");
    return real(v, r);
  };
  AutoUnlock u(h);
  EXPECT_EQ(u.start().errors.size(), 1u);
  raise_ok = true;
  u.retry();
  EXPECT_EQ(f.raised.size(), 1u);
  u.retry();
  EXPECT_EQ(f.raised.size(), 1u);
}

// The worker: the first pass runs at once, retries follow the interval, and it
// ends by itself once nothing is locked. Waits are on pass counts, not time.
TEST(AutoUnlockWorker, RetriesUntilOpenedThenFinishes) {
  FakeVolumes f;
  std::mutex mu;
  f.open = {{"b", false}};
  f.fail["b"] = "x";
  auto h = f.hooks();
  auto open = h.open;
  int attempts = 0;
  h.open = [&](const RegisteredVolume& v) {
    std::lock_guard lock(mu);
    if (++attempts == 3) f.fail.erase("b");  // third attempt succeeds
    return open(v);
  };
  AutoUnlockWorker w(h, std::chrono::milliseconds(1));
  w.wait_passes(1000);  // returns when the worker finished (nothing locked)
  std::lock_guard lock(mu);
  EXPECT_EQ(attempts, 3);
  EXPECT_EQ(w.passes(), 3u);
  EXPECT_EQ(f.raised.size(), 1u);
  EXPECT_EQ(f.fixed, std::vector<int64_t>{1});
}

TEST(AutoUnlockWorker, StopEndsRetries) {
  FakeVolumes f;
  f.open = {{"b", false}};
  f.fail["b"] = "x";
  AutoUnlockWorker w(f.hooks(), std::chrono::hours(1));
  w.wait_passes(1);
  w.stop();
  w.wait_passes(2);  // returns once the worker has finished
  EXPECT_EQ(w.passes(), 1u);
}

}  // namespace
}  // namespace storcrypt::controller
