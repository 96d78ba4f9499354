// `storcrypt truststore add|list|remove`.
#include <CLI/CLI.hpp>
#include <iostream>

#include "storcrypt/controller/client.h"
#include "storcrypt/controller/nouns.h"

namespace storcrypt::controller {

using nlohmann::json;

namespace {
void print_entries(const json& r) {
  std::vector<std::vector<std::string>> rows;
  for (const auto& e : r["entries"]) {
    std::string uses;
    for (const auto& u : e["uses"]) uses += (uses.empty() ? "" : ",") + plain(u);
    rows.push_back(
        {plain(e["sha256_fingerprint"]), plain(e["subject"]), uses, format_time(e.value("not_after", int64_t{0}))});
  }
  if (rows.empty()) {
    std::cout << "no trusted authorities\n";
    return;
  }
  print_table({"SHA256", "SUBJECT", "USES", "NOT AFTER"}, rows);
}
}  // namespace

void add_truststore_commands(CLI::App& app, ClientContext& cc) {
  auto* noun = app.add_subcommand("truststore", "Remote authorities trusted for ipsec, restapi and kmip");
  noun->require_subcommand(1);

  auto file = std::make_shared<std::string>();
  auto uses = std::make_shared<std::string>();
  auto* add = noun->add_subcommand("add", "Trust a remote authority (PEM bundle with the full chain to the root)");
  local_path(add->add_option("file", *file, "PEM bundle: intermediate(s) and root, any order ('-' for stdin)"))
      ->required();
  add->add_option("--use", *uses, "What it is trusted for: comma-separated ipsec, restapi, kmip")->required();
  add->callback([&cc, file, uses] {
    auto pem = read_input_file(*file);
    if (!pem.ok()) {
      cc.fail(pem.error());
      return;
    }
    cc.run("truststore.add", {{"pem", *pem}, {"uses", *uses}}, print_entries);
  });

  noun->add_subcommand("list", "List trusted authorities")->callback([&cc] {
    cc.run("truststore.list", json::object(), print_entries);
  });

  auto fp = std::make_shared<std::string>();
  auto* rm = noun->add_subcommand("remove", "Stop trusting an authority");
  rm->add_option("fingerprint", *fp, "SHA-256 fingerprint (or a unique prefix of 8+ hex digits)")->required();
  rm->callback([&cc, fp] {
    cc.run("truststore.remove", {{"fingerprint", *fp}},
           [](const json& r) { std::cout << "removed " << plain(r["removed"]) << "\n"; });
  });
}

}  // namespace storcrypt::controller
