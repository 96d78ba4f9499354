#include "storcrypt/dm/volume_manager.h"

#include <algorithm>
#include <set>
#include <nlohmann/json.hpp>

#include "storcrypt/common/hex.h"
#include "storcrypt/keys/key_file.h"
#include "storcrypt/keys/key_media.h"

namespace storcrypt::dm {
namespace fs = std::filesystem;

namespace {

constexpr std::uint64_t kDefaultHeaderArea = 16u << 20;  // LUKS2 default data offset

// Only volumes keyed from the key media migrate (to an external provider).
constexpr const char* kKeyMediaKind = "keymedia";

const std::set<std::string> kVolumeKinds = {kCreateKind, kRekeyKind, kEraseKind, kMigrateKind};

// A random (version 4) UUID for the LUKS2 header create writes: chosen before
// anything is written, so recovery wipes only a header this create wrote.
Result<std::string> random_uuid() {
  STORCRYPT_ASSIGN_OR_RETURN(SecretBytes r, SecretBytes::random(16));
  std::string h = to_hex(r.view());
  h[12] = '4';
  static const char kVariant[] = "89ab";
  h[16] = kVariant[std::stoi(h.substr(16, 1), nullptr, 16) & 3];
  return h.substr(0, 8) + "-" + h.substr(8, 4) + "-" + h.substr(12, 4) + "-" + h.substr(16, 4) + "-" + h.substr(20);
}

Error malformed(const journal::Entry& e, const std::string& what) {
  return Error(ErrorCode::kInternal,
               "journal operation " + std::to_string(e.id) + " (" + e.kind + ") has malformed " + what + " data",
               "inspect it with 'storcrypt system status'; settle the volume by hand");
}

void add_warnings(OpReport* r, const std::vector<std::string>& w) {
  if (r) r->warnings.insert(r->warnings.end(), w.begin(), w.end());
}

Error no_free_keyslot(const std::string& dev) {
  return Error(ErrorCode::kConflict, "no free LUKS2 keyslot on " + dev,
               "destroy unused keyslots (cryptsetup luksKillSlot) and retry");
}

}  // namespace

Result<HeaderInfo> VolumeManager::load_header(const std::string& device) {
  STORCRYPT_ASSIGN_OR_RETURN(bool luks, backend_.is_luks(device));
  if (!luks) {
    // Say what is there instead (a LUKS1 header, a filesystem, ...), or that it is blank.
    STORCRYPT_ASSIGN_OR_RETURN(auto sigs, probe_.signatures(device));
    if (!sigs.empty())
      return Error(ErrorCode::kConflict, device + " is not a storcrypt volume: it holds " + describe(sigs),
                   "check the device path; storcrypt acts only on the LUKS2 volumes it created", "xNotStorcryptVolume");
    return Error(ErrorCode::kNotFound, device + " has no LUKS2 header (never created, or crypto-erased)",
                 "check the device path; create the volume with 'storcrypt volume create'", "xVolumeNotFound");
  }
  return backend_.inspect(device);
}

Result<std::pair<HeaderInfo, std::pair<int, VolumeToken>>> VolumeManager::load_storcrypt(const std::string& device,
                                                                                         const std::string& what) {
  STORCRYPT_ASSIGN_OR_RETURN(HeaderInfo hi, load_header(device));
  auto tokp = find_token(hi.tokens);
  if (!tokp.ok()) {
    if (tokp.error().code() != ErrorCode::kNotFound) return std::move(tokp).error().context(what + " " + device);
    return Error(ErrorCode::kConflict,
                 "refusing to " + what + " " + device + ": its LUKS2 header (uuid " + hi.uuid +
                     ") has no storcrypt token, it is a LUKS volume of another tool",
                 "check the device path; storcrypt acts only on the volumes it created", "xNotStorcryptVolume");
  }
  return std::make_pair(std::move(hi), std::move(tokp).value());
}

Status VolumeManager::check_not_in_use(const std::string& device, const std::string& what) {
  STORCRYPT_ASSIGN_OR_RETURN(auto users, probe_.users(device));
  if (users.empty()) return ok_status();
  std::string why;
  for (const auto& u : users) why += (why.empty() ? "" : "; ") + u;
  return Error(ErrorCode::kConflict, "refusing to " + what + " " + device + ": it is in use (" + why + ")",
               "unmount it, close or remove what holds it, or stop the process using it, then retry "
               "(--force never overrides this)",
               "xDeviceInUse");
}

const std::vector<std::string>& create_crash_points() {
  static const std::vector<std::string> p = {"begin",     "store-key", "key-stored", "format",     "formatted",
                                             "set-token", "token-set", "register",   "registered", "done"};
  return p;
}

const std::vector<std::string>& rekey_crash_points() {
  static const std::vector<std::string> p = {
      "begin",         "add-slot",         "slot-added",      "token-set",
      "token-updated", "provider-partial", "provider-commit", "provider-committed",
      "destroy-old",   "old-destroyed",    "token-final",     "retire-old",
      "done"};
  return p;
}

const std::vector<std::string>& erase_crash_points() {
  static const std::vector<std::string> p = {"begin",        "slots-destroyed",  "tokens-removed",
                                             "header-wiped", "backups-shredded", "keys-destroyed",
                                             "unregistered"};
  return p;
}

const std::vector<std::string>& migrate_crash_points() {
  static const std::vector<std::string> p = {"begin",          "store-key",     "key-stored",      "add-slot",
                                             "slot-added",     "set-token",     "token-switched",  "registered",
                                             "destroy-old",    "old-destroyed", "backup-replaced", "shred-media",
                                             "media-shredded", "done"};
  return p;
}

struct VolumeManager::Rekey {
  std::string device;
  std::string uuid;
  int token_id = -1;
  VolumeToken old_token;  ///< as before the rekey (no "previous")
  std::uint64_t new_gen = 0;
  int new_slot = -1;
  SecretBytes new_ak;  ///< empty on resume until fetched

