#include "storcrypt/controller/journal_store.h"

namespace storcrypt::controller {
namespace {

const std::vector<Migration> kJournalMigrations = {
    {1, "journal operations and steps",
     "CREATE TABLE journal_ops ("
     " id INTEGER PRIMARY KEY AUTOINCREMENT, kind TEXT NOT NULL, payload TEXT NOT NULL,"
     " state TEXT NOT NULL CHECK (state IN ('running','done','rolled-back','failed')),"
     " created INTEGER NOT NULL, updated INTEGER NOT NULL, note TEXT NOT NULL DEFAULT '');"
     "CREATE INDEX journal_ops_state ON journal_ops(state);"
     "CREATE TABLE journal_steps ("
     " op_id INTEGER NOT NULL REFERENCES journal_ops(id) ON DELETE CASCADE,"
     " seq INTEGER NOT NULL, name TEXT NOT NULL, time INTEGER NOT NULL,"
     " PRIMARY KEY (op_id, seq), UNIQUE (op_id, name));"},
};

constexpr const char* kColumns = "SELECT id, kind, payload, state, created, updated, note FROM journal_ops ";

class DbStore final : public journal::Store {
 public:
  explicit DbStore(Db& db) : db_(db) {}

  Result<std::int64_t> insert(const journal::Record& r) override {
    std::int64_t id = 0;
    STORCRYPT_TRY(db_.transaction([&]() -> Status {
      STORCRYPT_TRY(db_.exec(
          "INSERT INTO journal_ops(kind, payload, state, created, updated, note) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
          {r.kind, r.payload, std::string(journal::state_name(r.state)), r.created, r.updated, r.note}));
      id = db_.last_insert_id();
      return write_steps(id, r);
    }));
    return id;
  }

  Status update(const journal::Record& r) override {
    return db_.transaction([&]() -> Status {
      STORCRYPT_ASSIGN_OR_RETURN(auto rows, db_.query("SELECT 1 FROM journal_ops WHERE id = ?1", {r.id}));
      if (rows.empty())
        return Error(ErrorCode::kNotFound, "journal operation " + std::to_string(r.id) + " does not exist");
      STORCRYPT_TRY(db_.exec("UPDATE journal_ops SET state = ?2, updated = ?3, note = ?4 WHERE id = ?1",
                             {r.id, std::string(journal::state_name(r.state)), r.updated, r.note}));
      return write_steps(r.id, r);
    });
  }

  Result<journal::Record> get(std::int64_t id) override {
    STORCRYPT_ASSIGN_OR_RETURN(auto rows, db_.query(std::string(kColumns) + "WHERE id = ?1", {id}));
    if (rows.empty())
      return Error(ErrorCode::kNotFound, "journal operation " + std::to_string(id) + " does not exist",
                   "list operations with `storcrypt system status`", "xJournalOperationNotFound");
    return load(rows[0]);
  }

  Result<std::vector<journal::Record>> list(bool running_only) override {
    STORCRYPT_ASSIGN_OR_RETURN(
        auto rows, db_.query(std::string(kColumns) + (running_only ? "WHERE state = 'running' " : "") + "ORDER BY id"));
    std::vector<journal::Record> out;
    for (const auto& row : rows) {
      STORCRYPT_ASSIGN_OR_RETURN(auto r, load(row));
      out.push_back(std::move(r));
    }
    return out;
  }

  Status prune(std::size_t keep) override {
    return db_.transaction([&]() -> Status {
      const std::string doomed =
          "SELECT id FROM journal_ops WHERE state != 'running' ORDER BY id DESC LIMIT -1 OFFSET ?1";
      STORCRYPT_TRY(db_.exec("DELETE FROM journal_steps WHERE op_id IN (" + doomed + ")",
                             {static_cast<std::int64_t>(keep)}));
      return db_.exec("DELETE FROM journal_ops WHERE id IN (" + doomed + ")", {static_cast<std::int64_t>(keep)});
    });
  }

 private:
  // Steps are only ever appended: insert those not stored yet (UNIQUE name),
  // in order, each after the last one stored.
  Status write_steps(std::int64_t id, const journal::Record& r) {
    for (const auto& name : r.steps) {
      STORCRYPT_TRY(
          db_.exec("INSERT OR IGNORE INTO journal_steps(op_id, seq, name, time) "
                   "VALUES (?1, (SELECT COALESCE(MAX(seq), 0) + 1 FROM journal_steps WHERE op_id = ?1), ?2, ?3)",
                   {id, name, r.updated}));
    }
    return ok_status();
  }

  Result<journal::Record> load(const DbRow& row) {
    journal::Record r;
    r.id = row.integer(0);
    r.kind = row.text(1);
    r.payload = row.text(2);
    auto st = journal::parse_state(row.text(3));
    if (!st)
      return Error(ErrorCode::kInternal,
                   "journal operation " + std::to_string(r.id) + " has an unknown state '" + row.text(3) + "'");
    r.state = *st;
    r.created = row.integer(4);
    r.updated = row.integer(5);
    r.note = row.text(6);
    STORCRYPT_ASSIGN_OR_RETURN(auto steps,
                               db_.query("SELECT name FROM journal_steps WHERE op_id = ?1 ORDER BY seq", {r.id}));
    for (const auto& s : steps) r.steps.push_back(s.text(0));
    return r;
  }

  Db& db_;
};

}  // namespace

Result<std::unique_ptr<journal::Store>> make_db_journal_store(Db& db) {
  STORCRYPT_TRY(db.migrate("journal", kJournalMigrations));
  return std::unique_ptr<journal::Store>(std::make_unique<DbStore>(db));
}

Result<std::unique_ptr<journal::Journal>> open_db_journal(Db& db) {
  STORCRYPT_ASSIGN_OR_RETURN(auto store, make_db_journal_store(db));
  return std::make_unique<journal::Journal>(std::move(store));
}

}  // namespace storcrypt::controller
