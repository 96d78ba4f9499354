// storcrypt controller, IPsec: the integrity watcher. One pass reads the
// owned SAs' counters (not the policy set: it runs every few seconds) and,
// for each enforced inbound SA whose integrity-failure counter rose, raises
// event 2010 once (a partner keyed with another value); the event is marked
// fixed once packets authenticate again (packets rise, failures do not).
#pragma once

#include <cstdint>
#include <map>
#include <string>

#include "ipsec/ipsec_service.h"
#include "storcrypt/controller/events.h"

namespace storcrypt::controller {

/// Event 2010: inbound IPsec packets fail their integrity check.
EventDef ipsec_integrity_event();

class IntegrityWatcher {
 public:
  explicit IntegrityWatcher(EventLog& events) : events_(events) {}
  /// One pass over the service's enforced inbound SAs (call with svc.mu held).
  void pass(IpsecService& svc);

 private:
  /// What the watcher remembers of one inbound SA.
  struct SaWatch {
    std::uint64_t integrity_failed = 0;
    std::uint64_t packets = 0;
    int64_t event_id = 0;  ///< open event, 0 when none
  };
  EventLog& events_;
  std::map<std::string, SaWatch> watch_;  ///< "<policy> <SA id>" -> counters seen
  std::uint64_t generation_ = 0;
};

}  // namespace storcrypt::controller
