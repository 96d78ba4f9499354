// storcrypt policy: the effective list the kernel will enforce (user list,
// control-traffic exemptions, default disposition), brute-force first match,
// and the "test before commit" tool.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "storcrypt/common/result.h"
#include "storcrypt/policy/model.h"

namespace storcrypt::policy {

/// storcrypt's own control traffic, bypassed after the user's list unless the
/// default disposition is DENYALL.
struct ControlExemption {
  std::string name;  ///< e.g. "IKE"
  std::uint8_t protocol = proto::kUdp;
  PortSpec local_ports;
  PortSpec remote_ports;
  friend bool operator==(const ControlExemption&, const ControlExemption&) = default;
};

/// IKE udp/500 and udp/4500 (either end), KMIP tcp/5696 (remote end).
/// storcrypt's own API is a Unix socket and needs no network exemption.
std::vector<ControlExemption> default_control_traffic();

struct EnforcementOptions {
  DefaultDisposition default_disposition = DefaultDisposition::kIPv6Only;
  std::vector<ControlExemption> control = default_control_traffic();
  friend bool operator==(const EnforcementOptions&, const EnforcementOptions&) = default;
};

enum class Origin : std::uint8_t { kUser, kControlExemption, kDefault };

/// One entry of the effective list, in first-match order.
struct EffectivePolicy {
  Policy policy;  ///< exemption/default entries carry names such as "(control: IKE)"
  Origin origin = Origin::kUser;
  std::size_t user_index = 0;  ///< position in the user's list (kUser only)
};

/// User policies, then control exemptions, then the default's catch-alls.
std::vector<EffectivePolicy> effective_policies(const PolicyList& list, const EnforcementOptions& opt);

struct Decision {
  Disposition disposition = Disposition::kBypass;
  Origin origin = Origin::kDefault;
  std::string name;  ///< deciding policy, or "(default: BYPASS)" when nothing matched
  std::optional<std::size_t> effective_index;
};

/// Brute-force first match over the effective list (no match: bypass, as the
/// kernel does when no XFRM policy matches).
Decision first_match(const std::vector<EffectivePolicy>& eff, const Packet& pkt);

/// A traffic description for the test tool. For ICMP/ICMPv6 the local range
/// holds types and the remote range codes (0-255). For protocols without
/// ports the ranges are ignored.
struct TestQuery {
  Direction direction = Direction::kOutbound;
  std::uint8_t protocol = proto::kTcp;
  IpAddress local;
  IpAddress remote;
  PortRange local_ports{0, 65535};
  PortRange remote_ports{0, 65535};
};

/// One sub-range over which the set of matching policies (and the decision)
/// is the same.
struct TestRow {
  PortRange local_ports;
  PortRange remote_ports;
  Disposition disposition = Disposition::kBypass;
  Origin origin = Origin::kDefault;
  std::string first_match;
  std::vector<std::string> bypass;   ///< all matching user BYPASS policies, in list order
  std::vector<std::string> discard;  ///< all matching user DISCARD policies
  std::vector<std::string> protect;  ///< all matching user PROTECT policies
  std::vector<std::string> notes;    ///< advice, e.g. neighbour discovery discarded
};

/// Answer a test query against an (uncommitted) list. The answer comes from
/// the list's TestIndex, built on the first query for this content and these
/// options and kept with the list (PolicyList::test_index_slot()) until it is
/// edited: a single-flow query then costs O(log n + matches), a wide one in
/// proportion to the policies it meets and the rows it returns.
Result<std::vector<TestRow>> test_traffic(const PolicyList& list, const EnforcementOptions& opt, const TestQuery& q);

/// The test tool's index over one effective list (see test_tool.cpp for the
/// structure). Immutable once built; safe to share between threads.
class TestIndex {
 public:
  /// Index `list` as enforced with `opt`. An undefined address selector is
  /// kept as the error every test() returns (first_match() then never matches
  /// the undefined name, as effective_policies() does).
  static std::shared_ptr<const TestIndex> build(const PolicyList& list, const EnforcementOptions& opt);
  ~TestIndex();
  TestIndex(const TestIndex&) = delete;
  TestIndex& operator=(const TestIndex&) = delete;

  const EnforcementOptions& options() const;
  const std::vector<EffectivePolicy>& effective() const;
  /// Same answer as policy::first_match(effective(), pkt).
  Decision first_match(const Packet& pkt) const;
  /// Positions in effective() of every entry matching pkt, ascending.
  std::vector<std::size_t> all_matches(const Packet& pkt) const;
  /// Same answer as test_traffic(list, options(), q).
  Result<std::vector<TestRow>> test(const TestQuery& q) const;

  struct Stats {
    std::size_t entries = 0;     ///< effective entries indexed (per family they can match)
    std::size_t nodes = 0;       ///< split and leaf nodes
    std::size_t stored_ids = 0;  ///< entry references in leaves (replication across segments)
    std::size_t max_leaf = 0;    ///< longest leaf list
    std::size_t depth = 0;       ///< deepest split level
    std::size_t bytes = 0;       ///< memory of the index arrays (not the effective list)
  };
  Stats stats() const;

  struct Impl;

 private:
  explicit TestIndex(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

/// Plain-text table of test rows (for the CLI and logs).
std::string format_test_rows(const TestQuery& q, const std::vector<TestRow>& rows);

}  // namespace storcrypt::policy
