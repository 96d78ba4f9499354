// ikepeerctl: one IKEv2 peer over ike::Runner (UdpTransport + XfrmChildSaKernel
// + Engine), in the foreground, for the kernel-VM interop scenarios
// (tests/vm/ike/interop*.sh) and the IKE benchmark. It prints one line per
// Engine event and, after each, the peer's SAs as ike::Engine::list() reports
// them; it never prints keys. SIGUSR1 prints the SAs again; SIGUSR2 rekeys
// every CHILD_SA now (make-before-break; "rekey-refused REASON" when the
// Engine refuses); SIGHUP initiates (as --initiate does at start; a restart
// scenario starts it without and looks at the kernel first); it prints
// "stale ..." at start (what a killed predecessor left, ike::Runner::stale());
// SIGTERM/SIGINT
// terminate the peer's IKE SAs (DELETE), wait for them to go (bounded) and exit 0.
//
//   ikepeerctl [--netns NS] --local ADDR --remote ADDR --local-ts CIDR... --remote-ts CIDR...
//              --cert EE.pem [--chain INTERMEDIATES.pem] --key KEY.pem --ca ROOT.pem
//              [--remote-id fqdn:NAME|ip:ADDR] [--ike default|cbc|gcm] [--esp gcm|cbc]
//              [--ike-port 500] [--natt-port 4500] [--initiate] [--pfs] [--child-rekey SECONDS]
//              [--ike-rekey SECONDS]
//
// Lines (space-separated key=value after a first word; values without spaces
// except reason="..." last):
//   ready listen=ADDR:PORT,...
//   event up|down|failed|auth-failed|child-up|child-down|child-rekeyed|child-failed|ike-rekeyed|ike-rekey-failed
//         peer=NAME spi_i=HEX16 spi_r=HEX16 [old_spi_i=HEX16 old_spi_r=HEX16 (ike-rekeyed)]
//         [spi_in=HEX8 spi_out=HEX8] [subject="..." issuer="..."] [reason="..."]
//   sa peer=NAME role=initiator|responder state=STATE ike=AES_CBC-256/HMAC_SHA2_384_192/PRF_HMAC_SHA2_384/ECP_384
//      local=ADDR:PORT remote=ADDR:PORT nat=yes|no children=N
//   child peer=NAME reqid=N spi_in=HEX8 spi_out=HEX8 esp=AES_GCM_16-256 encap=SPORT/DPORT|none
//         packets_in=N packets_out=N bytes_in=N bytes_out=N
//   end
// Errors go to stderr with exit status 1; bad arguments exit 2.
#include <fcntl.h>
#include <openssl/evp.h>
#include <openssl/x509.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <chrono>
#include <cinttypes>
#include <cstdio>
#include <deque>
#include <fstream>
#include <iostream>
#include <mutex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "storcrypt/certs/certs.h"
#include "storcrypt/common/files.h"
#include "storcrypt/ike/peer_auth.h"
#include "storcrypt/ike/runner.h"

using namespace storcrypt;
using namespace storcrypt::ike;

namespace {

int fail(const std::string& what, const std::string& why) {
  std::cerr << "ikepeerctl: " << what << ": " << why << "\n";
  return 1;
}

Result<std::string> read_text(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) return Error(ErrorCode::kNotFound, "cannot read " + path);
  std::ostringstream s;
  s << f.rdbuf();
  return s.str();
}

Result<std::vector<certs::Certificate>> read_certs(const std::string& path) {
  auto text = read_text(path);
  if (!text.ok()) return text.error();
  return certs::parse_certificates(*text);
}

X509Ref share(const certs::Certificate& c) {
  X509_up_ref(c.native());
  return share_x509(c.native());
}

// SHA-1 of the SubjectPublicKeyInfo: what CERTREQ names a trusted CA by.
Bytes spki_sha1(X509* ca) {
  unsigned char* spki = nullptr;
  const int n = i2d_PUBKEY(X509_get0_pubkey(ca), &spki);
  Bytes out(20);
  unsigned int len = 0;
  if (n > 0) EVP_Digest(spki, static_cast<std::size_t>(n), out.data(), &len, EVP_sha1(), nullptr);
  OPENSSL_free(spki);
  return out;
}

