// `storcrypt address ...`: named address selectors for the IPsec policy list.
#include <CLI/CLI.hpp>
#include <iostream>

#include "storcrypt/controller/client.h"
#include "storcrypt/controller/nouns.h"

namespace storcrypt::controller {

using nlohmann::json;

namespace {

std::string joined(const json& arr, const char* sep) {
  std::string s;
  for (const auto& x : arr) s += (s.empty() ? "" : sep) + plain(x);
  return s;
}

}  // namespace

void add_address_commands(CLI::App& app, ClientContext& cc) {
  auto* noun = app.add_subcommand(
      "address", "Named address selectors (e.g. PRODUCTION) for policies' LocalAddress/RemoteAddress");
  noun->require_subcommand(1);
  struct Opts {
    std::string name;
    std::vector<std::string> entries;
    bool committed = false;
  };
  auto o = std::make_shared<Opts>();

  auto* list = noun->add_subcommand("list", "List the named address selectors (uncommitted edits by default)");
  list->add_flag("--committed", o->committed, "Show the committed list's selectors");
  list->callback([&cc, o] {
    cc.run("address.list", {{"committed", o->committed}}, [](const json& r) {
      std::vector<std::vector<std::string>> rows;
      for (const auto& a : r["addresses"]) {
        std::string users = joined(a["used_by"], ",");
        rows.push_back({plain(a["name"]), joined(a["entries"], ", "), users.empty() ? "-" : users});
      }
      if (rows.empty())
        std::cout << "no address selectors (" << plain(r["list"]) << " list)\n";
      else
        print_table({"NAME", "ENTRIES", "USED BY"}, rows);
    });
  });

  auto* add = noun->add_subcommand("add", "Define a named address selector, or add entries to it");
  add->add_option("name", o->name, "Selector name (a letter, then letters, digits, '_' or '-')")->required();
  add->add_option("entries", o->entries, "Addresses, prefixes (a/n) or ranges (a-b)")->required();
  add->callback([&cc, o] {
    cc.run("address.add", {{"name", o->name}, {"entries", o->entries}}, [](const json& r) {
      std::cout << plain(r["name"]) << " = " << joined(r["entries"], ", ") << " (not committed)\n";
    });
  });

  auto* remove = noun->add_subcommand("remove", "Remove a named address selector no policy uses");
  remove->add_option("name", o->name, "Selector name")->required();
  remove->callback([&cc, o] {
    cc.run("address.remove", {{"name", o->name}},
           [](const json& r) { std::cout << "removed " << plain(r["removed"]) << " (not committed)\n"; });
  });
}

}  // namespace storcrypt::controller
