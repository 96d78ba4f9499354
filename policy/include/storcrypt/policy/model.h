// storcrypt policy: the ordered list of named, one-directional IPsec
// policies (first match decides), and the editing operations on it.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "storcrypt/common/result.h"
#include "storcrypt/policy/selector.h"

namespace storcrypt::policy {

enum class Direction : std::uint8_t { kInbound, kOutbound };
enum class Disposition : std::uint8_t { kBypass, kDiscard, kProtect };
/// IPsec service of a PROTECT policy.
enum class Service : std::uint8_t { kAh, kEspIntegrity, kEspConfidentiality, kEspIntegrityConfidentiality };
enum class Mode : std::uint8_t { kTransport, kTunnel };
/// Algorithms (and therefore key types) of manual keying.
enum class Algorithm : std::uint8_t {
  kHmacSha1_96,
  kHmacSha256_128,
  kHmacSha512_256,
  kAesCbc128,
  kAesCbc256,
  kAesGcm256,
};
/// What happens to traffic no policy matches.
enum class DefaultDisposition : std::uint8_t {
  kIPv6Only,  ///< unmatched IPv6 is discarded, unmatched IPv4 bypasses
  kBypass,
  kDeny,     ///< discard unmatched traffic except storcrypt's control traffic
  kDenyAll,  ///< discard all unmatched traffic, control traffic included
};

namespace proto {
inline constexpr std::uint8_t kIcmp = 1;
inline constexpr std::uint8_t kTcp = 6;
inline constexpr std::uint8_t kUdp = 17;
inline constexpr std::uint8_t kEsp = 50;
inline constexpr std::uint8_t kAh = 51;
inline constexpr std::uint8_t kIcmpv6 = 58;
inline constexpr std::uint8_t kSctp = 132;
}  // namespace proto

/// Protocols whose selectors carry ports.
bool protocol_has_ports(std::uint8_t p);
/// ICMP or ICMPv6: selectors carry types and codes.
bool protocol_is_icmp(std::uint8_t p);

std::string_view to_string(Direction d);
std::string_view to_string(Disposition d);
std::string_view to_string(Service s);
std::string_view to_string(Mode m);
std::string_view to_string(Algorithm a);
std::string_view to_string(DefaultDisposition d);
Result<Direction> parse_direction(std::string_view s);
Result<Disposition> parse_disposition(std::string_view s);
Result<Service> parse_service(std::string_view s);
Result<Mode> parse_mode(std::string_view s);
Result<Algorithm> parse_algorithm(std::string_view s);
Result<DefaultDisposition> parse_default_disposition(std::string_view s);
/// "ANY" -> nullopt; TCP, UDP, ICMP, ICMPv6, SCTP, ESP, AH or 0..255.
Result<std::optional<std::uint8_t>> parse_protocol(std::string_view s);
std::string protocol_to_string(std::optional<std::uint8_t> p);

/// Key length in bytes an algorithm needs (AES-GCM-256: 32 + 4 salt bytes).
std::size_t algorithm_key_bytes(Algorithm a);
bool algorithm_is_integrity(Algorithm a);
bool algorithm_is_aead(Algorithm a);

/// What traffic a policy applies to. Addresses and ports are from this host's
/// point of view (local/remote), whatever the direction.
struct Selector {
  AddressSpec local;
  AddressSpec remote;
  std::optional<std::uint8_t> protocol;  ///< nullopt = ANY
  /// TCP/UDP/SCTP: local ports. ICMP/ICMPv6: types. Otherwise must be ANY.
  PortSpec local_ports;
  /// TCP/UDP/SCTP: remote ports. ICMP/ICMPv6: codes. Otherwise must be ANY.
  PortSpec remote_ports;
  friend bool operator==(const Selector&, const Selector&) = default;
};

/// IPsec parameters of a PROTECT policy (manual keying: one SA per policy).
struct Protection {
  Service service = Service::kEspIntegrityConfidentiality;
  Mode mode = Mode::kTransport;
  std::uint32_t spi = 0;
  /// Tunnel mode: SA endpoints (this host's and the partner's).
  std::optional<IpAddress> local_endpoint;
  std::optional<IpAddress> remote_endpoint;
  std::optional<Algorithm> integrity;  ///< AH and ESP integrity (+ AES-CBC)
  std::string integrity_key;
  std::optional<Algorithm> encryption;  ///< ESP confidentiality (AES-CBC or AES-GCM)
  std::string encryption_key;
  friend bool operator==(const Protection&, const Protection&) = default;
};

struct Policy {
  std::string name;
  Direction direction = Direction::kOutbound;
  Selector selector;
  Disposition disposition = Disposition::kBypass;
  std::optional<Protection> protection;  ///< set iff disposition == kProtect
  friend bool operator==(const Policy&, const Policy&) = default;
};

/// A packet (or flow) as the test tool and the equivalence tests see it.
/// For ICMP/ICMPv6, local_port is the type and remote_port the code.
struct Packet {
  Direction direction = Direction::kOutbound;
  IpAddress local;
  IpAddress remote;
  std::uint8_t protocol = proto::kTcp;
  std::uint16_t local_port = 0;
  std::uint16_t remote_port = 0;
};

/// Families a selector can match (ICMP only IPv4, ICMPv6 only IPv6; a
/// non-ANY address fixes its family). Empty means the selector is invalid.
std::vector<Family> selector_families(const Selector& s);
/// Does the policy's selector (and direction) match the packet?
bool matches(const Policy& p, const Packet& pkt);

/// Syntactic checks of one policy (names, families, ports vs protocol,
/// PROTECT fields). Key existence is checked at commit.
Status check_policy(const Policy& p);

/// Named address selectors: name -> entries (addresses, prefixes, ranges;
/// never ANY or another name), in the order given, without duplicates.
using AddressSets = std::map<std::string, std::vector<AddressSpec>>;

class TestIndex;  // storcrypt/policy/test_tool.h

/// Where a PolicyList keeps the test tool's index (built on first use by
/// test_traffic(); copies of an unchanged list share it, every edit starts a
/// new slot). Not part of the list's value.
struct TestIndexSlot {
  std::mutex mu;
  std::shared_ptr<const TestIndex> index;  ///< guarded by mu
};

/// The editable (uncommitted) ordered list, with the named address selectors
/// its policies may use (they travel with it: stored, committed, exported and
/// imported together). Positions are 0-based.
class PolicyList {
 public:
  PolicyList() = default;
  explicit PolicyList(std::vector<Policy> p) : policies_(std::move(p)) {}
  PolicyList(std::vector<Policy> p, AddressSets a) : policies_(std::move(p)), addresses_(std::move(a)) {}

