// Property test: for random (list, packet) pairs, the test tool's answer ==
// brute-force first match == the compiled XFRM policies evaluated with the
// kernel's rule (among matching selectors the lowest priority value wins).
#include <gtest/gtest.h>

#include <random>

#include "storcrypt/policy/compiler.h"
#include "storcrypt/policy/test_tool.h"

namespace storcrypt::policy {
namespace {

// The kernel's view: xfrm_selector_match() over the flow, then the lowest
// priority. Written from the kernel's rules, independently of the compiler.
bool prefix_match(const IpAddress& a, const IpAddress& net, int len) {
  const int bits = family_bits(a.family);
  if (len == 0) return true;
  const int shift = bits - len;
  return (a.value >> shift) == (net.value >> shift);
}

struct KernelVerdict {
  std::optional<std::size_t> effective_index;
  Disposition disposition = Disposition::kBypass;
};

KernelVerdict kernel_eval(const std::vector<PolicySpec>& pols, const Packet& pkt) {
  const XfrmDir dir = pkt.direction == Direction::kOutbound ? XfrmDir::kOut : XfrmDir::kIn;
  const IpAddress& saddr = dir == XfrmDir::kOut ? pkt.local : pkt.remote;
  const IpAddress& daddr = dir == XfrmDir::kOut ? pkt.remote : pkt.local;
  std::uint16_t sport = 0, dport = 0;
  if (protocol_is_icmp(pkt.protocol)) {
    sport = pkt.local_port;   // type
    dport = pkt.remote_port;  // code
  } else if (protocol_has_ports(pkt.protocol)) {
    sport = dir == XfrmDir::kOut ? pkt.local_port : pkt.remote_port;
    dport = dir == XfrmDir::kOut ? pkt.remote_port : pkt.local_port;
  }
  const PolicySpec* best = nullptr;
  for (const PolicySpec& p : pols) {
    const SelectorSpec& s = p.selector;
    if (p.dir != dir || s.family != saddr.family) continue;
    if (!prefix_match(saddr, s.saddr, s.prefixlen_s) || !prefix_match(daddr, s.daddr, s.prefixlen_d)) continue;
    if (s.proto != 0 && s.proto != pkt.protocol) continue;
    if (((sport ^ s.sport) & s.sport_mask) != 0 || ((dport ^ s.dport) & s.dport_mask) != 0) continue;
    if (!best || p.priority < best->priority) {
      best = &p;
    } else if (p.priority == best->priority) {
      EXPECT_EQ(p.effective_index, best->effective_index) << "equal priority from different list positions";
    }
  }
  if (!best) return {};
  return {best->effective_index, best->action == XfrmAction::kBlock ? Disposition::kDiscard
                                 : best->tmpl                       ? Disposition::kProtect
                                                                    : Disposition::kBypass};
}

class Gen {
 public:
  explicit Gen(std::uint64_t seed) : rng_(seed) {}
  int pick(int n) { return std::uniform_int_distribution<int>(0, n - 1)(rng_); }
  bool chance(int percent) { return pick(100) < percent; }

  IpAddress address(Family f) {
    // Small pools so that selectors and packets meet often.
    if (f == Family::kIPv4) return IpAddress::v4(0x0a000000u + static_cast<std::uint32_t>(pick(64)));
    IpAddress a;
    a.family = Family::kIPv6;
    a.value = (U128{0x20010db8} << 96) + static_cast<U128>(pick(64));
    return a;
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
      s.first = address(*fam);
      s.first.value &= ~host;
      s.last = {*fam, s.first.value | host};
      return s;
    }
    IpAddress a = address(*fam), b = address(*fam);
    if (b.value < a.value) std::swap(a, b);
    if (a.value == b.value) return AddressSpec::single(a);
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
    if (chance(5)) pkt.remote.value += 1000;  // outside every pool
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

