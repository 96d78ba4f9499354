// storcrypt policy: addresses, address specs, port specs and their
// decomposition into what the kernel's XFRM selector can express
// (address prefixes and port/mask pairs).
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "storcrypt/common/ip.h"
#include "storcrypt/common/result.h"

namespace storcrypt::policy {

// The address model is the project's one (storcrypt/common/ip.h), shared
// with netlink/: IpAddress (bytes in network order, value() as an integer)
// and Prefix (addr + len, host bits clear).
using storcrypt::Family;
using storcrypt::family_bits;
using storcrypt::family_max;
using storcrypt::IpAddress;
using storcrypt::Prefix;
using storcrypt::U128;

/// "IPv4" / "IPv6", as policy messages spell the families.
std::string_view family_label(Family f);

/// An inclusive address range within one family.
struct AddressRange {
  Family family = Family::kIPv4;
  U128 lo = 0;
  U128 hi = 0;
  bool contains(const IpAddress& a) const { return a.family == family && a.value() >= lo && a.value() <= hi; }
  friend bool operator==(const AddressRange&, const AddressRange&) = default;
};

/// Smallest set of prefixes whose union is exactly [lo, hi] (in order).
std::vector<Prefix> range_to_prefixes(const AddressRange& r);

/// A selector's address: ANY, one address, a prefix, a range, or a named
/// address selector (e.g. PRODUCTION) that stands for a list of addresses,
/// prefixes and ranges defined in the policy list (PolicyList::addresses()).
struct AddressSpec {
  enum class Kind : std::uint8_t { kAny, kSingle, kPrefix, kRange, kNamed };
  Kind kind = Kind::kAny;
  IpAddress first;     ///< the address, the prefix's network, or the range start
  IpAddress last;      ///< range end (kRange only)
  int prefix_len = 0;  ///< kPrefix only
  std::string name;    ///< kNamed only: the address selector's name
  /// kNamed only: its entries once resolved (PolicyList::resolved(),
  /// effective_policies()); empty while unresolved. Never kNamed themselves.
  std::vector<AddressSpec> members;

  static AddressSpec any() { return {}; }
  static AddressSpec single(IpAddress a) { return {Kind::kSingle, a, a, 0}; }
  static AddressSpec named(std::string n) { return {Kind::kNamed, {}, {}, 0, std::move(n)}; }
  /// "ANY", "192.0.2.1", "192.0.2.0/24", "2001:db8::/32", "192.0.2.10-192.0.2.20",
  /// or a name (valid_address_name()).
  static Result<AddressSpec> parse(std::string_view text);
  std::string to_string() const;
  bool is_any() const { return kind == Kind::kAny; }
  bool is_named() const { return kind == Kind::kNamed; }
  /// Family of a non-ANY spec (a named one: when all its resolved entries are of one family).
  std::optional<Family> family() const;
  /// The addresses of `f` a non-named spec covers (nullopt when none, and always for kNamed: use ranges()).
  std::optional<AddressRange> range(Family f) const;
  /// The addresses of `f` this spec covers, as sorted disjoint ranges (empty when none).
  std::vector<AddressRange> ranges(Family f) const;
  bool matches(const IpAddress& a) const;
  friend bool operator==(const AddressSpec&, const AddressSpec&) = default;
};

/// A name for an address selector: a letter, then up to 63 letters, digits,
/// '_' or '-'; never ANY (whatever the case). Such a name is never an address.
bool valid_address_name(std::string_view n);

/// An inclusive range of 16-bit values (ports, or ICMP types/codes).
struct PortRange {
  std::uint16_t lo = 0;
  std::uint16_t hi = 0;
  bool contains(std::uint32_t v) const { return v >= lo && v <= hi; }
  friend bool operator==(const PortRange&, const PortRange&) = default;
};

/// A value/mask pair as in the XFRM selector (sport/sport_mask).
struct PortMask {
  std::uint16_t value = 0;
  std::uint16_t mask = 0;
  bool matches(std::uint16_t v) const { return ((v ^ value) & mask) == 0; }
  friend bool operator==(const PortMask&, const PortMask&) = default;
};

/// Smallest set of value/mask pairs whose union is exactly [lo, hi] with
/// contiguous masks (the prefix cover: aligned power-of-two blocks).
std::vector<PortMask> port_range_to_masks(PortRange r);

/// Value/mask pairs whose union is exactly the union of `ranges` (any order;
/// overlapping and adjacent ranges are merged first). The XFRM selector's
/// port mask need not be contiguous, so a pair may leave any bits free:
/// starting from the ranges' prefix covers, each pair is widened by freeing
/// mask bits while it stays inside the set, then pairs the others cover are
/// dropped. Never more pairs than the prefix covers (e.g. 1-6 takes 3 pairs,
/// 0*1/10*/*10 in bits, instead of 4 prefixes; 10-11,14-15 takes 1 instead
/// of 2); pairs may overlap. Deterministic, sorted by value then mask.
std::vector<PortMask> ports_to_masks(std::vector<PortRange> ranges);

/// Ports (or ICMP types/codes): ANY, or a list of numbers and ranges.
struct PortSpec {
  /// Empty = ANY. Otherwise sorted, non-overlapping, non-adjacent ranges.
  std::vector<PortRange> ranges;

  static PortSpec any() { return {}; }
  static PortSpec of(std::uint16_t lo, std::uint16_t hi) { return PortSpec{{PortRange{lo, hi}}}; }
  /// "ANY", "80", "5000-5001", "80,443,8000-8080". `max` bounds every number
  /// (65535 for ports, 255 for ICMP types/codes).
  static Result<PortSpec> parse(std::string_view text, std::uint16_t max, std::string_view field);
  std::string to_string() const;
  bool is_any() const { return ranges.empty(); }
  bool matches(std::uint32_t v) const;
  /// The ranges covered, within [0, max]: ANY gives {0, max}.
  std::vector<PortRange> effective(std::uint16_t max) const;
  /// Sort and merge the ranges (parse() already returns normalized specs).
  void normalize();
  friend bool operator==(const PortSpec&, const PortSpec&) = default;
};

}  // namespace storcrypt::policy
