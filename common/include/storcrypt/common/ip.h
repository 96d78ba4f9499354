// storcrypt: the one IP address and prefix model, shared by netlink/ (XFRM
// selectors, SAs, templates) and policy/ (the ordered list, its selectors
// and their decomposition). netlink/ and policy/ re-export these names in
// their namespaces (storcrypt::netlink::IpAddress is storcrypt::IpAddress).
//
// An address keeps its bytes in network order (what the kernel and
// inet_pton/inet_ntop use); value()/from_value() give the same address as an
// unsigned 128-bit integer (IPv4 in the low 32 bits) for range arithmetic.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "storcrypt/common/result.h"

namespace storcrypt {

using U128 = unsigned __int128;

enum class Family : std::uint8_t { kIPv4 = 4, kIPv6 = 6 };
std::string_view family_name(Family f);  ///< "ipv4" / "ipv6"
/// Bits in an address of this family (32 or 128).
inline int family_bits(Family f) { return f == Family::kIPv4 ? 32 : 128; }
/// Largest address value of a family (all ones).
U128 family_max(Family f);

/// An IPv4 or IPv6 address (network byte order in `bytes`; IPv4 uses the first 4).
struct IpAddress {
  Family family = Family::kIPv4;
  std::array<std::uint8_t, 16> bytes{};

  /// Parse "192.0.2.1" or "2001:db8::1". The error message starts with
  /// "`field`: " (no prefix when `field` is empty).
  static Result<IpAddress> parse(std::string_view text, std::string_view field = "address");
  /// The all-zero address of a family (0.0.0.0 / ::).
  static IpAddress any(Family f);
  /// The address of family `f` whose integer value is `v` (bits above the family's width are ignored).
  static IpAddress from_value(Family f, U128 v);
  static IpAddress v4(std::uint32_t v) { return from_value(Family::kIPv4, v); }
  /// The address as an integer (IPv4 in the low 32 bits).
  U128 value() const;
  std::string to_string() const;
  bool is_any() const;
  unsigned max_prefix() const { return family == Family::kIPv4 ? 32 : 128; }
  friend bool operator==(const IpAddress&, const IpAddress&) = default;
};

/// Address + prefix length; host bits beyond the prefix are always zero
/// (parse() and make() clear them, as the kernel compares masked selectors).
struct Prefix {
  IpAddress addr;
  std::uint8_t len = 0;

  /// "192.0.2.0/24", "2001:db8::/32", or a bare address (host prefix).
  static Result<Prefix> parse(std::string_view text, std::string_view field = "prefix");
  /// Build from address and length; error when len exceeds the family width.
  static Result<Prefix> make(const IpAddress& addr, unsigned len, std::string_view field = "prefix");
  /// 0.0.0.0/0 or ::/0.
  static Prefix any(Family f);
  bool contains(const IpAddress& a) const;
  std::string to_string() const;  ///< "192.0.2.0/24"
  friend bool operator==(const Prefix&, const Prefix&) = default;
};

/// The smallest list of prefixes whose union is exactly [first, last]
/// (ascending; empty when the families differ or first > last). Used where a
/// range (an IKE traffic selector, a policy's address range) must become
/// XFRM selectors, which hold one prefix each.
std::vector<Prefix> prefixes_covering(const IpAddress& first, const IpAddress& last);

}  // namespace storcrypt
