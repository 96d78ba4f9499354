// storcrypt controller: the embedded SQLite state database.
//
// One connection per daemon, opened in WAL mode with foreign keys on and
// synchronous=FULL (an acknowledged write survives a crash of the process or
// the machine). Access is serialised by a recursive mutex: every public call
// locks it, and transaction() holds it across several calls.
//
// Schema changes are migrations owned by a *component* ("core", "volume",
// "keymedia", ...). Each component numbers its own migrations 1, 2, 3...; the
// table schema_migrations(component, version, name, applied_at) records what
// ran, so modules can add tables without touching the core schema.
#pragma once

#include <sqlite3.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "storcrypt/common/result.h"

namespace storcrypt::controller {

/// One value bound to or read from a statement.
using DbValue = std::variant<std::nullptr_t, int64_t, double, std::string>;

/// One result row: column values in select order.
struct DbRow {
  std::vector<DbValue> cols;
  int64_t integer(size_t i) const;
  std::string text(size_t i) const;
  bool is_null(size_t i) const;
};

/// One schema step of a component.
struct Migration {
  int version;       ///< 1, 2, 3... within the component
  std::string name;  ///< short description, e.g. "events table"
  std::string sql;   ///< executed in one transaction with the bookkeeping row
};

class Db {
 public:
  /// Open (creating if needed) the database file at path; ":memory:" for tests.
  static Result<std::unique_ptr<Db>> open(const std::string& path);
  ~Db();
  Db(const Db&) = delete;
  Db& operator=(const Db&) = delete;

  /// Execute one statement with positional parameters (?1, ?2...).
  Status exec(std::string_view sql, const std::vector<DbValue>& params = {});
  /// Run a query and return all rows.
  Result<std::vector<DbRow>> query(std::string_view sql, const std::vector<DbValue>& params = {});
  /// rowid of the last INSERT on this connection (call inside transaction()).
  int64_t last_insert_id();
  /// Rows changed by the last statement (call inside transaction()).
  int64_t changes();

  /// Run fn inside BEGIN IMMEDIATE ... COMMIT; rolls back when fn fails.
  Status transaction(const std::function<Status()>& fn);

  /// Apply the not-yet-applied migrations of component, in version order.
  Status migrate(std::string_view component, const std::vector<Migration>& migrations);
  /// Highest applied migration version of component (0 when none).
  Result<int> schema_version(std::string_view component);

  /// PRAGMA integrity_check; ok when it reports "ok".
  Status integrity_check();

  const std::string& path() const { return path_; }

 private:
  Db(sqlite3* db, std::string path) : db_(db), path_(std::move(path)) {}
  Error sqlite_error(std::string_view what) const;

  sqlite3* db_;
  std::string path_;
  std::recursive_mutex mu_;
  int depth_ = 0;
};

}  // namespace storcrypt::controller