 private:
  std::mt19937_64 rng_;
};

TEST(Equivalence, TestToolBruteForceAndKernelRuleAgree) {
  constexpr int kLists = 5000;
  constexpr int kPacketsPerList = 20;  // 100,000 (list, packet) pairs
  Gen g(0x5eed5eed);
  std::size_t protects = 0, discards = 0, defaults = 0, selectors = 0;
  for (int li = 0; li < kLists; ++li) {
    PolicyList list;
    const int n = 1 + g.pick(10);
    for (int i = 0; i < n; ++i) ASSERT_TRUE(list.add(g.policy(i)).ok());
    CompileOptions opt;
    opt.enforcement.default_disposition = static_cast<DefaultDisposition>(g.pick(4));
    const auto eff = effective_policies(list, opt.enforcement);
    const CompiledPolicySet set = compile(list, opt);
    selectors += set.policies.size();
    for (int pi = 0; pi < kPacketsPerList; ++pi) {
      const Packet pkt = g.packet();
      const Decision brute = first_match(eff, pkt);
      const KernelVerdict kern = kernel_eval(set.policies, pkt);
      ASSERT_EQ(brute.effective_index, kern.effective_index) << "list " << li << " packet " << pi;
      ASSERT_EQ(brute.disposition, kern.disposition);

      TestQuery q{pkt.direction,
                  pkt.protocol,
                  pkt.local,
                  pkt.remote,
                  {pkt.local_port, pkt.local_port},
                  {pkt.remote_port, pkt.remote_port}};
      auto rows = test_traffic(list, opt.enforcement, q);
      ASSERT_TRUE(rows.ok());
      ASSERT_EQ(rows->size(), 1u);
      const TestRow& row = (*rows)[0];
      ASSERT_EQ(row.disposition, brute.disposition) << "list " << li << " packet " << pi;
      ASSERT_EQ(row.first_match, brute.name);
      // All matching user policies, by disposition.
      std::vector<std::string> b, d, p;
      for (const Policy& pol : list.policies()) {
        if (!matches(pol, pkt)) continue;
        (pol.disposition == Disposition::kBypass    ? b
         : pol.disposition == Disposition::kDiscard ? d
                                                    : p)
            .push_back(pol.name);
      }
      ASSERT_EQ(row.bypass, b);
      ASSERT_EQ(row.discard, d);
      ASSERT_EQ(row.protect, p);
      protects += brute.disposition == Disposition::kProtect;
      discards += brute.disposition == Disposition::kDiscard;
      defaults += brute.origin != Origin::kUser;
    }
  }
  // The generator must exercise every outcome, or the test proves little.
  EXPECT_GT(protects, 5000u);
  EXPECT_GT(discards, 5000u);
  EXPECT_GT(defaults, 5000u);
  std::printf("protect=%zu discard=%zu default/exempt=%zu selectors=%zu\n", protects, discards, defaults, selectors);
}

TEST(Equivalence, TestToolRangesAgreeWithPointQueries) {
  // A ranged query's rows agree with point queries over the same range.
  Gen g(42);
  for (int li = 0; li < 300; ++li) {
    PolicyList list;
    const int n = 1 + g.pick(8);
    for (int i = 0; i < n; ++i) ASSERT_TRUE(list.add(g.policy(i)).ok());
    EnforcementOptions opt{static_cast<DefaultDisposition>(g.pick(4))};
    Packet pkt = g.packet();
    if (!protocol_has_ports(pkt.protocol)) continue;
    TestQuery q{pkt.direction, pkt.protocol, pkt.local, pkt.remote, {0, 45}, {0, 45}};
    auto rows = test_traffic(list, opt, q);
    ASSERT_TRUE(rows.ok());
    std::size_t cells = 0;
    for (const TestRow& r : *rows) {
      cells += static_cast<std::size_t>(r.local_ports.hi - r.local_ports.lo + 1) *
               (r.remote_ports.hi - r.remote_ports.lo + 1);
      for (std::uint32_t a = r.local_ports.lo; a <= r.local_ports.hi; a += 7) {
        for (std::uint32_t b = r.remote_ports.lo; b <= r.remote_ports.hi; b += 5) {
          pkt.local_port = static_cast<std::uint16_t>(a);
          pkt.remote_port = static_cast<std::uint16_t>(b);
          const Decision d = first_match(effective_policies(list, opt), pkt);
          ASSERT_EQ(d.name, r.first_match);
        }
      }
    }
    EXPECT_EQ(cells, 46u * 46u);  // rows tile the queried rectangle
  }
}

}  // namespace
}  // namespace storcrypt::policy
