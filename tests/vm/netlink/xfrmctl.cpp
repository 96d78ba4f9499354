// xfrmctl: a small driver over storcrypt::netlink and storcrypt::kmodule for
// the kernel-VM scenario scripts. Keys are read from files (never argv).
//
//   xfrmctl [--netns NS] sa-add   SA-OPTIONS            install an SA
//   xfrmctl [--netns NS] sa-check SA-OPTIONS            install, then compare with `ip -s xfrm state get`
//   xfrmctl [--netns NS] sa-counters --src --dst --spi [--proto]  print our counters; fail if ip differs
//   xfrmctl [--netns NS] sa-del   --dst --spi [--proto]
//   xfrmctl [--netns NS] policy-add --src P --dst P --dir D --priority N [--tmpl-src A --tmpl-dst B --reqid R]
//   xfrmctl [--netns NS] events   --count N --timeout S  print events (one line each)
//   xfrmctl probe [--no-load]                            kernel feature report
#include <sys/stat.h>

#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <sstream>

#include "../../host/netlink/ip_xfrm_parse.h"
#include "storcrypt/kmodule/probe.h"
#include "storcrypt/netlink/xfrm_api.h"
#include "storcrypt/testing/process.h"

using namespace storcrypt;
using namespace storcrypt::netlink;

namespace {

int fail(const std::string& msg) {
  std::cerr << "xfrmctl: " << msg << "\n";
  return 1;
}

template <typename T>
T must(Result<T> r, const std::string& what) {
  if (!r.ok()) {
    std::cerr << "xfrmctl: " << what << ": " << r.error().to_string() << "\n";
    std::exit(1);
  }
  return std::move(r).value();
}

SecretBytes read_key(const std::string& path) {
  if (path.empty()) return {};
  struct stat st {};
  if (::stat(path.c_str(), &st) == 0 && (st.st_mode & 077))
    std::cerr << "xfrmctl: warning: key file " << path << " is accessible by group/others (chmod 600 it)\n";
  std::ifstream f(path);
  if (!f) {
    std::cerr << "xfrmctl: cannot read key file " << path << "\n";
    std::exit(1);
  }
  std::string hex;
  f >> hex;
  if (hex.rfind("0x", 0) == 0) hex = hex.substr(2);
  auto k = SecretBytes::from_hex(hex);
  secure_wipe(hex);
  return must(std::move(k), "key file " + path);
}

struct SaArgs {
  std::string src, dst, proto = "esp", mode = "tunnel", enc = "none", integ = "none", enc_key, integ_key;
  std::uint32_t spi = 0, reqid = 0, replay = 0, if_id = 0;
  bool esn = false, allow_no_integ = false;
  std::uint64_t soft_bytes = 0, hard_bytes = 0, soft_packets = 0, hard_packets = 0, soft_add = 0, hard_add = 0;
  std::string mark;   // "value/mask"
  std::string encap;  // "sport:dport"
  std::string sel_src, sel_dst;

  void add_to(CLI::App* c) {
    c->add_option("--src", src)->required();
    c->add_option("--dst", dst)->required();
    c->add_option("--spi", spi)->required();
    c->add_option("--reqid", reqid);
    c->add_option("--proto", proto);
    c->add_option("--mode", mode);
    c->add_option("--enc", enc);
    c->add_option("--integ", integ);
    c->add_option("--enc-key-file", enc_key);
    c->add_option("--integ-key-file", integ_key);
    c->add_option("--replay", replay);
    c->add_flag("--esn", esn);
    c->add_flag("--allow-no-integrity", allow_no_integ);
    c->add_option("--soft-bytes", soft_bytes);
    c->add_option("--hard-bytes", hard_bytes);
    c->add_option("--soft-packets", soft_packets);
    c->add_option("--hard-packets", hard_packets);
    c->add_option("--soft-add", soft_add);
    c->add_option("--hard-add", hard_add);
    c->add_option("--mark", mark);
    c->add_option("--if-id", if_id);
    c->add_option("--encap", encap);
    c->add_option("--sel-src", sel_src);
    c->add_option("--sel-dst", sel_dst);
  }

