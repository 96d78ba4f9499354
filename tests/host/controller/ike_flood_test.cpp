// Host tier (issue 15, DoS): a storcryptd under a flood of forged IKE_SA_INIT
// requests while a legitimate peer brings its IKE SA up.
//
//   sc-l  192.0.2.1 ---vl/vr--- 192.0.2.2      sc-r: "right", the daemon under attack
//   (left, legit storcryptd)    192.0.2.129 ---vf0/vf1--- 192.0.2.130  sc-f: the flood
//
// right knows left and four more peers, 203.0.113.11-14, whose addresses the
// flood forges among 500 others (198.51.100.1-250, 203.0.113.1-250); every
// request is a well-formed IKE_SA_INIT (SA, KE, Nonce, made with our message
// encoder from a real first request of our Engine) with its own SPI and
// nonce, sent through a raw IPv4 socket (IPPROTO_RAW, so the test writes the
// IP header and picks the source). right routes both /24s back to sc-f,
// which owns only 203.0.113.11-14 (their answers are read back there) and
// drops the rest (no forwarding): the sink. Requests from the other 496
// addresses are no configured peer's and are dropped by right unanswered;
// the four peers' addresses raise half-open IKE SAs until the cookie
// threshold, then get COOKIEs only. right keeps its default limits; its
// half-open timeout (ike_half_open_timeout_seconds) is 15 s, long enough that
// the first half-open IKE SAs still stand when left starts (so left must
// answer a COOKIE) and short enough to wait for.
//
// Judged: at least 10,000 requests sent, and the flood keeps going until
// left's IKE SA is established on both sides (`ike peer up`, `ike list`);
// the four peers got COOKIE-only answers, more of them than IKE SA answers,
// and right's own counters (`ike list`: dos) show COOKIEs sent before left
// started, one more COOKIE than the four peers got (left's: no other
// configured address sends), and no request dropped at a limit;
// right's half-open IKE SAs in `ike list` never exceed the cookie threshold
// plus left's; right's VmRSS grows by less than 32 MiB during the flood and,
// once the half-open IKE SAs have timed out, is within 10 % of its start.
#include <arpa/inet.h>
#include <grp.h>
#include <gtest/gtest.h>
#include <netinet/ip.h>
#include <netinet/udp.h>
#include <openssl/rand.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "ike_node.h"
#include "storcrypt/common/fd.h"
#include "storcrypt/ike/engine.h"
#include "storcrypt/ike/message.h"
#include "storcrypt/testing/environment.h"
#include "storcrypt/testing/ike_fakes.h"
#include "storcrypt/testing/netns.h"
#include "storcrypt/testing/process.h"

namespace {

using nlohmann::json;
using storcrypt::ike::Bytes;
using storcrypt::UniqueFd;
using storcrypt::testing::eventually;
using storcrypt::testing::IkeNode;
using storcrypt::testing::ProcessResult;
using storcrypt::testing::sh;
using storcrypt::testing::TestNetns;
using storcrypt::testing::VethPair;
namespace ike = storcrypt::ike;

constexpr int kFloodRequests = 10000;
const char* const kOtherPeers[] = {"203.0.113.11", "203.0.113.12", "203.0.113.13", "203.0.113.14"};

/// The daemon's resident set (VmRSS, KiB); -1 when unreadable.
long vm_rss_kib(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind("VmRSS:", 0) == 0) return std::stol(line.substr(6));
  return -1;
}

/// A real first IKE_SA_INIT request of our Engine (SA, KE, Nonce, N(...)),
/// parsed, without the NAT detection notifies (they hash the SPI and the
/// addresses, which every forged copy changes).
ike::Message template_request() {
  storcrypt::testing::IkeTestPki pki;
  storcrypt::testing::MemoryTransport transport;
  storcrypt::testing::FakeChildSaKernel kernel;
  ike::Engine engine(transport, kernel);
  EXPECT_TRUE(engine.add_peer(pki.left_config("right")).ok());
  EXPECT_TRUE(engine.initiate("right").ok());
  EXPECT_EQ(transport.sent.size(), 1u);
  auto m = ike::parse(transport.sent.front().data);
  EXPECT_TRUE(m.ok());
  std::erase_if(m->payloads, [](const ike::Payload& p) {
    const auto* n = std::get_if<ike::NotifyPayload>(&p.body);
    return n && (n->type == ike::notify::kNatDetectionSourceIp || n->type == ike::notify::kNatDetectionDestinationIp);
  });
  return *m;
}