  keys::KeyRef old_ref() const { return {old_token.key_id, old_token.generation}; }
  keys::KeyRef new_ref() const { return {old_token.key_id, new_gen}; }
  VolumeToken transitional() const {
    VolumeToken t = old_token;
    t.generation = new_gen;
    t.keyslot = new_slot;
    t.previous = KeyslotRef{old_token.generation, old_token.keyslot};
    return t;
  }
  VolumeToken final_token() const {
    VolumeToken t = old_token;
    t.generation = new_gen;
    t.keyslot = new_slot;
    t.previous.reset();
    return t;
  }
  std::int64_t id = 0;  ///< journal operation
  nlohmann::json payload() const {
    return {{"device", device},
            {"uuid", uuid},
            {"token_id", token_id},
            {"token", token_to_json(old_token)},
            {"new_generation", new_gen},
            {"new_keyslot", new_slot}};
  }
  static Result<Rekey> from_entry(const journal::Entry& e) {
    const auto& j = e.payload;
    if (!j.contains("device") || !j["device"].is_string() || !j.contains("uuid") || !j["uuid"].is_string() ||
        !j.contains("token_id") || !j["token_id"].is_number_integer() || !j.contains("token") ||
        !j["token"].is_string() || !j.contains("new_generation") || !j["new_generation"].is_number_unsigned() ||
        !j.contains("new_keyslot") || !j["new_keyslot"].is_number_integer())
      return malformed(e, "rekey");
    Rekey r;
    r.id = e.id;
    r.device = j["device"].get<std::string>();
    r.uuid = j["uuid"].get<std::string>();
    r.token_id = j["token_id"].get<int>();
    STORCRYPT_ASSIGN_OR_RETURN(r.old_token, token_from_json(j["token"].get<std::string>()));
    r.new_gen = j["new_generation"].get<std::uint64_t>();
    r.new_slot = j["new_keyslot"].get<int>();
    return r;
  }
};

VolumeManager::VolumeManager(CryptBackend& backend, DeviceProbe& probe, std::vector<keys::KeyProvider*> providers,
                             journal::Journal& journal, VolumeManagerConfig cfg, VolumeRegistry registry)
    : backend_(backend),
      probe_(probe),
      providers_(std::move(providers)),
      journal_(journal),
      cfg_(std::move(cfg)),
      registry_(std::move(registry)) {}

// The kind of the unfinished volume operation on `uuid`, if any.
Result<std::optional<std::string>> VolumeManager::pending_for(const std::string& uuid) {
  STORCRYPT_ASSIGN_OR_RETURN(auto pend, journal_.pending(kVolumeKinds));
  for (const auto& e : pend)
    if (e.payload.contains("uuid") && e.payload["uuid"].is_string() && e.payload["uuid"].get<std::string>() == uuid)
      return std::optional<std::string>(e.kind);
  return std::optional<std::string>();
}

Result<keys::KeyProvider*> VolumeManager::provider_for(const VolumeToken& t) {
  for (auto* p : providers_)
    if (p && p->kind() == t.provider_kind && p->id() == t.provider_id) return p;
  return Error(ErrorCode::kUnavailable,
               "key provider " + t.provider_kind + "/" + t.provider_id + " named by the volume is not configured",
               "configure that key provider on this system", "xKeyProviderMissing");
}

Status VolumeManager::backup_header(const std::string& device, const std::string& uuid) {
  if (cfg_.header_backup_dir.empty()) return ok_status();
  fs::path final_path = cfg_.header_backup_dir / ("storcrypt-" + uuid + ".luks2hdr");
  fs::path tmp = final_path;
  tmp += ".tmp";
  ::unlink(tmp.c_str());
  STORCRYPT_TRY(backend_.header_backup(device, tmp.string()));
  if (::rename(tmp.c_str(), final_path.c_str()) != 0) return errno_error(errno, "renaming " + tmp.string());
  return ok_status();
}

Result<VolumeInfo> VolumeManager::create(const CreateRequest& req, OpReport* report) {
  STORCRYPT_TRY(check_volume_create(cfg_.policy, req.encrypted));
  if (!req.encrypted)
    return Error(ErrorCode::kInvalidInput,
                 "storcrypt manages encrypted volumes only; " + req.device + " was left as is",
                 "use the device directly, or create it with encrypted=true");
  if (!valid_volume_name(req.name))
    return Error(ErrorCode::kInvalidInput, "volume name '" + req.name + "' is invalid",
                 "use 1..64 characters [A-Za-z0-9._-], not starting with '.' or '-'");
  if (req.device.empty() || req.device[0] != '/')
    return Error(ErrorCode::kInvalidInput, "device '" + req.device + "' is not an absolute path",
                 "give the block device path, e.g. /dev/sdb or /dev/loop0");
  if (providers_.empty() || !providers_[0])
    return Error(ErrorCode::kUnavailable, "no key provider configured", "configure key media or a key server");
  keys::KeyProvider* prov = providers_[0];
  if (!req.provider_kind.empty() || !req.provider_id.empty()) {
    VolumeToken want;
    want.provider_kind = req.provider_kind;
    want.provider_id = req.provider_id;
    STORCRYPT_ASSIGN_OR_RETURN(prov, provider_for(want));
  }
  std::string key_id = req.key_id;
  if (key_id.empty()) {
    STORCRYPT_ASSIGN_OR_RETURN(SecretBytes rnd, SecretBytes::random(8));
    key_id = "vol-" + to_hex(rnd.view());  // an identifier, not key material
  }
  if (!keys::valid_identifier(key_id))
    return Error(ErrorCode::kInvalidInput, "key id '" + key_id + "' is invalid",
                 "use 1..128 characters [A-Za-z0-9._:-]");
  STORCRYPT_ASSIGN_OR_RETURN(bool taken, prov->holds(key_id));
  if (taken)
    return Error(ErrorCode::kConflict,
                 "key id '" + key_id + "' already names a key on " + prov->kind() + " " + prov->id(),
                 "give another --key-id, or leave it out to have one generated", "xKeyIdInUse");
  // Never on a device in use (not even with force), never over a storcrypt
  // volume (its keys live on), over anything else only with force.
  STORCRYPT_TRY(check_not_in_use(req.device, "create a volume on"));
  STORCRYPT_ASSIGN_OR_RETURN(bool luks, backend_.is_luks(req.device));
  if (luks) {
    STORCRYPT_ASSIGN_OR_RETURN(HeaderInfo hi, backend_.inspect(req.device));
    if (auto tokp = find_token(hi.tokens); tokp.ok())
      return Error(ErrorCode::kConflict,
                   req.device + " already holds storcrypt volume " + tokp->second.name + " (uuid " + hi.uuid + ")",
                   "crypto-erase it first (storcrypt volume erase), or register it on this node with 'storcrypt "
                   "volume adopt'; --force does not overwrite a storcrypt volume",
                   "xVolumeExists");
  }
  STORCRYPT_ASSIGN_OR_RETURN(auto sigs, probe_.signatures(req.device));
  if (!sigs.empty()) {
    if (!req.force)
      return Error(ErrorCode::kConflict, req.device + " is not blank: it holds " + describe(sigs),
                   "check the device path; if what is on it may be destroyed, repeat with --force", "xDeviceNotBlank");
    add_warnings(report, {"overwriting " + describe(sigs) + " on " + req.device + " (--force)"});
  }
  STORCRYPT_ASSIGN_OR_RETURN(auto act, backend_.active(req.name));
  if (act)
    return Error(ErrorCode::kConflict, "a mapping named " + req.name + " already exists", "pick another volume name");

  STORCRYPT_ASSIGN_OR_RETURN(std::string uuid, random_uuid());
  nlohmann::json p = {{"device", req.device}, {"name", req.name},        {"key_id", key_id},
                      {"uuid", uuid},         {"provider_kind", prov->kind()}, {"provider_id", prov->id()}};
  STORCRYPT_ASSIGN_OR_RETURN(std::int64_t id, journal_.begin(kCreateKind, p));
  // A step that fails undoes what this create did (the header it wrote, the
  // key copies it stored); an interrupted one is settled by resume().
  auto undo = [&](Error e) -> Error {
    auto rb = create_rollback(id, p, e.message(), report);
    if (!rb.ok()) add_warnings(report, {"undoing the create failed: " + rb.error().message()});
    return std::move(e).context("creating volume " + req.name);
  };
  STORCRYPT_ASSIGN_OR_RETURN(SecretBytes ak, SecretBytes::random(keys::kAccessKeyBytes));
  keys::KeyRef ref{key_id, 1};
  auto prep = prov->store(ref, ak);
  if (!prep.ok()) return undo(std::move(prep).error());
  add_warnings(report, prep->warnings);
  STORCRYPT_TRY(journal_.point(id, "store-key"));
  STORCRYPT_TRY(journal_.step(id, "key-stored"));

  FormatParams fp;
  fp.sector_size = cfg_.sector_size;
  fp.pbkdf_iterations = cfg_.pbkdf_iterations;
  fp.label = req.name;
  fp.uuid = uuid;
  if (auto st = backend_.format(req.device, fp, 0, ak); !st.ok()) return undo(std::move(st).error());
  STORCRYPT_TRY(journal_.point(id, "format"));
  STORCRYPT_TRY(journal_.step(id, "formatted"));
  VolumeToken tok{req.name, prov->kind(), prov->id(), key_id, req.name, 1, 0, std::nullopt};
  if (auto tid = backend_.set_token(req.device, -1, token_to_json(tok)); !tid.ok()) return undo(std::move(tid).error());
  STORCRYPT_TRY(journal_.point(id, "set-token"));
  STORCRYPT_TRY(journal_.step(id, "token-set"));
  STORCRYPT_TRY(create_forward(id, p, report));
  return show(req.device);
}

// From "token-set" on the volume is complete: only forward (header backup,
// registration). Idempotent.
Status VolumeManager::create_forward(std::int64_t id, const nlohmann::json& p, OpReport* report) {
  const std::string device = p["device"].get<std::string>();
  const std::string uuid = p["uuid"].get<std::string>();
  STORCRYPT_ASSIGN_OR_RETURN(HeaderInfo hi, backend_.inspect(device));
  if (hi.uuid != uuid)
    return Error(ErrorCode::kConflict, device + " now holds volume " + hi.uuid + ", not " + uuid,
                 "the device was renamed; resume with the device that holds " + uuid);
  auto bst = backup_header(device, uuid);
  if (!bst.ok()) add_warnings(report, {"header backup failed: " + bst.error().message()});
  if (registry_.add) {
    STORCRYPT_ASSIGN_OR_RETURN(VolumeInfo vi, show(device));
    STORCRYPT_TRY(registry_.add(vi));
  }
  STORCRYPT_TRY(journal_.point(id, "register"));
  STORCRYPT_TRY(journal_.step(id, "registered"));
  return journal_.finish(id);
}

// Before "token-set": undo. Wipes the header only when it is the one this
// create wrote (its UUID), never what was on the device before; destroys
// every copy of the key this create stored. Idempotent.
Status VolumeManager::create_rollback(std::int64_t id, const nlohmann::json& p, std::string_view why,
                                      OpReport* report) {
  const std::string device = p["device"].get<std::string>();
  const std::string uuid = p["uuid"].get<std::string>();
  STORCRYPT_ASSIGN_OR_RETURN(bool luks, backend_.is_luks(device));
  if (luks) {
    STORCRYPT_ASSIGN_OR_RETURN(HeaderInfo hi, backend_.inspect(device));
    if (hi.uuid == uuid)
      STORCRYPT_TRY(backend_.wipe_area(device, std::max<std::uint64_t>(kDefaultHeaderArea, hi.data_offset_bytes)));
  }
  VolumeToken want;
  want.provider_kind = p["provider_kind"].get<std::string>();
  want.provider_id = p["provider_id"].get<std::string>();
  STORCRYPT_ASSIGN_OR_RETURN(keys::KeyProvider * prov, provider_for(want));
  STORCRYPT_ASSIGN_OR_RETURN(keys::ProviderReport rep, prov->destroy_all(p["key_id"].get<std::string>()));
  add_warnings(report, rep.warnings);
  return journal_.rolled_back(id, why);
}

Status VolumeManager::resume_create(const journal::Entry& e, OpReport* report, std::string* outcome) {
  const auto& p = e.payload;
  for (const char* k : {"device", "uuid", "key_id", "provider_kind", "provider_id"})
    if (!p.contains(k) || !p[k].is_string()) return malformed(e, "create");
  if (e.has_step("token-set")) {
    *outcome = "completed";
    return create_forward(e.id, p, report);
  }
  *outcome = "rolled-back";
  return create_rollback(e.id, p, "interrupted before the token was written (last step " + e.last_step() + ")",
                         report);
}

// Fetch the token's current key and use it (open, verify); when that fails,
// the previous generation's (a rekey interrupted between its steps). Returns
// the previous keyslot when only it worked, nullopt when the current one did,
// or the first error.
Result<std::optional<KeyslotRef>> VolumeManager::with_token_key(
    const VolumeToken& tok, keys::KeyProvider* prov, OpReport* report,
    const std::function<Status(const KeyslotRef&, const SecretBytes& ak)>& use) {
  std::vector<KeyslotRef> candidates{{tok.generation, tok.keyslot}};
  if (tok.previous) candidates.push_back(*tok.previous);
  std::optional<Error> first_error;
  for (std::size_t i = 0; i < candidates.size(); ++i) {
    const auto& c = candidates[i];
    auto fetched = prov->fetch({tok.key_id, c.generation});
    if (!fetched.ok()) {
      if (!first_error) first_error = std::move(fetched).error();
      continue;
    }
    auto st = use(c, fetched->ak);
    if (!st.ok()) {
      if (!first_error) first_error = std::move(st).error();
      continue;
    }
    add_warnings(report, fetched->warnings);
    if (i > 0) return std::optional<KeyslotRef>(c);
    return std::optional<KeyslotRef>();
  }
  return std::move(*first_error);
}

Status VolumeManager::open(const std::string& device, const std::string& name_in, OpReport* report) {
  STORCRYPT_ASSIGN_OR_RETURN(HeaderInfo hi, load_header(device));
  STORCRYPT_ASSIGN_OR_RETURN(auto tokp, find_token(hi.tokens));
  const VolumeToken& tok = tokp.second;
  std::string name = name_in.empty() ? tok.name : name_in;
  if (!valid_volume_name(name))
    return Error(ErrorCode::kInvalidInput, "mapping name '" + name + "' is invalid",
                 "use 1..64 characters [A-Za-z0-9._-]");
  STORCRYPT_ASSIGN_OR_RETURN(auto act, backend_.active(name));
  if (act)
    return Error(ErrorCode::kConflict, "/dev/mapper/" + name + " is already open",
                 act->uuid == hi.uuid ? "nothing to do" : "another volume uses that name; close it or pick another",
                 "xVolumeOpen");
  STORCRYPT_ASSIGN_OR_RETURN(keys::KeyProvider * prov, provider_for(tok));

  auto used = with_token_key(tok, prov, report, [&](const KeyslotRef& c, const SecretBytes& ak) {
    return backend_.activate(device, name, c.keyslot, ak, cfg_.activation);
  });
  if (!used.ok()) return std::move(used).error().context("cannot open " + device);
  if (*used)
    add_warnings(report, {"opened with the previous key (generation " + std::to_string((*used)->generation) +
                          "): a rekey was interrupted; run 'storcrypt volume resume'"});
  return ok_status();
}

Status VolumeManager::close(const std::string& name) {
  STORCRYPT_ASSIGN_OR_RETURN(auto act, backend_.active(name));
  if (!act)
    return Error(ErrorCode::kNotFound, "/dev/mapper/" + name + " is not open", "check the name with 'volume list'");
  return backend_.deactivate(name);
}

Result<VolumeInfo> VolumeManager::show(const std::string& device) {
  STORCRYPT_ASSIGN_OR_RETURN(HeaderInfo hi, load_header(device));
  STORCRYPT_ASSIGN_OR_RETURN(auto tokp, find_token(hi.tokens));
  const VolumeToken& tok = tokp.second;
  VolumeInfo vi;
  vi.device = device;
  vi.uuid = hi.uuid;
  vi.name = tok.name;
  vi.cipher = hi.cipher + "-" + hi.cipher_mode;
  vi.key_bits = hi.volume_key_bytes * 8;
  vi.sector_size = hi.sector_size;
  vi.provider_kind = tok.provider_kind;
  vi.provider_id = tok.provider_id;
  vi.key_id = tok.key_id;
  vi.generation = tok.generation;
  vi.keyslot = tok.keyslot;
  vi.active_keyslots = hi.active_keyslots;
  STORCRYPT_ASSIGN_OR_RETURN(auto act, backend_.active(tok.name));
  vi.state = act && act->uuid == hi.uuid ? "open" : "closed";
  vi.rekey_in_progress = tok.previous.has_value();
  STORCRYPT_ASSIGN_OR_RETURN(auto pend, pending_for(hi.uuid));
  if (pend && *pend == kRekeyKind) vi.rekey_in_progress = true;
  return vi;
}

Result<std::vector<VolumeInfo>> VolumeManager::list(const std::vector<std::string>& devices) {
  std::vector<VolumeInfo> out;
  for (auto& d : devices) {
    auto luks = backend_.is_luks(d);
    if (!luks.ok() || !*luks) continue;
    auto vi = show(d);
    if (vi.ok()) out.push_back(std::move(vi).value());
  }
  return out;
}

// ---- rekey -----------------------------------------------------------------

Status VolumeManager::rekey(const std::string& device, OpReport* report) {
  STORCRYPT_ASSIGN_OR_RETURN(HeaderInfo hi, load_header(device));
  STORCRYPT_ASSIGN_OR_RETURN(auto tokp, find_token(hi.tokens));
  STORCRYPT_ASSIGN_OR_RETURN(auto pend, pending_for(hi.uuid));
  if (pend)
    return Error(ErrorCode::kConflict, "an interrupted " + *pend + " of " + device + " is pending",
                 "run 'storcrypt volume resume' first", "xOperationPending");
  if (tokp.second.previous)
    return Error(ErrorCode::kConflict, "the token of " + device + " shows an unfinished rekey",
                 "run 'storcrypt volume resume' first", "xOperationPending");
  STORCRYPT_ASSIGN_OR_RETURN(keys::KeyProvider * prov, provider_for(tokp.second));

  Rekey r;
  r.device = device;
  r.uuid = hi.uuid;
  r.token_id = tokp.first;
  r.old_token = tokp.second;
  r.new_gen = r.old_token.generation + 1;
  for (int s = 0; s < 32 && r.new_slot < 0; ++s)
    if (std::find(hi.active_keyslots.begin(), hi.active_keyslots.end(), s) == hi.active_keyslots.end()) r.new_slot = s;
  if (r.new_slot < 0) return no_free_keyslot(device);

  STORCRYPT_ASSIGN_OR_RETURN(keys::FetchedKey old, prov->fetch(r.old_ref()));
  add_warnings(report, old.warnings);
  STORCRYPT_TRY(backend_.verify_key(device, r.old_token.keyslot, old.ak));
  STORCRYPT_ASSIGN_OR_RETURN(r.new_ak, SecretBytes::random(keys::kAccessKeyBytes));

  STORCRYPT_ASSIGN_OR_RETURN(r.id, journal_.begin(kRekeyKind, r.payload()));
  STORCRYPT_TRY(backend_.add_keyslot(device, r.new_slot, old.ak, r.new_ak, cfg_.pbkdf_iterations));
  STORCRYPT_TRY(journal_.point(r.id, "add-slot"));
  STORCRYPT_TRY(journal_.step(r.id, "slot-added"));
  STORCRYPT_TRY(backend_.set_token(device, r.token_id, token_to_json(r.transitional())));
  STORCRYPT_TRY(journal_.point(r.id, "token-set"));
  STORCRYPT_TRY(journal_.step(r.id, "token-updated"));
  STORCRYPT_ASSIGN_OR_RETURN(keys::ProviderReport prep, prov->rekey(r.old_ref(), r.new_ref(), r.new_ak));
  add_warnings(report, prep.warnings);
  STORCRYPT_TRY(journal_.point(r.id, "provider-commit"));
  STORCRYPT_TRY(journal_.step(r.id, "provider-committed"));
  return rekey_forward(r, "provider-committed", report);
}

// From "provider-committed" on, the only direction is forward: the new key is
// with the provider. Every step is idempotent so resume() can repeat it.
Status VolumeManager::rekey_forward(Rekey& r, const std::string& from_step, OpReport* report) {
  STORCRYPT_ASSIGN_OR_RETURN(keys::KeyProvider * prov, provider_for(r.old_token));
  STORCRYPT_ASSIGN_OR_RETURN(HeaderInfo hi, backend_.inspect(r.device));
  if (hi.uuid != r.uuid)
    return Error(ErrorCode::kConflict, r.device + " now holds volume " + hi.uuid + ", not " + r.uuid,
                 "the device was renamed; resume with the device that holds " + r.uuid);
  auto has_slot = [&](int s) {
    return std::find(hi.active_keyslots.begin(), hi.active_keyslots.end(), s) != hi.active_keyslots.end();
  };
  if (from_step == "provider-committed") {
    // Never destroy the old slot unless the new key demonstrably opens the new one.
    if (r.new_ak.empty()) {
      STORCRYPT_ASSIGN_OR_RETURN(keys::FetchedKey nk, prov->fetch(r.new_ref()));
      add_warnings(report, nk.warnings);
      r.new_ak = std::move(nk.ak);
    }
    STORCRYPT_TRY(backend_.verify_key(r.device, r.new_slot, r.new_ak));
    if (r.old_token.keyslot != r.new_slot && has_slot(r.old_token.keyslot))
      STORCRYPT_TRY(backend_.destroy_keyslot(r.device, r.old_token.keyslot));
    STORCRYPT_TRY(journal_.point(r.id, "destroy-old"));
    STORCRYPT_TRY(journal_.step(r.id, "old-destroyed"));
  }
  STORCRYPT_TRY(backend_.set_token(r.device, r.token_id, token_to_json(r.final_token())));
  STORCRYPT_TRY(journal_.point(r.id, "token-final"));
  STORCRYPT_ASSIGN_OR_RETURN(keys::ProviderReport ret, prov->retire(r.old_ref()));
  add_warnings(report, ret.warnings);
  STORCRYPT_TRY(journal_.point(r.id, "retire-old"));
  STORCRYPT_TRY(journal_.finish(r.id));
  auto bst = backup_header(r.device, r.uuid);
  if (!bst.ok()) add_warnings(report, {"header backup failed: " + bst.error().message()});
  return ok_status();
}

// Before "provider-committed": the new key may or may not have reached the
// provider. If it did (and opens the new slot) go forward; otherwise undo.
Status VolumeManager::rekey_rollback(Rekey& r, OpReport* report) {
  STORCRYPT_ASSIGN_OR_RETURN(keys::KeyProvider * prov, provider_for(r.old_token));
  STORCRYPT_ASSIGN_OR_RETURN(HeaderInfo hi, backend_.inspect(r.device));
  if (hi.uuid != r.uuid)
    return Error(ErrorCode::kConflict, r.device + " now holds volume " + hi.uuid + ", not " + r.uuid,
                 "the device was renamed; resume with the device that holds " + r.uuid);
  // The old key must still be there: it is what the volume falls back to.
  if (std::find(hi.active_keyslots.begin(), hi.active_keyslots.end(), r.old_token.keyslot) == hi.active_keyslots.end())
    return Error(ErrorCode::kInternal,
                 "rekey rollback: old keyslot " + std::to_string(r.old_token.keyslot) + " of " + r.device +
                     " is gone before the new key was committed",
                 "inspect the header with 'cryptsetup luksDump'; restore the header backup if needed");
  if (r.new_slot != r.old_token.keyslot &&
      std::find(hi.active_keyslots.begin(), hi.active_keyslots.end(), r.new_slot) != hi.active_keyslots.end())
    STORCRYPT_TRY(backend_.destroy_keyslot(r.device, r.new_slot));
  STORCRYPT_TRY(backend_.set_token(r.device, r.token_id, token_to_json(r.old_token)));
  STORCRYPT_ASSIGN_OR_RETURN(keys::ProviderReport ret, prov->retire(r.new_ref()));
  add_warnings(report, ret.warnings);
  return journal_.rolled_back(r.id, "interrupted before the new key was committed");
}

Status VolumeManager::resume_rekey(const journal::Entry& e, OpReport* report, std::string* outcome) {
  STORCRYPT_ASSIGN_OR_RETURN(Rekey r, Rekey::from_entry(e));
  STORCRYPT_ASSIGN_OR_RETURN(keys::KeyProvider * prov, provider_for(r.old_token));
  if (e.has_step("provider-committed")) {
    *outcome = "completed";
    return rekey_forward(r, e.has_step("old-destroyed") ? "old-destroyed" : "provider-committed", report);
  }
  // begin / slot-added / token-updated: did the provider commit happen?
  auto nk = prov->fetch(r.new_ref());
  if (nk.ok()) {
    auto v = backend_.verify_key(r.device, r.new_slot, nk->ak);
    if (v.ok()) {
      // Committed (maybe to some media only): make every present medium hold it.
      STORCRYPT_ASSIGN_OR_RETURN(keys::ProviderReport rep, prov->store(r.new_ref(), nk->ak));
      add_warnings(report, rep.warnings);
      STORCRYPT_TRY(backend_.set_token(r.device, r.token_id, token_to_json(r.transitional())));
      STORCRYPT_TRY(journal_.step(r.id, "provider-committed"));
      r.new_ak = std::move(nk->ak);
      *outcome = "completed";
      return rekey_forward(r, "provider-committed", report);
    }
  }
  *outcome = "rolled-back";
  return rekey_rollback(r, report);
}

// ---- erase -----------------------------------------------------------------

Status VolumeManager::erase(const std::string& device, OpReport* report) {
  STORCRYPT_ASSIGN_OR_RETURN(auto hv, load_storcrypt(device, "crypto-erase"));
  const HeaderInfo& hi = hv.first;
  const VolumeToken& tok = hv.second.second;
  nlohmann::json data = {{"device", device}, {"uuid", hi.uuid}, {"data_offset", hi.data_offset_bytes}};
  STORCRYPT_ASSIGN_OR_RETURN(auto act, backend_.active(tok.name));
  if (act && act->uuid == hi.uuid)
    return Error(ErrorCode::kConflict, device + " is open as /dev/mapper/" + tok.name,
                 "close the volume first (storcrypt volume close " + tok.name + ")", "xVolumeOpen");
  STORCRYPT_TRY(check_not_in_use(device, "crypto-erase"));
  data["token"] = token_to_json(tok);
  STORCRYPT_ASSIGN_OR_RETURN(std::int64_t id, journal_.begin(kEraseKind, data));
  return erase_forward(id, data, report);
}

Result<VolumeInfo> VolumeManager::adopt(const std::string& device, OpReport* report) {
  STORCRYPT_ASSIGN_OR_RETURN(auto hv, load_storcrypt(device, "adopt"));
  const VolumeToken& tok = hv.second.second;
  STORCRYPT_ASSIGN_OR_RETURN(keys::KeyProvider * prov, provider_for(tok));
  auto used = with_token_key(tok, prov, report, [&](const KeyslotRef& c, const SecretBytes& ak) {
    return backend_.verify_key(device, c.keyslot, ak);
  });
  if (!used.ok())
    return std::move(used).error().context("not adopting " + device + ": key " + tok.key_id + " generation " + std::to_string(tok.generation) +
                " named by its storcrypt token is not reachable or does not open keyslot " +
                                           std::to_string(tok.keyslot));
  if (*used)
    add_warnings(report, {"only the previous key (generation " + std::to_string((*used)->generation) +
                          ") opens it: a rekey was interrupted; run 'storcrypt volume resume'"});
  return show(device);
}

// Forward only, every step idempotent: after the intent is journalled the
// erase is finished even if the process dies on the way.
Status VolumeManager::erase_forward(std::int64_t id, const nlohmann::json& data, OpReport* report) {
  const std::string dev = data["device"].get<std::string>();
  const std::string uuid = data["uuid"].get<std::string>();
  std::uint64_t area = kDefaultHeaderArea;
  if (data.contains("data_offset") && data["data_offset"].is_number_unsigned())
    area = std::max<std::uint64_t>(area, data["data_offset"].get<std::uint64_t>());
  std::optional<VolumeToken> tok;
  if (data.contains("token") && data["token"].is_string()) {
    auto t = token_from_json(data["token"].get<std::string>());
    if (t.ok()) tok = std::move(t).value();
  }

  STORCRYPT_ASSIGN_OR_RETURN(bool luks, backend_.is_luks(dev));
  if (luks) {
    STORCRYPT_ASSIGN_OR_RETURN(HeaderInfo hi, backend_.inspect(dev));
    if (hi.uuid != uuid)
      return Error(ErrorCode::kConflict, dev + " now holds volume " + hi.uuid + ", not " + uuid,
                   "the device was renamed; resume with the device that holds " + uuid);
    for (int s : hi.active_keyslots) STORCRYPT_TRY(backend_.destroy_keyslot(dev, s));
    STORCRYPT_TRY(journal_.step(id, "slots-destroyed"));
    for (auto& [tid, _] : hi.tokens) STORCRYPT_TRY(backend_.remove_token(dev, tid));
    STORCRYPT_TRY(journal_.step(id, "tokens-removed"));
  }
  STORCRYPT_TRY(backend_.wipe_area(dev, area));
  STORCRYPT_TRY(journal_.step(id, "header-wiped"));
  if (!cfg_.header_backup_dir.empty()) {
    fs::path b = cfg_.header_backup_dir / ("storcrypt-" + uuid + ".luks2hdr");
    fs::path t = b;
    t += ".tmp";
    STORCRYPT_TRY(keys::shred_file(b));
    STORCRYPT_TRY(keys::shred_file(t));
  }
  STORCRYPT_TRY(journal_.step(id, "backups-shredded"));
  if (tok) {
    STORCRYPT_ASSIGN_OR_RETURN(keys::KeyProvider * prov, provider_for(*tok));
    STORCRYPT_ASSIGN_OR_RETURN(keys::ProviderReport rep, prov->destroy_all(tok->key_id));
    add_warnings(report, rep.warnings);
  }
  STORCRYPT_TRY(journal_.step(id, "keys-destroyed"));
  if (registry_.remove) STORCRYPT_TRY(registry_.remove(uuid));
  STORCRYPT_TRY(journal_.step(id, "unregistered"));
  return journal_.finish(id);
}

// ---- migrate ---------------------------------------------------------------

// One volume's move from the key media to an external provider. The payload
// names the volume, its token before the move, the target and the new
// generation and keyslot; never key material.
struct VolumeManager::Migration {
  std::int64_t id = 0;
  std::string device;
  std::string uuid;
  int token_id = -1;
  VolumeToken old_token;
  std::string to_kind, to_id;
  std::uint64_t new_gen = 0;
  int new_slot = -1;
  SecretBytes new_ak;           ///< empty on resume until fetched
  std::set<std::string> steps;  ///< recorded before a resume

