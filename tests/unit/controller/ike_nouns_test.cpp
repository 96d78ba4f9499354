// The ike noun through the dispatcher, two daemons' worth of state (Node)
// whose IKE runners (ike::Runner::start(Io, ...)) exchange datagrams in
// memory (MemoryNet) and install CHILD_SAs into FakeChildSaKernel. Real
// certificates: each node's `cert create` (internal root CA + endpoint), the
// other node's root added to the truststore for ipsec through the API.
// Covers: a peer brought up on both sides with the CNSA suite, persistence
// and start=start across a restart, every validation error of ike.peer.add,
// the runner's start error (port taken) leaving nothing behind, and event
// 2020 with the peer certificate's subject/issuer on a wrong root.
#include <gtest/gtest.h>

#include <chrono>
#include <deque>
#include <map>
#include <set>
#include <thread>

#include "node.h"
#include "storcrypt/controller/ike.h"
#include "storcrypt/ike/xfrm_kernel.h"
#include "storcrypt/testing/fake_xfrm.h"
#include "storcrypt/testing/ike_fakes.h"
#include "temp_dir.h"

namespace storcrypt::controller {
namespace {

using nlohmann::json;
using test::Node;

/// Datagrams between in-memory IKE runners, by destination address.
struct MemoryNet {
  std::mutex mu;
  std::map<std::string, std::deque<ike::Datagram>> inbox;
};

class NetTransport : public ike::Transport {
 public:
  NetTransport(std::shared_ptr<MemoryNet> net, IpAddress self) : net_(std::move(net)), self_(self) {}
  Status send(const ike::Datagram& d) override {
    ike::Datagram r{d.remote, d.local, d.data};  // as the receiver sees it
    if (r.remote.addr.is_any()) r.remote.addr = self_;
    std::lock_guard lock(net_->mu);
    net_->inbox[d.remote.addr.to_string()].push_back(std::move(r));
    return ok_status();
  }

