#include "storcrypt/policy/installer.h"

#include <gtest/gtest.h>

#include <map>

#include "random_policies.h"
#include "storcrypt/policy/text.h"
#include "storcrypt/testing/fake_xfrm.h"
#include "test_helpers.h"

namespace storcrypt::policy {
namespace {
namespace nl = storcrypt::netlink;
using testing::ip;
using testing::simple;

// One address model (storcrypt/common/ip.h): policy and netlink share it.
const nl::IpAddress& nl_ip(const IpAddress& a) { return a; }

// FakeXfrm's lookup (the netlink module's replica of the kernel's choice).
std::optional<nl::Policy> lookup(const nl::FakeXfrm& x, const Packet& pkt) {
  const bool out = pkt.direction == Direction::kOutbound;
  std::uint16_t sp = 0, dp = 0;
  if (protocol_is_icmp(pkt.protocol)) {
    sp = pkt.local_port;
    dp = pkt.remote_port;
  } else if (protocol_has_ports(pkt.protocol)) {
    sp = out ? pkt.local_port : pkt.remote_port;
    dp = out ? pkt.remote_port : pkt.local_port;
  }
  return x.lookup_policy(out ? nl::Direction::kOut : nl::Direction::kIn, nl_ip(out ? pkt.local : pkt.remote),
                         nl_ip(out ? pkt.remote : pkt.local), pkt.protocol, sp, dp);
}

KeyStore keys() {
  KeyStore ks;
  EXPECT_TRUE(ks.create_random("k", Algorithm::kAesGcm256).ok());
  EXPECT_TRUE(ks.create_random("k-gcm", Algorithm::kAesGcm256).ok());
  EXPECT_TRUE(ks.create_random("k-cbc", Algorithm::kAesCbc256).ok());
  EXPECT_TRUE(ks.create_random("k-sha", Algorithm::kHmacSha1_96).ok());
  return ks;
}

PolicyList sample() {
  PolicyList l;
  Policy prot = simple("protect-5000", Direction::kOutbound, Disposition::kProtect, proto::kTcp, "192.0.2.1",
                       "192.0.2.2", "ANY", "5000-5001");
  prot.protection = testing::esp_gcm(0x1000);
  EXPECT_TRUE(l.add(prot).ok());
  Policy in = simple("protect-5000-in", Direction::kInbound, Disposition::kProtect, proto::kTcp, "192.0.2.1",
                     "192.0.2.2", "5000-5001");
  in.protection = testing::esp_gcm(0x1001);
  EXPECT_TRUE(l.add(in).ok());
  EXPECT_TRUE(
      l.add(simple("nd", Direction::kInbound, Disposition::kBypass, proto::kIcmpv6, "ANY", "ANY", "133-137", "0"))
          .ok());
  EXPECT_TRUE(
      l.add(simple("no-telnet", Direction::kOutbound, Disposition::kDiscard, proto::kTcp, "ANY", "ANY", "ANY", "23"))
          .ok());
  EXPECT_TRUE(l.add(simple("out", Direction::kOutbound, Disposition::kBypass)).ok());
  EXPECT_TRUE(l.add(simple("in", Direction::kInbound, Disposition::kBypass, {}, "0.0.0.0/0")).ok());
  return l;
}

TEST(Installer, KernelModelMapping) {
  auto set = commit(sample(), keys());
  ASSERT_TRUE(set.ok());
  auto ks = to_kernel(*set, keys());
  ASSERT_TRUE(ks.ok()) << ks.error().to_string();
  ASSERT_EQ(ks->sas.size(), 2u);
  EXPECT_EQ(ks->sas[0].enc, nl::EncAlgo::kAesGcm256);
  EXPECT_EQ(ks->sas[0].enc_key.size(), 36u);
  EXPECT_EQ(ks->sas[0].mode, nl::Mode::kTransport);
  EXPECT_EQ(ks->sas[0].dst.to_string(), "192.0.2.2");
  EXPECT_EQ(ks->sas[1].dst.to_string(), "192.0.2.1");
  // ICMPv6 types 133-137 become five exact-type selectors with code 0.
  std::size_t nd = 0;
  for (const auto& p : ks->policies) {
    if (p.selector.icmp_type) {
      ++nd;
      EXPECT_EQ(p.selector.icmp_code, std::optional<std::uint8_t>{0});
    }
  }
  EXPECT_EQ(nd, 5u);
  // ICMP with any type and code is one selector, not 256 x 256.
  PolicyList icmp;
  ASSERT_TRUE(icmp.add(simple("icmp", Direction::kOutbound, Disposition::kBypass, proto::kIcmp)).ok());
  ASSERT_TRUE(
      icmp.add(simple("code3", Direction::kOutbound, Disposition::kBypass, proto::kIcmp, "ANY", "ANY", "ANY", "3"))
          .ok());
  ASSERT_TRUE(
      icmp.add(simple("low", Direction::kInbound, Disposition::kBypass, proto::kIcmp, "ANY", "ANY", "0-127")).ok());
  auto ik = to_kernel(compile(icmp, CompileOptions{{DefaultDisposition::kBypass}}), keys());
  ASSERT_TRUE(ik.ok());
  std::map<std::uint32_t, std::size_t> per_priority;
  for (const auto& p : ik->policies) ++per_priority[p.priority];
  EXPECT_EQ(per_priority[1000], 1u);
  EXPECT_FALSE(ik->policies[0].selector.icmp_type.has_value());
  EXPECT_EQ(per_priority[1001], 256u);  // a code needs a type in the XFRM model: every type with code 3
  EXPECT_EQ(per_priority[1002], 128u);
  // Missing key.
  KeyStore none;
  EXPECT_EQ(to_kernel(*set, none).error().code(), ErrorCode::kNotFound);
}

Policy esp_integrity(const std::string& name, Direction dir, Algorithm integ, const std::string& key) {
  Policy p = simple(name, dir, Disposition::kProtect, proto::kTcp, "192.0.2.1", "192.0.2.2", "ANY", "5201");
  p.protection = Protection{};
  p.protection->service = Service::kEspIntegrity;
  p.protection->spi = dir == Direction::kOutbound ? 0x300 : 0x301;
  p.protection->integrity = integ;
  p.protection->integrity_key = key;
  return p;
}

TEST(Installer, EspIntegrityOnlyMapsToNullCipherAndHmac) {
  KeyStore ks = keys();
  ASSERT_TRUE(ks.create_random("k-sha256", Algorithm::kHmacSha256_128).ok());
  PolicyList l;
  ASSERT_TRUE(l.add(esp_integrity("integ-out", Direction::kOutbound, Algorithm::kHmacSha256_128, "k-sha256")).ok());
  ASSERT_TRUE(l.add(esp_integrity("integ-in", Direction::kInbound, Algorithm::kHmacSha1_96, "k-sha")).ok());
  auto r = to_kernel(compile(l), ks);
  ASSERT_TRUE(r.ok()) << r.error().to_string();
  ASSERT_EQ(r->sas.size(), 2u);
  std::map<std::uint32_t, const nl::Sa*> by_spi;
  for (const auto& sa : r->sas) by_spi[sa.spi] = &sa;
  ASSERT_EQ(by_spi.count(0x300), 1u);
  ASSERT_EQ(by_spi.count(0x301), 1u);
  const nl::Sa& out = *by_spi[0x300];
  EXPECT_EQ(out.proto, nl::XfrmProto::kEsp);
  EXPECT_EQ(out.enc, nl::EncAlgo::kNone);
  EXPECT_EQ(out.enc_key.size(), 0u);
  EXPECT_EQ(out.integ, nl::IntegAlgo::kHmacSha256_128);
  EXPECT_TRUE(out.integ_key.equals(ks.find("k-sha256")->value));  // the named key, not another one
  EXPECT_FALSE(out.integ_key.equals(ks.find("k-sha")->value));
  EXPECT_FALSE(out.allow_no_integrity);
  EXPECT_FALSE(out.integrity_warning());
  EXPECT_TRUE(nl::validate(out).ok());
  const nl::Sa& in = *by_spi[0x301];
  EXPECT_EQ(in.enc, nl::EncAlgo::kNone);
  EXPECT_EQ(in.integ, nl::IntegAlgo::kHmacSha1_96);
  EXPECT_TRUE(in.integ_key.equals(ks.find("k-sha")->value));

  // A missing integrity key is reported by name.
  KeyStore without = keys();
  auto miss = to_kernel(compile(l), without);
  ASSERT_FALSE(miss.ok());
  EXPECT_EQ(miss.error().code(), ErrorCode::kNotFound);
  EXPECT_NE(miss.error().message().find("k-sha256"), std::string::npos);

  // The installer puts them into the (fake) kernel, which validates like the real netlink layer.
  nl::FakeXfrm x;
  PolicyInstaller inst(x);
  auto set = commit(l, ks);
  ASSERT_TRUE(set.ok()) << set.error().to_string();
  auto st = inst.enable(*set, ks);
  ASSERT_TRUE(st.ok()) << st.error().to_string();
  EXPECT_EQ(st->sas_added, 2u);
  auto dumped = x.dump_sas();
  ASSERT_TRUE(dumped.ok());
  std::size_t integ_only = 0;
  for (const auto& s : *dumped) {
    if (s.sa.proto == nl::XfrmProto::kEsp && s.sa.enc == nl::EncAlgo::kNone && s.sa.integ != nl::IntegAlgo::kNone)
      ++integ_only;
  }
  EXPECT_EQ(integ_only, 2u);
}

TEST(Installer, EspIntegrityFromTextBothSides) {
  // The list format an operator writes; the partner imports it with swap.
  const std::string text =
      "Name = integ-out\nDirection = outbound\nLocalAddress = 192.0.2.1\nRemoteAddress = 192.0.2.2\n"
      "Protocol = TCP\nRemotePort = 5201\nAction = PROTECT\nService = ESP-INTEGRITY\nMode = transport\n"
      "SPI = 0x2000\nIntegrityAlgorithm = HMAC-SHA-256-128\nIntegrityKey = k-ab\n\n"
      "Name = out-all\nDirection = outbound\nAction = BYPASS\n\n"
      "Name = in-all\nDirection = inbound\nAction = BYPASS\n";
  KeyStore ks;
  ASSERT_TRUE(ks.create_random("k-ab", Algorithm::kHmacSha256_128).ok());
  for (bool swap : {false, true}) {
    SCOPED_TRACE(swap ? "partner" : "local");
    auto list = import_policies(text, ImportOptions{swap});
    ASSERT_TRUE(list.ok()) << list.error().to_string();
    auto set = commit(*list, ks);
    ASSERT_TRUE(set.ok()) << set.error().to_string();
    auto r = to_kernel(*set, ks);
    ASSERT_TRUE(r.ok()) << r.error().to_string();
    ASSERT_EQ(r->sas.size(), 1u);
    const nl::Sa& sa = r->sas[0];
    EXPECT_EQ(sa.spi, 0x2000u);
    EXPECT_EQ(sa.src.to_string(), "192.0.2.1");  // the same SA on both sides (pa -> pb)
    EXPECT_EQ(sa.dst.to_string(), "192.0.2.2");
    EXPECT_EQ(sa.proto, nl::XfrmProto::kEsp);
    EXPECT_EQ(sa.mode, nl::Mode::kTransport);
    EXPECT_EQ(sa.enc, nl::EncAlgo::kNone);
    EXPECT_TRUE(sa.enc_key.empty());
    EXPECT_EQ(sa.integ, nl::IntegAlgo::kHmacSha256_128);
    EXPECT_TRUE(sa.integ_key.equals(ks.find("k-ab")->value));
  }
}

TEST(Installer, EnableDisableTouchesOnlyItsOwn) {
  nl::FakeXfrm x;
  // Another component's objects (outside the installer's ranges).
  nl::Policy foreign;
  foreign.selector = *nl::Selector::between(*nl::Prefix::parse("203.0.113.0/24"), *nl::Prefix::parse("203.0.113.9"));
  foreign.dir = nl::Direction::kOut;
  foreign.priority = 10;
  x.add_foreign_policy(foreign);
  // strongSwan charon's tunnel (priorities ~68k..600k, reqid from 1, kernel-chosen
  // indexes): inside [1000, 1000 + 2^24), the band storcrypt once took as its own.
  for (auto [dir, prio] : {std::pair{nl::Direction::kOut, 375423u}, std::pair{nl::Direction::kIn, 375423u},
                           std::pair{nl::Direction::kFwd, 375423u}, std::pair{nl::Direction::kOut, 1001u}}) {
    nl::Policy c;
    const bool out = dir == nl::Direction::kOut;
    c.selector = *nl::Selector::between(*nl::Prefix::parse(out ? "192.0.2.0/24" : "198.51.100.0/24"),
                                        *nl::Prefix::parse(out ? "198.51.100.0/24" : "192.0.2.0/24"));
    if (prio == 1001u) c.selector.proto = nl::kProtoUdp;
    c.dir = dir;
    c.priority = prio;
    nl::Template t;
    t.src = *nl::IpAddress::parse(out ? "192.0.2.1" : "198.51.100.1");
    t.dst = *nl::IpAddress::parse(out ? "198.51.100.1" : "192.0.2.1");
    t.reqid = 1;
    c.templates = {t};
    x.add_foreign_policy(c);
  }
  nl::Sa fsa;
  fsa.src = *nl::IpAddress::parse("198.51.100.1");
  fsa.dst = *nl::IpAddress::parse("198.51.100.2");
  fsa.spi = 0x9999;
  fsa.reqid = 7;
  fsa.enc = nl::EncAlgo::kAesGcm256;
  fsa.enc_key = SecretBytes(36);
  x.add_foreign_sa(fsa);
  nl::Sa charon_sa = fsa.clone();
  charon_sa.spi = 0xc1a2b3c4;
  charon_sa.reqid = 1;
  x.add_foreign_sa(charon_sa);
  // Everything that is not the installer's, exactly as it was (x owns all, so it lists all).
  const auto foreign_state = [&] {
    std::string out;
    const nl::Ownership mine = installer_ownership({});
    const auto pols = x.dump_policies();
    const auto sas = x.dump_sas();
    EXPECT_TRUE(pols.ok() && sas.ok());
    if (!pols.ok() || !sas.ok()) return out;
    for (const auto& p : *pols)
      if (!mine.owns(p)) out += p.to_string() + " index=" + std::to_string(p.index) + "\n";
    for (const auto& s : *sas)
      if (!mine.owns(s.sa)) out += s.sa.to_string() + " key=" + std::to_string(s.sa.enc_key.size()) + "\n";
    return out;
  };
  const std::string foreign_before = foreign_state();
  ASSERT_EQ(x.total_policies(), 5u);
  ASSERT_EQ(x.total_sas(), 2u);

  PolicyInstaller inst(x);
  const KeyStore ks = keys();
  auto set = commit(sample(), ks);
  ASSERT_TRUE(set.ok());
  auto st = inst.enable(*set, ks);
  ASSERT_TRUE(st.ok()) << st.error().to_string();
  EXPECT_EQ(st->sas_added, 2u);
  const std::size_t installed = x.total_policies();
  EXPECT_GT(installed, 10u);

  // Enabling the same set again changes nothing.
  const std::size_t muts = x.mutation_count();
  st = inst.enable(*set, ks);
  ASSERT_TRUE(st.ok());
  EXPECT_EQ(x.mutation_count(), muts);
  // New key values (e.g. after a key import) replace the SAs, nothing else.
  const KeyStore fresh = keys();
  st = inst.enable(*set, fresh);
  ASSERT_TRUE(st.ok());
  EXPECT_EQ(st->sas_replaced, 2u);
  EXPECT_EQ(st->policies_added + st->policies_updated + st->policies_deleted, 0u);
  st = inst.enable(*set, ks);
  ASSERT_TRUE(st.ok());

  // Status: the PROTECT policy's SA counters.
  nl::SaId id{*nl::IpAddress::parse("192.0.2.2"), 0x1000, nl::XfrmProto::kEsp, std::nullopt};
  ASSERT_TRUE(x.add_traffic(id, 1500, 3).ok());
  auto rows = inst.status();
  ASSERT_TRUE(rows.ok());
  auto it = std::find_if(rows->begin(), rows->end(), [](const EnforcedPolicy& r) { return r.name == "protect-5000"; });
  ASSERT_NE(it, rows->end());
  EXPECT_EQ(it->action, "PROTECT");
  EXPECT_EQ(it->direction, "out");
  EXPECT_EQ(it->counters.packets, 3u);
  EXPECT_EQ(it->counters.bytes, 1500u);

  // A changed list: only the difference is applied.
  PolicyList l2 = sample();
  ASSERT_TRUE(l2.remove("no-telnet").ok());
  ASSERT_TRUE(l2.remove("protect-5000-in").ok());
  auto set2 = commit(l2, ks);
  ASSERT_TRUE(set2.ok());
  st = inst.enable(*set2, ks);
  ASSERT_TRUE(st.ok()) << st.error().to_string();
  EXPECT_EQ(st->sas_deleted, 1u);
  EXPECT_GT(st->policies_deleted, 0u);
  EXPECT_GT(st->policies_updated, 0u);  // later policies moved up one priority
  EXPECT_EQ(st->policies_added, 0u);

  // Disable: everything of ours goes, the foreign objects stay.
  EXPECT_EQ(foreign_state(), foreign_before);
  // A restarted daemon reconciles with a new installer: still nothing foreign touched.
  PolicyInstaller restarted(x);
  st = restarted.enable(*set2, ks);
  ASSERT_TRUE(st.ok()) << st.error().to_string();
  EXPECT_EQ(st->policies_added + st->policies_updated + st->policies_deleted, 0u);
  EXPECT_EQ(foreign_state(), foreign_before);
  auto d = inst.disable();
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(x.total_policies(), 5u);
  EXPECT_EQ(x.total_sas(), 2u);
  EXPECT_EQ(foreign_state(), foreign_before);
  EXPECT_TRUE(inst.status()->empty());
  EXPECT_TRUE(inst.disable().ok());  // idempotent
}

TEST(Installer, FakeKernelLookupAgreesWithFirstMatch) {
  testing::Gen g(7);
  const int kLists = std::getenv("POLICY_LISTS") ? std::atoi(std::getenv("POLICY_LISTS")) : 100;
  const KeyStore ks = keys();
  for (int li = 0; li < kLists; ++li) {
    PolicyList list;
    const int n = 1 + g.pick(8);
    for (int i = 0; i < n; ++i) ASSERT_TRUE(list.add(g.policy(i)).ok());
    CompileOptions opt;
    opt.enforcement.default_disposition = static_cast<DefaultDisposition>(g.pick(4));
    const CompiledPolicySet set = compile(list, opt);
    auto kset = to_kernel(set, ks);
    ASSERT_TRUE(kset.ok());
    if (kset->policies.size() > 1500) continue;  // FakeXfrm is linear per add: keep each list small
    nl::FakeXfrm x;
    PolicyInstaller inst(x, opt);
    auto st = inst.enable(set, ks);
    ASSERT_TRUE(st.ok()) << st.error().to_string();
    const auto eff = effective_policies(list, opt.enforcement);
    for (int pi = 0; pi < 50; ++pi) {
      const Packet pkt = g.packet();
      const Decision d = first_match(eff, pkt);
      const auto k = lookup(x, pkt);
      if (!d.effective_index) {
        ASSERT_FALSE(k.has_value());
        continue;
      }
      ASSERT_TRUE(k.has_value()) << "list " << li << " packet " << pi;
      ASSERT_EQ(k->priority, (eff[*d.effective_index].origin == Origin::kUser ? opt.priority_base
                                                                               : opt.default_priority_base) +
                                 *d.effective_index);
      const Disposition kd = k->action == nl::PolicyAction::kBlock ? Disposition::kDiscard
                             : k->templates.empty()                ? Disposition::kBypass
                                                                   : Disposition::kProtect;
      ASSERT_EQ(kd, d.disposition);
    }
    ASSERT_TRUE(inst.disable().ok());
    ASSERT_EQ(x.total_policies(), 0u);
  }
}

}  // namespace
}  // namespace storcrypt::policy

