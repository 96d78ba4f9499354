// Bulk XFRM programming: N policies and N SAs installed then deleted through
// storcrypt::netlink (one socket, pipelined) versus `ip -batch` doing the same
// in the same network namespace in the same run. Prints one line per case:
//   xfrm_install_10000_policies storcrypt_s=0.051 ip_batch_s=0.301 ratio_vs_ip_batch=5.90
// ratio = ip time / storcrypt time (> 1 means storcrypt is faster).
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

#include "storcrypt/netlink/xfrm_api.h"
#include "storcrypt/testing/netns.h"
#include "storcrypt/testing/process.h"

using namespace storcrypt;
using namespace storcrypt::netlink;
using Clock = std::chrono::steady_clock;

namespace {

double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

void report(const std::string& name, double ours, double ip) {
  std::printf("%s storcrypt_s=%.3f ip_batch_s=%.3f ratio_vs_ip_batch=%.2f\n", name.c_str(), ours, ip,
              ours > 0 ? ip / ours : 0.0);
  std::fflush(stdout);
}

std::string dst_net(int i) {
  return "10." + std::to_string(100 + i / 65536) + "." + std::to_string((i / 256) % 256) + "." +
         std::to_string(i % 256) + "/32";
}

double ip_batch(const std::string& ns, const std::string& file) {
  auto t0 = Clock::now();
  auto r = testing::run({"ip", "-n", ns, "-batch", file});
  double s = seconds_since(t0);
  if (r.exit_code != 0) {
    std::fprintf(stderr, "ip -batch failed: %s\n", r.err.substr(0, 500).c_str());
    std::exit(1);
  }
  return s;
}

std::size_t count_lines(const std::string& ns, const std::string& what, const std::string& needle) {
  auto r = testing::sh("ip -n " + ns + " xfrm " + what + " | grep -c '" + needle + "'");
  return static_cast<std::size_t>(std::atol(r.out.c_str()));
}

}  // namespace

