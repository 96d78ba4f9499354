// policyctl: a small driver over storcrypt::policy for the VM scenarios and
// benchmarks (the real CLI nouns come with the controller). Secrets never
// travel on argv: passphrases are read from files.
//
//   policyctl keys-new OUT PASSFILE NAME:ALG...       random keys -> passphrase-protected file
//   policyctl test POLICIES PROTO DIR LOCAL LPORTS REMOTE RPORTS [--swap] [--default D]
//   policyctl enable POLICIES KEYFILE PASSFILE [--swap] [--default D]
//   policyctl status POLICIES [--swap] [--default D]
//   policyctl disable
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "storcrypt/common/files.h"
#include "storcrypt/netlink/xfrm_api.h"
#include "storcrypt/policy/compiler.h"
#include "storcrypt/policy/installer.h"
#include "storcrypt/policy/keys.h"
#include "storcrypt/policy/test_tool.h"
#include "storcrypt/policy/text.h"

using namespace storcrypt;
using namespace storcrypt::policy;

namespace {

int fail(const Error& e) {
  std::fprintf(stderr, "policyctl: %s\n", e.to_string().c_str());
  return 1;
}

Result<SecretBytes> read_pass(const std::string& path) {
  STORCRYPT_ASSIGN_OR_RETURN(std::string s, read_file(path));
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r')) s.pop_back();
  SecretBytes out(reinterpret_cast<const std::uint8_t*>(s.data()), s.size());
  secure_wipe(s);
  return out;
}

struct Common {
  bool swap = false;
  CompileOptions opt;
  std::vector<std::string> args;
};

Result<Common> parse_common(int argc, char** argv, int from) {
  Common c;
  for (int i = from; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--swap") {
      c.swap = true;
    } else if (a == "--default" && i + 1 < argc) {
      STORCRYPT_ASSIGN_OR_RETURN(c.opt.enforcement.default_disposition, parse_default_disposition(argv[++i]));
    } else {
      c.args.push_back(a);
    }
  }
  return c;
}

Result<PolicyList> load(const std::string& path, bool swap) {
  STORCRYPT_ASSIGN_OR_RETURN(std::string text, read_file(path));
  return import_policies(text, ImportOptions{swap});
}

Result<PortRange> range(const std::string& s) {
  STORCRYPT_ASSIGN_OR_RETURN(PortSpec p, PortSpec::parse(s, 65535, "range"));
  if (p.is_any()) return PortRange{0, 65535};
  if (p.ranges.size() != 1) return Error(ErrorCode::kInvalidInput, "give one range, e.g. 1-65535");
  return p.ranges[0];
}