Result<TsRange> parse_ts(const std::string& text) {
  auto p = Prefix::parse(text, "traffic selector");
  if (!p.ok()) return p.error();
  TsRange t;
  t.start = p->addr;
  const unsigned host_bits = p->addr.max_prefix() - p->len;
  U128 v = p->addr.value();
  if (host_bits > 0) v |= (host_bits >= 128 ? ~U128{0} : ((U128{1} << host_bits) - 1));
  t.end = IpAddress::from_value(p->addr.family, v);
  return t;
}

std::string encr_name(std::uint16_t id, std::uint16_t bits) {
  switch (id) {
    case transform_id::kEncrAesCbc:
      return "AES_CBC-" + std::to_string(bits);
    case transform_id::kEncrAesGcm16:
      return "AES_GCM_16-" + std::to_string(bits);
    case transform_id::kEncrAesGcm12:
      return "AES_GCM_12-" + std::to_string(bits);
    case transform_id::kEncrAesGcm8:
      return "AES_GCM_8-" + std::to_string(bits);
    default:
      return "ENCR_" + std::to_string(id);
  }
}
std::string integ_name(std::uint16_t id) {
  switch (id) {
    case transform_id::kIntegHmacSha256_128:
      return "HMAC_SHA2_256_128";
    case transform_id::kIntegHmacSha384_192:
      return "HMAC_SHA2_384_192";
    case transform_id::kIntegHmacSha512_256:
      return "HMAC_SHA2_512_256";
    default:
      return "INTEG_" + std::to_string(id);
  }
}
std::string prf_name(std::uint16_t id) {
  switch (id) {
    case transform_id::kPrfHmacSha256:
      return "PRF_HMAC_SHA2_256";
    case transform_id::kPrfHmacSha384:
      return "PRF_HMAC_SHA2_384";
    case transform_id::kPrfHmacSha512:
      return "PRF_HMAC_SHA2_512";
    default:
      return "PRF_" + std::to_string(id);
  }
}
std::string ke_name(std::uint16_t id) {
  switch (id) {
    case transform_id::kGroupEcp256:
      return "ECP_256";
    case transform_id::kGroupEcp384:
      return "ECP_384";
    case transform_id::kGroupEcp521:
      return "ECP_521";
    case transform_id::kGroupCurve25519:
      return "CURVE_25519";
    default:
      return "KE_" + std::to_string(id);
  }
}
// strongSwan's notation (as `swanctl --list-sas` prints it).
std::string suite_name(const Suite& s) {
  std::string out = encr_name(s.encr, s.encr_key_bits);
  if (s.integ != 0) out += "/" + integ_name(s.integ);
  if (s.prf != 0) out += "/" + prf_name(s.prf);
  if (s.ke != 0) out += "/" + ke_name(s.ke);
  return out;
}

std::string endpoint(const Endpoint& e) { return e.addr.to_string() + ":" + std::to_string(e.port); }
std::string hex(std::uint64_t v, int width) {
  char b[24];
  std::snprintf(b, sizeof b, "%0*" PRIx64, width, v);
  return b;
}
std::string quoted(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') out += '\\';
    out += (c == '\n' ? ' ' : c);
  }
  return out + "\"";
}

std::string event_line(const Event& e) {
  std::string l = "event " + std::string(event_kind_name(e.kind)) + " peer=" + e.peer + " spi_i=" + hex(e.spi_i, 16) +
                  " spi_r=" + hex(e.spi_r, 16);
  if (e.old_spi_i != 0 || e.old_spi_r != 0) l += " old_spi_i=" + hex(e.old_spi_i, 16) + " old_spi_r=" + hex(e.old_spi_r, 16);
  if (e.child_spi_in != 0 || e.child_spi_out != 0)
    l += " spi_in=" + hex(e.child_spi_in, 8) + " spi_out=" + hex(e.child_spi_out, 8);
  if (!e.peer_subject.empty()) l += " subject=" + quoted(e.peer_subject) + " issuer=" + quoted(e.peer_issuer);
  if (!e.reason.empty()) l += " reason=" + quoted(e.reason);
  return l;
}

