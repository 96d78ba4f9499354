// The policy / key / ipsec nouns through the dispatcher, with the kernel seam
// (IpsecKernel) bound to FakeXfrm: editing, persistence across a restart,
// commit validation, keys never listed, enable/disable/default, start-up
// restore, the integrity-failure watcher and kernel failures.
#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/stat.h>

#include <chrono>
#include <fstream>
#include <iterator>
#include <thread>

#include "node.h"
#include "storcrypt/controller/db.h"
#include "storcrypt/controller/dispatcher.h"
#include "storcrypt/controller/events.h"
#include "storcrypt/controller/ipsec.h"
#include "storcrypt/controller/nouns.h"
#include "storcrypt/testing/fake_xfrm.h"
#include "temp_dir.h"

namespace storcrypt::controller {
namespace {

using test::Node;

using nlohmann::json;
namespace nl = storcrypt::netlink;

constexpr const char* kKeyHex = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff01020304";

json bypass(const std::string& name, const std::string& dir) {
  return {{"Name", name}, {"Direction", dir}, {"Action", "BYPASS"}};
}
json protect_out() {
  return {{"Name", "prot"},
          {"Direction", "outbound"},
          {"LocalAddress", "192.0.2.1"},
          {"RemoteAddress", "192.0.2.2"},
          {"Protocol", "TCP"},
          {"RemotePort", "5000-5001"},
          {"Action", "PROTECT"},
          {"SPI", "0x1000"},
          {"EncryptionAlgorithm", "AES-GCM-256"},
          {"EncryptionKey", "k1"}};
}
json protect_in() {
  json p = protect_out();
  p["Name"] = "prot-in";
  p["Direction"] = "inbound";
  p["SPI"] = "0x1001";
  return p;
}
/// Key k1 (kKeyHex) and the PROTECT pair committed on a node.
void commit_protected_pair(Node& n) {
  n.ok("key.create", {{"name", "k1"}, {"algorithm", "AES-GCM-256"}, {"hex", kKeyHex}});
  n.ok("policy.add", {{"fields", protect_out()}});
  n.ok("policy.add", {{"fields", protect_in()}});
  n.ok("policy.commit");
}

std::vector<std::string> names(const json& list) {
  std::vector<std::string> out;
  for (const auto& p : list["policies"]) out.push_back(p["name"]);
  return out;
}

class IpsecNouns : public ::testing::Test {
 protected:
  test::TempDir dir;
};

TEST_F(IpsecNouns, EditingTheListAndItsErrors) {
  Node n(dir.path);
  n.ok("policy.add", {{"fields", bypass("a", "outbound")}});
  n.ok("policy.add", {{"fields", bypass("b", "inbound")}});
  n.ok("policy.add", {{"fields", bypass("first", "inbound")}, {"position", 1}});
  n.ok("policy.clone", {{"name", "a"}, {"new_name", "a2"}});
  n.ok("policy.move", {{"name", "b"}, {"position", 1}});
  EXPECT_EQ(names(n.ok("policy.list")), (std::vector<std::string>{"b", "first", "a", "a2"}));
  n.ok("policy.remove", {{"name", "a2"}});
  EXPECT_EQ(names(n.ok("policy.list")), (std::vector<std::string>{"b", "first", "a"}));

  auto dup = n.call("policy.add", {{"fields", bypass("a", "outbound")}});
  ASSERT_FALSE(dup.ok());
  EXPECT_NE(dup.error().message().find("'a'"), std::string::npos) << dup.error().message();

  json bad = bypass("c", "outbound");
  bad["Protocol"] = "TCP";
  bad["RemotePort"] = "70000";
  auto r = n.call("policy.add", {{"fields", bad}});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code(), ErrorCode::kInvalidInput);
  EXPECT_NE(r.error().message().find("RemotePort"), std::string::npos) << r.error().message();
  EXPECT_EQ(r.error().message().find("line "), std::string::npos) << "no file line numbers for API input";

  auto pos = n.call("policy.add", {{"fields", bypass("c", "outbound")}, {"position", 9}});
  ASSERT_FALSE(pos.ok());
  EXPECT_NE(pos.error().message().find("1..4"), std::string::npos) << pos.error().message();
  auto missing = n.call("policy.show", {{"name", "nope"}});
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.error().name(), "xPolicyNotFound");
  auto nl_in_value = n.call("policy.add", {{"fields", {{"Name", "x\nAction = DISCARD"}}}});
  ASSERT_FALSE(nl_in_value.ok());
  // Nothing of the failed edits landed.
  EXPECT_EQ(names(n.ok("policy.list")), (std::vector<std::string>{"b", "first", "a"}));
}

TEST_F(IpsecNouns, ModifyChangesOnlyTheGivenFields) {
  Node n(dir.path);
  n.ok("key.create", {{"name", "k1"}, {"algorithm", "AES-GCM-256"}});
  n.ok("policy.add", {{"fields", protect_out()}});
  json r = n.ok("policy.modify", {{"name", "prot"}, {"fields", {{"RemotePort", "22"}}}});
  EXPECT_EQ(r["fields"]["RemotePort"], "22");
  EXPECT_EQ(r["fields"]["SPI"], "0x1000");
  EXPECT_EQ(r["fields"]["RemoteAddress"], "192.0.2.2");
  // Transport-mode PROTECT needs single addresses: refused, nothing changed.
  auto refused = n.call("policy.modify", {{"name", "prot"}, {"fields", {{"RemoteAddress", "198.51.100.0/24"}}}});
  ASSERT_FALSE(refused.ok());
  EXPECT_NE(refused.error().message().find("transport mode"), std::string::npos) << refused.error().message();
  EXPECT_EQ(n.ok("policy.show", {{"name", "prot"}})["fields"]["RemoteAddress"], "192.0.2.2");
  // PROTECT -> BYPASS drops the IPsec fields instead of refusing them.
  r = n.ok("policy.modify", {{"name", "prot"}, {"fields", {{"Action", "BYPASS"}}}});
  EXPECT_EQ(r["fields"]["Action"], "BYPASS");
  EXPECT_FALSE(r["fields"].contains("SPI")) << r.dump();
  EXPECT_FALSE(r["fields"].contains("EncryptionKey")) << r.dump();
  // "" removes a field (back to ANY); the name can change too.
  r = n.ok("policy.modify", {{"name", "prot"}, {"fields", {{"RemoteAddress", ""}, {"Name", "prot2"}}}});
  EXPECT_EQ(r["name"], "prot2");
  EXPECT_EQ(r["fields"]["RemoteAddress"], "ANY");
  EXPECT_EQ(r["position"], 1);
}

