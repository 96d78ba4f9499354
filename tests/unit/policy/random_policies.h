// Seeded random policies and packets for property tests.
#pragma once

#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "storcrypt/policy/compiler.h"
#include "storcrypt/policy/model.h"

namespace storcrypt::policy::testing {

class Gen {
 public:
  explicit Gen(std::uint64_t seed) : rng_(seed) {}
  int pick(int n) { return std::uniform_int_distribution<int>(0, n - 1)(rng_); }
  bool chance(int percent) { return pick(100) < percent; }

  IpAddress address(Family f) {
    // Small pools so that selectors and packets meet often.
    if (f == Family::kIPv4) return IpAddress::v4(0x0a000000u + static_cast<std::uint32_t>(pick(64)));
    return IpAddress::from_value(Family::kIPv6, (U128{0x20010db8} << 96) + static_cast<U128>(pick(64)));
  }

  AddressSpec address_spec(std::optional<Family> fam) {
    const int k = pick(100);
    if (!fam || k < 30) return AddressSpec::any();
    if (k < 55) return AddressSpec::single(address(*fam));
    const int bits = family_bits(*fam);
    if (k < 75) {
      AddressSpec s;
      s.kind = AddressSpec::Kind::kPrefix;
      s.prefix_len = bits - 1 - pick(6);
      const U128 host = (U128{1} << (bits - s.prefix_len)) - 1;
      s.first = IpAddress::from_value(*fam, address(*fam).value() & ~host);
      s.last = IpAddress::from_value(*fam, s.first.value() | host);
      return s;
    }
    IpAddress a = address(*fam), b = address(*fam);
    if (b.value() < a.value()) std::swap(a, b);
    if (a.value() == b.value()) return AddressSpec::single(a);
    return {AddressSpec::Kind::kRange, a, b, 0};
  }

  std::uint16_t port() {
    switch (pick(10)) {
      case 0:
        return 500;
      case 1:
        return 5696;
      case 2:
        return static_cast<std::uint16_t>(pick(65536));
      default:
        return static_cast<std::uint16_t>(pick(40));
    }
  }

  PortSpec port_spec(std::uint16_t max) {
    if (chance(40)) return PortSpec::any();
    PortSpec s;
    const int n = 1 + pick(3);
    for (int i = 0; i < n; ++i) {
      std::uint16_t a = max == 255 ? static_cast<std::uint16_t>(pick(20)) : port();
      std::uint16_t b = a;
      if (chance(50)) b = static_cast<std::uint16_t>(std::min<int>(max, a + pick(chance(10) ? 30000 : 20)));
      s.ranges.push_back({a, b});
    }
    s.normalize();
    if (s.ranges.size() == 1 && s.ranges[0].lo == 0 && s.ranges[0].hi == max) s.ranges.clear();
    return s;
  }

  Policy policy(int i) {
    for (;;) {
      Policy p;
      p.name = "p" + std::to_string(i);
      p.direction = chance(50) ? Direction::kOutbound : Direction::kInbound;
      std::optional<Family> fam;
      if (chance(70)) fam = chance(60) ? Family::kIPv4 : Family::kIPv6;
      p.selector.local = address_spec(fam);
      p.selector.remote = address_spec(fam);
      const int k = pick(100);
      if (k < 25) {
        p.selector.protocol = std::nullopt;
      } else if (k < 55) {
        p.selector.protocol = proto::kTcp;
      } else if (k < 75) {
        p.selector.protocol = proto::kUdp;
      } else if (k < 90) {
        const bool v6 = fam ? *fam == Family::kIPv6 : chance(50);
        p.selector.protocol = v6 ? proto::kIcmpv6 : proto::kIcmp;
      } else {
        p.selector.protocol = 47;
      }
      if (p.selector.protocol && (protocol_has_ports(*p.selector.protocol) || protocol_is_icmp(*p.selector.protocol))) {
        const std::uint16_t max = protocol_is_icmp(*p.selector.protocol) ? 255 : 65535;
        p.selector.local_ports = port_spec(max);
        p.selector.remote_ports = port_spec(max);
      }
      const int d = pick(3);
      p.disposition = d == 0 ? Disposition::kBypass : d == 1 ? Disposition::kDiscard : Disposition::kProtect;
      if (p.disposition == Disposition::kProtect) {
        Protection pr;
        pr.spi = 0x1000 + static_cast<std::uint32_t>(i);
        pr.encryption = Algorithm::kAesGcm256;
        pr.encryption_key = "k";
        pr.mode = Mode::kTunnel;
        pr.local_endpoint = IpAddress::v4(0xc0000201);
        pr.remote_endpoint = IpAddress::v4(0xc0000202);
        p.protection = pr;
      }
      if (check_policy(p).ok() && selector_count(p) <= 2048) return p;
    }
  }

  Packet packet() {
    Packet pkt;
    pkt.direction = chance(50) ? Direction::kOutbound : Direction::kInbound;
    const Family f = chance(55) ? Family::kIPv4 : Family::kIPv6;
    pkt.local = address(f);
    pkt.remote = address(f);
    if (chance(5)) pkt.remote = IpAddress::from_value(pkt.remote.family, pkt.remote.value() + 1000);  // outside every pool
    const int k = pick(100);
    pkt.protocol = k < 35   ? proto::kTcp
                   : k < 60 ? proto::kUdp
                   : k < 85 ? (f == Family::kIPv4 ? proto::kIcmp : proto::kIcmpv6)
                   : k < 95 ? std::uint8_t{47}
                            : std::uint8_t{50};
    if (protocol_is_icmp(pkt.protocol)) {
      pkt.local_port = static_cast<std::uint16_t>(chance(20) ? 133 + pick(5) : pick(24));
      pkt.remote_port = static_cast<std::uint16_t>(pick(24));
    } else if (protocol_has_ports(pkt.protocol)) {
      pkt.local_port = port();
      pkt.remote_port = port();
    }
    return pkt;
  }

  /// With `percent` chance, `p`'s local (or remote) selector becomes a name
  /// ("SET<index>L"/"R", defined in `list`) for 1-3 random entries of its
  /// family, when the policy stays valid and within `max_selectors` kernel
  /// selectors; true when it did.
  bool name_side(PolicyList& list, Policy& p, int index, bool local, int percent,
                 std::size_t max_selectors = SIZE_MAX) {
    if (!chance(percent)) return false;
    const std::optional<Family> fam = (local ? p.selector.local : p.selector.remote).family();
    std::vector<AddressSpec> entries;
    const int k = 1 + pick(3);
    while (static_cast<int>(entries.size()) < k) {
      AddressSpec e = address_spec(fam ? fam : std::optional<Family>(chance(50) ? Family::kIPv4 : Family::kIPv6));
      if (!e.is_any()) entries.push_back(e);
    }
    const std::string name = "SET" + std::to_string(index) + (local ? "L" : "R");
    Policy candidate = p;
    (local ? candidate.selector.local : candidate.selector.remote) = AddressSpec::named(name);
    PolicyList probe;
    if (!probe.add_addresses(name, entries).ok()) return false;
    Policy resolved = candidate;
    resolved.selector.local = resolve_address(resolved.selector.local, probe.addresses());
    resolved.selector.remote = resolve_address(resolved.selector.remote, probe.addresses());
    if (!check_policy(resolved).ok() || selector_count(resolved) > max_selectors) return false;
    if (!list.add_addresses(name, entries).ok()) return false;
    p = candidate;
    return true;
  }

 private:
  std::mt19937_64 rng_;
};

}  // namespace storcrypt::policy::testing
