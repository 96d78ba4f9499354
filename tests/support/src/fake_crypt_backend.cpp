#include "storcrypt/testing/fake_crypt_backend.h"

#include <nlohmann/json.hpp>

namespace storcrypt::dm {

Status FakeCryptBackend::enter(const std::string& op) {
  ++calls_[op];
  auto it = failures_.find(op);
  if (it == failures_.end()) return ok_status();
  Error e = std::move(it->second);
  failures_.erase(it);
  return e;
}

Result<FakeCryptBackend::Volume*> FakeCryptBackend::luks(const std::string& dev) {
  auto it = devices_.find(dev);
  if (it == devices_.end()) return Error(ErrorCode::kNotFound, "no device " + dev);
  if (it->second.wiped || it->second.header.uuid.empty())
    return Error(ErrorCode::kInvalidInput, dev + " is not a LUKS2 device");
  return &it->second;
}

Result<bool> FakeCryptBackend::is_luks(const std::string& dev) {
  STORCRYPT_TRY(enter("is_luks"));
  auto it = devices_.find(dev);
  if (it == devices_.end()) return Error(ErrorCode::kNotFound, "no device " + dev);
  return !it->second.wiped && !it->second.header.uuid.empty();
}

Result<HeaderInfo> FakeCryptBackend::inspect(const std::string& dev) {
  STORCRYPT_TRY(enter("inspect"));
  STORCRYPT_ASSIGN_OR_RETURN(Volume * v, luks(dev));
  HeaderInfo hi = v->header;
  hi.active_keyslots.clear();
  for (auto& [slot, _] : v->slots) hi.active_keyslots.push_back(slot);
  return hi;
}

Status FakeCryptBackend::format(const std::string& dev, const FormatParams& p, int keyslot, const SecretBytes& ak) {
  STORCRYPT_TRY(enter("format"));
  auto it = devices_.find(dev);
  if (it == devices_.end()) return Error(ErrorCode::kNotFound, "no device " + dev);
  Volume v;
  char uuid[64];
  std::snprintf(uuid, sizeof uuid, "00000000-0000-4000-8000-%012d", next_uuid_++);
  v.header.uuid = p.uuid.empty() ? std::string(uuid) : p.uuid;
  v.header.cipher = p.cipher;
  v.header.cipher_mode = p.cipher_mode;
  v.header.volume_key_bytes = p.volume_key_bytes;
  v.header.sector_size = p.sector_size;
  v.header.data_offset_bytes = 16u << 20;
  v.slots[keyslot] = ak.clone();
  it->second = std::move(v);
  return ok_status();
}

Status FakeCryptBackend::add_keyslot(const std::string& dev, int new_slot, const SecretBytes& existing_ak,
                                     const SecretBytes& new_ak, std::uint32_t) {
  STORCRYPT_TRY(enter("add_keyslot"));
  STORCRYPT_ASSIGN_OR_RETURN(Volume * v, luks(dev));
  if (v->slots.count(new_slot))
    return Error(ErrorCode::kConflict, "fake: keyslot " + std::to_string(new_slot) + " is active (in-place overwrite)");
  bool opened = false;
  for (auto& [_, pass] : v->slots) opened = opened || pass.equals(existing_ak);
  if (!opened) return Error(ErrorCode::kPermission, "fake: no keyslot opens with the given key");
  v->slots[new_slot] = new_ak.clone();
  return ok_status();
}

Status FakeCryptBackend::destroy_keyslot(const std::string& dev, int slot) {
  STORCRYPT_TRY(enter("destroy_keyslot"));
  STORCRYPT_ASSIGN_OR_RETURN(Volume * v, luks(dev));
  if (!v->slots.erase(slot)) return Error(ErrorCode::kNotFound, "fake: keyslot " + std::to_string(slot) + " inactive");
  // libcryptsetup drops the slot from every token's keyslots array.
  for (auto& [id, json] : v->header.tokens) {
    auto j = nlohmann::json::parse(json);
    auto& ks = j["keyslots"];
    nlohmann::json keep = nlohmann::json::array();
    for (auto& k : ks)
      if (k != std::to_string(slot)) keep.push_back(k);
    ks = keep;
    json = j.dump();
  }
  return ok_status();
}

Result<int> FakeCryptBackend::set_token(const std::string& dev, int token, const std::string& json) {
  STORCRYPT_TRY(enter("set_token"));
  STORCRYPT_ASSIGN_OR_RETURN(Volume * v, luks(dev));
  auto j = nlohmann::json::parse(json, nullptr, false);
  if (j.is_discarded() || !j.is_object() || !j.contains("type") || !j.contains("keyslots") || !j["keyslots"].is_array())
    return Error(ErrorCode::kInvalidInput, "fake: token JSON needs type and keyslots");
  for (auto& k : j["keyslots"]) {
    if (!k.is_string()) return Error(ErrorCode::kInvalidInput, "fake: keyslots must be strings");
    if (!v->slots.count(std::stoi(k.get<std::string>())))
      return Error(ErrorCode::kInvalidInput, "fake: token references missing keyslot " + k.get<std::string>());
  }
  if (token < 0) {
    token = 0;
    while (v->header.tokens.count(token)) ++token;
  }
  v->header.tokens[token] = json;
  return token;
}

Status FakeCryptBackend::remove_token(const std::string& dev, int token) {
  STORCRYPT_TRY(enter("remove_token"));
  STORCRYPT_ASSIGN_OR_RETURN(Volume * v, luks(dev));
  if (!v->header.tokens.erase(token)) return Error(ErrorCode::kNotFound, "fake: no token " + std::to_string(token));
  return ok_status();
}

Status FakeCryptBackend::verify_key(const std::string& dev, int slot, const SecretBytes& ak) {
  STORCRYPT_TRY(enter("verify_key"));
  STORCRYPT_ASSIGN_OR_RETURN(Volume * v, luks(dev));
  auto it = v->slots.find(slot);
  if (it == v->slots.end()) return Error(ErrorCode::kNotFound, "fake: keyslot " + std::to_string(slot) + " inactive");
  if (!it->second.equals(ak)) return Error(ErrorCode::kPermission, "fake: wrong key for keyslot");
  return ok_status();
}

Status FakeCryptBackend::activate(const std::string& dev, const std::string& name, int slot, const SecretBytes& ak,
                                  const ActivationFlags& flags) {
  STORCRYPT_TRY(enter("activate"));
  if (mappings_.count(name)) return Error(ErrorCode::kConflict, "fake: mapping " + name + " exists");
  STORCRYPT_TRY(verify_key(dev, slot, ak));
  --calls_["verify_key"];
  mappings_[name] = Mapping{dev, flags, false};
  return ok_status();
}

Status FakeCryptBackend::deactivate(const std::string& name) {
  STORCRYPT_TRY(enter("deactivate"));
  auto it = mappings_.find(name);
  if (it == mappings_.end()) return Error(ErrorCode::kNotFound, "fake: no mapping " + name);
  if (it->second.busy) return Error(ErrorCode::kConflict, "fake: mapping " + name + " is busy");
  mappings_.erase(it);
  return ok_status();
}

Result<std::optional<ActiveInfo>> FakeCryptBackend::active(const std::string& name) {
  STORCRYPT_TRY(enter("active"));
  auto it = mappings_.find(name);
  if (it == mappings_.end()) return std::optional<ActiveInfo>();
  ActiveInfo ai;
  ai.name = name;
  ai.device = it->second.device;
  ai.flags = it->second.flags;
  auto d = devices_.find(it->second.device);
  if (d != devices_.end()) {
    ai.uuid = d->second.header.uuid;
    ai.cipher = d->second.header.cipher + "-" + d->second.header.cipher_mode;
  }
  return std::optional<ActiveInfo>(std::move(ai));
}

Status FakeCryptBackend::wipe_area(const std::string& dev, std::uint64_t length) {
  STORCRYPT_TRY(enter("wipe_area"));
  auto it = devices_.find(dev);
  if (it == devices_.end()) return Error(ErrorCode::kNotFound, "no device " + dev);
  if (length >= it->second.header.data_offset_bytes || length >= (16u << 20)) {
    it->second.wiped = true;
    it->second.slots.clear();
    it->second.header.tokens.clear();
  }
  return ok_status();
}

Status FakeCryptBackend::header_backup(const std::string& dev, const std::string& file) {
  STORCRYPT_TRY(enter("header_backup"));
  STORCRYPT_ASSIGN_OR_RETURN(Volume * v, luks(dev));
  (void)v;
  FILE* f = std::fopen(file.c_str(), "wx");
  if (!f) return errno_error(errno, "creating " + file);
  std::fputs("fake LUKS2 header backup\n", f);
  std::fclose(f);
  return ok_status();
}

}  // namespace storcrypt::dm