TEST_F(IpsecNouns, ListsKeysAndSettingsSurviveARestart) {
  {
    Node n(dir.path);
    commit_protected_pair(n);
    n.ok("policy.add", {{"fields", bypass("later", "outbound")}});
    n.ok("ipsec.default", {{"disposition", "DENY"}});
  }
  struct stat st {};
  ASSERT_EQ(::stat((dir.path + "/ipsec-keys").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  Node n(dir.path);
  EXPECT_EQ(names(n.ok("policy.list")), (std::vector<std::string>{"prot", "prot-in", "later"}));
  EXPECT_EQ(names(n.ok("policy.list", {{"committed", true}})), (std::vector<std::string>{"prot", "prot-in"}));
  EXPECT_EQ(n.ok("policy.list")["uncommitted_changes"], true);
  EXPECT_EQ(n.ok("ipsec.default")["default"], "DENY");
  json keys = n.ok("key.list");
  ASSERT_EQ(keys["keys"].size(), 1u);
  EXPECT_EQ(keys["keys"][0]["bytes"], 36);
  EXPECT_EQ(keys["keys"][0]["used_by"], json({"prot", "prot-in"}));
  EXPECT_EQ(keys.dump().find("00112233"), std::string::npos) << "a listing shows a key value";
  n.ok("policy.revert");
  EXPECT_EQ(n.ok("policy.list")["uncommitted_changes"], false);
}

TEST_F(IpsecNouns, CommitRefusesAnInvalidListAndKeepsTheOldOne) {
  Node n(dir.path);
  n.ok("policy.add", {{"fields", protect_out()}});
  n.ok("policy.add", {{"fields", bypass("in", "inbound")}});
  auto r = n.call("policy.commit");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().name(), "xPolicyListInvalid");
  EXPECT_NE(r.error().message().find("key 'k1' does not exist"), std::string::npos) << r.error().message();
  EXPECT_TRUE(n.ok("policy.list", {{"committed", true}})["policies"].empty());
  json v = n.ok("policy.validate");
  EXPECT_EQ(v["ok"], false);
  // The issue's example: BYPASS all outbound TCP before the PROTECT policy.
  n.ok("key.create", {{"name", "k1"}, {"algorithm", "AES-GCM-256"}});
  json out_tcp = bypass("out-tcp", "outbound");
  out_tcp["Protocol"] = "TCP";
  n.ok("policy.add", {{"fields", out_tcp}, {"position", 1}});
  json t = n.ok("policy.test", {{"direction", "outbound"},
                                {"protocol", "TCP"},
                                {"local", "192.0.2.1"},
                                {"remote", "192.0.2.2"},
                                {"remote_ports", "1-65535"}});
  ASSERT_EQ(t["rows"].size(), 3u) << t.dump(2);
  EXPECT_EQ(t["rows"][1]["remote_ports"], "5000-5001");
  EXPECT_EQ(t["rows"][1]["disposition"], "BYPASS");
  EXPECT_EQ(t["rows"][1]["first_match"], "out-tcp");
  EXPECT_EQ(t["rows"][1]["protect"], json({"prot"}));
  json c = n.ok("policy.commit");
  bool shadowed = false;
  for (const auto& d : c["diagnostics"])
    if (d["policy"] == "prot" && d["message"].get<std::string>().find("shadowed") != std::string::npos) shadowed = true;
  EXPECT_TRUE(shadowed) << c.dump(2);
  auto bad = n.call("policy.test",
                    {{"direction", "outbound"}, {"protocol", "ANY"}, {"local", "192.0.2.1"}, {"remote", "192.0.2.2"}});
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.error().message().find("protocol"), std::string::npos);
}

