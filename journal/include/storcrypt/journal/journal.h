// storcrypt: the one operation journal.
//
// Every multi-step change that must survive a crash (volume create, rekey and
// erase in dm/, SED enable and access-key rotation in controller/) records
// its intent before it touches anything, and each step after it took effect,
// durably, before the next step starts:
//
//   auto id = journal.begin("volume.rekey", payload);   // intent, "running"
//   ... step 1 (idempotent) ...;  journal.step(*id, "slot-added");
//   ... step 2 (idempotent) ...;  journal.step(*id, "token-updated");
//   journal.finish(*id);                                 // "done"
//
// After a crash, recover() hands every operation still running to the
// resume handler registered for its kind. A handler sees the payload and the
// completed steps and completes the rest (finish) or undoes what was done
// (rolled_back). Handlers are idempotent: the process may die inside one and
// run it again. A handler that cannot settle its operation now (a key
// medium is missing) calls defer(): the operation stays running for the next
// recover(); any other handler error marks the operation failed.
//
// The journal is storage-agnostic: a Store keeps the records (FileStore: one
// JSON-lines file replaced atomically; MemoryStore: tests; the daemon keeps
// them in its SQLite state database, see controller/). Payloads never carry
// key material.
//
// Test-only pause hook (crash tests kill the process from outside):
//   STORCRYPT_PAUSE_AT=<kind>:<point>[,<kind>:<point>...]
// When an operation reaches a named point the process announces it and
// blocks in pause(2) until it is killed. Points are the journal's own records
// ("begin" after the intent, every step name after the step, "done" after
// finish, "rolled-back" after rolled_back) and the points an operation names
// between an action and its record (point()). The announcement is the line
// "<kind>:<point>\n" written to the file named by STORCRYPT_PAUSE_FILE
// (created 0600, fsync'ed) or, without it, the stderr line
// "storcrypt: paused at <kind>:<point> (STORCRYPT_PAUSE_AT)". The process
// never exits by itself: the test decides how it dies (kill -9).
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "storcrypt/common/result.h"

namespace storcrypt::journal {

enum class State { kRunning, kDone, kRolledBack, kFailed };
std::string_view state_name(State s);
/// "running" | "done" | "rolled-back" | "failed"; nullopt for anything else.
std::optional<State> parse_state(std::string_view s);

/// One operation as the store keeps it (payload as JSON text).
struct Record {
  std::int64_t id = 0;
  std::string kind;
  std::string payload;  ///< JSON object text
  State state = State::kRunning;
  std::vector<std::string> steps;  ///< completed steps, in order, each once
  std::int64_t created = 0;        ///< unix seconds
  std::int64_t updated = 0;
  std::string note;  ///< why it failed / was rolled back / is deferred
};

/// Durable storage of the records. Every call is durable when it returns and
/// atomic (all of it or none of it). Called with the Journal's lock held.
class Store {
 public:
  virtual ~Store() = default;
  /// Store a new record; assigns and returns its id (strictly increasing).
  virtual Result<std::int64_t> insert(const Record& r) = 0;
  /// Replace the stored record with the same id (state, steps, note, updated).
  virtual Status update(const Record& r) = 0;
  /// kNotFound when there is no such record.
  virtual Result<Record> get(std::int64_t id) = 0;
  /// Records in id order, oldest first (only the running ones when asked).
  virtual Result<std::vector<Record>> list(bool running_only) = 0;
  /// Forget settled records except the newest `keep` of them.
  virtual Status prune(std::size_t keep) = 0;
};

/// A JSON-lines file (one record per line), replaced as a whole on every
/// change (write_file_atomic: temp file 0600, fsync, rename, fsync directory):
/// a crash leaves the old or the new file, never a torn line. A line that is
/// not a record is an error, never skipped.
class FileStore final : public Store {
 public:
  explicit FileStore(std::filesystem::path path) : path_(std::move(path)) {}
  Result<std::int64_t> insert(const Record& r) override;
  Status update(const Record& r) override;
  Result<Record> get(std::int64_t id) override;
  Result<std::vector<Record>> list(bool running_only) override;
  Status prune(std::size_t keep) override;
  const std::filesystem::path& path() const { return path_; }

 private:
  Result<std::vector<Record>> read_all();
  Status write_all(const std::vector<Record>& all);
  std::filesystem::path path_;
};

/// In memory (tests, dry runs).
class MemoryStore final : public Store {
 public:
  Result<std::int64_t> insert(const Record& r) override;
  Status update(const Record& r) override;
  Result<Record> get(std::int64_t id) override;
  Result<std::vector<Record>> list(bool running_only) override;
  Status prune(std::size_t keep) override;

