// API methods of the KMIP nouns `kmip-client`, `keyserver` and `keyprovider`
// (issue 17), named as the Element API names them: CreatePublicPrivateKeyPair,
// GetClientCertificateSignRequest, {Create,Modify,Delete,Get,Test}KeyServerKmip,
// ListKeyServersKmip, {Create,Delete,Get,Test}KeyProviderKmip,
// ListKeyProvidersKmip, AddKeyServerToProviderKmip,
// RemoveKeyServerFromProviderKmip. The rules live in kmip_service.h; this file
// only translates JSON.
#include <nlohmann/json.hpp>

#include "nouns/kmip_service.h"
#include "nouns/kmip_watch.h"
#include "storcrypt/controller/nouns.h"

namespace storcrypt::controller {

using nlohmann::json;

namespace {

Result<KmipService*> kmip_service(KmipState& st) {
  if (st.load_error) return Error(*st.load_error);
  if (!st.svc)
    return Error(ErrorCode::kUnavailable, "KMIP key management is not available (no state database)",
                 "run storcryptd with a state directory", "xKeyProviderUnavailable");
  return st.svc.get();
}

json with_warnings(json j, const std::vector<std::string>& warnings) {
  j["warnings"] = warnings;
  return j;
}

Result<std::vector<std::string>> hostnames_param(const Params& p) {
  std::vector<std::string> out;
  const json& a = p.json()["kmipKeyServerHostnames"];
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (!a[i].is_string())
      return Error(ErrorCode::kInvalidInput,
                   "kmipKeyServerHostnames entry " + std::to_string(i + 1) + " is not a string",
                   "give an array of host names, primary first", "xInvalidParameter");
    out.push_back(a[i].get<std::string>());
  }
  return out;
}

Result<int> port_param(const Params& p) {
  int64_t port = p.integer("kmipKeyServerPort", 5696);
  if (port < 1 || port > 65535)
    return Error(ErrorCode::kInvalidInput, "kmipKeyServerPort must be 1 to 65535",
                 "leave it out for the KMIP port 5696", "xInvalidParameter");
  return static_cast<int>(port);
}

/// keyServerName, or its alias kmipKeyServerName.
std::optional<std::string> name_param(const Params& p) {
  if (p.has("keyServerName")) return p.str("keyServerName");
  if (p.has("kmipKeyServerName")) return p.str("kmipKeyServerName");
  return std::nullopt;
}

}  // namespace

