// storcrypt controller: the operation journal.
//
// A multi-step change (volume rekey, key migration, erase, partnership switch)
// records its intent before touching anything:
//
//   auto id = journal.begin("volume.rekey", {{"volume", "v1"}});   // intent
//   ... do step 1 (idempotent) ...;  journal.step(*id, "new-keyslot-added");
//   ... do step 2 (idempotent) ...;  journal.step(*id, "old-keyslot-removed");
//   journal.finish(*id);
//
// On start-up storcryptd calls recover(): every operation still "running" is
// handed to the resume handler registered for its kind, which sees the payload
// and the steps already completed and either completes the remaining steps or
// undoes the completed ones (calling rolled_back(id)). Handlers must be
// idempotent: the daemon may die inside a handler and run it again.
//
// Fault injection: when the environment variable STORCRYPT_FAULT_AFTER_STEP
// names a step ("volume.rekey:new-keyslot-added" or just the step name), the
// process exits immediately after that step is durably recorded, so tests can
// kill the daemon at every step.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "storcrypt/common/result.h"
#include "storcrypt/controller/db.h"

namespace storcrypt::controller {

enum class JournalState { kRunning, kDone, kRolledBack, kFailed };
std::string_view journal_state_name(JournalState s);

struct JournalEntry {
  int64_t id = 0;
  std::string kind;
  nlohmann::json payload;
  JournalState state = JournalState::kRunning;
  std::vector<std::string> steps;  ///< completed steps, in order
  int64_t created = 0;             ///< unix seconds
  int64_t updated = 0;
  std::string note;  ///< why it failed / was rolled back

  bool has_step(std::string_view name) const;
};

class Journal;
/// Resume or roll back one unfinished operation. Return ok when the operation
/// is settled (finish() or rolled_back() called, or nothing left to do).
using ResumeHandler = std::function<Status(Journal&, const JournalEntry&)>;

/// Outcome of recover() for one operation.
struct RecoveryOutcome {
  int64_t id;
  std::string kind;
  std::string outcome;  ///< "done", "rolled-back", "failed", "no-handler"
  std::string detail;   ///< error text for failed / no-handler
};

class Journal {
 public:
  /// Creates its tables (component "journal") on first use.
  static Result<std::unique_ptr<Journal>> create(Db& db);

  /// Record intent. Returns the operation id.
  Result<int64_t> begin(std::string_view kind, const nlohmann::json& payload);
  /// Record that a step completed (durable before returning).
  Status step(int64_t id, std::string_view step_name);
  /// The operation completed.
  Status finish(int64_t id);
  /// The operation was undone (by the caller or a resume handler).
  Status rolled_back(int64_t id, std::string_view why);
  /// The operation cannot be completed or undone automatically.
  Status fail(int64_t id, std::string_view why);

  Result<JournalEntry> get(int64_t id);
  /// Operations in state running (pending_only) or all, newest first, at most limit.
  Result<std::vector<JournalEntry>> list(bool pending_only, int limit = 100);

  /// Register the handler for a kind (replaces an earlier one).
  void register_handler(std::string kind, ResumeHandler handler);
  bool has_handler(const std::string& kind) const { return handlers_.count(kind) != 0; }

  /// Settle every running operation, oldest first. Never stops early: one
  /// failing handler marks its operation failed and recovery continues.
  Result<std::vector<RecoveryOutcome>> recover();

 private:
  explicit Journal(Db& db) : db_(db) {}
  Status set_state(int64_t id, JournalState s, std::string_view note);
  Result<JournalEntry> load(const DbRow& row);
  void maybe_fault(std::string_view kind, std::string_view step);

  Db& db_;
  std::map<std::string, ResumeHandler> handlers_;
};

}  // namespace storcrypt::controller
