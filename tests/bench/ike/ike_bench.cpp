// ike_bench: IKE_SA + first CHILD_SA setups per second, ours <-> ours, with
// real UDP and real XFRM (two ike::Runner instances, one per namespace, in
// this process). N peer pairs on distinct outer addresses (198.18.1.k <->
// 198.18.2.k, which the caller put on the link) with host selectors
// 198.19.1.k <-> 198.19.2.k; all N initiated at once, timed until both sides
// reported every CHILD_SA up; then all terminated. Repeats `rounds` times.
// Certificates: ECDSA P-384 end entities under an intermediate under a root
// (test_pki.h), the same chain shape as the charon side of the benchmark.
//
//   ike_bench NETNS_A NETNS_B N [ROUNDS]
// Prints one line per round and a final "ours setups_per_s=X" line (best round).
#include <openssl/evp.h>
#include <openssl/x509.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <string>
#include <thread>

#include "storcrypt/ike/peer_auth.h"
#include "storcrypt/ike/runner.h"
#include "storcrypt/testing/test_pki.h"

using namespace storcrypt;
using namespace storcrypt::ike;
namespace t = storcrypt::testing;

namespace {

struct Counter {
  std::mutex mu;
  std::condition_variable cv;
  int child_up = 0, down = 0, failed = 0;
  void on(const Event& e) {
    std::lock_guard lock(mu);
    if (e.kind == EventKind::kChildUp) ++child_up;
    if (e.kind == EventKind::kDown) ++down;
    if (e.kind == EventKind::kFailed || e.kind == EventKind::kAuthFailed || e.kind == EventKind::kChildFailed) {
      ++failed;
      std::fprintf(stderr, "ike_bench: %s %s: %s\n", std::string(event_kind_name(e.kind)).c_str(), e.peer.c_str(),
                   e.reason.c_str());
    }
    cv.notify_all();
  }
  bool wait(int Counter::*field, int n, std::chrono::seconds limit) {
    std::unique_lock lock(mu);
    return cv.wait_for(lock, limit, [&] { return this->*field >= n || failed > 0; }) && failed == 0;
  }
  void reset() {
    std::lock_guard lock(mu);
    child_up = down = failed = 0;
  }
};

X509Ref share(const t::CertPtr& c) {
  X509_up_ref(c.get());
  return share_x509(c.get());
}
PkeyRef share(const t::KeyPtr& k) {
  EVP_PKEY_up_ref(k.get());
  return share_pkey(k.get());
}
IpAddress v4(int a, int b, int c, int d) {
  return IpAddress::v4(static_cast<std::uint32_t>((a << 24) | (b << 16) | (c << 8) | d));
}
TsRange host(const IpAddress& a) {
  TsRange r;
  r.start = r.end = a;
  return r;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 4) {
    std::fprintf(stderr, "usage: ike_bench NETNS_A NETNS_B N [ROUNDS]\n");
    return 2;
  }
  const std::string ns_a = argv[1], ns_b = argv[2];
  const int n = std::atoi(argv[3]);
  const int rounds = argc > 4 ? std::atoi(argv[4]) : 3;
  if (n < 1 || n > 250 || rounds < 1) {
    std::fprintf(stderr, "ike_bench: N in 1..250, ROUNDS >= 1\n");
    return 2;
  }

  t::TestChain chain = t::make_chain({.ee = {.common_name = "bench-a.lab", .san = "DNS:bench-a.lab"}});
  t::KeyPtr b_key = t::generate_key(t::TestKey::kEcP384);
  t::CertPtr b_cert = t::issue_cert(b_key.get(), {.common_name = "bench-b.lab", .san = "DNS:bench-b.lab"},
                                    chain.intermediate.get(), chain.intermediate_key.get());
  X509* anchors[] = {chain.root.get()};
  auto validator = PeerValidator::from_certificates(anchors);
  if (!validator.ok()) {
    std::fprintf(stderr, "ike_bench: validator: %s\n", validator.error().to_string().c_str());
    return 1;
  }
  // One validator per side, as two nodes would have (each caches its peer's chains).
  auto validator_a = std::make_shared<const PeerValidator>(std::move(validator).value());
  auto validator_b =
      std::make_shared<const PeerValidator>(std::move(PeerValidator::from_certificates(anchors)).value());

  Counter ca, cb;
  auto start = [&](const std::string& ns, Counter& c) {
    RunnerOptions o;
    o.udp.netns = ns;
    o.udp.addresses = {IpAddress::any(Family::kIPv4)};
    return Runner::start(o, [&c](const Event& e) { c.on(e); });
  };
  auto ra = start(ns_a, ca);
  auto rb = start(ns_b, cb);
  if (!ra.ok() || !rb.ok()) {
    std::fprintf(stderr, "ike_bench: runner: %s\n", (!ra.ok() ? ra.error() : rb.error()).to_string().c_str());
    return 1;
  }
  for (int k = 1; k <= n; ++k) {
    for (int side = 0; side < 2; ++side) {
      PeerConfig c;
      c.name = "p" + std::to_string(k);
      const int me = side == 0 ? 1 : 2, them = side == 0 ? 2 : 1;
      c.local_addr = v4(198, 18, me, k);
      c.remote_addr = v4(198, 18, them, k);
      c.local_ts = {host(v4(198, 19, me, k))};
      c.remote_ts = {host(v4(198, 19, them, k))};
      c.local_cert = side == 0 ? share(chain.ee) : share(b_cert);
      c.local_key = side == 0 ? share(chain.ee_key) : share(b_key);
      c.local_intermediates = {share(chain.intermediate)};
      c.validate_peer = make_peer_cert_validator(side == 0 ? validator_a : validator_b);
      Runner& r = side == 0 ? **ra : **rb;
      if (auto st = r.with_engine([&](Engine& e) { return e.add_peer(std::move(c)); }); !st.ok()) {
        std::fprintf(stderr, "ike_bench: add_peer: %s\n", st.error().to_string().c_str());
        return 1;
      }
    }
  }

  double best = 0;
  for (int round = 1; round <= rounds; ++round) {
    ca.reset();
    cb.reset();
    const auto t0 = std::chrono::steady_clock::now();
    (*ra)->with_engine([&](Engine& e) {
      for (int k = 1; k <= n; ++k) (void)e.initiate("p" + std::to_string(k));
      return 0;
    });
    const bool ok = ca.wait(&Counter::child_up, n, std::chrono::seconds(300)) &&
                    cb.wait(&Counter::child_up, n, std::chrono::seconds(60));
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (!ok) {
      std::fprintf(stderr, "ike_bench: round %d: only %d/%d CHILD_SAs up\n", round, ca.child_up, n);
      return 1;
    }
    const double rate = n / secs;
    best = std::max(best, rate);
    std::printf("ours round=%d tunnels=%d seconds=%.3f setups_per_s=%.2f\n", round, n, secs, rate);
    std::fflush(stdout);
    (*ra)->with_engine([&](Engine& e) {
      for (int k = 1; k <= n; ++k) (void)e.terminate("p" + std::to_string(k));
      return 0;
    });
    if (!ca.wait(&Counter::down, n, std::chrono::seconds(120)) ||
        !cb.wait(&Counter::down, n, std::chrono::seconds(60))) {
      std::fprintf(stderr, "ike_bench: round %d: teardown incomplete\n", round);
      return 1;
    }
  }
  const auto stats = validator_b->stats();
  std::printf("ours setups_per_s=%.2f validator_cache_hits=%llu misses=%llu\n", best,
              static_cast<unsigned long long>(stats.cache_hits), static_cast<unsigned long long>(stats.cache_misses));
  return 0;
}
