// API methods of the `event` noun: event.list, event.show, event.fix, event.test.
#include <nlohmann/json.hpp>

#include "storcrypt/controller/nouns.h"

namespace storcrypt::controller {

using nlohmann::json;

Status register_event_methods(Dispatcher& d, Context& ctx) {
  EventLog& log = *ctx.events;
  STORCRYPT_TRY(d.add({"event.list",
                       "list events, newest first",
                       {{"unfixed", ParamType::kBoolean, false, "true to list only events not yet marked fixed"},
                        {"severity", ParamType::kString, false, "minimum severity: info, warning, error or critical"},
                        {"code", ParamType::kInteger, false, "only events with this code"},
                        {"limit", ParamType::kInteger, false, "at most this many events (1..10000, default 200)"}},
                       false,
                       [&log](const Params& p) -> Result<json> {
                         EventFilter f;
                         f.unfixed_only = p.boolean("unfixed");
                         if (p.has("severity")) {
                           f.min_severity = parse_severity(p.str("severity"));
                           if (!f.min_severity) {
                             return Error(ErrorCode::kInvalidInput, "severity '" + p.str("severity") + "' is not valid",
                                          "use one of info, warning, error, critical");
                           }
                         }
                         if (p.has("code")) {
                           int64_t c = p.integer("code");
                           if (c < 0 || c > 99999) {
                             return Error(ErrorCode::kInvalidInput, "code must be between 0 and 99999",
                                          "pass an event code");
                           }
                           f.code = static_cast<int>(c);
                         }
                         if (p.has("limit")) {
                           int64_t l = p.integer("limit");
                           if (l < 1 || l > 10000)
                             return Error(ErrorCode::kInvalidInput, "limit must be between 1 and 10000");
                           f.limit = static_cast<int>(l);
                         }
                         STORCRYPT_ASSIGN_OR_RETURN(auto events, log.list(f));
                         json arr = json::array();
                         for (const auto& e : events) arr.push_back(e.to_json());
                         return json{{"events", arr}};
                       }}));
  STORCRYPT_TRY(d.add({"event.show",
                       "show one event with its sense data and fix procedure",
                       {{"id", ParamType::kInteger, true, "event id from `storcrypt event list`"}},
                       false,
                       [&log](const Params& p) -> Result<json> {
                         STORCRYPT_ASSIGN_OR_RETURN(int64_t id, p.id("id"));
                         STORCRYPT_ASSIGN_OR_RETURN(auto e, log.get(id));
                         return e.to_json();
                       }}));
  STORCRYPT_TRY(d.add({"event.fix",
                       "mark an event fixed",
                       {{"id", ParamType::kInteger, true, "event id from `storcrypt event list`"}},
                       true,
                       [&log](const Params& p) -> Result<json> {
                         STORCRYPT_ASSIGN_OR_RETURN(int64_t id, p.id("id"));
                         STORCRYPT_ASSIGN_OR_RETURN(auto e, log.mark_fixed(id));
                         return e.to_json();
                       }}));
  STORCRYPT_TRY(
      d.add({"event.test",
             "raise a test event (code 1099) to check event handling end to end",
             {{"message", ParamType::kString, false, "message of the test event (at most 1024 bytes)"}},
             true,
             [&log](const Params& p) -> Result<json> {
               std::string msg = p.str("message", "test event raised by uid " + std::to_string(p.peer().uid));
               if (msg.size() > 1024) {
                 return Error(ErrorCode::kInvalidInput, "message is longer than 1024 bytes", "shorten the message");
               }
               STORCRYPT_ASSIGN_OR_RETURN(int64_t id, log.raise(event_code::kTestEvent, msg, {{"uid", p.peer().uid}}));
               return json{{"id", id}};
             }}));
  return ok_status();
}

}  // namespace storcrypt::controller
