#include "storcrypt/controller/events.h"

#include <algorithm>
#include <ctime>

namespace storcrypt::controller {

using nlohmann::json;

namespace {

const std::vector<Migration> kEventMigrations = {
    {1, "events table",
     "CREATE TABLE events ("
     " id INTEGER PRIMARY KEY AUTOINCREMENT, code INTEGER NOT NULL,"
     " severity INTEGER NOT NULL CHECK (severity BETWEEN 0 AND 3), time INTEGER NOT NULL,"
     " title TEXT NOT NULL, message TEXT NOT NULL, sense TEXT NOT NULL,"
     " fix_procedure TEXT NOT NULL, fixed INTEGER NOT NULL DEFAULT 0, fixed_time INTEGER NOT NULL DEFAULT 0);"
     "CREATE INDEX events_unfixed ON events(fixed, severity);"},
};

std::vector<EventDef> core_catalog() {
  return {
      {event_code::kDaemonStarted, Severity::kInfo, "storcryptd started", {}, {}},
      {event_code::kUncleanShutdown,
       Severity::kWarning,
       "storcryptd did not shut down cleanly",
       {"storcryptd was killed (SIGKILL, OOM killer) or crashed", "the node lost power or was reset"},
       {"check `journalctl -u storcryptd` and the kernel log for the cause",
        "run `storcrypt system doctor` to check the state directory",
        "mark this event fixed with `storcrypt event fix ID` once understood"}},
      {event_code::kJournalRecovered,
       Severity::kInfo,
       "unfinished operation settled at start-up",
       {"storcryptd stopped while a multi-step operation was running"},
       {"check the operation's result in the sense data; no action is needed when it says done"}},
      {event_code::kJournalRecoveryFailed,
       Severity::kError,
       "unfinished operation could not be resumed or rolled back",
       {"a device, key server or peer needed by the operation is unavailable",
        "the operation's state was changed outside storcrypt"},
       {"read the error in the sense data and correct the cause",
        "when the sense data says outcome \"deferred\" the operation stays pending: correct the cause (e.g. "
        "insert the key media), then run 'storcrypt volume resume' or restart storcryptd",
        "repeat the operation with the storcrypt command that started it"}},
      {event_code::kJournalNoHandler,
       Severity::kWarning,
       "unfinished operation of an unknown kind",
       {"the state directory was written by a newer or differently built storcryptd"},
       {"run the storcryptd version that started the operation so it can finish it"}},
      {event_code::kStateDirUnhealthy,
       Severity::kError,
       "state directory is unhealthy",
       {"the filesystem holding the state directory is full or read-only",
        "permissions of the state directory were changed"},
       {"run `storcrypt system doctor` and correct what it reports"}},
      {event_code::kTestEvent,
       Severity::kInfo,
       "test event",
       {"an administrator raised a test event with `storcrypt event test`"},
       {"mark it fixed with `storcrypt event fix ID`"}},
  };
}

int64_t now() { return static_cast<int64_t>(std::time(nullptr)); }

json strings_json(const std::vector<std::string>& v) { return json(v); }

std::vector<std::string> json_strings(const json& j) {
  std::vector<std::string> out;
  if (!j.is_array()) return out;
  for (const auto& s : j) {
    if (s.is_string()) out.push_back(s.get<std::string>());
  }
  return out;
}

Error unknown_event(int64_t id) {
  return Error(ErrorCode::kNotFound, "event " + std::to_string(id) + " does not exist",
               "list events with `storcrypt event list`", "xEventNotFound");
}

constexpr const char* kSelect =
    "SELECT id, code, severity, time, title, message, sense, fix_procedure, fixed, fixed_time FROM events ";

Event row_to_event(const DbRow& r) {
  Event e;
  e.id = r.integer(0);
  e.code = static_cast<int>(r.integer(1));
  e.severity = static_cast<Severity>(std::clamp<int64_t>(r.integer(2), 0, 3));
  e.time = r.integer(3);
  e.title = r.text(4);
  e.message = r.text(5);
  e.sense = json::parse(r.text(6), nullptr, false);
  if (e.sense.is_discarded()) e.sense = json::object();
  json fix = json::parse(r.text(7), nullptr, false);
  if (fix.is_object()) {
    e.probable_causes = json_strings(fix.value("probable_causes", json::array()));
    e.user_actions = json_strings(fix.value("user_actions", json::array()));
  }
  e.fixed = r.integer(8) != 0;
  e.fixed_time = r.integer(9);
  return e;
}

}  // namespace

std::string_view severity_name(Severity s) {
  switch (s) {
    case Severity::kInfo:
      return "info";
    case Severity::kWarning:
      return "warning";
    case Severity::kError:
      return "error";
    case Severity::kCritical:
      return "critical";
  }
  return "info";
}

std::optional<Severity> parse_severity(std::string_view s) {
  for (auto v : {Severity::kInfo, Severity::kWarning, Severity::kError, Severity::kCritical}) {
    if (severity_name(v) == s) return v;
  }
  return std::nullopt;
}

json Event::to_json() const {
  return json{{"id", id},
              {"code", code},
              {"severity", severity_name(severity)},
              {"time", time},
              {"title", title},
              {"message", message},
              {"sense", sense},
              {"fix_procedure", {{"probable_causes", probable_causes}, {"user_actions", user_actions}}},
              {"fixed", fixed},
              {"fixed_time", fixed ? json(fixed_time) : json(nullptr)}};
}

EventLog::EventLog(Db& db) : db_(db) {
  for (auto& d : core_catalog()) catalog_[d.code] = std::move(d);
}

Result<std::unique_ptr<EventLog>> EventLog::create(Db& db) {
  STORCRYPT_TRY(db.migrate("events", kEventMigrations));
  return std::unique_ptr<EventLog>(new EventLog(db));
}

void EventLog::define(EventDef def) {
  std::lock_guard lock(mu_);
  catalog_[def.code] = std::move(def);
}

std::optional<EventDef> EventLog::definition(int code) const {
  std::lock_guard lock(mu_);
  auto it = catalog_.find(code);
  if (it == catalog_.end()) return std::nullopt;
  return it->second;
}

std::vector<EventDef> EventLog::catalog() const {
  std::lock_guard lock(mu_);
  std::vector<EventDef> out;
  for (const auto& [c, d] : catalog_) out.push_back(d);
  return out;
}

Result<int64_t> EventLog::raise(int code, std::string_view message, const json& sense) {
  auto def = definition(code);
  if (!def) {
    return Error(ErrorCode::kInternal, "event code " + std::to_string(code) + " is not defined in the event catalog");
  }
  json fix{{"probable_causes", strings_json(def->probable_causes)}, {"user_actions", strings_json(def->user_actions)}};
  int64_t id = 0;
  STORCRYPT_TRY(db_.transaction([&]() -> Status {
    STORCRYPT_TRY(
        db_.exec("INSERT INTO events(code, severity, time, title, message, sense, fix_procedure) "
                 "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                 {static_cast<int64_t>(code), static_cast<int64_t>(def->severity), now(), def->title,
                  std::string(message), (sense.is_object() ? sense : json{{"detail", sense}}).dump(), fix.dump()}));
    id = db_.last_insert_id();
    return ok_status();
  }));
  return id;
}

