// API methods of the at-rest nouns: `volume` (LUKS2 volumes, storcrypt_dm) and
// `keymedia` (local key media, storcrypt_keys).
//
// Configuration: a JSON file next to storcrypt.conf, "at-rest.json" (or the
// path in STORCRYPT_AT_REST_CONFIG):
//   {"system_id": "node-a",                 // default: /etc/machine-id
//    "media_dirs": ["/media/key1", "/media/key2"],
//    "desired_copies": 4,
//    "no_workqueue": false,                 // dm-crypt no_read/no_write_workqueue
//    "encryption_always_on": true,
//    "header_backup_dir": "/var/lib/storcrypt/luks-headers",
//    "unlock_retry_seconds": 60}              // retry of volumes locked at start-up
// At start-up (after the journals are resumed) every registered volume that is
// not open is opened with its key from the media; each one that stays locked
// raises event 5010 naming the volume and the reason, and is retried every
// unlock_retry_seconds; the event is marked fixed once it opens.
// Without it the nouns answer "not configured". Create, rekey and erase are
// operations of the daemon's one journal (kinds volume.create, volume.rekey,
// volume.erase; storcrypt/journal/journal.h); the journal's recovery at
// start-up settles interrupted ones, or leaves them pending (deferred) when
// e.g. the key media are absent, for 'storcrypt volume resume'.
//
// ear.migrate (storcrypt ear migrate; EnableEncryptionAtRest with a KMIP key
// provider starts it too) moves every registered key-media volume's access
// key to the active KMIP key provider, one journalled volume.migrate per
// volume (dm::VolumeManager::migrate): a SIGKILL at any step leaves every
// volume openable and the restart's journal recovery finishes or rolls back
// the interrupted one; 'storcrypt ear migrate' again moves the rest. Keys
// never move from a KMIP key provider back to the key media (TS7700 rule:
// key_provider 'local' is refused with xMigrationNotSupported).
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <fstream>
#include <iterator>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>

#include "nouns/kmip_service.h"
#include "storcrypt/controller/at_rest.h"
#include "storcrypt/controller/auto_unlock.h"
#include "storcrypt/controller/journal_store.h"
#include "storcrypt/controller/nouns.h"
#include "storcrypt/dm/volume_manager.h"
#include "storcrypt/keys/key_media.h"
#include "storcrypt/keys/kmip_provider.h"