  Sa build() const {
    Sa sa;
    sa.src = must(IpAddress::parse(src, "src"), "src");
    sa.dst = must(IpAddress::parse(dst, "dst"), "dst");
    sa.spi = spi;
    sa.reqid = reqid;
    sa.proto = proto == "ah" ? XfrmProto::kAh : XfrmProto::kEsp;
    sa.mode = mode == "transport" ? Mode::kTransport : Mode::kTunnel;
    sa.enc = must(parse_enc(enc, "enc"), "enc");
    sa.integ = must(parse_integ(integ, "integ"), "integ");
    sa.enc_key = read_key(enc_key);
    sa.integ_key = read_key(integ_key);
    sa.replay_window = replay;
    sa.esn = esn;
    sa.allow_no_integrity = allow_no_integ;
    sa.lifetime.soft_bytes = soft_bytes;
    sa.lifetime.hard_bytes = hard_bytes;
    sa.lifetime.soft_packets = soft_packets;
    sa.lifetime.hard_packets = hard_packets;
    sa.lifetime.soft_add_seconds = soft_add;
    sa.lifetime.hard_add_seconds = hard_add;
    if (!mark.empty()) {
      Mark m;
      m.value = static_cast<std::uint32_t>(std::stoul(mark, nullptr, 0));
      auto slash = mark.find('/');
      if (slash != std::string::npos)
        m.mask = static_cast<std::uint32_t>(std::stoul(mark.substr(slash + 1), nullptr, 0));
      sa.mark = m;
    }
    sa.if_id = if_id;
    if (!encap.empty()) {
      auto colon = encap.find(':');
      sa.encap = UdpEncap{static_cast<std::uint16_t>(std::stoul(encap.substr(0, colon))),
                          static_cast<std::uint16_t>(std::stoul(encap.substr(colon + 1)))};
    }
    if (!sel_src.empty()) {
      sa.selector =
          must(Selector::between(must(Prefix::parse(sel_src), "sel-src"), must(Prefix::parse(sel_dst), "sel-dst")),
               "selector");
    }
    return sa;
  }
};

std::string hex32(std::uint32_t v) {
  char b[16];
  snprintf(b, sizeof b, "0x%08x", v);
  return b;
}

std::string lim(std::uint64_t v) { return v ? std::to_string(v) : "INF"; }

testing::IpXfrmBlock ip_state(const std::string& ns, const SaId& id, const IpAddress& src) {
  std::vector<std::string> argv = {"ip"};
  if (!ns.empty()) argv.insert(argv.end(), {"-n", ns});
  argv.insert(argv.end(), {"-s", "xfrm", "state", "get", "src", src.to_string(), "dst", id.dst.to_string(), "proto",
                           std::string(proto_name(id.proto)), "spi", hex32(id.spi)});
  if (id.mark) argv.insert(argv.end(), {"mark", std::to_string(id.mark->value), "mask", std::to_string(id.mark->mask)});
  auto r = testing::run(argv);
  if (r.exit_code != 0) {
    std::cerr << "xfrmctl: ip xfrm state get failed: " << r.err << "\n";
    std::exit(1);
  }
  auto blocks = testing::parse_ip_xfrm(r.out);
  if (blocks.size() != 1) {
    std::cerr << "xfrmctl: ip printed " << blocks.size() << " states\n";
    std::exit(1);
  }
  return blocks[0];
}

int mismatches = 0;
void expect(const std::string& field, const std::string& ours, const std::string& ip) {
  if (ours == ip) return;
  ++mismatches;
  std::cerr << "MISMATCH " << field << ": storcrypt=" << ours << " ip=" << ip << "\n";
}

int check_sa(const std::string& ns, const Sa& sa) {
  auto b = ip_state(ns, sa.id(), sa.src);
  expect("src", sa.src.to_string(), b.head["src"]);
  expect("dst", sa.dst.to_string(), b.head["dst"]);
  expect("proto", std::string(proto_name(sa.proto)), b.get("proto"));
  expect("spi", hex32(sa.spi), b.get("spi"));
  expect("reqid", std::to_string(sa.reqid), b.get("reqid"));
  expect("mode", std::string(mode_name(sa.mode)), b.get("mode"));
  if (enc_is_aead(sa.enc)) {
    expect("aead.name", std::string(enc_kernel_name(sa.enc)), b.get("aead.name"));
    expect("aead.key", "0x" + sa.enc_key.reveal_hex(), b.get("aead.key"));
    expect("aead.icv", std::to_string(enc_icv_bits(sa.enc)), b.get("aead.bits"));
    expect("aead.keybits", std::to_string(sa.enc_key.size() * 8), b.get("aead.keybits"));
  } else if (sa.enc != EncAlgo::kNone) {
    expect("enc.name", std::string(enc_kernel_name(sa.enc)), b.get("enc.name"));
    expect("enc.key", "0x" + sa.enc_key.reveal_hex(), b.get("enc.key"));
    expect("enc.keybits", std::to_string(sa.enc_key.size() * 8), b.get("enc.keybits"));
  } else if (sa.proto == XfrmProto::kEsp) {
    // Integrity-only ESP: the NULL cipher without key ("enc ecb(cipher_null) "), no AEAD.
    std::string enc_line = "(none)";
    std::istringstream lines(b.text);
    for (std::string line; std::getline(lines, line);) {
      std::istringstream words(line);
      std::string w;
      if (!(words >> w) || w != "enc") continue;
      enc_line.clear();
      for (std::string rest; words >> rest;) enc_line += (enc_line.empty() ? "" : " ") + rest;
    }
    expect("enc (null cipher without key)", std::string(kEspNullCipher), enc_line);
    expect("aead (absent)", "", b.get("aead.name"));
  } else {
    expect("enc (absent)", "", b.get("enc.name") + b.get("aead.name"));
  }
  if (sa.integ != IntegAlgo::kNone) {
    expect("auth-trunc.name", std::string(integ_kernel_name(sa.integ)), b.get("auth-trunc.name"));
    expect("auth-trunc.key", "0x" + sa.integ_key.reveal_hex(), b.get("auth-trunc.key"));
    expect("auth-trunc.bits", std::to_string(integ_trunc_bits(sa.integ)), b.get("auth-trunc.bits"));
    expect("auth-trunc.keybits", std::to_string(sa.integ_key.size() * 8), b.get("auth-trunc.keybits"));
  } else {
    expect("auth (absent)", "", b.get("auth-trunc.name"));
  }
  // Windows > 32 or ESN live in the ESN replay state ("replay_window N"), others in the header.
  if (sa.esn || sa.replay_window > 32) {
    expect("replay_window (esn state)", std::to_string(sa.replay_window), b.get("replay_window"));
  } else {
    expect("replay-window", std::to_string(sa.replay_window), b.get("replay-window"));
  }
  // The flag list ("flag af-unspec esn (0x...)"); "anti-replay esn context" alone
  // only means the ESN-format replay state (used for windows > 32).
  bool ip_esn = false;
  if (auto f = b.text.find(" flag "); f != std::string::npos) {
    std::string flags = b.text.substr(f, b.text.find('\n', f) - f);
    ip_esn = flags.find(" esn") != std::string::npos;
  }
  expect("flag esn", sa.esn ? "yes" : "no", ip_esn ? "yes" : "no");
  expect("soft_bytes", lim(sa.lifetime.soft_bytes), b.get("soft_bytes"));
  expect("hard_bytes", lim(sa.lifetime.hard_bytes), b.get("hard_bytes"));
  expect("soft_packets", lim(sa.lifetime.soft_packets), b.get("soft_packets"));
  expect("hard_packets", lim(sa.lifetime.hard_packets), b.get("hard_packets"));
  expect("soft_add_seconds", std::to_string(sa.lifetime.soft_add_seconds), b.get("soft_add_seconds"));
  expect("hard_add_seconds", std::to_string(sa.lifetime.hard_add_seconds), b.get("hard_add_seconds"));
  if (sa.mark) {
    char m[64];
    snprintf(m, sizeof m, "0x%x/0x%x", sa.mark->value, sa.mark->mask);
    expect("mark", m, b.get("mark"));
  }
  if (sa.if_id) {
    char m[32];
    snprintf(m, sizeof m, "0x%x", sa.if_id);
    expect("if_id", m, b.get("if_id"));
  }
  if (sa.encap) {
    expect("encap.type", "espinudp", b.get("encap.type"));
    expect("encap.sport", std::to_string(sa.encap->sport), b.get("encap.sport"));
    expect("encap.dport", std::to_string(sa.encap->dport), b.get("encap.dport"));
  }
  if (mismatches) {
    std::cerr << "ip -s xfrm state printed:\n" << b.text;
    return 1;
  }
  std::cout << "OK " << sa.to_string() << "\n";
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"storcrypt XFRM test driver"};
  app.require_subcommand(1);
  std::string netns;
  app.add_option("--netns", netns, "network namespace name");
  std::uint32_t rq_lo = 0, rq_hi = 0xffffffff;
  app.add_option("--reqid-min", rq_lo);
  app.add_option("--reqid-max", rq_hi);

