// API methods of the `cert` noun: cert.create, cert.csr, cert.install,
// cert.show, cert.export-root; plus the certificate expiry doctor check.
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>

#include "cert_service.h"
#include "storcrypt/controller/nouns.h"
#include "storcrypt/controller/ticker.h"

namespace storcrypt::controller {

using nlohmann::json;

Result<std::shared_ptr<CertService>> cert_service(Context& ctx) {
  if (auto s = ctx.service<CertService>()) return s;
  STORCRYPT_ASSIGN_OR_RETURN(auto store, certs::CertStore::open(ctx.config.state_directory + "/certs"));
  auto s = std::make_shared<CertService>(std::move(store));
  ctx.set_service(s);
  return s;
}

json cert_info_json(const certs::CertInfo& c) {
  return json{{"subject", c.subject},
              {"issuer", c.issuer},
              {"serial", c.serial_hex},
              {"sha256_fingerprint", c.sha256_fingerprint},
              {"not_before", c.not_before},
              {"not_after", c.not_after},
              {"is_ca", c.is_ca},
              {"self_signed", c.self_signed},
              {"key", c.key},
              {"dns_names", c.dns_names},
              {"ip_addresses", c.ip_addresses},
              {"ext_key_usage", c.ext_key_usage}};
}

namespace {

std::vector<ParamSpec> subject_params() {
  return {{"common_name", ParamType::kString, true, "subject CN, e.g. the node's host name"},
          {"country", ParamType::kString, false, "two-letter country code"},
          {"state", ParamType::kString, false, "state or province"},
          {"locality", ParamType::kString, false, "city"},
          {"organization", ParamType::kString, false, "organization"},
          {"unit", ParamType::kString, false, "organizational unit"},
          {"email", ParamType::kString, false, "e-mail address"},
          {"dns", ParamType::kArray, false, "DNS subject alternative names (strings)"},
          {"ip", ParamType::kArray, false, "IP address subject alternative names (strings)"},
          {"key_type", ParamType::kString, false, "ec-p384 (default), rsa-3072 or rsa-4096"}};
}

Result<std::vector<std::string>> string_list(const Params& p, const std::string& name) {
  std::vector<std::string> out;
  if (!p.has(name)) return out;
  for (const auto& v : p.json()[name]) {
    if (!v.is_string()) {
      return Error(ErrorCode::kInvalidInput, "parameter '" + name + "' must be a list of strings",
                   "pass each value as a string");
    }
    out.push_back(v.get<std::string>());
  }
  return out;
}

Result<certs::CreateOptions> create_options(const Params& p) {
  certs::CreateOptions o;
  o.subject.common_name = p.str("common_name");
  o.subject.country = p.str("country");
  o.subject.state = p.str("state");
  o.subject.locality = p.str("locality");
  o.subject.organization = p.str("organization");
  o.subject.unit = p.str("unit");
  o.subject.email = p.str("email");
  STORCRYPT_ASSIGN_OR_RETURN(o.sans.dns, string_list(p, "dns"));
  STORCRYPT_ASSIGN_OR_RETURN(o.sans.ip, string_list(p, "ip"));
  if (p.has("key_type")) {
    STORCRYPT_ASSIGN_OR_RETURN(o.key_type, certs::parse_key_type(p.str("key_type")));
  }
  if (p.has("days")) {
    int64_t d = p.integer("days");
    if (d < 1 || d > 36500) {
      return Error(ErrorCode::kInvalidInput, "days must be between 1 and 36500", "pass a validity in days",
                   "xCertBadDays");
    }
    o.days = static_cast<int>(d);
  }
  STORCRYPT_TRY(certs::validate_subject(o.subject));
  STORCRYPT_TRY(certs::validate_sans(o.sans));
  return o;
}

std::vector<CheckResult> expiry_checks(Context& ctx) {
  auto svc = cert_service(ctx);
  if (!svc.ok()) {
    return {{"certificates", "certificate-store", "error", svc.error().message(), svc.error().fix()}};
  }
  auto report = (*svc)->with([](certs::CertStore& s) { return s.expiry_report(); });
  if (!report.ok()) {
    return {{"certificates", "expiry", "error", report.error().message(), report.error().fix()}};
  }
  std::vector<CheckResult> out;
  if (report->empty()) {
    out.push_back({"certificates", "endpoint-certificate", "warning", "no endpoint certificate is installed",
                   "create one with `storcrypt cert create` or `storcrypt cert csr` + `storcrypt cert install`"});
  }
  for (const auto& item : *report) {
    std::string cls(certs::expiry_class_name(item.cls));
    int64_t days = item.seconds_left / 86400;
    std::string detail = item.cert.subject + ": " + cls +
                         (item.seconds_left >= 0 ? " (" + std::to_string(days) + " days left)"
                                                 : " (expired " + std::to_string(-days) + " days ago)");
    std::string fix;
    if (item.cls != certs::ExpiryClass::kOk) {
      fix = item.role == "truststore" ? "replace the authority: `storcrypt truststore add` the renewed chain"
                                      : "renew: `storcrypt cert create` or `storcrypt cert csr` + `cert install`";
    }
    out.push_back({"certificates", item.role, std::string(certs::expiry_severity(item.cls)), detail, fix});
  }
  return out;
}

// The endpoint's chain as partners receive it: its issuer must be installed
// with it or be in the truststore (else partners need the intermediate).
std::vector<CheckResult> chain_checks(Context& ctx) {
  auto svc = cert_service(ctx);
  if (!svc.ok()) return {};  // expiry_checks reports the store itself
  auto st = (*svc)->with([](certs::CertStore& s) { return s.show(); });
  if (!st.ok()) return {{"certificates", "endpoint-chain", "error", st.error().message(), st.error().fix()}};
  if (!st->cert) return {};
  if (st->missing_issuer) {
    return {{"certificates", "endpoint-chain", "warning",
             "the chain of " + st->cert->subject + " is incomplete: its issuer (" + *st->missing_issuer +
                 ") is neither installed with it nor in the truststore; partners will need that intermediate",
             "install the certificate followed by its intermediate(s): `storcrypt cert install FULLCHAIN.pem`, "
             "or `storcrypt truststore add` the issuing CA if partners already trust it"}};
  }
  return {{"certificates", "endpoint-chain", "ok",
           "complete (" + std::to_string(st->chain.size()) + " certificate(s) installed with the endpoint)", ""}};
}

// ---- certificate expiry events ----
// A watcher (every STORCRYPT_CERT_CHECK_SECONDS, default 3600) raises one
// event per certificate and expiry class: 3010 (< 30 days left, warning),
// 3011 (< 7 days, error), 3012 (expired or not yet valid, critical). A later
// class replaces the earlier event (marked fixed); a renewed, replaced or
// removed certificate marks its event fixed. Open events are found again
// after a restart (their sense carries role and fingerprint), so a restart
// raises no duplicates.
constexpr int kCertExpiringEvent = 3010;
constexpr int kCertExpiresSoonEvent = 3011;
constexpr int kCertExpiredEvent = 3012;

void define_expiry_events(EventLog& ev) {
  const std::vector<std::string> actions = {
      "endpoint certificate: renew it with 'storcrypt cert create' (internal CA) or 'storcrypt cert csr' and "
      "'storcrypt cert install' (external CA); partners trusting the same root need no change",
      "truststore authority: add the partner's renewed chain with 'storcrypt truststore add' and remove the old "
      "one",
      "check the system clock ('storcrypt system doctor') if the dates look wrong"};
  ev.define({kCertExpiringEvent,
             Severity::kWarning,
             "Certificate expires within 30 days",
             {"the certificate's validity period is ending"},
             actions});
  ev.define({kCertExpiresSoonEvent,
             Severity::kError,
             "Certificate expires within 7 days",
             {"the certificate's validity period is ending and it has not been renewed"},
             actions});
  ev.define({kCertExpiredEvent,
             Severity::kCritical,
             "Certificate expired or not yet valid",
             {"the certificate was not renewed in time", "the system clock is wrong"},
             actions});
}

std::optional<int> expiry_event_code(certs::ExpiryClass c) {
  switch (c) {
    case certs::ExpiryClass::kOk:
      return std::nullopt;
    case certs::ExpiryClass::kWarning:
      return kCertExpiringEvent;
    case certs::ExpiryClass::kError:
    case certs::ExpiryClass::kCritical:
      return kCertExpiresSoonEvent;
    default:
      return kCertExpiredEvent;
  }
}

struct ExpiryWatch {
  struct Open {
    int code = 0;
    int64_t id = 0;
  };
  std::map<std::string, Open> open;  ///< "<role> <fingerprint>" -> its open event
  bool loaded = false;
  std::unique_ptr<Ticker> ticker;  ///< declared last: joined first
};

void expiry_pass(CertService& svc, EventLog& ev, ExpiryWatch& w) {
  if (!w.loaded) {
    for (int code : {kCertExpiringEvent, kCertExpiresSoonEvent, kCertExpiredEvent}) {
      EventFilter f;
      f.code = code;
      f.unfixed_only = true;
      f.limit = 10000;
      auto l = ev.list(f);
      if (!l.ok()) return;
      for (const auto& e : *l)
        w.open[e.sense.value("role", "") + " " + e.sense.value("fingerprint", "")] = {code, e.id};
    }
    w.loaded = true;
  }
  auto report = svc.with([](certs::CertStore& s) { return s.expiry_report(); });
  if (!report.ok()) return;
  std::set<std::string> current;
  for (const auto& item : *report) {
    std::string key = item.role + " " + item.cert.sha256_fingerprint;
    auto code = expiry_event_code(item.cls);
    if (!code) continue;
    current.insert(key);
    auto it = w.open.find(key);
    if (it != w.open.end() && it->second.code == *code) continue;
    if (it != w.open.end()) (void)ev.mark_fixed(it->second.id);  // superseded by the new class
    int64_t days = item.seconds_left / 86400;
    std::string when =
        item.seconds_left >= 0 ? std::to_string(days) + " days left" : "expired " + std::to_string(-days) + " days ago";
    if (item.cls == certs::ExpiryClass::kNotYetValid) when = "not valid yet";
    auto id = ev.raise(*code, item.role + " certificate " + item.cert.subject + ": " + when,
                       {{"role", item.role},
                        {"subject", item.cert.subject},
                        {"fingerprint", item.cert.sha256_fingerprint},
                        {"not_after", item.cert.not_after},
                        {"class", std::string(certs::expiry_class_name(item.cls))}});
    if (id.ok()) w.open[key] = {*code, *id};
  }
  for (auto it = w.open.begin(); it != w.open.end();) {
    if (current.count(it->first)) {
      ++it;
      continue;
    }
    (void)ev.mark_fixed(it->second.id);  // renewed, replaced or removed
    it = w.open.erase(it);
  }
}

}  // namespace

Status register_cert_methods(Dispatcher& d, Context& ctx) {
  STORCRYPT_ASSIGN_OR_RETURN(auto svc, cert_service(ctx));
  ctx.add_doctor_check([&ctx] { return expiry_checks(ctx); });
  ctx.add_doctor_check([&ctx] { return chain_checks(ctx); });
  if (ctx.events) {
    define_expiry_events(*ctx.events);
    auto watch = std::make_shared<ExpiryWatch>();
    ctx.set_service(watch);
    ctx.add_start_hook([watch, svc, events = ctx.events] {
      auto every = interval_from_env("STORCRYPT_CERT_CHECK_SECONDS", std::chrono::seconds(3600));
      // The task holds the watch by pointer: the watch owns (and joins) the ticker.
      watch->ticker =
          std::make_unique<Ticker>(every, [w = watch.get(), svc, events] { expiry_pass(*svc, *events, *w); });
    });
  }

  auto create_params = subject_params();
  create_params.push_back({"mode", ParamType::kString, false,
                           "internal (default: signed by this system's own root CA) "
                           "or self-signed (not recommended)"});
  create_params.push_back({"days", ParamType::kInteger, false, "validity in days (default 825)"});
  STORCRYPT_TRY(d.add({"cert.create", "create a new key and endpoint certificate", create_params, true,
                       [svc](const Params& p) -> Result<json> {
                         std::string mode = p.str("mode", "internal");
                         if (mode != "internal" && mode != "self-signed") {
                           return Error(ErrorCode::kInvalidInput, "mode '" + mode + "' is not valid",
                                        "use internal or self-signed");
                         }
                         STORCRYPT_ASSIGN_OR_RETURN(auto o, create_options(p));
                         STORCRYPT_ASSIGN_OR_RETURN(auto r, svc->with([&](certs::CertStore& s) {
                           return mode == "internal" ? s.create_internal(o) : s.create_self_signed(o);
                         }));
                         json out{{"mode", mode}, {"endpoint", cert_info_json(r.endpoint)}, {"warnings", r.warnings}};
                         if (r.root) out["root"] = cert_info_json(*r.root);
                         return out;
                       }}));

  STORCRYPT_TRY(d.add({"cert.csr", "create a new pending key and a CSR for an external CA", subject_params(), true,
                       [svc](const Params& p) -> Result<json> {
                         STORCRYPT_ASSIGN_OR_RETURN(auto o, create_options(p));
                         STORCRYPT_ASSIGN_OR_RETURN(auto r,
                                                    svc->with([&](certs::CertStore& s) { return s.create_csr(o); }));
                         return json{{"csr_pem", r.csr_pem}, {"key", r.key}};
                       }}));

  STORCRYPT_TRY(
      d.add({"cert.install",
             "install the externally signed endpoint certificate (PEM or DER-as-PEM, chain allowed)",
             {{"pem", ParamType::kString, true, "the signed certificate, optionally followed by its chain"}},
             true,
             [svc](const Params& p) -> Result<json> {
               std::string pem = p.str("pem");
               STORCRYPT_ASSIGN_OR_RETURN(auto r, svc->with([&](certs::CertStore& s) { return s.install(pem); }));
               json chain = json::array();
               for (const auto& c : r.chain) chain.push_back(cert_info_json(c));
               return json{{"endpoint", cert_info_json(r.endpoint)}, {"chain", chain}, {"warnings", r.warnings}};
             }}));

  STORCRYPT_TRY(d.add({"cert.show",
                       "show the endpoint certificate, its chain, the internal root CA and expiry",
                       {},
                       false,
                       [svc](const Params&) -> Result<json> {
                         STORCRYPT_ASSIGN_OR_RETURN(auto st, svc->with([](certs::CertStore& s) { return s.show(); }));
                         json chain = json::array();
                         for (const auto& c : st.chain) chain.push_back(cert_info_json(c));
                         json out{{"mode", certs::endpoint_mode_name(st.mode)},
                                  {"csr_pending", st.csr_pending},
                                  {"chain", chain},
                                  {"endpoint", st.cert ? cert_info_json(*st.cert) : json(nullptr)},
                                  {"root", st.root ? cert_info_json(*st.root) : json(nullptr)},
                                  {"expiry", st.expiry ? json(certs::expiry_class_name(*st.expiry)) : json(nullptr)},
                                  {"missing_issuer", st.missing_issuer ? json(*st.missing_issuer) : json(nullptr)}};
                         return out;
                       }}));

  STORCRYPT_TRY(d.add({"cert.export-root",
                       "the internal root CA certificate (PEM) for partners' truststores",
                       {},
                       false,
                       [svc](const Params&) -> Result<json> {
                         STORCRYPT_ASSIGN_OR_RETURN(auto pem,
                                                    svc->with([](certs::CertStore& s) { return s.export_root_pem(); }));
                         return json{{"pem", pem}};
                       }}));
  return ok_status();
}

}  // namespace storcrypt::controller