Result<std::vector<Event>> EventLog::list(const EventFilter& f) {
  std::string sql = kSelect;
  sql += "WHERE (?1 = 0 OR fixed = 0) AND severity >= ?2 AND (?3 < 0 OR code = ?3) ORDER BY id DESC LIMIT ?4";
  STORCRYPT_ASSIGN_OR_RETURN(
      auto rows, db_.query(sql, {static_cast<int64_t>(f.unfixed_only ? 1 : 0),
                                 static_cast<int64_t>(f.min_severity ? static_cast<int>(*f.min_severity) : 0),
                                 static_cast<int64_t>(f.code ? *f.code : -1), static_cast<int64_t>(f.limit)}));
  std::vector<Event> out;
  out.reserve(rows.size());
  for (const auto& r : rows) out.push_back(row_to_event(r));
  return out;
}

Result<Event> EventLog::get(int64_t id) {
  STORCRYPT_ASSIGN_OR_RETURN(auto rows, db_.query(std::string(kSelect) + "WHERE id = ?1", {id}));
  if (rows.empty()) return unknown_event(id);
  return row_to_event(rows[0]);
}

Result<Event> EventLog::mark_fixed(int64_t id) {
  Event out;
  STORCRYPT_TRY(db_.transaction([&]() -> Status {
    STORCRYPT_ASSIGN_OR_RETURN(auto e, get(id));
    if (!e.fixed) {
      STORCRYPT_TRY(db_.exec("UPDATE events SET fixed = 1, fixed_time = ?2 WHERE id = ?1", {id, now()}));
      STORCRYPT_ASSIGN_OR_RETURN(e, get(id));
    }
    out = std::move(e);
    return ok_status();
  }));
  return out;
}

Result<std::map<Severity, int64_t>> EventLog::unfixed_counts() {
  STORCRYPT_ASSIGN_OR_RETURN(auto rows,
                             db_.query("SELECT severity, COUNT(*) FROM events WHERE fixed = 0 GROUP BY severity"));
  std::map<Severity, int64_t> out;
  for (auto s : {Severity::kInfo, Severity::kWarning, Severity::kError, Severity::kCritical}) out[s] = 0;
  for (const auto& r : rows) out[static_cast<Severity>(std::clamp<int64_t>(r.integer(0), 0, 3))] = r.integer(1);
  return out;
}

}  // namespace storcrypt::controller