  SaArgs sa_args;
  auto* sa_add = app.add_subcommand("sa-add", "install an SA");
  sa_args.add_to(sa_add);
  SaArgs check_args;
  auto* sa_check = app.add_subcommand("sa-check", "install an SA and compare it with ip -s xfrm state");
  check_args.add_to(sa_check);
  bool update = false;
  sa_add->add_flag("--update", update, "XFRM_MSG_UPDSA (e.g. to complete an allocated SPI)");
  sa_check->add_flag("--update", update, "XFRM_MSG_UPDSA (e.g. to complete an allocated SPI)");

  std::string a_src, a_dst;
  std::uint32_t a_reqid = 0, a_min = 0x100, a_max = 0xffffffff;
  auto* alloc = app.add_subcommand("spi-alloc", "allocate an SPI (larval SA); prints it in decimal");
  alloc->add_option("--src", a_src)->required();
  alloc->add_option("--dst", a_dst)->required();
  alloc->add_option("--reqid", a_reqid);
  alloc->add_option("--min", a_min);
  alloc->add_option("--max", a_max);

  std::string c_src, c_dst, c_proto = "esp";
  std::uint32_t c_spi = 0;
  auto* counters = app.add_subcommand("sa-counters", "print our counters; fail when ip -s differs");
  counters->add_option("--src", c_src)->required();
  counters->add_option("--dst", c_dst)->required();
  counters->add_option("--spi", c_spi)->required();
  counters->add_option("--proto", c_proto);
  auto* del = app.add_subcommand("sa-del", "delete an SA");
  del->add_option("--dst", c_dst)->required();
  del->add_option("--spi", c_spi)->required();
  del->add_option("--proto", c_proto);

