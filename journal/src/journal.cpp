#include "storcrypt/journal/journal.h"


#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <fstream>
#include <iterator>

#include "storcrypt/common/fd.h"
#include "storcrypt/common/files.h"
#include "storcrypt/common/text.h"

namespace storcrypt::journal {
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

std::int64_t now() { return static_cast<std::int64_t>(std::time(nullptr)); }

Error unknown_op(std::int64_t id) {
  return Error(ErrorCode::kNotFound, "journal operation " + std::to_string(id) + " does not exist",
               "list operations with `storcrypt system status`", "xJournalOperationNotFound");
}

std::vector<std::string> split_list(const char* s) {
  return s == nullptr ? std::vector<std::string>{} : split_tokens(s, ",");
}

// Announce and block until killed. Test-only (STORCRYPT_PAUSE_AT).
[[noreturn]] void pause_forever(const std::string& where, const std::string& file) {
  std::string line = where + "\n";
  bool announced = false;
  if (!file.empty()) {
    UniqueFd fd(::open(file.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600));
    if (fd.get() >= 0) {
      announced = write_all(fd.get(), std::span<const std::uint8_t>(
                                          reinterpret_cast<const std::uint8_t*>(line.data()), line.size()),
                            file)
                      .ok();
      (void)::fsync(fd.get());
    }
  }
  if (!announced) {
    std::string msg = "storcrypt: paused at " + where + " (STORCRYPT_PAUSE_AT)\n";
    (void)!::write(2, msg.data(), msg.size());
  }
  for (;;) ::pause();
}

bool wants(const std::vector<std::string>& list, std::string_view kind, std::string_view point) {
  if (list.empty()) return false;
  std::string want = std::string(kind) + ":" + std::string(point);
  return std::find(list.begin(), list.end(), want) != list.end();
}

json record_json(const Record& r) {
  return json{{"id", r.id},          {"kind", r.kind},       {"payload", r.payload},
              {"state", state_name(r.state)}, {"steps", r.steps}, {"created", r.created},
              {"updated", r.updated}, {"note", r.note}};
}

Result<Record> record_from_json(const json& j) {
  auto str = [&](const char* k) { return j.contains(k) && j[k].is_string(); };
  auto num = [&](const char* k) { return j.contains(k) && j[k].is_number_integer(); };
  if (!j.is_object() || !num("id") || !str("kind") || !str("payload") || !str("state") || !num("created") ||
      !num("updated") || !str("note") || !j.contains("steps") || !j["steps"].is_array())
    return Error(ErrorCode::kInternal, "not a journal record");
  Record r;
  r.id = j["id"].get<std::int64_t>();
  r.kind = j["kind"].get<std::string>();
  r.payload = j["payload"].get<std::string>();
  auto st = parse_state(j["state"].get<std::string>());
  if (!st) return Error(ErrorCode::kInternal, "unknown state '" + j["state"].get<std::string>() + "'");
  r.state = *st;
  for (const auto& s : j["steps"]) {
    if (!s.is_string()) return Error(ErrorCode::kInternal, "a step is not a string");
    r.steps.push_back(s.get<std::string>());
  }
  r.created = j["created"].get<std::int64_t>();
  r.updated = j["updated"].get<std::int64_t>();
  r.note = j["note"].get<std::string>();
  return r;
}

// Settled records beyond the newest `keep` of them.
std::vector<Record> pruned(const std::vector<Record>& all, std::size_t keep) {
  std::size_t settled = 0;
  for (const auto& r : all) settled += r.state != State::kRunning;
  std::size_t drop = settled > keep ? settled - keep : 0;
  std::vector<Record> out;
  for (const auto& r : all) {
    if (r.state != State::kRunning && drop > 0) {
      --drop;
      continue;
    }
    out.push_back(r);
  }
  return out;
}

}  // namespace

std::string_view state_name(State s) {
  switch (s) {
    case State::kRunning:
      return "running";
    case State::kDone:
      return "done";
    case State::kRolledBack:
      return "rolled-back";
    case State::kFailed:
      return "failed";
  }
  return "running";
}

std::optional<State> parse_state(std::string_view s) {
  if (s == "running") return State::kRunning;
  if (s == "done") return State::kDone;
  if (s == "rolled-back") return State::kRolledBack;
  if (s == "failed") return State::kFailed;
  return std::nullopt;
}

bool Entry::has_step(std::string_view name) const {
  return std::find(steps.begin(), steps.end(), name) != steps.end();
}

// ---- FileStore ---------------------------------------------------------------