Status register_kmip_methods(Dispatcher& d, Context& ctx) {
  auto st = kmip_state_for(ctx);
  start_kmip_fault_watcher(ctx);  // KMIP faults (kmip_watch.h)
  ctx.add_doctor_check([st] {
    std::vector<CheckResult> out;
    if (st->load_error) out.push_back({"kmip", "state", "error", st->load_error->message(), st->load_error->fix()});
    return out;
  });

  ServiceMethods<KmipService> m(d, [st] { return kmip_service(*st); });
  const ParamSpec server_id{"keyServerID", ParamType::kInteger, true, "key server id"};
  const ParamSpec provider_id{"keyProviderID", ParamType::kInteger, true, "key provider id"};

  // ---- client identity
  STORCRYPT_TRY(m.add("CreatePublicPrivateKeyPair",
                      "create this node's KMIP client key pair (replaces the old one; refused while in use)",
                      {{"commonName", ParamType::kString, true, "subject CN"},
                       {"organization", ParamType::kString, false, "subject O"},
                       {"organizationalUnit", ParamType::kString, false, "subject OU"},
                       {"locality", ParamType::kString, false, "subject L"},
                       {"state", ParamType::kString, false, "subject ST"},
                       {"country", ParamType::kString, false, "subject C (two letters)"},
                       {"emailAddress", ParamType::kString, false, "subject emailAddress"}},
                      true, [](KmipService& s, const Params& p) -> Result<json> {
                        certs::SubjectFields f;
                        f.common_name = p.str("commonName");
                        f.organization = p.str("organization");
                        f.unit = p.str("organizationalUnit");
                        f.locality = p.str("locality");
                        f.state = p.str("state");
                        f.country = p.str("country");
                        f.email = p.str("emailAddress");
                        return s.create_key_pair(f);
                      }));
  STORCRYPT_TRY(m.add("GetClientCertificateSignRequest", "the PEM CSR of this node's KMIP client key pair", {}, false,
                      [](KmipService& s, const Params&) -> Result<json> {
                        STORCRYPT_ASSIGN_OR_RETURN(std::string pem, s.csr_pem());
                        return json{{"clientCertificateSignRequest", pem}};
                      }));

  // ---- key servers
  STORCRYPT_TRY(m.add(
      "CreateKeyServerKmip", "define a KMIP key server (host names in priority order, CA, our client certificate)",
      {{"keyServerName", ParamType::kString, false, "name (required; alias kmipKeyServerName)"},
       {"kmipKeyServerName", ParamType::kString, false, "alias of keyServerName"},
       {"kmipKeyServerHostnames", ParamType::kArray, true, "host names or addresses, primary first"},
       {"kmipKeyServerPort", ParamType::kInteger, false, "port (default 5696)"},
       {"kmipCaCertificate", ParamType::kString, true, "PEM of the CA(s) that signed the server's certificate"},
       {"kmipClientCertificate", ParamType::kString, true, "PEM client certificate signed from our CSR"}},
      true, [](KmipService& s, const Params& p) -> Result<json> {
        KmipKeyServer ks;
        auto name = name_param(p);
        if (!name)
          return Error(ErrorCode::kInvalidInput, "keyServerName is missing", "give the key server a name, e.g. kms1",
                       "xInvalidParameter");
        ks.name = *name;
        STORCRYPT_ASSIGN_OR_RETURN(ks.hostnames, hostnames_param(p));
        STORCRYPT_ASSIGN_OR_RETURN(ks.port, port_param(p));
        ks.ca_pem = certs::normalize_pem_text(p.str("kmipCaCertificate"));
        ks.client_cert_pem = certs::normalize_pem_text(p.str("kmipClientCertificate"));
        std::vector<std::string> warnings;
        STORCRYPT_ASSIGN_OR_RETURN(auto created, s.create_server(std::move(ks), &warnings));
        return with_warnings(json{{"keyServerID", created.id}, {"kmipKeyServer", s.server_json(created)}}, warnings);
      }));
  STORCRYPT_TRY(m.add("ModifyKeyServerKmip", "change a key server (e.g. renew its certificates in place)",
                      {server_id,
                       {"keyServerName", ParamType::kString, false, "new name"},
                       {"kmipKeyServerName", ParamType::kString, false, "alias of keyServerName"},
                       {"kmipKeyServerHostnames", ParamType::kArray, false, "host names, primary first"},
                       {"kmipKeyServerPort", ParamType::kInteger, false, "port"},
                       {"kmipCaCertificate", ParamType::kString, false, "PEM CA certificate(s)"},
                       {"kmipClientCertificate", ParamType::kString, false, "PEM client certificate"}},
                      true, [](KmipService& s, const Params& p) -> Result<json> {
                        STORCRYPT_ASSIGN_OR_RETURN(int64_t id, p.id("keyServerID"));
                        KmipKeyServerChanges c;
                        c.name = name_param(p);
                        if (p.has("kmipKeyServerHostnames")) {
                          STORCRYPT_ASSIGN_OR_RETURN(auto h, hostnames_param(p));
                          c.hostnames = std::move(h);
                        }
                        if (p.has("kmipKeyServerPort")) {
                          STORCRYPT_ASSIGN_OR_RETURN(int port, port_param(p));
                          c.port = port;
                        }
                        if (p.has("kmipCaCertificate"))
                          c.ca_pem = certs::normalize_pem_text(p.str("kmipCaCertificate"));
                        if (p.has("kmipClientCertificate"))
                          c.client_cert_pem = certs::normalize_pem_text(p.str("kmipClientCertificate"));
                        std::vector<std::string> warnings;
                        STORCRYPT_ASSIGN_OR_RETURN(auto ks, s.modify_server(id, c, &warnings));
                        return with_warnings(json{{"kmipKeyServer", s.server_json(ks)}}, warnings);
                      }));
  STORCRYPT_TRY(m.add("DeleteKeyServerKmip", "delete a key server (refused while assigned to a provider)", {server_id},
                      true, [](KmipService& s, const Params& p) -> Result<json> {
                        STORCRYPT_ASSIGN_OR_RETURN(int64_t id, p.id("keyServerID"));
                        STORCRYPT_TRY(s.delete_server(id));
                        return json{{"keyServerID", id}, {"deleted", true}};
                      }));
  STORCRYPT_TRY(m.add("GetKeyServerKmip", "one key server", {server_id}, false,
                      [](KmipService& s, const Params& p) -> Result<json> {
                        STORCRYPT_ASSIGN_OR_RETURN(int64_t id, p.id("keyServerID"));
                        STORCRYPT_ASSIGN_OR_RETURN(auto ks, s.server(id));
                        return json{{"kmipKeyServer", s.server_json(ks)}};
                      }));
  STORCRYPT_TRY(m.add("ListKeyServersKmip", "the key servers (optionally of one provider)",
                      {{"keyProviderID", ParamType::kInteger, false, "only the servers of this provider"}}, false,
                      [](KmipService& s, const Params& p) -> Result<json> {
                        std::optional<int64_t> prov;
                        if (p.has("keyProviderID")) {
                          STORCRYPT_ASSIGN_OR_RETURN(int64_t id, p.id("keyProviderID"));
                          STORCRYPT_TRY(s.provider(id));
                          prov = id;
                        }
                        STORCRYPT_ASSIGN_OR_RETURN(auto list, s.servers(prov));
                        json arr = json::array();
                        for (const auto& ks : list) arr.push_back(s.server_json(ks));
                        return json{{"kmipKeyServers", arr}};
                      }));
  // The tests do network I/O: the service's lock is held only to take a snapshot.
  STORCRYPT_TRY(d.add(
      {"TestKeyServerKmip",
       "TLS handshake and a harmless KMIP request (Discover Versions, Query) to every host name",
       {server_id},
       false,
       [st](const Params& p) -> Result<json> {
         STORCRYPT_ASSIGN_OR_RETURN(KmipService * s, kmip_service(*st));
         STORCRYPT_ASSIGN_OR_RETURN(int64_t id, p.id("keyServerID"));
         KmipKeyServer ks;
         {
           std::lock_guard lock(s->mu);
           STORCRYPT_ASSIGN_OR_RETURN(ks, s->server(id));
         }
         STORCRYPT_ASSIGN_OR_RETURN(json r, s->probe_servers({ks}));
         return json{{"keyServerID", id}, {"keyServerName", ks.name}, {"ok", true}, {"hostnames", r[0]["hostnames"]}};
       }}));

  // ---- key providers
  STORCRYPT_TRY(m.add("CreateKeyProviderKmip", "create a key provider (a group of key servers)",
                      {{"keyProviderName", ParamType::kString, true, "name"}}, true,
                      [](KmipService& s, const Params& p) -> Result<json> {
                        STORCRYPT_ASSIGN_OR_RETURN(auto kp, s.create_provider(p.str("keyProviderName")));
                        return json{{"keyProviderID", kp.id}, {"kmipKeyProvider", s.provider_json(kp)}};
                      }));
  STORCRYPT_TRY(m.add("DeleteKeyProviderKmip", "delete an inactive key provider (its servers become unassigned)",
                      {provider_id}, true, [](KmipService& s, const Params& p) -> Result<json> {
                        STORCRYPT_ASSIGN_OR_RETURN(int64_t id, p.id("keyProviderID"));
                        STORCRYPT_TRY(s.delete_provider(id));
                        return json{{"keyProviderID", id}, {"deleted", true}};
                      }));
  STORCRYPT_TRY(m.add("GetKeyProviderKmip", "one key provider", {provider_id}, false,
                      [](KmipService& s, const Params& p) -> Result<json> {
                        STORCRYPT_ASSIGN_OR_RETURN(int64_t id, p.id("keyProviderID"));
                        STORCRYPT_ASSIGN_OR_RETURN(auto kp, s.provider(id));
                        return json{{"kmipKeyProvider", s.provider_json(kp)}};
                      }));
  STORCRYPT_TRY(
      m.add("ListKeyProvidersKmip", "the key providers", {}, false, [](KmipService& s, const Params&) -> Result<json> {
        STORCRYPT_ASSIGN_OR_RETURN(auto list, s.providers());
        json arr = json::array();
        for (const auto& kp : list) arr.push_back(s.provider_json(kp));
        return json{{"kmipKeyProviders", arr}};
      }));
  STORCRYPT_TRY(m.add("AddKeyServerToProviderKmip", "assign a key server to a provider (idempotent)",
                      {provider_id, server_id}, true, [](KmipService& s, const Params& p) -> Result<json> {
                        STORCRYPT_ASSIGN_OR_RETURN(int64_t pid, p.id("keyProviderID"));
                        STORCRYPT_ASSIGN_OR_RETURN(int64_t sid, p.id("keyServerID"));
                        STORCRYPT_ASSIGN_OR_RETURN(auto kp, s.add_server_to_provider(pid, sid));
                        return json{{"kmipKeyProvider", s.provider_json(kp)}};
                      }));
  STORCRYPT_TRY(m.add("RemoveKeyServerFromProviderKmip",
                      "unassign a key server from its provider (refused for the last one of an active provider)",
                      {provider_id, server_id}, true, [](KmipService& s, const Params& p) -> Result<json> {
                        STORCRYPT_ASSIGN_OR_RETURN(int64_t pid, p.id("keyProviderID"));
                        STORCRYPT_ASSIGN_OR_RETURN(int64_t sid, p.id("keyServerID"));
                        STORCRYPT_ASSIGN_OR_RETURN(auto kp, s.remove_server_from_provider(pid, sid));
                        return json{{"kmipKeyProvider", s.provider_json(kp)}};
                      }));
  STORCRYPT_TRY(d.add({"TestKeyProviderKmip",
                       "test every key server of a provider (TestKeyServerKmip on each)",
                       {provider_id},
                       false,
                       [st](const Params& p) -> Result<json> {
                         STORCRYPT_ASSIGN_OR_RETURN(KmipService * s, kmip_service(*st));
                         STORCRYPT_ASSIGN_OR_RETURN(int64_t id, p.id("keyProviderID"));
                         std::vector<KmipKeyServer> list;
                         {
                           std::lock_guard lock(s->mu);
                           STORCRYPT_TRY(s->provider(id));
                           STORCRYPT_ASSIGN_OR_RETURN(list, s->servers(id));
                         }
                         if (list.empty())
                           return Error(ErrorCode::kInvalidInput,
                                        "key provider " + std::to_string(id) + " has no key servers",
                                        "add one with AddKeyServerToProviderKmip (storcrypt keyprovider add-server " +
                                            std::to_string(id) + " SERVER)",
                                        "xKeyProviderConfigurationError");
                         STORCRYPT_ASSIGN_OR_RETURN(json r, s->probe_servers(list));
                         return json{{"keyProviderID", id}, {"ok", true}, {"keyServers", r}};
                       }}));
  return ok_status();
}

}  // namespace storcrypt::controller