TEST_F(IpsecNouns, NamedAddressSelectorsEditCommitExportAndSurviveARestart) {
  {
    Node n(dir.path);
    json a = n.ok("address.add", {{"name", "PRODUCTION"}, {"entries", {"192.0.2.0/24", "198.51.100.7"}}});
    EXPECT_EQ(a["entries"], json({"192.0.2.0/24", "198.51.100.7"}));
    a = n.ok("address.add", {{"name", "PRODUCTION"}, {"entries", {"203.0.113.10-203.0.113.20", "198.51.100.7"}}});
    EXPECT_EQ(a["entries"].size(), 3u) << a.dump();
    auto bad = n.call("address.add", {{"name", "BAD"}, {"entries", {"192.0.2.999"}}});
    ASSERT_FALSE(bad.ok());
    EXPECT_EQ(bad.error().code(), ErrorCode::kInvalidInput);
    EXPECT_NE(bad.error().message().find("192.0.2.999"), std::string::npos) << bad.error().message();
    auto any = n.call("address.add", {{"name", "BAD"}, {"entries", {"ANY"}}});
    ASSERT_FALSE(any.ok());
    EXPECT_EQ(any.error().name(), "xAddressInvalid");

    // A policy may name a selector that does not exist yet; validate and commit refuse it.
    json ssh = bypass("no-ssh-to-prod", "outbound");
    ssh["Action"] = "DISCARD";
    ssh["Protocol"] = "TCP";
    ssh["RemotePort"] = "22";
    ssh["RemoteAddress"] = "STAGING";
    n.ok("policy.add", {{"fields", ssh}});
    n.ok("policy.add", {{"fields", bypass("out", "outbound")}});
    n.ok("policy.add", {{"fields", bypass("in", "inbound")}});
    json v = n.ok("policy.validate");
    EXPECT_EQ(v["ok"], false);
    EXPECT_NE(v.dump().find("address selector 'STAGING' is not defined"), std::string::npos) << v.dump(2);
    auto c = n.call("policy.commit");
    ASSERT_FALSE(c.ok());
    EXPECT_NE(c.error().message().find("STAGING"), std::string::npos) << c.error().message();
    auto t = n.call("policy.test",
                    {{"direction", "outbound"}, {"protocol", "TCP"}, {"local", "10.0.0.1"}, {"remote", "192.0.2.9"}});
    ASSERT_FALSE(t.ok());
    EXPECT_EQ(t.error().name(), "xAddressUndefined");

    n.ok("policy.modify", {{"name", "no-ssh-to-prod"}, {"fields", {{"RemoteAddress", "PRODUCTION"}}}});
    EXPECT_EQ(n.ok("policy.validate")["ok"], true);
    json rows = n.ok("policy.test", {{"direction", "outbound"},
                                     {"protocol", "TCP"},
                                     {"local", "10.0.0.1"},
                                     {"remote", "203.0.113.15"},
                                     {"remote_ports", "22"}});
    EXPECT_EQ(rows["rows"][0]["first_match"], "no-ssh-to-prod") << rows.dump(2);
    rows = n.ok("policy.test", {{"direction", "outbound"},
                                {"protocol", "TCP"},
                                {"local", "10.0.0.1"},
                                {"remote", "203.0.113.21"},
                                {"remote_ports", "22"}});
    EXPECT_EQ(rows["rows"][0]["first_match"], "out") << rows.dump(2);

    // Remove is refused while a policy uses the name.
    auto in_use = n.call("address.remove", {{"name", "PRODUCTION"}});
    ASSERT_FALSE(in_use.ok());
    EXPECT_EQ(in_use.error().name(), "xAddressInUse");
    EXPECT_EQ(in_use.error().code(), ErrorCode::kConflict);
    EXPECT_NE(in_use.error().message().find("no-ssh-to-prod"), std::string::npos);

    json committed = n.ok("policy.commit");
    // 192.0.2.0/24, 198.51.100.7 and 203.0.113.10-20 (4 prefixes): 6 kernel selectors for the named policy.
    EXPECT_GE(committed["kernel_policies"].get<int>(), 6) << committed.dump(2);
    json listed = n.ok("address.list", {{"committed", true}});
    ASSERT_EQ(listed["addresses"].size(), 1u);
    EXPECT_EQ(listed["addresses"][0]["used_by"], json({"no-ssh-to-prod"}));
    n.ok("ipsec.enable");
    ASSERT_NE(n.fake, nullptr);
    std::size_t blocks = 0;
    auto pols = n.fake->dump_policies();
    ASSERT_TRUE(pols.ok());
    for (const auto& p : *pols)
      if (p.action == nl::PolicyAction::kBlock && p.selector.dport.mask == 0xffff && p.selector.dport.port == 22)
        ++blocks;
    EXPECT_EQ(blocks, 6u);

    // An uncommitted selector edit shows as an uncommitted change; revert brings the committed one back.
    n.ok("address.add", {{"name", "SPARE"}, {"entries", {"2001:db8::1"}}});
    EXPECT_EQ(n.ok("policy.list")["uncommitted_changes"], true);
    n.ok("policy.revert");
    EXPECT_EQ(n.ok("address.list")["addresses"].size(), 1u);
  }
  // Stored with the policy state: a restarted daemon has them, and export/import carries them.
  Node n(dir.path);
  json listed = n.ok("address.list");
  ASSERT_EQ(listed["addresses"].size(), 1u);
  EXPECT_EQ(listed["addresses"][0]["entries"],
            json({"192.0.2.0/24", "198.51.100.7", "203.0.113.10-203.0.113.20"}));
  std::string text = n.ok("policy.export", {{"committed", true}})["text"];
  EXPECT_NE(text.find("Address = PRODUCTION"), std::string::npos) << text;

  test::TempDir other;
  Node partner(other.path);
  json imp = partner.ok("policy.import", {{"text", text}, {"swap", true}});
  EXPECT_EQ(imp["addresses"], 1);
  json pl = partner.ok("address.list");
  ASSERT_EQ(pl["addresses"].size(), 1u);
  EXPECT_EQ(pl["addresses"][0]["used_by"], json({"no-ssh-to-prod"}));
  EXPECT_EQ(partner.ok("policy.show", {{"name", "no-ssh-to-prod"}})["fields"]["LocalAddress"], "PRODUCTION");
  EXPECT_EQ(partner.ok("policy.validate")["ok"], true);
  partner.ok("policy.remove", {{"name", "no-ssh-to-prod"}});
  partner.ok("address.remove", {{"name", "PRODUCTION"}});
  EXPECT_TRUE(partner.ok("address.list")["addresses"].empty());
  auto gone = partner.call("address.remove", {{"name", "PRODUCTION"}});
  ASSERT_FALSE(gone.ok());
  EXPECT_EQ(gone.error().code(), ErrorCode::kNotFound);
}

