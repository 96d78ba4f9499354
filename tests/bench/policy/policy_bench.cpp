// policy benchmark: validate + compile, install (FakeXfrm, and the real
// kernel in a private network namespace when run as root), and test-tool
// latency, for lists of 100, 1,000 and 10,000 policies with address and
// port ranges. Ratios are against baselines measured in the same run:
//  - compile/validate/install: per-policy cost relative to the 100-policy list;
//  - test tool: one ranged query vs brute-force first match per port, and
//    single-flow queries answered from the index (TestIndex::first_match and
//    the public test_traffic) vs brute-force first match on the same flows;
//    index build time and memory.
#include <sched.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <vector>

#include "storcrypt/policy/compiler.h"
#include "storcrypt/policy/installer.h"
#include "storcrypt/policy/test_tool.h"
#include "storcrypt/testing/fake_xfrm.h"

using namespace storcrypt;
using namespace storcrypt::policy;
using Clock = std::chrono::steady_clock;

namespace {

double ms_since(Clock::time_point t) { return std::chrono::duration<double, std::milli>(Clock::now() - t).count(); }

// A list with ranges: each policy covers an address range of 10.x.y.0/24 and
// a port range; some PROTECT (tunnel mode, own SPI), a final BYPASS per direction.
PolicyList make_list(int n, bool with_protect, std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  auto pick = [&](int k) { return static_cast<int>(rng() % static_cast<std::uint64_t>(k)); };
  PolicyList l;
  for (int i = 0; i < n - 2; ++i) {
    Policy p;
    p.name = "p" + std::to_string(i);
    p.direction = i % 2 ? Direction::kInbound : Direction::kOutbound;
    const std::uint32_t net = 0x0a000000u + (static_cast<std::uint32_t>(i % 16) << 8);
    const std::uint32_t lo = static_cast<std::uint32_t>(1 + pick(100));
    p.selector.local = AddressSpec::single(IpAddress::v4(0xc0000201));
    p.selector.remote = {AddressSpec::Kind::kRange, IpAddress::v4(net + lo), IpAddress::v4(net + lo + 1 + pick(150)),
                         0};
    p.selector.protocol = pick(2) ? proto::kTcp : proto::kUdp;
    const auto plo = static_cast<std::uint16_t>(1000 + pick(30000));
    p.selector.remote_ports = PortSpec::of(plo, static_cast<std::uint16_t>(plo + pick(2000)));
    const int d = pick(10);
    p.disposition = d < 6                      ? Disposition::kBypass
                    : (d < 8 || !with_protect) ? Disposition::kDiscard
                                               : Disposition::kProtect;
    if (p.disposition == Disposition::kProtect) {
      Protection pr;
      pr.mode = Mode::kTunnel;
      pr.spi = 0x10000 + static_cast<std::uint32_t>(i);
      pr.local_endpoint = IpAddress::v4(0xc0000201);
      pr.remote_endpoint = IpAddress::v4(0xc0000202);
      pr.encryption = Algorithm::kAesGcm256;
      pr.encryption_key = "k";
      p.protection = pr;
    }
    if (!l.add(std::move(p)).ok()) std::abort();
  }
  Policy out;
  out.name = "out-all";
  out.direction = Direction::kOutbound;
  (void)l.add(out);
  Policy in = out;
  in.name = "in-all";
  in.direction = Direction::kInbound;
  (void)l.add(in);
  return l;
}

constexpr int kFlows = 2000;

struct FlowFigures {
  int n = 0;
  double build_ms = 0, first_query_ms = 0, brute_ns = 0, index_ns = 0, tool_ns = 0, wide_ms = 0;
  std::size_t wide_rows = 1;
  TestIndex::Stats stats;
};

// Random single flows shaped like the list (remote addresses in 10.0-15.x,
// ports in and around the policies' ranges, TCP and UDP, both directions):
// brute-force first match vs the index, answers compared.
FlowFigures single_flows(int n, const PolicyList& list, const EnforcementOptions& opt, const TestIndex& index,
                         double build_ms, double first_query_ms, double wide_ms, std::size_t wide_rows) {
  FlowFigures f;
  f.n = n;
  f.build_ms = build_ms;
  f.first_query_ms = first_query_ms;
  f.wide_ms = wide_ms;
  f.wide_rows = wide_rows ? wide_rows : 1;
  f.stats = index.stats();
  std::mt19937_64 rng(7 + static_cast<std::uint64_t>(n));
  std::vector<Packet> pkts;
  for (int i = 0; i < kFlows; ++i) {
    Packet p;
    p.direction = rng() % 2 ? Direction::kInbound : Direction::kOutbound;
    p.protocol = rng() % 2 ? proto::kTcp : proto::kUdp;
    p.local = IpAddress::v4(0xc0000201);
    p.remote = IpAddress::v4(0x0a000000u + static_cast<std::uint32_t>(rng() % 16 << 8) +
                             static_cast<std::uint32_t>(rng() % 256));
    p.local_port = static_cast<std::uint16_t>(1024 + rng() % 60000);
    p.remote_port = static_cast<std::uint16_t>(1000 + rng() % 33000);
    pkts.push_back(p);
  }
  const auto& eff = index.effective();
  // Each figure is the best of several passes (the machine is shared: a
  // pass that lost the CPU says nothing about either method).
  constexpr int kPasses = 5;
  std::vector<Decision> want;
  std::size_t sink = 0;
  f.brute_ns = 1e300;
  for (int pass = 0; pass < kPasses; ++pass) {
    want.clear();
    const auto t = Clock::now();
    for (const Packet& p : pkts) want.push_back(first_match(eff, p));
    f.brute_ns = std::min(f.brute_ns, ms_since(t) * 1e6 / kFlows);
  }

  const int rounds = 40;
  f.index_ns = 1e300;
  for (int pass = 0; pass < kPasses; ++pass) {
    const auto t = Clock::now();
    for (int r = 0; r < rounds; ++r)
      for (const Packet& p : pkts) sink += index.first_match(p).effective_index.value_or(0);
    f.index_ns = std::min(f.index_ns, ms_since(t) * 1e6 / (static_cast<double>(kFlows) * rounds));
  }

  std::vector<TestQuery> qs;
  for (const Packet& p : pkts)
    qs.push_back(
        {p.direction, p.protocol, p.local, p.remote, {p.local_port, p.local_port}, {p.remote_port, p.remote_port}});
  f.tool_ns = 1e300;
  for (int pass = 0; pass < kPasses; ++pass) {
    const auto t = Clock::now();
    for (int r = 0; r < rounds; ++r) {
      for (const TestQuery& q : qs) {
        auto rows = test_traffic(list, opt, q);
        sink += rows.ok() ? rows->front().first_match.size() : 0;
      }
    }
    f.tool_ns = std::min(f.tool_ns, ms_since(t) * 1e6 / (static_cast<double>(kFlows) * rounds));
  }

  std::size_t decided = 0;
  for (int i = 0; i < kFlows; ++i) {
    const Decision d = index.first_match(pkts[static_cast<std::size_t>(i)]);
    auto rows = test_traffic(list, opt, qs[static_cast<std::size_t>(i)]);
    if (d.effective_index != want[static_cast<std::size_t>(i)].effective_index || !rows.ok() ||
        rows->front().first_match != want[static_cast<std::size_t>(i)].name) {
      std::fprintf(stderr, "index and brute force disagree at %d policies, flow %d\n", n, i);
      std::abort();
    }
    decided += d.effective_index && *d.effective_index + 2 < list.size();
  }
  if (sink == 42) std::printf(" ");
  std::printf("         %d flows checked equal to brute force (%zu decided before the catch-alls)\n", kFlows, decided);
  return f;
}

}  // namespace