Result<std::vector<Record>> FileStore::read_all() {
  std::ifstream f(path_, std::ios::binary);
  if (!f) {
    std::error_code ec;
    if (!fs::exists(path_, ec)) return std::vector<Record>{};
    return Error(ErrorCode::kUnavailable, "cannot read journal " + path_.string(), "check its permissions");
  }
  std::string text((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  if (f.bad()) return Error(ErrorCode::kUnavailable, "error reading journal " + path_.string());
  std::vector<Record> out;
  std::size_t pos = 0, line = 0;
  while (pos < text.size()) {
    ++line;
    std::size_t nl = text.find('\n', pos);
    if (nl == std::string::npos)
      return Error(ErrorCode::kInternal,
                   "journal " + path_.string() + ": line " + std::to_string(line) +
                       " has no line end (file was not written by storcrypt)",
                   "restore the journal from backup or inspect it by hand");
    auto j = json::parse(text.substr(pos, nl - pos), nullptr, false);
    pos = nl + 1;
    auto r = j.is_discarded() ? Result<Record>(Error(ErrorCode::kInternal, "not JSON")) : record_from_json(j);
    if (!r.ok())
      return Error(ErrorCode::kInternal,
                   "journal " + path_.string() + ": line " + std::to_string(line) + " is not a valid record (" +
                       r.error().message() + ")",
                   "restore the journal from backup or inspect it by hand");
    out.push_back(std::move(r).value());
  }
  return out;
}

Status FileStore::write_all(const std::vector<Record>& all) {
  std::string text;
  for (const auto& r : all) text += record_json(r).dump() + "\n";
  return write_file_atomic(path_, text);
}

Result<std::int64_t> FileStore::insert(const Record& r) {
  STORCRYPT_ASSIGN_OR_RETURN(auto all, read_all());
  Record n = r;
  n.id = 1;
  for (const auto& x : all) n.id = std::max(n.id, x.id + 1);
  all.push_back(n);
  STORCRYPT_TRY(write_all(all));
  return n.id;
}

Status FileStore::update(const Record& r) {
  STORCRYPT_ASSIGN_OR_RETURN(auto all, read_all());
  for (auto& x : all) {
    if (x.id == r.id) {
      x = r;
      return write_all(all);
    }
  }
  return unknown_op(r.id);
}

Result<Record> FileStore::get(std::int64_t id) {
  STORCRYPT_ASSIGN_OR_RETURN(auto all, read_all());
  for (auto& x : all)
    if (x.id == id) return x;
  return unknown_op(id);
}

Result<std::vector<Record>> FileStore::list(bool running_only) {
  STORCRYPT_ASSIGN_OR_RETURN(auto all, read_all());
  if (!running_only) return all;
  std::vector<Record> out;
  for (auto& x : all)
    if (x.state == State::kRunning) out.push_back(x);
  return out;
}

Status FileStore::prune(std::size_t keep) {
  STORCRYPT_ASSIGN_OR_RETURN(auto all, read_all());
  auto kept = pruned(all, keep);
  if (kept.size() == all.size()) return ok_status();
  if (kept.empty()) {
    // Nothing to remember: no file (as before the first operation).
    if (::unlink(path_.c_str()) != 0 && errno != ENOENT) return errno_error(errno, "removing " + path_.string());
    return fsync_directory(path_.has_parent_path() ? path_.parent_path() : fs::path("."));
  }
  return write_all(kept);
}

// ---- MemoryStore -------------------------------------------------------------

Result<std::int64_t> MemoryStore::insert(const Record& r) {
  Record n = r;
  n.id = next_++;
  records_.push_back(n);
  return n.id;
}

Status MemoryStore::update(const Record& r) {
  for (auto& x : records_) {
    if (x.id == r.id) {
      x = r;
      return ok_status();
    }
  }
  return unknown_op(r.id);
}

Result<Record> MemoryStore::get(std::int64_t id) {
  for (auto& x : records_)
    if (x.id == id) return x;
  return unknown_op(id);
}

Result<std::vector<Record>> MemoryStore::list(bool running_only) {
  std::vector<Record> out;
  for (auto& x : records_)
    if (!running_only || x.state == State::kRunning) out.push_back(x);
  return out;
}

Status MemoryStore::prune(std::size_t keep) {
  records_ = pruned(records_, keep);
  return ok_status();
}

// ---- Journal -----------------------------------------------------------------

Journal::Journal(std::unique_ptr<Store> store, JournalOptions opt) : store_(std::move(store)), opt_(opt) {
  pause_at_ = split_list(std::getenv("STORCRYPT_PAUSE_AT"));
  if (const char* f = std::getenv("STORCRYPT_PAUSE_FILE"); f && *f) pause_file_ = f;
}

void Journal::set_stop_hook(std::function<bool(std::string_view, std::string_view)> hook) {
  std::lock_guard lock(mu_);
  stop_hook_ = std::move(hook);
}

// Called without mu_ (a paused process keeps serving reads), after whatever
// the point stands for is durable.
Status Journal::reached(std::string_view kind, std::string_view point) {
  if (wants(pause_at_, kind, point)) pause_forever(std::string(kind) + ":" + std::string(point), pause_file_);
  std::function<bool(std::string_view, std::string_view)> hook;
  {
    std::lock_guard lock(mu_);
    hook = stop_hook_;
  }
  if (hook && hook(kind, point))
    return Error(ErrorCode::kInternal, "injected crash at " + std::string(kind) + ":" + std::string(point));
  return ok_status();
}

Result<Entry> Journal::to_entry(const Record& r) const {
  Entry e;
  e.id = r.id;
  e.kind = r.kind;
  e.payload = json::parse(r.payload, nullptr, /*allow_exceptions=*/false);
  if (e.payload.is_discarded() || !e.payload.is_object())
    return Error(ErrorCode::kInternal, "journal operation " + std::to_string(r.id) + " has a corrupt payload");
  e.state = r.state;
  e.steps = r.steps;
  e.created = r.created;
  e.updated = r.updated;
  e.note = r.note;
  return e;
}

Result<std::int64_t> Journal::begin(std::string_view kind, const json& payload) {
  if (kind.empty()) return Error(ErrorCode::kInvalidInput, "journal operation kind is empty");
  if (!payload.is_object()) return Error(ErrorCode::kInvalidInput, "journal payload must be a JSON object");
  Record r;
  r.kind = std::string(kind);
  r.payload = payload.dump();
  r.created = r.updated = now();
  std::int64_t id = 0;
  {
    std::lock_guard lock(mu_);
    STORCRYPT_ASSIGN_OR_RETURN(id, store_->insert(r));
  }
  STORCRYPT_TRY(reached(kind, "begin"));
  return id;
}

Status Journal::step(std::int64_t id, std::string_view step_name) {
  Record r;
  {
    std::lock_guard lock(mu_);
    STORCRYPT_ASSIGN_OR_RETURN(r, store_->get(id));
    if (r.state != State::kRunning)
      return Error(ErrorCode::kConflict, "journal operation " + std::to_string(id) + " is " +
                                             std::string(state_name(r.state)) + ", not running");
    // A step recorded twice (a resumed handler repeating work) is not an error.
    if (std::find(r.steps.begin(), r.steps.end(), step_name) == r.steps.end()) {
      r.steps.emplace_back(step_name);
      r.updated = now();
      STORCRYPT_TRY(store_->update(r));
    }
  }
  return reached(r.kind, step_name);
}

Status Journal::point(std::int64_t id, std::string_view name) {
  Record r;
  {
    std::lock_guard lock(mu_);
    if (pause_at_.empty() && !stop_hook_) return ok_status();
    STORCRYPT_ASSIGN_OR_RETURN(r, store_->get(id));
  }
  return reached(r.kind, name);
}

Status Journal::settle(std::int64_t id, State s, std::string_view note) {
  Record r;
  {
    std::lock_guard lock(mu_);
    STORCRYPT_ASSIGN_OR_RETURN(r, store_->get(id));
    if (r.state == s) return ok_status();  // idempotent
    if (r.state != State::kRunning)
      return Error(ErrorCode::kConflict,
                   "journal operation " + std::to_string(id) + " is already " + std::string(state_name(r.state)));
    r.state = s;
    r.note = std::string(note);
    r.updated = now();
    STORCRYPT_TRY(store_->update(r));
    deferred_.erase(id);
    // Forgetting old settled operations is housekeeping: never an error of this one.
    (void)store_->prune(opt_.keep_settled);
  }
  if (s == State::kDone) return reached(r.kind, "done");
  if (s == State::kRolledBack) return reached(r.kind, "rolled-back");
  return ok_status();
}

Status Journal::finish(std::int64_t id) { return settle(id, State::kDone, ""); }
Status Journal::rolled_back(std::int64_t id, std::string_view why) { return settle(id, State::kRolledBack, why); }
Status Journal::fail(std::int64_t id, std::string_view why) { return settle(id, State::kFailed, why); }

Status Journal::defer(std::int64_t id, std::string_view why) {
  std::lock_guard lock(mu_);
  STORCRYPT_ASSIGN_OR_RETURN(Record r, store_->get(id));
  if (r.state != State::kRunning)
    return Error(ErrorCode::kConflict, "journal operation " + std::to_string(id) + " is " +
                                           std::string(state_name(r.state)) + ", not running");
  r.note = std::string(why);
  r.updated = now();
  STORCRYPT_TRY(store_->update(r));
  deferred_.insert(id);
  return ok_status();
}

Result<Entry> Journal::get(std::int64_t id) {
  std::lock_guard lock(mu_);
  STORCRYPT_ASSIGN_OR_RETURN(Record r, store_->get(id));
  return to_entry(r);
}

Result<std::vector<Entry>> Journal::list(bool pending_only, int limit) {
  std::lock_guard lock(mu_);
  STORCRYPT_ASSIGN_OR_RETURN(auto recs, store_->list(pending_only));
  std::vector<Entry> out;
  for (auto it = recs.rbegin(); it != recs.rend() && static_cast<int>(out.size()) < limit; ++it) {
    STORCRYPT_ASSIGN_OR_RETURN(auto e, to_entry(*it));
    out.push_back(std::move(e));
  }
  return out;
}

Result<std::vector<Entry>> Journal::pending(const std::set<std::string>& kinds) {
  std::lock_guard lock(mu_);
  STORCRYPT_ASSIGN_OR_RETURN(auto recs, store_->list(true));
  std::vector<Entry> out;
  for (const auto& r : recs) {
    if (!kinds.empty() && !kinds.count(r.kind)) continue;
    STORCRYPT_ASSIGN_OR_RETURN(auto e, to_entry(r));
    out.push_back(std::move(e));
  }
  return out;
}

void Journal::register_handler(std::string kind, ResumeHandler handler) {
  std::lock_guard lock(mu_);
  handlers_[std::move(kind)] = std::move(handler);
}

bool Journal::has_handler(const std::string& kind) const {
  std::lock_guard lock(mu_);
  return handlers_.count(kind) != 0;
}

Result<std::vector<RecoveryOutcome>> Journal::recover(const std::set<std::string>& kinds) {
  std::vector<Record> recs;
  {
    std::lock_guard lock(mu_);
    STORCRYPT_ASSIGN_OR_RETURN(recs, store_->list(true));
  }
  std::vector<RecoveryOutcome> out;
  for (const auto& r : recs) {
    if (!kinds.empty() && !kinds.count(r.kind)) continue;
    RecoveryOutcome o{r.id, r.kind, "", ""};
    auto entry = to_entry(r);
    if (!entry.ok()) {
      o.outcome = "failed";
      o.detail = entry.error().message();
      (void)fail(o.id, o.detail);
      out.push_back(std::move(o));
      continue;
    }
    ResumeHandler h;
    {
      std::lock_guard lock(mu_);
      auto it = handlers_.find(r.kind);
      if (it != handlers_.end()) h = it->second;
      deferred_.erase(r.id);
    }
    if (!h) {
      // Leave it running: a later storcryptd that knows the kind can settle it.
      o.outcome = "no-handler";
      o.detail = "no resume handler is registered for operation kind '" + r.kind + "'";
      out.push_back(std::move(o));
      continue;
    }
    Status st = h(*this, *entry);
    if (!st.ok()) {
      bool deferred;
      {
        std::lock_guard lock(mu_);
        deferred = deferred_.count(o.id) != 0;
      }
      o.detail = st.error().to_string();
      if (deferred) {
        o.outcome = "deferred";
      } else {
        o.outcome = "failed";
        (void)fail(o.id, o.detail);
      }
      out.push_back(std::move(o));
      continue;
    }
    auto after = get(o.id);
    if (after.ok() && after->state == State::kRunning) {
      // The handler completed the remaining work without saying so.
      (void)finish(o.id);
      o.outcome = "done";
    } else if (after.ok()) {
      o.outcome = std::string(state_name(after->state));
    } else {
      o.outcome = "failed";
      o.detail = after.error().message();
    }
    out.push_back(std::move(o));
  }
  return out;
}

void pause_if_requested(std::string_view kind, std::string_view point) {
  auto list = split_list(std::getenv("STORCRYPT_PAUSE_AT"));
  if (!wants(list, kind, point)) return;
  const char* f = std::getenv("STORCRYPT_PAUSE_FILE");
  pause_forever(std::string(kind) + ":" + std::string(point), f ? f : "");
}

}  // namespace storcrypt::journal
