// storcrypt: the operation journal behind crash-safe rekey and erase.
//
// Every step of a multi-step volume operation is appended here *after* it
// took effect (and the intent before anything changes), durably, before the
// next step starts. After a crash, VolumeManager::resume() reads the last
// entry of each unfinished operation and finishes or rolls it back.
// The daemon backs this with SQLite; FileJournal is the standalone backing.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "storcrypt/common/result.h"

namespace storcrypt::dm {

struct JournalEntry {
  std::uint64_t seq = 0;    ///< assigned by append(), strictly increasing
  std::string op;           ///< "rekey" | "erase"
  std::string volume_uuid;  ///< LUKS UUID: identifies the operation's volume
  std::string device;       ///< block device path at the time of the operation
  std::string step;         ///< op-specific step name; "done"/"rolled-back" end an operation
  std::string data;         ///< op-specific JSON object (never key material)
};

/// True for the steps that end an operation.
bool journal_step_is_terminal(const std::string& step);

class Journal {
 public:
  virtual ~Journal() = default;
  /// Durably append; assigns e.seq. Either the whole entry is recorded or none of it.
  virtual Status append(JournalEntry& e) = 0;
  virtual Result<std::vector<JournalEntry>> entries() = 0;
  /// Drop the entries of operations that ended (terminal last step).
  virtual Status compact() = 0;
};

/// Last entry of every unfinished operation, oldest first.
Result<std::vector<JournalEntry>> pending_operations(Journal& j);

/// A JSON-lines file, replaced as a whole on every append (temp file 0600,
/// fsync, rename, fsync directory): a crash leaves the old or the new file,
/// never a torn line.
class FileJournal final : public Journal {
 public:
  explicit FileJournal(std::filesystem::path path) : path_(std::move(path)) {}
  Status append(JournalEntry& e) override;
  Result<std::vector<JournalEntry>> entries() override;
  Status compact() override;
  const std::filesystem::path& path() const { return path_; }

 private:
  Status write_all(const std::vector<JournalEntry>& all);
  std::filesystem::path path_;
};

/// In-memory journal (tests, dry runs).
class MemoryJournal final : public Journal {
 public:
  Status append(JournalEntry& e) override;
  Result<std::vector<JournalEntry>> entries() override { return entries_; }
  Status compact() override;

 private:
  std::vector<JournalEntry> entries_;
  std::uint64_t next_ = 1;
};

}  // namespace storcrypt::dm
