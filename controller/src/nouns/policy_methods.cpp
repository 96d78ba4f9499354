// RPC adapter of the `policy` noun: the ordered IPsec policy list
// (uncommitted edits, test tool, validate, commit). It translates JSON to
// policy types and back; the rules are IpsecService's (ipsec/ipsec_service.h).
#include <algorithm>
#include <nlohmann/json.hpp>
#include <sstream>

#include "ipsec_rpc.h"
#include "storcrypt/controller/nouns.h"
#include "storcrypt/policy/compiler.h"
#include "storcrypt/policy/model.h"
#include "storcrypt/policy/test_tool.h"
#include "storcrypt/policy/text.h"

namespace storcrypt::controller {

using nlohmann::json;
namespace pol = storcrypt::policy;

namespace {

constexpr const char* kUncommitted = "uncommitted";
constexpr const char* kCommitted = "committed";
/// One policy as its policy-file block.
std::string policy_text(const pol::Policy& p) { return pol::export_policies(pol::PolicyList({p})); }

/// The fields of a policy-file block ("Name" -> "x", ...), in file order.
std::vector<std::pair<std::string, std::string>> fields_of(const std::string& text) {
  std::vector<std::pair<std::string, std::string>> out;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    auto eq = line.find(" = ");
    if (line.empty() || line[0] == '#' || eq == std::string::npos) continue;
    out.emplace_back(line.substr(0, eq), line.substr(eq + 3));
  }
  return out;
}

json policy_json(const pol::Policy& p, std::size_t position) {
  std::string text = policy_text(p);
  json f = json::object();
  for (auto& [k, v] : fields_of(text)) f[k] = v;
  return json{{"position", position + 1}, {"name", p.name}, {"fields", f}, {"text", text}};
}

json list_json(const pol::PolicyList& l) {
  json arr = json::array();
  for (std::size_t i = 0; i < l.size(); ++i) arr.push_back(policy_json(l.policies()[i], i));
  return arr;
}

/// A policy from API fields (the policy file's names), optionally on top of a
/// base policy: a field given as "" removes it; changing Action away from
/// PROTECT drops the IPsec fields.
Result<pol::Policy> policy_from_fields(const json& fields, const pol::Policy* base) {
  if (!fields.is_object())
    return Error(ErrorCode::kInvalidInput, "parameter 'fields' must be an object of policy fields",
                 "pass e.g. {\"Name\": \"web\", \"Direction\": \"outbound\", \"Action\": \"BYPASS\"}");
  std::vector<std::pair<std::string, std::string>> merged;
  if (base) merged = fields_of(policy_text(*base));
  for (const auto& item : fields.items()) {
    const std::string k = item.key();  // a named copy: clang 14 cannot capture structured bindings
    const json& v = item.value();
    std::string value;
    if (v.is_string()) {
      value = v.get<std::string>();
    } else if (v.is_number_unsigned()) {
      value = std::to_string(v.get<std::uint64_t>());
    } else {
      return Error(ErrorCode::kInvalidInput, "policy field '" + k + "' must be a string or a number",
                   "write the value as in a policy file, e.g. \"5000-5001\"");
    }
    if (value.find_first_of("\r\n") != std::string::npos || k.find_first_of("\r\n =") != std::string::npos)
      return Error(ErrorCode::kInvalidInput, "policy field '" + k + "' holds a line break or a bad name",
                   "give one field per key, one value per field");
    auto it = std::find_if(merged.begin(), merged.end(), [&](const auto& kv) { return kv.first == k; });
    if (value.empty()) {
      if (it != merged.end()) merged.erase(it);
    } else if (it != merged.end()) {
      it->second = value;
    } else {
      merged.emplace_back(k, value);
    }
  }
  auto action = std::find_if(merged.begin(), merged.end(), [](const auto& kv) { return kv.first == "Action"; });
  if (base && action != merged.end() && action->second != "PROTECT" && action->second != "protect") {
    std::erase_if(merged, [&](const auto& kv) {
      const auto& pf = pol::protection_fields();
      return std::find(pf.begin(), pf.end(), kv.first) != pf.end() && !fields.contains(kv.first);
    });
  }
  std::string text;
  // Name first: the file format starts a block at its Name line.
  for (auto& [k, v] : merged)
    if (k == "Name") text += k + " = " + v + "\n";
  for (auto& [k, v] : merged)
    if (k != "Name") text += k + " = " + v + "\n";
  auto parsed = pol::import_policies(text);
  if (!parsed.ok()) {
    const Error& e = parsed.error();
    std::string msg = e.message();
    // The block is built here: line numbers would mean nothing to the caller.
    if (msg.rfind("line ", 0) == 0) {
      auto colon = msg.find(": ");
      if (colon != std::string::npos) msg = msg.substr(colon + 2);
    }
    return Error(e.code(), msg, e.fix(), e.name().empty() ? "xPolicyInvalid" : e.name());
  }
  if (parsed->size() != 1)
    return Error(ErrorCode::kInvalidInput, "the fields describe " + std::to_string(parsed->size()) + " policies",
                 "give exactly one Name");
  return parsed->policies()[0];
}

json any_local_json(const std::map<std::string, std::vector<IpAddress>>& m) {
  json j = json::object();
  for (const auto& [name, addrs] : m) {
    json a = json::array();
    for (const auto& x : addrs) a.push_back(x.to_string());
    j[name] = a;
  }
  return j;
}

Result<pol::PortRange> parse_range(const std::string& field, const std::string& text, std::uint16_t max) {
  STORCRYPT_ASSIGN_OR_RETURN(auto spec, pol::PortSpec::parse(text, max, field));
  auto eff = spec.effective(max);
  if (eff.size() != 1)
    return Error(ErrorCode::kInvalidInput, field + ": the test tool takes one range (e.g. 1-65535), not a list",
                 "test each range separately");
  return eff[0];
}

}  // namespace

