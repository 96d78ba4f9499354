// storcrypt policy: commit-time validation and compilation of the ordered
// list into plain XFRM policy and manually keyed SA specifications.
//
// First-match order is preserved exactly: every entry of the effective list
// (user policies, then control exemptions, then the default's catch-alls)
// gets its own priority, base + position, lower = preferred, as the kernel
// prefers the lowest priority value among matching selectors.
//
// Precedence against other IPsec daemons (strongSwan's charon uses priorities
// of roughly 68k..600k, its per-socket IKE bypass policies come before any):
//  * the user's policies sit in the band priority_base (1000) + position:
//    ABOVE (preferred over) other daemons' policies, so the list the
//    administrator wrote decides for the traffic it names, and `policy
//    commit` warns when one of them overlaps a policy another daemon already
//    has in the kernel (PolicyInstaller::precedence_warnings);
//  * the control exemptions and the default disposition's catch-alls (what
//    the default does) sit in the band default_priority_base (0x40000000) +
//    position: BELOW every other daemon's policy, so a DENY default never
//    swallows a charon tunnel, and storcrypt's own control traffic to a peer
//    behind such a tunnel takes the tunnel.
// Our own first-match order is unchanged: both bands increase with the
// position and the catch-alls are last. Ownership is not the priority but
// the policy index (see netlink/xfrm_types.h). Address ranges
// become prefixes and port ranges port/mask pairs; a selector identical to an
// earlier one is dropped (it could never win, and the kernel refuses a
// duplicate selector with EEXIST).
#pragma once

#include <compare>
#include <map>
#include <cstdint>
#include <optional>
#include <string>
#include <tuple>
#include <vector>

#include "storcrypt/common/result.h"
#include "storcrypt/policy/keys.h"
#include "storcrypt/policy/model.h"
#include "storcrypt/policy/test_tool.h"

