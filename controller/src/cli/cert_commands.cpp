// `storcrypt cert create|csr|install|show|export-root`.
#include <CLI/CLI.hpp>
#include <iostream>

#include "storcrypt/controller/client.h"
#include "storcrypt/controller/nouns.h"

namespace storcrypt::controller {

using nlohmann::json;

namespace {

struct SubjectOpts {
  std::string cn, country, state, locality, org, unit, email, key_type;
  std::vector<std::string> dns, ip;
  int days = 0;
};

void add_subject_options(CLI::App* cmd, SubjectOpts& o) {
  cmd->add_option("--cn,--common-name", o.cn, "Subject common name (e.g. the node's host name)")->required();
  cmd->add_option("--country", o.country, "Two-letter country code");
  cmd->add_option("--state", o.state, "State or province");
  cmd->add_option("--locality", o.locality, "City");
  cmd->add_option("--org,--organization", o.org, "Organization");
  cmd->add_option("--unit", o.unit, "Organizational unit");
  cmd->add_option("--email", o.email, "E-mail address");
  cmd->add_option("--dns", o.dns, "DNS subject alternative name (repeatable)");
  cmd->add_option("--ip", o.ip, "IP address subject alternative name (repeatable)");
  cmd->add_option("--key-type", o.key_type, "ec-p384 (default), rsa-3072 or rsa-4096");
}

json subject_params(const SubjectOpts& o) {
  json p{{"common_name", o.cn}};
  auto opt = [&](const char* k, const std::string& v) {
    if (!v.empty()) p[k] = v;
  };
  opt("country", o.country);
  opt("state", o.state);
  opt("locality", o.locality);
  opt("organization", o.org);
  opt("unit", o.unit);
  opt("email", o.email);
  opt("key_type", o.key_type);
  if (!o.dns.empty()) p["dns"] = o.dns;
  if (!o.ip.empty()) p["ip"] = o.ip;
  return p;
}

std::string days_left(const json& c) {
  int64_t na = c.value("not_after", int64_t{0});
  int64_t left = (na - static_cast<int64_t>(std::time(nullptr))) / 86400;
  return left >= 0 ? std::to_string(left) + " days left" : "expired";
}

void print_cert(const std::string& label, const json& c) {
  if (c.is_null()) return;
  std::cout << label << ":\n"
            << "  subject:     " << plain(c["subject"]) << "\n"
            << "  issuer:      " << plain(c["issuer"]) << "\n"
            << "  key:         " << plain(c["key"]) << "\n"
            << "  valid:       " << format_time(c.value("not_before", int64_t{0})) << " .. "
            << format_time(c.value("not_after", int64_t{0})) << " (" << days_left(c) << ")\n"
            << "  sha256:      " << plain(c["sha256_fingerprint"]) << "\n";
  std::string sans;
  for (const auto& d : c["dns_names"]) sans += (sans.empty() ? "" : ", ") + std::string("DNS:") + plain(d);
  for (const auto& i : c["ip_addresses"]) sans += (sans.empty() ? "" : ", ") + std::string("IP:") + plain(i);
  if (!sans.empty()) std::cout << "  alt names:   " << sans << "\n";
}

void print_warnings(const json& r) {
  for (const auto& w : r.value("warnings", json::array())) std::cerr << "storcrypt: warning: " << plain(w) << "\n";
}

}  // namespace

void add_cert_commands(CLI::App& app, ClientContext& cc) {
  auto* noun = app.add_subcommand("cert", "This system's endpoint certificate and internal root CA");
  noun->require_subcommand(1);

  auto co = std::make_shared<SubjectOpts>();
  auto self_signed = std::make_shared<bool>(false);
  auto* create = noun->add_subcommand("create",
                                      "Create a new key and endpoint certificate signed by this system's "
                                      "root CA (or self-signed)");
  add_subject_options(create, *co);
  create->add_option("--days", co->days, "Validity in days (default 825)")->check(CLI::Range(1, 36500));
  create->add_flag("--self-signed", *self_signed,
                   "Self-signed instead of signed by the internal root CA (not "
                   "recommended)");
  create->callback([&cc, co, self_signed] {
    json p = subject_params(*co);
    if (co->days > 0) p["days"] = co->days;
    p["mode"] = *self_signed ? "self-signed" : "internal";
    cc.run("cert.create", p, [](const json& r) {
      print_warnings(r);
      print_cert("endpoint certificate", r["endpoint"]);
      if (r.contains("root")) print_cert("root CA", r["root"]);
    });
  });

  auto so = std::make_shared<SubjectOpts>();
  auto csr_out = std::make_shared<std::string>();
  auto* csr = noun->add_subcommand("csr", "Create a new pending key and a CSR for an external CA");
  add_subject_options(csr, *so);
  local_path(csr->add_option("--out", *csr_out, "Write the CSR here (default: standard output)"), LocalPath::kOutput);
  csr->callback([&cc, so, csr_out] {
    cc.run("cert.csr", subject_params(*so), [&cc, csr_out](const json& r) {
      Status st = write_output_file(*csr_out, r["csr_pem"].get<std::string>());
      if (!st.ok()) cc.fail(st.error());
    });
  });

  auto in = std::make_shared<std::string>();
  auto* install = noun->add_subcommand("install", "Install the signed endpoint certificate (PEM, chain allowed)");
  local_path(install->add_option("file", *in, "PEM file with the certificate and optionally its chain ('-' for stdin)"))
      ->required();
  install->callback([&cc, in] {
    auto pem = read_input_file(*in);
    if (!pem.ok()) {
      cc.fail(pem.error());
      return;
    }
    cc.run("cert.install", {{"pem", *pem}}, [](const json& r) {
      print_warnings(r);
      print_cert("installed endpoint certificate", r["endpoint"]);
      for (const auto& c : r["chain"]) print_cert("chain", c);
    });
  });

  noun->add_subcommand("show", "Show the endpoint certificate, chain, internal root CA and expiry")->callback([&cc] {
    cc.run("cert.show", json::object(), [](const json& r) {
      std::cout << "mode:        " << plain(r["mode"]) << "\n"
                << "csr pending: " << (r.value("csr_pending", false) ? "yes" : "no") << "\n"
                << "expiry:      " << plain(r["expiry"]) << "\n";
      print_cert("endpoint certificate", r["endpoint"]);
      for (const auto& c : r["chain"]) print_cert("chain", c);
      if (r.contains("missing_issuer") && !r["missing_issuer"].is_null())
        std::cout << "chain:       incomplete, the issuer " << plain(r["missing_issuer"])
                  << " is neither installed nor trusted (partners will need it)\n";
      print_cert("root CA", r["root"]);
    });
  });

  auto root_out = std::make_shared<std::string>();
  auto* exp = noun->add_subcommand("export-root", "Print the internal root CA certificate (PEM) for partners");
  local_path(exp->add_option("--out", *root_out, "Write the PEM here (default: standard output)"), LocalPath::kOutput);
  exp->callback([&cc, root_out] {
    cc.run("cert.export-root", json::object(), [&cc, root_out](const json& r) {
      Status st = write_output_file(*root_out, r["pem"].get<std::string>());
      if (!st.ok()) cc.fail(st.error());
    });
  });
}

}  // namespace storcrypt::controller
