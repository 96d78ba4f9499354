#include "storcrypt/journal/journal.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <thread>

#include "storcrypt/common/files.h"

namespace storcrypt::journal {
namespace {
namespace fs = std::filesystem;
using nlohmann::json;

class JournalTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("storcrypt-journal-" + std::to_string(::getpid()) + "-" +
                                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  Journal file_journal(JournalOptions o = {}) { return Journal(std::make_unique<FileStore>(dir_ / "journal"), o); }
  std::string read(const fs::path& p) {
    std::ifstream f(p);
    return std::string((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  }
  fs::path dir_;
};

TEST_F(JournalTest, FileStoreRecordsIntentStepsAndSettlementDurably) {
  std::int64_t a = 0, b = 0;
  {
    auto j = file_journal();
    a = *j.begin("volume.rekey", {{"device", "/dev/a"}});
    b = *j.begin("volume.erase", {{"device", "/dev/b"}});
    ASSERT_TRUE(j.step(a, "slot-added").ok());
    ASSERT_TRUE(j.step(a, "token-updated").ok());
    ASSERT_TRUE(j.step(a, "slot-added").ok());  // repeated: recorded once
    ASSERT_TRUE(j.finish(b).ok());
    ASSERT_TRUE(j.finish(b).ok());  // idempotent
  }
  struct stat sb {};
  ASSERT_EQ(::stat((dir_ / "journal").c_str(), &sb), 0);
  EXPECT_EQ(sb.st_mode & 0777, 0600u);
  // A new journal on the same file ("after the crash") sees the same.
  auto j = file_journal();
  auto ea = j.get(a);
  ASSERT_TRUE(ea.ok()) << ea.error().to_string();
  EXPECT_EQ(ea->kind, "volume.rekey");
  EXPECT_EQ(ea->payload["device"], "/dev/a");
  EXPECT_EQ(ea->steps, (std::vector<std::string>{"slot-added", "token-updated"}));
  EXPECT_EQ(ea->last_step(), "token-updated");
  EXPECT_EQ(ea->state, State::kRunning);
  EXPECT_EQ(j.get(b)->state, State::kDone);
  auto pend = j.pending();
  ASSERT_TRUE(pend.ok());
  ASSERT_EQ(pend->size(), 1u);
  EXPECT_EQ((*pend)[0].id, a);
  EXPECT_TRUE(j.pending({"volume.erase"})->empty());
  EXPECT_EQ(j.list(false)->front().id, b) << "newest first";
  // Settled operations refuse further steps; unknown ids are not found.
  EXPECT_EQ(j.step(b, "x").error().code(), ErrorCode::kConflict);
  EXPECT_EQ(j.rolled_back(b, "x").error().code(), ErrorCode::kConflict);
  EXPECT_EQ(j.get(999).error().code(), ErrorCode::kNotFound);
  EXPECT_EQ(j.begin("", json::object()).error().code(), ErrorCode::kInvalidInput);
  // No temporary left behind by the atomic replace.
  for (const auto& e : fs::directory_iterator(dir_))
    EXPECT_FALSE(storcrypt::atomic_write_target(e.path().filename().string())) << e.path();
}

TEST_F(JournalTest, SettledOperationsArePrunedBeyondTheLimit) {
  auto j = file_journal({.keep_settled = 1});
  auto running = *j.begin("k", json::object());
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(j.finish(*j.begin("k", {{"i", i}})).ok());
  auto all = j.list(false);
  ASSERT_TRUE(all.ok());
  ASSERT_EQ(all->size(), 2u);
  EXPECT_EQ((*all)[0].payload["i"], 2);
  EXPECT_EQ((*all)[1].id, running) << "running operations are never pruned";
  ASSERT_TRUE(j.finish(running).ok());
  auto none = file_journal({.keep_settled = 0});
  ASSERT_TRUE(none.finish(none.begin("k", json::object()).value()).ok());
  EXPECT_FALSE(fs::exists(dir_ / "journal")) << "nothing left to remember: no file";
}

TEST_F(JournalTest, TornOrForeignContentIsAnErrorNotIgnored) {
  {
    auto j = file_journal();
    ASSERT_TRUE(j.begin("k", json::object()).ok());
  }
  std::string good = read(dir_ / "journal");
  {
    std::ofstream f(dir_ / "journal", std::ios::app);
    f << R"({"id":2,"kind":"k")";  // torn: no line end
  }
  auto j = file_journal();
  auto l = j.list(false);
  ASSERT_FALSE(l.ok());
  EXPECT_NE(l.error().message().find("line 2 has no line end"), std::string::npos) << l.error().message();
  EXPECT_FALSE(j.begin("k", json::object()).ok()) << "never appends to a file it cannot read";
  {
    std::ofstream f(dir_ / "journal", std::ios::trunc);
    f << good << R"({"id":2,"kind":"k","payload":"{}","state":"paused","steps":[],"created":0,"updated":0,"note":""})"
      << "\n";
  }
  l = j.list(false);
  ASSERT_FALSE(l.ok());
  EXPECT_NE(l.error().message().find("line 2 is not a valid record"), std::string::npos) << l.error().message();
}

// A multi-step operation "copy" then "switch": the handler completes it when
// "copy" was done and rolls it back otherwise.
TEST_F(JournalTest, RecoverCompletesRollsBackDefersOrFails) {
  std::int64_t none = 0, copied = 0, unknown = 0, failing = 0, later = 0;
  {
    auto j = file_journal();
    none = *j.begin("demo.op", {{"name", "none"}});
    copied = *j.begin("demo.op", {{"name", "copied"}});
    ASSERT_TRUE(j.step(copied, "copy").ok());
    unknown = *j.begin("other.kind", json::object());
    failing = *j.begin("demo.failing", json::object());
    later = *j.begin("demo.later", json::object());
  }
  auto j = file_journal();
  std::vector<std::string> actions;
  j.register_handler("demo.op", [&](Journal& jj, const Entry& e) -> Status {
    if (e.has_step("copy")) {
      actions.push_back("switch " + e.payload["name"].get<std::string>());
      STORCRYPT_TRY(jj.step(e.id, "switch"));
      return jj.finish(e.id);
    }
    actions.push_back("undo " + e.payload["name"].get<std::string>());
    return jj.rolled_back(e.id, "copy had not completed");
  });
  j.register_handler("demo.failing", [](Journal&, const Entry&) -> Status {
    return Error(ErrorCode::kUnavailable, "device gone");
  });
  bool media_back = false;
  j.register_handler("demo.later", [&](Journal& jj, const Entry& e) -> Status {
    if (media_back) return jj.finish(e.id);
    (void)jj.defer(e.id, "no key medium present");
    return Error(ErrorCode::kNotFound, "no key medium present");
  });
  auto out = j.recover();
  ASSERT_TRUE(out.ok()) << out.error().to_string();
  std::map<std::int64_t, std::string> by_id;
  for (const auto& o : *out) by_id[o.id] = o.outcome;
  EXPECT_EQ(actions, (std::vector<std::string>{"undo none", "switch copied"}));
  EXPECT_EQ(by_id[none], "rolled-back");
  EXPECT_EQ(by_id[copied], "done");
  EXPECT_EQ(by_id[unknown], "no-handler");
  EXPECT_EQ(by_id[failing], "failed");
  EXPECT_EQ(by_id[later], "deferred");
  EXPECT_EQ(j.get(copied)->steps, (std::vector<std::string>{"copy", "switch"}));
  EXPECT_EQ(j.get(unknown)->state, State::kRunning);
  EXPECT_EQ(j.get(failing)->state, State::kFailed);
  EXPECT_NE(j.get(failing)->note.find("device gone"), std::string::npos);
  EXPECT_EQ(j.get(later)->state, State::kRunning);
  EXPECT_EQ(j.get(later)->note, "no key medium present");
  // The next recovery retries the deferred one only (and the unknown kind).
  media_back = true;
  auto again = j.recover({"demo.later"});
  ASSERT_TRUE(again.ok());
  ASSERT_EQ(again->size(), 1u);
  EXPECT_EQ(again->front().outcome, "done");
  EXPECT_EQ(j.get(later)->state, State::kDone);
}

TEST_F(JournalTest, MemoryStoreAndHandlerThatDoesNotSettle) {
  Journal j(std::make_unique<MemoryStore>());
  auto id = *j.begin("k", json::object());
  j.register_handler("k", [](Journal&, const Entry&) { return ok_status(); });
  auto out = j.recover();
  ASSERT_TRUE(out.ok());
  EXPECT_EQ(j.get(id)->state, State::kDone);
}

TEST_F(JournalTest, StopHookStopsAtEveryNamedPointAfterTheRecordIsDurable) {
  auto j = file_journal();
  std::vector<std::string> seen;
  j.set_stop_hook([&](std::string_view kind, std::string_view p) {
    seen.push_back(std::string(kind) + ":" + std::string(p));
    return p == "b";
  });
  auto id = *j.begin("demo", json::object());
  ASSERT_TRUE(j.point(id, "a").ok());
  auto st = j.step(id, "b");
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.error().message(), "injected crash at demo:b");
  EXPECT_TRUE(file_journal().get(id)->has_step("b")) << "the step is recorded before the stop";
  j.set_stop_hook({});
  ASSERT_TRUE(j.finish(id).ok());
  EXPECT_EQ(seen, (std::vector<std::string>{"demo:begin", "demo:a", "demo:b"}));
}

// The test-only pause hook, end to end: a child process runs an operation
// with STORCRYPT_PAUSE_AT, announces the point in STORCRYPT_PAUSE_FILE and
// blocks; the parent kills it with SIGKILL and finds the step durable and
// nothing after it.
TEST_F(JournalTest, PauseHookAnnouncesAndBlocksUntilKilled) {
  const fs::path pause_file = dir_ / "paused";
  for (const std::string at : {"demo:begin", "demo:between", "demo:one", "demo:done"}) {
    fs::remove(dir_ / "journal");
    fs::remove(pause_file);
    pid_t pid = ::fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      ::setenv("STORCRYPT_PAUSE_AT", ("other:x," + at).c_str(), 1);
      ::setenv("STORCRYPT_PAUSE_FILE", pause_file.c_str(), 1);
      auto j = file_journal();
      auto id = j.begin("demo", json::object());
      if (!id.ok() || !j.point(*id, "between").ok() || !j.step(*id, "one").ok() || !j.step(*id, "two").ok() ||
          !j.finish(*id).ok())
        ::_exit(3);
      ::_exit(0);  // not paused: the parent sees exit status 0 and fails
    }
    std::string announced;
    for (int i = 0; i < 500 && announced.empty(); ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
      announced = read(pause_file);
    }
    int status = 0;
    EXPECT_EQ(::waitpid(pid, &status, WNOHANG), 0) << at << ": the child ended instead of pausing";
    ASSERT_EQ(::kill(pid, SIGKILL), 0);
    ASSERT_EQ(::waitpid(pid, &status, 0), pid);
    EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL) << at;
    EXPECT_EQ(announced, at + "\n");
    auto l = file_journal().list(false);
    ASSERT_TRUE(l.ok());
    ASSERT_EQ(l->size(), 1u) << at;
    const Entry& e = l->front();
    if (at == "demo:begin" || at == "demo:between") {
      EXPECT_TRUE(e.steps.empty()) << at;
    } else if (at == "demo:one") {
      EXPECT_EQ(e.steps, std::vector<std::string>{"one"});
      EXPECT_EQ(e.state, State::kRunning);
    } else {
      EXPECT_EQ(e.state, State::kDone);
    }
  }
}

}  // namespace
}  // namespace storcrypt::journal
