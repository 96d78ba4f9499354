#include "storcrypt/controller/db.h"

#include <algorithm>
#include <ctime>

namespace storcrypt::controller {

namespace {

struct StmtFree {
  void operator()(sqlite3_stmt* s) const { sqlite3_finalize(s); }
};
using Stmt = std::unique_ptr<sqlite3_stmt, StmtFree>;

ErrorCode code_for_sqlite(int rc) {
  switch (rc & 0xff) {
    case SQLITE_CONSTRAINT:
      return ErrorCode::kConflict;
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
      return ErrorCode::kUnavailable;
    case SQLITE_PERM:
    case SQLITE_READONLY:
    case SQLITE_AUTH:
    case SQLITE_CANTOPEN:
      return ErrorCode::kPermission;
    default:
      return ErrorCode::kInternal;
  }
}

}  // namespace

int64_t DbRow::integer(size_t i) const {
  if (i >= cols.size()) return 0;
  if (const auto* v = std::get_if<int64_t>(&cols[i])) return *v;
  if (const auto* d = std::get_if<double>(&cols[i])) return static_cast<int64_t>(*d);
  return 0;
}

std::string DbRow::text(size_t i) const {
  if (i >= cols.size()) return {};
  if (const auto* s = std::get_if<std::string>(&cols[i])) return *s;
  if (const auto* v = std::get_if<int64_t>(&cols[i])) return std::to_string(*v);
  return {};
}

bool DbRow::is_null(size_t i) const { return i >= cols.size() || std::holds_alternative<std::nullptr_t>(cols[i]); }

Result<std::unique_ptr<Db>> Db::open(const std::string& path) {
  sqlite3* raw = nullptr;
  int rc =
      sqlite3_open_v2(path.c_str(), &raw, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX, nullptr);
  if (rc != SQLITE_OK) {
    std::string msg = raw ? sqlite3_errmsg(raw) : sqlite3_errstr(rc);
    sqlite3_close(raw);
    return Error(code_for_sqlite(rc), "opening state database " + path + ": " + msg,
                 "check that the state directory exists and is writable by storcryptd");
  }
  std::unique_ptr<Db> db(new Db(raw, path));
  sqlite3_busy_timeout(raw, 5000);
  sqlite3_extended_result_codes(raw, 1);
  // WAL lets readers run beside the single writer; FULL fsyncs the WAL on
  // every commit so acknowledged changes survive a power loss, not only a crash.
  if (path != ":memory:") {
    auto mode = db->query("PRAGMA journal_mode=WAL");
    if (!mode.ok()) return std::move(mode).error();
    if (mode->empty() || (*mode)[0].text(0) != "wal") {
      return Error(ErrorCode::kInternal, "state database " + path + " refused WAL journal mode",
                   "put the state directory on a local filesystem that supports shared memory (not NFS)");
    }
  }
  STORCRYPT_TRY(db->exec("PRAGMA synchronous=FULL"));
  STORCRYPT_TRY(db->exec("PRAGMA foreign_keys=ON"));
  auto fk = db->query("PRAGMA foreign_keys");
  if (!fk.ok() || fk->empty() || fk->front().integer(0) != 1) {
    return Error(ErrorCode::kInternal, "SQLite build does not enforce foreign keys");
  }
  STORCRYPT_TRY(
      db->exec("CREATE TABLE IF NOT EXISTS schema_migrations ("
               " component TEXT NOT NULL, version INTEGER NOT NULL, name TEXT NOT NULL,"
               " applied_at INTEGER NOT NULL, PRIMARY KEY (component, version))"));
  return db;
}

Db::~Db() { sqlite3_close_v2(db_); }

Error Db::sqlite_error(std::string_view what) const {
  int rc = sqlite3_extended_errcode(db_);
  return Error(code_for_sqlite(rc), std::string(what) + ": " + sqlite3_errmsg(db_));
}

namespace {
Status bind_all(sqlite3* db, sqlite3_stmt* st, const std::vector<DbValue>& params) {
  for (size_t i = 0; i < params.size(); ++i) {
    int idx = static_cast<int>(i + 1);
    int rc = std::visit(
        [&](const auto& v) -> int {
          using T = std::decay_t<decltype(v)>;
          if constexpr (std::is_same_v<T, std::nullptr_t>) {
            return sqlite3_bind_null(st, idx);
          } else if constexpr (std::is_same_v<T, int64_t>) {
            return sqlite3_bind_int64(st, idx, v);
          } else if constexpr (std::is_same_v<T, double>) {
            return sqlite3_bind_double(st, idx, v);
          } else {
            return sqlite3_bind_text(st, idx, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT);
          }
        },
        params[i]);
    if (rc != SQLITE_OK) return Error(ErrorCode::kInternal, std::string("binding parameter: ") + sqlite3_errmsg(db));
  }
  return ok_status();
}
}  // namespace

Status Db::exec(std::string_view sql, const std::vector<DbValue>& params) {
  auto rows = query(sql, params);
  if (!rows.ok()) return std::move(rows).error();
  return ok_status();
}

Result<std::vector<DbRow>> Db::query(std::string_view sql, const std::vector<DbValue>& params) {
  std::lock_guard lock(mu_);
  std::vector<DbRow> out;
  const char* tail = sql.data();
  const char* end = sql.data() + sql.size();
  // Several ';'-separated statements are allowed (migrations); parameters bind
  // to the first one only.
  bool first = true;
  while (tail < end) {
    sqlite3_stmt* raw = nullptr;
    if (sqlite3_prepare_v2(db_, tail, static_cast<int>(end - tail), &raw, &tail) != SQLITE_OK) {
      return sqlite_error("preparing statement");
    }
    if (raw == nullptr) break;  // only whitespace or comments left
    Stmt st(raw);
    if (first) STORCRYPT_TRY(bind_all(db_, st.get(), params));
    first = false;
    for (;;) {
      int rc = sqlite3_step(st.get());
      if (rc == SQLITE_DONE) break;
      if (rc != SQLITE_ROW) return sqlite_error("executing statement");
      DbRow row;
      int n = sqlite3_column_count(st.get());
      row.cols.reserve(static_cast<size_t>(n));
      for (int c = 0; c < n; ++c) {
        switch (sqlite3_column_type(st.get(), c)) {
          case SQLITE_INTEGER:
            row.cols.emplace_back(static_cast<int64_t>(sqlite3_column_int64(st.get(), c)));
            break;
          case SQLITE_FLOAT:
            row.cols.emplace_back(sqlite3_column_double(st.get(), c));
            break;
          case SQLITE_NULL:
            row.cols.emplace_back(nullptr);
            break;
          default: {
            const auto* p = reinterpret_cast<const char*>(sqlite3_column_text(st.get(), c));
            row.cols.emplace_back(std::string(p ? p : "", static_cast<size_t>(sqlite3_column_bytes(st.get(), c))));
          }
        }
      }
      out.push_back(std::move(row));
    }
  }
  return out;
}

int64_t Db::last_insert_id() {
  std::lock_guard lock(mu_);
  return sqlite3_last_insert_rowid(db_);
}

int64_t Db::changes() {
  std::lock_guard lock(mu_);
  return sqlite3_changes(db_);
}

Status Db::transaction(const std::function<Status()>& fn) {
  std::lock_guard lock(mu_);
  // Nested calls become savepoints so a module may call another module's
  // transactional helper from inside its own transaction.
  const bool outer = depth_ == 0;
  const std::string sp = "sp" + std::to_string(depth_);
  STORCRYPT_TRY(exec(outer ? "BEGIN IMMEDIATE" : "SAVEPOINT " + sp));
  ++depth_;
  Status st = fn();
  --depth_;
  if (!st.ok()) {
    (void)exec(outer ? "ROLLBACK" : "ROLLBACK TO " + sp + "; RELEASE " + sp);
    return st;
  }
  Status c = exec(outer ? "COMMIT" : "RELEASE " + sp);
  if (!c.ok()) {
    (void)exec(outer ? "ROLLBACK" : "ROLLBACK TO " + sp + "; RELEASE " + sp);
    return c;
  }
  return ok_status();
}

Result<int> Db::schema_version(std::string_view component) {
  STORCRYPT_ASSIGN_OR_RETURN(
      auto rows,
      query("SELECT COALESCE(MAX(version), 0) FROM schema_migrations WHERE component = ?1", {std::string(component)}));
  return rows.empty() ? 0 : static_cast<int>(rows[0].integer(0));
}

Status Db::migrate(std::string_view component, const std::vector<Migration>& migrations) {
  std::lock_guard lock(mu_);
  STORCRYPT_ASSIGN_OR_RETURN(int current, schema_version(component));
  std::vector<const Migration*> todo;
  for (const auto& m : migrations) {
    if (m.version > current) todo.push_back(&m);
  }
  std::sort(todo.begin(), todo.end(), [](const Migration* a, const Migration* b) { return a->version < b->version; });
  int max_known = 0;
  for (const auto& m : migrations) max_known = std::max(max_known, m.version);
  if (current > max_known) {
    return Error(ErrorCode::kConflict,
                 "state database schema of '" + std::string(component) + "' is version " + std::to_string(current) +
                     ", newer than this storcryptd knows (" + std::to_string(max_known) + ")",
                 "run the storcryptd version that created this state directory, or restore a backup");
  }
  for (const Migration* m : todo) {
    Status st = transaction([&]() -> Status {
      STORCRYPT_TRY(exec(m->sql));
      return exec("INSERT INTO schema_migrations(component, version, name, applied_at) VALUES (?1, ?2, ?3, ?4)",
                  {std::string(component), static_cast<int64_t>(m->version), m->name,
                   static_cast<int64_t>(std::time(nullptr))});
    });
    if (!st.ok()) {
      return std::move(st).error().context("applying migration " + std::string(component) + "/" +
                                           std::to_string(m->version) + " (" + m->name + ")");
    }
  }
  return ok_status();
}

Status Db::integrity_check() {
  STORCRYPT_ASSIGN_OR_RETURN(auto rows, query("PRAGMA integrity_check"));
  if (rows.size() == 1 && rows[0].text(0) == "ok") return ok_status();
  std::string detail = rows.empty() ? "no result" : rows[0].text(0);
  return Error(ErrorCode::kInternal, "state database integrity check failed: " + detail,
               "stop storcryptd and restore the state directory from a backup");
}

}  // namespace storcrypt::controller
