// Property test: for random (list, packet) pairs, the test tool's answer ==
// brute-force first match == the compiled XFRM policies evaluated with the
// kernel's rule (among matching selectors the lowest priority value wins).
#include <gtest/gtest.h>

#include <algorithm>
#include <random>

#include "random_policies.h"
#include "storcrypt/policy/compiler.h"
#include "storcrypt/policy/test_tool.h"

namespace storcrypt::policy {
namespace {
using testing::Gen;

// The kernel's view: xfrm_selector_match() over the flow, then the lowest
// priority. Written from the kernel's rules, independently of the compiler.
bool prefix_match(const IpAddress& a, const IpAddress& net, int len) {
  const int bits = family_bits(a.family);
  if (len == 0) return true;
  const int shift = bits - len;
  return (a.value() >> shift) == (net.value() >> shift);
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

TEST(Equivalence, MergedPortPiecesAndFewestMasksAgree) {
  // Policies whose port sets are given as several overlapping, adjacent and
  // unsorted pieces (not normalized), dense where packets land (0-45): the
  // compiled selectors (fewest value/mask pairs, non-contiguous masks, pairs
  // may overlap) and the old prefix covers both decide every packet as
  // brute-force first match does; the new encoding is never larger.
  constexpr int kLists = 500;
  constexpr int kPacketsPerList = 20;
  Gen g(0x3e46e);
  std::size_t before = 0, after = 0, noncontiguous = 0;
  for (int li = 0; li < kLists; ++li) {
    PolicyList list;
    const int n = 1 + g.pick(8);
    for (int i = 0; i < n; ++i) {
      Policy p = g.policy(i);
      if (p.selector.protocol && protocol_has_ports(*p.selector.protocol)) {
        for (PortSpec* ps : {&p.selector.local_ports, &p.selector.remote_ports}) {
          if (g.chance(30)) continue;
          ps->ranges.clear();
          const int pieces = 1 + g.pick(4);
          for (int k = 0; k < pieces; ++k) {
            const auto lo = static_cast<std::uint16_t>(g.pick(44));
            const auto hi = static_cast<std::uint16_t>(std::min(45, lo + g.pick(g.chance(20) ? 40 : 6)));
            ps->ranges.push_back({lo, hi});
          }
          if (g.chance(5)) ps->ranges.push_back({1, 65534});
        }
      }
      ASSERT_TRUE(list.add(p).ok());
    }
    CompileOptions opt;
    opt.enforcement.default_disposition = static_cast<DefaultDisposition>(g.pick(4));
    CompileOptions prefix_opt = opt;
    prefix_opt.minimize_port_masks = false;
    const auto eff = effective_policies(list, opt.enforcement);
    const CompiledPolicySet set = compile(list, opt);
    const CompiledPolicySet old = compile(list, prefix_opt);
    after += set.policies.size();
    before += old.policies.size();
    for (const PolicySpec& p : set.policies) {
      for (std::uint16_t m : {p.selector.sport_mask, p.selector.dport_mask}) {
        const auto inv = static_cast<std::uint16_t>(~m);
        noncontiguous += (inv & static_cast<std::uint16_t>(inv + 1)) != 0;  // free bits not all at the bottom
      }
    }
    for (int pi = 0; pi < kPacketsPerList; ++pi) {
      Packet pkt = g.packet();
      if (protocol_has_ports(pkt.protocol) && g.chance(80)) {
        pkt.local_port = static_cast<std::uint16_t>(g.pick(48));
        pkt.remote_port = static_cast<std::uint16_t>(g.pick(48));
      }
      const Decision brute = first_match(eff, pkt);
      for (const CompiledPolicySet* c : {&set, &old}) {
        const KernelVerdict kern = kernel_eval(c->policies, pkt);
        ASSERT_EQ(brute.effective_index, kern.effective_index) << "list " << li << " packet " << pi;
        ASSERT_EQ(brute.disposition, kern.disposition);
      }
    }
  }
  EXPECT_LE(after, before);
  EXPECT_GT(noncontiguous, 100u);  // the generator reaches the new masks
  std::printf("selectors before=%zu after=%zu (non-contiguous masks %zu)\n", before, after, noncontiguous);
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

TEST(Equivalence, NamedAddressSelectorsAgree) {
  // The same three-way agreement when policies name address selectors of
  // several entries (addresses, prefixes, ranges, sometimes both families):
  // the compiler and the test tool expand a name into exactly its entries.
  constexpr int kLists = 1500;
  constexpr int kPacketsPerList = 20;
  Gen g(0xadd5e1);
  std::size_t named = 0, named_hits = 0;
  for (int li = 0; li < kLists; ++li) {
    PolicyList list;
    const int n = 1 + g.pick(8);
    for (int i = 0; i < n; ++i) {
      Policy p = g.policy(i);
      for (bool local : {true, false})
        if (g.name_side(list, p, i, local, 50, 2048)) ++named;
      ASSERT_TRUE(list.add(p).ok());
    }
    ASSERT_TRUE(list.undefined_addresses().empty());
    CompileOptions opt;
    opt.enforcement.default_disposition = static_cast<DefaultDisposition>(g.pick(4));
    const auto eff = effective_policies(list, opt.enforcement);
    const CompiledPolicySet set = compile(list, opt);
    auto resolved = list.resolved();
    ASSERT_TRUE(resolved.ok());
    for (int pi = 0; pi < kPacketsPerList; ++pi) {
      const Packet pkt = g.packet();
      const Decision brute = first_match(eff, pkt);
      const KernelVerdict kern = kernel_eval(set.policies, pkt);
      ASSERT_EQ(brute.effective_index, kern.effective_index) << "list " << li << " packet " << pi;
      ASSERT_EQ(brute.disposition, kern.disposition);
      if (brute.effective_index && *brute.effective_index < list.size()) {
        const Policy& d = list.policies()[*brute.effective_index];
        named_hits += d.selector.local.is_named() || d.selector.remote.is_named();
      }
      TestQuery q{pkt.direction,
                  pkt.protocol,
                  pkt.local,
                  pkt.remote,
                  {pkt.local_port, pkt.local_port},
                  {pkt.remote_port, pkt.remote_port}};
      auto rows = test_traffic(list, opt.enforcement, q);
      ASSERT_TRUE(rows.ok());
      ASSERT_EQ(rows->size(), 1u);
      ASSERT_EQ((*rows)[0].first_match, brute.name) << "list " << li << " packet " << pi;
      std::vector<std::string> all;
      for (const Policy& pol : resolved->policies())
        if (matches(pol, pkt)) all.push_back(pol.name);
      std::vector<std::string> listed = (*rows)[0].bypass;
      listed.insert(listed.end(), (*rows)[0].discard.begin(), (*rows)[0].discard.end());
      listed.insert(listed.end(), (*rows)[0].protect.begin(), (*rows)[0].protect.end());
      std::sort(all.begin(), all.end());
      std::sort(listed.begin(), listed.end());
      ASSERT_EQ(listed, all);
    }
  }
  // The generator must put names where packets meet them.
  EXPECT_GT(named, 1000u);
  EXPECT_GT(named_hits, 1000u);
  std::printf("named selectors=%zu packets decided by a policy with a name=%zu\n", named, named_hits);
}

}  // namespace
}  // namespace storcrypt::policy
