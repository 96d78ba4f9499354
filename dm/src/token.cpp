#include "storcrypt/dm/token.h"

#include <nlohmann/json.hpp>

namespace storcrypt::dm {

bool valid_volume_name(const std::string& s) {
  if (s.empty() || s.size() > 64 || s[0] == '.' || s[0] == '-') return false;
  for (char c : s)
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '_' ||
          c == '-'))
      return false;
  return true;
}

std::string token_to_json(const VolumeToken& t) {
  nlohmann::json ks = nlohmann::json::array();
  ks.push_back(std::to_string(t.keyslot));
  if (t.previous && t.previous->keyslot != t.keyslot) ks.push_back(std::to_string(t.previous->keyslot));
  nlohmann::json j = {{"type", kTokenType},
                      {"keyslots", ks},
                      {"version", 1},
                      {"name", t.name},
                      {"provider", {{"kind", t.provider_kind}, {"id", t.provider_id}}},
                      {"key_id", t.key_id},
                      {"label", t.label},
                      {"generation", t.generation},
                      {"keyslot", t.keyslot}};
  if (t.previous) j["previous"] = {{"generation", t.previous->generation}, {"keyslot", t.previous->keyslot}};
  return j.dump();
}

namespace {
Error bad(const std::string& what) {
  return Error(ErrorCode::kProtocol, "storcrypt LUKS2 token: " + what,
               "the header was edited by hand or by another tool; inspect it with 'cryptsetup luksDump'");
}
}  // namespace

Result<VolumeToken> token_from_json(const std::string& json) {
  auto j = nlohmann::json::parse(json, nullptr, false);
  if (j.is_discarded() || !j.is_object()) return bad("not a JSON object");
  if (!j.contains("type") || j["type"] != kTokenType) return bad("type is not 'storcrypt'");
  if (!j.contains("version") || j["version"] != 1) return bad("unsupported version (this build reads 1)");
  auto str = [&](const nlohmann::json& o, const char* k, std::string* out) {
    if (!o.contains(k) || !o[k].is_string()) return false;
    *out = o[k].get<std::string>();
    return true;
  };
  VolumeToken t;
  if (!str(j, "name", &t.name) || !valid_volume_name(t.name)) return bad("field 'name' missing or invalid");
  if (!j.contains("provider") || !j["provider"].is_object() || !str(j["provider"], "kind", &t.provider_kind) ||
      !str(j["provider"], "id", &t.provider_id))
    return bad("field 'provider' needs string 'kind' and 'id'");
  if (!str(j, "key_id", &t.key_id) || t.key_id.empty()) return bad("field 'key_id' missing");
  str(j, "label", &t.label);
  if (!j.contains("generation") || !j["generation"].is_number_unsigned() || j["generation"].get<std::uint64_t>() == 0)
    return bad("field 'generation' must be a positive integer");
  t.generation = j["generation"].get<std::uint64_t>();
  auto slot_ok = [](const nlohmann::json& v) {
    return v.is_number_integer() && v.get<std::int64_t>() >= 0 && v.get<std::int64_t>() <= 31;
  };
  if (!j.contains("keyslot") || !slot_ok(j["keyslot"])) return bad("field 'keyslot' must be 0..31");
  t.keyslot = static_cast<int>(j["keyslot"].get<std::int64_t>());
  if (j.contains("previous")) {
    auto& p = j["previous"];
    if (!p.is_object() || !p.contains("generation") || !p["generation"].is_number_unsigned() ||
        !p.contains("keyslot") || !slot_ok(p["keyslot"]))
      return bad("field 'previous' needs 'generation' and 'keyslot' 0..31");
    t.previous = KeyslotRef{p["generation"].get<std::uint64_t>(), static_cast<int>(p["keyslot"].get<std::int64_t>())};
  }
  return t;
}

Result<std::pair<int, VolumeToken>> find_token(const std::map<int, std::string>& tokens) {
  for (auto& [id, json] : tokens) {
    auto j = nlohmann::json::parse(json, nullptr, false);
    if (j.is_discarded() || !j.is_object() || !j.contains("type") || j["type"] != kTokenType) continue;
    STORCRYPT_ASSIGN_OR_RETURN(VolumeToken t, token_from_json(json));
    return std::make_pair(id, std::move(t));
  }
  return Error(ErrorCode::kNotFound, "the LUKS2 header has no storcrypt token",
               "this volume was not created by storcrypt; use 'cryptsetup' directly");
}

}  // namespace storcrypt::dm
