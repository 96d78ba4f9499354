// KMIP key servers, key providers and the client key pair (see kmip_service.h).
#include "nouns/kmip_service.h"

#include <stdlib.h>
#include <sys/stat.h>

#include <algorithm>
#include <ctime>
#include <system_error>

#include "nouns/cert_service.h"
#include "storcrypt/common/files.h"
#include "storcrypt/kmip/client.h"

namespace storcrypt::controller {

using nlohmann::json;

namespace {

constexpr const char* kCsrFix =
    "create the key pair with CreatePublicPrivateKeyPair (storcrypt kmip-client create-keypair)";

Error invalid(const std::string& field, const std::string& what, const std::string& fix) {
  return Error(ErrorCode::kInvalidInput, field + " " + what, fix, "xInvalidParameter");
}

Error server_not_found(int64_t id) {
  return Error(ErrorCode::kNotFound, "no key server with keyServerID " + std::to_string(id),
               "list the key servers with ListKeyServersKmip (storcrypt keyserver list)", "xKeyServerIDDoesNotExist");
}

Error provider_not_found(int64_t id) {
  return Error(ErrorCode::kNotFound, "no key provider with keyProviderID " + std::to_string(id),
               "list the key providers with ListKeyProvidersKmip (storcrypt keyprovider list)",
               "xKeyProviderIDDoesNotExist");
}

bool valid_host(const std::string& h) {
  if (h.empty() || h.size() > 253) return false;
  for (char c : h) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '-' ||
              c == ':' || c == '_';
    if (!ok) return false;
  }
  return h.front() != '-' && h.front() != '.';
}

json subject_json(const certs::SubjectFields& s) {
  return json{{"commonName", s.common_name},
              {"organization", s.organization},
              {"organizationalUnit", s.unit},
              {"locality", s.locality},
              {"state", s.state},
              {"country", s.country},
              {"emailAddress", s.email}};
}

certs::SubjectFields subject_from_json(const json& j) {
  certs::SubjectFields s;
  s.common_name = j.value("commonName", "");
  s.organization = j.value("organization", "");
  s.unit = j.value("organizationalUnit", "");
  s.locality = j.value("locality", "");
  s.state = j.value("state", "");
  s.country = j.value("country", "");
  s.email = j.value("emailAddress", "");
  return s;
}

KmipKeyServer server_from_row(const DbRow& r) {
  KmipKeyServer s;
  s.id = r.integer(0);
  s.name = r.text(1);
  auto hosts = json::parse(r.text(2), nullptr, false);
  if (hosts.is_array())
    for (const auto& h : hosts)
      if (h.is_string()) s.hostnames.push_back(h.get<std::string>());
  s.port = static_cast<int>(r.integer(3));
  s.ca_pem = r.text(4);
  s.client_cert_pem = r.text(5);
  if (!r.is_null(6)) s.provider_id = r.integer(6);
  return s;
}

constexpr const char* kServerColumns = "id, name, hostnames, port, ca_pem, client_cert_pem, provider_id";

/// A private temporary directory with the PEM files of one probe.
struct ProbeDir {
  std::filesystem::path path;
  ~ProbeDir() {
    std::error_code ec;
    if (!path.empty()) std::filesystem::remove_all(path, ec);
  }
};

// A private temporary directory `<dir>/<prefix>-XXXXXX` holding the key
// server's CA certificate (ca.pem) and our client certificate (client.pem),
// as the KMIP client loads them from files; removed when `pd` goes.
Status write_server_pems(const std::filesystem::path& dir, const KmipKeyServer& s, const char* prefix,
                         ProbeDir& pd) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  std::string tmpl = (dir / (std::string(prefix) + "-XXXXXX")).string();
  if (::mkdtemp(tmpl.data()) == nullptr)
    return Error(ErrorCode::kInternal, "creating a temporary directory in " + dir.string() + " failed",
                 "check the state directory", "xInternalError");
  pd.path = tmpl;
  STORCRYPT_TRY(write_file_atomic(pd.path / "ca.pem", s.ca_pem, 0600));
  return write_file_atomic(pd.path / "client.pem", s.client_cert_pem, 0600);
}

}  // namespace

