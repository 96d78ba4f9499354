#include "storcrypt/controller/journal.h"

#include <unistd.h>

#include <cstdlib>
#include <ctime>

namespace storcrypt::controller {

using nlohmann::json;

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

int64_t now() { return static_cast<int64_t>(std::time(nullptr)); }

JournalState parse_state(const std::string& s) {
  if (s == "done") return JournalState::kDone;
  if (s == "rolled-back") return JournalState::kRolledBack;
  if (s == "failed") return JournalState::kFailed;
  return JournalState::kRunning;
}

Error unknown_op(int64_t id) {
  return Error(ErrorCode::kNotFound, "journal operation " + std::to_string(id) + " does not exist",
               "list operations with `storcrypt system status`", "xJournalOperationNotFound");
}

}  // namespace

std::string_view journal_state_name(JournalState s) {
  switch (s) {
    case JournalState::kRunning:
      return "running";
    case JournalState::kDone:
      return "done";
    case JournalState::kRolledBack:
      return "rolled-back";
    case JournalState::kFailed:
      return "failed";
  }
  return "running";
}

bool JournalEntry::has_step(std::string_view name) const {
  for (const auto& s : steps) {
    if (s == name) return true;
  }
  return false;
}

Result<std::unique_ptr<Journal>> Journal::create(Db& db) {
  STORCRYPT_TRY(db.migrate("journal", kJournalMigrations));
  return std::unique_ptr<Journal>(new Journal(db));
}

Result<int64_t> Journal::begin(std::string_view kind, const json& payload) {
  if (kind.empty()) return Error(ErrorCode::kInvalidInput, "journal operation kind is empty");
  int64_t id = 0;
  STORCRYPT_TRY(db_.transaction([&]() -> Status {
    STORCRYPT_TRY(
        db_.exec("INSERT INTO journal_ops(kind, payload, state, created, updated) VALUES (?1, ?2, 'running', ?3, ?3)",
                 {std::string(kind), payload.dump(), now()}));
    id = db_.last_insert_id();
    return ok_status();
  }));
  return id;
}

Status Journal::step(int64_t id, std::string_view step_name) {
  std::string kind;
  STORCRYPT_TRY(db_.transaction([&]() -> Status {
    STORCRYPT_ASSIGN_OR_RETURN(auto rows, db_.query("SELECT state, kind FROM journal_ops WHERE id = ?1", {id}));
    if (rows.empty()) return unknown_op(id);
    if (rows[0].text(0) != "running") {
      return Error(ErrorCode::kConflict,
                   "journal operation " + std::to_string(id) + " is " + rows[0].text(0) + ", not running");
    }
    kind = rows[0].text(1);
    // A step recorded twice (a resumed handler repeating work) is not an error.
    STORCRYPT_TRY(
        db_.exec("INSERT OR IGNORE INTO journal_steps(op_id, seq, name, time) "
                 "VALUES (?1, (SELECT COALESCE(MAX(seq), 0) + 1 FROM journal_steps WHERE op_id = ?1), ?2, ?3)",
                 {id, std::string(step_name), now()}));
    return db_.exec("UPDATE journal_ops SET updated = ?2 WHERE id = ?1", {id, now()});
  }));
  maybe_fault(kind, step_name);
  return ok_status();
}

void Journal::maybe_fault(std::string_view kind, std::string_view step) {
  const char* f = std::getenv("STORCRYPT_FAULT_AFTER_STEP");
  if (f == nullptr || *f == '\0') return;
  std::string want(f);
  if (want == step || want == std::string(kind) + ":" + std::string(step)) ::_exit(86);
}

Status Journal::set_state(int64_t id, JournalState s, std::string_view note) {
  return db_.transaction([&]() -> Status {
    STORCRYPT_ASSIGN_OR_RETURN(auto rows, db_.query("SELECT state FROM journal_ops WHERE id = ?1", {id}));
    if (rows.empty()) return unknown_op(id);
    JournalState cur = parse_state(rows[0].text(0));
    if (cur == s) return ok_status();  // idempotent
    if (cur != JournalState::kRunning) {
      return Error(ErrorCode::kConflict,
                   "journal operation " + std::to_string(id) + " is already " + std::string(journal_state_name(cur)));
    }
    return db_.exec("UPDATE journal_ops SET state = ?2, updated = ?3, note = ?4 WHERE id = ?1",
                    {id, std::string(journal_state_name(s)), now(), std::string(note)});
  });
}

