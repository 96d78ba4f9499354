// RPC adapter of the `key` noun: named keys for manual keying (values never
// leave the daemon except encrypted under a passphrase). Translation only; the
// rules are IpsecService's (ipsec/ipsec_service.h).
#include <nlohmann/json.hpp>

#include "ipsec_rpc.h"
#include "storcrypt/controller/nouns.h"
#include "storcrypt/policy/keys.h"

namespace storcrypt::controller {

using nlohmann::json;
namespace pol = storcrypt::policy;

namespace {

json key_info_json(const pol::KeyInfo& k) {
  return json{{"name", k.name}, {"algorithm", pol::to_string(k.algorithm)}, {"bytes", k.bytes}};
}

}  // namespace

Status register_key_methods(Dispatcher& d, Context& ctx) {
  auto st = ipsec_state(ctx);
  ServiceMethods<IpsecService> methods(d, [st] { return ipsec_service(*st); });
  STORCRYPT_TRY(methods.add("key.list", "named keys (names, algorithms and lengths; never values)", {}, false,
                            [](IpsecService& s, const Params&) -> Result<json> {
                              json arr = json::array();
                              for (const auto& k : s.keys().list()) {
                                json j = key_info_json(k);
                                j["used_by"] = s.users_of(k.name);
                                arr.push_back(j);
                              }
                              return json{{"keys", arr}};
                            }));
  STORCRYPT_TRY(methods.add("key.create", "create a named key: random, or a value given as hexadecimal or ASCII",
                            {{"name", ParamType::kString, true, "key name"},
                             {"algorithm", ParamType::kString, true,
                              "HMAC-SHA1-96, HMAC-SHA-256-128, HMAC-SHA-512-256, AES-CBC-128, "
                              "AES-CBC-256 or AES-GCM-256"},
                             {"hex", ParamType::kString, false, "the value in hexadecimal (default: random)"},
                             {"ascii", ParamType::kString, false, "the value as ASCII text"},
                             {"replace", ParamType::kBoolean, false, "replace an existing key of this name"}},
                            true, [](IpsecService& s, const Params& p) -> Result<json> {
                              STORCRYPT_ASSIGN_OR_RETURN(auto alg, pol::parse_algorithm(p.str("algorithm")));
                              if (p.has("hex") && p.has("ascii"))
                                return Error(ErrorCode::kInvalidInput, "give the value as hex or as ascii, not both");
                              IpsecService::KeyValue v;
                              if (p.has("hex")) {
                                v.kind = IpsecService::KeyValue::Kind::kHex;
                                v.text = p.str("hex");
                              } else if (p.has("ascii")) {
                                v.kind = IpsecService::KeyValue::Kind::kAscii;
                                v.text = p.str("ascii");
                              }
                              std::string name = p.str("name");
                              STORCRYPT_ASSIGN_OR_RETURN(auto applied,
                                                         s.create_key(name, alg, std::move(v), p.boolean("replace")));
                              json j;
                              for (const auto& ki : s.keys().list())
                                if (ki.name == name) j = key_info_json(ki);
                              j["applied"] = stats_json(applied);
                              return j;
                            }));
  STORCRYPT_TRY(methods.add("key.delete", "delete a named key no policy uses",
                            {{"name", ParamType::kString, true, "key"}}, true,
                            [](IpsecService& s, const Params& p) -> Result<json> {
                              std::string name = p.str("name");
                              STORCRYPT_TRY(s.delete_key(name));
                              return json{{"deleted", name}};
                            }));
  STORCRYPT_TRY(
      methods.add("key.export", "encrypt keys under a passphrase (scrypt or PBKDF2, AES-256-GCM) for the partner",
                  {{"names", ParamType::kArray, false, "key names (default: all)"},
                   {"passphrase", ParamType::kString, true, "at least 8 characters"},
                   {"kdf", ParamType::kString, false, "scrypt (default) or pbkdf2"}},
                  false, [](IpsecService& s, const Params& p) -> Result<json> {
                    std::vector<std::string> names;
                    if (p.has("names"))
                      for (const auto& n : p.json()["names"]) {
                        if (!n.is_string()) return Error(ErrorCode::kInvalidInput, "names must be key names (strings)");
                        names.push_back(n.get<std::string>());
                      }
                    pol::KeyExportOptions o;
                    std::string kdf = p.str("kdf", "scrypt");
                    if (kdf == "pbkdf2")
                      o.kdf = pol::Kdf::kPbkdf2Sha256;
                    else if (kdf != "scrypt")
                      return Error(ErrorCode::kInvalidInput, "kdf '" + kdf + "' is not scrypt or pbkdf2", "use scrypt");
                    STORCRYPT_ASSIGN_OR_RETURN(SecretBytes pass, checked_passphrase(p.str("passphrase")));
                    STORCRYPT_ASSIGN_OR_RETURN(std::string text, s.export_keys(names, pass, o));
                    return json{{"file", text}, {"keys", names.empty() ? s.keys().size() : names.size()}};
                  }));
  STORCRYPT_TRY(methods.add("key.import", "import keys from a passphrase-protected key file",
                            {{"text", ParamType::kString, true, "key file text"},
                             {"passphrase", ParamType::kString, true, "the passphrase it was exported with"},
                             {"replace", ParamType::kBoolean, false, "replace keys of the same names"}},
                            true, [](IpsecService& s, const Params& p) -> Result<json> {
                              STORCRYPT_ASSIGN_OR_RETURN(SecretBytes pass, checked_passphrase(p.str("passphrase")));
                              STORCRYPT_ASSIGN_OR_RETURN(auto out,
                                                         s.import_keys(p.str("text"), pass, p.boolean("replace")));
                              return json{{"imported", json(out.names)}, {"applied", stats_json(out.applied)}};
                            }));
  return ok_status();
}

}  // namespace storcrypt::controller