Error kmip_server_error(const Error& e, const std::string& where) {
  std::string name = "xKeyServerFailed";
  ErrorCode code = e.code();
  std::string fix;
  switch (kmip::failure_category(e)) {
    case kmip::FailureCategory::kUnavailable:
      name = "xKeyServerUnavailable";
      code = ErrorCode::kUnavailable;
      fix = "check that the key server runs and that this node reaches its host name and port";
      break;
    case kmip::FailureCategory::kTlsError:
      name = "xKeyServerSslError";
      code = ErrorCode::kTls;
      fix =
          "check kmipCaCertificate (the CA that signed the key server's certificate) and that the host name is "
          "in the server's certificate; renew it with ModifyKeyServerKmip (storcrypt keyserver modify --ca-cert)";
      break;
    case kmip::FailureCategory::kAuthenticationFailed:
      name = "xKeyServerAuthFailed";
      code = ErrorCode::kPermission;
      fix =
          "the key server does not accept this node's identity: the client certificate needs extended key usage "
          "clientAuth and must be authorized on the key server; install a new one with ModifyKeyServerKmip";
      break;
    case kmip::FailureCategory::kInvalidCredentials:
      name = "xKeyServerInvalidAuth";
      code = ErrorCode::kTls;
      fix =
          "the key server refused the client certificate: have the CSR (storcrypt kmip-client csr) signed by a CA "
          "the key server trusts, with extended key usage clientAuth, and install it with ModifyKeyServerKmip";
      break;
    case kmip::FailureCategory::kServerError:
    case kmip::FailureCategory::kProtocolError:
    case kmip::FailureCategory::kOther:
      name = "xKeyServerFailed";
      fix = e.fix().empty() ? "see the key server's log" : e.fix();
      break;
  }
  return Error(code, where + ": " + e.message(), fix, name);
}

std::shared_ptr<KmipState> kmip_state_for(Context& ctx) {
  if (auto s = ctx.service<KmipState>()) return s;
  auto st = std::make_shared<KmipState>();
  if (ctx.db) {
    KmipProber prober = real_kmip_prober();
    if (auto f = ctx.service<KmipProber>()) prober = *f;
    auto svc = std::make_shared<KmipService>(ctx.db, ctx.config.state_directory + "/kmip", std::move(prober));
    if (Status s = svc->load(); !s.ok())
      st->load_error = s.error();
    else
      st->svc = svc;
    ctx.set_service(svc);
  }
  ctx.set_service(st);
  return st;
}

KmipProber real_kmip_prober(std::chrono::milliseconds connect_timeout, std::chrono::milliseconds io_timeout) {
  KmipProber p;
  p.probe = [connect_timeout, io_timeout](const KmipProbeTarget& t) -> Result<json> {
    kmip::ClientConfig c;
    c.servers.push_back(kmip::ServerEndpoint{t.hostname, t.port, {}});
    c.tls.ca_file = t.ca_file;
    c.tls.cert_file = t.cert_file;
    c.tls.key_file = t.key_file;
    c.connect_timeout = connect_timeout;
    c.io_timeout = io_timeout;
    c.session_resumption = false;
    STORCRYPT_ASSIGN_OR_RETURN(auto client, kmip::Client::create(std::move(c)));
    STORCRYPT_ASSIGN_OR_RETURN(kmip::ProtocolVersion v, client->negotiated_version());
    STORCRYPT_ASSIGN_OR_RETURN(kmip::QueryResult q, client->query({kmip::QueryFunction::kOperations}));
    kmip::ClientStats st = client->stats();
    return json{{"kmipVersion", v.to_string()},
                {"operations", q.operations.size()},
                {"vendor", q.vendor_identification},
                {"tlsVersion", st.last_tls_version},
                {"cipher", st.last_cipher}};
  };
  return p;
}

