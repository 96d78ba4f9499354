#include "storcrypt/controller/db.h"

#include <gtest/gtest.h>

#include "temp_dir.h"

namespace storcrypt::controller {
namespace {

TEST(Db, OpensInWalModeWithForeignKeys) {
  test::TempDir dir;
  auto db = Db::open(dir.file("s.db"));
  ASSERT_TRUE(db.ok()) << db.error().to_string();
  auto mode = (*db)->query("PRAGMA journal_mode");
  ASSERT_TRUE(mode.ok());
  EXPECT_EQ((*mode)[0].text(0), "wal");
  auto fk = (*db)->query("PRAGMA foreign_keys");
  ASSERT_TRUE(fk.ok());
  EXPECT_EQ((*fk)[0].integer(0), 1);
  EXPECT_TRUE((*db)->integrity_check().ok());
}

TEST(Db, MigrationsApplyOncePerComponentInOrder) {
  test::TempDir dir;
  std::vector<Migration> m = {{2, "add column", "ALTER TABLE t ADD COLUMN b TEXT"},
                              {1, "create t", "CREATE TABLE t(a INTEGER)"}};
  {
    auto db = Db::open(dir.file("s.db"));
    ASSERT_TRUE(db.ok());
    ASSERT_TRUE((*db)->migrate("demo", m).ok());
    EXPECT_EQ(*(*db)->schema_version("demo"), 2);
    EXPECT_EQ(*(*db)->schema_version("other"), 0);
  }
  auto db = Db::open(dir.file("s.db"));
  ASSERT_TRUE(db.ok());
  // Re-running is a no-op (the ALTER would fail if applied twice).
  ASSERT_TRUE((*db)->migrate("demo", m).ok());
  m.push_back({3, "index", "CREATE INDEX t_a ON t(a)"});
  ASSERT_TRUE((*db)->migrate("demo", m).ok());
  EXPECT_EQ(*(*db)->schema_version("demo"), 3);
  auto rows = (*db)->query("SELECT COUNT(*) FROM schema_migrations WHERE component = 'demo'");
  EXPECT_EQ((*rows)[0].integer(0), 3);
}

TEST(Db, FailedMigrationRollsBackAndNamesTheMigration) {
  auto db = Db::open(":memory:");
  ASSERT_TRUE(db.ok());
  std::vector<Migration> m = {{1, "broken", "CREATE TABLE x(a); INSERT INTO nosuch VALUES (1)"}};
  Status st = (*db)->migrate("demo", m);
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.error().message().find("demo/1 (broken)"), std::string::npos) << st.error().message();
  EXPECT_EQ(*(*db)->schema_version("demo"), 0);
  EXPECT_FALSE((*db)->query("SELECT * FROM x").ok());  // table creation was rolled back
}

TEST(Db, RefusesSchemaNewerThanKnown) {
  auto db = Db::open(":memory:");
  ASSERT_TRUE(db.ok());
  ASSERT_TRUE((*db)->migrate("demo", {{1, "a", "CREATE TABLE a(x)"}, {2, "b", "CREATE TABLE b(x)"}}).ok());
  Status st = (*db)->migrate("demo", {{1, "a", "CREATE TABLE a(x)"}});
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.error().code(), ErrorCode::kConflict);
}

TEST(Db, NestedTransactionRollsBackOnlyInnerPart) {
  auto db = Db::open(":memory:");
  ASSERT_TRUE(db.ok());
  Db& d = **db;
  ASSERT_TRUE(d.exec("CREATE TABLE t(a INTEGER)").ok());
  Status st = d.transaction([&]() -> Status {
    STORCRYPT_TRY(d.exec("INSERT INTO t VALUES (1)"));
    Status inner = d.transaction([&]() -> Status {
      STORCRYPT_TRY(d.exec("INSERT INTO t VALUES (2)"));
      return Error(ErrorCode::kConflict, "inner fails");
    });
    EXPECT_FALSE(inner.ok());
    return ok_status();
  });
  ASSERT_TRUE(st.ok());
  auto rows = d.query("SELECT a FROM t ORDER BY a");
  ASSERT_EQ(rows->size(), 1u);
  EXPECT_EQ((*rows)[0].integer(0), 1);
}

TEST(Db, ForeignKeysAreEnforced) {
  auto db = Db::open(":memory:");
  ASSERT_TRUE(db.ok());
  Db& d = **db;
  ASSERT_TRUE(d.exec("CREATE TABLE p(id INTEGER PRIMARY KEY); CREATE TABLE c(p INTEGER REFERENCES p(id))").ok());
  Status st = d.exec("INSERT INTO c VALUES (42)");
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.error().code(), ErrorCode::kConflict);
}

}  // namespace
}  // namespace storcrypt::controller
