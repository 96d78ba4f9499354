#include "storcrypt/controller/journal_store.h"

#include <gtest/gtest.h>

#include "storcrypt/controller/dispatcher.h"
#include "storcrypt/controller/nouns.h"
#include "temp_dir.h"

namespace storcrypt::controller {
namespace {

using nlohmann::json;

TEST(DbJournal, RecordsIntentStepsAndCompletion) {
  auto db = Db::open(":memory:");
  ASSERT_TRUE(db.ok());
  auto j = open_db_journal(**db);
  ASSERT_TRUE(j.ok());
  auto id = (*j)->begin("volume.rekey", {{"volume", "v1"}});
  ASSERT_TRUE(id.ok());
  ASSERT_TRUE((*j)->step(*id, "a").ok());
  ASSERT_TRUE((*j)->step(*id, "b").ok());
  ASSERT_TRUE((*j)->step(*id, "a").ok());  // repeated step is idempotent
  auto e = (*j)->get(*id);
  ASSERT_TRUE(e.ok());
  EXPECT_EQ(e->state, journal::State::kRunning);
  EXPECT_EQ(e->steps, (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(e->payload["volume"], "v1");
  ASSERT_TRUE((*j)->finish(*id).ok());
  ASSERT_TRUE((*j)->finish(*id).ok());  // idempotent
  EXPECT_EQ((*j)->get(*id)->state, journal::State::kDone);
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
Status resume_copy_switch(journal::Journal& j, const journal::Entry& e, std::vector<std::string>* actions) {
  if (e.has_step("switch")) return j.finish(e.id);
  if (e.has_step("copy")) {
    actions->push_back("switch " + e.payload["name"].get<std::string>());
    STORCRYPT_TRY(j.step(e.id, "switch"));
    return j.finish(e.id);
  }
  actions->push_back("undo " + e.payload["name"].get<std::string>());
  return j.rolled_back(e.id, "copy had not completed");
}

TEST(DbJournal, RecoverResumesOrRollsBackUnfinishedOperationsAfterReopen) {
  test::TempDir dir;
  int64_t none = 0, copied = 0, switched = 0, done = 0, unknown = 0, failing = 0;
  {
    auto db = Db::open(dir.file("s.db"));
    ASSERT_TRUE(db.ok());
    auto j = open_db_journal(**db);
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
  auto j = open_db_journal(**db);
  ASSERT_TRUE(j.ok());
  auto pending = (*j)->list(true);
  ASSERT_TRUE(pending.ok());
  EXPECT_EQ(pending->size(), 5u);

  std::vector<std::string> actions;
  (*j)->register_handler("demo.op",
                         [&](journal::Journal& jj, const journal::Entry& e) { return resume_copy_switch(jj, e, &actions); });
  (*j)->register_handler("demo.failing", [](journal::Journal&, const journal::Entry&) -> Status {
    return Error(ErrorCode::kUnavailable, "device gone");
  });
  auto out = (*j)->recover();
  ASSERT_TRUE(out.ok()) << out.error().to_string();
  ASSERT_EQ(out->size(), 5u);
  EXPECT_EQ(actions, (std::vector<std::string>{"undo none", "switch copied"}));

  EXPECT_EQ((*j)->get(none)->state, journal::State::kRolledBack);
  EXPECT_EQ((*j)->get(copied)->state, journal::State::kDone);
  EXPECT_EQ((*j)->get(copied)->steps, (std::vector<std::string>{"copy", "switch"}));
  EXPECT_EQ((*j)->get(switched)->state, journal::State::kDone);
  EXPECT_EQ((*j)->get(done)->state, journal::State::kDone);
  EXPECT_EQ((*j)->get(unknown)->state, journal::State::kRunning);  // kept for a build that knows it
  EXPECT_EQ((*j)->get(failing)->state, journal::State::kFailed);
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

TEST(DbJournal, HandlerThatReturnsOkWithoutSettlingMarksDone) {
  auto db = Db::open(":memory:");
  auto j = open_db_journal(**db);
  int64_t id = *(*j)->begin("k", json::object());
  (*j)->register_handler("k", [](journal::Journal&, const journal::Entry&) { return ok_status(); });
  auto out = (*j)->recover();
  ASSERT_TRUE(out.ok());
  EXPECT_EQ((*j)->get(id)->state, journal::State::kDone);
}

TEST(DbJournal, RejectsEmptyKind) {
  auto db = Db::open(":memory:");
  auto j = open_db_journal(**db);
  EXPECT_EQ((*j)->begin("", json::object()).error().code(), ErrorCode::kInvalidInput);
}

// Upgrade: unfinished operations of the former dm journal (table dm_journal,
// component "dm" version 1) become operations of the one journal; finished
// ones are dropped with the table.
TEST(DbJournal, DmJournalRowsMoveIntoTheOneJournal) {
  test::TempDir dir;
  auto db = Db::open(dir.file("s.db"));
  ASSERT_TRUE(db.ok());
  ASSERT_TRUE((*db)->migrate("dm", {{1, "dm journal and volume registry",
                                     "CREATE TABLE dm_journal(seq INTEGER PRIMARY KEY AUTOINCREMENT, op TEXT NOT NULL, "
                                     "volume_uuid TEXT NOT NULL, device TEXT NOT NULL, step TEXT NOT NULL, data TEXT "
                                     "NOT NULL);"
                                     "CREATE TABLE dm_volumes(uuid TEXT PRIMARY KEY, device TEXT NOT NULL, name TEXT "
                                     "NOT NULL UNIQUE, key_id TEXT NOT NULL);"}})
                  .ok());
  auto row = [&](const char* op, const char* uuid, const char* step, const char* data) {
    ASSERT_TRUE((*db)->exec("INSERT INTO dm_journal(op, volume_uuid, device, step, data) VALUES(?1, ?2, ?3, ?4, ?5)",
                            {std::string(op), std::string(uuid), std::string("/dev/") + uuid, std::string(step),
                             std::string(data)})
                    .ok());
  };
  row("rekey", "u1", "begin", R"({"token_id":0,"new_keyslot":1})");
  row("rekey", "u1", "slot-added", R"({"token_id":0,"new_keyslot":1})");
  row("rekey", "u1", "token-updated", R"({"token_id":0,"new_keyslot":1})");
  row("erase", "u2", "erase-begin", R"({"data_offset":16777216})");
  row("rekey", "u3", "begin", "{}");
  row("rekey", "u3", "done", "{}");
  auto j = open_db_journal(**db);
  ASSERT_TRUE(j.ok());
  Context ctx;
  ctx.db = db->get();
  ctx.journal = j->get();
  ctx.config_path = dir.file("storcrypt.conf");  // no at-rest.json beside it
  Dispatcher d;
  ASSERT_TRUE(register_volume_methods(d, ctx).ok());
  auto pend = (*j)->pending();
  ASSERT_TRUE(pend.ok()) << pend.error().to_string();
  ASSERT_EQ(pend->size(), 2u);
  EXPECT_EQ((*pend)[0].kind, "volume.rekey");
  EXPECT_EQ((*pend)[0].payload["uuid"], "u1");
  EXPECT_EQ((*pend)[0].payload["device"], "/dev/u1");
  EXPECT_EQ((*pend)[0].payload["new_keyslot"], 1);
  EXPECT_EQ((*pend)[0].steps, (std::vector<std::string>{"slot-added", "token-updated"}));
  EXPECT_EQ((*pend)[1].kind, "volume.erase");
  EXPECT_EQ((*pend)[1].payload["data_offset"], 16777216);
  EXPECT_TRUE((*pend)[1].steps.empty());
  EXPECT_EQ((*pend)[1].note, "carried over from the dm journal");
  EXPECT_FALSE((*db)->query("SELECT 1 FROM dm_journal").ok()) << "the old table is gone";
  // A new step lands after the carried-over ones.
  ASSERT_TRUE((*j)->step((*pend)[0].id, "provider-committed").ok());
  EXPECT_EQ((*j)->get((*pend)[0].id)->last_step(), "provider-committed");
}

}  // namespace
}  // namespace storcrypt::controller