Status KmipService::migrate(Db& db) {
  return db.migrate(
      "kmip",
      {{1, "KMIP client, key servers and key providers",
        "CREATE TABLE kmip_client(id INTEGER PRIMARY KEY CHECK (id = 1), subject TEXT NOT NULL, "
        "key_type TEXT NOT NULL, created_at INTEGER NOT NULL);"
        "CREATE TABLE kmip_key_providers(id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT NOT NULL UNIQUE, "
        "active INTEGER NOT NULL DEFAULT 0);"
        "CREATE TABLE kmip_key_servers(id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT NOT NULL UNIQUE, "
        "hostnames TEXT NOT NULL, port INTEGER NOT NULL, ca_pem TEXT NOT NULL, client_cert_pem TEXT NOT NULL, "
        "provider_id INTEGER REFERENCES kmip_key_providers(id), provider_position INTEGER NOT NULL DEFAULT 0);"}});
}

// ---------------------------------------------------------------- key pair

bool KmipService::has_key_pair() const {
  auto rows = db_->query("SELECT 1 FROM kmip_client WHERE id = 1");
  return rows.ok() && !rows->empty() && std::filesystem::exists(key_path());
}

Result<json> KmipService::create_key_pair(const certs::SubjectFields& subject) {
  if (Status s = certs::validate_subject(subject); !s.ok()) {
    return Error(ErrorCode::kInvalidInput, s.error().message(),
                 "commonName is required; country is two letters (e.g. DE); see storcrypt(8), kmip-client",
                 "xInvalidParameter");
  }
  STORCRYPT_ASSIGN_OR_RETURN(auto assigned,
                             db_->query("SELECT name FROM kmip_key_servers WHERE provider_id IS NOT NULL ORDER BY id"));
  if (!assigned.empty()) {
    return Error(ErrorCode::kConflict,
                 "the KMIP client key pair is in use: key server '" + assigned[0].text(0) +
                     "' is assigned to a key provider with a certificate of this pair",
                 "remove the key servers from their providers (RemoveKeyServerFromProviderKmip) before replacing "
                 "the key pair, or renew only the certificate (ModifyKeyServerKmip)",
                 "xKeyPairInUse");
  }
  STORCRYPT_ASSIGN_OR_RETURN(certs::PrivateKey key, certs::PrivateKey::generate(certs::KeyType::kEcP384));
  std::error_code ec;
  std::filesystem::create_directories(dir_, ec);
  ::chmod(dir_.c_str(), 0700);
  STORCRYPT_TRY(certs::write_private_key_file(key_path(), key));
  STORCRYPT_TRY(
      db_->exec("INSERT INTO kmip_client(id, subject, key_type, created_at) VALUES(1, ?1, ?2, ?3) "
                "ON CONFLICT(id) DO UPDATE SET subject = excluded.subject, key_type = excluded.key_type, "
                "created_at = excluded.created_at",
                {subject_json(subject).dump(), key.describe(), static_cast<int64_t>(std::time(nullptr))}));
  return json{{"keyType", key.describe()}, {"subject", subject_json(subject)}};
}

Result<std::string> KmipService::csr_pem() const {
  STORCRYPT_ASSIGN_OR_RETURN(auto rows, db_->query("SELECT subject FROM kmip_client WHERE id = 1"));
  if (rows.empty() || !std::filesystem::exists(key_path()))
    return Error(ErrorCode::kNotFound, "this node has no KMIP client key pair", kCsrFix, "xSslKeysDoNotExist");
  auto subject = json::parse(rows[0].text(0), nullptr, false);
  auto failed = [](const Error& e) {
    return Error(ErrorCode::kInternal, "generating the CSR failed: " + e.message(),
                 "the key pair file is unreadable or damaged: " + std::string(kCsrFix) +
                     " again (it replaces the pair), then have the new CSR signed",
                 "xCsrGenerationFailed");
  };
  auto key = certs::read_private_key_file(key_path());
  if (!key.ok()) return failed(key.error());
  auto pem = certs::make_csr_pem(*key, subject_from_json(subject), "clientAuth");
  if (!pem.ok()) return failed(pem.error());
  return *pem;
}

// ---------------------------------------------------------------- servers