Status register_policy_methods(Dispatcher& d, Context& ctx) {
  auto st = ipsec_state(ctx);
  ServiceMethods<IpsecService> methods(d, [st] { return ipsec_service(*st); });
  auto position_of = [](const Params& p, std::size_t max) -> Result<std::size_t> {
    int64_t pos = p.integer("position");
    if (pos < 1 || static_cast<std::size_t>(pos) > max + 1)
      return Error(ErrorCode::kInvalidInput,
                   "position " + std::to_string(pos) + " is outside 1.." + std::to_string(max + 1),
                   "positions count from 1 (the first policy); see 'storcrypt policy list'");
    return static_cast<std::size_t>(pos - 1);
  };
  auto edited = [](IpsecService& s, const std::string& name) -> Result<json> {
    auto idx = s.uncommitted().index_of(name);
    if (!idx) return json{{"policies", s.uncommitted().size()}};
    return policy_json(s.uncommitted().policies()[*idx], *idx);
  };

  STORCRYPT_TRY(methods.add("policy.list", "the ordered policy list (uncommitted edits, or the committed list)",
                            {{"committed", ParamType::kBoolean, false, "show the committed list"}}, false,
                            [](IpsecService& s, const Params& p) -> Result<json> {
                              bool c = p.boolean("committed");
                              return json{{"list", c ? kCommitted : kUncommitted},
                                          {"policies", list_json(c ? s.committed() : s.uncommitted())},
                                          {"uncommitted_changes", s.uncommitted() != s.committed()}};
                            }));
  STORCRYPT_TRY(methods.add("policy.show", "one policy as its policy-file fields",
                            {{"name", ParamType::kString, true, "policy name"},
                             {"committed", ParamType::kBoolean, false, "from the committed list"}},
                            false, [](IpsecService& s, const Params& p) -> Result<json> {
                              const auto& l = p.boolean("committed") ? s.committed() : s.uncommitted();
                              auto idx = l.index_of(p.str("name"));
                              if (!idx)
                                return Error(ErrorCode::kNotFound, "no policy named '" + p.str("name") + "'",
                                             "see 'storcrypt policy list'", "xPolicyNotFound");
                              json j = policy_json(l.policies()[*idx], *idx);
                              const pol::Policy& pl = l.policies()[*idx];
                              // What LocalAddress ANY of a transport-mode PROTECT policy stands for now.
                              if (pl.disposition == pol::Disposition::kProtect && pl.protection &&
                                  pl.protection->mode == pol::Mode::kTransport && pl.selector.local.is_any() &&
                                  pl.selector.remote.kind == pol::AddressSpec::Kind::kSingle) {
                                const auto opt = s.options();
                                json a = json::array();
                                for (const auto& x : pol::node_addresses(opt, pl.selector.remote.first.family))
                                  a.push_back(x.to_string());
                                j["local_addresses"] = a;
                                j["local_addresses_known"] = opt.local_addresses.has_value();
                              }
                              return j;
                            }));
  STORCRYPT_TRY(methods.add(
      "policy.add", "add a policy to the uncommitted list (at the end, or before a position)",
      {{"fields", ParamType::kObject, true, "policy-file fields: Name, Direction, Action, LocalAddress, ..."},
       {"position", ParamType::kInteger, false, "insert at this position (1 = first); default: append"}},
      true, [position_of, edited](IpsecService& s, const Params& p) -> Result<json> {
        STORCRYPT_ASSIGN_OR_RETURN(auto pol, policy_from_fields(p.json()["fields"], nullptr));
        std::string name = pol.name;
        if (p.has("position")) {
          STORCRYPT_ASSIGN_OR_RETURN(std::size_t pos, position_of(p, s.uncommitted().size()));
          STORCRYPT_TRY(s.edit([&](pol::PolicyList& l) { return l.insert(pos, std::move(pol)); }));
        } else {
          STORCRYPT_TRY(s.edit([&](pol::PolicyList& l) { return l.add(std::move(pol)); }));
        }
        return edited(s, name);
      }));
  STORCRYPT_TRY(methods.add("policy.modify", "change fields of a policy in the uncommitted list (\"\" removes a field)",
                            {{"name", ParamType::kString, true, "policy name"},
                             {"fields", ParamType::kObject, true, "fields to change, e.g. {\"RemotePort\": \"5000\"}"}},
                            true, [edited](IpsecService& s, const Params& p) -> Result<json> {
                              const pol::Policy* cur = s.uncommitted().find(p.str("name"));
                              if (!cur)
                                return Error(ErrorCode::kNotFound, "no policy named '" + p.str("name") + "'",
                                             "see 'storcrypt policy list'", "xPolicyNotFound");
                              STORCRYPT_ASSIGN_OR_RETURN(auto pol, policy_from_fields(p.json()["fields"], cur));
                              std::string name = pol.name;
                              STORCRYPT_TRY(s.edit([&](pol::PolicyList& l) { return l.modify(p.str("name"), pol); }));
                              return edited(s, name);
                            }));
  STORCRYPT_TRY(methods.add("policy.move", "move a policy to a position of the uncommitted list",
                            {{"name", ParamType::kString, true, "policy name"},
                             {"position", ParamType::kInteger, true, "new position (1 = first)"}},
                            true, [position_of, edited](IpsecService& s, const Params& p) -> Result<json> {
                              std::size_t n = s.uncommitted().size();
                              STORCRYPT_ASSIGN_OR_RETURN(std::size_t pos, position_of(p, n == 0 ? 0 : n - 1));
                              STORCRYPT_TRY(s.edit([&](pol::PolicyList& l) { return l.move(p.str("name"), pos); }));
                              return edited(s, p.str("name"));
                            }));
  STORCRYPT_TRY(methods.add(
      "policy.clone", "copy a policy under a new name, directly after it",
      {{"name", ParamType::kString, true, "policy to copy"},
       {"new_name", ParamType::kString, true, "name of the copy"}},
      true, [edited](IpsecService& s, const Params& p) -> Result<json> {
        STORCRYPT_TRY(s.edit([&](pol::PolicyList& l) { return l.clone(p.str("name"), p.str("new_name")); }));
        return edited(s, p.str("new_name"));
      }));
  STORCRYPT_TRY(methods.add("policy.remove", "remove a policy from the uncommitted list",
                            {{"name", ParamType::kString, true, "policy name"}}, true,
                            [](IpsecService& s, const Params& p) -> Result<json> {
                              STORCRYPT_TRY(s.edit([&](pol::PolicyList& l) { return l.remove(p.str("name")); }));
                              return json{{"removed", p.str("name")}, {"policies", s.uncommitted().size()}};
                            }));
  STORCRYPT_TRY(
      methods.add("policy.import", "replace (or extend) the uncommitted list from a policy file",
                  {{"text", ParamType::kString, true, "policy file text (Name = Value blocks)"},
                   {"swap", ParamType::kBoolean, false, "the partner's list: swap local/remote and flip directions"},
                   {"append", ParamType::kBoolean, false, "append to the uncommitted list instead of replacing it"}},
                  true, [](IpsecService& s, const Params& p) -> Result<json> {
                    STORCRYPT_ASSIGN_OR_RETURN(auto imported, pol::import_policies(p.str("text"), {p.boolean("swap")}));
                    std::size_t n = imported.size();
                    std::size_t imported_addresses = imported.addresses().size();
                    STORCRYPT_TRY(s.edit([&](pol::PolicyList& l) -> Status {
                      if (!p.boolean("append")) {
                        l = std::move(imported);
                        return ok_status();
                      }
                      for (const auto& [name, entries] : imported.addresses())
                        STORCRYPT_TRY(l.add_addresses(name, entries));  // merged into a name the list has
                      for (const auto& x : imported.policies()) STORCRYPT_TRY(l.add(x));
                      return ok_status();
                    }));
                    return json{{"imported", n},
                                {"addresses", imported_addresses},
                                {"policies", s.uncommitted().size()}};
                  }));
  STORCRYPT_TRY(methods.add(
      "policy.export", "the list as a policy file (keys by name only)",
      {{"committed", ParamType::kBoolean, false, "export the committed list"}}, false,
      [](IpsecService& s, const Params& p) -> Result<json> {
        return json{{"text", pol::export_policies(p.boolean("committed") ? s.committed() : s.uncommitted())}};
      }));
  STORCRYPT_TRY(methods.add("policy.revert", "discard uncommitted edits (back to the committed list)", {}, true,
                            [](IpsecService& s, const Params&) -> Result<json> {
                              pol::PolicyList c = s.committed();
                              STORCRYPT_TRY(s.edit([&](pol::PolicyList& l) {
                                l = c;
                                return ok_status();
                              }));
                              return json{{"policies", s.uncommitted().size()}};
                            }));
  STORCRYPT_TRY(methods.add(
      "policy.test", "which policies match some traffic, per sub-range (works on the uncommitted list)",
      {{"direction", ParamType::kString, true, "inbound or outbound"},
       {"protocol", ParamType::kString, true, "TCP, UDP, ICMP, ICMPv6, SCTP or a number"},
       {"local", ParamType::kString, true, "local address"},
       {"remote", ParamType::kString, true, "remote address"},
       {"local_ports", ParamType::kString, false, "local port range, or ICMP type range (default: all)"},
       {"remote_ports", ParamType::kString, false, "remote port range, or ICMP code range (default: all)"}},
      false, [](IpsecService& s, const Params& p) -> Result<json> {
        pol::TestQuery q;
        STORCRYPT_ASSIGN_OR_RETURN(q.direction, pol::parse_direction(p.str("direction")));
        STORCRYPT_ASSIGN_OR_RETURN(auto proto, pol::parse_protocol(p.str("protocol")));
        if (!proto)
          return Error(ErrorCode::kInvalidInput, "protocol: the test tool needs one protocol, not ANY",
                       "give TCP, UDP, ICMP, ICMPv6, SCTP or a number");
        q.protocol = *proto;
        STORCRYPT_ASSIGN_OR_RETURN(q.local, pol::IpAddress::parse(p.str("local"), "local"));
        STORCRYPT_ASSIGN_OR_RETURN(q.remote, pol::IpAddress::parse(p.str("remote"), "remote"));
        std::uint16_t max = pol::protocol_is_icmp(q.protocol) ? 255 : 65535;
        q.local_ports = {0, max};
        q.remote_ports = {0, max};
        if (p.has("local_ports")) {
          STORCRYPT_ASSIGN_OR_RETURN(q.local_ports, parse_range("local_ports", p.str("local_ports"), max));
        }
        if (p.has("remote_ports")) {
          STORCRYPT_ASSIGN_OR_RETURN(q.remote_ports, parse_range("remote_ports", p.str("remote_ports"), max));
        }
        pol::EnforcementOptions eo;
        eo.default_disposition = s.default_disposition();
        STORCRYPT_ASSIGN_OR_RETURN(auto rows, pol::test_traffic(s.uncommitted(), eo, q));
        json arr = json::array();
        auto range = [](pol::PortRange r) {
          return r.lo == r.hi ? std::to_string(r.lo) : std::to_string(r.lo) + "-" + std::to_string(r.hi);
        };
        for (const auto& r : rows)
          arr.push_back(json{{"local_ports", range(r.local_ports)},
                             {"remote_ports", range(r.remote_ports)},
                             {"disposition", pol::to_string(r.disposition)},
                             {"first_match", r.first_match},
                             {"bypass", r.bypass},
                             {"discard", r.discard},
                             {"protect", r.protect},
                             {"notes", r.notes}});
        return json{{"rows", arr}, {"table", pol::format_test_rows(q, rows)}};
      }));
  STORCRYPT_TRY(methods.add("policy.validate", "check the uncommitted list as commit would, without committing", {},
                            false, [](IpsecService& s, const Params&) -> Result<json> {
                              auto rep = pol::validate(s.uncommitted(), s.keys(), s.options());
                              return json{{"ok", rep.ok()}, {"diagnostics", report_json(rep)}};
                            }));
  STORCRYPT_TRY(methods.add(
      "policy.commit",
      "validate and commit the uncommitted list (enforced at once when IPsec is enabled); warnings are returned", {},
      true, [](IpsecService& s, const Params&) -> Result<json> {
        STORCRYPT_ASSIGN_OR_RETURN(auto out, s.commit());
        return json{{"policies", s.committed().size()},
                    {"kernel_policies", out.kernel_policies},
                    {"sas", out.sas},
                    {"enforced", s.enabled()},
                    {"applied", stats_json(out.applied)},
                    {"diagnostics", report_json(out.report)},
                    {"local_addresses", any_local_json(out.any_local)}};
      }));
  return ok_status();
}

}  // namespace storcrypt::controller