  std::string p_src, p_dst, p_dir = "out", t_src, t_dst, p_action = "allow";
  std::uint32_t p_prio = 1000, p_reqid = 0;
  auto* padd = app.add_subcommand("policy-add", "install a policy");
  padd->add_option("--src", p_src)->required();
  padd->add_option("--dst", p_dst)->required();
  padd->add_option("--dir", p_dir);
  padd->add_option("--priority", p_prio);
  padd->add_option("--action", p_action);
  padd->add_option("--tmpl-src", t_src);
  padd->add_option("--tmpl-dst", t_dst);
  padd->add_option("--reqid", p_reqid);

  int ev_count = 1, ev_timeout = 30;
  auto* events = app.add_subcommand("events", "print XFRM events");
  events->add_option("--count", ev_count);
  events->add_option("--timeout", ev_timeout);
  std::string ready_file;
  events->add_option("--ready-file", ready_file, "touched once subscribed");

  bool no_load = false;
  auto* probe_cmd = app.add_subcommand("probe", "kernel feature report");
  probe_cmd->add_flag("--no-load", no_load);

  CLI11_PARSE(app, argc, argv);

  if (probe_cmd->parsed()) {
    kmodule::ProbeOptions o;
    o.load = !no_load;
    auto r = kmodule::probe_all(o);
    std::cout << r.to_text();
    return r.ok() ? 0 : 1;
  }

  XfrmOptions opts;
  opts.netns = netns;
  opts.ownership.reqid_min = rq_lo;
  opts.ownership.reqid_max = rq_hi;
  auto x = must(open_xfrm(opts), "opening XFRM");