int main() {
  std::setvbuf(stdout, nullptr, _IONBF, 0);
  KeyStore ks;
  if (!ks.create_random("k", Algorithm::kAesGcm256).ok()) return 1;
  CompileOptions opt;
  opt.enforcement.default_disposition = DefaultDisposition::kBypass;
  const bool root = geteuid() == 0;
  const bool netns = root && unshare(CLONE_NEWNET) == 0;  // private namespace: nothing else is touched

  std::printf("%8s %10s %10s %10s %12s %12s %12s %12s %12s\n", "policies", "selectors", "validate", "compile",
              "fake-install", "kern-install", "kern-remove", "test-tool", "brute-force");
  double base_validate = 0, base_compile = 0, base_fake = 0, base_kern = 0;
  struct SelectorFigures {
    int n;
    std::size_t before, after;
    double before_ms, after_ms;
    std::size_t kernel;
    bool warned;
  };
  std::vector<SelectorFigures> selectors;
  std::vector<FlowFigures> flows;
  for (int n : {100, 1000, 10000}) {
    const PolicyList list = make_list(n, true, 42 + static_cast<std::uint64_t>(n));
    auto t = Clock::now();
    const ValidationReport rep = validate(list, ks, opt);
    const double validate_ms = ms_since(t);
    if (!rep.ok()) {
      std::fprintf(stderr, "%s", rep.to_string().c_str());
      return 1;
    }
    t = Clock::now();
    const CompiledPolicySet set = compile(list, opt);
    const double compile_ms = ms_since(t);
    // Before: each port range as its prefix cover (the encoding until now), same list, same run.
    CompileOptions prefix_opt = opt;
    prefix_opt.minimize_port_masks = false;
    t = Clock::now();
    const std::size_t before = compile(list, prefix_opt).policies.size();
    const double compile_prefix_ms = ms_since(t);
    selectors.push_back({n, before, set.policies.size(), compile_prefix_ms, compile_ms,
                         kernel_policy_count(set), kernel_size_warning(set, opt).has_value()});

    // FakeXfrm checks duplicates linearly per add (quadratic overall): measured up to 1,000.
    double fake_ms = -1;
    if (n <= 1000) {
      netlink::FakeXfrm fake;
      PolicyInstaller fake_inst(fake, opt);
      t = Clock::now();
      auto st = fake_inst.enable(set, ks);
      fake_ms = ms_since(t);
      if (!st.ok()) {
        std::fprintf(stderr, "fake install: %s\n", st.error().to_string().c_str());
        return 1;
      }
    }

    // Real kernel (policies only: the build machine's kernel may lack GCM).
    double kern_ms = -1, kern_rm_ms = -1;
    if (netns) {
      const PolicyList plain = make_list(n, false, 42 + static_cast<std::uint64_t>(n));
      const CompiledPolicySet pset = compile(plain, opt);
      auto x = netlink::open_xfrm({.netns = "", .ownership = installer_ownership(opt)});
      if (x.ok()) {
        PolicyInstaller inst(**x, opt);
        t = Clock::now();
        auto r = inst.enable(pset, ks);
        kern_ms = ms_since(t);
        if (!r.ok()) {
          std::fprintf(stderr, "kernel install: %s\n", r.error().to_string().c_str());
          kern_ms = -1;
        }
        t = Clock::now();
        auto d = inst.disable();
        kern_rm_ms = d.ok() ? ms_since(t) : -1;
      }
    }

    // Test tool index: built once per list (test_traffic builds it on the
    // first query and keeps it with the list); measured on its own here.
    t = Clock::now();
    const auto index = TestIndex::build(list, opt.enforcement);
    const double build_ms = ms_since(t);
    t = Clock::now();
    if (!test_traffic(list, opt.enforcement, TestQuery{}).ok()) return 1;  // fills the list's own index
    const double first_query_ms = ms_since(t);

    // Test tool: remote ports 1-65535 towards an address many policies cover.
    TestQuery q;
    q.protocol = proto::kTcp;
    q.local = IpAddress::v4(0xc0000201);
    q.remote = IpAddress::v4(0x0a000000u + 60);
    q.local_ports = {40000, 40000};
    q.remote_ports = {1, 65535};
    t = Clock::now();
    auto rows = test_traffic(list, opt.enforcement, q);
    const double tool_ms = ms_since(t);
    if (!rows.ok()) return 1;
    // Baseline: brute-force first match for every 64th port, scaled to the full range.
    const auto eff = effective_policies(list, opt.enforcement);
    t = Clock::now();
    std::size_t sink = 0;
    for (std::uint32_t port = 1; port <= 65535; port += 64) {
      Packet pkt{Direction::kOutbound, q.local, q.remote, proto::kTcp, 40000, static_cast<std::uint16_t>(port)};
      sink += first_match(eff, pkt).effective_index.value_or(0);
    }
    const double brute_ms = ms_since(t) * 64;

    std::printf("%8d %10zu %8.1fms %8.1fms %10.1fms %10.1fms %10.1fms %10.2fms %10.1fms  rows=%zu sink=%zu\n", n,
                set.policies.size(), validate_ms, compile_ms, fake_ms, kern_ms, kern_rm_ms, tool_ms, brute_ms,
                rows->size(), sink);
    if (n == 100) {
      base_validate = validate_ms / n;
      base_compile = compile_ms / n;
      base_fake = fake_ms / n;
      base_kern = kern_ms / n;
    }
    std::printf("         per-policy cost vs 100-policy baseline: validate x%.2f compile x%.2f",
                validate_ms / n / base_validate, compile_ms / n / base_compile);
    if (fake_ms > 0) std::printf(" fake-install x%.2f", fake_ms / n / base_fake);
    if (kern_ms > 0 && base_kern > 0) std::printf(" kernel-install x%.2f", kern_ms / n / base_kern);
    std::printf("; test tool %.0fx faster than brute force\n", brute_ms / tool_ms);
    flows.push_back(single_flows(n, list, opt.enforcement, *index, build_ms, first_query_ms, tool_ms, rows->size()));
  }
  std::printf(
      "\nTest tool, single-flow queries (one protocol, address pair, local and remote port), %d random flows;\n"
      "brute force = first_match() over the effective list, measured in the same run (best of 5 passes each):\n",
      kFlows);
  std::printf("%8s %10s %10s %10s %10s %16s %12s %12s %10s %10s %12s %12s\n", "policies", "build", "1st-query",
              "index-MB", "nodes", "refs/leaf/dp", "brute/flow", "index/flow", "ratio", "tool/flow", "tool-ratio",
              "wide/row");
  for (const FlowFigures& f : flows) {
    std::printf("%8d %8.1fms %8.1fms %10.2f %10zu %9zu/%zu/%zu %10.2fus %10.1fns %9.0fx %8.1fns %11.0fx %10.2fus\n",
                f.n, f.build_ms, f.first_query_ms, static_cast<double>(f.stats.bytes) / 1e6, f.stats.nodes,
                f.stats.stored_ids, f.stats.max_leaf, f.stats.depth, f.brute_ns / 1e3, f.index_ns,
                f.brute_ns / f.index_ns, f.tool_ns, f.brute_ns / f.tool_ns,
                f.wide_ms * 1e3 / static_cast<double>(f.wide_rows));
  }
  std::printf(
      "(index = TestIndex::first_match; tool = test_traffic() with a one-port query, answer rows with names;\n"
      " wide/row = the 1-65535 ranged query above divided by the rows it returns; refs = entry references\n"
      " stored in the index's leaves; goal at 10,000 policies: ratio >= 5000x)\n");
  std::printf(
      "\nKernel selectors per policy, same lists: before = each port range as its prefix cover, after = port sets\n"
      "as the fewest value/mask pairs found (ports_to_masks); both compiled in this run:\n");
  std::printf("%8s %12s %12s %10s %10s %8s %12s %12s %10s\n", "policies", "before", "after", "before/pol",
              "after/pol", "ratio", "compile-bef", "compile-aft", "mem-MiB");
  for (const SelectorFigures& f : selectors) {
    std::printf("%8d %12zu %12zu %10.2f %10.2f %7.3fx %10.1fms %10.1fms %10.1f%s\n", f.n, f.before, f.after,
                static_cast<double>(f.before) / f.n, static_cast<double>(f.after) / f.n,
                static_cast<double>(f.before) / static_cast<double>(f.after), f.before_ms, f.after_ms,
                static_cast<double>(f.kernel * kKernelBytesPerPolicy) / (1024.0 * 1024.0),
                f.warned ? "  (commit warns: over the kernel-policy limit)" : "");
  }
  std::printf("(ratio = before/after selectors; mem = kernel memory of the compiled set at %zu bytes per kernel policy)\n",
              kKernelBytesPerPolicy);
  if (!netns) std::printf("(kernel install not measured: needs root to create a private network namespace)\n");
  return 0;
}