namespace storcrypt::controller {

using nlohmann::json;

namespace {

/// Event: a registered volume could not be opened at start-up (or on a retry).
constexpr int kVolumeLockedEvent = 5010;

EventDef volume_locked_event() {
  return {kVolumeLockedEvent,
          Severity::kError,
          "Encrypted volume stays locked",
          {"no key medium holding a valid copy of the volume's key is present (removed, not mounted)",
           "the key copies on the present media are corrupt, truncated or from another system",
           "the volume's device is missing or is no longer a storcrypt LUKS2 volume"},
          {"insert or mount a key medium that holds the key (see 'storcrypt keymedia status'); the daemon retries "
           "every unlock_retry_seconds and marks this event fixed when the volume opens",
           "check the media directories in at-rest.json match where the media are mounted",
           "open it by hand with 'storcrypt volume open VOLUME' to see the error",
           "if every copy of the key is lost the data cannot be recovered: restore from backup"}};
}

struct AtRestSettings {
  keys::KeyMediaConfig media;
  dm::VolumeManagerConfig volumes;
  std::uint64_t unlock_retry_seconds = 60;
};

std::string at_rest_config_path(const Context& ctx) {
  if (const char* e = std::getenv("STORCRYPT_AT_REST_CONFIG"); e && *e) return e;
  std::string base = ctx.config_path.empty() ? kDefaultConfigPath : ctx.config_path;
  auto slash = base.rfind('/');
  return (slash == std::string::npos ? std::string(".") : base.substr(0, slash)) + "/at-rest.json";
}

Result<AtRestSettings> load_settings(const std::string& path) {
  std::ifstream f(path);
  std::string text((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  auto j = json::parse(text, nullptr, false);
  auto bad = [&](const std::string& field, const std::string& want) {
    return Error(ErrorCode::kInvalidInput, path + ": field '" + field + "' " + want, "fix the field in " + path);
  };
  if (j.is_discarded() || !j.is_object()) return Error(ErrorCode::kInvalidInput, path + " is not a JSON object");
  AtRestSettings s;
  if (j.contains("system_id")) {
    if (!j["system_id"].is_string()) return bad("system_id", "must be a string");
    s.media.system_id = j["system_id"].get<std::string>();
  } else {
    std::ifstream m("/etc/machine-id");
    std::getline(m, s.media.system_id);
  }
  if (!j.contains("media_dirs") || !j["media_dirs"].is_array()) return bad("media_dirs", "must be an array of paths");
  for (const auto& d : j["media_dirs"]) {
    if (!d.is_string()) return bad("media_dirs", "must hold only strings");
    s.media.media_dirs.emplace_back(d.get<std::string>());
  }
  if (j.contains("desired_copies")) {
    if (!j["desired_copies"].is_number_unsigned() || j["desired_copies"].get<std::uint64_t>() < 1 ||
        j["desired_copies"].get<std::uint64_t>() > 64)
      return bad("desired_copies", "must be 1..64");
    s.media.desired_copies = j["desired_copies"].get<std::size_t>();
  }
  if (j.contains("no_workqueue")) {
    if (!j["no_workqueue"].is_boolean()) return bad("no_workqueue", "must be true or false");
    s.volumes.activation.no_read_workqueue = s.volumes.activation.no_write_workqueue = j["no_workqueue"].get<bool>();
  }
  if (j.contains("encryption_always_on")) {
    if (!j["encryption_always_on"].is_boolean()) return bad("encryption_always_on", "must be true or false");
    s.volumes.policy.encryption_always_on = j["encryption_always_on"].get<bool>();
  }
  if (j.contains("header_backup_dir")) {
    if (!j["header_backup_dir"].is_string()) return bad("header_backup_dir", "must be a path");
    s.volumes.header_backup_dir = j["header_backup_dir"].get<std::string>();
  }
  if (j.contains("unlock_retry_seconds")) {
    if (!j["unlock_retry_seconds"].is_number_unsigned() || j["unlock_retry_seconds"].get<std::uint64_t>() < 1 ||
        j["unlock_retry_seconds"].get<std::uint64_t>() > 86400)
      return bad("unlock_retry_seconds", "must be a whole number of seconds, 1..86400");
    s.unlock_retry_seconds = j["unlock_retry_seconds"].get<std::uint64_t>();
  }
  return s;
}

/// Record a volume in the registry (the last step of create; adopt).
Status register_volume(Db& db, const dm::VolumeInfo& vi) {
  return db.exec(
      "INSERT OR REPLACE INTO dm_volumes(uuid, device, name, key_id, provider_kind, provider_id) "
      "VALUES(?1, ?2, ?3, ?4, ?5, ?6)",
      {vi.uuid, vi.device, vi.name, vi.key_id, vi.provider_kind, vi.provider_id});
}

/// The at-rest service: one VolumeManager, serialised (handlers run on worker threads).
class AtRestService {
 public:
  AtRestService(Db& db, storcrypt::journal::Journal& journal, AtRestSettings s, keys::KeyMediaProvider provider,
                AtRestKernel kernel, std::shared_ptr<KmipState> kmip)
      : db_(db),
        journal_(journal),
        backend_(kernel.backend ? std::move(kernel.backend) : dm::make_libcryptsetup_backend()),
        probe_(kernel.probe ? std::move(kernel.probe) : dm::make_system_probe()),
        provider_(std::move(provider)),
        kmip_(std::move(kmip)),
        vm_(*backend_, *probe_, {&provider_}, journal, s.volumes, registry(db)) {
    sync_providers();
    vm_.register_resume_handlers();
  }

  std::mutex mu;
  Db& db() { return db_; }
  keys::KeyMediaProvider& provider() { return provider_; }
  /// The volume manager, with the key providers as configured now.
  dm::VolumeManager& vm() {
    sync_providers();
    return vm_;
  }

  /// The provider of a `key_provider` argument of volume.create: the key
  /// media ('local' or 'keymedia') or a KMIP key provider id. (kind, id).
  Result<std::pair<std::string, std::string>> provider_arg(const std::string& arg) {
    if (arg == provider_.id() || arg == provider_.kind()) return std::make_pair(provider_.kind(), provider_.id());
    auto unknown = [&] {
      return Error(ErrorCode::kNotFound, "no online key provider with id '" + arg + "'",
                   "give a key provider id of ListKeyProvidersKmip (storcrypt keyprovider list), or '" +
                       provider_.id() + "' for the key media",
                   "xNoOnlineKeyProviderWithThatID");
    };
    if (arg.empty() || arg.size() > 18 || arg.find_first_not_of("0123456789") != std::string::npos) return unknown();
    sync_providers();
    if (!kmip_providers_.count(arg)) return unknown();
    return std::make_pair(std::string(keys::kKmipProviderKind), arg);
  }
  storcrypt::journal::Journal& journal() { return journal_; }

  /// ear.migrate: every registered key-media volume to the KMIP key provider
  /// `arg` (empty: the active one; it must be the active one). Volumes
  /// already keyed from it are left alone; volumes of another KMIP key
  /// provider are reported and stay. Any volume that did not move makes the
  /// call an error naming each one (the moved ones stay moved).
  Result<json> migrate_volumes(const std::string& arg) {
    if (arg == provider_.id() || arg == provider_.kind())
      return Error(ErrorCode::kInvalidInput,
                   "volumes are never migrated to the key media: keys do not move from an external key provider "
                   "back to local keys (TS7700 rule), and key-media volumes are already there",
                   "give the active KMIP key provider's id, or leave key_provider out", "xMigrationNotSupported");
    if (!kmip_ || !kmip_->svc)
      return Error(ErrorCode::kUnavailable, "KMIP key management is not available (no state database)",
                   "run storcryptd with a state directory", "xKeyProviderUnavailable");
    std::string id;
    {
      KmipService& k = *kmip_->svc;
      std::lock_guard lock(k.mu);
      STORCRYPT_ASSIGN_OR_RETURN(auto active, k.active_provider());
      if (!active)
        return Error(ErrorCode::kConflict, "no KMIP key provider is active: there is nowhere to migrate the volumes to",
                     "enable encryption at rest with a KMIP key provider first (storcrypt ear enable --key-provider "
                     "ID)",
                     "xNoActiveKeyProvider");
      id = std::to_string(active->id);
      if (!arg.empty() && arg != id)
        return Error(ErrorCode::kConflict,
                     "key provider " + arg + " is not the active at-rest key provider (" + id + " is)",
                     "volumes migrate to the active key provider only: leave key_provider out, or enable that "
                     "provider first",
                     "xKeyProviderNotActive");
    }
    sync_providers();
    auto it = kmip_providers_.find(id);
    if (it == kmip_providers_.end())
      return Error(ErrorCode::kUnavailable, "key provider " + id + " could not be set up (see the daemon's log)",
                   "test it with TestKeyProviderKmip (storcrypt keyprovider test " + id + ")",
                   "xKeyProviderUnavailable");
    keys::KeyProvider& target = *it->second.provider;
    STORCRYPT_ASSIGN_OR_RETURN(auto rows, db_.query("SELECT device, name FROM dm_volumes ORDER BY name"));
    json vols = json::array();
    std::size_t migrated = 0, failed = 0;
    std::optional<Error> first;
    std::string why;
    for (const auto& r : rows) {
      json v{{"name", r.text(1)}, {"device", r.text(0)}};
      auto vi = vm_.show(r.text(0));
      if (vi.ok() && vi->provider_kind == keys::kKmipProviderKind && vi->provider_id != id) {
        v["outcome"] = "other-provider";
        v["provider"] = {{"kind", vi->provider_kind}, {"id", vi->provider_id}};
        vols.push_back(v);
        continue;
      }
      dm::OpReport rep;
      bool moved = false;
      Status st = vi.ok() ? vm_.migrate(r.text(0), target, &rep, &moved) : Status(vi.error());
      v["warnings"] = json(rep.warnings);
      if (st.ok()) {
        v["outcome"] = moved ? "migrated" : "already";
        migrated += moved;
      } else {
        ++failed;
        v["outcome"] = "failed";
        v["error"] = {{"name", st.error().name()}, {"message", st.error().message()}};
        why += (why.empty() ? "" : "; ") + r.text(1) + " (" + r.text(0) + "): " + st.error().message();
        if (!first) first = st.error();
      }
      vols.push_back(v);
    }
    if (first)
      return Error(first->code(),
                   std::to_string(failed) + " volume(s) not migrated to key provider " + id + " (" +
                       std::to_string(migrated) + " migrated): " + why,
                   (first->fix().empty() ? std::string() : first->fix() + "; ") +
                       "then run 'storcrypt ear migrate' again (each volume stays openable)",
                   first->name().empty() ? "xMigrationIncomplete" : first->name());
    return json{{"keyProviderID", std::stoll(id)}, {"migrated", migrated}, {"volumes", vols}};
  }

  /// A volume argument: a device path, or the name of a volume created here.
  Result<std::string> device_of(const std::string& volume) {
    if (!volume.empty() && volume[0] == '/') return volume;
    STORCRYPT_ASSIGN_OR_RETURN(auto rows, db_.query("SELECT device FROM dm_volumes WHERE name = ?1", {volume}));
    if (rows.empty())
      return Error(ErrorCode::kNotFound, "no volume named '" + volume + "'",
                   "give the device path, or see 'storcrypt volume list'", "xVolumeNotFound");
    return rows[0].text(0);
  }
  Result<std::string> name_of(const std::string& volume) {
    if (volume.empty() || volume[0] != '/') return volume;
    STORCRYPT_ASSIGN_OR_RETURN(auto vi, vm_.show(volume));
    return vi.name;
  }

 private:
  // The last steps of journalled create and erase (idempotent).
  static dm::VolumeRegistry registry(Db& db) {
    dm::VolumeRegistry r;
    r.add = [&db](const dm::VolumeInfo& vi) { return register_volume(db, vi); };
    r.remove = [&db](const std::string& uuid) { return db.exec("DELETE FROM dm_volumes WHERE uuid = ?1", {uuid}); };
    return r;
  }

  // The KMIP key providers as keys::KeyProviders (rebuilt when their key
  // servers change); the active one (EnableEncryptionAtRest) keeps the keys
  // of new volumes, else the key media do.
  void sync_providers() {
    keys::KeyProvider* first = &provider_;
    std::vector<keys::KeyProvider*> rest;
    if (kmip_ && kmip_->svc) {
      KmipService& k = *kmip_->svc;
      std::lock_guard lock(k.mu);
      auto list = k.providers();
      if (!list.ok()) {
        spdlog::error("KMIP key providers: {}", list.error().to_string());
      } else {
        std::map<std::string, Cached> next;
        for (const auto& p : *list) {
          const std::string id = std::to_string(p.id);
          auto fp = k.provider_fingerprint(p.id);
          if (!fp.ok()) continue;
          auto it = kmip_providers_.find(id);
          if (it != kmip_providers_.end() && it->second.fingerprint == *fp) {
            next[id] = std::move(it->second);
          } else {
            auto made = k.make_key_provider(p.id, system_id_);
            if (!made.ok()) {
              spdlog::error("KMIP key provider {}: {}", id, made.error().to_string());
              continue;
            }
            next[id] = Cached{*fp, std::move(made).value()};
          }
          if (p.active)
            first = next[id].provider.get();
          else
            rest.push_back(next[id].provider.get());
        }
        kmip_providers_ = std::move(next);
      }
    }
    std::vector<keys::KeyProvider*> all{first};
    if (first != &provider_) all.push_back(&provider_);
    all.insert(all.end(), rest.begin(), rest.end());
    vm_.set_providers(std::move(all));
  }

  struct Cached {
    std::string fingerprint;
    std::shared_ptr<keys::KmipKeyProvider> provider;
  };

  Db& db_;
  storcrypt::journal::Journal& journal_;
  std::shared_ptr<dm::CryptBackend> backend_;
  std::shared_ptr<dm::DeviceProbe> probe_;
  keys::KeyMediaProvider provider_;
  std::shared_ptr<KmipState> kmip_;
  std::string system_id_ = provider_.config().system_id;
  std::map<std::string, Cached> kmip_providers_;  ///< by provider id
  dm::VolumeManager vm_;
};

struct AtRestState {
  std::shared_ptr<AtRestService> svc;
  std::string config_path;
  std::optional<Error> config_error;  ///< set when the file exists but is wrong
  std::uint64_t unlock_retry_seconds = 60;
  std::unique_ptr<AutoUnlockWorker> unlocker;  ///< declared last: joined first
};

/// The start-up unlock's hooks over the service and the event log.
AutoUnlockHooks unlock_hooks(std::shared_ptr<AtRestService> svc, EventLog* events) {
  AutoUnlockHooks h;
  h.list = [svc]() -> Result<std::vector<RegisteredVolume>> {
    std::lock_guard lock(svc->mu);
    STORCRYPT_ASSIGN_OR_RETURN(auto rows, svc->db().query("SELECT device, name FROM dm_volumes ORDER BY name"));
    std::vector<RegisteredVolume> out;
    for (const auto& r : rows) {
      auto vi = svc->vm().show(r.text(0));
      out.push_back({r.text(1), r.text(0), vi.ok() && vi->state == "open"});
    }
    return out;
  };
  h.open = [svc](const RegisteredVolume& v) -> Status {
    std::lock_guard lock(svc->mu);
    Status st = svc->vm().open(v.device);
    if (st.ok()) return st;
    // A volume keyed from a KMIP key provider: the error names the key servers.
    if (auto vi = svc->vm().show(v.device); vi.ok() && vi->provider_kind != svc->provider().kind()) return st;
    std::size_t present = 0, configured = 0;
    for (const auto& m : svc->provider().scan()) {
      ++configured;
      present += m.present;
    }
    return Error(st.error().code(),
                 st.error().message() + " (" + std::to_string(present) + " of " + std::to_string(configured) +
                     " key media present)",
                 st.error().fix(), st.error().name());
  };
  h.raise = [events](const RegisteredVolume& v, const std::string& reason) -> Result<int64_t> {
    if (!events) return Error(ErrorCode::kUnavailable, "no event log");
    return events->raise(kVolumeLockedEvent, "volume " + v.name + " (" + v.device + ") stays locked: " + reason,
                         {{"volume", v.name}, {"device", v.device}, {"reason", reason}});
  };
  h.mark_fixed = [events](int64_t id) {
    if (events) (void)events->mark_fixed(id);
  };
  return h;
}

json info_json(const dm::VolumeInfo& v) {
  return json{{"device", v.device},
              {"uuid", v.uuid},
              {"name", v.name},
              {"state", v.state},
              {"cipher", v.cipher},
              {"key_bits", v.key_bits},
              {"sector_size", v.sector_size},
              {"provider", {{"kind", v.provider_kind}, {"id", v.provider_id}}},
              {"key_id", v.key_id},
              {"generation", v.generation},
              {"keyslot", v.keyslot},
              {"keyslots", v.active_keyslots},
              {"rekey_in_progress", v.rekey_in_progress}};
}

Result<AtRestService*> service(AtRestState& st) {
  if (st.config_error) return Error(*st.config_error);
  if (!st.svc)
    return Error(ErrorCode::kUnavailable, "at-rest encryption is not configured on this node",
                 "create " + st.config_path + " with system_id and media_dirs, then restart storcryptd",
                 "xAtRestNotConfigured");
  return st.svc.get();
}

std::shared_ptr<AtRestState> state_for(Context& ctx) {
  if (auto s = ctx.service<AtRestState>()) return s;
  auto st = std::make_shared<AtRestState>();
  st->config_path = at_rest_config_path(ctx);
  std::ifstream probe(st->config_path);
  if (probe.good() && (!ctx.db || !ctx.journal)) {
    // A wiring error of the program, not of the node: say so rather than "not configured".
    st->config_error = Error(ErrorCode::kInternal, "at-rest encryption needs the state database and the journal",
                             "this storcryptd was built without them; report it");
  } else if (probe.good()) {
    auto settings = load_settings(st->config_path);
    if (!settings.ok()) {
      st->config_error = settings.error();
    } else {
      // Test-only pause point between two key media writes (a rekey or
      // create killed with some media written): storcrypt/journal/journal.h.
      settings->media.after_medium_write = [](const std::filesystem::path&) {
        journal::pause_if_requested("keymedia", "medium-written");
        return false;
      };
      auto prov = keys::KeyMediaProvider::create(settings->media);
      if (!prov.ok()) {
        st->config_error = std::move(prov).error().context(st->config_path);
      } else {
        st->unlock_retry_seconds = settings->unlock_retry_seconds;
        // Interrupted volume operations are settled by the journal's recovery
        // at start-up (the handlers this registers), before the unlock hook runs.
        auto kernel = ctx.service<AtRestKernel>();
        auto kst = kmip_state_for(ctx);
        st->svc = std::make_shared<AtRestService>(*ctx.db, *ctx.journal, std::move(settings).value(),
                                                  std::move(prov).value(), kernel ? *kernel : AtRestKernel{}, kst);
        kst->migrate_volumes = [w = std::weak_ptr<AtRestService>(st->svc)](int64_t id) -> Result<json> {
          auto svc = w.lock();
          if (!svc) return Error(ErrorCode::kUnavailable, "at-rest encryption is shutting down");
          std::lock_guard lock(svc->mu);
          return svc->migrate_volumes(std::to_string(id));
        };
      }
    }
  }
  ctx.set_service(st);
  return st;
}

json warnings_json(const std::vector<std::string>& w) { return json(w); }

/// A volume's state after an operation, with the operation's warnings.
Result<json> volume_result(AtRestService& s, const std::string& dev, const dm::OpReport& rep) {
  STORCRYPT_ASSIGN_OR_RETURN(auto vi, s.vm().show(dev));
  json r = info_json(vi);
  r["warnings"] = warnings_json(rep.warnings);
  return r;
}

}  // namespace

Status register_volume_methods(Dispatcher& d, Context& ctx) {
  if (ctx.db) {
    // Version 2 carries unfinished operations of the former dm journal over
    // to the one journal (its tables must exist first) and drops it.
    if (auto js = make_db_journal_store(*ctx.db); !js.ok()) return std::move(js).error();
    STORCRYPT_TRY(ctx.db->migrate(
        "dm", {{1, "dm journal and volume registry",
                "CREATE TABLE dm_journal(seq INTEGER PRIMARY KEY AUTOINCREMENT, op TEXT NOT NULL, "
                "volume_uuid TEXT NOT NULL, device TEXT NOT NULL, step TEXT NOT NULL, data TEXT NOT NULL);"
                "CREATE TABLE dm_volumes(uuid TEXT PRIMARY KEY, device TEXT NOT NULL, name TEXT NOT NULL UNIQUE, "
                "key_id TEXT NOT NULL);"},
               {2, "dm journal moved into the one journal",
                "INSERT INTO journal_ops(kind, payload, state, created, updated, note) "
                " SELECT 'volume.' || j.op, json_patch(j.data, json_object('device', j.device, 'uuid', j.volume_uuid)),"
                " 'running', CAST(strftime('%s','now') AS INTEGER), CAST(strftime('%s','now') AS INTEGER),"
                " 'dm-journal:' || j.volume_uuid FROM dm_journal j"
                " WHERE j.seq = (SELECT MAX(seq) FROM dm_journal k WHERE k.volume_uuid = j.volume_uuid)"
                " AND j.step NOT IN ('done', 'rolled-back') ORDER BY j.seq;"
                "INSERT INTO journal_steps(op_id, seq, name, time)"
                " SELECT o.id, d.seq, d.step, o.created FROM journal_ops o"
                " JOIN dm_journal d ON o.note = 'dm-journal:' || d.volume_uuid"
                " WHERE d.step NOT IN ('begin', 'erase-begin');"
                "UPDATE journal_ops SET note = 'carried over from the dm journal' WHERE note LIKE 'dm-journal:%';"
                "DROP TABLE dm_journal;"},
               {3, "the key provider of each volume (kind and id, as its token names it)",
                "ALTER TABLE dm_volumes ADD COLUMN provider_kind TEXT NOT NULL DEFAULT 'keymedia';"
                "ALTER TABLE dm_volumes ADD COLUMN provider_id TEXT NOT NULL DEFAULT 'local';"}}));
  }
  auto st = state_for(ctx);
  if (ctx.events) ctx.events->define(volume_locked_event());
  if (st->svc) {
    ctx.add_start_hook([st, events = ctx.events] {
      st->unlocker = std::make_unique<AutoUnlockWorker>(
          unlock_hooks(st->svc, events), std::chrono::seconds(st->unlock_retry_seconds), [](const AutoUnlockPass& p) {
            for (const auto& n : p.opened) spdlog::info("volume {} opened with its key from the media", n);
            for (const auto& n : p.raised) spdlog::error("volume {} stays locked (see 'storcrypt event list')", n);
            for (const auto& e : p.errors) spdlog::error("volume unlock: {}", e);
          });
    });
  }
  ctx.add_doctor_check([st, events = ctx.events] {
    std::vector<CheckResult> out;
    // Volumes the start-up unlock could not open (their event 5010 is still open).
    if (events) {
      EventFilter f;
      f.code = kVolumeLockedEvent;
      f.unfixed_only = true;
      if (auto locked = events->list(f); locked.ok()) {
        for (const auto& e : *locked)
          out.push_back({"at-rest", "volume-locked", "error", e.message,
                         "make a key medium holding its key present (see 'storcrypt keymedia status'); event " +
                             std::to_string(e.id) + " has the fix procedure"});
      }
    }
    if (st->config_error) {
      out.push_back({"at-rest", "config", "error", st->config_error->message(), st->config_error->fix()});
    } else if (!st->svc) {
      out.push_back({"at-rest", "config", "ok", "at-rest encryption not configured (" + st->config_path + ")", ""});
    } else {
      auto pend = st->svc->journal().pending({dm::kCreateKind, dm::kRekeyKind, dm::kEraseKind, dm::kMigrateKind});
      if (pend.ok() && !pend->empty()) {
        std::string why;
        for (const auto& e : *pend)
          why += (why.empty() ? "" : "; ") + e.kind + " " + e.payload.value("device", std::string()) +
                 (e.note.empty() ? "" : ": " + e.note);
        out.push_back({"at-rest", "pending-operations", "error",
                       std::to_string(pend->size()) + " interrupted volume operation(s): " + why,
                       "insert the key media and run 'storcrypt volume resume'"});
      }
      else
        out.push_back({"at-rest", "pending-operations", "ok", "no interrupted volume operations", ""});
    }
    return out;
  });

  ServiceMethods<AtRestService> methods(d, [st] { return service(*st); });
  const ParamSpec volume_param{"volume", ParamType::kString, true, "volume name or device path"};
  STORCRYPT_TRY(methods.add(
      "volume.create",
      "create an encrypted LUKS2 volume whose key is kept by a key provider (the key media or a KMIP key provider)",
      {{"device", ParamType::kString, true, "block device path, e.g. /dev/sdb"},
       {"name", ParamType::kString, true, "volume name (/dev/mapper/<name>)"},
       {"key_id", ParamType::kString, false, "key id (default: generated)"},
       {"key_provider", ParamType::kString, false,
        "KMIP key provider id, or 'local' for the key media (default: the active provider, else the key media)"},
       {"encrypted", ParamType::kBoolean, false, "false is refused when encryption is always on"},
       {"force", ParamType::kBoolean, false,
        "overwrite a filesystem, partition table or RAID/LVM/LUKS signature (never a device in use)"}},
      true, [](AtRestService& s, const Params& p) -> Result<json> {
        dm::OpReport rep;
        dm::CreateRequest req{p.str("device"), p.str("name"), p.str("key_id"), p.boolean("encrypted", true)};
        req.force = p.boolean("force", false);
        if (p.has("key_provider")) {
          STORCRYPT_ASSIGN_OR_RETURN(auto kp, s.provider_arg(p.str("key_provider")));
          req.provider_kind = kp.first;
          req.provider_id = kp.second;
        }
        STORCRYPT_ASSIGN_OR_RETURN(auto vi, s.vm().create(req, &rep));  // registers it
        json r = info_json(vi);
        r["warnings"] = warnings_json(rep.warnings);
        return r;
      }));
  STORCRYPT_TRY(methods.add("volume.open", "open a volume with its key from the key media", {volume_param}, true,
                            [](AtRestService& s, const Params& p) -> Result<json> {
                              STORCRYPT_ASSIGN_OR_RETURN(std::string dev, s.device_of(p.str("volume")));
                              dm::OpReport rep;
                              STORCRYPT_TRY(s.vm().open(dev, "", &rep));
                              return volume_result(s, dev, rep);
                            }));
  STORCRYPT_TRY(methods.add("volume.close", "close an open volume", {volume_param}, true,
                            [](AtRestService& s, const Params& p) -> Result<json> {
                              STORCRYPT_ASSIGN_OR_RETURN(std::string name, s.name_of(p.str("volume")));
                              STORCRYPT_TRY(s.vm().close(name));
                              return json{{"name", name}, {"state", "closed"}};
                            }));
  STORCRYPT_TRY(methods.add("volume.list", "list the volumes created on this node", {}, false,
                            [](AtRestService& s, const Params&) -> Result<json> {
                              STORCRYPT_ASSIGN_OR_RETURN(
                                  auto rows, s.db().query("SELECT device, name, uuid FROM dm_volumes ORDER BY name"));
                              json arr = json::array();
                              for (const auto& r : rows) {
                                auto vi = s.vm().show(r.text(0));
                                if (vi.ok()) {
                                  arr.push_back(info_json(*vi));
                                } else {
                                  arr.push_back(json{{"device", r.text(0)},
                                                     {"name", r.text(1)},
                                                     {"uuid", r.text(2)},
                                                     {"state", "error"},
                                                     {"error", vi.error().message()}});
                                }
                              }
                              return json{{"volumes", arr}};
                            }));
  STORCRYPT_TRY(methods.add("volume.show", "show one volume: state, cipher, key id, provider, generation",
                            {volume_param}, false, [](AtRestService& s, const Params& p) -> Result<json> {
                              STORCRYPT_ASSIGN_OR_RETURN(std::string dev, s.device_of(p.str("volume")));
                              return volume_result(s, dev, {});
                            }));
  STORCRYPT_TRY(methods.add("volume.rekey", "replace the volume's access key (the volume may stay open and in use)",
                            {volume_param}, true, [](AtRestService& s, const Params& p) -> Result<json> {
                              STORCRYPT_ASSIGN_OR_RETURN(std::string dev, s.device_of(p.str("volume")));
                              dm::OpReport rep;
                              STORCRYPT_TRY(s.vm().rekey(dev, &rep));
                              return volume_result(s, dev, rep);
                            }));
  STORCRYPT_TRY(methods.add(
      "volume.erase", "crypto-erase a closed volume: keyslots, tokens, header, backups and key copies destroyed",
      {volume_param, {"confirm", ParamType::kBoolean, true, "must be true: the data becomes unrecoverable"}}, true,
      [](AtRestService& s, const Params& p) -> Result<json> {
        if (!p.boolean("confirm"))
          return Error(ErrorCode::kInvalidInput, "volume.erase needs confirm=true",
                       "pass --yes: the data on the volume becomes unrecoverable");
        STORCRYPT_ASSIGN_OR_RETURN(std::string dev, s.device_of(p.str("volume")));
        // Only volumes registered on this node: a storcrypt volume of another
        // node (or of a lost database) is adopted first. The manager refuses
        // foreign LUKS devices and volumes that are open or in use.
        if (auto vi = s.vm().show(dev); vi.ok()) {
          STORCRYPT_ASSIGN_OR_RETURN(auto rows,
                                     s.db().query("SELECT name FROM dm_volumes WHERE uuid = ?1", {vi->uuid}));
          if (rows.empty())
            return Error(ErrorCode::kConflict,
                         "refusing to crypto-erase " + dev + ": storcrypt volume " + vi->name + " (uuid " + vi->uuid +
                             ") is not registered on this node",
                         "check the device path; if this node's database was lost, register the volume with "
                         "'storcrypt volume adopt " +
                             dev + "' first",
                         "xVolumeNotRegistered");
        }
        dm::OpReport rep;
        STORCRYPT_TRY(s.vm().erase(dev, &rep));  // unregisters it
        return json{{"device", dev}, {"erased", true}, {"warnings", warnings_json(rep.warnings)}};
      }));
  STORCRYPT_TRY(methods.add(
      "volume.adopt",
      "register a storcrypt volume from its own LUKS2 token (e.g. after the database was lost); its key must be "
      "reachable",
      {{"device", ParamType::kString, true, "block device path holding the volume"}}, true,
      [](AtRestService& s, const Params& p) -> Result<json> {
        const std::string dev = p.str("device");
        if (dev.empty() || dev[0] != '/')
          return Error(ErrorCode::kInvalidInput, "device '" + dev + "' is not an absolute path",
                       "give the block device path, e.g. /dev/sdb");
        dm::OpReport rep;
        STORCRYPT_ASSIGN_OR_RETURN(auto vi, s.vm().adopt(dev, &rep));
        STORCRYPT_ASSIGN_OR_RETURN(auto same_name,
                                   s.db().query("SELECT uuid, device FROM dm_volumes WHERE name = ?1", {vi.name}));
        if (!same_name.empty() && same_name[0].text(0) != vi.uuid)
          return Error(ErrorCode::kConflict,
                       "volume name " + vi.name + " is already registered for " + same_name[0].text(1) + " (uuid " +
                           same_name[0].text(0) + ")",
                       "erase or re-check the other volume first; two volumes cannot share a mapping name",
                       "xVolumeExists");
        STORCRYPT_ASSIGN_OR_RETURN(auto known,
                                   s.db().query("SELECT device FROM dm_volumes WHERE uuid = ?1", {vi.uuid}));
        STORCRYPT_TRY(register_volume(s.db(), vi));
        json r = info_json(vi);
        r["adopted"] = known.empty();
        if (!known.empty() && known[0].text(0) != vi.device)
          rep.warnings.push_back("volume was registered at " + known[0].text(0) + "; now at " + vi.device);
        r["warnings"] = warnings_json(rep.warnings);
        return r;
      }));
  STORCRYPT_TRY(methods.add(
      "ear.migrate",
      "move every key-media volume's access key to the active KMIP key provider, online and journalled (new key on "
      "the key servers, new keyslot, old keyslot and key-media copies shredded); never back to the key media",
      {{"key_provider", ParamType::kString, false,
        "the active KMIP key provider's id (default: the active one; 'local' is refused)"}},
      true,
      [](AtRestService& s, const Params& p) -> Result<json> { return s.migrate_volumes(p.str("key_provider")); }));
  STORCRYPT_TRY(methods.add(
      "volume.resume", "finish or roll back interrupted volume create/rekey/erase/migrate operations", {}, true,
      [](AtRestService& s, const Params&) -> Result<json> {
        STORCRYPT_ASSIGN_OR_RETURN(auto r, s.vm().resume());
        json items = json::array();
        for (auto& i : r.items)
          items.push_back(json{{"op", i.op}, {"uuid", i.volume_uuid}, {"device", i.device}, {"outcome", i.outcome}});
        return json{{"operations", items}, {"warnings", warnings_json(r.warnings)}};
      }));
  return ok_status();
}

Status register_keymedia_methods(Dispatcher& d, Context& ctx) {
  auto st = state_for(ctx);
  ServiceMethods<AtRestService> methods(d, [st] { return service(*st); });
  STORCRYPT_TRY(
      methods.add("keymedia.list", "list the configured key media and the key files on them", {}, false,
                  [](AtRestService& s, const Params&) -> Result<json> {
                    json media = json::array();
                    for (const auto& m : s.provider().scan()) {
                      json files = json::array();
                      for (const auto& f : m.files)
                        files.push_back(json{{"file", f.path.filename().string()},
                                             {"key_id", f.key_id},
                                             {"generation", f.generation},
                                             {"status", std::string(keys::key_file_problem_name(f.problem))},
                                             {"detail", f.detail}});
                      media.push_back(json{{"dir", m.dir.string()}, {"present", m.present}, {"files", files}});
                    }
                    return json{{"media", media}};
                  }));
  STORCRYPT_TRY(methods.add("keymedia.status", "per key: valid copies against the desired count, and bad copies", {},
                            false, [](AtRestService& s, const Params&) -> Result<json> {
                              std::map<std::string, json> keys;
                              std::size_t present = 0;
                              for (const auto& m : s.provider().scan()) {
                                present += m.present;
                                for (const auto& f : m.files) {
                                  std::string k = f.key_id + " g" + std::to_string(f.generation);
                                  auto& e = keys[k];
                                  if (e.is_null())
                                    e = json{{"key_id", f.key_id},
                                             {"generation", f.generation},
                                             {"valid_copies", 0},
                                             {"bad_copies", json::array()}};
                                  if (f.problem == keys::KeyFileProblem::kNone)
                                    e["valid_copies"] = e["valid_copies"].get<int>() + 1;
                                  else
                                    e["bad_copies"].push_back(m.dir.string() + ": " +
                                                              std::string(keys::key_file_problem_name(f.problem)));
                                }
                              }
                              json arr = json::array();
                              for (auto& [_, e] : keys) arr.push_back(e);
                              return json{{"media_present", present},
                                          {"media_configured", s.provider().config().media_dirs.size()},
                                          {"desired_copies", s.provider().config().desired_copies},
                                          {"keys", arr}};
                            }));
  STORCRYPT_TRY(methods.add("keymedia.init",
                            "initialise a configured medium with every key that has a valid copy elsewhere",
                            {{"dir", ParamType::kString, true, "mount point of the medium (one of media_dirs)"}}, true,
                            [](AtRestService& s, const Params& p) -> Result<json> {
                              STORCRYPT_ASSIGN_OR_RETURN(auto rep, s.provider().init_medium(p.str("dir")));
                              return json{{"dir", p.str("dir")}, {"copies_written", rep.copies_written}};
                            }));
  return ok_status();
}

}  // namespace storcrypt::controller