/// The seed's MCP examples: transport-mode PROTECT with LocalAddress = ANY.
constexpr const char* kSeedList = R"(Name = to-b
Direction = outbound
LocalAddress = ANY
RemoteAddress = 192.0.2.2
Protocol = TCP
RemotePort = 5000-5001
Action = PROTECT
Service = ESP-INTEGRITY-CONFIDENTIALITY
Mode = transport
SPI = 0x1000
EncryptionAlgorithm = AES-GCM-256
EncryptionKey = k1

Name = from-b
Direction = inbound
LocalAddress = ANY
RemoteAddress = 192.0.2.2
Protocol = TCP
RemotePort = 5000-5001
Action = PROTECT
Service = ESP-INTEGRITY-CONFIDENTIALITY
Mode = transport
SPI = 0x1001
EncryptionAlgorithm = AES-GCM-256
EncryptionKey = k1

Name = rest-out
Direction = outbound
Action = BYPASS

Name = rest-in
Direction = inbound
Action = BYPASS
)";

TEST_F(IpsecNouns, TransportModeWithLocalAddressAnyInstallsForEachLocalAddress) {
  Node n(dir.path);
  n.local_addresses = {*IpAddress::parse("198.51.100.9"), *IpAddress::parse("192.0.2.1"),
                       *IpAddress::parse("2001:db8::1"), *IpAddress::parse("192.0.2.1")};
  n.ok("key.create", {{"name", "k1"}, {"algorithm", "AES-GCM-256"}, {"hex", kKeyHex}});
  EXPECT_EQ(n.ok("policy.import", {{"text", kSeedList}})["imported"], 4);
  json show = n.ok("policy.show", {{"name", "from-b"}});
  EXPECT_EQ(show["fields"]["LocalAddress"], "ANY");
  EXPECT_EQ(show["local_addresses"], json({"192.0.2.1", "198.51.100.9"})) << show.dump(2);
  json t = n.ok("policy.test", {{"direction", "inbound"},
                                {"protocol", "TCP"},
                                {"local", "198.51.100.9"},
                                {"remote", "192.0.2.2"},
                                {"remote_ports", "5000"}});
  EXPECT_EQ(t["rows"][0]["first_match"], "from-b") << t.dump(2);
  EXPECT_EQ(n.ok("policy.validate")["ok"], true);
  json c = n.ok("policy.commit");
  EXPECT_EQ(c["local_addresses"]["from-b"], json({"192.0.2.1", "198.51.100.9"})) << c.dump(2);
  EXPECT_EQ(c["local_addresses"]["to-b"], json({"192.0.2.1", "198.51.100.9"})) << c.dump(2);
  EXPECT_EQ(c["sas"], 3) << "one outbound SA, one inbound SA per local IPv4 address";
  n.ok("ipsec.enable");
  ASSERT_NE(n.fake, nullptr);
  auto out_sa = n.fake->get_sa({*nl::IpAddress::parse("192.0.2.2"), 0x1000, nl::XfrmProto::kEsp, std::nullopt});
  ASSERT_TRUE(out_sa.ok()) << out_sa.error().to_string();
  EXPECT_TRUE(out_sa->sa.src.is_any()) << "the outbound SA's wildcard source serves every local address";
  for (const char* local : {"192.0.2.1", "198.51.100.9"}) {
    auto in = n.fake->get_sa({*nl::IpAddress::parse(local), 0x1001, nl::XfrmProto::kEsp, std::nullopt});
    ASSERT_TRUE(in.ok()) << local << ": " << in.error().to_string();
    EXPECT_EQ(in->sa.src.to_string(), "192.0.2.2");
    EXPECT_EQ(in->sa.mode, nl::Mode::kTransport);
  }
  EXPECT_EQ(n.fake->total_sas(), 3u);
  // The policies' local side is the whole family (0.0.0.0/0).
  auto pols = n.fake->dump_policies();
  ASSERT_TRUE(pols.ok());
  bool found = false;
  for (const auto& p : *pols)
    if (p.dir == nl::Direction::kIn && !p.templates.empty() && p.templates[0].spi == 0x1001) {
      found = true;
      EXPECT_EQ(p.selector.dst.to_string(), "0.0.0.0/0");
      EXPECT_EQ(p.selector.src.to_string(), "192.0.2.2/32");
    }
  EXPECT_TRUE(found);

  // A new local address: the next enable (or commit) installs its inbound SA too.
  n.local_addresses.push_back(*IpAddress::parse("203.0.113.5"));
  n.ok("ipsec.enable");
  EXPECT_TRUE(n.fake->get_sa({*nl::IpAddress::parse("203.0.113.5"), 0x1001, nl::XfrmProto::kEsp, std::nullopt}).ok());
  EXPECT_EQ(n.fake->total_sas(), 4u);
}

TEST_F(IpsecNouns, TransportModeWithLocalAddressAnyIsRefusedWithoutAnAddressOfThatFamily) {
  Node n(dir.path);
  n.local_addresses = {*IpAddress::parse("2001:db8::1")};
  n.ok("key.create", {{"name", "k1"}, {"algorithm", "AES-GCM-256"}, {"hex", kKeyHex}});
  n.ok("policy.import", {{"text", kSeedList}});
  json show = n.ok("policy.show", {{"name", "to-b"}});
  EXPECT_EQ(show["local_addresses"], json::array());
  json v = n.ok("policy.validate");
  EXPECT_EQ(v["ok"], false);
  EXPECT_NE(v.dump().find("stands for this node's IPv4 addresses, and it has none"), std::string::npos) << v.dump(2);
  auto c = n.call("policy.commit");
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.error().message().find("it has none"), std::string::npos) << c.error().message();
  EXPECT_TRUE(n.ok("policy.list", {{"committed", true}})["policies"].empty());
}

