// Host tier: UdpTransport in two network namespaces on a veth pair
// (192.0.2.1 / 2001:db8::1 left, 192.0.2.2 / 2001:db8::2 right), on the real
// ports 500 and 4500 (each namespace has its own port space).
//
// Proves: datagrams both ways on 500 and 4500, IPv4 and IPv6; the non-ESP
// marker is on the wire from 4500 and stripped on receive; keepalives and
// ESP on 4500 never reach the engine; a wildcard socket reports the local
// address; a taken port is named. Then, with a BLOCK policy for all traffic
// (in and out, both families, both namespaces): IKE datagrams still pass,
// while the same datagrams from plain sockets are blocked, outbound
// (XfrmOutPolBlock) and inbound (XfrmInPolBlock).
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <linux/xfrm.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>

#include <chrono>
#include <cstring>
#include <sstream>
#include <thread>

#include "storcrypt/common/fd.h"
#include "storcrypt/ike/udp.h"
#include "storcrypt/testing/environment.h"
#include "storcrypt/testing/netns.h"
#include "storcrypt/testing/process.h"

namespace storcrypt::ike {
namespace {

using storcrypt::testing::TestNetns;
using storcrypt::testing::VethPair;
using namespace std::chrono_literals;

IpAddress ip(const char* s) { return *IpAddress::parse(s); }

/// An IKE-looking message (nonzero SPI first, so it is never taken for a marker).
Bytes message(std::uint8_t tag, std::size_t n = 80) {
  Bytes b(n, tag);
  b[0] = 0x5c;
  return b;
}

std::optional<Datagram> wait_receive(UdpTransport& t, std::chrono::milliseconds timeout = 2000ms) {
  const auto end = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    auto r = t.receive();
    EXPECT_TRUE(r.ok()) << r.error().to_string();
    if (!r.ok()) return std::nullopt;
    if (*r) return std::move(**r);
    if (std::chrono::steady_clock::now() >= end) return std::nullopt;
    std::vector<pollfd> pfds;
    for (int fd : t.fds()) pfds.push_back(pollfd{fd, POLLIN, 0});
    ::poll(pfds.data(), pfds.size(), 50);
  }
}

struct Sites {
  VethPair veth;
  bool ok = false;
  Sites() {
    if (!veth.ok) return;
    std::string mac_l, mac_r;
    ok = veth.left.ip("addr add 2001:db8::1/64 dev vl nodad") == 0 &&
         veth.right.ip("addr add 2001:db8::2/64 dev vr nodad") == 0 && veth.left.ip("-br link show vl", &mac_l) == 0 &&
         veth.right.ip("-br link show vr", &mac_r) == 0;
    // Static neighbours: with a BLOCK policy for all IPv6 traffic, ARP still
    // works (not IP) but neighbour discovery (ICMPv6) would be blocked too.
    auto mac = [](const std::string& line) {
      std::istringstream in(line);
      std::string name, state, m;
      in >> name >> state >> m;
      return m;
    };
    ok = ok && veth.left.ip("-6 neigh replace 2001:db8::2 lladdr " + mac(mac_r) + " dev vl nud permanent") == 0 &&
         veth.right.ip("-6 neigh replace 2001:db8::1 lladdr " + mac(mac_l) + " dev vr nud permanent") == 0 &&
         veth.left.ip("neigh replace 192.0.2.2 lladdr " + mac(mac_r) + " dev vl nud permanent") == 0 &&
         veth.right.ip("neigh replace 192.0.2.1 lladdr " + mac(mac_l) + " dev vr nud permanent") == 0;
  }
  void block_all() {
    for (const TestNetns* ns : {&veth.left, &veth.right})
      for (const char* dir : {"out", "in"})
        for (const char* any : {"0.0.0.0/0", "::/0"}) {
          std::string out;
          ASSERT_EQ(
              ns->ip(std::string("xfrm policy add src ") + any + " dst " + any + " dir " + dir + " action block", &out),
              0)
              << out;
        }
  }
};

std::unique_ptr<UdpTransport> open_transport(const TestNetns& ns, std::vector<IpAddress> addrs) {
  UdpOptions o;
  o.netns = ns.name();
  o.addresses = std::move(addrs);
  auto t = UdpTransport::open(o);
  EXPECT_TRUE(t.ok()) << t.error().to_string();
  return t.ok() ? std::move(*t) : nullptr;
}

/// A plain UDP socket in `ns` (no XFRM bypass unless `bypass_out`), bound to addr:port (0 = ephemeral).
UniqueFd plain_socket(const TestNetns& ns, const IpAddress& addr, std::uint16_t port, bool bypass_out = false) {
  int fd = -1;
  ns.run_inside([&] {
    const bool v4 = addr.family == Family::kIPv4;
    fd = ::socket(v4 ? AF_INET : AF_INET6, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return -1;
    sockaddr_storage ss{};
    socklen_t len;
    if (v4) {
      auto* s = reinterpret_cast<sockaddr_in*>(&ss);
      s->sin_family = AF_INET;
      s->sin_port = htons(port);
      std::memcpy(&s->sin_addr, addr.bytes.data(), 4);
      len = sizeof *s;
    } else {
      auto* s = reinterpret_cast<sockaddr_in6*>(&ss);
      s->sin6_family = AF_INET6;
      s->sin6_port = htons(port);
      std::memcpy(&s->sin6_addr, addr.bytes.data(), 16);
      len = sizeof *s;
    }
    if (bypass_out) {
      xfrm_userpolicy_info pol{};
      pol.action = XFRM_POLICY_ALLOW;
      pol.sel.family = v4 ? AF_INET : AF_INET6;
      pol.dir = XFRM_POLICY_OUT;
      if (::setsockopt(fd, v4 ? IPPROTO_IP : IPPROTO_IPV6, v4 ? IP_XFRM_POLICY : IPV6_XFRM_POLICY, &pol, sizeof pol) !=
          0)
        return -1;
    }
    return ::bind(fd, reinterpret_cast<sockaddr*>(&ss), len);
  });
  return UniqueFd(fd);
}

/// sendto from a plain socket; returns 0 or errno.
int plain_send(int fd, const Endpoint& to, const Bytes& data) {
  sockaddr_storage ss{};
  socklen_t len;
  if (to.addr.family == Family::kIPv4) {
    auto* s = reinterpret_cast<sockaddr_in*>(&ss);
    s->sin_family = AF_INET;
    s->sin_port = htons(to.port);
    std::memcpy(&s->sin_addr, to.addr.bytes.data(), 4);
    len = sizeof *s;
  } else {
    auto* s = reinterpret_cast<sockaddr_in6*>(&ss);
    s->sin6_family = AF_INET6;
    s->sin6_port = htons(to.port);
    std::memcpy(&s->sin6_addr, to.addr.bytes.data(), 16);
    len = sizeof *s;
  }
  return ::sendto(fd, data.data(), data.size(), 0, reinterpret_cast<sockaddr*>(&ss), len) < 0 ? errno : 0;
}

/// Wait for one datagram on a plain socket; nullopt on timeout.
std::optional<Bytes> plain_receive(int fd, int timeout_ms = 1000) {
  pollfd p{fd, POLLIN, 0};
  if (::poll(&p, 1, timeout_ms) != 1) return std::nullopt;
  Bytes b(65536);
  ssize_t n = ::recv(fd, b.data(), b.size(), 0);
  if (n < 0) return std::nullopt;
  b.resize(static_cast<std::size_t>(n));
  return b;
}

#define NEED_NETNS() STORCRYPT_REQUIRE(storcrypt::testing::can_use_netns(), "needs root and network namespaces")

TEST(UdpTransportHost, ExchangesOn500And4500BothFamiliesWithMarkerAndLocalAddress) {
  NEED_NETNS();
  Sites s;
  ASSERT_TRUE(s.ok);
  auto left = open_transport(s.veth.left, {IpAddress::any(Family::kIPv4), IpAddress::any(Family::kIPv6)});
  auto right = open_transport(s.veth.right, {ip("192.0.2.2"), ip("2001:db8::2")});
  ASSERT_TRUE(left && right);
  EXPECT_EQ(left->fds().size(), 4u);

  struct Case {
    const char* l;
    const char* r;
    std::uint16_t port;
  };
  for (Case c : {Case{"192.0.2.1", "192.0.2.2", 500}, Case{"192.0.2.1", "192.0.2.2", 4500},
                 Case{"2001:db8::1", "2001:db8::2", 500}, Case{"2001:db8::1", "2001:db8::2", 4500}}) {
    SCOPED_TRACE(std::string(c.l) + " port " + std::to_string(c.port));
    const Endpoint le{ip(c.l), c.port}, re{ip(c.r), c.port};
    Bytes m1 = message(0x11);
    ASSERT_TRUE(right->send(Datagram{re, le, m1}).ok());
    auto got = wait_receive(*left);
    ASSERT_TRUE(got.has_value());
    EXPECT_EQ(got->data, m1);   // marker stripped on 4500
    EXPECT_EQ(got->local, le);  // the wildcard socket still knows the address
    EXPECT_EQ(got->remote, re);
    // Reply from the reported local endpoint (source chosen per datagram on a wildcard socket).
    Bytes m2 = message(0x22, 300);
    auto st = left->send(Datagram{got->local, got->remote, m2});
    ASSERT_TRUE(st.ok()) << st.error().to_string();
    auto back = wait_receive(*right);
    ASSERT_TRUE(back.has_value());
    EXPECT_EQ(back->data, m2);
    EXPECT_EQ(back->remote, le);
    EXPECT_EQ(back->local, re);
  }

  // On the wire: the marker is there from 4500, absent from 500.
  UniqueFd sniff = plain_socket(s.veth.right, ip("192.0.2.2"), 4600);
  ASSERT_TRUE(sniff.valid());
  Bytes m = message(0x33);
  ASSERT_TRUE(left->send(Datagram{{ip("192.0.2.1"), 4500}, {ip("192.0.2.2"), 4600}, m}).ok());
  auto raw = plain_receive(sniff.get());
  ASSERT_TRUE(raw.has_value());
  ASSERT_EQ(raw->size(), m.size() + 4);
  EXPECT_EQ(Bytes(raw->begin(), raw->begin() + 4), Bytes(4, 0));
  EXPECT_EQ(Bytes(raw->begin() + 4, raw->end()), m);
  ASSERT_TRUE(left->send(Datagram{{ip("192.0.2.1"), 500}, {ip("192.0.2.2"), 4600}, m}).ok());
  raw = plain_receive(sniff.get());
  ASSERT_TRUE(raw.has_value());
  EXPECT_EQ(*raw, m);

  // Into 4500: a keepalive and an ESP packet never reach the engine; a marked IKE message does.
  UniqueFd peer = plain_socket(s.veth.right, ip("192.0.2.2"), 4700);
  const Endpoint l4500{ip("192.0.2.1"), 4500};
  ASSERT_EQ(plain_send(peer.get(), l4500, Bytes{0xff}), 0);
  Bytes esp = message(0x44);  // SPI 0x5c444444, not a marker
  ASSERT_EQ(plain_send(peer.get(), l4500, esp), 0);
  Bytes marked = add_non_esp_marker(m);
  ASSERT_EQ(plain_send(peer.get(), l4500, marked), 0);
  auto only = wait_receive(*left);
  ASSERT_TRUE(only.has_value());
  EXPECT_EQ(only->data, m);
  EXPECT_EQ(only->remote, (Endpoint{ip("192.0.2.2"), 4700}));
  EXPECT_FALSE(wait_receive(*left, 300ms).has_value());
  // The kernel took the ESP packet because the 4500 sockets are UDP_ENCAP_ESPINUDP (the 500 ones are not).
  // (This kernel has no ESP, and counts nothing in xfrm_stat for the packet, so ask the socket.)
  const auto eps = left->endpoints();
  const auto fds = left->fds();
  ASSERT_EQ(eps.size(), fds.size());
  for (std::size_t i = 0; i < fds.size(); ++i) {
    int type = -1;
    socklen_t len = sizeof type;
    ASSERT_EQ(::getsockopt(fds[i], IPPROTO_UDP, 100 /* UDP_ENCAP */, &type, &len), 0);
    EXPECT_EQ(type, eps[i].port == 4500 ? 2 /* UDP_ENCAP_ESPINUDP */ : 0) << eps[i].port;
  }

  // Sending from an endpoint we do not listen on is refused.
  EXPECT_EQ(right->send(Datagram{{ip("192.0.2.2"), 501}, {ip("192.0.2.1"), 500}, m}).error().code(),
            ErrorCode::kInvalidInput);
}

TEST(UdpTransportHost, APortInUseIsNamed) {
  NEED_NETNS();
  Sites s;
  ASSERT_TRUE(s.ok);
  auto first = open_transport(s.veth.right, {ip("192.0.2.2")});
  ASSERT_TRUE(first);
  UdpOptions o;
  o.netns = s.veth.right.name();
  o.addresses = {ip("192.0.2.2")};
  auto second = UdpTransport::open(o);
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.error().code(), ErrorCode::kConflict);
  EXPECT_EQ(second.error().message(), "UDP 500 on 192.0.2.2 is in use (another IKE daemon such as charon?)");
  // High ports, as tests use them, are independent.
  o.ike_port = 10500;
  o.natt_port = 14500;
  EXPECT_TRUE(UdpTransport::open(o).ok());
  // An address that is not configured, and a namespace that does not exist.
  o.addresses = {ip("198.51.100.77")};
  EXPECT_EQ(UdpTransport::open(o).error().code(), ErrorCode::kNotFound);
  o.netns = "storcrypt-no-such-netns";
  EXPECT_EQ(UdpTransport::open(o).error().code(), ErrorCode::kNotFound);
}

TEST(UdpTransportHost, IkePassesABlockAllPolicyThatBlocksPlainSockets) {
  NEED_NETNS();
  Sites s;
  ASSERT_TRUE(s.ok);
  auto left = open_transport(s.veth.left, {ip("192.0.2.1"), ip("2001:db8::1")});
  auto right = open_transport(s.veth.right, {ip("192.0.2.2"), ip("2001:db8::2")});
  ASSERT_TRUE(left && right);
  s.block_all();
  if (HasFatalFailure()) return;
  std::string pols;
  ASSERT_EQ(s.veth.left.ip("xfrm policy", &pols), 0);
  ASSERT_NE(pols.find("action block"), std::string::npos) << pols;

  for (auto [l, r] : {std::pair{"192.0.2.1", "192.0.2.2"}, std::pair{"2001:db8::1", "2001:db8::2"}})
    for (std::uint16_t port : {std::uint16_t{500}, std::uint16_t{4500}}) {
      SCOPED_TRACE(std::string(l) + " port " + std::to_string(port));
      const Endpoint le{ip(l), port}, re{ip(r), port};
      Bytes m = message(0x55);
      ASSERT_TRUE(left->send(Datagram{le, re, m}).ok());
      auto got = wait_receive(*right);
      ASSERT_TRUE(got.has_value()) << "IKE blocked by the XFRM policy";
      EXPECT_EQ(got->data, m);
      ASSERT_TRUE(right->send(Datagram{re, le, m}).ok());
      ASSERT_TRUE(wait_receive(*left).has_value());

      // The same datagram from a plain socket: refused on the way out.
      const long out0 = storcrypt::testing::xfrm_stat(s.veth.left, "XfrmOutPolBlock");
      UniqueFd plain = plain_socket(s.veth.left, ip(l), 0);
      ASSERT_TRUE(plain.valid());
      EXPECT_EQ(plain_send(plain.get(), re, m), EPERM);
      EXPECT_GT(storcrypt::testing::xfrm_stat(s.veth.left, "XfrmOutPolBlock"), out0);
      EXPECT_FALSE(wait_receive(*right, 300ms).has_value());

      // Let it out (bypass on the sender only): a plain receiver drops it on
      // the way in, our transport's socket (inbound bypass) takes it.
      UniqueFd sender = plain_socket(s.veth.left, ip(l), 0, /*bypass_out=*/true);
      UniqueFd receiver = plain_socket(s.veth.right, ip(r), 4800);
      ASSERT_TRUE(sender.valid() && receiver.valid());
      const long in0 = storcrypt::testing::xfrm_stat(s.veth.right, "XfrmInPolBlock");
      ASSERT_EQ(plain_send(sender.get(), Endpoint{ip(r), 4800}, m), 0);
      EXPECT_FALSE(plain_receive(receiver.get(), 300).has_value());
      EXPECT_GT(storcrypt::testing::xfrm_stat(s.veth.right, "XfrmInPolBlock"), in0);
      ASSERT_EQ(plain_send(sender.get(), re, port == 4500 ? add_non_esp_marker(m) : m), 0);
      auto in = wait_receive(*right);
      ASSERT_TRUE(in.has_value());
      EXPECT_EQ(in->data, m);
    }
}

}  // namespace
}  // namespace storcrypt::ike
