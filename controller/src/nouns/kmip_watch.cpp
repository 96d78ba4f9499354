// KMIP faults: the watcher of key servers and their certificates (see kmip_watch.h).
#include "nouns/kmip_watch.h"

#include <spdlog/spdlog.h>
#include <unistd.h>

#include <chrono>
#include <ctime>
#include <iterator>
#include <memory>
#include <set>

#include "storcrypt/controller/ticker.h"

namespace storcrypt::controller {

using nlohmann::json;

namespace {

constexpr const char* kTestAction =
    "test the key server again with TestKeyServerKmip (storcrypt keyserver test ID); the daemon marks this event "
    "fixed once a test of that server succeeds";

const char* kCertActions[] = {
    "key server CA certificate (role ca): get the renewed CA certificate of the key server and install it with "
    "ModifyKeyServerKmip (storcrypt keyserver modify ID --ca-cert FILE)",
    "our client certificate (role client): have the CSR of GetClientCertificateSignRequest (storcrypt kmip-client "
    "csr) signed again and install the certificate with ModifyKeyServerKmip (storcrypt keyserver modify ID "
    "--client-cert FILE); for a new key pair first CreatePublicPrivateKeyPair (storcrypt kmip-client "
    "create-keypair; refused while a provider uses the pair: renew with the current pair instead)",
    "check the system clock if the dates look wrong (storcrypt system doctor)",
    "the daemon marks this event fixed when the certificate is renewed"};

EventDef cert_def(int code, Severity sev, std::string title, std::vector<std::string> causes) {
  return {code, sev, std::move(title), std::move(causes), {std::begin(kCertActions), std::end(kCertActions)}};
}

std::string node_name() {
  char buf[256] = {};
  if (::gethostname(buf, sizeof buf - 1) != 0) return "localhost";
  return buf;
}

/// A certificate's key in the watcher's map: "<server id> <role> <fingerprint>".
std::string cert_key(int64_t server, const std::string& role, const std::string& fingerprint) {
  return std::to_string(server) + " " + role + " " + fingerprint;
}

}  // namespace

std::vector<EventDef> kmip_fault_events() {
  using namespace kmip_event;
  return {
      {kServerConnection,
       Severity::kError,
       "KMIP key server unreachable (connection)",
       {"the key server is down or restarting", "a firewall or routing problem between this node and the server",
        "wrong host name or port in the key server definition"},
       {"check that the key server runs and listens on the port (kmipKeyServerPort, default 5696)",
        "check that this node resolves and reaches the host names (sense: hostname, port)",
        "correct host names or port with ModifyKeyServerKmip (storcrypt keyserver modify ID --hostname H --port P)",
        kTestAction}},
      {kServerTls,
       Severity::kError,
       "KMIP key server TLS failure",
       {"the key server's certificate is not signed by kmipCaCertificate (the server or its CA was renewed)",
        "the host name is not in the key server's certificate", "no common TLS version or cipher suite"},
       {"check kmipCaCertificate against the CA that signed the key server's certificate and install the right one "
        "with ModifyKeyServerKmip (storcrypt keyserver modify ID --ca-cert FILE)",
        "check that the host name used is in the server certificate's subject alternative names", kTestAction}},
      {kServerAuthentication,
       Severity::kError,
       "KMIP key server refuses this node (authentication)",
       {"our client certificate is not signed by a CA the key server trusts, expired, or lacks extended key "
        "usage clientAuth",
        "the key server does not authorize this node's identity"},
       {"have the CSR of GetClientCertificateSignRequest (storcrypt kmip-client csr) signed by a CA the key "
        "server trusts, with extended key usage clientAuth, and install it with ModifyKeyServerKmip "
        "(storcrypt keyserver modify ID --client-cert FILE)",
        "check the key server's access policy for this node's certificate", kTestAction}},
      {kServerError,
       Severity::kError,
       "KMIP key server error",
       {"the key server answered with an error or does not speak KMIP on this port"},
       {"see the key server's log for the request of this node", "check that the port is the server's KMIP port",
        kTestAction}},
      cert_def(kCertWithin30Days, Severity::kWarning, "KMIP certificate expires within 30 days",
               {"the certificate's validity period is ending"}),
      cert_def(kCertWithin7Days, Severity::kError, "KMIP certificate expires within 7 days",
               {"the certificate's validity period is ending and it has not been renewed"}),
      cert_def(kCertWithin3Days, Severity::kCritical, "KMIP certificate expires within 3 days",
               {"the certificate has not been renewed; key servers will refuse this node once it expires"}),
      cert_def(kCertExpired, Severity::kCritical, "KMIP certificate expired",
               {"the certificate was not renewed in time", "the system clock is wrong"}),
      cert_def(kCertNotYetValid, Severity::kCritical, "KMIP certificate not yet valid",
               {"the system clock is behind", "the certificate was issued with a start date in the future"}),
  };
}

std::string kmip_fault_category(const std::string& error_name) {
  if (error_name == "xKeyServerUnavailable") return "connection";
  if (error_name == "xKeyServerSslError") return "tls";
  if (error_name == "xKeyServerAuthFailed" || error_name == "xKeyServerInvalidAuth") return "authentication";
  return "server-error";
}

int kmip_server_fault_code(const std::string& category) {
  if (category == "connection") return kmip_event::kServerConnection;
  if (category == "tls") return kmip_event::kServerTls;
  if (category == "authentication") return kmip_event::kServerAuthentication;
  return kmip_event::kServerError;
}

std::optional<int> kmip_cert_fault_code(certs::ExpiryClass c) {
  switch (c) {
    case certs::ExpiryClass::kOk:
      return std::nullopt;
    case certs::ExpiryClass::kWarning:
      return kmip_event::kCertWithin30Days;
    case certs::ExpiryClass::kError:
      return kmip_event::kCertWithin7Days;
    case certs::ExpiryClass::kCritical:
      return kmip_event::kCertWithin3Days;
    case certs::ExpiryClass::kExpired:
      return kmip_event::kCertExpired;
    case certs::ExpiryClass::kNotYetValid:
      return kmip_event::kCertNotYetValid;
  }
  return std::nullopt;
}

void KmipFaultWatcher::load() {
  std::vector<int> codes;
  for (const auto& d : kmip_fault_events()) codes.push_back(d.code);
  for (int code : codes) {
    EventFilter f;
    f.code = code;
    f.unfixed_only = true;
    f.limit = 10000;
    auto l = events_.list(f);
    if (!l.ok()) return;  // retried next pass
    for (const auto& e : *l) {
      const int64_t sid = e.sense.value("keyServerID", int64_t{0});
      if (code < kmip_event::kCertWithin30Days) {
        auto& o = server_open_[sid];
        if (o.id != 0) (void)events_.mark_fixed(o.id);  // a duplicate: keep the newest
        o = {code, e.id};
      } else {
        auto& o = cert_open_[cert_key(sid, e.sense.value("role", ""), e.sense.value("fingerprint", ""))];
        if (o.id != 0) (void)events_.mark_fixed(o.id);
        o = {code, e.id};
      }
    }
  }
  loaded_ = true;
}

void KmipFaultWatcher::server_pass(const KmipKeyServer& s, const TestFn& test) {
  std::optional<Error> err = test(s);
  auto it = server_open_.find(s.id);
  if (!err) {
    if (it != server_open_.end()) {
      (void)events_.mark_fixed(it->second.id);
      server_open_.erase(it);
      spdlog::info("KMIP key server {} ('{}') works again", s.id, s.name);
    }
    return;
  }
  const std::string category = kmip_fault_category(err->name());
  const int code = kmip_server_fault_code(category);
  if (it != server_open_.end() && it->second.code == code) return;        // already raised
  if (it != server_open_.end()) (void)events_.mark_fixed(it->second.id);  // superseded by the new category
  const std::string hosts = [&] {
    std::string h;
    for (const auto& x : s.hostnames) h += (h.empty() ? "" : ",") + x;
    return h;
  }();
  auto id = events_.raise(code,
                          "key server " + std::to_string(s.id) + " ('" + s.name + "') failed its test from node " +
                              node_ + " (" + category + "): " + err->message(),
                          {{"keyServerID", s.id},
                           {"keyServerName", s.name},
                           {"node", node_},
                           {"hostnames", hosts},
                           {"port", s.port},
                           {"category", category},
                           {"error", err->name()},
                           {"detail", err->message()},
                           {"fix", err->fix()}});
  if (id.ok()) {
    server_open_[s.id] = {code, *id};
    spdlog::warn("KMIP key server {} ('{}'): {} fault (see 'storcrypt event list')", s.id, s.name, category);
  } else {
    server_open_.erase(s.id);
  }
}

void KmipFaultWatcher::cert_pass(const KmipKeyServer& s, certs::UnixTime now, std::map<std::string, Open>& seen) {
  std::vector<std::pair<std::string, certs::CertInfo>> certs_of;
  if (auto cas = certs::parse_certificates(s.ca_pem); cas.ok())
    for (const auto& c : *cas) certs_of.emplace_back("ca", c.info());
  if (auto c = certs::parse_certificate(s.client_cert_pem); c.ok()) certs_of.emplace_back("client", c->info());
  for (const auto& [role, info] : certs_of) {
    const certs::ExpiryClass cls = certs::classify_expiry(info.not_before, info.not_after, now);
    auto code = kmip_cert_fault_code(cls);
    if (!code) continue;
    const std::string key = cert_key(s.id, role, info.sha256_fingerprint);
    auto it = cert_open_.find(key);
    if (it != cert_open_.end() && it->second.code == *code) {
      seen[key] = it->second;
      continue;
    }
    if (it != cert_open_.end()) (void)events_.mark_fixed(it->second.id);  // superseded by the new class
    const int64_t days = (info.not_after - now) / 86400;
    std::string when = cls == certs::ExpiryClass::kNotYetValid
                           ? "not valid before " + certs::format_utc(info.not_before)
                       : cls == certs::ExpiryClass::kExpired
                           ? "expired " + certs::format_utc(info.not_after)
                           : std::to_string(days) + " days left (until " + certs::format_utc(info.not_after) + ")";
    const std::string what = role == "ca" ? "CA certificate" : "client certificate";
    auto id = events_.raise(
        *code, "key server " + std::to_string(s.id) + " ('" + s.name + "'): " + what + " " + info.subject + ": " + when,
        {{"keyServerID", s.id},
         {"keyServerName", s.name},
         {"node", node_},
         {"role", role},
         {"subject", info.subject},
         {"fingerprint", info.sha256_fingerprint},
         {"not_before", certs::format_utc(info.not_before)},
         {"not_after", certs::format_utc(info.not_after)},
         {"class", std::string(certs::expiry_class_name(cls))}});
    if (id.ok()) {
      cert_open_[key] = {*code, *id};
      seen[key] = {*code, *id};
    } else {
      cert_open_.erase(key);
    }
  }
}

void KmipFaultWatcher::pass(const std::vector<KmipKeyServer>& servers, const TestFn& test, certs::UnixTime now) {
  if (!loaded_) load();
  if (!loaded_) return;
  std::map<std::string, Open> cert_seen;
  std::set<int64_t> server_seen;
  for (const auto& s : servers) {
    server_seen.insert(s.id);
    cert_pass(s, now, cert_seen);
    server_pass(s, test);
  }
  // Renewed, removed, or no longer assigned to a provider: nothing to fix.
  for (auto it = cert_open_.begin(); it != cert_open_.end();) {
    if (cert_seen.count(it->first)) {
      ++it;
      continue;
    }
    (void)events_.mark_fixed(it->second.id);
    it = cert_open_.erase(it);
  }
  for (auto it = server_open_.begin(); it != server_open_.end();) {
    if (server_seen.count(it->first)) {
      ++it;
      continue;
    }
    (void)events_.mark_fixed(it->second.id);
    it = server_open_.erase(it);
  }
}

namespace {

/// The running watcher: owns (and joins, first) its ticker.
struct KmipWatchState {
  std::unique_ptr<KmipFaultWatcher> watcher;
  std::shared_ptr<KmipService> prober;  ///< probes only, with short timeouts
  std::unique_ptr<Ticker> ticker;       ///< declared last: joined first
};

/// The real prober with short timeouts: a pass must not hold a key server
/// slot (or delay shutdown) for long.
KmipProber short_prober() { return real_kmip_prober(std::chrono::milliseconds(2000), std::chrono::milliseconds(4000)); }

}  // namespace

void start_kmip_fault_watcher(Context& ctx) {
  if (!ctx.events || !ctx.db) return;
  for (auto& d : kmip_fault_events()) ctx.events->define(std::move(d));
  auto st = kmip_state_for(ctx);
  auto w = std::make_shared<KmipWatchState>();
  w->watcher = std::make_unique<KmipFaultWatcher>(*ctx.events, node_name());
  KmipProber prober = short_prober();
  if (auto f = ctx.service<KmipProber>()) prober = *f;  // tests' seam
  w->prober = std::make_shared<KmipService>(ctx.db, ctx.config.state_directory + "/kmip", std::move(prober));
  ctx.set_service(w);
  const auto every = std::chrono::seconds(ctx.config.kmip_watch_interval_seconds);
  ctx.add_start_hook([w, st, every] {
    if (!st->svc) return;
    w->ticker = std::make_unique<Ticker>(every, [w = w.get(), st] {
      std::vector<KmipKeyServer> assigned;
      {
        std::lock_guard lock(st->svc->mu);
        auto all = st->svc->servers();
        if (!all.ok()) return;
        for (auto& s : *all)
          if (s.provider_id) assigned.push_back(std::move(s));
      }
      // Network I/O without the service's lock.
      w->watcher->pass(
          assigned,
          [w](const KmipKeyServer& s) -> std::optional<Error> {
            auto r = w->prober->probe_servers({s});
            if (r.ok()) return std::nullopt;
            return r.error();
          },
          static_cast<certs::UnixTime>(std::time(nullptr)));
    });
  });
}

}  // namespace storcrypt::controller