Status KmipService::validate(const KmipKeyServer& s, std::vector<std::string>* warnings) const {
  if (s.name.empty() || s.name.size() > 64)
    return invalid("keyServerName", "must be 1 to 64 characters", "give the key server a short name, e.g. kms1");
  if (s.hostnames.empty())
    return invalid("kmipKeyServerHostnames", "is empty",
                   "give at least one host name or IP address of the key server (several only when they are one "
                   "cluster), primary first");
  for (std::size_t i = 0; i < s.hostnames.size(); ++i) {
    const auto& h = s.hostnames[i];
    if (!valid_host(h))
      return invalid("kmipKeyServerHostnames",
                     "entry " + std::to_string(i + 1) + " ('" + h + "') is not a host name or IP address",
                     "give DNS names or IP addresses (letters, digits, '.', '-', ':')");
    if (std::count(s.hostnames.begin(), s.hostnames.end(), h) > 1)
      return invalid("kmipKeyServerHostnames", "names '" + h + "' twice", "list each host name once");
  }
  if (s.port < 1 || s.port > 65535)
    return invalid("kmipKeyServerPort", "must be 1 to 65535", "leave it out for the KMIP port 5696");
  auto cas = certs::parse_certificates(s.ca_pem);
  if (!cas.ok() || cas->empty())
    return invalid("kmipCaCertificate", "is not a PEM certificate" + (cas.ok() ? "" : ": " + cas.error().message()),
                   "give the PEM of the CA that signed the key server's certificate");
  auto cert = certs::parse_certificate(s.client_cert_pem);
  if (!cert.ok())
    return invalid("kmipClientCertificate", "is not one PEM certificate: " + cert.error().message(),
                   "give the certificate your CA issued for the CSR of GetClientCertificateSignRequest");
  if (!has_key_pair())
    return Error(ErrorCode::kNotFound, "this node has no KMIP client key pair to match kmipClientCertificate", kCsrFix,
                 "xSslKeysDoNotExist");
  auto key = certs::read_private_key_file(key_path());
  if (!key.ok())
    return Error(ErrorCode::kInternal, "reading the KMIP client key pair failed: " + key.error().message(), kCsrFix,
                 "xSslKeysDoNotExist");
  if (!cert->matches(*key))
    return invalid("kmipClientCertificate", "was not issued for this node's KMIP client key pair",
                   "have the CSR of GetClientCertificateSignRequest (storcrypt kmip-client csr) signed and give that "
                   "certificate; a new key pair needs a new certificate");
  certs::CertInfo info = cert->info();
  if (info.is_ca)
    return invalid("kmipClientCertificate", "is a CA certificate",
                   "give the end-entity certificate issued for this node's CSR");
  if (warnings &&
      std::find(info.ext_key_usage.begin(), info.ext_key_usage.end(), "clientAuth") == info.ext_key_usage.end())
    warnings->push_back(
        "kmipClientCertificate has no extended key usage clientAuth: KMIP servers such as PyKMIP "
        "refuse it (TestKeyServerKmip shows xKeyServerAuthFailed)");
  return ok_status();
}

Result<KmipKeyServer> KmipService::create_server(KmipKeyServer s, std::vector<std::string>* warnings) {
  STORCRYPT_TRY(validate(s, warnings));
  STORCRYPT_ASSIGN_OR_RETURN(auto same, db_->query("SELECT id FROM kmip_key_servers WHERE name = ?1", {s.name}));
  if (!same.empty())
    return Error(ErrorCode::kConflict,
                 "a key server named '" + s.name + "' exists (keyServerID " + std::to_string(same[0].integer(0)) + ")",
                 "choose another keyServerName or modify that key server", "xKeyServerNameExists");
  int64_t id = 0;
  STORCRYPT_TRY(db_->transaction([&]() -> Status {
    STORCRYPT_TRY(db_->exec(
        "INSERT INTO kmip_key_servers(name, hostnames, port, ca_pem, client_cert_pem) VALUES(?1, ?2, ?3, ?4, ?5)",
        {s.name, json(s.hostnames).dump(), static_cast<int64_t>(s.port), s.ca_pem, s.client_cert_pem}));
    id = db_->last_insert_id();
    return ok_status();
  }));
  return server(id);
}