void print_status(Runner& r) {
  const auto sas = r.with_engine([](Engine& e) { return e.list(); });
  std::string out;
  for (const IkeSaStatus& s : sas) {
    out += "sa peer=" + s.peer + " role=" + (s.role == IkeRole::kInitiator ? "initiator" : "responder") +
           " state=" + std::string(ike_state_name(s.state)) + " spi_i=" + hex(s.spi_i, 16) +
           " spi_r=" + hex(s.spi_r, 16) + " ike=" + suite_name(s.suite) + " local=" + endpoint(s.local) +
           " remote=" + endpoint(s.remote) + " nat=" + (s.nat ? "yes" : "no") +
           " children=" + std::to_string(s.children.size()) + "\n";
    for (const ChildSaStatus& c : s.children) {
      out += "child peer=" + s.peer + " reqid=" + std::to_string(c.info.slot.reqid) +
             " spi_in=" + hex(c.info.slot.spi_in, 8) + " spi_out=" + hex(c.info.spi_out, 8) +
             " esp=" + suite_name(c.info.suite) + " encap=" +
             (c.info.encap ? std::to_string(c.info.encap->first) + "/" + std::to_string(c.info.encap->second)
                           : std::string("none"));
      if (c.counters)
        out += " packets_in=" + std::to_string(c.counters->packets_in) +
               " packets_out=" + std::to_string(c.counters->packets_out) +
               " bytes_in=" + std::to_string(c.counters->bytes_in) +
               " bytes_out=" + std::to_string(c.counters->bytes_out);
      out += "\n";
    }
  }
  out += "end\n";
  std::fputs(out.c_str(), stdout);
  std::fflush(stdout);
}

