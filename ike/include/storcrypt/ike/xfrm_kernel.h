// storcrypt IKEv2: ChildSaKernel over the kernel's XFRM (netlink::XfrmApi).
//
// What one CHILD_SA puts into the kernel (tunnel mode; transport mode has
// the same objects without outer addresses in the templates):
//  - two ESP SAs tagged with the CHILD_SA's reqid: inbound (remote -> local,
//    our SPI, the larval SA from reserve() updated in place) and outbound
//    (local -> remote, the peer's SPI, replay window 0 or 1 with ESN);
//    AES-GCM-16 as rfc4106(gcm(aes)) with key+salt (288 bits for 256) and a
//    128-bit ICV, AES-CBC as cbc(aes) with hmac(sha256|384|512) truncated per
//    RFC 4868; UDP encapsulation (espinudp, our/peer's port) when NAT-T;
//  - per selector pair (local_ts x remote_ts, each range split into the
//    prefixes and port/mask pairs an XFRM selector can hold): an OUT policy
//    (local -> remote, template pinned to the outbound SPI) and IN and FWD
//    policies (remote -> local, template by reqid), at most 16 pairs.
//
// Ownership: the XfrmApi must be scoped to netlink::Ownership::ike() (reqids
// 0x6c000-0x7bfff, policy indexes 0xf8000000-0xffffffff), so the manual
// policy list's objects and other daemons' (charon's) are never touched. The
// index of a policy is derived from its reqid: Ownership::ike().policy_index(
// (reqid - 0x6c000) * 16 + pair, dir), so remove() finds a CHILD_SA's
// policies without remembering its selectors (e.g. after a restart).
//
// Priorities follow strongSwan's get_priority() for installed IPsec policies
// (ipsec.md §2.3): 400000 - 512 * (prefix lengths) - 256 if a protocol is
// set - 4 * (port mask bits) - 1, so more specific selectors win and a
// storcrypt tunnel orders like a charon tunnel of the same selectors. The
// manual policy list (priorities from 1000) comes first.
//
// Restart: clear_stale() deletes the SAs a killed instance left and keeps its
// policies (so traffic is dropped meanwhile); a new CHILD_SA whose policy
// meets a stale one of the same selector replaces it with UPDPOLICY, which
// keeps the stale index: remove() deletes such policies by the index the
// kernel kept (replaced_). Stale reqids stay in use, so no new CHILD_SA takes
// a reqid whose index a stale policy still holds.
//
// One XfrmChildSaKernel per network namespace: it hands out the reqids of
// the IKE half (a reqid is free when no owned SA or policy template uses it
// and this instance has not reserved it). Not thread-safe.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <set>
#include <vector>

#include "storcrypt/ike/kernel.h"
#include "storcrypt/netlink/xfrm_api.h"

namespace storcrypt::ike {

/// At most this many kernel selector pairs (after splitting ranges) per CHILD_SA.
inline constexpr std::uint32_t kMaxSelectorPairs = 16;

/// The XFRM objects install() would create, without touching the kernel
/// (pure; exposed for tests and for a dry-run view). Errors: kInvalidInput
/// (inconsistent spec: families, no pair left, too many pairs),
/// kUnsupported (a suite the kernel mapping lacks, e.g. AES-GCM-8).
struct ChildSaObjects {
  netlink::Sa in;
  netlink::Sa out;
  std::vector<netlink::Policy> policies;  ///< per pair: out, in, fwd
};
Result<ChildSaObjects> child_sa_objects(const ChildSaSpec& spec);

/// strongSwan-like priority of an installed IPsec policy (see above).
std::uint32_t ike_policy_priority(const netlink::Selector& sel);

class XfrmChildSaKernel : public ChildSaKernel {
 public:
  /// `xfrm` must outlive the kernel object and be scoped to exactly
  /// Ownership::ike()'s ranges (a mark may be added); otherwise kInvalidInput.
  static Result<std::unique_ptr<XfrmChildSaKernel>> create(netlink::XfrmApi& xfrm);

  Result<ChildSaSlot> reserve(const IpAddress& local, const IpAddress& remote) override;
  Status install(const ChildSaSpec& spec) override;
  Status remove(const ChildSaSlot& slot, const IpAddress& local, const IpAddress& remote,
                std::uint32_t spi_out) override;
  Result<ChildSaCounters> counters(const ChildSaSlot& slot, const IpAddress& local, const IpAddress& remote,
                                   std::uint32_t spi_out) override;
  Result<ChildSaSlot> reserve_rekey(const ChildSaSlot& old, const IpAddress& local, const IpAddress& remote) override;
  Status install_sa(const ChildSaSpec& spec, SaDirection dir) override;
  Status remove_sa(std::uint32_t reqid, const IpAddress& dst, std::uint32_t spi) override;
  Status retire(const ChildSaSlot& slot, const IpAddress& local, const IpAddress& remote,
                std::uint32_t spi_out) override;
  Result<StaleObjects> clear_stale() override;
  Result<std::size_t> prune_stale(const std::vector<IpAddress>& keep) override;

 private:
  Result<ChildSaSlot> allocate(std::uint32_t reqid, const IpAddress& local, const IpAddress& remote);
  explicit XfrmChildSaKernel(netlink::XfrmApi& xfrm) : xfrm_(xfrm) {}
  Status scan_used();
  void note_used(const std::vector<netlink::SaState>& sas, const std::vector<netlink::Policy>& pols);
  Result<std::uint32_t> next_reqid();
  /// The policy ids a CHILD_SA of `reqid` holds (its own indexes and the stale ones it took over).
  std::vector<netlink::PolicyId> policy_ids(std::uint32_t reqid) const;
  /// Delete the two SAs of a CHILD_SA, those that carry its reqid only.
  std::optional<Error> drop_sas(const ChildSaSlot& slot, const IpAddress& local, const IpAddress& remote,
                                std::uint32_t spi_out, const std::string& what);
  std::optional<netlink::Mark> mark() const { return xfrm_.ownership().mark; }

  netlink::XfrmApi& xfrm_;
  bool scanned_ = false;
  std::set<std::uint32_t> used_;                  ///< reqids in use (kernel scan + reserved here)
  std::uint32_t cursor_ = 0;                      ///< next reqid to try
  std::map<std::uint32_t, std::uint32_t> pairs_;  ///< reqid -> selector pairs installed
  bool fresh_ = true;                             ///< no CHILD_SA reserved yet (clear_stale allowed)
  std::vector<netlink::Policy> stale_;  ///< a killed instance's or a dead peer's policies, not replaced yet
  std::map<std::uint32_t, std::vector<netlink::PolicyId>> replaced_;  ///< reqid -> stale indexes it took over
};

}  // namespace storcrypt::ike
