#include "storcrypt/policy/compiler.h"

#include <gtest/gtest.h>

#include "test_helpers.h"

namespace storcrypt::policy {
namespace {
using testing::ip;
using testing::shadow_example;
using testing::simple;

KeyStore keys_for_tests() {
  KeyStore ks;
  EXPECT_TRUE(ks.create_random("k-gcm", Algorithm::kAesGcm256).ok());
  EXPECT_TRUE(ks.create_random("k-cbc", Algorithm::kAesCbc128).ok());
  EXPECT_TRUE(ks.create_random("k-sha", Algorithm::kHmacSha256_128).ok());
  return ks;
}

bool has(const ValidationReport& r, Severity s, const std::string& fragment) {
  for (const auto& d : r.diagnostics) {
    if (d.severity == s && (d.policy + ": " + d.message).find(fragment) != std::string::npos) return true;
  }
  return false;
}

TEST(Validate, ShadowedProtectIsWarned) {
  auto set = commit(shadow_example(), keys_for_tests(), CompileOptions{{DefaultDisposition::kBypass}});
  ASSERT_TRUE(set.ok()) << set.error().to_string();
  EXPECT_TRUE(has(set->report, Severity::kWarning,
                  "protect-5000: is shadowed: it never matches, because earlier policy 'bypass-tcp'"))
      << set->report.to_string();
  // Moved to the top it is no longer shadowed, and bypass-tcp is not either.
  PolicyList l = shadow_example();
  ASSERT_TRUE(l.move("protect-5000", 0).ok());
  auto rep = validate(l, keys_for_tests(), CompileOptions{{DefaultDisposition::kBypass}});
  EXPECT_FALSE(has(rep, Severity::kWarning, "shadowed")) << rep.to_string();
  // A policy covered only by the union of two earlier ones is found too.
  PolicyList u;
  ASSERT_TRUE(
      u.add(simple("low", Direction::kOutbound, Disposition::kDiscard, proto::kUdp, "ANY", "ANY", "ANY", "0-999"))
          .ok());
  ASSERT_TRUE(
      u.add(simple("high", Direction::kOutbound, Disposition::kBypass, proto::kUdp, "ANY", "ANY", "ANY", "1000-65535"))
          .ok());
  ASSERT_TRUE(u.add(simple("late", Direction::kOutbound, Disposition::kBypass, proto::kUdp, "192.0.2.0/24")).ok());
  ASSERT_TRUE(
      u.add(simple("dup", Direction::kOutbound, Disposition::kDiscard, proto::kUdp, "ANY", "ANY", "ANY", "10-20"))
          .ok());
  ASSERT_TRUE(u.add(simple("in", Direction::kInbound, Disposition::kBypass)).ok());
  rep = validate(u, KeyStore{}, CompileOptions{{DefaultDisposition::kBypass}});
  EXPECT_TRUE(has(rep, Severity::kWarning, "late: is shadowed")) << rep.to_string();
  EXPECT_TRUE(has(rep, Severity::kWarning, "dup: is redundant")) << rep.to_string();
  EXPECT_FALSE(has(rep, Severity::kWarning, "high:")) << rep.to_string();
}

TEST(Validate, Errors) {
  PolicyList l;
  ASSERT_TRUE(l.add(simple("out", Direction::kOutbound, Disposition::kBypass)).ok());
  auto rep = validate(l, KeyStore{});
  EXPECT_TRUE(has(rep, Severity::kError, "no inbound policy")) << rep.to_string();
  EXPECT_FALSE(commit(l, KeyStore{}).ok());
  EXPECT_NE(commit(l, KeyStore{}).error().message().find("no inbound policy"), std::string::npos);

  Policy a = simple("a", Direction::kInbound, Disposition::kProtect, proto::kTcp, "192.0.2.1", "192.0.2.2");
  a.protection = testing::esp_gcm(0x1000, "missing");
  ASSERT_TRUE(l.insert(0, a).ok());
  Policy b = simple("b", Direction::kInbound, Disposition::kProtect, proto::kUdp, "192.0.2.1", "192.0.2.2");
  b.protection = testing::esp_gcm(0x1000, "k-cbc");
  ASSERT_TRUE(l.insert(1, b).ok());
  rep = validate(l, keys_for_tests());
  EXPECT_TRUE(has(rep, Severity::kError, "a: key 'missing' does not exist")) << rep.to_string();
  EXPECT_TRUE(has(rep, Severity::kError, "b: SPI 0x1000 is already used by policy 'a'")) << rep.to_string();
  EXPECT_TRUE(has(rep, Severity::kError, "b: key 'k-cbc' is a AES-CBC-128 key, the policy uses AES-GCM-256"))
      << rep.to_string();

  PolicyList big;
  ASSERT_TRUE(big.add(simple("wide", Direction::kOutbound, Disposition::kBypass, proto::kTcp, "10.0.0.1-10.255.255.254",
                             "10.0.0.1-10.255.255.254", "1-65534", "1-65534"))
                  .ok());
  ASSERT_TRUE(big.add(simple("in", Direction::kInbound, Disposition::kBypass)).ok());
  rep = validate(big, KeyStore{});
  EXPECT_TRUE(has(rep, Severity::kError, "wide: expands into")) << rep.to_string();
}

TEST(Validate, IcmpAndControlTrafficWarnings) {
  PolicyList l;
  ASSERT_TRUE(l.add(simple("out", Direction::kOutbound, Disposition::kBypass)).ok());
  ASSERT_TRUE(l.add(simple("in-v4", Direction::kInbound, Disposition::kBypass, {}, "0.0.0.0/0")).ok());
  // IPv6Only: unmatched inbound IPv6 (ND included) is discarded.
  auto rep = validate(l, KeyStore{});
  EXPECT_TRUE(has(rep, Severity::kWarning, "inbound ICMPv6 neighbour/router discovery")) << rep.to_string();
  EXPECT_FALSE(has(rep, Severity::kWarning, "outbound ICMPv6")) << rep.to_string();
  EXPECT_FALSE(has(rep, Severity::kWarning, "ICMP would be")) << rep.to_string();
  ASSERT_TRUE(
      l.insert(0, simple("nd", Direction::kInbound, Disposition::kBypass, proto::kIcmpv6, "ANY", "ANY", "133-137"))
          .ok());
  rep = validate(l, KeyStore{});
  EXPECT_FALSE(has(rep, Severity::kWarning, "neighbour")) << rep.to_string();
  ASSERT_TRUE(l.insert(0, simple("no-ping", Direction::kOutbound, Disposition::kDiscard, proto::kIcmp)).ok());
  ASSERT_TRUE(l.insert(0, simple("no-kmip", Direction::kOutbound, Disposition::kDiscard, proto::kTcp, "ANY", "ANY",
                                 "ANY", "5696"))
                  .ok());
  rep = validate(l, KeyStore{});
  EXPECT_TRUE(has(rep, Severity::kWarning, "outbound ICMP would be (partly) discarded by 'no-ping'"))
      << rep.to_string();
  EXPECT_TRUE(has(rep, Severity::kWarning, "control traffic (KMIP) would be discarded by 'no-kmip'"))
      << rep.to_string();
  rep = validate(l, KeyStore{}, CompileOptions{{DefaultDisposition::kDenyAll}});
  EXPECT_TRUE(has(rep, Severity::kWarning, "DENYALL")) << rep.to_string();
}

TEST(Compile, PrioritiesFollowListOrder) {
  auto set = commit(shadow_example(), keys_for_tests(), CompileOptions{{DefaultDisposition::kDeny}});
  ASSERT_TRUE(set.ok());
  // Distinct priority per effective-list position, increasing.
  std::map<std::size_t, std::uint32_t> prio;
  for (const PolicySpec& p : set->policies) {
    auto [it, fresh] = prio.emplace(p.effective_index, p.priority);
    EXPECT_EQ(it->second, p.priority);
  }
  std::uint32_t last = 0;
  for (auto [idx, pr] : prio) {
    EXPECT_GT(pr, last);
    last = pr;
  }
  // Precedence bands: the user's entries above other daemons' policies
  // (charon: ~68k..600k), the control exemptions and the default's catch-alls below.
  bool saw_default = false, saw_control = false;
  for (const PolicySpec& p : set->policies) {
    if (p.origin == Origin::kUser) {
      EXPECT_EQ(p.priority, 1000u + p.effective_index);
      EXPECT_LT(p.priority, 68000u);
    } else {
      (p.origin == Origin::kDefault ? saw_default : saw_control) = true;
      EXPECT_EQ(p.priority, CompileOptions{}.default_priority_base + p.effective_index);
      EXPECT_GT(p.priority, 600000u);
    }
  }
  EXPECT_TRUE(saw_control) << "DENY exempts control traffic";
  EXPECT_TRUE(saw_default) << "DENY has catch-alls";
  // bypass-tcp comes first, as a v4 and a v6 selector.
  EXPECT_EQ(set->policies[0].source, "bypass-tcp");
  EXPECT_EQ(set->policies[0].selector.proto, proto::kTcp);
  EXPECT_EQ(set->policies[0].priority, 1000u);
  // The PROTECT policy: remote ports 5000-5001 as one port/mask, with its SA.
  auto it = std::find_if(set->policies.begin(), set->policies.end(),
                         [](const PolicySpec& p) { return p.source == "protect-5000"; });
  ASSERT_NE(it, set->policies.end());
  EXPECT_EQ(it->priority, 1001u);
  EXPECT_EQ(it->selector.dport, 5000);
  EXPECT_EQ(it->selector.dport_mask, 0xfffe);
  EXPECT_EQ(it->selector.sport_mask, 0);
  ASSERT_TRUE(it->tmpl);
  EXPECT_EQ(it->tmpl->spi, 0x1000u);
  ASSERT_EQ(set->sas.size(), 1u);
  EXPECT_EQ(set->sas[0].daddr, ip("192.0.2.2"));
  ASSERT_TRUE(set->sas[0].aead);
  EXPECT_EQ(set->sas[0].aead->kernel_name, "rfc4106(gcm(aes))");
  EXPECT_EQ(set->sas[0].aead->bits, 128u);
  EXPECT_EQ(set->sas[0].reqid, it->tmpl->reqid);
  // DENY: the catch-all block policies come last.
  EXPECT_EQ(set->policies.back().action, XfrmAction::kBlock);
  EXPECT_EQ(set->policies.back().origin, Origin::kDefault);
}

TEST(Compile, RangesAndInboundPortOrder) {
  PolicyList l;
  ASSERT_TRUE(l.add(simple("r", Direction::kInbound, Disposition::kBypass, proto::kUdp, "192.0.2.1-192.0.2.6",
                           "198.51.100.7", "1000-1001", "53"))
                  .ok());
  ASSERT_TRUE(l.add(simple("same", Direction::kInbound, Disposition::kDiscard, proto::kUdp, "192.0.2.1-192.0.2.6",
                           "198.51.100.7", "1000-1001", "53"))
                  .ok());
  ASSERT_TRUE(l.add(simple("o", Direction::kOutbound, Disposition::kBypass)).ok());
  auto set = compile(l, CompileOptions{{DefaultDisposition::kBypass}});
  std::vector<const PolicySpec*> r;
  for (const auto& p : set.policies) {
    if (p.source == "r") r.push_back(&p);
    EXPECT_NE(p.source, "same");  // identical selectors: the later one is dropped
  }
  ASSERT_EQ(r.size(), 4u);  // .1/32 .2/31 .4/31 .6/32
  for (const PolicySpec* p : r) {
    EXPECT_EQ(p->dir, XfrmDir::kIn);
    EXPECT_EQ(p->selector.saddr, ip("198.51.100.7"));  // inbound: source = remote
    EXPECT_EQ(p->selector.prefixlen_s, 32);
    EXPECT_EQ(p->selector.sport, 53);    // remote port
    EXPECT_EQ(p->selector.dport, 1000);  // local ports 1000-1001
    EXPECT_EQ(p->selector.dport_mask, 0xfffe);
  }
  EXPECT_EQ(r[1]->selector.daddr, ip("192.0.2.2"));
  EXPECT_EQ(r[1]->selector.prefixlen_d, 31);
}

TEST(Compile, PortPiecesMergedAndKernelSizeWarning) {
  // Ports given as overlapping/adjacent pieces compile like their union;
  // 10-11,14-15 is one value/mask pair.
  Policy p = simple("pieces", Direction::kOutbound, Disposition::kBypass, proto::kTcp, "192.0.2.1", "192.0.2.2");
  p.selector.remote_ports.ranges = {{14, 15}, {10, 11}, {11, 11}};
  EXPECT_EQ(selector_count(p), 1u);
  CompileOptions prefix_opt;
  prefix_opt.minimize_port_masks = false;
  EXPECT_EQ(selector_count(p, prefix_opt), 2u);
  PolicyList l;
  ASSERT_TRUE(l.add(p).ok());
  ASSERT_TRUE(l.add(simple("in-all", Direction::kInbound, Disposition::kBypass)).ok());
  auto set = compile(l, CompileOptions{{DefaultDisposition::kBypass}});
  ASSERT_EQ(set.policies.front().source, "pieces");
  EXPECT_EQ(set.policies.front().selector.dport, 10);
  EXPECT_EQ(set.policies.front().selector.dport_mask, 0xfffa);
  // Over the limit: a warning with the memory, not an error.
  CompileOptions opt{{DefaultDisposition::kBypass}};
  EXPECT_EQ(kernel_policy_count(set), set.policies.size());
  opt.warn_kernel_policies = 1;
  auto c = commit(l, keys_for_tests(), opt);
  ASSERT_TRUE(c.ok()) << c.error().to_string();
  EXPECT_TRUE(has(c->report, Severity::kWarning, "kernel policies (warning limit 1)")) << c->report.to_string();
  EXPECT_TRUE(has(c->report, Severity::kWarning, "MiB of kernel memory")) << c->report.to_string();
  opt.warn_kernel_policies = 0;  // never
  EXPECT_FALSE(has(commit(l, keys_for_tests(), opt)->report, Severity::kWarning, "kernel policies"));
  EXPECT_FALSE(has(commit(l, keys_for_tests())->report, Severity::kWarning, "kernel policies"));  // default 100,000
  // ICMP: one kernel policy per type a pair matches.
  PolicyList icmp;
  ASSERT_TRUE(icmp.add(simple("icmp", Direction::kOutbound, Disposition::kBypass, proto::kIcmp, "ANY", "ANY", "0-3"))
                  .ok());
  ASSERT_TRUE(icmp.add(simple("in-all", Direction::kInbound, Disposition::kBypass)).ok());
  auto iset = compile(icmp, CompileOptions{{DefaultDisposition::kBypass}});
  EXPECT_EQ(kernel_policy_count(iset), iset.policies.size() - 1 + 4);
}

TEST(Compile, SaAlgorithms) {
  KeyStore ks = keys_for_tests();
  PolicyList l;
  Policy cbc = simple("cbc", Direction::kOutbound, Disposition::kProtect, {}, "192.0.2.1", "192.0.2.2");
  cbc.protection = Protection{};
  cbc.protection->spi = 0x200;
  cbc.protection->encryption = Algorithm::kAesCbc128;
  cbc.protection->encryption_key = "k-cbc";
  cbc.protection->integrity = Algorithm::kHmacSha256_128;
  cbc.protection->integrity_key = "k-sha";
  ASSERT_TRUE(l.add(cbc).ok());
  Policy integ = simple("integ", Direction::kInbound, Disposition::kProtect, {}, "192.0.2.1", "192.0.2.2");
  integ.protection = Protection{};
  integ.protection->service = Service::kEspIntegrity;
  integ.protection->spi = 0x201;
  integ.protection->integrity = Algorithm::kHmacSha256_128;
  integ.protection->integrity_key = "k-sha";
  ASSERT_TRUE(l.add(integ).ok());
  auto set = commit(l, ks);
  ASSERT_TRUE(set.ok()) << set.error().to_string();
  ASSERT_EQ(set->sas.size(), 2u);
  EXPECT_EQ(set->sas[0].crypt->kernel_name, "cbc(aes)");
  EXPECT_EQ(set->sas[0].auth->kernel_name, "hmac(sha256)");
  EXPECT_EQ(set->sas[0].auth->bits, 128u);
  EXPECT_EQ(set->sas[1].crypt->kernel_name, "ecb(cipher_null)");
  EXPECT_EQ(set->sas[1].saddr, ip("192.0.2.2"));  // inbound SA: from the partner to us
  EXPECT_EQ(set->sas[1].daddr, ip("192.0.2.1"));
}

}  // namespace
}  // namespace storcrypt::policy
