// RPC adapter of the `address` noun: named address selectors (e.g.
// PRODUCTION) that policies may use as LocalAddress/RemoteAddress. They are
// part of the policy list (edited in the uncommitted list, enforced by
// `policy commit`, stored, exported and imported with it). Translation only;
// the rules are policy::PolicyList's and IpsecService's.
#include <nlohmann/json.hpp>

#include "ipsec_rpc.h"
#include "storcrypt/controller/nouns.h"
#include "storcrypt/policy/model.h"

namespace storcrypt::controller {

using nlohmann::json;
namespace pol = storcrypt::policy;

namespace {

json addresses_json(const pol::PolicyList& l) {
  json arr = json::array();
  for (const auto& [name, entries] : l.addresses()) {
    json e = json::array();
    for (const auto& a : entries) e.push_back(a.to_string());
    arr.push_back(json{{"name", name}, {"entries", e}, {"used_by", l.users_of_addresses(name)}});
  }
  return arr;
}

}  // namespace

Status register_address_methods(Dispatcher& d, Context& ctx) {
  auto st = ipsec_state(ctx);
  ServiceMethods<IpsecService> methods(d, [st] { return ipsec_service(*st); });
  STORCRYPT_TRY(methods.add("address.list", "named address selectors (uncommitted, or the committed ones)",
                            {{"committed", ParamType::kBoolean, false, "the committed list's selectors"}}, false,
                            [](IpsecService& s, const Params& p) -> Result<json> {
                              const bool c = p.boolean("committed");
                              return json{{"list", c ? "committed" : "uncommitted"},
                                          {"addresses", addresses_json(c ? s.committed() : s.uncommitted())}};
                            }));
  STORCRYPT_TRY(methods.add(
      "address.add", "define a named address selector or add entries to it (uncommitted until 'policy commit')",
      {{"name", ParamType::kString, true, "selector name (a letter, then letters, digits, '_' or '-')"},
       {"entries", ParamType::kArray, true, "addresses, prefixes (a/n) and ranges (a-b)"}},
      true, [](IpsecService& s, const Params& p) -> Result<json> {
        std::vector<pol::AddressSpec> entries;
        for (const auto& e : p.json()["entries"]) {
          if (!e.is_string())
            return Error(ErrorCode::kInvalidInput, "parameter 'entries' must be an array of strings",
                         "pass e.g. [\"192.0.2.0/24\", \"198.51.100.7\"]");
          auto a = pol::AddressSpec::parse(e.get<std::string>());
          if (!a.ok()) return std::move(a).error().context("address selector '" + p.str("name") + "'");
          entries.push_back(std::move(a).value());
        }
        const std::string name = p.str("name");
        STORCRYPT_TRY(s.edit([&](pol::PolicyList& l) { return l.add_addresses(name, entries); }));
        json e = json::array();
        for (const auto& a : s.uncommitted().addresses().at(name)) e.push_back(a.to_string());
        return json{{"name", name}, {"entries", e}, {"used_by", s.uncommitted().users_of_addresses(name)}};
      }));
  STORCRYPT_TRY(methods.add("address.remove", "remove a named address selector no policy of the uncommitted list uses",
                            {{"name", ParamType::kString, true, "selector name"}}, true,
                            [](IpsecService& s, const Params& p) -> Result<json> {
                              STORCRYPT_TRY(s.edit([&](pol::PolicyList& l) { return l.remove_addresses(p.str("name")); }));
                              return json{{"removed", p.str("name")}};
                            }));
  return ok_status();
}

}  // namespace storcrypt::controller