Result<KmipKeyServer> KmipService::modify_server(int64_t id, const KmipKeyServerChanges& c,
                                                 std::vector<std::string>* warnings) {
  STORCRYPT_ASSIGN_OR_RETURN(KmipKeyServer s, server(id));
  if (c.name) s.name = *c.name;
  if (c.hostnames) s.hostnames = *c.hostnames;
  if (c.port) s.port = *c.port;
  if (c.ca_pem) s.ca_pem = *c.ca_pem;
  if (c.client_cert_pem) s.client_cert_pem = *c.client_cert_pem;
  STORCRYPT_TRY(validate(s, warnings));
  STORCRYPT_ASSIGN_OR_RETURN(auto same,
                             db_->query("SELECT id FROM kmip_key_servers WHERE name = ?1 AND id != ?2", {s.name, id}));
  if (!same.empty())
    return Error(ErrorCode::kConflict,
                 "a key server named '" + s.name + "' exists (keyServerID " + std::to_string(same[0].integer(0)) + ")",
                 "choose another keyServerName", "xKeyServerNameExists");
  STORCRYPT_TRY(
      db_->exec("UPDATE kmip_key_servers SET name = ?1, hostnames = ?2, port = ?3, ca_pem = ?4, client_cert_pem = ?5 "
                "WHERE id = ?6",
                {s.name, json(s.hostnames).dump(), static_cast<int64_t>(s.port), s.ca_pem, s.client_cert_pem, id}));
  return server(id);
}

Status KmipService::delete_server(int64_t id) {
  STORCRYPT_ASSIGN_OR_RETURN(KmipKeyServer s, server(id));
  if (s.provider_id)
    return Error(ErrorCode::kConflict,
                 "key server " + std::to_string(id) + " ('" + s.name + "') is assigned to key provider " +
                     std::to_string(*s.provider_id),
                 "remove it from the provider first: RemoveKeyServerFromProviderKmip (storcrypt keyprovider "
                 "remove-server " +
                     std::to_string(*s.provider_id) + " " + std::to_string(id) + ")",
                 "xKeyServerHasProviderAssigned");
  return db_->exec("DELETE FROM kmip_key_servers WHERE id = ?1", {id});
}

Result<KmipKeyServer> KmipService::server(int64_t id) const {
  STORCRYPT_ASSIGN_OR_RETURN(
      auto rows, db_->query(std::string("SELECT ") + kServerColumns + " FROM kmip_key_servers WHERE id = ?1", {id}));
  if (rows.empty()) return server_not_found(id);
  return server_from_row(rows[0]);
}

Result<std::vector<KmipKeyServer>> KmipService::servers(std::optional<int64_t> provider_id) const {
  std::vector<KmipKeyServer> out;
  if (provider_id) {
    STORCRYPT_ASSIGN_OR_RETURN(auto rows, db_->query(std::string("SELECT ") + kServerColumns +
                                                         " FROM kmip_key_servers WHERE provider_id = ?1 "
                                                         "ORDER BY provider_position, id",
                                                     {*provider_id}));
    for (const auto& r : rows) out.push_back(server_from_row(r));
  } else {
    STORCRYPT_ASSIGN_OR_RETURN(
        auto rows, db_->query(std::string("SELECT ") + kServerColumns + " FROM kmip_key_servers ORDER BY id"));
    for (const auto& r : rows) out.push_back(server_from_row(r));
  }
  return out;
}

// ---------------------------------------------------------------- providers

Result<KmipKeyProvider> KmipService::create_provider(const std::string& name) {
  if (name.empty() || name.size() > 64)
    return invalid("keyProviderName", "must be 1 to 64 characters", "give the key provider a short name, e.g. kmip");
  STORCRYPT_ASSIGN_OR_RETURN(auto same, db_->query("SELECT id FROM kmip_key_providers WHERE name = ?1", {name}));
  if (!same.empty())
    return Error(
        ErrorCode::kConflict,
        "a key provider named '" + name + "' exists (keyProviderID " + std::to_string(same[0].integer(0)) + ")",
        "choose another keyProviderName", "xKeyProviderNameExists");
  int64_t id = 0;
  STORCRYPT_TRY(db_->transaction([&]() -> Status {
    STORCRYPT_TRY(db_->exec("INSERT INTO kmip_key_providers(name) VALUES(?1)", {name}));
    id = db_->last_insert_id();
    return ok_status();
  }));
  return provider(id);
}