  if (sa_add->parsed()) {
    Sa sa = sa_args.build();
    Status st = update ? x->update_sa(sa) : x->add_sa(sa);
    if (!st.ok()) return fail(st.error().to_string());
    std::cout << "added " << sa.to_string() << (sa.integrity_warning() ? " WARNING: no integrity" : "") << "\n";
    return 0;
  }
  if (alloc->parsed()) {
    SpiRequest r;
    r.src = must(IpAddress::parse(a_src), "src");
    r.dst = must(IpAddress::parse(a_dst), "dst");
    r.reqid = a_reqid;
    r.min = a_min;
    r.max = a_max;
    auto spi = x->allocate_spi(r);
    if (!spi.ok()) return fail(spi.error().to_string());
    std::cout << *spi << "\n";
    return 0;
  }
  if (sa_check->parsed()) {
    Sa sa = check_args.build();
    Status st = update ? x->update_sa(sa) : x->add_sa(sa);
    if (!st.ok()) return fail(st.error().to_string());
    // Our own read-back must agree too.
    auto got = must(x->get_sa(sa.id()), "reading back");
    if (!(got.sa.enc_key.equals(sa.enc_key) && got.sa.integ_key.equals(sa.integ_key) && got.sa.enc == sa.enc &&
          got.sa.integ == sa.integ && got.sa.lifetime == sa.lifetime && got.sa.replay_window == sa.replay_window &&
          got.sa.esn == sa.esn && got.sa.mark == sa.mark && got.sa.if_id == sa.if_id && got.sa.encap == sa.encap))
      return fail("get_sa differs from what was installed: " + got.sa.to_string());
    return check_sa(netns, sa);
  }
  if (counters->parsed()) {
    SaId id{must(IpAddress::parse(c_dst), "dst"), c_spi, c_proto == "ah" ? XfrmProto::kAh : XfrmProto::kEsp, {}};
    auto st = must(x->get_sa(id), "get_sa");
    const auto& c = st.counters;
    std::cout << "bytes=" << c.bytes << " packets=" << c.packets << " integrity_failed=" << c.integrity_failed
              << " replay=" << c.replay_errors << " replay_window=" << c.replay_window_errors << " oseq=" << c.oseq
              << " seq=" << c.seq << "\n";
    auto b = ip_state(netns, id, must(IpAddress::parse(c_src), "src"));
    expect("bytes", std::to_string(c.bytes), b.get("cur_bytes"));
    expect("packets", std::to_string(c.packets), b.get("cur_packets"));
    expect("integrity failed", std::to_string(c.integrity_failed), b.get("stats.failed"));
    expect("replay", std::to_string(c.replay_errors), b.get("stats.replay"));
    expect("replay-window", std::to_string(c.replay_window_errors), b.get("stats.replay-window"));
    if (mismatches) {
      std::cerr << b.text;
      return 1;
    }
    return 0;
  }
  if (del->parsed()) {
    SaId id{must(IpAddress::parse(c_dst), "dst"), c_spi, c_proto == "ah" ? XfrmProto::kAh : XfrmProto::kEsp, {}};
    Status st = x->delete_sa(id);
    if (!st.ok()) return fail(st.error().to_string());
    return 0;
  }
  if (padd->parsed()) {
    Policy p;
    auto s = must(Prefix::parse(p_src, "src"), "src");
    auto d = must(Prefix::parse(p_dst, "dst"), "dst");
    p.selector = must(Selector::between(s, d), "selector");
    p.dir = p_dir == "in" ? Direction::kIn : p_dir == "fwd" ? Direction::kFwd : Direction::kOut;
    p.priority = p_prio;
    p.action = p_action == "block" ? PolicyAction::kBlock : PolicyAction::kAllow;
    if (!t_src.empty()) {
      Template t;
      t.src = must(IpAddress::parse(t_src), "tmpl-src");
      t.dst = must(IpAddress::parse(t_dst), "tmpl-dst");
      t.family = t.src.family;
      t.reqid = p_reqid;
      p.templates.push_back(t);
    }
    auto idx = x->add_policy(p);
    if (!idx.ok()) return fail(idx.error().to_string());
    std::cout << "policy index " << *idx << "\n";
    return 0;
  }
  if (events->parsed()) {
    auto sub = must(x->subscribe(EventMask{}), "subscribe");
    if (!ready_file.empty()) std::ofstream(ready_file) << "ready\n";
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(ev_timeout);
    int seen = 0;
    while (seen < ev_count && std::chrono::steady_clock::now() < deadline) {
      auto ev = must(sub->next(std::chrono::milliseconds(500)), "event");
      if (!ev) continue;
      ++seen;
      if (auto* a = std::get_if<AcquireEvent>(&*ev))
        std::cout << "acquire reqid=" << a->reqid << " dst=" << a->dst.to_string() << std::endl;
      else if (auto* e = std::get_if<SaExpireEvent>(&*ev))
        std::cout << "expire " << (e->hard ? "hard" : "soft") << " spi=" << hex32(e->id.spi) << " reqid=" << e->reqid
                  << std::endl;
      else if (auto* p = std::get_if<PolicyExpireEvent>(&*ev))
        std::cout << "polexpire " << (p->hard ? "hard" : "soft") << " priority=" << p->priority << std::endl;
    }
    return seen >= ev_count ? 0 : fail("only " + std::to_string(seen) + " events before the timeout");
  }
  return 0;
}