 private:
  std::vector<Record> records_;
  std::int64_t next_ = 1;
};

/// One operation as callers see it.
struct Entry {
  std::int64_t id = 0;
  std::string kind;
  nlohmann::json payload;
  State state = State::kRunning;
  std::vector<std::string> steps;
  std::int64_t created = 0;
  std::int64_t updated = 0;
  std::string note;

  bool has_step(std::string_view name) const;
  /// The last completed step; "begin" when none completed yet.
  std::string last_step() const { return steps.empty() ? "begin" : steps.back(); }
};

class Journal;
/// Resume or roll back one unfinished operation (see the header comment).
using ResumeHandler = std::function<Status(Journal&, const Entry&)>;

/// Outcome of recover() for one operation.
struct RecoveryOutcome {
  std::int64_t id = 0;
  std::string kind;
  std::string outcome;  ///< "done", "rolled-back", "failed", "deferred", "no-handler"
  std::string detail;   ///< error text for failed / deferred / no-handler
};

struct JournalOptions {
  /// Settled operations kept (newest first) for `list`; older ones are pruned.
  std::size_t keep_settled = 200;
};

/// Thread-safe: every call takes one lock (handlers run without it).
class Journal {
 public:
  explicit Journal(std::unique_ptr<Store> store, JournalOptions opt = {});

  /// Record intent. Returns the operation id. Pause point "<kind>:begin".
  Result<std::int64_t> begin(std::string_view kind, const nlohmann::json& payload);
  /// Record that a step completed (durable before returning; a repeated step
  /// is not recorded twice). Pause point "<kind>:<step>".
  Status step(std::int64_t id, std::string_view step_name);
  /// A named point between an action and its record: nothing is written; the
  /// pause hook and the stop hook may stop the operation here.
  Status point(std::int64_t id, std::string_view name);
  /// The operation completed (idempotent). Pause point "<kind>:done".
  Status finish(std::int64_t id);
  /// The operation was undone (idempotent). Pause point "<kind>:rolled-back".
  Status rolled_back(std::int64_t id, std::string_view why);
  /// The operation cannot be completed or undone automatically.
  Status fail(std::int64_t id, std::string_view why);
  /// From a resume handler: leave the operation running (recorded with
  /// `why`) for a later recover(); the handler then returns its error.
  Status defer(std::int64_t id, std::string_view why);

  Result<Entry> get(std::int64_t id);
  /// Operations in state running (pending_only) or all, newest first, at most limit.
  Result<std::vector<Entry>> list(bool pending_only, int limit = 100);
  /// Running operations of the given kinds (all kinds when empty), oldest first.
  Result<std::vector<Entry>> pending(const std::set<std::string>& kinds = {});

  /// Register the handler for a kind (replaces an earlier one).
  void register_handler(std::string kind, ResumeHandler handler);
  bool has_handler(const std::string& kind) const;

  /// Settle every running operation (of `kinds`, all when empty), oldest
  /// first. Never stops early: one failing handler marks its operation
  /// failed (or leaves it deferred) and recovery continues.
  Result<std::vector<RecoveryOutcome>> recover(const std::set<std::string>& kinds = {});

  /// In-process fault injection for unit tests: called at every pause point
  /// (begin, steps, points, done, rolled-back) of every operation; returning
  /// true stops the operation right there as if the process died: the call
  /// returns an error (kInternal, "injected crash at <kind>:<point>") after
  /// the record, if any, is durable.
  void set_stop_hook(std::function<bool(std::string_view kind, std::string_view point)> hook);

 private:
  Status reached(std::string_view kind, std::string_view point);
  Status settle(std::int64_t id, State s, std::string_view note);
  Result<Entry> to_entry(const Record& r) const;

  mutable std::mutex mu_;
  std::unique_ptr<Store> store_;
  JournalOptions opt_;
  std::map<std::string, ResumeHandler> handlers_;
  std::set<std::int64_t> deferred_;
  std::function<bool(std::string_view, std::string_view)> stop_hook_;
  std::vector<std::string> pause_at_;  ///< STORCRYPT_PAUSE_AT, read once
  std::string pause_file_;             ///< STORCRYPT_PAUSE_FILE
};

/// The test-only pause hook for points outside any journal operation (e.g.
/// "keymedia:medium-written" between two key media writes): pauses the
/// process forever when STORCRYPT_PAUSE_AT names "<kind>:<point>".
void pause_if_requested(std::string_view kind, std::string_view point);

}  // namespace storcrypt::journal