Result<bool> KmipService::provider_active(int64_t id) const {
  STORCRYPT_ASSIGN_OR_RETURN(auto rows, db_->query("SELECT active FROM kmip_key_providers WHERE id = ?1", {id}));
  if (rows.empty()) return provider_not_found(id);
  return rows[0].integer(0) != 0;
}

Status KmipService::delete_provider(int64_t id) {
  STORCRYPT_ASSIGN_OR_RETURN(bool active, provider_active(id));
  if (active)
    return Error(ErrorCode::kConflict, "key provider " + std::to_string(id) + " is active: it supplies keys in use",
                 "disable encryption at rest with this provider first (DisableEncryptionAtRest)", "xKeyProviderActive");
  STORCRYPT_ASSIGN_OR_RETURN(int64_t keyed, volumes_keyed_from(id));
  if (keyed > 0)
    return Error(ErrorCode::kConflict,
                 "key provider " + std::to_string(id) + " keeps the keys of " + std::to_string(keyed) + " volume(s)",
                 "crypto-erase those volumes first (storcrypt volume list shows their provider)", "xKeyProviderActive");
  return db_->transaction([&]() -> Status {
    STORCRYPT_TRY(
        db_->exec("UPDATE kmip_key_servers SET provider_id = NULL, provider_position = 0 "
                  "WHERE provider_id = ?1",
                  {id}));
    return db_->exec("DELETE FROM kmip_key_providers WHERE id = ?1", {id});
  });
}

Result<KmipKeyProvider> KmipService::provider(int64_t id) const {
  STORCRYPT_ASSIGN_OR_RETURN(auto rows,
                             db_->query("SELECT id, name, active FROM kmip_key_providers WHERE id = ?1", {id}));
  if (rows.empty()) return provider_not_found(id);
  KmipKeyProvider p;
  p.id = rows[0].integer(0);
  p.name = rows[0].text(1);
  p.active = rows[0].integer(2) != 0;
  STORCRYPT_ASSIGN_OR_RETURN(auto srv, db_->query("SELECT id FROM kmip_key_servers WHERE provider_id = ?1 "
                                                  "ORDER BY provider_position, id",
                                                  {id}));
  for (const auto& r : srv) p.server_ids.push_back(r.integer(0));
  return p;
}

Result<std::vector<KmipKeyProvider>> KmipService::providers() const {
  STORCRYPT_ASSIGN_OR_RETURN(auto rows, db_->query("SELECT id FROM kmip_key_providers ORDER BY id"));
  std::vector<KmipKeyProvider> out;
  for (const auto& r : rows) {
    STORCRYPT_ASSIGN_OR_RETURN(auto p, provider(r.integer(0)));
    out.push_back(std::move(p));
  }
  return out;
}

Result<KmipKeyProvider> KmipService::add_server_to_provider(int64_t provider_id, int64_t server_id) {
  STORCRYPT_TRY(provider_active(provider_id));  // exists
  STORCRYPT_ASSIGN_OR_RETURN(KmipKeyServer s, server(server_id));
  if (s.provider_id && *s.provider_id == provider_id) return provider(provider_id);
  if (s.provider_id)
    return Error(ErrorCode::kConflict,
                 "key server " + std::to_string(server_id) + " ('" + s.name + "') is assigned to key provider " +
                     std::to_string(*s.provider_id),
                 "a key server belongs to one provider: remove it from provider " + std::to_string(*s.provider_id) +
                     " first (RemoveKeyServerFromProviderKmip)",
                 "xKeyServerHasProviderAssigned");
  STORCRYPT_TRY(db_->exec(
      "UPDATE kmip_key_servers SET provider_id = ?1, provider_position = "
      "(SELECT COALESCE(MAX(provider_position), 0) + 1 FROM kmip_key_servers WHERE provider_id = ?1) WHERE id = ?2",
      {provider_id, server_id}));
  return provider(provider_id);
}