TEST_F(IpsecNouns, CommitWarnsWhenTheListShadowsAnotherDaemonsPolicy) {
  Node n(dir.path);
  // strongSwan charon's outbound tunnel, already in the kernel.
  nl::Policy charon;
  charon.dir = nl::Direction::kOut;
  charon.priority = 375423;
  charon.selector = *nl::Selector::between(*nl::Prefix::parse("192.0.2.0/24"), *nl::Prefix::parse("198.51.100.0/24"));
  nl::Template t;
  t.src = *nl::IpAddress::parse("192.0.2.1");
  t.dst = *nl::IpAddress::parse("198.51.100.1");
  t.reqid = 1;
  charon.templates = {t};
  n.foreign.push_back(charon);
  json narrow = bypass("lab", "outbound");
  narrow["RemoteAddress"] = "203.0.113.0/24";
  n.ok("policy.add", {{"fields", narrow}});
  n.ok("policy.add", {{"fields", bypass("out", "outbound")}});
  n.ok("policy.add", {{"fields", bypass("in", "inbound")}});
  json c = n.ok("policy.commit");
  const json* warned = nullptr;
  for (const auto& d : c["diagnostics"]) {
    EXPECT_NE(d["policy"], "lab") << d.dump();
    if (d["policy"] == "out") warned = &d;
  }
  ASSERT_NE(warned, nullptr) << c.dump(2);
  EXPECT_EQ((*warned)["severity"], "warning");
  EXPECT_NE((*warned)["message"].get<std::string>().find("another IPsec daemon"), std::string::npos) << c.dump(2);
  EXPECT_NE((*warned)["message"].get<std::string>().find("priority 375423"), std::string::npos) << c.dump(2);
  EXPECT_EQ(c["enforced"], false);
  ASSERT_NE(n.fake, nullptr);
  EXPECT_EQ(n.fake->mutation_count(), 0u) << "a commit on a disabled node changed the kernel";
  EXPECT_EQ(n.fake->total_policies(), 1u);
}

TEST_F(IpsecNouns, KeysExportImportAndRefusals) {
  test::TempDir other;
  Node a(dir.path);
  Node b(other.path);
  a.ok("key.create", {{"name", "k1"}, {"algorithm", "AES-GCM-256"}, {"hex", kKeyHex}});
  a.ok("key.create",
       {{"name", "mac"}, {"algorithm", "HMAC-SHA-256-128"}, {"ascii", "0123456789abcdef0123456789abcdef"}});
  auto short_key = a.call("key.create", {{"name", "s"}, {"algorithm", "AES-GCM-256"}, {"hex", "0011"}});
  ASSERT_FALSE(short_key.ok());
  EXPECT_EQ(short_key.error().message().find("0011"), std::string::npos) << "error shows the value";
  auto exists = a.call("key.create", {{"name", "k1"}, {"algorithm", "AES-GCM-256"}});
  ASSERT_FALSE(exists.ok());
  EXPECT_EQ(exists.error().name(), "xKeyExists");
  auto shortpass = a.call("key.export", {{"passphrase", "short"}});
  ASSERT_FALSE(shortpass.ok());
  EXPECT_EQ(shortpass.error().name(), "xPassphraseTooShort");

  json file = a.ok("key.export", {{"passphrase", "correct horse"}, {"names", {"k1"}}, {"kdf", "pbkdf2"}});
  std::string text = file["file"];
  EXPECT_EQ(text.find("00112233"), std::string::npos);
  auto wrong = b.call("key.import", {{"text", text}, {"passphrase", "wrong horse!"}});
  ASSERT_FALSE(wrong.ok());
  EXPECT_EQ(wrong.error().code(), ErrorCode::kPermission);
  b.ok("key.import", {{"text", text}, {"passphrase", "correct horse"}});
  EXPECT_EQ(b.ok("key.list")["keys"].size(), 1u);
  auto again = b.call("key.import", {{"text", text}, {"passphrase", "correct horse"}});
  ASSERT_FALSE(again.ok());
  EXPECT_EQ(again.error().name(), "xKeyExists");
  b.ok("key.import", {{"text", text}, {"passphrase", "correct horse"}, {"replace", true}});
  // The imported value is the exported one (same bytes in the partner's key store).
  std::ifstream fa(dir.path + "/ipsec-keys"), fb(other.path + "/ipsec-keys");
  std::string la, lb;
  while (std::getline(fa, la) && la.rfind("k1 ", 0) != 0) {
  }
  while (std::getline(fb, lb) && lb.rfind("k1 ", 0) != 0) {  // after the journal's #generation line
  }
  EXPECT_EQ(la, lb);

  a.ok("policy.add", {{"fields", protect_out()}});
  auto in_use = a.call("key.delete", {{"name", "k1"}});
  ASSERT_FALSE(in_use.ok());
  EXPECT_EQ(in_use.error().name(), "xKeyInUse");
  a.ok("key.delete", {{"name", "mac"}});
  EXPECT_EQ(a.ok("key.list")["keys"].size(), 1u);
}