Proposal esp_cbc() {
  Proposal p;
  p.protocol = ProtocolId::kEsp;
  p.transforms = {Transform::make(TransformType::kEncr, transform_id::kEncrAesCbc, 256),
                  Transform::make(TransformType::kInteg, transform_id::kIntegHmacSha384_192),
                  Transform::make(TransformType::kEsn, transform_id::kEsnNo)};
  return p;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"ikepeerctl: one IKEv2 peer over ike::Runner (kernel-VM tests)"};
  std::string netns, local, remote, cert, chain, key, ca, remote_id, ike = "default", esp = "gcm", name = "peer";
  std::vector<std::string> local_ts, remote_ts, listen;
  std::uint16_t ike_port = kIkePort, natt_port = kNatTPort;
  bool initiate = false, pfs = false;
  unsigned child_rekey = 0;
  int ike_rekey = -1;
  unsigned dpd = 0;
  bool dpd_restart = false;
  std::vector<unsigned> retransmit_ms;
  app.add_option("--netns", netns, "network namespace (name or path; default: the caller's)");
  app.add_option("--name", name, "peer name in events");
  app.add_option("--local", local, "our address")->required();
  app.add_option("--remote", remote, "the peer's address (as we see it: the NAT's outside address)")->required();
  app.add_option("--listen", listen, "addresses to listen on (default: --local)");
  app.add_option("--local-ts", local_ts, "our protected prefix (repeatable)")->required();
  app.add_option("--remote-ts", remote_ts, "the peer's protected prefix (repeatable)")->required();
  app.add_option("--cert", cert, "our end-entity certificate (PEM)")->required();
  app.add_option("--chain", chain, "intermediate CA certificates sent along (PEM)");
  app.add_option("--key", key, "our private key (unencrypted PEM file)")->required();
  app.add_option("--ca", ca, "trust anchors (self-signed root CA PEM)")->required();
  app.add_option("--remote-id", remote_id,
                 "the ID the peer must use: fqdn:NAME or ip:ADDR (default: any its cert names)");
  app.add_option("--ike", ike, "IKE proposals: default (cbc then gcm), cbc, gcm")
      ->check(CLI::IsMember({"default", "cbc", "gcm"}));
  app.add_option("--esp", esp, "ESP proposal: gcm (aes256gcm16) or cbc (aes256-sha384)")
      ->check(CLI::IsMember({"gcm", "cbc"}));
  app.add_option("--ike-port", ike_port, "IKE port");
  app.add_option("--natt-port", natt_port, "NAT-T port");
  app.add_flag("--initiate", initiate, "initiate at start");
  app.add_flag("--pfs", pfs, "ESP proposal with ECP-384 (PFS) for rekeys and additional CHILD_SAs");
  app.add_option("--child-rekey", child_rekey, "rekey each CHILD_SA after SECONDS (minus up to 10%; 0: never)");
  app.add_option("--ike-rekey", ike_rekey,
                 "rekey the IKE SA after SECONDS (minus up to 10%; 0: never; default: the engine's 4 h)");
  app.add_option("--dpd", dpd, "dead peer detection: ask a peer silent for SECONDS (0: never)");
  app.add_flag("--dpd-restart", dpd_restart, "initiate a new IKE SA to a peer found dead");
  app.add_option("--retransmit", retransmit_ms, "waits before each retransmission, in ms (default 1000 2000 4000 8000 16000)")
      ->delimiter(',');
  CLI11_PARSE(app, argc, argv);

  PeerConfig cfg;
  cfg.name = name;
  auto la = IpAddress::parse(local, "--local");
  auto ra = IpAddress::parse(remote, "--remote");
  if (!la.ok()) return fail("arguments", la.error().to_string());
  if (!ra.ok()) return fail("arguments", ra.error().to_string());
  cfg.local_addr = *la;
  cfg.remote_addr = *ra;
  for (const auto& t : local_ts) {
    auto r = parse_ts(t);
    if (!r.ok()) return fail("arguments", r.error().to_string());
    cfg.local_ts.push_back(*r);
  }
  for (const auto& t : remote_ts) {
    auto r = parse_ts(t);
    if (!r.ok()) return fail("arguments", r.error().to_string());
    cfg.remote_ts.push_back(*r);
  }
  auto ee = read_certs(cert);
  if (!ee.ok() || ee->empty()) return fail("--cert", ee.ok() ? "no certificate" : ee.error().to_string());
  cfg.local_cert = share(ee->front());
  if (!chain.empty()) {
    auto inter = read_certs(chain);
    if (!inter.ok()) return fail("--chain", inter.error().to_string());
    for (const auto& c : *inter) cfg.local_intermediates.push_back(share(c));
  }
  {
    auto pem = read_secret_file(key);  // into wiped memory, never a std::string
    if (!pem.ok()) return fail("--key", pem.error().to_string());
    auto k = certs::PrivateKey::from_pem(*pem);
    if (!k.ok()) return fail("--key", k.error().to_string());
    EVP_PKEY_up_ref(k->native());
    cfg.local_key = share_pkey(k->native());
  }
  auto anchors = read_certs(ca);
  if (!anchors.ok() || anchors->empty())
    return fail("--ca", anchors.ok() ? "no certificate" : anchors.error().to_string());
  std::vector<X509*> anchor_ptrs;
  for (const auto& c : *anchors) {
    anchor_ptrs.push_back(c.native());
    cfg.certreq_authorities.push_back(spki_sha1(c.native()));
  }
  auto validator = PeerValidator::from_certificates(anchor_ptrs);
  if (!validator.ok()) return fail("--ca", validator.error().to_string());
  cfg.validate_peer = make_peer_cert_validator(std::make_shared<const PeerValidator>(std::move(validator).value()));
  if (!remote_id.empty()) {
    if (remote_id.rfind("fqdn:", 0) == 0) {
      cfg.remote_id = id_fqdn(remote_id.substr(5));
    } else if (remote_id.rfind("ip:", 0) == 0) {
      auto a = IpAddress::parse(remote_id.substr(3), "--remote-id");
      if (!a.ok()) return fail("arguments", a.error().to_string());
      cfg.remote_id = id_ip(*a);
    } else {
      return fail("arguments", "--remote-id: fqdn:NAME or ip:ADDR");
    }
  }
  if (ike != "default") {
    const std::uint16_t want = ike == "gcm" ? transform_id::kEncrAesGcm16 : transform_id::kEncrAesCbc;
    std::vector<Proposal> chosen;
    for (Proposal p : default_ike_proposals())
      if (!p.transforms.empty() && p.transforms.front().id == want) {
        p.number = 1;
        chosen.push_back(p);
      }
    cfg.ike_proposals = chosen;
  }
  if (esp == "cbc") cfg.esp_proposals = {esp_cbc()};
  if (pfs)
    for (Proposal& p : cfg.esp_proposals)
      p.transforms.push_back(Transform::make(TransformType::kKe, transform_id::kGroupEcp384));
  cfg.child_rekey_time = std::chrono::seconds(child_rekey);
  if (ike_rekey >= 0) cfg.ike_rekey_time = std::chrono::seconds(ike_rekey);
  cfg.dpd_delay = std::chrono::seconds(dpd);
  if (dpd_restart) cfg.dpd_action = PeerConfig::DeadPeerAction::kRestart;
  if (!retransmit_ms.empty()) {
    cfg.retransmit.waits.clear();
    for (unsigned ms : retransmit_ms) cfg.retransmit.waits.push_back(std::chrono::milliseconds(ms));
  }
  cfg.child_lifetime.soft_add = std::chrono::seconds(3000);
  cfg.child_lifetime.hard_add = std::chrono::seconds(3600);

  // Signals are taken synchronously by this thread only (the I/O thread
  // inherits the blocked mask).
  sigset_t sigs;
  sigemptyset(&sigs);
  for (int s : {SIGTERM, SIGINT, SIGUSR1, SIGUSR2, SIGHUP}) sigaddset(&sigs, s);
  pthread_sigmask(SIG_BLOCK, &sigs, nullptr);

  std::mutex qmu;
  std::deque<Event> queue;
  RunnerOptions ro;
  ro.udp.netns = netns;
  ro.udp.ike_port = ike_port;
  ro.udp.natt_port = natt_port;
  if (listen.empty()) listen.push_back(local);
  for (const auto& l : listen) {
    auto a = IpAddress::parse(l, "--listen");
    if (!a.ok()) return fail("arguments", a.error().to_string());
    ro.udp.addresses.push_back(*a);
  }
  auto runner = Runner::start(ro, [&](const Event& e) {
    std::lock_guard lock(qmu);
    queue.push_back(e);
  });
  if (!runner.ok()) return fail("starting the IKE runner", runner.error().to_string());
  Runner& r = **runner;
  const IpAddress peer_addr = cfg.remote_addr;
  if (auto st = r.with_engine([&](Engine& e) { return e.add_peer(std::move(cfg)); }); !st.ok())
    return fail("adding the peer", st.error().to_string());
  // What a killed predecessor left: its SAs are gone now, its policies (still
  // dropping traffic) wait for our new CHILD_SA; those of other peers go.
  auto pruned = r.prune_stale({peer_addr});
  if (!pruned.ok()) return fail("pruning stale policies", pruned.error().to_string());
  std::printf("stale sas_deleted=%zu policies_kept=%zu policies_pruned=%zu\n", r.stale().sas_deleted,
              r.stale().policies_kept, *pruned);
  {
    std::string l = "ready listen=";
    bool first = true;
    for (const Endpoint& e : r.endpoints()) {
      l += (first ? "" : ",") + endpoint(e);
      first = false;
    }
    std::printf("%s\n", l.c_str());
    std::fflush(stdout);
  }
  if (initiate) {
    if (auto st = r.with_engine([&](Engine& e) { return e.initiate(name); }); !st.ok())
      return fail("initiate", st.error().to_string());
  }

  auto drain = [&]() {
    std::deque<Event> got;
    {
      std::lock_guard lock(qmu);
      got.swap(queue);
    }
    for (const Event& e : got) std::printf("%s\n", event_line(e).c_str());
    std::fflush(stdout);
    if (!got.empty()) print_status(r);
    return got.size();
  };
  const timespec step{0, 100 * 1000 * 1000};
  for (;;) {
    const int sig = sigtimedwait(&sigs, nullptr, &step);
    drain();
    if (sig == SIGUSR1) print_status(r);
    if (sig == SIGHUP) {
      if (auto st = r.with_engine([&](Engine& e) { return e.initiate(name); }); !st.ok())
        std::printf("initiate-refused %s\n", st.error().to_string().c_str());
      std::fflush(stdout);
    }
    if (sig == SIGUSR2) {  // rekey every CHILD_SA of the peer now
      (void)r.with_engine([&](Engine& e) {
        for (const IkeSaStatus& sa : e.list())
          for (const ChildSaStatus& c : sa.children) {
            if (auto st = e.rekey_child(name, c.info.slot.spi_in); !st.ok())
              std::printf("rekey-refused %s\n", st.error().to_string().c_str());
          }
        return 0;
      });
      std::fflush(stdout);
    }
    if (sig == SIGTERM || sig == SIGINT) break;
  }
  // Terminate: DELETE our IKE SAs and wait (bounded) for them to go; what is
  // left then (a peer that does not answer) is dropped by remove_peer().
  (void)r.with_engine([&](Engine& e) { return e.terminate(name); });
  for (int i = 0; i < 50; ++i) {
    drain();
    if (r.with_engine([](Engine& e) { return e.list().empty(); })) break;
    nanosleep(&step, nullptr);
  }
  (void)r.with_engine([&](Engine& e) { return e.remove_peer(name); });
  drain();
  std::printf("exit\n");
  std::fflush(stdout);
  runner->reset();
  return 0;
}
