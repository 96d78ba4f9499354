// storcrypt policy: enforce a committed (compiled) list through the XFRM
// layer (storcrypt::netlink::XfrmApi), remove it again, and report status.
//
// The installer owns exactly the XFRM policies whose index lies in the manual
// list's part of storcrypt's index range ([netlink::kOwnedIndexMin,
// netlink::kManualIndexMax], see netlink/xfrm_types.h: the index is
// storcrypt's ownership tag and is chosen on every add) and the SAs whose
// reqid lies in [reqid_base, reqid_base + kReqidSpan); it never lists,
// modifies or deletes anything else, whatever its priority (other daemons'
// policies, e.g. strongSwan's charon at priorities ~68k..600k, stay as they are).
// Enabling reconciles the kernel to the desired set (adds what is missing,
// replaces what differs, deletes what is stale); disabling deletes
// everything in its ranges.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "storcrypt/common/result.h"
#include "storcrypt/netlink/xfrm_api.h"
#include "storcrypt/policy/compiler.h"
#include "storcrypt/policy/keys.h"

namespace storcrypt::policy {

/// Most kernel policies one list may install (index slots of one direction).
inline constexpr std::uint32_t kMaxPolicies = (netlink::kManualIndexMax - netlink::kOwnedIndexMin + 1) / 8;
inline constexpr std::uint32_t kReqidSpan = 1u << 16;

/// The kernel objects for a compiled set (keys filled in from the store).
struct KernelSet {
  std::vector<netlink::Policy> policies;
  std::vector<netlink::Sa> sas;
};

/// Map compiled specs to the netlink model. ICMP type/code masks become
/// exact values (the XFRM layer holds one ICMP type/code per selector);
/// selectors that collapse onto an earlier identical one are dropped.
/// ESP integrity only (Service = ESP-INTEGRITY, crypt = "ecb(cipher_null)"
/// without key) becomes enc = none plus the integrity algorithm and its key;
/// the netlink layer sends the NULL cipher with an empty key.
/// Errors: a key is missing (kNotFound) or a spec is inconsistent
/// (kInvalidInput).
Result<KernelSet> to_kernel(const CompiledPolicySet& set, const KeyStore& keys);

/// Ownership scope matching the installer's ranges (for open_xfrm()).
netlink::Ownership installer_ownership(const CompileOptions& opt);

/// Precedence against other IPsec daemons (see compiler.h): a warning per
/// list entry whose kernel selectors overlap, in the same direction, a
/// foreign policy (another daemon's, `foreign`) that they take precedence
/// over (lower or equal priority value), naming up to three of them and
/// whether ours cover them entirely. Foreign xfrm-interface policies (if_id)
/// are never shadowed by ours and are skipped.
std::vector<Diagnostic> foreign_precedence_warnings(const CompiledPolicySet& set,
                                                    const std::vector<netlink::Policy>& foreign);

/// One row of `ipsec status`.
struct EnforcedPolicy {
  std::string name;  ///< policy name, exemption/default label, or "priority N" if unknown
  std::uint32_t priority = 0;
  std::string direction;  ///< "in" / "out"
  std::string action;     ///< BYPASS / DISCARD / PROTECT
  std::size_t kernel_policies = 0;
  /// PROTECT: the SA's counters (packets/bytes carried, integrity and replay failures).
  std::optional<netlink::SaId> sa;
  netlink::SaCounters counters;
};

struct ApplyStats {
  std::size_t policies_added = 0, policies_updated = 0, policies_deleted = 0;
  std::size_t sas_added = 0, sas_replaced = 0, sas_deleted = 0;
};

class PolicyInstaller {
 public:
  /// `xfrm` must outlive the installer; `opt` must be the options the set was compiled with.
  PolicyInstaller(netlink::XfrmApi& xfrm, CompileOptions opt = {});

  /// Enforce a committed set (reconcile the kernel to it).
  Result<ApplyStats> enable(const CompiledPolicySet& set, const KeyStore& keys);
  /// Remove every policy and SA in the installer's ranges, and nothing else.
  Result<ApplyStats> disable();
  /// Enforced policies (kernel state), with SA counters for PROTECT policies.
  Result<std::vector<EnforcedPolicy>> status();
  /// foreign_precedence_warnings() against the policies other daemons have in
  /// the kernel now (read only).
  Result<std::vector<Diagnostic>> precedence_warnings(const CompiledPolicySet& set);
  /// Name status rows after a committed set without applying it (e.g. after a restart).
  void describe_with(const CompiledPolicySet& set) { enabled_ = set; }

 private:
  bool owns(const netlink::Policy& p) const;
  bool owns(const netlink::Sa& sa) const;
  netlink::XfrmApi& xfrm_;
  CompileOptions opt_;
  netlink::Ownership own_;
  std::optional<CompiledPolicySet> enabled_;
};

}  // namespace storcrypt::policy