TEST_F(IpsecNouns, EnableDisableDefaultAndStatusOnTheFakeKernel) {
  Node n(dir.path);
  nl::Policy foreign;
  foreign.dir = nl::Direction::kOut;
  foreign.priority = 10;
  foreign.selector = *nl::Selector::between(*nl::Prefix::parse("203.0.113.1/32"), *nl::Prefix::parse("203.0.113.2/32"));
  n.foreign.push_back(foreign);

  auto none = n.call("ipsec.enable");
  ASSERT_FALSE(none.ok());
  EXPECT_EQ(none.error().name(), "xIpsecNothingCommitted");
  commit_protected_pair(n);
  json en = n.ok("ipsec.enable");
  ASSERT_NE(n.fake, nullptr);
  EXPECT_GE(en["applied"]["policies_added"].get<int>(), 2);
  EXPECT_EQ(en["applied"]["sas_added"], 2);
  std::size_t installed = n.fake->total_policies();
  EXPECT_GT(installed, 1u);

  // Traffic on the outbound SA shows in status.
  nl::SaId out_sa{*nl::IpAddress::parse("192.0.2.2"), 0x1000, nl::XfrmProto::kEsp, std::nullopt};
  ASSERT_TRUE(n.fake->add_traffic(out_sa, 1500, 3).ok());
  json st = n.ok("ipsec.status");
  EXPECT_EQ(st["enabled"], true);
  bool counted = false;
  for (const auto& p : st["policies"])
    if (p["name"] == "prot" && p.contains("sa")) counted = p["sa"]["packets"] == 3 && p["sa"]["bytes"] == 1500;
  EXPECT_TRUE(counted) << st.dump(2);

  // A new default re-applies at once; a bad one is refused and changes nothing.
  auto bad = n.call("ipsec.default", {{"disposition", "SOMETIMES"}});
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(n.ok("ipsec.default")["default"], "IPv6Only");
  json dd = n.ok("ipsec.default", {{"disposition", "DENYALL"}});
  ASSERT_FALSE(dd["applied"].is_null());
  EXPECT_NE(n.fake->total_policies(), installed);

  json dis = n.ok("ipsec.disable");
  EXPECT_EQ(dis["applied"]["sas_deleted"], 2);
  EXPECT_EQ(n.fake->total_policies(), 1u) << "only the foreign policy stays";
  EXPECT_EQ(n.fake->total_sas(), 0u);
  EXPECT_EQ(n.ok("ipsec.status")["enabled"], false);
}

TEST_F(IpsecNouns, KernelFailureLeavesTheNodeAsItWas) {
  Node n(dir.path);
  commit_protected_pair(n);
  n.ok("ipsec.enable");
  n.ok("ipsec.disable");
  ASSERT_NE(n.fake, nullptr);
  n.fake->fail_next("*", Error(ErrorCode::kKernel, "injected: No buffer space available"));
  auto r = n.call("ipsec.enable");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message().find("injected"), std::string::npos) << r.error().message();
  EXPECT_EQ(n.ok("ipsec.status")["enabled"], false);
  EXPECT_EQ(n.fake->total_sas(), 0u) << "a failed enable leaves nothing behind";
  EXPECT_EQ(n.fake->total_policies(), 0u);
  n.ok("ipsec.enable");
  EXPECT_EQ(n.fake->total_sas(), 2u);
}