Result<KmipKeyProvider> KmipService::remove_server_from_provider(int64_t provider_id, int64_t server_id) {
  STORCRYPT_ASSIGN_OR_RETURN(KmipKeyProvider p, provider(provider_id));
  STORCRYPT_ASSIGN_OR_RETURN(KmipKeyServer s, server(server_id));
  if (!s.provider_id || *s.provider_id != provider_id)
    return Error(
        ErrorCode::kInvalidInput,
        "key server " + std::to_string(server_id) + " is not assigned to key provider " + std::to_string(provider_id),
        "see the provider's keyServerIDs (storcrypt keyprovider show " + std::to_string(provider_id) + ")",
        "xKeyServerNotAssignedToProvider");
  if (p.active && p.server_ids.size() == 1)
    return Error(ErrorCode::kConflict,
                 "key server " + std::to_string(server_id) + " is the last key server of active key provider " +
                     std::to_string(provider_id),
                 "add another key server to the provider first (AddKeyServerToProviderKmip)",
                 "xKeyServerLastForActiveProvider");
  STORCRYPT_TRY(
      db_->exec("UPDATE kmip_key_servers SET provider_id = NULL, provider_position = 0 WHERE id = ?1", {server_id}));
  return provider(provider_id);
}

Status KmipService::set_provider_active(int64_t id, bool active) {
  STORCRYPT_TRY(provider_active(id));
  return db_->exec("UPDATE kmip_key_providers SET active = ?1 WHERE id = ?2", {static_cast<int64_t>(active), id});
}

// ---------------------------------------------------------------- keys

Result<std::vector<KmipKeyServer>> KmipService::at_rest_candidate(int64_t id) const {
  auto p = provider(id);
  if (!p.ok())
    return Error(ErrorCode::kNotFound, "no online key provider with keyProviderID " + std::to_string(id),
                 "list the key providers with ListKeyProvidersKmip (storcrypt keyprovider list)",
                 "xNoOnlineKeyProviderWithThatID");
  STORCRYPT_ASSIGN_OR_RETURN(auto active, active_provider());
  if (active && active->id != id)
    return Error(
        ErrorCode::kConflict,
        "key provider " + std::to_string(active->id) + " ('" + active->name + "') is the active at-rest key provider",
        "disable encryption at rest first (DisableEncryptionAtRest); one provider is active at a time",
        "xKeyProviderActive");
  STORCRYPT_ASSIGN_OR_RETURN(auto list, servers(id));
  if (list.empty())
    return Error(
        ErrorCode::kUnavailable, "key provider " + std::to_string(id) + " has no key servers",
        "add one with AddKeyServerToProviderKmip (storcrypt keyprovider add-server " + std::to_string(id) + " SERVER)",
        "xKeyProviderUnavailable");
  return list;
}

Result<int64_t> KmipService::volumes_keyed_from(int64_t id) const {
  auto rows = db_->query("SELECT COUNT(*) FROM dm_volumes WHERE provider_kind = 'kmip' AND provider_id = ?1",
                         {std::to_string(id)});
  if (!rows.ok()) {
    // No volume registry in this database (no at-rest module): no volumes.
    auto t = db_->query("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'dm_volumes'");
    if (t.ok() && t->empty()) return int64_t{0};
    return std::move(rows).error();
  }
  return (*rows)[0].integer(0);
}

Result<std::optional<KmipKeyProvider>> KmipService::active_provider() const {
  STORCRYPT_ASSIGN_OR_RETURN(auto rows, db_->query("SELECT id FROM kmip_key_providers WHERE active != 0 ORDER BY id"));
  if (rows.empty()) return std::optional<KmipKeyProvider>();
  STORCRYPT_ASSIGN_OR_RETURN(auto p, provider(rows[0].integer(0)));
  return std::optional<KmipKeyProvider>(std::move(p));
}

Result<std::string> KmipService::provider_fingerprint(int64_t id) const {
  STORCRYPT_ASSIGN_OR_RETURN(auto list, servers(id));
  json j = json::array();
  for (const auto& s : list) j.push_back(json{s.id, s.hostnames, s.port, s.ca_pem, s.client_cert_pem});
  std::error_code ec;
  auto t = std::filesystem::last_write_time(key_path(), ec);
  j.push_back(ec ? 0 : static_cast<int64_t>(t.time_since_epoch().count()));
  return j.dump();
}