int run(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: policyctl keys-new|test|enable|status|disable ...\n");
    return 2;
  }
  const std::string cmd = argv[1];
  auto c = parse_common(argc, argv, 2);
  if (!c.ok()) return fail(c.error());
  const auto& a = c->args;

  if (cmd == "keys-new" && a.size() >= 3) {
    KeyStore ks;
    for (std::size_t i = 2; i < a.size(); ++i) {
      auto colon = a[i].find(':');
      if (colon == std::string::npos) return fail(Error(ErrorCode::kInvalidInput, "expected NAME:ALGORITHM"));
      auto alg = parse_algorithm(a[i].substr(colon + 1));
      if (!alg.ok()) return fail(alg.error());
      if (auto st = ks.create_random(a[i].substr(0, colon), *alg); !st.ok()) return fail(st.error());
    }
    auto pass = read_pass(a[1]);
    if (!pass.ok()) return fail(pass.error());
    auto text = export_keys(ks, {}, *pass);
    if (!text.ok()) return fail(text.error());
    if (auto st = storcrypt::write_file_atomic(a[0], *text, 0600); !st.ok()) return fail(st.error());
    for (const KeyInfo& k : ks.list())
      std::printf("key %s %s %zu bytes\n", k.name.c_str(), std::string(to_string(k.algorithm)).c_str(), k.bytes);
    return 0;
  }
  if (cmd == "test" && a.size() == 7) {
    auto list = load(a[0], c->swap);
    if (!list.ok()) return fail(list.error());
    TestQuery q;
    auto p = parse_protocol(a[1]);
    if (!p.ok() || !p->has_value()) return fail(Error(ErrorCode::kInvalidInput, "give a protocol"));
    q.protocol = **p;
    auto d = parse_direction(a[2]);
    auto l = IpAddress::parse(a[3]);
    auto lr = range(a[4]);
    auto r = IpAddress::parse(a[5]);
    auto rr = range(a[6]);
    if (!d.ok()) return fail(d.error());
    if (!l.ok()) return fail(l.error());
    if (!lr.ok()) return fail(lr.error());
    if (!r.ok()) return fail(r.error());
    if (!rr.ok()) return fail(rr.error());
    q.direction = *d;
    q.local = *l;
    q.local_ports = *lr;
    q.remote = *r;
    q.remote_ports = *rr;
    auto rows = test_traffic(*list, c->opt.enforcement, q);
    if (!rows.ok()) return fail(rows.error());
    std::fputs(format_test_rows(q, *rows).c_str(), stdout);
    return 0;
  }
  if ((cmd == "enable" && a.size() == 3) || (cmd == "status" && a.size() == 1)) {
    auto list = load(a[0], c->swap);
    if (!list.ok()) return fail(list.error());
    KeyStore ks;
    if (cmd == "enable") {
      auto pass = read_pass(a[2]);
      if (!pass.ok()) return fail(pass.error());
      auto text = read_file(a[1]);
      if (!text.ok()) return fail(text.error());
      if (auto st = import_keys_into(ks, *text, *pass); !st.ok()) return fail(st.error());
    }
    auto x = netlink::open_xfrm({.netns = "", .ownership = installer_ownership(c->opt)});
    if (!x.ok()) return fail(x.error());
    PolicyInstaller inst(**x, c->opt);
    if (cmd == "enable") {
      auto set = commit(*list, ks, c->opt);
      if (!set.ok()) return fail(set.error());
      std::fputs(set->report.to_string().c_str(), stdout);
      auto st = inst.enable(*set, ks);
      if (!st.ok()) return fail(st.error());
      std::printf("enabled: %zu kernel policies added, %zu updated, %zu deleted; %zu SAs added, %zu replaced\n",
                  st->policies_added, st->policies_updated, st->policies_deleted, st->sas_added, st->sas_replaced);
      return 0;
    }
    inst.describe_with(compile(*list, c->opt));
    auto rows = inst.status();
    if (!rows.ok()) return fail(rows.error());
    for (const EnforcedPolicy& r : *rows) {
      std::printf("%s %s %s priority=%u kernel_policies=%zu", r.name.c_str(), r.direction.c_str(), r.action.c_str(),
                  r.priority, r.kernel_policies);
      if (r.sa) {
        std::printf(" sa=\"%s\" packets=%llu bytes=%llu integrity_failed=%u", r.sa->to_string().c_str(),
                    static_cast<unsigned long long>(r.counters.packets),
                    static_cast<unsigned long long>(r.counters.bytes), r.counters.integrity_failed);
      }
      std::printf("\n");
    }
    return 0;
  }
  if (cmd == "disable" && a.empty()) {
    auto x = netlink::open_xfrm({.netns = "", .ownership = installer_ownership(c->opt)});
    if (!x.ok()) return fail(x.error());
    PolicyInstaller inst(**x, c->opt);
    auto st = inst.disable();
    if (!st.ok()) return fail(st.error());
    std::printf("disabled: %zu kernel policies and %zu SAs deleted\n", st->policies_deleted, st->sas_deleted);
    return 0;
  }
  std::fprintf(stderr, "policyctl: unknown command or wrong arguments: %s\n", cmd.c_str());
  return 2;
}

}  // namespace

int main(int argc, char** argv) { return run(argc, argv); }