TEST_F(IpsecNouns, KeyReplaceTheKernelRefusesKeepsTheOldValueEverywhere) {
  Node n(dir.path);
  commit_protected_pair(n);
  n.ok("ipsec.enable");
  ASSERT_NE(n.fake, nullptr);
  auto file_text = [&] {
    std::ifstream f(dir.path + "/ipsec-keys");
    return std::string((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  };
  nl::SaId out_sa{*nl::IpAddress::parse("192.0.2.2"), 0x1000, nl::XfrmProto::kEsp, std::nullopt};
  auto kernel_key = [&] {
    auto sa = n.fake->get_sa(out_sa);
    EXPECT_TRUE(sa.ok());
    return sa.ok() ? sa->sa.enc_key.reveal_hex() : std::string();
  };
  const std::string before = file_text();
  ASSERT_EQ(kernel_key(), kKeyHex);

  n.fake->fail_next("*", Error(ErrorCode::kKernel, "injected: refused"));
  auto r = n.call("key.create", {{"name", "k1"}, {"algorithm", "AES-GCM-256"}, {"replace", true}});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(file_text(), before) << "the refused key was stored";
  EXPECT_EQ(kernel_key(), kKeyHex) << "the kernel does not hold the old key again";

  // Accepted: the new value reaches the kernel and the file.
  n.ok("key.create", {{"name", "k1"}, {"algorithm", "AES-GCM-256"}, {"replace", true}});
  EXPECT_NE(kernel_key(), kKeyHex);
  EXPECT_NE(file_text(), before);
}

TEST_F(IpsecNouns, StartUpRestoresEnforcementAndTheWatcherRaisesAndFixes2010) {
  ::setenv("STORCRYPT_IPSEC_WATCH_SECONDS", "1", 1);
  {
    Node n(dir.path);
    commit_protected_pair(n);
    n.ok("ipsec.enable");
  }
  // A new daemon over the same state with an empty kernel (as after a reboot).
  Node n(dir.path, /*run_start_hooks=*/true);
  ASSERT_NE(n.fake, nullptr) << "start-up did not open the kernel";
  EXPECT_EQ(n.fake->total_sas(), 2u);

  // Inbound SA (dst = this node) fails integrity checks: one event, not one per pass.
  nl::SaId in_sa{*nl::IpAddress::parse("192.0.2.1"), 0x1001, nl::XfrmProto::kEsp, std::nullopt};
  ASSERT_TRUE(n.fake->add_integrity_failures(in_sa, 5).ok());
  auto unfixed = [&] {
    EventFilter f;
    f.code = kIpsecIntegrityEvent;
    f.unfixed_only = true;
    auto l = n.events->list(f);
    return l.ok() ? l->size() : 0;
  };
  auto wait_until = [](auto pred) {
    for (int i = 0; i < 100 && !pred(); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(100));
    return pred();
  };
  ASSERT_TRUE(wait_until([&] { return unfixed() == 1; })) << "no event 2010";
  ASSERT_TRUE(n.fake->add_integrity_failures(in_sa, 5).ok());
  std::this_thread::sleep_for(std::chrono::milliseconds(2500));
  EXPECT_EQ(unfixed(), 1u) << "the same failure raised again";
  EventFilter all;
  all.code = kIpsecIntegrityEvent;
  auto ev = n.events->list(all);
  ASSERT_TRUE(ev.ok());
  ASSERT_EQ(ev->size(), 1u);
  EXPECT_NE(ev->front().message.find("prot-in"), std::string::npos) << ev->front().message;
  EXPECT_EQ(ev->front().sense["integrity_failed"], 5);
  // Packets authenticate again: fixed.
  ASSERT_TRUE(n.fake->add_traffic(in_sa, 3000, 10).ok());
  EXPECT_TRUE(wait_until([&] { return unfixed() == 0; })) << "event 2010 not marked fixed";
  ::unsetenv("STORCRYPT_IPSEC_WATCH_SECONDS");
}

TEST_F(IpsecNouns, TheWatcherFollowsAddressChangesForLocalAddressAny) {
  ::setenv("STORCRYPT_IPSEC_WATCH_SECONDS", "1", 1);
  {
    Node n(dir.path);
    n.ok("key.create", {{"name", "k1"}, {"algorithm", "AES-GCM-256"}, {"hex", kKeyHex}});
    n.ok("policy.import", {{"text", kSeedList}});
    n.ok("policy.commit");
    n.ok("ipsec.enable");
  }
  Node n(dir.path, /*run_start_hooks=*/true);
  ASSERT_NE(n.fake, nullptr);
  nl::SaId old_in{*nl::IpAddress::parse("192.0.2.1"), 0x1001, nl::XfrmProto::kEsp, std::nullopt};
  nl::SaId new_in{*nl::IpAddress::parse("198.51.100.9"), 0x1001, nl::XfrmProto::kEsp, std::nullopt};
  EXPECT_TRUE(n.fake->get_sa(old_in).ok());
  auto wait_until = [](auto pred) {
    for (int i = 0; i < 50 && !pred(); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(100));
    return pred();
  };
  // The node's address moves: the inbound SA moves with it, the outbound SA stays.
  n.set_local_addresses({*IpAddress::parse("198.51.100.9")});
  EXPECT_TRUE(wait_until([&] { return n.fake->get_sa(new_in).ok() && !n.fake->get_sa(old_in).ok(); }))
      << "the inbound SA did not follow the address change";
  EXPECT_TRUE(n.fake->get_sa({*nl::IpAddress::parse("192.0.2.2"), 0x1000, nl::XfrmProto::kEsp, std::nullopt}).ok());
  // No IPv4 address left: refused, the kernel keeps what it had.
  n.set_local_addresses({*IpAddress::parse("2001:db8::1")});
  std::this_thread::sleep_for(std::chrono::milliseconds(2500));
  EXPECT_TRUE(n.fake->get_sa(new_in).ok());
  ::unsetenv("STORCRYPT_IPSEC_WATCH_SECONDS");
}

TEST(InterfaceAddresses, TheNodesAddressesLeaveOutLoopback) {
  // storcryptd's binding of IpsecKernel::local_addresses: every namespace has
  // lo (127.0.0.1, ::1), which must never stand for LocalAddress ANY.
  auto a = interface_addresses();
  ASSERT_TRUE(a.ok()) << a.error().to_string();
  for (const IpAddress& x : *a) {
    EXPECT_FALSE(x.family == Family::kIPv4 && x.bytes[0] == 127) << x.to_string();
    EXPECT_NE(x.to_string(), "::1");
  }
}

TEST(XfrmStat, ParsesTheKernelsCountersAndRefusesOtherText) {
  auto r = parse_xfrm_stat(
      "XfrmInError                     0\nXfrmOutPolBlock                 7\n\nXfrmInStateProtoError\t3\n");
  ASSERT_TRUE(r.ok()) << r.error().to_string();
  EXPECT_EQ(r->size(), 3u);
  EXPECT_EQ(r->at("XfrmOutPolBlock"), 7u);
  EXPECT_EQ(r->at("XfrmInStateProtoError"), 3u);
  EXPECT_FALSE(parse_xfrm_stat("XfrmInError\n").ok());
  EXPECT_FALSE(parse_xfrm_stat("XfrmInError 1 2\n").ok());
  EXPECT_FALSE(parse_xfrm_stat("XfrmInError -1\n").ok());
}

TEST_F(IpsecNouns, StatusCarriesTheKernelDropCounters) {
  Node n(dir.path);
  auto k = n.ctx.service<IpsecKernel>();
  ASSERT_TRUE(k);
  // Registered already: the service copied the seam, so check the copy is used via a fresh node.
  test::TempDir other;
  auto db = Db::open(other.path + "/state.db");
  ASSERT_TRUE(db.ok());
  auto events = EventLog::create(**db);
  ASSERT_TRUE(events.ok());
  Context ctx;
  ctx.config.state_directory = other.path;
  ctx.db = db->get();
  ctx.events = events->get();
  auto kernel = std::make_shared<IpsecKernel>(*k);
  kernel->stats = []() -> Result<std::map<std::string, std::uint64_t>> {
    return parse_xfrm_stat("XfrmOutPolBlock 4\nXfrmInNoStates 0\n");
  };
  ctx.set_service(kernel);
  Dispatcher d;
  ASSERT_TRUE(register_all_methods(d, ctx).ok());
  auto st = d.call("ipsec.status", json::object());
  ASSERT_TRUE(st.ok()) << st.error().to_string();
  EXPECT_EQ((*st)["kernel_counters"]["XfrmOutPolBlock"], 4);
  EXPECT_EQ((*st)["kernel_counters"]["XfrmInNoStates"], 0);
}

// Every journalled IPsec change, stopped at each of its points as if the
// daemon died there (the journal's stop hook), then a restart on the same
// state and the same (fake) kernel: the journal settles the change ("done"
// when its write reached storage, "rolled-back" otherwise), start-up
// enforcement puts the kernel back to what is stored, and the key file,
// the committed list, the settings and the kernel agree.
TEST_F(IpsecNouns, AChangeStoppedAtAnyPointSettlesAtRestartAndKernelAndStorageAgree) {
  struct Change {
    std::string kind;
    bool enabled_before;
    std::string method;
    json params;
  };
  const std::vector<Change> changes = {
      {"ipsec.keys", true, "key.create", {{"name", "k1"}, {"algorithm", "AES-GCM-256"}, {"replace", true}}},
      {"ipsec.commit", true, "policy.commit", json::object()},
      {"ipsec.enable", false, "ipsec.enable", json::object()},
      {"ipsec.disable", true, "ipsec.disable", json::object()},
      {"ipsec.default", true, "ipsec.default", {{"disposition", "DENYALL"}}},
  };
  const std::vector<std::pair<std::string, bool>> points = {
      {"begin", false}, {"kernel-applied", false}, {"written", true}, {"saved", true}, {"done", true}};
  nl::SaId out_sa{*nl::IpAddress::parse("192.0.2.2"), 0x1000, nl::XfrmProto::kEsp, std::nullopt};

  for (const auto& c : changes) {
    for (const auto& [point, lands] : points) {
      SCOPED_TRACE(c.kind + " stopped at " + point);
      test::TempDir d;
      Node a(d.path);
      commit_protected_pair(a);
      a.ok("ipsec.enable");
      if (!c.enabled_before) a.ok("ipsec.disable");
      if (c.kind == "ipsec.commit") a.ok("policy.modify", {{"name", "prot"}, {"fields", {{"RemotePort", "6000"}}}});
      ASSERT_NE(a.fake, nullptr);
      a.journal->set_stop_hook([&](std::string_view kind, std::string_view p) { return kind == c.kind && p == point; });
      auto r = a.call(c.method, c.params);
      ASSERT_FALSE(r.ok()) << "the change did not stop at " << point;
      EXPECT_NE(r.error().message().find("injected crash"), std::string::npos) << r.error().message();

      // The stopped change: the newest operation of its kind.
      std::int64_t stopped_id = 0;
      auto before = a.journal->list(false);
      ASSERT_TRUE(before.ok());
      for (const auto& e : *before)
        if (e.kind == c.kind) {
          stopped_id = e.id;
          break;
        }
      ASSERT_NE(stopped_id, 0) << "no " << c.kind << " operation was journalled";

      Node b(d.path);
      b.kernel_of = a.fake;
      auto settled = b.journal->recover();
      ASSERT_TRUE(settled.ok()) << settled.error().to_string();
      for (auto& h : b.ctx.start_hooks) h();
      auto stopped = b.journal->get(stopped_id);
      ASSERT_TRUE(stopped.ok()) << stopped.error().to_string();
      EXPECT_EQ(journal::state_name(stopped->state), lands ? "done" : "rolled-back") << stopped->note;
      auto pending = b.journal->list(true);
      ASSERT_TRUE(pending.ok());
      EXPECT_TRUE(pending->empty()) << "an operation is still running after the restart";

      json st = b.ok("ipsec.status");
      const bool enabled = st["enabled"].get<bool>();
      // One kernel: the restarted node opened it only if start-up had to enforce or clean up.
      nl::FakeXfrm* kernel = b.fake ? b.fake : a.fake;
      if (enabled) {
        // The kernel already matches what is stored: enforcing again changes nothing.
        json again = b.ok("ipsec.enable")["applied"];
        for (const auto& [k, v] : again.items()) EXPECT_EQ(v, 0) << k << " after the restart: " << again.dump();
      } else {
        EXPECT_EQ(kernel->total_sas(), 0u) << "SAs left in the kernel of a node that does not enforce";
        EXPECT_EQ(kernel->total_policies(), 0u) << "policies left in the kernel of a node that does not enforce";
      }
      const bool changed = lands;
      if (c.kind == "ipsec.keys") {
        std::ifstream f(d.path + "/ipsec-keys");
        std::string text((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
        auto at = text.find("k1 AES-GCM-256 ");
        ASSERT_NE(at, std::string::npos) << "k1 is not in the key file";
        std::string file_key = text.substr(at + 15, std::string(kKeyHex).size());
        auto sa = kernel->get_sa(out_sa);
        ASSERT_TRUE(sa.ok()) << sa.error().to_string();
        EXPECT_EQ(sa->sa.enc_key.reveal_hex(), file_key) << "kernel and key file disagree";
        EXPECT_EQ(file_key != kKeyHex, changed);
      } else if (c.kind == "ipsec.commit") {
        json committed = b.ok("policy.list", {{"committed", true}});
        std::string port;
        for (const auto& p : committed["policies"])
          if (p["name"] == "prot") port = p["fields"].value("RemotePort", "");
        EXPECT_EQ(port, changed ? "6000" : "5000-5001") << committed.dump();
        auto pol = kernel->lookup_policy(nl::Direction::kOut, *nl::IpAddress::parse("192.0.2.1"),
                                         *nl::IpAddress::parse("192.0.2.2"), 6, 40000, changed ? 6000 : 5000);
        ASSERT_TRUE(pol.has_value());
        EXPECT_FALSE(pol->templates.empty()) << "the committed list's PROTECT is not what the kernel enforces";
      } else if (c.kind == "ipsec.enable") {
        EXPECT_EQ(enabled, changed);
      } else if (c.kind == "ipsec.disable") {
        EXPECT_EQ(enabled, !changed);
      } else if (c.kind == "ipsec.default") {
        EXPECT_EQ(b.ok("ipsec.default")["default"], changed ? "DENYALL" : "IPv6Only");
      }
    }
  }
}

}  // namespace
}  // namespace storcrypt::controller