/// An IPv4/UDP 500->500 datagram from `src` to `dst` carrying `payload`
/// (the kernel fills the IP checksum and total length; UDP checksum 0 = none).
Bytes ipv4_udp(in_addr src, in_addr dst, const Bytes& payload) {
  Bytes out(sizeof(iphdr) + sizeof(udphdr) + payload.size());
  iphdr ip{};
  ip.version = 4;
  ip.ihl = 5;
  ip.ttl = 64;
  ip.protocol = IPPROTO_UDP;
  ip.saddr = src.s_addr;
  ip.daddr = dst.s_addr;
  ip.tot_len = htons(static_cast<std::uint16_t>(out.size()));
  udphdr udp{};
  udp.source = htons(500);
  udp.dest = htons(500);
  udp.len = htons(static_cast<std::uint16_t>(sizeof(udphdr) + payload.size()));
  std::memcpy(out.data(), &ip, sizeof ip);
  std::memcpy(out.data() + sizeof ip, &udp, sizeof udp);
  std::memcpy(out.data() + sizeof ip + sizeof udp, payload.data(), payload.size());
  return out;
}

class IkeFlood : public ::testing::Test {
 protected:
  void SetUp() override {
    STORCRYPT_REQUIRE(storcrypt::testing::is_root(), "needs root (network namespaces, raw sockets, UDP 500)");
    STORCRYPT_REQUIRE(getgrnam("storcrypt") != nullptr, "needs group storcrypt (scripts/setup.sh)");
    net_ = std::make_unique<VethPair>();
    STORCRYPT_REQUIRE(net_->ok, "needs network namespaces and veth (ip netns add, ip link add type veth)");
    flood_ = std::make_unique<TestNetns>("sc-f");
    ASSERT_TRUE(flood_->ok());
    const std::string pid = std::to_string(getpid());
    ASSERT_EQ(sh("ip link add vf" + pid + " netns " + net_->right.name() + " type veth peer name vg" + pid +
                 " netns " + flood_->name())
                  .exit_code,
              0);
    const TestNetns& r = net_->right;
    ASSERT_EQ(r.ip("link set vf" + pid + " name vf0"), 0);
    ASSERT_EQ(flood_->ip("link set vg" + pid + " name vf1"), 0);
    ASSERT_EQ(r.ip("addr add 192.0.2.129/25 dev vf0"), 0);
    ASSERT_EQ(flood_->ip("addr add 192.0.2.130/25 dev vf1"), 0);
    ASSERT_EQ(r.ip("link set vf0 up"), 0);
    ASSERT_EQ(flood_->ip("link set vf1 up"), 0);
    ASSERT_EQ(flood_->ip("link set lo up"), 0);
    ASSERT_EQ(r.ip("route add 198.51.100.0/24 via 192.0.2.130"), 0);
    ASSERT_EQ(r.ip("route add 203.0.113.0/24 via 192.0.2.130"), 0);
    for (const char* a : kOtherPeers) ASSERT_EQ(flood_->ip(std::string("addr add ") + a + "/32 dev vf1"), 0);

    left_ = std::make_unique<IkeNode>("left", net_->left);
    right_ = std::make_unique<IkeNode>("right", net_->right, "ike_half_open_timeout_seconds = 15\n");
    left_->start();
    right_->start();
    if (HasFatalFailure()) return;
    left_->ok({"cert", "create", "--cn", "left", "--org", "storcrypt-test", "--ip", "192.0.2.1"});
    right_->ok({"cert", "create", "--cn", "right", "--org", "storcrypt-test", "--ip", "192.0.2.2"});
    trust(*left_, *right_);
    trust(*right_, *left_);
    left_->ok({"ike", "peer", "add", "right", "--remote", "192.0.2.2", "--local", "192.0.2.1", "--local-ts",
               "192.0.2.1/32", "--remote-ts", "192.0.2.2/32", "--id", "ip:192.0.2.1"});
    right_->ok({"ike", "peer", "add", "left", "--remote", "192.0.2.1", "--local-ts", "192.0.2.2/32", "--remote-ts",
                "192.0.2.1/32", "--remote-id", "ip:192.0.2.1"});
    int i = 0;
    for (const char* a : kOtherPeers)
      right_->ok({"ike", "peer", "add", "other" + std::to_string(++i), "--remote", a, "--local-ts", "192.0.2.2/32",
                  "--remote-ts", std::string(a) + "/32"});
  }
  void TearDown() override {
    left_.reset();
    right_.reset();
    flood_.reset();
    net_.reset();
  }
  void trust(IkeNode& to, IkeNode& from) {
    const std::string pem = from.file("root.pem");
    ProcessResult ex = from.cli({"cert", "export-root", "--out", pem});
    ASSERT_EQ(ex.exit_code, 0) << ex.err;
    to.ok({"truststore", "add", pem, "--use", "ipsec"});
  }
  static int count_state(const json& list, const std::string& state) {
    int n = 0;
    for (const auto& s : list.value("sas", json::array()))
      if (s.value("state", "") == state) ++n;
    return n;
  }

