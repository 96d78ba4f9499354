// storcrypt controller: the event log (faults and notable changes).
//
// An event has a numeric code, a severity, a time, a message, sense data
// (structured detail: peer, step, OpenSSL or IKE notify text...), a fix
// procedure (probable causes and user actions) and a fixed flag. Codes are
// defined once in a catalog; modules add their codes with define() at start-up
// (e.g. certs: 3001-3099, ipsec: 2000-2099, keys: 4000-4099, volumes: 5000-5099).
// Core codes: 1000-1099 (daemon, journal, state).
#pragma once

#include <cstdint>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "storcrypt/common/result.h"
#include "storcrypt/controller/db.h"

namespace storcrypt::controller {

enum class Severity { kInfo = 0, kWarning = 1, kError = 2, kCritical = 3 };
std::string_view severity_name(Severity s);
std::optional<Severity> parse_severity(std::string_view s);

/// Catalog entry for one event code.
struct EventDef {
  int code = 0;
  Severity severity = Severity::kInfo;
  std::string title;                         ///< short, e.g. "IPsec authentication failure"
  std::vector<std::string> probable_causes;  ///< most likely first
  std::vector<std::string> user_actions;     ///< in the order to try them
};

struct Event {
  int64_t id = 0;
  int code = 0;
  Severity severity = Severity::kInfo;
  int64_t time = 0;  ///< unix seconds
  std::string title;
  std::string message;
  nlohmann::json sense = nlohmann::json::object();
  std::vector<std::string> probable_causes;
  std::vector<std::string> user_actions;
  bool fixed = false;
  int64_t fixed_time = 0;

  nlohmann::json to_json() const;
};

struct EventFilter {
  bool unfixed_only = false;
  std::optional<Severity> min_severity;
  std::optional<int> code;
  int limit = 200;
};

class EventLog {
 public:
  /// Creates its table (component "events") on first use; core codes are defined.
  static Result<std::unique_ptr<EventLog>> create(Db& db);

  /// Add or replace a catalog entry.
  void define(EventDef def);
  std::optional<EventDef> definition(int code) const;
  std::vector<EventDef> catalog() const;

  /// Record an event. The code must be defined. Returns its id.
  /// The fix procedure is copied from the catalog so it stays readable even
  /// if a later version changes the catalog.
  Result<int64_t> raise(int code, std::string_view message, const nlohmann::json& sense = nlohmann::json::object());

  Result<std::vector<Event>> list(const EventFilter& filter);
  Result<Event> get(int64_t id);
  /// Mark an event fixed. Marking a fixed event again is not an error.
  Result<Event> mark_fixed(int64_t id);
  /// Unfixed events per severity.
  Result<std::map<Severity, int64_t>> unfixed_counts();

 private:
  explicit EventLog(Db& db);
  Db& db_;
  mutable std::mutex mu_;
  std::map<int, EventDef> catalog_;
};

/// Core event codes.
namespace event_code {
inline constexpr int kDaemonStarted = 1000;
inline constexpr int kUncleanShutdown = 1001;
inline constexpr int kJournalRecovered = 1010;
inline constexpr int kJournalRecoveryFailed = 1011;
inline constexpr int kJournalNoHandler = 1012;
inline constexpr int kStateDirUnhealthy = 1020;
inline constexpr int kTestEvent = 1099;
}  // namespace event_code

}  // namespace storcrypt::controller
