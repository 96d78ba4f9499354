// API methods of the `truststore` noun: truststore.add, truststore.list,
// truststore.remove.
#include <nlohmann/json.hpp>

#include "cert_service.h"
#include "storcrypt/controller/nouns.h"

namespace storcrypt::controller {

using nlohmann::json;

namespace {

json entry_json(const certs::TrustEntry& e) {
  json uses = json::array();
  for (auto u : e.uses) uses.push_back(certs::trust_use_name(u));
  json j = cert_info_json(e.cert);
  j["uses"] = uses;
  return j;
}

json entries_json(const std::vector<certs::TrustEntry>& v) {
  json arr = json::array();
  for (const auto& e : v) arr.push_back(entry_json(e));
  return arr;
}

}  // namespace

Status register_truststore_methods(Dispatcher& d, Context& ctx) {
  STORCRYPT_ASSIGN_OR_RETURN(auto svc, cert_service(ctx));
  STORCRYPT_TRY(d.add({"truststore.add",
                       "trust a remote authority: a PEM bundle with the full chain up to the root",
                       {{"pem", ParamType::kString, true, "PEM bundle: intermediate(s) and root, any order"},
                        {"uses", ParamType::kString, true, "comma-separated: ipsec, restapi, kmip"}},
                       true,
                       [svc](const Params& p) -> Result<json> {
                         STORCRYPT_ASSIGN_OR_RETURN(auto uses, certs::parse_trust_uses(p.str("uses")));
                         std::string pem = p.str("pem");
                         STORCRYPT_ASSIGN_OR_RETURN(
                             auto added, svc->with([&](certs::CertStore& s) { return s.trust_add(pem, uses); }));
                         svc->trust_changed();
                         return json{{"entries", entries_json(added)}};
                       }}));
  STORCRYPT_TRY(d.add({"truststore.list",
                       "list trusted authorities and what they are trusted for",
                       {},
                       false,
                       [svc](const Params&) -> Result<json> {
                         STORCRYPT_ASSIGN_OR_RETURN(auto all,
                                                    svc->with([](certs::CertStore& s) { return s.trust_list(); }));
                         return json{{"entries", entries_json(all)}};
                       }}));
  STORCRYPT_TRY(d.add({"truststore.remove",
                       "stop trusting an authority",
                       {{"fingerprint", ParamType::kString, true,
                         "SHA-256 fingerprint from `storcrypt truststore list` (a unique prefix of 8+ hex digits)"}},
                       true,
                       [svc](const Params& p) -> Result<json> {
                         std::string fp = p.str("fingerprint");
                         STORCRYPT_TRY(svc->with([&](certs::CertStore& s) { return s.trust_remove(fp); }));
                         svc->trust_changed();
                         return json{{"removed", fp}};
                       }}));
  return ok_status();
}

}  // namespace storcrypt::controller