namespace storcrypt::policy {
namespace {

TEST(Installer, KernelRefusalIsReportedAndRetryCompletes) {
  nl::FakeXfrm x;
  PolicyInstaller inst(x);
  const KeyStore ks = keys();
  auto set = commit(sample(), ks);
  ASSERT_TRUE(set.ok());
  x.fail_next("add_policy", Error(ErrorCode::kKernel, "injected refusal"));
  auto st = inst.enable(*set, ks);
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.error().message().find("injected refusal"), std::string::npos);
  // Enabling again reconciles whatever was half done.
  st = inst.enable(*set, ks);
  ASSERT_TRUE(st.ok()) << st.error().to_string();
  EXPECT_EQ(st->policies_added, 1u);
  const std::size_t full = x.total_policies();
  st = inst.enable(*set, ks);
  ASSERT_TRUE(st.ok());
  EXPECT_EQ(x.total_policies(), full);
  EXPECT_EQ(st->policies_added + st->sas_added, 0u);
}


// charon's tunnel 192.0.2.0/24 <-> 198.51.100.0/24 (priority 375423, reqid 1,
// kernel-chosen indexes) and its passthrough for 192.0.2.0/24 (priority 68015).
void add_charon(nl::FakeXfrm& x) {
  for (auto [dir, prio, src, dst] :
       {std::tuple{nl::Direction::kOut, 375423u, "192.0.2.0/24", "198.51.100.0/24"},
        std::tuple{nl::Direction::kIn, 375423u, "198.51.100.0/24", "192.0.2.0/24"},
        std::tuple{nl::Direction::kOut, 68015u, "192.0.2.0/24", "192.0.2.0/24"}}) {
    nl::Policy c;
    c.selector = *nl::Selector::between(*nl::Prefix::parse(src), *nl::Prefix::parse(dst));
    c.dir = dir;
    c.priority = prio;
    if (prio == 375423u) {
      nl::Template t;
      t.src = *nl::IpAddress::parse(dir == nl::Direction::kOut ? "192.0.2.1" : "198.51.100.1");
      t.dst = *nl::IpAddress::parse(dir == nl::Direction::kOut ? "198.51.100.1" : "192.0.2.1");
      t.reqid = 1;
      c.templates = {t};
    }
    x.add_foreign_policy(c);
  }
}

const Diagnostic* warning_for(const std::vector<Diagnostic>& ds, const std::string& policy) {
  for (const auto& d : ds)
    if (d.policy == policy) return &d;
  return nullptr;
}

TEST(Installer, CommitWarnsWhenOurSelectorsShadowAForeignPolicy) {
  nl::FakeXfrm x;
  add_charon(x);
  PolicyInstaller inst(x);
  PolicyList l;
  // Overlaps charon's outbound tunnel partly (TCP to one host of its remote net).
  ASSERT_TRUE(l.add(simple("db", Direction::kOutbound, Disposition::kDiscard, proto::kTcp, "ANY", "198.51.100.7",
                           "ANY", "5432"))
                  .ok());
  // Elsewhere entirely: no warning.
  ASSERT_TRUE(l.add(simple("lab", Direction::kOutbound, Disposition::kBypass, {}, "ANY", "203.0.113.0/24")).ok());
  // Everything inbound: covers charon's inbound tunnel entirely.
  ASSERT_TRUE(l.add(simple("in", Direction::kInbound, Disposition::kBypass)).ok());
  CompileOptions opt;
  opt.enforcement.default_disposition = DefaultDisposition::kDeny;  // catch-alls: below charon, no warning
  auto set = commit(l, KeyStore{}, opt);
  ASSERT_TRUE(set.ok()) << set.error().to_string();
  auto w = inst.precedence_warnings(*set);
  ASSERT_TRUE(w.ok()) << w.error().to_string();
  for (const auto& d : *w) EXPECT_EQ(d.severity, Severity::kWarning);
  const Diagnostic* db = warning_for(*w, "db");
  ASSERT_NE(db, nullptr) << ::testing::PrintToString(w->size());
  EXPECT_NE(db->message.find("at least partly"), std::string::npos) << db->message;
  EXPECT_NE(db->message.find("priority 375423"), std::string::npos) << db->message;
  EXPECT_NE(db->message.find("198.51.100.0/24"), std::string::npos) << db->message;
  EXPECT_NE(db->fix.find("PRECEDENCE"), std::string::npos);
  EXPECT_EQ(db->message.find("68015"), std::string::npos) << "the passthrough does not overlap: " << db->message;
  const Diagnostic* in = warning_for(*w, "in");
  ASSERT_NE(in, nullptr);
  EXPECT_NE(in->message.find("entirely"), std::string::npos) << in->message;
  EXPECT_EQ(in->message.find("at least partly"), std::string::npos) << in->message;
  EXPECT_EQ(warning_for(*w, "lab"), nullptr);
  // The control exemptions (IKE/KMIP ports, any address) and the default's
  // catch-alls sit below charon: they never take precedence, never warn.
  EXPECT_EQ(w->size(), 2u);
  for (const auto& d : *w) EXPECT_NE(d.policy.rfind("(", 0), 0u) << d.policy << ": " << d.message;
  EXPECT_EQ(x.mutation_count(), 0u) << "the check only reads the kernel";

  // No foreign policy in the kernel: no warning at all.
  nl::FakeXfrm empty;
  PolicyInstaller alone(empty);
  auto none = alone.precedence_warnings(*set);
  ASSERT_TRUE(none.ok());
  EXPECT_TRUE(none->empty());
  // Our own installed policies are not foreign: enabling the list and checking again adds nothing.
  ASSERT_TRUE(alone.enable(*set, KeyStore{}).ok());
  EXPECT_TRUE(alone.precedence_warnings(*set)->empty());
}

TEST(Installer, DefaultCatchAllsYieldToForeignPoliciesOurEntriesDoNot) {
  nl::FakeXfrm x;
  add_charon(x);
  PolicyInstaller inst(x);
  PolicyList l;
  ASSERT_TRUE(l.add(simple("db", Direction::kOutbound, Disposition::kDiscard, proto::kTcp, "ANY", "198.51.100.7",
                           "ANY", "5432"))
                  .ok());
  ASSERT_TRUE(l.add(simple("in", Direction::kInbound, Disposition::kBypass, {}, "ANY", "203.0.113.0/24")).ok());
  CompileOptions opt;
  opt.enforcement.default_disposition = DefaultDisposition::kDenyAll;
  auto set = commit(l, KeyStore{}, opt);
  ASSERT_TRUE(set.ok()) << set.error().to_string();
  ASSERT_TRUE(inst.enable(*set, KeyStore{}).ok());
  const auto out = [&](const char* dst, std::uint16_t dport) {
    return x.lookup_policy(nl::Direction::kOut, *nl::IpAddress::parse("192.0.2.1"), *nl::IpAddress::parse(dst),
                           nl::kProtoTcp, 40000, dport);
  };
  // charon's tunnel still carries its traffic under our DENYALL default ...
  auto tunnel = out("198.51.100.9", 80);
  ASSERT_TRUE(tunnel.has_value());
  EXPECT_EQ(tunnel->priority, 375423u);
  EXPECT_FALSE(tunnel->templates.empty());
  // ... our explicit entry wins where it names the traffic ...
  auto db = out("198.51.100.7", 5432);
  ASSERT_TRUE(db.has_value());
  EXPECT_EQ(db->action, nl::PolicyAction::kBlock);
  EXPECT_LT(db->priority, 68000u);
  // ... and traffic no one names meets our catch-all.
  auto other = out("203.0.113.50", 80);
  ASSERT_TRUE(other.has_value());
  EXPECT_EQ(other->action, nl::PolicyAction::kBlock);
  EXPECT_GE(other->priority, opt.default_priority_base);
}

}  // namespace
}  // namespace storcrypt::policy