  const std::vector<Policy>& policies() const { return policies_; }
  std::size_t size() const { return policies_.size(); }
  const Policy* find(std::string_view name) const;
  std::optional<std::size_t> index_of(std::string_view name) const;

  /// Append. Fails on a duplicate name or a malformed policy.
  Status add(Policy p);
  /// Insert before position `pos` (pos == size() appends).
  Status insert(std::size_t pos, Policy p);
  /// Move the named policy so it ends up at position `pos`.
  Status move(std::string_view name, std::size_t pos);
  /// Copy the named policy under a new name, directly after the original.
  Status clone(std::string_view name, std::string new_name);
  /// Replace the named policy (the replacement may carry a new name).
  Status modify(std::string_view name, Policy p);
  Status remove(std::string_view name);

  // ---- named address selectors ----
  const AddressSets& addresses() const { return addresses_; }
  /// Define `name` or add entries to it (entries already there are skipped).
  /// Errors: a bad name, no entries, an entry that is ANY or a name (kInvalidInput).
  Status add_addresses(const std::string& name, const std::vector<AddressSpec>& entries);
  /// Remove a named address selector; kConflict (xAddressInUse) while a policy uses it.
  Status remove_addresses(std::string_view name);
  /// Names of the policies whose LocalAddress or RemoteAddress is `name`.
  std::vector<std::string> users_of_addresses(std::string_view name) const;
  /// Names used by a policy but not defined: (policy, name) pairs in list order.
  std::vector<std::pair<std::string, std::string>> undefined_addresses() const;
  /// A copy whose named address specs carry their entries (AddressSpec::members);
  /// a name that is not defined is an error (kInvalidInput, xAddressUndefined).
  Result<PolicyList> resolved() const;

  /// The test tool's index cache for this content (null only in a moved-from list).
  TestIndexSlot* test_index_slot() const { return index_slot_.get(); }

  friend bool operator==(const PolicyList& a, const PolicyList& b) {
    return a.policies_ == b.policies_ && a.addresses_ == b.addresses_;
  }

 private:
  Status check_new(const Policy& p, std::string_view replacing) const;
  void edited() { index_slot_ = std::make_shared<TestIndexSlot>(); }
  std::vector<Policy> policies_;
  AddressSets addresses_;
  std::shared_ptr<TestIndexSlot> index_slot_ = std::make_shared<TestIndexSlot>();
};

/// The named address selector `spec` refers to, with its entries filled in
/// (unchanged when `spec` is not named; members stay empty when undefined).
AddressSpec resolve_address(const AddressSpec& spec, const AddressSets& sets);

}  // namespace storcrypt::policy
