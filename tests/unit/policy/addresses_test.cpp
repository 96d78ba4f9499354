// Named address selectors (e.g. PRODUCTION): parsing, the list's editing
// rules, the policy file, validation, the compiler's and the test tool's
// expansion.
#include <gtest/gtest.h>

#include "storcrypt/policy/compiler.h"
#include "storcrypt/policy/installer.h"
#include "storcrypt/policy/test_tool.h"
#include "storcrypt/policy/text.h"
#include "test_helpers.h"

namespace storcrypt::policy {
namespace {
using testing::addr;
using testing::ip;
using testing::simple;

PolicyList production_list() {
  PolicyList l;
  EXPECT_TRUE(l.add_addresses("PRODUCTION", {addr("192.0.2.0/24"), addr("198.51.100.7"),
                                             addr("203.0.113.10-203.0.113.20")})
                  .ok());
  EXPECT_TRUE(l.add(simple("to-prod", Direction::kOutbound, Disposition::kDiscard, proto::kTcp, "ANY",
                           "PRODUCTION", "ANY", "22"))
                  .ok());
  EXPECT_TRUE(l.add(simple("out", Direction::kOutbound, Disposition::kBypass)).ok());
  EXPECT_TRUE(l.add(simple("in", Direction::kInbound, Disposition::kBypass)).ok());
  return l;
}

TEST(AddressSelectors, ANameParsesAsNamedAndAddressesStayAddresses) {
  auto a = AddressSpec::parse(" PRODUCTION ");
  ASSERT_TRUE(a.ok());
  EXPECT_TRUE(a->is_named());
  EXPECT_EQ(a->to_string(), "PRODUCTION");
  EXPECT_TRUE(addr("any").is_any());
  EXPECT_EQ(addr("192.0.2.1").kind, AddressSpec::Kind::kSingle);
  EXPECT_EQ(addr("2001:db8::/32").kind, AddressSpec::Kind::kPrefix);
  EXPECT_FALSE(AddressSpec::parse("1prod").ok()) << "a name starts with a letter";
  EXPECT_FALSE(AddressSpec::parse("192.0.2.300").ok());
  EXPECT_FALSE(valid_address_name("ANY"));
  EXPECT_FALSE(valid_address_name(std::string(65, 'a')));
  EXPECT_TRUE(valid_address_name("db_hosts-2"));
}

TEST(AddressSelectors, EditingRules) {
  PolicyList l = production_list();
  // Entries are merged, duplicates skipped.
  ASSERT_TRUE(l.add_addresses("PRODUCTION", {addr("198.51.100.7"), addr("2001:db8::/64")}).ok());
  EXPECT_EQ(l.addresses().at("PRODUCTION").size(), 4u);
  // No ANY, no names as entries, no bad names, no empty list.
  EXPECT_FALSE(l.add_addresses("X", {addr("ANY")}).ok());
  EXPECT_FALSE(l.add_addresses("X", {AddressSpec::named("PRODUCTION")}).ok());
  EXPECT_FALSE(l.add_addresses("9x", {addr("192.0.2.1")}).ok());
  EXPECT_FALSE(l.add_addresses("X", {}).ok());
  EXPECT_EQ(l.addresses().count("X"), 0u);
  // Remove is refused while a policy uses the name, and names it.
  auto in_use = l.remove_addresses("PRODUCTION");
  ASSERT_FALSE(in_use.ok());
  EXPECT_EQ(in_use.error().code(), ErrorCode::kConflict);
  EXPECT_EQ(in_use.error().name(), "xAddressInUse");
  EXPECT_NE(in_use.error().message().find("'to-prod'"), std::string::npos) << in_use.error().message();
  EXPECT_EQ(l.remove_addresses("NOPE").error().code(), ErrorCode::kNotFound);
  ASSERT_TRUE(l.remove("to-prod").ok());
  EXPECT_TRUE(l.remove_addresses("PRODUCTION").ok());
  EXPECT_TRUE(l.addresses().empty());
}

TEST(AddressSelectors, PolicyFileRoundTripAndErrors) {
  const PolicyList l = production_list();
  const std::string text = export_policies(l);
  EXPECT_NE(text.find("Address = PRODUCTION\nEntries = 192.0.2.0/24, 198.51.100.7, 203.0.113.10-203.0.113.20\n"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("RemoteAddress = PRODUCTION"), std::string::npos) << text;
  auto back = import_policies(text);
  ASSERT_TRUE(back.ok()) << back.error().to_string();
  EXPECT_EQ(*back, l);
  // The partner's view keeps the names (on the other side).
  auto swapped = import_policies(text, {true});
  ASSERT_TRUE(swapped.ok());
  EXPECT_EQ(swapped->find("to-prod")->selector.local.to_string(), "PRODUCTION");
  EXPECT_EQ(swapped->addresses(), l.addresses());

  auto no_entries = import_policies("Address = A\n\nName = x\nDirection = in\nAction = BYPASS\n");
  ASSERT_FALSE(no_entries.ok());
  EXPECT_NE(no_entries.error().message().find("line 1"), std::string::npos) << no_entries.error().message();
  auto bad_entry = import_policies("Address = A\nEntries = 192.0.2.1, 192.0.2.999\n");
  ASSERT_FALSE(bad_entry.ok());
  EXPECT_NE(bad_entry.error().message().find("line 2"), std::string::npos) << bad_entry.error().message();
  auto twice = import_policies("Address = A\nEntries = 192.0.2.1\n\nAddress = A\nEntries = 192.0.2.2\n");
  ASSERT_FALSE(twice.ok());
  EXPECT_NE(twice.error().message().find("twice"), std::string::npos) << twice.error().message();
  auto stray = import_policies("Address = A\nEntries = 192.0.2.1\nDirection = in\n");
  ASSERT_FALSE(stray.ok());
  EXPECT_NE(stray.error().message().find("does not belong"), std::string::npos) << stray.error().message();
}

TEST(AddressSelectors, ValidateAndCommitRefuseAnUndefinedName) {
  PolicyList l;
  ASSERT_TRUE(l.add(simple("x", Direction::kOutbound, Disposition::kBypass, {}, "ANY", "PRODUCTION")).ok());
  ASSERT_TRUE(l.add(simple("in", Direction::kInbound, Disposition::kBypass)).ok());
  KeyStore keys;
  auto rep = validate(l, keys);
  ASSERT_FALSE(rep.ok());
  EXPECT_NE(rep.to_string().find("address selector 'PRODUCTION' is not defined"), std::string::npos)
      << rep.to_string();
  auto c = commit(l, keys);
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.error().message().find("PRODUCTION"), std::string::npos);
  TestQuery q{Direction::kOutbound, proto::kTcp, ip("192.0.2.1"), ip("192.0.2.2")};
  auto t = test_traffic(l, {}, q);
  ASSERT_FALSE(t.ok());
  EXPECT_EQ(t.error().name(), "xAddressUndefined");
}

TEST(AddressSelectors, CompilerAndTestToolExpandTheEntries) {
  const PolicyList l = production_list();
  KeyStore keys;
  auto set = commit(l, keys);
  ASSERT_TRUE(set.ok()) << set.error().to_string();
  std::vector<std::string> dsts;
  for (const PolicySpec& p : set->policies) {
    if (p.source != "to-prod") continue;
    EXPECT_EQ(p.action, XfrmAction::kBlock);
    dsts.push_back(p.selector.daddr.to_string() + "/" + std::to_string(p.selector.prefixlen_d));
  }
  // 192.0.2.0/24, 198.51.100.7/32 and 203.0.113.10-20 as prefixes, in address order.
  EXPECT_EQ(dsts, (std::vector<std::string>{"192.0.2.0/24", "198.51.100.7/32", "203.0.113.10/31", "203.0.113.12/30",
                                            "203.0.113.16/30", "203.0.113.20/32"}));
  auto decided = [&](const std::string& remote) {
    TestQuery q{Direction::kOutbound, proto::kTcp, ip("10.0.0.1"), ip(remote), {1000, 1000}, {22, 22}};
    auto rows = test_traffic(l, {DefaultDisposition::kBypass}, q);
    EXPECT_TRUE(rows.ok());
    return rows.ok() && rows->size() == 1 ? (*rows)[0].first_match : std::string("?");
  };
  EXPECT_EQ(decided("198.51.100.7"), "to-prod");
  EXPECT_EQ(decided("203.0.113.20"), "to-prod");
  EXPECT_EQ(decided("192.0.2.200"), "to-prod");
  EXPECT_EQ(decided("198.51.100.8"), "out");
  EXPECT_EQ(decided("203.0.113.21"), "out");
}

TEST(AddressSelectors, FamiliesOfANameDecideWhereItApplies) {
  PolicyList l;
  ASSERT_TRUE(l.add_addresses("V6", {addr("2001:db8::/64")}).ok());
  // A name of IPv6 entries against an IPv4 remote address: no family left.
  ASSERT_TRUE(l.add(simple("x", Direction::kOutbound, Disposition::kBypass, {}, "V6", "192.0.2.1")).ok());
  ASSERT_TRUE(l.add(simple("in", Direction::kInbound, Disposition::kBypass)).ok());
  KeyStore keys;
  auto rep = validate(l, keys);
  ASSERT_FALSE(rep.ok());
  EXPECT_NE(rep.to_string().find("different address families"), std::string::npos) << rep.to_string();
}

// ---- transport mode with LocalAddress ANY (the seed's MCP examples) ----

PolicyList any_local_pair() {
  PolicyList l;
  Policy out = simple("to-b", Direction::kOutbound, Disposition::kProtect, proto::kTcp, "ANY", "192.0.2.2");
  out.protection = testing::esp_gcm(0x1000, "k");
  Policy in = simple("from-b", Direction::kInbound, Disposition::kProtect, proto::kTcp, "ANY", "192.0.2.2");
  in.protection = testing::esp_gcm(0x1001, "k");
  EXPECT_TRUE(l.add(out).ok());
  EXPECT_TRUE(l.add(in).ok());
  return l;
}

KeyStore gcm_key() {
  KeyStore keys;
  EXPECT_TRUE(keys.create_random("k", Algorithm::kAesGcm256).ok());
  return keys;
}

TEST(AnyLocalTransport, ImportsAndStillRefusesOtherNonSingleAddresses) {
  auto l = import_policies(export_policies(any_local_pair()));
  ASSERT_TRUE(l.ok()) << l.error().to_string();
  EXPECT_TRUE(l->find("to-b")->selector.local.is_any());
  Policy remote_any = simple("x", Direction::kOutbound, Disposition::kProtect, proto::kTcp, "192.0.2.1", "ANY");
  remote_any.protection = testing::esp_gcm(0x1000);
  EXPECT_FALSE(check_policy(remote_any).ok()) << "the remote side needs one address";
  Policy prefix = simple("x", Direction::kOutbound, Disposition::kProtect, proto::kTcp, "192.0.2.0/24", "192.0.2.2");
  prefix.protection = testing::esp_gcm(0x1000);
  EXPECT_FALSE(check_policy(prefix).ok());
}

TEST(AnyLocalTransport, OneOutboundSaAndOneInboundSaPerLocalAddress) {
  const PolicyList l = any_local_pair();
  const KeyStore keys = gcm_key();
  CompileOptions opt;
  opt.local_addresses = std::vector<IpAddress>{ip("198.51.100.9"), ip("2001:db8::1"), ip("192.0.2.1")};
  auto set = commit(l, keys, opt);
  ASSERT_TRUE(set.ok()) << set.error().to_string();
  EXPECT_EQ(set->any_local.at("from-b"), (std::vector<IpAddress>{ip("192.0.2.1"), ip("198.51.100.9")}));
  std::vector<std::string> sas;
  for (const SaSpec& sa : set->sas)
    sas.push_back(std::string(to_string(sa.direction)) + " " + sa.saddr.to_string() + "->" + sa.daddr.to_string());
  EXPECT_EQ(sas, (std::vector<std::string>{"outbound 0.0.0.0->192.0.2.2", "inbound 192.0.2.2->192.0.2.1",
                                           "inbound 192.0.2.2->198.51.100.9"}));
  for (const PolicySpec& p : set->policies) {
    if (p.origin != Origin::kUser) continue;
    // The local side of the selector is the whole family.
    EXPECT_EQ(p.dir == XfrmDir::kOut ? p.selector.prefixlen_s : p.selector.prefixlen_d, 0);
  }
  // The kernel objects validate (the outbound SA's wildcard source included).
  auto k = to_kernel(*set, keys);
  ASSERT_TRUE(k.ok()) << k.error().to_string();
  EXPECT_EQ(k->sas.size(), 3u);
}

TEST(AnyLocalTransport, RefusedWhenTheNodeHasNoAddressOfTheFamily) {
  const PolicyList l = any_local_pair();
  const KeyStore keys = gcm_key();
  CompileOptions opt;
  opt.local_addresses = std::vector<IpAddress>{ip("2001:db8::1")};
  auto rep = validate(l, keys, opt);
  ASSERT_FALSE(rep.ok());
  EXPECT_NE(rep.to_string().find("policy 'to-b': LocalAddress ANY in transport mode stands for this node's IPv4 "
                                 "addresses, and it has none"),
            std::string::npos)
      << rep.to_string();
  opt.local_addresses.reset();
  rep = validate(l, keys, opt);
  ASSERT_FALSE(rep.ok());
  EXPECT_NE(rep.to_string().find("not known"), std::string::npos) << rep.to_string();
}

}  // namespace
}  // namespace storcrypt::policy