Status Journal::finish(int64_t id) { return set_state(id, JournalState::kDone, ""); }
Status Journal::rolled_back(int64_t id, std::string_view why) { return set_state(id, JournalState::kRolledBack, why); }
Status Journal::fail(int64_t id, std::string_view why) { return set_state(id, JournalState::kFailed, why); }

Result<JournalEntry> Journal::load(const DbRow& row) {
  JournalEntry e;
  e.id = row.integer(0);
  e.kind = row.text(1);
  e.payload = json::parse(row.text(2), nullptr, /*allow_exceptions=*/false);
  if (e.payload.is_discarded()) {
    return Error(ErrorCode::kInternal, "journal operation " + std::to_string(e.id) + " has a corrupt payload");
  }
  e.state = parse_state(row.text(3));
  e.created = row.integer(4);
  e.updated = row.integer(5);
  e.note = row.text(6);
  STORCRYPT_ASSIGN_OR_RETURN(auto steps,
                             db_.query("SELECT name FROM journal_steps WHERE op_id = ?1 ORDER BY seq", {e.id}));
  for (const auto& s : steps) e.steps.push_back(s.text(0));
  return e;
}

Result<JournalEntry> Journal::get(int64_t id) {
  STORCRYPT_ASSIGN_OR_RETURN(
      auto rows,
      db_.query("SELECT id, kind, payload, state, created, updated, note FROM journal_ops WHERE id = ?1", {id}));
  if (rows.empty()) return unknown_op(id);
  return load(rows[0]);
}

Result<std::vector<JournalEntry>> Journal::list(bool pending_only, int limit) {
  STORCRYPT_ASSIGN_OR_RETURN(
      auto rows, db_.query(std::string("SELECT id, kind, payload, state, created, updated, note FROM journal_ops ") +
                               (pending_only ? "WHERE state = 'running' " : "") + "ORDER BY id DESC LIMIT ?1",
                           {static_cast<int64_t>(limit)}));
  std::vector<JournalEntry> out;
  for (const auto& r : rows) {
    STORCRYPT_ASSIGN_OR_RETURN(auto e, load(r));
    out.push_back(std::move(e));
  }
  return out;
}

void Journal::register_handler(std::string kind, ResumeHandler handler) {
  handlers_[std::move(kind)] = std::move(handler);
}

Result<std::vector<RecoveryOutcome>> Journal::recover() {
  STORCRYPT_ASSIGN_OR_RETURN(auto rows,
                             db_.query("SELECT id, kind, payload, state, created, updated, note FROM journal_ops "
                                       "WHERE state = 'running' ORDER BY id"));
  std::vector<RecoveryOutcome> out;
  for (const auto& r : rows) {
    RecoveryOutcome o{r.integer(0), r.text(1), "", ""};
    auto entry = load(r);
    if (!entry.ok()) {
      o.outcome = "failed";
      o.detail = entry.error().message();
      (void)fail(o.id, o.detail);
      out.push_back(std::move(o));
      continue;
    }
    auto h = handlers_.find(entry->kind);
    if (h == handlers_.end()) {
      // Leave it running: a later storcryptd that knows the kind can settle it.
      o.outcome = "no-handler";
      o.detail = "no resume handler is registered for operation kind '" + entry->kind + "'";
      out.push_back(std::move(o));
      continue;
    }
    Status st = h->second(*this, *entry);
    if (!st.ok()) {
      o.outcome = "failed";
      o.detail = st.error().to_string();
      (void)fail(o.id, o.detail);
      out.push_back(std::move(o));
      continue;
    }
    auto after = get(o.id);
    if (after.ok() && after->state == JournalState::kRunning) {
      // The handler completed the remaining work without saying so.
      (void)finish(o.id);
      o.outcome = "done";
    } else if (after.ok()) {
      o.outcome = std::string(journal_state_name(after->state));
    } else {
      o.outcome = "failed";
      o.detail = after.error().message();
    }
    out.push_back(std::move(o));
  }
  return out;
}

}  // namespace storcrypt::controller
