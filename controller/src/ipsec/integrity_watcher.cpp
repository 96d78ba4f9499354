#include "ipsec/integrity_watcher.h"

#include <set>

namespace storcrypt::controller {

EventDef ipsec_integrity_event() {
  return {kIpsecIntegrityEvent,
          Severity::kError,
          "IPsec packets fail their integrity check",
          {"the partner keys this SA with a different value (manual keying: the named key differs on the two "
           "nodes)",
           "the partner replaced the key and this node has not imported the new value (or the other way round)",
           "the two nodes use different algorithms or SPIs for the policy", "packets are modified in transit"},
          {"export the key on the partner ('storcrypt key export') and import it here with 'storcrypt key import "
           "--replace', or the other way round; the daemon marks this event fixed when packets authenticate again",
           "compare the policy on both nodes: 'storcrypt policy show NAME' (SPI, algorithms, key names)",
           "watch 'storcrypt ipsec status' (the INTEGRITY FAILURES column) while traffic flows"}};
}

void IntegrityWatcher::pass(IpsecService& svc) {
  if (svc.enforcement_generation() != generation_) {
    // Enforcement stopped since the last pass: the SAs counted then are gone.
    watch_.clear();
    generation_ = svc.enforcement_generation();
  }
  if (!svc.enabled()) return;
  auto sas = svc.owned_sas();
  if (!sas.ok()) return;
  const auto& names = svc.inbound_sa_names();
  std::set<std::string> seen;
  for (const auto& st : *sas) {
    auto name = names.find(st.sa.spi);
    if (name == names.end()) continue;
    const std::string& policy = name->second;
    const std::string sa = st.sa.id().to_string();
    std::string id = policy + " " + sa;
    seen.insert(id);
    auto& w = watch_[id];
    const std::uint64_t failed = st.counters.integrity_failed, packets = st.counters.packets;
    if (failed > w.integrity_failed && w.event_id == 0) {
      auto ev = events_.raise(kIpsecIntegrityEvent,
                              "policy " + policy + ": " + std::to_string(failed - w.integrity_failed) +
                                  " inbound packet(s) failed the integrity check on " + sa +
                                  " (the partner's key for this SA differs)",
                              {{"policy", policy}, {"sa", sa}, {"integrity_failed", failed}, {"packets", packets}});
      if (ev.ok()) w.event_id = *ev;
    } else if (w.event_id != 0 && failed == w.integrity_failed && packets > w.packets) {
      (void)events_.mark_fixed(w.event_id);
      w.event_id = 0;
    }
    w.integrity_failed = failed;
    w.packets = packets;
  }
  std::erase_if(watch_, [&](const auto& kv) { return !seen.count(kv.first); });
}

}  // namespace storcrypt::controller
