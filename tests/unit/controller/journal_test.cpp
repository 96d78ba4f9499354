#include "storcrypt/controller/journal.h"

#include <gtest/gtest.h>

#include "temp_dir.h"

namespace storcrypt::controller {
namespace {

using nlohmann::json;

TEST(Journal, RecordsIntentStepsAndCompletion) {
  auto db = Db::open(":memory:");
  ASSERT_TRUE(db.ok());
  auto j = Journal::create(**db);
  ASSERT_TRUE(j.ok());
  auto id = (*j)->begin("volume.rekey", {{"volume", "v1"}});
  ASSERT_TRUE(id.ok());
  ASSERT_TRUE((*j)->step(*id, "a").ok());
  ASSERT_TRUE((*j)->step(*id, "b").ok());
  ASSERT_TRUE((*j)->step(*id, "a").ok());  // repeated step is idempotent
  auto e = (*j)->get(*id);
  ASSERT_TRUE(e.ok());
  EXPECT_EQ(e->state, JournalState::kRunning);
  EXPECT_EQ(e->steps, (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(e->payload["volume"], "v1");
  ASSERT_TRUE((*j)->finish(*id).ok());
  ASSERT_TRUE((*j)->finish(*id).ok());  // idempotent
  EXPECT_EQ((*j)->get(*id)->state, JournalState::kDone);
  Status late = (*j)->step(*id, "c");
  ASSERT_FALSE(late.ok());
  EXPECT_EQ(late.error().code(), ErrorCode::kConflict);
  Status rb = (*j)->rolled_back(*id, "x");
  EXPECT_EQ(rb.error().code(), ErrorCode::kConflict);
  EXPECT_EQ((*j)->get(999).error().code(), ErrorCode::kNotFound);
  EXPECT_EQ((*j)->step(999, "a").error().code(), ErrorCode::kNotFound);
}

// A fake multi-step operation: "copy" then "switch". The resume handler
// completes it when "copy" was done and rolls it back otherwise.
Status resume_copy_switch(Journal& j, const JournalEntry& e, std::vector<std::string>* actions) {
  if (e.has_step("switch")) return j.finish(e.id);
  if (e.has_step("copy")) {
    actions->push_back("switch " + e.payload["name"].get<std::string>());
    STORCRYPT_TRY(j.step(e.id, "switch"));
    return j.finish(e.id);
  }
  actions->push_back("undo " + e.payload["name"].get<std::string>());
  return j.rolled_back(e.id, "copy had not completed");
}

TEST(Journal, RecoverResumesOrRollsBackUnfinishedOperationsAfterReopen) {
  test::TempDir dir;
  int64_t none = 0, copied = 0, switched = 0, done = 0, unknown = 0, failing = 0;
  {
    auto db = Db::open(dir.file("s.db"));
    ASSERT_TRUE(db.ok());
    auto j = Journal::create(**db);
    ASSERT_TRUE(j.ok());
    none = *(*j)->begin("demo.op", {{"name", "none"}});
    copied = *(*j)->begin("demo.op", {{"name", "copied"}});
    ASSERT_TRUE((*j)->step(copied, "copy").ok());
    switched = *(*j)->begin("demo.op", {{"name", "switched"}});
    ASSERT_TRUE((*j)->step(switched, "copy").ok());
    ASSERT_TRUE((*j)->step(switched, "switch").ok());
    done = *(*j)->begin("demo.op", {{"name", "done"}});
    ASSERT_TRUE((*j)->finish(done).ok());
    unknown = *(*j)->begin("other.kind", json::object());
    failing = *(*j)->begin("demo.failing", json::object());
    // "crash": the Db goes away without finishing anything.
  }
  auto db = Db::open(dir.file("s.db"));
  ASSERT_TRUE(db.ok());
  auto j = Journal::create(**db);
  ASSERT_TRUE(j.ok());
  auto pending = (*j)->list(true);
  ASSERT_TRUE(pending.ok());
  EXPECT_EQ(pending->size(), 5u);

  std::vector<std::string> actions;
  (*j)->register_handler("demo.op",
                         [&](Journal& jj, const JournalEntry& e) { return resume_copy_switch(jj, e, &actions); });
  (*j)->register_handler("demo.failing", [](Journal&, const JournalEntry&) -> Status {
    return Error(ErrorCode::kUnavailable, "device gone");
  });
  auto out = (*j)->recover();
  ASSERT_TRUE(out.ok()) << out.error().to_string();
  ASSERT_EQ(out->size(), 5u);
  EXPECT_EQ(actions, (std::vector<std::string>{"undo none", "switch copied"}));

  EXPECT_EQ((*j)->get(none)->state, JournalState::kRolledBack);
  EXPECT_EQ((*j)->get(copied)->state, JournalState::kDone);
  EXPECT_EQ((*j)->get(copied)->steps, (std::vector<std::string>{"copy", "switch"}));
  EXPECT_EQ((*j)->get(switched)->state, JournalState::kDone);
  EXPECT_EQ((*j)->get(done)->state, JournalState::kDone);
  EXPECT_EQ((*j)->get(unknown)->state, JournalState::kRunning);  // kept for a build that knows it
  EXPECT_EQ((*j)->get(failing)->state, JournalState::kFailed);
  EXPECT_NE((*j)->get(failing)->note.find("device gone"), std::string::npos);

  std::map<int64_t, std::string> by_id;
  for (const auto& o : *out) by_id[o.id] = o.outcome;
  EXPECT_EQ(by_id[none], "rolled-back");
  EXPECT_EQ(by_id[copied], "done");
  EXPECT_EQ(by_id[unknown], "no-handler");
  EXPECT_EQ(by_id[failing], "failed");

  // A second recovery finds only the operation nobody can handle.
  auto again = (*j)->recover();
  ASSERT_TRUE(again.ok());
  ASSERT_EQ(again->size(), 1u);
  EXPECT_EQ(again->front().id, unknown);
  EXPECT_TRUE(actions.size() == 2u);
}

TEST(Journal, HandlerThatReturnsOkWithoutSettlingMarksDone) {
  auto db = Db::open(":memory:");
  auto j = Journal::create(**db);
  int64_t id = *(*j)->begin("k", json::object());
  (*j)->register_handler("k", [](Journal&, const JournalEntry&) { return ok_status(); });
  auto out = (*j)->recover();
  ASSERT_TRUE(out.ok());
  EXPECT_EQ((*j)->get(id)->state, JournalState::kDone);
}

TEST(Journal, RejectsEmptyKind) {
  auto db = Db::open(":memory:");
  auto j = Journal::create(**db);
  EXPECT_EQ((*j)->begin("", json::object()).error().code(), ErrorCode::kInvalidInput);
}

}  // namespace
}  // namespace storcrypt::controller