Result<std::shared_ptr<keys::KmipKeyProvider>> KmipService::make_key_provider(int64_t id,
                                                                              const std::string& system_id) const {
  STORCRYPT_TRY(provider(id));  // exists
  STORCRYPT_ASSIGN_OR_RETURN(auto list, servers(id));
  std::vector<keys::KmipServerHandle> handles;
  for (const auto& s : list) {
    // The client loads the PEM files when it is created: a private
    // temporary directory is enough.
    ProbeDir pd;
    STORCRYPT_TRY(write_server_pems(dir_, s, "client", pd));
    kmip::ClientConfig c;
    for (const auto& h : s.hostnames)
      c.servers.push_back(kmip::ServerEndpoint{h, static_cast<std::uint16_t>(s.port), {}});
    c.tls.ca_file = (pd.path / "ca.pem").string();
    c.tls.cert_file = (pd.path / "client.pem").string();
    c.tls.key_file = key_path().string();
    c.connect_timeout = std::chrono::milliseconds(5000);
    c.io_timeout = std::chrono::milliseconds(15000);
    std::string label = "key server " + std::to_string(s.id) + " ('" + s.name + "')";
    auto client = kmip::Client::create(std::move(c));
    if (!client.ok()) return kmip_server_error(client.error(), label);
    handles.push_back({label, keys::make_kmip_client_ops(std::move(client).value())});
  }
  keys::KmipProviderConfig cfg;
  cfg.provider_id = std::to_string(id);
  cfg.name_prefix = system_id;
  cfg.map_error = [](const Error& e, const std::string& where) { return kmip_server_error(e, where); };
  return std::make_shared<keys::KmipKeyProvider>(std::move(cfg), std::move(handles));
}

// ---------------------------------------------------------------- tests

Result<json> KmipService::probe_servers(const std::vector<KmipKeyServer>& servers) const {
  json results = json::array();
  for (const auto& s : servers) {
    ProbeDir pd;
    STORCRYPT_TRY(write_server_pems(dir_, s, "probe", pd));
    json hosts = json::array();
    for (const auto& h : s.hostnames) {
      KmipProbeTarget t{h, static_cast<std::uint16_t>(s.port), (pd.path / "ca.pem").string(),
                        (pd.path / "client.pem").string(), key_path().string()};
      auto r = prober_.probe(t);
      std::string where =
          "key server " + std::to_string(s.id) + " ('" + s.name + "') at " + h + ":" + std::to_string(s.port);
      if (!r.ok()) return kmip_server_error(r.error(), where);
      json hj = *r;
      hj["hostname"] = h;
      hosts.push_back(hj);
    }
    results.push_back(json{{"keyServerID", s.id}, {"keyServerName", s.name}, {"hostnames", hosts}});
  }
  return results;
}

json KmipService::server_json(const KmipKeyServer& s) const {
  json j{{"keyServerID", s.id},
         {"keyServerName", s.name},
         {"kmipKeyServerHostnames", s.hostnames},
         {"kmipKeyServerPort", s.port},
         {"kmipCaCertificate", s.ca_pem},
         {"kmipClientCertificate", s.client_cert_pem},
         {"keyProviderID", s.provider_id ? json(*s.provider_id) : json(nullptr)},
         {"kmipAssignedProviderIsActive", false}};
  if (s.provider_id) {
    auto a = provider_active(*s.provider_id);
    j["kmipAssignedProviderIsActive"] = a.ok() && *a;
  }
  json cas = json::array();
  if (auto c = certs::parse_certificates(s.ca_pem); c.ok())
    for (const auto& x : *c) cas.push_back(cert_info_json(x.info()));
  j["kmipCaCertificateInfo"] = cas;
  if (auto c = certs::parse_certificate(s.client_cert_pem); c.ok())
    j["kmipClientCertificateInfo"] = cert_info_json(c->info());
  else
    j["kmipClientCertificateInfo"] = nullptr;
  return j;
}

json KmipService::provider_json(const KmipKeyProvider& p) const {
  return json{{"keyProviderID", p.id},
              {"keyProviderName", p.name},
              {"keyProviderIsActive", p.active},
              {"keyServerIDs", p.server_ids}};
}

}  // namespace storcrypt::controller
