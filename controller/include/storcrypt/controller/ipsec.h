// storcrypt controller: the IPsec policy nouns (`policy`, `key`, `ipsec`).
//
// State (the daemon's state directory):
//   SQLite component "ipsec": the uncommitted and the committed policy list
//     (as policy files, storcrypt::policy::export_policies, named address
//     selectors included), the default
//     disposition, whether enforcement is enabled, and an "applying" marker
//     set while the kernel is being changed.
//   ipsec-keys (0600): the named keys, one `<name> <algorithm> <hex>` per line.
// At start-up the kernel is reconciled to the database: the committed list is
// enforced again when enabled; an interrupted apply of a disabled node is
// cleared. A watcher compares the inbound SAs' integrity-failure counters
// every STORCRYPT_IPSEC_WATCH_SECONDS (default 10) and raises event 2010 when
// they rise (a partner keyed with another value); the event is marked fixed
// once packets authenticate again.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "storcrypt/common/ip.h"
#include "storcrypt/common/result.h"
#include "storcrypt/netlink/xfrm_api.h"

namespace storcrypt::controller {

/// Event codes of the ipsec noun (2000-2099).
inline constexpr int kIpsecIntegrityEvent = 2010;
inline constexpr int kIpsecRestoreEvent = 2011;

/// The kernel seam: how the ipsec noun opens XFRM for its ownership scope.
/// storcryptd uses netlink::open_xfrm(); unit tests put a FakeXfrm (storcrypt::netlink_fake) factory in
/// the Context (ctx.set_service(std::make_shared<IpsecKernel>(...))) before
/// registering the methods.
struct IpsecKernel {
  std::function<Result<std::unique_ptr<netlink::XfrmApi>>(const netlink::Ownership&)> open;
  /// The namespace's XFRM drop/error counters (name -> value); storcryptd
  /// reads /proc/net/xfrm_stat. Unset: status reports none.
  std::function<Result<std::map<std::string, std::uint64_t>>()> stats;
  /// This node's own addresses in the namespace (loopback excluded): what a
  /// transport-mode PROTECT policy with LocalAddress ANY stands for.
  /// storcryptd reads the interfaces (getifaddrs); unset: not known (such a
  /// policy is then refused at validate/commit).
  std::function<Result<std::vector<IpAddress>>()> local_addresses;
};

/// The addresses of this namespace's interfaces, loopback excluded (getifaddrs).
Result<std::vector<IpAddress>> interface_addresses();

/// Parse /proc/net/xfrm_stat text ("XfrmInError  0" per line).
Result<std::map<std::string, std::uint64_t>> parse_xfrm_stat(std::string_view text);

}  // namespace storcrypt::controller