int main(int argc, char** argv) {
  const int n = argc > 1 ? std::atoi(argv[1]) : 10000;
  testing::TestNetns ns("sc-bench");
  if (!ns.ok()) {
    std::fprintf(stderr, "needs root and network namespaces\n");
    return 1;
  }
  XfrmOptions o;
  o.netns = ns.name();
  auto x = open_xfrm(o);
  if (!x.ok()) {
    std::fprintf(stderr, "%s\n", x.error().to_string().c_str());
    return 1;
  }
  XfrmApi& api = **x;
  const std::string tmp = "/tmp/sc-bench-" + std::to_string(getpid());

  // ---- policies ----
  std::vector<Policy> ps;
  std::vector<PolicyId> ids;
  Template t;
  t.src = *IpAddress::parse("192.0.2.1");
  t.dst = *IpAddress::parse("192.0.2.2");
  t.reqid = 1;
  for (int i = 0; i < n; ++i) {
    Policy p;
    p.selector = *Selector::between(*Prefix::parse("10.0.0.0/16"), *Prefix::parse(dst_net(i)));
    p.dir = Direction::kOut;
    p.priority = 1000 + static_cast<std::uint32_t>(i);
    p.templates = {t};
    ids.push_back(p.id());
    ps.push_back(std::move(p));
  }
  {
    std::ofstream add(tmp + "-padd"), del(tmp + "-pdel");
    for (int i = 0; i < n; ++i) {
      add << "xfrm policy add src 10.0.0.0/16 dst " << dst_net(i) << " dir out priority " << 1000 + i
          << " tmpl src 192.0.2.1 dst 192.0.2.2 proto esp reqid 1 mode tunnel\n";
      del << "xfrm policy delete src 10.0.0.0/16 dst " << dst_net(i) << " dir out\n";
    }
  }
  auto t0 = Clock::now();
  auto r = api.add_policies(ps);
  double ours_add = seconds_since(t0);
  if (!r.ok() || !r->ok()) {
    std::fprintf(stderr, "add_policies: %s\n",
                 r.ok() ? r->first_error().error().to_string().c_str() : r.error().to_string().c_str());
    return 1;
  }
  if (count_lines(ns.name(), "policy", "dir out") != static_cast<std::size_t>(n))
    return std::fprintf(stderr, "policy count mismatch\n"), 1;
  t0 = Clock::now();
  auto d = api.delete_policies(ids);
  double ours_del = seconds_since(t0);
  if (!d.ok() || !d->ok()) return std::fprintf(stderr, "delete_policies failed\n"), 1;
  if (count_lines(ns.name(), "policy", "dir out") != 0) return std::fprintf(stderr, "policies left\n"), 1;
  double ip_add = ip_batch(ns.name(), tmp + "-padd");
  if (count_lines(ns.name(), "policy", "dir out") != static_cast<std::size_t>(n))
    return std::fprintf(stderr, "ip policy count mismatch\n"), 1;
  double ip_del = ip_batch(ns.name(), tmp + "-pdel");
  report("xfrm_install_" + std::to_string(n) + "_policies", ours_add, ip_add);
  report("xfrm_delete_" + std::to_string(n) + "_policies", ours_del, ip_del);
  std::remove((tmp + "-padd").c_str());
  std::remove((tmp + "-pdel").c_str());

  // ---- SAs (need ESP in the kernel) ----
  std::vector<Sa> sas;
  std::vector<SaId> sids;
  for (int i = 0; i < n; ++i) {
    Sa sa;
    sa.src = *IpAddress::parse("192.0.2.1");
    sa.dst = *IpAddress::parse("192.0.2.2");
    sa.spi = 0x10000 + static_cast<std::uint32_t>(i);
    sa.reqid = 1;
    sa.enc = EncAlgo::kAesGcm256;
    sa.enc_key = *SecretBytes::random(36);
    sa.replay_window = 32;
    sids.push_back(sa.id());
    sas.push_back(std::move(sa));
  }
  if (Status probe = api.add_sa(sas[0]); !probe.ok()) {
    std::printf("xfrm_install_%d_sas skipped: %s\n", n, probe.error().message().c_str());
    std::printf("xfrm_delete_%d_sas skipped (run tests/bench/netlink/vm_bench.sh in the kernel VM)\n", n);
    return 0;
  }
  (void)api.delete_sa(sids[0]);
  {
    std::ofstream add(tmp + "-sadd"), del(tmp + "-sdel");
    ::chmod((tmp + "-sadd").c_str(), 0600);  // holds keys
    for (int i = 0; i < n; ++i) {
      add << "xfrm state add src 192.0.2.1 dst 192.0.2.2 proto esp spi " << 0x10000 + i
          << " reqid 1 mode tunnel replay-window 32 aead rfc4106(gcm(aes)) 0x" << sas[i].enc_key.reveal_hex()
          << " 128\n";
      del << "xfrm state delete src 192.0.2.1 dst 192.0.2.2 proto esp spi " << 0x10000 + i << "\n";
    }
  }
  t0 = Clock::now();
  auto ra = api.add_sas(sas);
  double ours_sadd = seconds_since(t0);
  if (!ra.ok() || !ra->ok())
    return std::fprintf(stderr, "add_sas failed: %s\n",
                        ra.ok() ? ra->first_error().error().to_string().c_str() : ra.error().to_string().c_str()),
           1;
  if (count_lines(ns.name(), "state", "proto esp") != static_cast<std::size_t>(n))
    return std::fprintf(stderr, "SA count mismatch\n"), 1;
  t0 = Clock::now();
  auto rd = api.delete_sas(sids);
  double ours_sdel = seconds_since(t0);
  if (!rd.ok() || !rd->ok()) return std::fprintf(stderr, "delete_sas failed\n"), 1;
  double ip_sadd = ip_batch(ns.name(), tmp + "-sadd");
  if (count_lines(ns.name(), "state", "proto esp") != static_cast<std::size_t>(n))
    return std::fprintf(stderr, "ip SA count mismatch\n"), 1;
  double ip_sdel = ip_batch(ns.name(), tmp + "-sdel");
  std::remove((tmp + "-sadd").c_str());
  std::remove((tmp + "-sdel").c_str());
  report("xfrm_install_" + std::to_string(n) + "_sas", ours_sadd, ip_sadd);
  report("xfrm_delete_" + std::to_string(n) + "_sas", ours_sdel, ip_sdel);
  return 0;
}
