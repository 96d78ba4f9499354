// Shared by the RPC adapters of the IPsec nouns (policy_methods.cpp,
// key_methods.cpp, ipsec_methods.cpp): the one IpsecService of a daemon, and
// the JSON shapes more than one noun returns. Translation only; the rules
// live in ipsec/ipsec_service.h.
#pragma once

#include <memory>
#include <nlohmann/json.hpp>
#include <optional>

#include "ipsec/integrity_watcher.h"
#include "ipsec/ipsec_service.h"
#include "storcrypt/controller/dispatcher.h"
#include "storcrypt/controller/ticker.h"

namespace storcrypt::controller {

/// The IPsec service of a daemon (created by the first noun registered).
struct IpsecState {
  std::shared_ptr<IpsecService> svc;
  std::optional<Error> load_error;
  std::unique_ptr<IntegrityWatcher> watcher;
  std::unique_ptr<Ticker> ticker;  ///< declared last: joined first
};

/// The state of ctx: on first use, migrates the tables, binds the kernel seam
/// (ctx's IpsecKernel, or netlink + /proc/net/xfrm_stat) and loads the service.
std::shared_ptr<IpsecState> ipsec_state(Context& ctx);
/// The service, or why it is unavailable.
Result<IpsecService*> ipsec_service(IpsecState& st);

nlohmann::json report_json(const policy::ValidationReport& r);
nlohmann::json stats_json(const std::optional<policy::ApplyStats>& s);

}  // namespace storcrypt::controller