namespace storcrypt::policy {

enum class Severity : std::uint8_t { kError, kWarning };

struct Diagnostic {
  Severity severity = Severity::kWarning;
  std::string policy;  ///< empty for list-wide findings
  std::string message;
  std::string fix;
};

struct ValidationReport {
  std::vector<Diagnostic> diagnostics;
  bool ok() const;
  std::vector<const Diagnostic*> warnings() const;
  std::vector<const Diagnostic*> errors() const;
  /// One finding per line: "error: policy 'x': ... (fix: ...)".
  std::string to_string() const;
};

struct CompileOptions {
  EnforcementOptions enforcement;
  std::uint32_t priority_base = 1000;  ///< the user's policies: above other daemons'
  /// Control exemptions and the default's catch-alls: below every other daemon's policy.
  std::uint32_t default_priority_base = 0x40000000;
  std::uint32_t reqid_base = 0x5c000;
  /// Commit refuses a policy expanding into more kernel selectors than this.
  std::size_t max_selectors_per_policy = 4096;
  /// Port (and ICMP type/code) sets become the fewest value/mask pairs found
  /// (ports_to_masks: masks need not be contiguous); false: each range's
  /// prefix cover, as before (the benchmark's baseline).
  bool minimize_port_masks = true;
  /// Commit warns (does not fail) when the list compiles to more kernel
  /// policies than this, with the kernel memory they take (0: never warn).
  std::size_t warn_kernel_policies = 100000;
  /// This node's own addresses (nullopt: not known). A transport-mode PROTECT
  /// policy with LocalAddress ANY stands for those of the remote's family:
  /// one outbound SA with the wildcard source, one inbound SA per address.
  /// Validation refuses such a policy when the node has none of that family
  /// (or they are not known). Loopback addresses do not belong here.
  std::optional<std::vector<IpAddress>> local_addresses;
};

/// The node's addresses of family `f` in `opt` (deduplicated, sorted).
std::vector<IpAddress> node_addresses(const CompileOptions& opt, Family f);

/// Validate the list: at least one policy per direction, well-formed
/// policies, keys present with the policy's algorithm and length, SPIs
/// unique on this host, selector expansion bounded. Warnings: shadowed
/// (never matching) policies, ICMP/ICMPv6 neighbour discovery discarded,
/// control traffic discarded.
ValidationReport validate(const PolicyList& list, const KeyStore& keys, const CompileOptions& opt = {});

enum class XfrmDir : std::uint8_t { kIn, kOut, kFwd };
enum class XfrmAction : std::uint8_t { kAllow, kBlock };

/// struct xfrm_selector, in host byte order.
struct SelectorSpec {
  Family family = Family::kIPv4;
  IpAddress saddr;
  int prefixlen_s = 0;
  IpAddress daddr;
  int prefixlen_d = 0;
  std::uint8_t proto = 0;  ///< 0 = any
  std::uint16_t sport = 0, sport_mask = 0;
  std::uint16_t dport = 0, dport_mask = 0;
  friend bool operator==(const SelectorSpec&, const SelectorSpec&) = default;
  friend auto operator<=>(const SelectorSpec& a, const SelectorSpec& b) {
    return std::tie(a.family, a.saddr.bytes, a.prefixlen_s, a.daddr.bytes, a.prefixlen_d, a.proto, a.sport,
                    a.sport_mask, a.dport, a.dport_mask) <=> std::tie(b.family, b.saddr.bytes, b.prefixlen_s,
                                                                      b.daddr.bytes, b.prefixlen_d, b.proto, b.sport,
                                                                      b.sport_mask, b.dport, b.dport_mask);
  }
};

/// struct xfrm_user_tmpl of a PROTECT policy (one SA per policy).
struct TemplateSpec {
  Family family = Family::kIPv4;  ///< SA (outer) family
  IpAddress saddr;
  IpAddress daddr;
  std::uint8_t proto = proto::kEsp;  ///< ESP or AH
  std::uint32_t spi = 0;
  Mode mode = Mode::kTransport;
  std::uint32_t reqid = 0;
  friend bool operator==(const TemplateSpec&, const TemplateSpec&) = default;
};

struct PolicySpec {
  XfrmDir dir = XfrmDir::kOut;
  SelectorSpec selector;
  std::uint32_t priority = 0;
  XfrmAction action = XfrmAction::kAllow;
  std::optional<TemplateSpec> tmpl;
  std::string source;  ///< policy name (or exemption/default label)
  Origin origin = Origin::kUser;
  std::size_t effective_index = 0;  ///< position in effective_policies()
};

/// One algorithm of an SA, by kernel crypto name; the key is referenced by name.
struct AlgorithmSpec {
  Algorithm algorithm = Algorithm::kAesGcm256;
  std::string kernel_name;  ///< "hmac(sha256)", "cbc(aes)", "rfc4106(gcm(aes))"
  std::uint32_t bits = 0;   ///< truncation (auth) or ICV (AEAD) length in bits
  std::string key_name;
  friend bool operator==(const AlgorithmSpec&, const AlgorithmSpec&) = default;
};

/// A manually keyed SA (struct xfrm_usersa_info + algorithm attributes).
struct SaSpec {
  Family family = Family::kIPv4;
  IpAddress saddr;
  IpAddress daddr;
  std::uint32_t spi = 0;
  std::uint8_t proto = proto::kEsp;
  Mode mode = Mode::kTransport;
  std::uint32_t reqid = 0;
  std::optional<AlgorithmSpec> auth;
  std::optional<AlgorithmSpec> crypt;  ///< "ecb(cipher_null)" (no key) for ESP integrity only
  std::optional<AlgorithmSpec> aead;
  Direction direction = Direction::kOutbound;
  std::string source;
  friend bool operator==(const SaSpec&, const SaSpec&) = default;
};

struct CompiledPolicySet {
  std::vector<PolicySpec> policies;  ///< in priority order
  std::vector<SaSpec> sas;
  ValidationReport report;
  /// Transport-mode PROTECT policies with LocalAddress ANY -> the node's
  /// addresses their inbound SAs were compiled for.
  std::map<std::string, std::vector<IpAddress>> any_local;
};

/// Compile without validating (the selector and SA specs only).
CompiledPolicySet compile(const PolicyList& list, const CompileOptions& opt = {});

/// Validate, then compile. Errors (kInvalidInput) carry the whole report;
/// warnings travel in CompiledPolicySet::report.
Result<CompiledPolicySet> commit(const PolicyList& list, const KeyStore& keys, const CompileOptions& opt = {});

/// Number of kernel selectors one policy expands into (with `opt`'s encoding).
std::size_t selector_count(const Policy& p, const CompileOptions& opt = {});

/// Kernel memory one XFRM policy takes, measured on Linux 6.18 x86_64:
/// struct xfrm_policy from kmalloc-1k plus two 64-byte inexact-bin entries
/// (20,000 policies in a fresh namespace: SUnreclaim +22.6 MB).
inline constexpr std::size_t kKernelBytesPerPolicy = 1160;

/// Kernel policies a compiled set installs: an ICMP selector becomes one per
/// type (and code) its value/mask pairs match (an upper bound: the installer
/// drops repeats).
std::size_t kernel_policy_count(const CompiledPolicySet& set);

/// The commit warning when `set` needs more than opt.warn_kernel_policies
/// kernel policies (nullopt otherwise): the count, the limit and the memory.
std::optional<Diagnostic> kernel_size_warning(const CompiledPolicySet& set, const CompileOptions& opt);

std::string_view to_string(XfrmDir d);

}  // namespace storcrypt::policy