  keys::KeyRef old_ref() const { return {old_token.key_id, old_token.generation}; }
  keys::KeyRef new_ref() const { return {old_token.key_id, new_gen}; }
  VolumeToken target_token() const {
    VolumeToken t = old_token;
    t.provider_kind = to_kind;
    t.provider_id = to_id;
    t.generation = new_gen;
    t.keyslot = new_slot;
    t.previous.reset();
    return t;
  }
  nlohmann::json payload() const {
    return {{"device", device},   {"uuid", uuid},   {"token_id", token_id},      {"token", token_to_json(old_token)},
            {"to_kind", to_kind}, {"to_id", to_id}, {"new_generation", new_gen}, {"new_keyslot", new_slot}};
  }
  static Result<Migration> from_entry(const journal::Entry& e) {
    const auto& j = e.payload;
    for (const char* k : {"device", "uuid", "token", "to_kind", "to_id"})
      if (!j.contains(k) || !j[k].is_string()) return malformed(e, "migrate");
    if (!j.contains("token_id") || !j["token_id"].is_number_integer() || !j.contains("new_generation") ||
        !j["new_generation"].is_number_unsigned() || !j.contains("new_keyslot") ||
        !j["new_keyslot"].is_number_integer())
      return malformed(e, "migrate");
    Migration m;
    m.id = e.id;
    m.device = j["device"].get<std::string>();
    m.uuid = j["uuid"].get<std::string>();
    m.token_id = j["token_id"].get<int>();
    STORCRYPT_ASSIGN_OR_RETURN(m.old_token, token_from_json(j["token"].get<std::string>()));
    m.to_kind = j["to_kind"].get<std::string>();
    m.to_id = j["to_id"].get<std::string>();
    m.new_gen = j["new_generation"].get<std::uint64_t>();
    m.new_slot = j["new_keyslot"].get<int>();
    m.steps.insert(e.steps.begin(), e.steps.end());
    return m;
  }
};

Status VolumeManager::migrate(const std::string& device, keys::KeyProvider& target, OpReport* report, bool* moved) {
  if (moved) *moved = false;
  STORCRYPT_ASSIGN_OR_RETURN(auto hv, load_storcrypt(device, "migrate"));
  const HeaderInfo& hi = hv.first;
  const VolumeToken& tok = hv.second.second;
  STORCRYPT_ASSIGN_OR_RETURN(auto pend, pending_for(hi.uuid));
  if (pend)
    return Error(ErrorCode::kConflict, "an interrupted " + *pend + " of " + device + " is pending",
                 "run 'storcrypt volume resume' first", "xOperationPending");
  if (tok.previous)
    return Error(ErrorCode::kConflict, "the token of " + device + " shows an unfinished rekey",
                 "run 'storcrypt volume resume' first", "xOperationPending");
  if (tok.provider_kind == target.kind() && tok.provider_id == target.id()) return ok_status();
  if (tok.provider_kind != kKeyMediaKind)
    return Error(ErrorCode::kConflict,
                 "volume " + tok.name + " (" + device + ") keeps its key on " + tok.provider_kind + " provider " +
                     tok.provider_id +
                     "; only key-media volumes are migrated, keys never move from an external "
                     "key provider to another provider or back to local key media (TS7700 rule)",
                 "leave the volume on its provider; to retire it, copy the data off and crypto-erase it",
                 "xMigrationNotSupported");
  STORCRYPT_ASSIGN_OR_RETURN(keys::KeyProvider * from, provider_for(tok));

  Migration m;
  m.device = device;
  m.uuid = hi.uuid;
  m.token_id = hv.second.first;
  m.old_token = tok;
  m.to_kind = target.kind();
  m.to_id = target.id();
  m.new_gen = tok.generation + 1;
  for (int s = 0; s < 32 && m.new_slot < 0; ++s)
    if (std::find(hi.active_keyslots.begin(), hi.active_keyslots.end(), s) == hi.active_keyslots.end()) m.new_slot = s;
  if (m.new_slot < 0) return no_free_keyslot(device);
  STORCRYPT_ASSIGN_OR_RETURN(bool taken, target.holds(tok.key_id));
  if (taken)
    return Error(ErrorCode::kConflict,
                 "key id '" + tok.key_id + "' of volume " + tok.name + " already names a key on " + target.kind() +
                     " provider " + target.id(),
                 "inspect the key provider's keys; the volume stays on the key media", "xKeyIdInUse");

  STORCRYPT_ASSIGN_OR_RETURN(keys::FetchedKey old, from->fetch(m.old_ref()));
  add_warnings(report, old.warnings);
  STORCRYPT_TRY(backend_.verify_key(device, tok.keyslot, old.ak));
  STORCRYPT_ASSIGN_OR_RETURN(m.new_ak, SecretBytes::random(keys::kAccessKeyBytes));

  STORCRYPT_ASSIGN_OR_RETURN(m.id, journal_.begin(kMigrateKind, m.payload()));
  // A failing step before the token switch is undone at once (the volume
  // keeps its key-media key); an interrupted one is settled by resume().
  auto undo = [&](Error e) -> Error {
    auto h = backend_.inspect(device);
    auto rb = h.ok() ? migrate_rollback(m, *h, report) : Status(std::move(h).error());
    if (!rb.ok()) add_warnings(report, {"undoing the migration failed: " + rb.error().message()});
    return std::move(e).context("migrating volume " + tok.name);
  };
  auto stored = target.store(m.new_ref(), m.new_ak);
  if (!stored.ok()) return undo(std::move(stored).error());
  add_warnings(report, stored->warnings);
  STORCRYPT_TRY(journal_.point(m.id, "store-key"));
  STORCRYPT_TRY(journal_.step(m.id, "key-stored"));
  if (auto st = backend_.add_keyslot(device, m.new_slot, old.ak, m.new_ak, cfg_.pbkdf_iterations); !st.ok())
    return undo(std::move(st).error());
  STORCRYPT_TRY(journal_.point(m.id, "add-slot"));
  STORCRYPT_TRY(journal_.step(m.id, "slot-added"));
  // The token names the target only once the new key demonstrably opens the
  // new keyslot; one header write switches it.
  if (auto st = backend_.verify_key(device, m.new_slot, m.new_ak); !st.ok()) return undo(std::move(st).error());
  if (auto t = backend_.set_token(device, m.token_id, token_to_json(m.target_token())); !t.ok())
    return undo(std::move(t).error());
  STORCRYPT_TRY(journal_.point(m.id, "set-token"));
  STORCRYPT_TRY(journal_.step(m.id, "token-switched"));
  STORCRYPT_TRY(migrate_forward(m, report));
  if (moved) *moved = true;
  return ok_status();
}

// From "token-switched" on: the volume opens with the target's key; only
// forward. Every step is idempotent.
Status VolumeManager::migrate_forward(Migration& m, OpReport* report) {
  STORCRYPT_ASSIGN_OR_RETURN(HeaderInfo hi, backend_.inspect(m.device));
  if (hi.uuid != m.uuid)
    return Error(ErrorCode::kConflict, m.device + " now holds volume " + hi.uuid + ", not " + m.uuid,
                 "the device was renamed; resume with the device that holds " + m.uuid);
  STORCRYPT_ASSIGN_OR_RETURN(keys::KeyProvider * to, provider_for(m.target_token()));
  if (registry_.add) {
    STORCRYPT_ASSIGN_OR_RETURN(VolumeInfo vi, show(m.device));
    STORCRYPT_TRY(registry_.add(vi));
  }
  STORCRYPT_TRY(journal_.step(m.id, "registered"));
  if (m.old_token.keyslot != m.new_slot && std::find(hi.active_keyslots.begin(), hi.active_keyslots.end(),
                                                     m.old_token.keyslot) != hi.active_keyslots.end()) {
    // Never destroy the old slot unless the target's key opens the new one.
    if (m.new_ak.empty()) {
      STORCRYPT_ASSIGN_OR_RETURN(keys::FetchedKey nk, to->fetch(m.new_ref()));
      add_warnings(report, nk.warnings);
      m.new_ak = std::move(nk.ak);
    }
    STORCRYPT_TRY(backend_.verify_key(m.device, m.new_slot, m.new_ak));
    STORCRYPT_TRY(backend_.destroy_keyslot(m.device, m.old_token.keyslot));
  }
  STORCRYPT_TRY(journal_.point(m.id, "destroy-old"));
  STORCRYPT_TRY(journal_.step(m.id, "old-destroyed"));
  // The header backup still holds the old keyslot: shred it, then take a new one.
  if (!cfg_.header_backup_dir.empty() && !m.steps.count("backup-replaced")) {
    fs::path b = cfg_.header_backup_dir / ("storcrypt-" + m.uuid + ".luks2hdr");
    fs::path t = b;
    t += ".tmp";
    STORCRYPT_TRY(keys::shred_file(b));
    STORCRYPT_TRY(keys::shred_file(t));
    auto bst = backup_header(m.device, m.uuid);
    if (!bst.ok()) add_warnings(report, {"header backup failed: " + bst.error().message()});
  }
  STORCRYPT_TRY(journal_.step(m.id, "backup-replaced"));
  STORCRYPT_ASSIGN_OR_RETURN(keys::KeyProvider * from, provider_for(m.old_token));
  STORCRYPT_ASSIGN_OR_RETURN(keys::ProviderReport rep, from->destroy_all(m.old_token.key_id));
  add_warnings(report, rep.warnings);
  STORCRYPT_TRY(journal_.point(m.id, "shred-media"));
  STORCRYPT_TRY(journal_.step(m.id, "media-shredded"));
  return journal_.finish(m.id);
}

// Before "token-switched": the old keyslot and the key-media key are intact.
// Put the old token back, destroy the new keyslot and the target's new key.
// Idempotent.
Status VolumeManager::migrate_rollback(Migration& m, const HeaderInfo& hi, OpReport* report) {
  if (hi.uuid != m.uuid)
    return Error(ErrorCode::kConflict, m.device + " now holds volume " + hi.uuid + ", not " + m.uuid,
                 "the device was renamed; resume with the device that holds " + m.uuid);
  auto has_slot = [&](int s) {
    return std::find(hi.active_keyslots.begin(), hi.active_keyslots.end(), s) != hi.active_keyslots.end();
  };
  if (!has_slot(m.old_token.keyslot))
    return Error(ErrorCode::kInternal,
                 "migration rollback: old keyslot " + std::to_string(m.old_token.keyslot) + " of " + m.device +
                     " is gone before the token was switched",
                 "inspect the header with 'cryptsetup luksDump'; restore the header backup if needed");
  STORCRYPT_TRY(backend_.set_token(m.device, m.token_id, token_to_json(m.old_token)));
  if (m.new_slot != m.old_token.keyslot && has_slot(m.new_slot))
    STORCRYPT_TRY(backend_.destroy_keyslot(m.device, m.new_slot));
  STORCRYPT_ASSIGN_OR_RETURN(keys::KeyProvider * to, provider_for(m.target_token()));
  STORCRYPT_ASSIGN_OR_RETURN(keys::ProviderReport rep, to->retire(m.new_ref()));
  add_warnings(report, rep.warnings);
  return journal_.rolled_back(m.id, "interrupted before the volume's token named the new key provider");
}

Status VolumeManager::resume_migrate(const journal::Entry& e, OpReport* report, std::string* outcome) {
  STORCRYPT_ASSIGN_OR_RETURN(Migration m, Migration::from_entry(e));
  if (e.has_step("token-switched")) {
    *outcome = "completed";
    return migrate_forward(m, report);
  }
  STORCRYPT_ASSIGN_OR_RETURN(keys::KeyProvider * to, provider_for(m.target_token()));
  STORCRYPT_ASSIGN_OR_RETURN(HeaderInfo hi, backend_.inspect(m.device));
  if (hi.uuid != m.uuid)
    return Error(ErrorCode::kConflict, m.device + " now holds volume " + hi.uuid + ", not " + m.uuid,
                 "the device was renamed; resume with the device that holds " + m.uuid);
  // Did the new key reach the target, and does it open the new keyslot? An
  // unreachable target settles nothing (the operation stays pending; the
  // volume opens with whatever its token names).
  auto nk = to->fetch(m.new_ref());
  if (!nk.ok() && nk.error().code() != ErrorCode::kNotFound) return std::move(nk).error();
  bool has_new =
      std::find(hi.active_keyslots.begin(), hi.active_keyslots.end(), m.new_slot) != hi.active_keyslots.end();
  if (nk.ok() && has_new && backend_.verify_key(m.device, m.new_slot, nk->ak).ok()) {
    STORCRYPT_ASSIGN_OR_RETURN(keys::ProviderReport rep, to->store(m.new_ref(), nk->ak));  // every server
    add_warnings(report, rep.warnings);
    STORCRYPT_TRY(backend_.set_token(m.device, m.token_id, token_to_json(m.target_token())));
    STORCRYPT_TRY(journal_.step(m.id, "token-switched"));
    m.new_ak = std::move(nk->ak);
    *outcome = "completed";
    return migrate_forward(m, report);
  }
  *outcome = "rolled-back";
  return migrate_rollback(m, hi, report);
}

// ---- resume ----------------------------------------------------------------

Status VolumeManager::resume_one(const journal::Entry& e, OpReport* report, std::string* outcome) {
  if (e.kind == kCreateKind) return resume_create(e, report, outcome);
  if (e.kind == kRekeyKind) return resume_rekey(e, report, outcome);
  if (e.kind == kMigrateKind) return resume_migrate(e, report, outcome);
  if (e.kind == kEraseKind) {
    const auto& p = e.payload;
    if (!p.contains("device") || !p["device"].is_string() || !p.contains("uuid") || !p["uuid"].is_string())
      return malformed(e, "erase");
    *outcome = "completed";
    return erase_forward(e.id, p, report);
  }
  return Error(ErrorCode::kInternal, "journal operation " + std::to_string(e.id) + " is not a volume operation (" +
                                         e.kind + ")");
}

Result<ResumeReport> VolumeManager::resume() {
  ResumeReport out;
  STORCRYPT_ASSIGN_OR_RETURN(auto pend, journal_.pending(kVolumeKinds));
  for (auto& e : pend) {
    OpReport rep;
    std::string outcome;
    Status st = resume_one(e, &rep, &outcome);
    out.warnings.insert(out.warnings.end(), rep.warnings.begin(), rep.warnings.end());
    std::string device = e.payload.value("device", std::string());
    if (!st.ok())
      return std::move(st).error().context("resuming " + e.kind + " of " + device + " (last step '" + e.last_step() +
                                           "')");
    out.items.push_back({e.kind, e.payload.value("uuid", std::string()), device, outcome});
  }
  return out;
}

void VolumeManager::register_resume_handlers() {
  for (const char* kind : {kCreateKind, kRekeyKind, kEraseKind, kMigrateKind}) {
    journal_.register_handler(kind, [this](journal::Journal& j, const journal::Entry& e) -> Status {
      OpReport rep;
      std::string outcome;
      Status st = resume_one(e, &rep, &outcome);
      // Whatever stops it now (media absent, device missing) may be gone at
      // the next start or 'volume resume': keep the operation pending.
      if (!st.ok()) (void)j.defer(e.id, st.error().message());
      return st;
    });
  }
}

}  // namespace storcrypt::dm