  std::unique_ptr<VethPair> net_;
  std::unique_ptr<TestNetns> flood_;
  std::unique_ptr<IkeNode> left_, right_;
};

TEST_F(IkeFlood, CookiesEngageMemoryStaysBoundedAndALegitimatePeerComesUp) {
  const ike::Message tmpl = template_request();
  ASSERT_FALSE(tmpl.payloads.empty());
  // The forged sources: 500 addresses, the four configured peers among them.
  std::vector<in_addr> sources;
  for (const char* net : {"198.51.100.", "203.0.113."})
    for (int h = 1; h <= 250; ++h) {
      in_addr a{};
      ASSERT_EQ(inet_pton(AF_INET, (net + std::to_string(h)).c_str(), &a), 1);
      sources.push_back(a);
    }
  in_addr target{};
  ASSERT_EQ(inet_pton(AF_INET, "192.0.2.129", &target), 1);

  // Answers to the four peers' addresses land on this socket in sc-f.
  const int reply_fd = flood_->run_inside([] {
    int s = ::socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (s < 0) return -1;
    int big = 4 << 20;
    (void)::setsockopt(s, SOL_SOCKET, SO_RCVBUFFORCE, &big, sizeof big);
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_port = htons(500);
    if (::bind(s, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0) {
      ::close(s);
      return -1;
    }
    return s;
  });
  ASSERT_GE(reply_fd, 0);
  UniqueFd replies(reply_fd);

  ASSERT_TRUE(right_->ok({"ike", "list"}).value("running", false));
  const pid_t victim = right_->pid();
  const long rss_start = vm_rss_kib(victim);
  ASSERT_GT(rss_start, 0);

  std::atomic<int> sent{0}, send_errors{0};
  std::atomic<bool> stop{false};
  std::thread flood([&] {
    (void)flood_->run_inside([&] {
      UniqueFd raw(::socket(AF_INET, SOCK_RAW | SOCK_CLOEXEC, IPPROTO_RAW));
      if (!raw.valid()) return -1;
      sockaddr_in to{};
      to.sin_family = AF_INET;
      to.sin_addr = target;
      ike::Message m = tmpl;
      auto nonce = std::find_if(m.payloads.begin(), m.payloads.end(), [](const ike::Payload& p) {
        return std::holds_alternative<ike::NoncePayload>(p.body);
      });
      // At least kFloodRequests, and on until the legitimate peer is up
      // (bounded: 20 times that).
      for (int i = 0; i < 20 * kFloodRequests && (i < kFloodRequests || !stop.load()); ++i) {
        std::uint64_t spi = 0;
        RAND_bytes(reinterpret_cast<unsigned char*>(&spi), sizeof spi);
        m.header.spi_i = spi | 1;
        if (nonce != m.payloads.end()) {
          auto& n = std::get<ike::NoncePayload>(nonce->body).data;
          RAND_bytes(n.data(), static_cast<int>(n.size()));
        }
        auto ike_bytes = ike::serialize(m);
        if (!ike_bytes) return -1;
        const Bytes pkt = ipv4_udp(sources[static_cast<std::size_t>(i) % sources.size()], target, *ike_bytes);
        if (::sendto(raw.get(), pkt.data(), pkt.size(), 0, reinterpret_cast<sockaddr*>(&to), sizeof to) < 0)
          ++send_errors;
        ++sent;
        // About 5,000 a second: 10,000 in a few seconds, without overrunning
        // the socket buffers of the veth pair.
        if (i % 50 == 49) std::this_thread::sleep_for(std::chrono::milliseconds(10));
      }
      return 0;
    });
  });

  // The legitimate peer starts once the flood is well under way.
  long rss_max = rss_start;
  int half_open_max = 0;
  auto watch = [&] {
    rss_max = std::max(rss_max, vm_rss_kib(victim));
    json l = right_->ok({"ike", "list"});
    half_open_max = std::max(half_open_max, count_state(l, "init-done") + count_state(l, "idle"));
    return l;
  };
  std::uint64_t cookies_before_up = 0;
  EXPECT_TRUE(eventually([&] {
    json l = watch();
    cookies_before_up = l.value("dos", json::object()).value("cookies_sent", std::uint64_t{0});
    return sent.load() >= kFloodRequests / 5 && cookies_before_up > 0;
  }));
  left_->ok({"ike", "peer", "up", "right"});
  const bool up = eventually([&] {
    json r = watch();
    return count_state(r, "established") == 1 && count_state(left_->ok({"ike", "list"}), "established") == 1;
  });
  const int sent_when_up = sent.load();
  stop = true;
  flood.join();
  rss_max = std::max(rss_max, vm_rss_kib(victim));

  EXPECT_TRUE(up) << "left: " << left_->ok({"ike", "list"}).dump() << "\nright: " << right_->ok({"ike", "list"}).dump()
                  << "\nleft events: " << left_->ok({"event", "list"}).dump();
  EXPECT_GE(sent.load(), kFloodRequests);
  EXPECT_EQ(send_errors.load(), 0);
  // State per half-open SA is bounded: the default cookie threshold (10) plus left's.
  EXPECT_LE(half_open_max, 11);
  EXPECT_GT(half_open_max, 0);

  // The four peers' addresses: a few IKE SA answers, then COOKIEs only.
  int cookie_answers = 0, sa_answers = 0, other = 0;
  std::vector<std::uint8_t> buf(65536);
  for (ssize_t n; (n = ::recv(replies.get(), buf.data(), buf.size(), 0)) > 0;) {
    auto m = ike::parse(Bytes(buf.begin(), buf.begin() + n));
    if (!m) {
      ++other;
      continue;
    }
    if (m->payloads.size() == 1 && m->find_notify(ike::notify::kCookie) && m->header.spi_r == 0)
      ++cookie_answers;
    else if (m->find(ike::PayloadType::kSa) != nullptr)
      ++sa_answers;
    else
      ++other;
  }
  EXPECT_GT(cookie_answers, 0);
  EXPECT_GT(cookie_answers, sa_answers);
  EXPECT_GT(sa_answers, 0);  // below the threshold they were answered in full

  // The daemon's own count (ike list, dos) agrees: cookies were on before
  // left started, left got one too, and nothing reached the per-address or
  // overall limit.
  const json dos = right_->ok({"ike", "list"}).value("dos", json::object());
  EXPECT_GT(cookies_before_up, 0u);
  EXPECT_GE(dos.value("cookies_sent", std::uint64_t{0}), static_cast<std::uint64_t>(cookie_answers)) << dos.dump();
  EXPECT_GT(dos.value("cookies_sent", std::uint64_t{0}), static_cast<std::uint64_t>(cookie_answers))
      << "left was not asked for a COOKIE: " << dos.dump();
  EXPECT_EQ(dos.value("blocked", 1), 0) << dos.dump();
  EXPECT_EQ(dos.value("over_limit", 1), 0) << dos.dump();

  const long rss_growth = rss_max - rss_start;
  EXPECT_LT(rss_growth, 32L * 1024) << "VmRSS " << rss_start << " KiB at the start, " << rss_max << " KiB at most";

  // After the half-open timeout (15 s here) only left's IKE SA is left, and
  // the daemon's memory is back within 10 % of its start.
  EXPECT_TRUE(eventually([&] {
    json r = right_->ok({"ike", "list"});
    return r.value("sas", json::array()).size() == 1 && count_state(r, "established") == 1;
  }, 3000)) << right_->ok({"ike", "list"}).dump();
  const long rss_end = vm_rss_kib(victim);
  EXPECT_LE(std::abs(rss_end - rss_start) * 10, rss_start)
      << "VmRSS " << rss_start << " KiB at the start, " << rss_end << " KiB after";
  std::printf("flood: %d requests (%d when left was up); answers to the four peers: %d COOKIE, %d IKE SA, %d other; "
              "half-open IKE SAs at most %d; daemon: %s; VmRSS %ld KiB at the start, %ld KiB at most, %ld KiB after\n",
              sent.load(), sent_when_up, cookie_answers, sa_answers, other, half_open_max, dos.dump().c_str(),
              rss_start, rss_max, rss_end);
}

}  // namespace
