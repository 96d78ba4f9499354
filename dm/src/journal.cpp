#include "storcrypt/dm/journal.h"

#include <map>
#include <nlohmann/json.hpp>

#include "storcrypt/common/files.h"
#include "storcrypt/keys/key_media.h"

namespace storcrypt::dm {
namespace fs = std::filesystem;

bool journal_step_is_terminal(const std::string& step) { return step == "done" || step == "rolled-back"; }

Result<std::vector<JournalEntry>> pending_operations(Journal& j) {
  STORCRYPT_ASSIGN_OR_RETURN(auto all, j.entries());
  std::map<std::string, JournalEntry> last;  // uuid -> last entry
  for (auto& e : all) last[e.volume_uuid] = e;
  std::vector<JournalEntry> out;
  for (auto& [_, e] : last)
    if (!journal_step_is_terminal(e.step)) out.push_back(e);
  std::sort(out.begin(), out.end(), [](const JournalEntry& a, const JournalEntry& b) { return a.seq < b.seq; });
  return out;
}

namespace {
std::vector<JournalEntry> without_finished(const std::vector<JournalEntry>& all) {
  std::map<std::string, std::string> last_step;
  for (auto& e : all) last_step[e.volume_uuid] = e.step;
  std::vector<JournalEntry> keep;
  for (auto& e : all)
    if (!journal_step_is_terminal(last_step[e.volume_uuid])) keep.push_back(e);
  return keep;
}
}  // namespace

Status FileJournal::write_all(const std::vector<JournalEntry>& all) {
  std::string text;
  for (auto& e : all) {
    nlohmann::json j = {{"seq", e.seq},       {"op", e.op},     {"uuid", e.volume_uuid},
                        {"device", e.device}, {"step", e.step}, {"data", e.data}};
    text += j.dump() + "\n";
  }
  return storcrypt::write_file_atomic(path_, text);
}

Result<std::vector<JournalEntry>> FileJournal::entries() {
  std::error_code ec;
  if (!fs::exists(path_, ec)) return std::vector<JournalEntry>{};
  STORCRYPT_ASSIGN_OR_RETURN(std::string text, keys::read_small_file(path_, 16u << 20));
  std::vector<JournalEntry> out;
  std::size_t pos = 0, line = 0;
  while (pos < text.size()) {
    ++line;
    std::size_t nl = text.find('\n', pos);
    if (nl == std::string::npos)
      return Error(ErrorCode::kInternal,
                   "journal " + path_.string() + ": line " + std::to_string(line) +
                       " has no line end (file was not written by storcrypt)",
                   "restore the journal from backup or inspect it by hand");
    auto j = nlohmann::json::parse(text.substr(pos, nl - pos), nullptr, false);
    pos = nl + 1;
    if (j.is_discarded() || !j.is_object() || !j.contains("seq") || !j["seq"].is_number_unsigned() ||
        !j.contains("op") || !j["op"].is_string() || !j.contains("uuid") || !j["uuid"].is_string() ||
        !j.contains("device") || !j["device"].is_string() || !j.contains("step") || !j["step"].is_string() ||
        !j.contains("data") || !j["data"].is_string())
      return Error(ErrorCode::kInternal,
                   "journal " + path_.string() + ": line " + std::to_string(line) + " is not a valid entry",
                   "restore the journal from backup or inspect it by hand");
    out.push_back(JournalEntry{j["seq"].get<std::uint64_t>(), j["op"].get<std::string>(), j["uuid"].get<std::string>(),
                               j["device"].get<std::string>(), j["step"].get<std::string>(),
                               j["data"].get<std::string>()});
  }
  return out;
}

Status FileJournal::append(JournalEntry& e) {
  STORCRYPT_ASSIGN_OR_RETURN(auto all, entries());
  e.seq = all.empty() ? 1 : all.back().seq + 1;
  all.push_back(e);
  return write_all(all);
}

Status FileJournal::compact() {
  STORCRYPT_ASSIGN_OR_RETURN(auto all, entries());
  auto keep = without_finished(all);
  if (keep.size() == all.size()) return ok_status();
  return write_all(keep);
}

Status MemoryJournal::append(JournalEntry& e) {
  e.seq = next_++;
  entries_.push_back(e);
  return ok_status();
}

Status MemoryJournal::compact() {
  entries_ = without_finished(entries_);
  return ok_status();
}

}  // namespace storcrypt::dm