 private:
  std::shared_ptr<MemoryNet> net_;
  IpAddress self_;
};

/// The factory seam: a runner over NetTransport at `self`, or `fail` when set.
/// With `xfrm`, the runner's kernel is the real XfrmChildSaKernel over that
/// FakeXfrm (its objects outlive the node: a "restart" finds them).
std::function<void(Context&)> memory_ike(std::shared_ptr<MemoryNet> net, const std::string& self,
                                         std::optional<Error> fail = std::nullopt,
                                         std::shared_ptr<netlink::FakeXfrm> xfrm = nullptr) {
  return [net, self, fail, xfrm](Context& ctx) {
    auto f = std::make_shared<IkeRunnerFactory>();
    f->start = [net, self, fail, xfrm](const ike::RunnerOptions& opts,
                                 std::function<void(const ike::Event&)> cb) -> Result<std::unique_ptr<ike::Runner>> {
      if (fail) return *fail;
      IpAddress addr = *IpAddress::parse(self);
      ike::Runner::Io io;
      io.transport = std::make_unique<NetTransport>(net, addr);
      if (xfrm) {
        auto k = ike::XfrmChildSaKernel::create(*xfrm);
        if (!k.ok()) return k.error();
        io.kernel = std::move(*k);
        io.keep_alive = xfrm;
      } else {
        io.kernel = std::make_unique<testing::FakeChildSaKernel>();
      }
      io.poll_fds = [] { return std::vector<int>{}; };
      io.receive = [net, self]() -> Result<std::optional<ike::Datagram>> {
        std::lock_guard lock(net->mu);
        auto& q = net->inbox[self];
        if (q.empty()) return std::optional<ike::Datagram>();
        ike::Datagram d = std::move(q.front());
        q.pop_front();
        return std::optional<ike::Datagram>(std::move(d));
      };
      ike::RunnerOptions o = opts;
      o.tick = std::chrono::milliseconds(20);
      return ike::Runner::start(std::move(io), o, std::move(cb));
    };
    ctx.set_service(f);
  };
}

/// An endpoint certificate from this node's own internal root CA.
void make_cert(Node& n, const std::string& cn, const std::string& ip) {
  n.ok("cert.create", {{"common_name", cn}, {"organization", "storcrypt-test"}, {"ip", json::array({ip})},
                       {"dns", json::array({cn + ".lab"})}});
}
/// `to` trusts `from`'s root for ipsec.
void trust(Node& to, Node& from) {
  json root = from.ok("cert.export-root");
  to.ok("truststore.add", {{"pem", root["pem"]}, {"uses", "ipsec"}});
}

json peer_params(const std::string& name, const std::string& local, const std::string& remote) {
  return {{"name", name},
          {"remote", remote},
          {"local", local},
          {"local_ts", local + "/32"},
          {"remote_ts", remote + "/32"}};
}

/// Poll `pred` (every 20 ms, at most ~60 s: a bound, not a timing assertion).
template <class F>
bool eventually(F pred) {
  for (int i = 0; i < 3000; ++i) {
    if (pred()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return false;
}

bool established(Node& n) {
  auto r = n.call("ike.list");
  if (!r.ok()) return false;
  for (const auto& s : (*r)["sas"])
    if (s["state"] == "established" && !s["children"].empty()) return true;
  return false;
}

std::vector<Event> events_of(Node& n, int code) {
  EventFilter f;
  f.code = code;
  auto l = n.events->list(f);
  return l.ok() ? *l : std::vector<Event>{};
}

class IkeNouns : public ::testing::Test {
 protected:
  test::TempDir left_dir, right_dir;
  std::shared_ptr<MemoryNet> net = std::make_shared<MemoryNet>();
};

TEST_F(IkeNouns, TwoNodesBringUpAPeerWithTheCnsaSuite) {
  Node left(left_dir.path, false, memory_ike(net, "192.0.2.1"));
  Node right(right_dir.path, false, memory_ike(net, "192.0.2.2"));
  make_cert(left, "left", "192.0.2.1");
  make_cert(right, "right", "192.0.2.2");
  trust(left, right);
  trust(right, left);
  EXPECT_FALSE(left.ok("ike.list")["running"]);
  EXPECT_FALSE(left.ok("ike.list").contains("dos"));  // the counters come with the engine
  json lp = peer_params("right", "192.0.2.1", "192.0.2.2");
  lp["id"] = "fqdn:left.lab";  // what right demands with --remote-id
  json added = left.ok("ike.peer.add", lp);
  EXPECT_EQ(added["peer"]["ike_proposal"], "aes256-sha384-ecp384,aes256gcm16-prfsha384-ecp384");
  EXPECT_EQ(added["peer"]["esp_proposal"], "aes256gcm16-ecp384");
  EXPECT_EQ(added["peer"]["id"], "fqdn:left.lab");
  EXPECT_EQ(added["peer"]["state"], "down");
  json rp = peer_params("left", "192.0.2.2", "192.0.2.1");
  rp["remote_id"] = "fqdn:left.lab";
  right.ok("ike.peer.add", rp);
  EXPECT_TRUE(left.ok("ike.list")["running"]);

  left.ok("ike.peer.up", {{"name", "right"}});
  ASSERT_TRUE(eventually([&] { return established(left) && established(right); }));
  json l = left.ok("ike.show", {{"peer", "right"}});
  ASSERT_EQ(l["sas"].size(), 1u);
  const json& sa = l["sas"][0];
  EXPECT_EQ(sa["role"], "initiator");
  EXPECT_EQ(sa["suite"], "aes256-sha384-prfsha384-ecp384");  // CNSA, first proposal
  EXPECT_EQ(sa["local"]["address"], "192.0.2.1");
  EXPECT_EQ(sa["remote"]["address"], "192.0.2.2");
  EXPECT_EQ(sa["nat"], false);
  ASSERT_EQ(sa["children"].size(), 1u);
  EXPECT_EQ(sa["children"][0]["suite"], "aes256gcm16-noesn");
  EXPECT_EQ(sa["children"][0]["local_ts"], json::array({"192.0.2.1/32"}));
  EXPECT_EQ(sa["children"][0]["remote_ts"], json::array({"192.0.2.2/32"}));
  EXPECT_EQ(l["peer"]["state"], "up");
  json r = right.ok("ike.list");
  // One IKE_SA_INIT, below every limit: nothing half-open, no COOKIE, nothing dropped.
  EXPECT_EQ(r["dos"], json({{"half_open", 0}, {"cookies_sent", 0}, {"bad_cookies", 0}, {"blocked", 0}, {"over_limit", 0}}));
  ASSERT_EQ(r["sas"].size(), 1u);
  EXPECT_EQ(r["sas"][0]["role"], "responder");
  EXPECT_EQ(r["sas"][0]["spi_i"], sa["spi_i"]);
  EXPECT_EQ(r["sas"][0]["spi_r"], sa["spi_r"]);
  // The SPIs of the CHILD_SA cross over.
  EXPECT_EQ(r["sas"][0]["children"][0]["spi_in"], sa["children"][0]["spi_out"]);
  EXPECT_EQ(r["sas"][0]["children"][0]["spi_out"], sa["children"][0]["spi_in"]);
  // Up events on both sides.
  EXPECT_TRUE(eventually([&] { return !events_of(left, kIkeUpEvent).empty() && !events_of(right, kIkeUpEvent).empty(); }));
  EXPECT_TRUE(events_of(left, kIkeAuthFailedEvent).empty());

  // Down: the peer's SAs go on both sides.
  left.ok("ike.peer.down", {{"name", "right"}});
  EXPECT_TRUE(eventually([&] { return left.ok("ike.list")["sas"].empty() && right.ok("ike.list")["sas"].empty(); }));
  EXPECT_TRUE(eventually([&] { return !events_of(right, kIkeDownEvent).empty(); }));
  EXPECT_EQ(left.ok("ike.peer.show", {{"name", "right"}})["peer"]["state"], "down");
}

TEST_F(IkeNouns, PeersPersistAndStartStartBringsThemUpAfterARestart) {
  Node right(right_dir.path, false, memory_ike(net, "192.0.2.2"));
  make_cert(right, "right", "192.0.2.2");
  json lp = peer_params("right", "192.0.2.1", "192.0.2.2");
  lp["start"] = "start";
  lp["dpd_action"] = "restart";
  lp["ike_proposal"] = "aes256gcm16-prfsha384-ecp384";
  lp["id"] = "ip:192.0.2.1";
  {
    Node left(left_dir.path, false, memory_ike(net, "192.0.2.1"));
    make_cert(left, "left", "192.0.2.1");
    trust(left, right);
    trust(right, left);
    left.ok("ike.peer.add", lp);
  }
  right.ok("ike.peer.add", peer_params("left", "192.0.2.2", "192.0.2.1"));
  // Not running until something needs it: the stored peer starts the runner at start-up.
  Node left(left_dir.path, true, memory_ike(net, "192.0.2.1"));
  json listed = left.ok("ike.peer.list");
  ASSERT_EQ(listed["peers"].size(), 1u);
  const json& p = listed["peers"][0];
  EXPECT_EQ(p["name"], "right");
  EXPECT_EQ(p["remote"], "192.0.2.2");
  EXPECT_EQ(p["local"], "192.0.2.1");
  EXPECT_EQ(p["local_ts"], json::array({"192.0.2.1/32"}));
  EXPECT_EQ(p["remote_ts"], json::array({"192.0.2.2/32"}));
  EXPECT_EQ(p["id"], "ip:192.0.2.1");
  EXPECT_EQ(p["ike_proposal"], "aes256gcm16-prfsha384-ecp384");
  EXPECT_EQ(p["start"], "start");
  EXPECT_EQ(p["dpd_action"], "restart");
  ASSERT_TRUE(eventually([&] { return established(left) && established(right); }));
  EXPECT_EQ(left.ok("ike.list")["sas"][0]["suite"], "aes256gcm16-prfsha384-ecp384");
  // Removed peers stay removed.
  left.ok("ike.peer.remove", {{"name", "right"}});
  EXPECT_TRUE(left.ok("ike.peer.list")["peers"].empty());
  EXPECT_TRUE(left.ok("ike.list")["sas"].empty());
  Node again(left_dir.path, true, memory_ike(net, "192.0.2.1"));
  EXPECT_TRUE(again.ok("ike.peer.list")["peers"].empty());
}

/// The reqids of the policies in `x` (one per policy).
std::multiset<std::uint32_t> policy_reqids(netlink::FakeXfrm& x) {
  std::multiset<std::uint32_t> out;
  const auto pols = x.dump_policies();
  for (const auto& p : *pols)
    for (const auto& t : p.templates) out.insert(t.reqid);
  return out;
}

/// A CHILD_SA a killed storcryptd left in the kernel (as XfrmChildSaKernel installs it).
std::uint32_t leave_child_sa(netlink::FakeXfrm& x, const std::string& remote, std::uint32_t spi_out) {
  auto k = std::move(*ike::XfrmChildSaKernel::create(x));
  auto slot = *k->reserve(*IpAddress::parse("192.0.2.1"), *IpAddress::parse(remote));
  ike::ChildSaSpec s;
  s.slot = slot;
  s.spi_out = spi_out;
  s.local = *IpAddress::parse("192.0.2.1");
  s.remote = *IpAddress::parse(remote);
  s.suite.protocol = ike::ProtocolId::kEsp;
  s.suite.encr = ike::transform_id::kEncrAesGcm16;
  s.suite.encr_key_bits = 256;
  s.suite.esn = ike::transform_id::kEsnNo;
  s.in.encr = SecretBytes(36);
  s.out.encr = SecretBytes(36);
  auto host = [](const IpAddress& a) { return ike::TsRange{0, 0, 65535, a, a}; };
  s.local_ts = {host(s.local)};
  s.remote_ts = {host(s.remote)};
  s.lifetime.hard_add = std::chrono::seconds(3600);
  s.replay_window = 64;
  EXPECT_TRUE(k->install(s).ok());
  return slot.reqid;
}

// storcryptd killed with its tunnels up: the kernel keeps their SAs and
// policies. At the next start the IKE service deletes the SAs, keeps the
// configured peer's policies until its new CHILD_SA takes them over (same
// selectors, same indexes), deletes those of a peer no longer configured,
// and says so (event 2025 with the counts).
TEST_F(IkeNouns, ARestartAfterSigkillClearsTheDeadInstancesChildSas) {
  auto kernel = std::make_shared<netlink::FakeXfrm>(netlink::Ownership::ike());
  const std::uint32_t old_reqid = leave_child_sa(*kernel, "192.0.2.2", 0xc0ffee01);
  const std::uint32_t other_reqid = leave_child_sa(*kernel, "192.0.2.9", 0xc0ffee09);
  ASSERT_EQ(kernel->dump_sas()->size(), 4u);
  ASSERT_EQ(kernel->dump_policies()->size(), 6u);
  std::set<std::uint32_t> old_indexes;
  const auto before = kernel->dump_policies();
  for (const auto& p : *before)
    if (p.templates.at(0).reqid == old_reqid) old_indexes.insert(p.index);

  Node right(right_dir.path, false, memory_ike(net, "192.0.2.2"));
  make_cert(right, "right", "192.0.2.2");
  json lp = peer_params("right", "192.0.2.1", "192.0.2.2");
  lp["start"] = "start";
  {
    Node left(left_dir.path, false, memory_ike(net, "192.0.2.1", std::nullopt, kernel));
    make_cert(left, "left", "192.0.2.1");
    trust(left, right);
    trust(right, left);
    left.ok("ike.peer.add", lp);  // the runner starts here and clears (as after a kill)
  }
  right.ok("ike.peer.add", peer_params("left", "192.0.2.2", "192.0.2.1"));
  // The first clear happened when the peer was added: nothing of the dead
  // instance's SAs is left, its policies for 192.0.2.2 are, 192.0.2.9's are not.
  EXPECT_EQ(kernel->dump_sas()->size(), 0u);
  EXPECT_EQ(policy_reqids(*kernel), (std::multiset<std::uint32_t>{old_reqid, old_reqid, old_reqid}));
  EXPECT_EQ(policy_reqids(*kernel).count(other_reqid), 0u);

  Node left(left_dir.path, true, memory_ike(net, "192.0.2.1", std::nullopt, kernel));
  ASSERT_TRUE(eventually([&] { return established(left) && established(right); }));
  // Exactly the new CHILD_SA: its 2 SAs, its 3 policies in the stale ones' places.
  auto sas = *kernel->dump_sas();
  ASSERT_EQ(sas.size(), 2u);
  const std::uint32_t new_reqid = sas[0].sa.reqid;
  EXPECT_NE(new_reqid, old_reqid);
  EXPECT_EQ(policy_reqids(*kernel), (std::multiset<std::uint32_t>{new_reqid, new_reqid, new_reqid}));
  std::set<std::uint32_t> new_indexes;
  const auto after = kernel->dump_policies();
  for (const auto& p : *after) new_indexes.insert(p.index);
  EXPECT_EQ(new_indexes, old_indexes);

  // Event 2025 at each start: the first found 4 SAs and 6 policies (3 of the
  // unconfigured peer deleted), the second the 3 kept ones.
  auto ev = events_of(left, kIkeStaleClearedEvent);
  ASSERT_EQ(ev.size(), 2u);
  if (ev[0].id > ev[1].id) std::swap(ev[0], ev[1]);
  EXPECT_EQ(ev[0].severity, Severity::kInfo);
  EXPECT_EQ(ev[0].sense, json({{"sas_deleted", 4}, {"policies_kept", 3}, {"policies_deleted", 3}})) << ev[0].message;
  EXPECT_EQ(ev[1].sense, json({{"sas_deleted", 0}, {"policies_kept", 3}, {"policies_deleted", 0}})) << ev[1].message;
  // The removal of the peer removes the policies it took over, by their kept indexes.
  left.ok("ike.peer.remove", {{"name", "right"}});
  EXPECT_TRUE(eventually([&] { return kernel->dump_policies()->empty() && kernel->dump_sas()->empty(); }))
      << kernel->dump_policies()->size() << " policies left";
}

Error add_error(Node& n, const json& params) {
  auto r = n.call("ike.peer.add", params);
  EXPECT_FALSE(r.ok()) << params.dump();
  return r.ok() ? Error(ErrorCode::kInternal, "accepted") : r.error();
}

TEST_F(IkeNouns, EveryBadInputIsRefusedWithWhatToDo) {
  Node n(left_dir.path, false, memory_ike(net, "192.0.2.1"));
  // Before an endpoint certificate exists.
  Error e = add_error(n, peer_params("right", "192.0.2.1", "192.0.2.2"));
  EXPECT_NE(e.message().find("endpoint certificate"), std::string::npos) << e.to_string();
  EXPECT_NE(e.fix().find("storcrypt cert create"), std::string::npos) << e.to_string();
  make_cert(n, "left", "192.0.2.1");

  struct Case {
    const char* field;
    json value;
    const char* name;     ///< error name
    const char* message;  ///< in the message
  };
  const Case cases[] = {
      {"name", "bad name", "xIkePeerBadName", "peer name 'bad name' is not valid"},
      {"name", "-x", "xIkePeerBadName", "is not valid"},
      {"remote", "192.0.2.300", "xIkePeerInvalid", "--remote: '192.0.2.300' is not a unicast IP address"},
      {"remote", "0.0.0.0", "xIkePeerInvalid", "is not a unicast IP address"},
      {"local", "2001:db8::1", "xIkePeerInvalid", "different address families"},
      {"local", "192.0.2.2", "xIkePeerInvalid", "--local and --remote are the same address"},
      {"local", "nowhere", "xIkePeerInvalid", "--local: 'nowhere' is not an IP address"},
      {"local_ts", "", "xIkePeerInvalid", "--local-ts is missing"},
      {"local_ts", "192.0.2.0/33", "xIkePeerInvalid", "--local-ts: '192.0.2.0/33' is not a prefix"},
      {"remote_ts", "2001:db8::/64", "xIkePeerInvalid", "--remote-ts: 2001:db8::/64 is not of the peer's address family"},
      {"remote_ts", "192.0.2.2/32,192.0.2.2", "xIkePeerInvalid", "is given twice"},
      {"id", "dn:CN=left", "xIkePeerInvalid", "--id: 'dn:CN=left' is not an ID"},
      {"id", "fqdn:other.lab", "xIkePeerInvalid", "does not name our certificate"},
      {"id", "ip:192.0.2.9", "xIkePeerInvalid", "does not name our certificate"},
      {"remote_id", "email:x@y", "xIkePeerInvalid", "--remote-id: 'email:x@y' is not an ID"},
      {"remote_id", "dn:CN", "xIkePeerInvalid", "is not a distinguished name"},
      {"remote_id", "dn:XX=1", "xIkePeerInvalid", "unknown attribute type 'XX'"},
      {"ike_proposal", "aes256-sha1-modp2048", "xIkeBadProposal", "unknown or unsupported algorithm 'sha1'"},
      {"ike_proposal", "3des-sha384-ecp384", "xIkeBadProposal", "unknown or unsupported algorithm '3des'"},
      {"ike_proposal", "aes256gcm16-sha384-prfsha384-ecp384", "xIkeBadProposal", "drop the integrity algorithm"},
      {"ike_proposal", "aes256-sha384", "xIkeBadProposal", "no key exchange group"},
      {"ike_proposal", "aes256gcm16-ecp384", "xIkeBadProposal", "AES-GCM needs a PRF"},
      {"ike_proposal", "aes256-ecp384", "xIkeBadProposal", "AES-CBC needs an integrity algorithm"},
      {"ike_proposal", "sha384-ecp384", "xIkeBadProposal", "no encryption algorithm"},
      {"ike_proposal", "aes256-sha384-ecp384,", "xIkeBadProposal", "an empty proposal between commas"},
      {"ike_proposal", "aes256-sha384-ecp384-esn", "xIkeBadProposal", "for ESP proposals only"},
      {"esp_proposal", "aes256gcm16-prfsha384", "xIkeBadProposal", "ESP has none"},
      {"esp_proposal", "aes192gcm16", "xIkeBadProposal", "no kernel mapping for ESP"},
      {"esp_proposal", "aes256gcm16-aes256", "xIkeBadProposal", "mixes AES-GCM with AES-CBC"},
      {"esp_proposal", "aes256gcm16-ecp384-ecp384", "xIkeBadProposal", "'ecp384' is given twice"},
      {"start", "always", "xIkePeerInvalid", "--start: 'always' is not none or start"},
      {"dpd_action", "trap", "xIkePeerInvalid", "--dpd-action: 'trap' is not none or restart"},
  };
  for (const Case& c : cases) {
    json p = peer_params("right", "192.0.2.1", "192.0.2.2");
    p[c.field] = c.value;
    Error err = add_error(n, p);
    EXPECT_EQ(err.code(), ErrorCode::kInvalidInput) << c.field << "=" << c.value << ": " << err.to_string();
    EXPECT_EQ(err.name(), c.name) << c.field << "=" << c.value << ": " << err.to_string();
    EXPECT_NE(err.message().find(c.message), std::string::npos) << c.field << "=" << c.value << ": " << err.to_string();
    EXPECT_FALSE(err.fix().empty()) << c.field << "=" << c.value;
  }
  // Nothing was stored, and nothing had to start for the refusals.
  EXPECT_TRUE(n.ok("ike.peer.list")["peers"].empty());
  EXPECT_FALSE(n.ok("ike.list")["running"]);

  // The good ones (strongSwan spellings, several proposals, IPv6) are taken.
  json good = peer_params("right", "192.0.2.1", "192.0.2.2");
  good["ike_proposal"] = "AES256-SHA2_384-ECP384,aes128gcm16-prfsha256-curve25519";
  good["esp_proposal"] = "aes256-sha512-esn,aes256gcm16";
  good["remote_id"] = "dn:CN=right,O=storcrypt-test";
  good["id"] = "fqdn:left.lab";
  n.ok("ike.peer.add", good);
  Error dup = add_error(n, good);
  EXPECT_EQ(dup.name(), "xIkePeerExists");
  json v6 = peer_params("right6", "2001:db8::1", "2001:db8::2");
  n.ok("ike.peer.add", v6);
  for (const char* m : {"ike.peer.show", "ike.peer.up", "ike.peer.down", "ike.peer.remove"}) {
    auto r = n.call(m, {{"name", "nobody"}});
    ASSERT_FALSE(r.ok()) << m;
    EXPECT_EQ(r.error().name(), "xIkePeerNotFound") << m;
  }
  auto r = n.call("ike.show", {{"peer", "nobody"}});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().name(), "xIkePeerNotFound");
}

TEST_F(IkeNouns, PortTakenFailsAddAndUpAndLeavesTheRestAlone) {
  Error taken(ErrorCode::kConflict, "UDP 500 on 0.0.0.0 is in use (another IKE daemon such as charon?)", "",
              "xUdpPortInUse");
  {
    Node n(left_dir.path, false, memory_ike(net, "192.0.2.1", taken));
    make_cert(n, "left", "192.0.2.1");
    Error e = add_error(n, peer_params("right", "192.0.2.1", "192.0.2.2"));
    EXPECT_EQ(e.code(), ErrorCode::kConflict);
    EXPECT_NE(e.message().find("cannot start IKE: UDP 500 on 0.0.0.0 is in use"), std::string::npos) << e.to_string();
    EXPECT_FALSE(e.fix().empty());
    EXPECT_TRUE(n.ok("ike.peer.list")["peers"].empty());
    EXPECT_FALSE(n.ok("ike.list")["running"]);
    n.ok("truststore.list");  // the rest of the daemon is unaffected
    n.ok("cert.show");
  }
  // A stored peer whose start-up could not bind: `peer up` says why.
  {
    Node n(left_dir.path, false, memory_ike(net, "192.0.2.1"));
    n.ok("ike.peer.add", peer_params("right", "192.0.2.1", "192.0.2.2"));
  }
  Node n(left_dir.path, true, memory_ike(net, "192.0.2.1", taken));
  EXPECT_EQ(n.ok("ike.peer.list")["peers"].size(), 1u);
  auto r = n.call("ike.peer.up", {{"name", "right"}});
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message().find("is in use"), std::string::npos) << r.error().to_string();
  EXPECT_FALSE(n.ok("ike.list")["running"]);
}

TEST_F(IkeNouns, WrongRootRaises2020WithThePeerCertificate) {
  test::TempDir other_dir;
  Node left(left_dir.path, false, memory_ike(net, "192.0.2.1"));
  Node right(right_dir.path, false, memory_ike(net, "192.0.2.2"));
  Node other(other_dir.path, false, memory_ike(net, "192.0.2.3"));
  make_cert(left, "left", "192.0.2.1");
  make_cert(right, "right", "192.0.2.2");
  make_cert(other, "other", "192.0.2.3");
  trust(left, right);
  trust(right, other);  // right trusts another root, not left's
  left.ok("ike.peer.add", peer_params("right", "192.0.2.1", "192.0.2.2"));
  right.ok("ike.peer.add", peer_params("left", "192.0.2.2", "192.0.2.1"));
  const std::string left_subject = left.ok("cert.show")["endpoint"]["subject"];
  const std::string left_issuer = left.ok("cert.show")["endpoint"]["issuer"];
  left.ok("ike.peer.up", {{"name", "right"}});
  ASSERT_TRUE(eventually([&] { return !events_of(right, kIkeAuthFailedEvent).empty(); }));
  Event ev = events_of(right, kIkeAuthFailedEvent).front();
  EXPECT_EQ(ev.severity, Severity::kError);
  EXPECT_EQ(ev.sense["peer"], "left");
  EXPECT_EQ(ev.sense["peer_subject"], left_subject);
  EXPECT_EQ(ev.sense["peer_issuer"], left_issuer);
  EXPECT_NE(ev.message.find(left_subject), std::string::npos) << ev.message;
  EXPECT_NE(ev.sense.value("reason", "").find("not trusted"), std::string::npos) << ev.sense.dump();
  EXPECT_FALSE(ev.user_actions.empty());
  // Neither side is up; the initiator hears why.
  EXPECT_TRUE(eventually([&] { return !events_of(left, kIkeAuthFailedEvent).empty() || !events_of(left, kIkeFailedEvent).empty(); }));
  EXPECT_FALSE(established(left));
  EXPECT_FALSE(established(right));
  EXPECT_TRUE(events_of(right, kIkeUpEvent).empty());

  // Trusting the right root (the truststore change is seen) lets it come up.
  trust(right, left);
  left.ok("ike.peer.up", {{"name", "right"}});
  EXPECT_TRUE(eventually([&] { return established(left) && established(right); }));
}

}  // namespace
}  // namespace storcrypt::controller
