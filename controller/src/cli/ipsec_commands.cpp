// `storcrypt policy ...`, `storcrypt key ...` and `storcrypt ipsec ...`.
//
// Key values and passphrases never travel in argv: they are read from a file
// or from standard input ("-"), first line, and sent over the API socket.
#include <CLI/CLI.hpp>
#include <iostream>

#include "storcrypt/common/files.h"
#include "storcrypt/common/secret.h"
#include "storcrypt/common/text.h"
#include "storcrypt/controller/client.h"
#include "storcrypt/controller/nouns.h"

namespace storcrypt::controller {

using nlohmann::json;

namespace {

/// CLI option -> policy-file field.
struct FieldOption {
  const char* option;
  const char* field;
  const char* help;
};
constexpr FieldOption kFieldOptions[] = {
    {"--name", "Name", "Policy name"},
    {"--direction", "Direction", "inbound or outbound"},
    {"--local", "LocalAddress", "ANY, an address, a prefix (a/n) or a range (a-b)"},
    {"--remote", "RemoteAddress", "ANY, an address, a prefix (a/n) or a range (a-b)"},
    {"--protocol", "Protocol", "ANY, TCP, UDP, ICMP, ICMPv6, SCTP or a number"},
    {"--local-port", "LocalPort", "ANY, a port, a range or a list (80,443,8000-8080)"},
    {"--remote-port", "RemotePort", "ANY, a port, a range or a list"},
    {"--icmp-type", "IcmpType", "ICMP/ICMPv6 types (ANY, a number, a range or a list)"},
    {"--icmp-code", "IcmpCode", "ICMP/ICMPv6 codes"},
    {"--action", "Action", "BYPASS, DISCARD or PROTECT"},
    {"--service", "Service", "AH, ESP-INTEGRITY, ESP-CONFIDENTIALITY or ESP-INTEGRITY-CONFIDENTIALITY"},
    {"--mode", "Mode", "transport or tunnel"},
    {"--spi", "SPI", "SPI (decimal or 0x hex, 256 or above)"},
    {"--local-endpoint", "LocalEndpoint", "tunnel mode: this node's tunnel address"},
    {"--remote-endpoint", "RemoteEndpoint", "tunnel mode: the partner's tunnel address"},
    {"--integrity-algorithm", "IntegrityAlgorithm", "HMAC-SHA1-96, HMAC-SHA-256-128 or HMAC-SHA-512-256"},
    {"--integrity-key", "IntegrityKey", "name of the integrity key (storcrypt key list)"},
    {"--encryption-algorithm", "EncryptionAlgorithm", "AES-CBC-128, AES-CBC-256 or AES-GCM-256"},
    {"--encryption-key", "EncryptionKey", "name of the encryption key"},
};

using FieldValues = std::map<std::string, std::string>;

void add_field_options(CLI::App* c, const std::shared_ptr<FieldValues>& v) {
  for (const auto& f : kFieldOptions) c->add_option(f.option, (*v)[f.field], f.help)->group("Policy fields");
}

json fields_json(const FieldValues& v, bool keep_empty) {
  json j = json::object();
  for (const auto& [k, val] : v)
    if (!val.empty() || keep_empty) j[k] = val;
  return j;
}

void print_policy(const json& r) {
  std::cout << "position:    " << plain(r["position"]) << "\n";
  std::cout << plain(r["text"]);
  if (r.contains("local_addresses")) {
    std::string a;
    for (const auto& x : r["local_addresses"]) a += (a.empty() ? "" : ", ") + plain(x);
    std::cout << "# LocalAddress ANY = this node's addresses: "
              << (!a.empty()                               ? a
                  : r.value("local_addresses_known", false) ? "none of this family (commit refuses the policy)"
                                                            : "unknown")
              << "\n";
  }
}

std::string field(const json& f, const char* k) { return f.contains(k) ? plain(f[k]) : "ANY"; }

void print_diagnostics(const json& r) {
  for (const auto& d : r["diagnostics"]) {
    std::string who = plain(d["policy"]).empty() ? "" : "policy '" + plain(d["policy"]) + "': ";
    std::cerr << "storcrypt: " << plain(d["severity"]) << ": " << who << plain(d["message"]) << "\n";
    if (!plain(d["fix"]).empty()) std::cerr << "  fix: " << plain(d["fix"]) << "\n";
  }
}

void print_applied(const json& r) {
  if (!r.contains("applied") || r["applied"].is_null()) return;
  const json& a = r["applied"];
  std::cout << "kernel: policies +" << plain(a["policies_added"]) << " ~" << plain(a["policies_updated"]) << " -"
            << plain(a["policies_deleted"]) << ", SAs +" << plain(a["sas_added"]) << " ~" << plain(a["sas_replaced"])
            << " -" << plain(a["sas_deleted"]) << "\n";
}

/// First line of a file or stdin ("-"), as a secret.
Result<std::string> read_secret_line(const std::string& path, const char* what) {
  STORCRYPT_ASSIGN_OR_RETURN(std::string text, read_input_file(path, 64 * 1024));
  auto nl = text.find('\n');
  std::string line = text.substr(0, nl);
  secure_wipe(text);
  if (!line.empty() && line.back() == '\r') line.pop_back();
  if (line.empty())
    return Error(ErrorCode::kInvalidInput, std::string(what) + " file " + printable(path) + " is empty",
                 std::string("put the ") + what + " on its first line");
  return line;
}

}  // namespace

void add_policy_commands(CLI::App& app, ClientContext& cc) {
  auto* noun = app.add_subcommand("policy", "The ordered IPsec policy list (edit, test, commit)");
  noun->require_subcommand(1);

  struct Opts {
    std::string name, new_name, file, direction, protocol, local, remote, local_ports, remote_ports;
    int position = 0;
    bool committed = false, swap = false, append = false;
  };
  auto o = std::make_shared<Opts>();

  auto* list = noun->add_subcommand("list", "List the policies in order (uncommitted edits by default)");
  list->add_flag("--committed", o->committed, "Show the committed list");
  list->callback([&cc, o] {
    cc.run("policy.list", {{"committed", o->committed}}, [](const json& r) {
      std::vector<std::vector<std::string>> rows;
      for (const auto& p : r["policies"]) {
        const json& f = p["fields"];
        std::string lp = f.contains("IcmpType") ? "type " + plain(f["IcmpType"]) : field(f, "LocalPort");
        std::string rp = f.contains("IcmpCode") ? "code " + plain(f["IcmpCode"]) : field(f, "RemotePort");
        std::string action = plain(f["Action"]);
        if (f.contains("SPI")) action += " spi " + plain(f["SPI"]);
        rows.push_back({plain(p["position"]), plain(p["name"]), plain(f["Direction"]), field(f, "LocalAddress"), lp,
                        field(f, "RemoteAddress"), rp, field(f, "Protocol"), action});
      }
      if (rows.empty())
        std::cout << "no policies (" << plain(r["list"]) << " list)\n";
      else
        print_table({"#", "NAME", "DIRECTION", "LOCAL", "LPORT", "REMOTE", "RPORT", "PROTOCOL", "ACTION"}, rows);
      if (r.value("uncommitted_changes", false))
        std::cerr << "storcrypt: note: the list has uncommitted changes ('storcrypt policy commit')\n";
    });
  });

  auto* show = noun->add_subcommand("show", "Show one policy as policy-file fields");
  show->add_option("name", o->name, "Policy name")->required();
  show->add_flag("--committed", o->committed, "From the committed list");
  show->callback([&cc, o] { cc.run("policy.show", {{"name", o->name}, {"committed", o->committed}}, print_policy); });

  auto add_values = std::make_shared<FieldValues>();
  auto* add = noun->add_subcommand("add", "Add a policy (at the end, or at --position)");
  add_field_options(add, add_values);
  add->add_option("--position", o->position, "Insert at this position (1 = first)");
  add->callback([&cc, o, add_values, add] {
    json p = {{"fields", fields_json(*add_values, false)}};
    if (add->count("--position") > 0) p["position"] = o->position;
    cc.run("policy.add", p, print_policy);
  });

  auto ins_values = std::make_shared<FieldValues>();
  auto* insert = noun->add_subcommand("insert", "Insert a policy at a position (1 = first)");
  insert->add_option("position", o->position, "Position")->required();
  add_field_options(insert, ins_values);
  insert->callback([&cc, o, ins_values] {
    cc.run("policy.add", {{"fields", fields_json(*ins_values, false)}, {"position", o->position}}, print_policy);
  });

  auto mod_values = std::make_shared<FieldValues>();
  auto* modify = noun->add_subcommand("modify", "Change fields of a policy (an empty value removes a field)");
  modify->add_option("name", o->name, "Policy name")->required();
  add_field_options(modify, mod_values);
  modify->callback([&cc, o, mod_values, modify] {
    json f = json::object();
    for (const auto& fo : kFieldOptions)
      if (modify->count(fo.option) > 0) f[fo.field] = (*mod_values)[fo.field];
    if (f.empty()) {
      cc.fail(Error(ErrorCode::kInvalidInput, "nothing to modify", "give the fields to change, e.g. --remote-port 22"));
      return;
    }
    cc.run("policy.modify", {{"name", o->name}, {"fields", f}}, print_policy);
  });

  auto* move = noun->add_subcommand("move", "Move a policy to a position (1 = first)");
  move->add_option("name", o->name, "Policy name")->required();
  move->add_option("position", o->position, "New position")->required();
  move->callback([&cc, o] { cc.run("policy.move", {{"name", o->name}, {"position", o->position}}, print_policy); });

  auto* clone = noun->add_subcommand("clone", "Copy a policy under a new name, directly after it");
  clone->add_option("name", o->name, "Policy to copy")->required();
  clone->add_option("new_name", o->new_name, "Name of the copy")->required();
  clone->callback([&cc, o] { cc.run("policy.clone", {{"name", o->name}, {"new_name", o->new_name}}, print_policy); });

  auto* remove = noun->add_subcommand("remove", "Remove a policy");
  remove->add_option("name", o->name, "Policy name")->required();
  remove->callback([&cc, o] {
    cc.run("policy.remove", {{"name", o->name}},
           [](const json& r) { std::cout << "removed " << plain(r["removed"]) << "\n"; });
  });

  auto* import_cmd = noun->add_subcommand("import", "Replace the uncommitted list with a policy file");
  local_path(import_cmd->add_option("file", o->file, "Policy file ('-' = stdin)"))->required();
  import_cmd->add_flag("--swap", o->swap, "The partner's list: swap local and remote, flip directions");
  import_cmd->add_flag("--append", o->append, "Append to the list instead of replacing it");
  import_cmd->callback([&cc, o] {
    auto text = read_input_file(o->file);
    if (!text.ok()) return cc.fail(text.error());
    cc.run("policy.import", {{"text", *text}, {"swap", o->swap}, {"append", o->append}}, [](const json& r) {
      std::cout << "imported " << plain(r["imported"]) << " policies (list now " << plain(r["policies"])
                << "; not committed)\n";
    });
  });

  auto* exp = noun->add_subcommand("export", "Write the list as a policy file (keys by name only)");
  local_path(exp->add_option("file", o->file, "Output file (default: stdout)"), LocalPath::kOutput);
  exp->add_flag("--committed", o->committed, "Export the committed list");
  exp->callback([&cc, o] {
    cc.run("policy.export", {{"committed", o->committed}}, [o, &cc](const json& r) {
      if (Status s = write_output_file(o->file, r["text"].get<std::string>()); !s.ok()) cc.fail(s.error());
    });
  });

  auto* test = noun->add_subcommand("test", "Which policies match some traffic (uncommitted list), per sub-range");
  test->add_option("--direction", o->direction, "inbound or outbound")->required();
  test->add_option("--protocol", o->protocol, "TCP, UDP, ICMP, ICMPv6, SCTP or a number")->required();
  test->add_option("--local", o->local, "Local address")->required();
  test->add_option("--remote", o->remote, "Remote address")->required();
  test->add_option("--local-port,--icmp-type", o->local_ports, "Local port range or ICMP type range (default all)");
  test->add_option("--remote-port,--icmp-code", o->remote_ports, "Remote port range or ICMP code range (default all)");
  test->callback([&cc, o] {
    json p = {{"direction", o->direction}, {"protocol", o->protocol}, {"local", o->local}, {"remote", o->remote}};
    if (!o->local_ports.empty()) p["local_ports"] = o->local_ports;
    if (!o->remote_ports.empty()) p["remote_ports"] = o->remote_ports;
    cc.run("policy.test", p, [](const json& r) { std::cout << plain(r["table"]); });
  });

  auto* validate = noun->add_subcommand("validate", "Check the uncommitted list as commit would");
  validate->callback([&cc] {
    cc.run("policy.validate", json::object(), [&cc](const json& r) {
      print_diagnostics(r);
      if (r.value("ok", false)) {
        std::cout << "the list is valid\n";
      } else {
        cc.exit_code = category_exit_code(ErrorCode::kInvalidInput);
      }
    });
  });

  auto* commit = noun->add_subcommand("commit", "Validate and commit the list (enforced at once if enabled)");
  commit->callback([&cc] {
    cc.run("policy.commit", json::object(), [](const json& r) {
      print_diagnostics(r);
      std::cout << "committed " << plain(r["policies"]) << " policies (" << plain(r["kernel_policies"])
                << " kernel policies, " << plain(r["sas"]) << " SAs)"
                << (r.value("enforced", false) ? "; enforced" : "; not enforced: 'storcrypt ipsec enable'") << "\n";
      if (r.contains("local_addresses"))
        for (const auto& [name, addrs] : r["local_addresses"].items()) {
          std::string a;
          for (const auto& x : addrs) a += (a.empty() ? "" : ", ") + plain(x);
          std::cout << "policy '" << name << "': LocalAddress ANY = this node's addresses " << a << "\n";
        }
      print_applied(r);
    });
  });

  auto* revert = noun->add_subcommand("revert", "Discard uncommitted edits");
  revert->callback([&cc] {
    cc.run("policy.revert", json::object(), [](const json& r) {
      std::cout << "back to the committed list (" << plain(r["policies"]) << " policies)\n";
    });
  });
}

void add_key_commands(CLI::App& app, ClientContext& cc) {
  auto* noun = app.add_subcommand("key", "Named keys for manual IPsec keying");
  noun->require_subcommand(1);
  struct Opts {
    std::string name, algorithm, hex_file, ascii_file, file, passphrase_file, kdf = "scrypt";
    std::vector<std::string> names;
    bool replace = false;
  };
  auto o = std::make_shared<Opts>();

  auto* list = noun->add_subcommand("list", "List keys (never their values)");
  list->callback([&cc] {
    cc.run("key.list", json::object(), [](const json& r) {
      std::vector<std::vector<std::string>> rows;
      for (const auto& k : r["keys"]) {
        std::string users;
        for (const auto& u : k["used_by"]) users += (users.empty() ? "" : ",") + plain(u);
        rows.push_back({plain(k["name"]), plain(k["algorithm"]), plain(k["bytes"]), users});
      }
      if (rows.empty())
        std::cout << "no keys\n";
      else
        print_table({"NAME", "ALGORITHM", "BYTES", "USED BY"}, rows);
    });
  });

  auto* create = noun->add_subcommand("create", "Create a key: random, or from a file holding hex or ASCII");
  create->add_option("name", o->name, "Key name")->required();
  create
      ->add_option("--algorithm", o->algorithm,
                   "HMAC-SHA1-96, HMAC-SHA-256-128, HMAC-SHA-512-256, AES-CBC-128, AES-CBC-256, AES-GCM-256")
      ->required();
  auto* hex = local_path(
      create->add_option("--hex-file", o->hex_file, "File ('-' = stdin) whose first line is the value in hex"));
  local_path(create->add_option("--ascii-file", o->ascii_file, "File ('-' = stdin) whose first line is the value as ASCII"))
      ->excludes(hex);
  create->add_flag("--replace", o->replace, "Replace an existing key of this name");
  create->callback([&cc, o] {
    json p = {{"name", o->name}, {"algorithm", o->algorithm}, {"replace", o->replace}};
    for (auto [path, key] : {std::pair{&o->hex_file, "hex"}, std::pair{&o->ascii_file, "ascii"}}) {
      if (path->empty()) continue;
      auto v = read_secret_line(*path, "key value");
      if (!v.ok()) return cc.fail(v.error());
      p[key] = std::move(*v);
      secure_wipe(*v);
    }
    cc.run("key.create", p, [](const json& r) {
      std::cout << "key " << plain(r["name"]) << ": " << plain(r["algorithm"]) << ", " << plain(r["bytes"])
                << " bytes\n";
      print_applied(r);
    });
    if (p.contains("hex")) secure_wipe(p["hex"].get_ref<std::string&>());
    if (p.contains("ascii")) secure_wipe(p["ascii"].get_ref<std::string&>());
  });

  auto* del = noun->add_subcommand("delete", "Delete a key no policy uses");
  del->add_option("name", o->name, "Key name")->required();
  del->callback([&cc, o] {
    cc.run("key.delete", {{"name", o->name}},
           [](const json& r) { std::cout << "deleted " << plain(r["deleted"]) << "\n"; });
  });

  auto* exp = noun->add_subcommand("export", "Encrypt keys under a passphrase into a file for the partner");
  local_path(exp->add_option("file", o->file, "Output file (written 0600; '-' = stdout)"), LocalPath::kOutput)->required();
  exp->add_option("--name", o->names, "Key to export (repeatable; default: all)");
  local_path(
      exp->add_option("--passphrase-file", o->passphrase_file, "File ('-' = stdin) whose first line is the passphrase"))
      ->required();
  exp->add_option("--kdf", o->kdf, "scrypt (default) or pbkdf2");
  exp->callback([&cc, o] {
    auto pass = read_secret_line(o->passphrase_file, "passphrase");
    if (!pass.ok()) return cc.fail(pass.error());
    json p = {{"passphrase", *pass}, {"kdf", o->kdf}};
    secure_wipe(*pass);
    if (!o->names.empty()) p["names"] = o->names;
    cc.run("key.export", p, [o, &cc](const json& r) {
      const std::string& text = r["file"].get_ref<const std::string&>();
      Status s = (o->file == "-") ? write_output_file("-", text) : write_file_atomic(o->file, text, 0600);
      if (!s.ok()) return cc.fail(s.error());
      if (o->file != "-") std::cout << plain(r["keys"]) << " key(s) written to " << o->file << "\n";
    });
    secure_wipe(p["passphrase"].get_ref<std::string&>());
  });

  auto* imp = noun->add_subcommand("import", "Import keys from a passphrase-protected key file");
  local_path(imp->add_option("file", o->file, "Key file ('-' = stdin)"))->required();
  local_path(
      imp->add_option("--passphrase-file", o->passphrase_file, "File ('-' = stdin) whose first line is the passphrase"))
      ->required();
  imp->add_flag("--replace", o->replace, "Replace keys of the same names");
  imp->callback([&cc, o] {
    if (o->file == "-" && o->passphrase_file == "-")
      return cc.fail(Error(ErrorCode::kInvalidInput, "the key file and the passphrase cannot both come from stdin",
                           "give the passphrase in a file (--passphrase-file FILE), or the key file by path"));
    auto text = read_input_file(o->file);
    if (!text.ok()) return cc.fail(text.error());
    auto pass = read_secret_line(o->passphrase_file, "passphrase");
    if (!pass.ok()) return cc.fail(pass.error());
    json p = {{"text", *text}, {"passphrase", *pass}, {"replace", o->replace}};
    secure_wipe(*pass);
    cc.run("key.import", p, [](const json& r) {
      std::string names;
      for (const auto& n : r["imported"]) names += (names.empty() ? "" : ", ") + plain(n);
      std::cout << "imported " << names << "\n";
      print_applied(r);
    });
    secure_wipe(p["passphrase"].get_ref<std::string&>());
  });
}

void add_ipsec_commands(CLI::App& app, ClientContext& cc) {
  auto* noun = app.add_subcommand("ipsec", "Enforcement of the committed policy list in the kernel");
  noun->require_subcommand(1);
  auto* enable = noun->add_subcommand("enable", "Enforce the committed list");
  enable->callback([&cc] {
    cc.run("ipsec.enable", json::object(), [](const json& r) {
      std::cout << "IPsec policies enforced\n";
      print_applied(r);
    });
  });
  auto* disable = noun->add_subcommand("disable", "Remove everything storcrypt installed (and nothing else)");
  disable->callback([&cc] {
    cc.run("ipsec.disable", json::object(), [](const json& r) {
      std::cout << "IPsec policies removed\n";
      print_applied(r);
    });
  });
  auto disp = std::make_shared<std::string>();
  auto* dflt = noun->add_subcommand("default", "Show or set the disposition of unmatched traffic");
  dflt->add_option("disposition", *disp, "IPv6Only, BYPASS, DENY or DENYALL");
  dflt->callback([&cc, disp] {
    json p = json::object();
    if (!disp->empty()) p["disposition"] = *disp;
    cc.run("ipsec.default", p, [](const json& r) {
      std::cout << "default disposition: " << plain(r["default"]) << "\n";
      print_applied(r);
    });
  });
  auto* status = noun->add_subcommand("status", "Enforced policies with counters and drops");
  status->callback([&cc] {
    cc.run("ipsec.status", json::object(), [](const json& r) {
      std::cout << "enforcement: " << (r.value("enabled", false) ? "enabled" : "disabled")
                << "   default: " << plain(r["default"]) << "   committed policies: " << plain(r["committed_policies"])
                << (r.value("uncommitted_changes", false) ? "   (uncommitted changes)" : "") << "\n";
      std::vector<std::vector<std::string>> rows;
      for (const auto& p : r["policies"]) {
        std::vector<std::string> row = {plain(p["priority"]), plain(p["name"]), plain(p["direction"]),
                                        plain(p["action"]), plain(p["kernel_policies"])};
        if (p.contains("sa")) {
          const json& s = p["sa"];
          row.insert(row.end(), {plain(s["id"]), plain(s["packets"]), plain(s["bytes"]), plain(s["integrity_failed"]),
                                 plain(s["replay_errors"])});
        } else {
          row.insert(row.end(), {"-", "-", "-", "-", "-"});
        }
        rows.push_back(row);
      }
      if (!rows.empty())
        print_table({"PRIORITY", "POLICY", "DIR", "ACTION", "SELECTORS", "SA", "PACKETS", "BYTES", "INTEGRITY FAILURES",
                     "REPLAY ERRORS"},
                    rows);
      // Drops the kernel counts per namespace (policy blocks, missing SAs, bad packets): the non-zero ones.
      std::string drops;
      if (r.contains("kernel_counters"))
        for (const auto& [k, v] : r["kernel_counters"].items())
          if (v.get<std::uint64_t>() != 0) drops += (drops.empty() ? "" : "  ") + k + "=" + plain(v);
      std::cout << "kernel drops/errors: " << (drops.empty() ? "none" : drops) << "\n";
    });
  });
}

}  // namespace storcrypt::controller
