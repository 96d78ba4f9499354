// `storcrypt kmip-client create-keypair|csr`,
// `storcrypt keyserver create|modify|delete|show|list|test`,
// `storcrypt keyprovider create|delete|show|list|test|add-server|remove-server`
// over the Element API methods of kmip_methods.cpp. Certificate files are read
// by the CLI and sent as PEM text.
#include <CLI/CLI.hpp>
#include <iostream>

#include "storcrypt/controller/client.h"
#include "storcrypt/controller/nouns.h"

namespace storcrypt::controller {

using nlohmann::json;

namespace {

std::string join(const json& arr, const std::string& sep = ", ") {
  std::string out;
  for (const auto& v : arr) out += (out.empty() ? "" : sep) + plain(v);
  return out;
}

void print_warnings(const json& r) {
  for (const auto& w : r.value("warnings", json::array())) std::cerr << "storcrypt: warning: " << plain(w) << "\n";
}

void print_server(const json& s) {
  std::cout << "id:               " << plain(s["keyServerID"]) << "\n"
            << "name:             " << plain(s["keyServerName"]) << "\n"
            << "host names:       " << join(s["kmipKeyServerHostnames"]) << "\n"
            << "port:             " << plain(s["kmipKeyServerPort"]) << "\n"
            << "key provider:     " << (s["keyProviderID"].is_null() ? std::string("none") : plain(s["keyProviderID"]))
            << (s.value("kmipAssignedProviderIsActive", false) ? " (active)" : "") << "\n";
  for (const auto& c : s.value("kmipCaCertificateInfo", json::array()))
    std::cout << "CA certificate:   " << plain(c["subject"]) << " (until "
              << format_time(c.value("not_after", int64_t{0})) << ")\n";
  const json& cc = s["kmipClientCertificateInfo"];
  if (cc.is_object())
    std::cout << "client cert:      " << plain(cc["subject"]) << ", issuer " << plain(cc["issuer"]) << " (until "
              << format_time(cc.value("not_after", int64_t{0})) << ")\n";
}

void print_provider(const json& p) {
  std::cout << "id:           " << plain(p["keyProviderID"]) << "\n"
            << "name:         " << plain(p["keyProviderName"]) << "\n"
            << "active:       " << (p.value("keyProviderIsActive", false) ? "yes" : "no") << "\n"
            << "key servers:  " << (p["keyServerIDs"].empty() ? std::string("none") : join(p["keyServerIDs"])) << "\n";
}

void print_test(const json& servers) {
  for (const auto& s : servers)
    for (const auto& h : s["hostnames"])
      std::cout << "key server " << plain(s["keyServerID"]) << " (" << plain(s["keyServerName"]) << ") "
                << plain(h["hostname"]) << ": ok, KMIP " << plain(h["kmipVersion"]) << ", " << plain(h["tlsVersion"])
                << " " << plain(h["cipher"]) << "\n";
}

struct ServerOpts {
  std::string name, ca_file, client_file;
  std::vector<std::string> hostnames;
  int port = 0;
};

/// Read the certificate files into params; false (and cc.fail) on error.
bool add_cert_files(ClientContext& cc, const ServerOpts& o, json& p) {
  for (const auto& [file, key] :
       {std::pair{&o.ca_file, "kmipCaCertificate"}, std::pair{&o.client_file, "kmipClientCertificate"}}) {
    if (file->empty()) continue;
    auto pem = read_input_file(*file);
    if (!pem.ok()) {
      cc.fail(pem.error());
      return false;
    }
    p[key] = *pem;
  }
  return true;
}

void add_server_options(CLI::App* cmd, ServerOpts& o, bool required) {
  auto* name = cmd->add_option("--name", o.name, "Key server name");
  auto* host = cmd->add_option("--hostname", o.hostnames,
                               "Host name or IP address (repeatable, primary first; several only for one cluster)");
  auto* ca =
      local_path(cmd->add_option("--ca-cert", o.ca_file, "PEM file: the CA that signed the key server's certificate"));
  auto* cl = local_path(cmd->add_option("--client-cert", o.client_file,
                                        "PEM file: this node's client certificate, signed from `kmip-client csr`"));
  cmd->add_option("--port", o.port, "KMIP port (default 5696)")->check(CLI::Range(1, 65535));
  if (required) {
    name->required();
    host->required();
    ca->required();
    cl->required();
  }
}

}  // namespace

void add_kmip_commands(CLI::App& app, ClientContext& cc) {
  // ---- kmip-client
  auto* client = app.add_subcommand("kmip-client", "This node's KMIP client key pair and its CSR");
  client->require_subcommand(1);
  struct SubjectOpts {
    std::string cn, org, unit, locality, state, country, email;
  };
  auto so = std::make_shared<SubjectOpts>();
  auto* kp = client->add_subcommand("create-keypair",
                                    "Create the KMIP client key pair (replaces it; refused while a provider uses it)");
  kp->add_option("--cn,--common-name", so->cn, "Subject common name (e.g. the node's host name)")->required();
  kp->add_option("--org,--organization", so->org, "Organization");
  kp->add_option("--unit", so->unit, "Organizational unit");
  kp->add_option("--locality", so->locality, "City");
  kp->add_option("--state", so->state, "State or province");
  kp->add_option("--country", so->country, "Two-letter country code");
  kp->add_option("--email", so->email, "E-mail address");
  kp->callback([&cc, so] {
    json p{{"commonName", so->cn}};
    auto opt = [&](const char* k, const std::string& v) {
      if (!v.empty()) p[k] = v;
    };
    opt("organization", so->org);
    opt("organizationalUnit", so->unit);
    opt("locality", so->locality);
    opt("state", so->state);
    opt("country", so->country);
    opt("emailAddress", so->email);
    cc.run("CreatePublicPrivateKeyPair", p, [](const json& r) {
      std::cout
          << "created KMIP client key pair (" << plain(r["keyType"]) << ") for CN=" << plain(r["subject"]["commonName"])
          << "\nnext: storcrypt kmip-client csr --out client.csr, have it signed, then storcrypt keyserver create\n";
    });
  });
  auto csr_out = std::make_shared<std::string>();
  auto* csr = client->add_subcommand("csr", "Print the CSR (PEM) of the KMIP client key pair");
  local_path(csr->add_option("--out", *csr_out, "Write the CSR here (default: standard output)"), LocalPath::kOutput);
  csr->callback([&cc, csr_out] {
    cc.run("GetClientCertificateSignRequest", json::object(), [&cc, csr_out](const json& r) {
      Status st = write_output_file(*csr_out, r["clientCertificateSignRequest"].get<std::string>());
      if (!st.ok()) cc.fail(st.error());
    });
  });

  // ---- keyserver
  auto* ks = app.add_subcommand("keyserver", "KMIP key servers");
  ks->require_subcommand(1);
  auto co = std::make_shared<ServerOpts>();
  auto* create = ks->add_subcommand("create", "Define a KMIP key server");
  add_server_options(create, *co, true);
  create->callback([&cc, co] {
    json p{{"keyServerName", co->name}, {"kmipKeyServerHostnames", co->hostnames}};
    if (co->port > 0) p["kmipKeyServerPort"] = co->port;
    if (!add_cert_files(cc, *co, p)) return;
    cc.run("CreateKeyServerKmip", p, [](const json& r) {
      print_warnings(r);
      print_server(r["kmipKeyServer"]);
    });
  });
  auto sid = std::make_shared<int64_t>(0);
  auto mo = std::make_shared<ServerOpts>();
  auto* modify = ks->add_subcommand("modify", "Change a key server (e.g. renew its certificates)");
  modify->add_option("id", *sid, "Key server id (from `storcrypt keyserver list`)")->required();
  add_server_options(modify, *mo, false);
  modify->callback([&cc, sid, mo] {
    json p{{"keyServerID", *sid}};
    if (!mo->name.empty()) p["keyServerName"] = mo->name;
    if (!mo->hostnames.empty()) p["kmipKeyServerHostnames"] = mo->hostnames;
    if (mo->port > 0) p["kmipKeyServerPort"] = mo->port;
    if (!add_cert_files(cc, *mo, p)) return;
    cc.run("ModifyKeyServerKmip", p, [](const json& r) {
      print_warnings(r);
      print_server(r["kmipKeyServer"]);
    });
  });
  auto* del = ks->add_subcommand("delete", "Delete a key server (not while assigned to a provider)");
  del->add_option("id", *sid, "Key server id")->required();
  del->callback([&cc, sid] {
    cc.run("DeleteKeyServerKmip", {{"keyServerID", *sid}},
           [](const json& r) { std::cout << "deleted key server " << plain(r["keyServerID"]) << "\n"; });
  });
  auto* show = ks->add_subcommand("show", "Show a key server");
  show->add_option("id", *sid, "Key server id")->required();
  show->callback([&cc, sid] {
    cc.run("GetKeyServerKmip", {{"keyServerID", *sid}}, [](const json& r) { print_server(r["kmipKeyServer"]); });
  });
  auto list_provider = std::make_shared<int64_t>(0);
  auto* list = ks->add_subcommand("list", "List the key servers");
  list->add_option("--provider", *list_provider, "Only the key servers of this key provider id");
  list->callback([&cc, list_provider] {
    json p = json::object();
    if (*list_provider > 0) p["keyProviderID"] = *list_provider;
    cc.run("ListKeyServersKmip", p, [](const json& r) {
      std::vector<std::vector<std::string>> rows;
      for (const auto& s : r["kmipKeyServers"])
        rows.push_back({plain(s["keyServerID"]), plain(s["keyServerName"]), join(s["kmipKeyServerHostnames"], ","),
                        plain(s["kmipKeyServerPort"]), s["keyProviderID"].is_null() ? "-" : plain(s["keyProviderID"])});
      if (rows.empty()) {
        std::cout << "no key servers\n";
        return;
      }
      print_table({"ID", "NAME", "HOSTNAMES", "PORT", "PROVIDER"}, rows);
    });
  });
  auto* test = ks->add_subcommand("test", "Test a key server: TLS handshake and a harmless KMIP request");
  test->add_option("id", *sid, "Key server id")->required();
  test->callback([&cc, sid] {
    cc.run("TestKeyServerKmip", {{"keyServerID", *sid}}, [](const json& r) { print_test(json::array({r})); });
  });

  // ---- keyprovider
  auto* kpv = app.add_subcommand("keyprovider", "KMIP key providers (groups of key servers)");
  kpv->require_subcommand(1);
  auto pname = std::make_shared<std::string>();
  auto* pcreate = kpv->add_subcommand("create", "Create a key provider");
  pcreate->add_option("--name", *pname, "Key provider name")->required();
  pcreate->callback([&cc, pname] {
    cc.run("CreateKeyProviderKmip", {{"keyProviderName", *pname}},
           [](const json& r) { print_provider(r["kmipKeyProvider"]); });
  });
  auto pid = std::make_shared<int64_t>(0);
  auto* pdel = kpv->add_subcommand("delete", "Delete a key provider (not while active)");
  pdel->add_option("id", *pid, "Key provider id")->required();
  pdel->callback([&cc, pid] {
    cc.run("DeleteKeyProviderKmip", {{"keyProviderID", *pid}},
           [](const json& r) { std::cout << "deleted key provider " << plain(r["keyProviderID"]) << "\n"; });
  });
  auto* pshow = kpv->add_subcommand("show", "Show a key provider");
  pshow->add_option("id", *pid, "Key provider id")->required();
  pshow->callback([&cc, pid] {
    cc.run("GetKeyProviderKmip", {{"keyProviderID", *pid}},
           [](const json& r) { print_provider(r["kmipKeyProvider"]); });
  });
  kpv->add_subcommand("list", "List the key providers")->callback([&cc] {
    cc.run("ListKeyProvidersKmip", json::object(), [](const json& r) {
      std::vector<std::vector<std::string>> rows;
      for (const auto& p : r["kmipKeyProviders"])
        rows.push_back({plain(p["keyProviderID"]), plain(p["keyProviderName"]),
                        p.value("keyProviderIsActive", false) ? "yes" : "no", join(p["keyServerIDs"], ",")});
      if (rows.empty()) {
        std::cout << "no key providers\n";
        return;
      }
      print_table({"ID", "NAME", "ACTIVE", "KEY SERVERS"}, rows);
    });
  });
  auto* ptest = kpv->add_subcommand("test", "Test every key server of a key provider");
  ptest->add_option("id", *pid, "Key provider id")->required();
  ptest->callback([&cc, pid] {
    cc.run("TestKeyProviderKmip", {{"keyProviderID", *pid}}, [](const json& r) { print_test(r["keyServers"]); });
  });
  auto psid = std::make_shared<int64_t>(0);
  auto* padd = kpv->add_subcommand("add-server", "Assign a key server to a key provider");
  padd->add_option("id", *pid, "Key provider id")->required();
  padd->add_option("server", *psid, "Key server id")->required();
  padd->callback([&cc, pid, psid] {
    cc.run("AddKeyServerToProviderKmip", {{"keyProviderID", *pid}, {"keyServerID", *psid}},
           [](const json& r) { print_provider(r["kmipKeyProvider"]); });
  });
  auto* prem = kpv->add_subcommand("remove-server", "Unassign a key server from its key provider");
  prem->add_option("id", *pid, "Key provider id")->required();
  prem->add_option("server", *psid, "Key server id")->required();
  prem->callback([&cc, pid, psid] {
    cc.run("RemoveKeyServerFromProviderKmip", {{"keyProviderID", *pid}, {"keyServerID", *psid}},
           [](const json& r) { print_provider(r["kmipKeyProvider"]); });
  });
}

}  // namespace storcrypt::controller
