// API methods of the self-encrypting drive nouns `drive` and `ear` (issue 18).
// The rules live in SedService (include/storcrypt/controller/sed.h); this file
// only translates JSON and wires the service into the daemon.
//
// Configuration: the at-rest file (at-rest.json, see volume_methods.cpp) gives
// the key media (system_id, media_dirs, desired_copies); optional fields:
//   "sed_devices": ["/dev/nvme0n1", ...]   candidate drives (default: every
//                                          non-virtual whole disk in /sys/block)
//   "sed_unlock_retry_seconds": 60         retry of drives locked at start-up
//   "sed_scan_seconds": 60                 rescan: new drives enrolled while EAR is on
// Element API names: EnableEncryptionAtRest, DisableEncryptionAtRest,
// SecureEraseDrives; the rest are drive.* and ear.*.
// Crash tests pause the daemon with the journal's test-only hook
// (STORCRYPT_PAUSE_AT, storcrypt/journal/journal.h) and kill it: the points
// are sed.rekey:begin, :new-key-stored, :drive-changed (a drive has the new
// key, the journal does not know yet), :drive:<device>, :committed, and
// keymedia:medium-written (after each key medium written).
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <fstream>
#include <iterator>
#include <nlohmann/json.hpp>

#include "nouns/kmip_service.h"
#include "storcrypt/controller/auto_unlock.h"
#include "storcrypt/controller/nouns.h"
#include "storcrypt/controller/sed.h"
#include "storcrypt/controller/ticker.h"
#include "storcrypt/keys/key_media.h"

namespace storcrypt::controller {

using nlohmann::json;

namespace {

EventDef drive_locked_event() {
  return {kDriveLockedEvent,
          Severity::kError,
          "Self-encrypting drive stays locked",
          {"no key medium holding a valid copy of the drives' access key is present (removed, not mounted)",
           "the drive refuses the access key (changed outside storcrypt, or a wrong key medium)",
           "the drive does not answer (removed, failed, or its controller is resetting)"},
          {"insert or mount a key medium holding the key (see 'storcrypt keymedia status'); the daemon retries "
           "every sed_unlock_retry_seconds and marks this event fixed when the drive unlocks",
           "unlock it by hand with 'storcrypt drive unlock DRIVE' to see the error",
           "if the key is lost the drive's data cannot be recovered: 'storcrypt drive revert DRIVE --psid --yes' "
           "makes the drive usable again (its data is destroyed)"}};
}

struct SedSettings {
  keys::KeyMediaConfig media;
  std::vector<std::string> devices;  ///< empty: discover
  std::uint64_t unlock_retry_seconds = 60;
  std::uint64_t scan_seconds = 60;
};

std::string sed_config_path(const Context& ctx) {
  if (const char* e = std::getenv("STORCRYPT_AT_REST_CONFIG"); e && *e) return e;
  std::string base = ctx.config_path.empty() ? kDefaultConfigPath : ctx.config_path;
  auto slash = base.rfind('/');
  return (slash == std::string::npos ? std::string(".") : base.substr(0, slash)) + "/at-rest.json";
}

Result<SedSettings> load_sed_settings(const std::string& path) {
  std::ifstream f(path);
  std::string text((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  auto j = json::parse(text, nullptr, false);
  auto bad = [&](const std::string& field, const std::string& want) {
    return Error(ErrorCode::kInvalidInput, path + ": field '" + field + "' " + want, "fix the field in " + path);
  };
  if (j.is_discarded() || !j.is_object()) return Error(ErrorCode::kInvalidInput, path + " is not a JSON object");
  SedSettings s;
  if (j.contains("system_id") && j["system_id"].is_string()) {
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
  if (j.contains("desired_copies") && j["desired_copies"].is_number_unsigned())
    s.media.desired_copies = j["desired_copies"].get<std::size_t>();
  if (j.contains("sed_devices")) {
    if (!j["sed_devices"].is_array()) return bad("sed_devices", "must be an array of block device paths");
    for (const auto& d : j["sed_devices"]) {
      if (!d.is_string() || d.get<std::string>().rfind("/dev/", 0) != 0)
        return bad("sed_devices", "must hold only /dev/... paths");
      s.devices.push_back(d.get<std::string>());
    }
  }
  for (auto [field, dst] : {std::pair{"sed_unlock_retry_seconds", &s.unlock_retry_seconds},
                            std::pair{"sed_scan_seconds", &s.scan_seconds}}) {
    if (!j.contains(field)) continue;
    if (!j[field].is_number_unsigned() || j[field].get<std::uint64_t>() < 1 || j[field].get<std::uint64_t>() > 86400)
      return bad(field, "must be a whole number of seconds, 1..86400");
    *dst = j[field].get<std::uint64_t>();
  }
  return s;
}

/// The service with what it needs kept alive (kernel seam, key provider).
struct SedState {
  std::unique_ptr<sed::SedIoctl> io;
  std::unique_ptr<keys::KeyMediaProvider> provider;
  std::unique_ptr<SedService> svc;
  std::string config_path;
  std::optional<Error> config_error;
  SedSettings settings;
  std::unique_ptr<AutoUnlockWorker> unlocker;  ///< the threads are declared last: stopped first
  std::unique_ptr<Ticker> scanner;
};

Result<SedService*> resolve(SedState& st) {
  if (st.config_error) return Error(*st.config_error);
  if (!st.svc)
    return Error(ErrorCode::kUnavailable, "at-rest encryption is not configured on this node",
                 "create " + st.config_path + " with system_id and media_dirs, then restart storcryptd",
                 "xAtRestNotConfigured");
  return st.svc.get();
}

std::shared_ptr<SedState> sed_state_for(Context& ctx) {
  if (auto s = ctx.service<SedState>()) return s;
  auto st = std::make_shared<SedState>();
  st->config_path = sed_config_path(ctx);
  std::ifstream probe(st->config_path);
  if (probe.good() && ctx.db && ctx.journal) {
    auto settings = load_sed_settings(st->config_path);
    if (!settings.ok()) {
      st->config_error = settings.error();
    } else {
      st->settings = std::move(settings).value();
      st->settings.media.after_medium_write = [](const std::filesystem::path&) {
        journal::pause_if_requested("keymedia", "medium-written");
        return false;
      };
      auto prov = keys::KeyMediaProvider::create(st->settings.media);
      if (!prov.ok()) {
        st->config_error = std::move(prov).error().context(st->config_path);
      } else {
        st->provider = std::make_unique<keys::KeyMediaProvider>(std::move(prov).value());
        st->io = sed::make_kernel_ioctl();
        SedConfig cfg;
        if (!st->settings.devices.empty()) cfg.list_devices = [d = st->settings.devices] { return d; };
        auto svc = SedService::create(*ctx.db, *ctx.journal, *st->io, *st->provider, std::move(cfg));
        if (!svc.ok())
          st->config_error = svc.error();
        else
          st->svc = std::move(svc).value();
      }
    }
  }
  ctx.set_service(st);
  return st;
}

json record_json(const DriveRecord& r) {
  return json{{"device", r.device},   {"capable", r.capable},
              {"reason", r.reason},   {"state", r.state()},
              {"owned", r.owned},     {"foreign", r.foreign},
              {"locking", r.locking}, {"locked", r.locked},
              {"ak_generation", r.ak_generation}, {"last_error", r.last_error},
              {"updated", r.updated}};
}

json report_json(const SedReport& rep) {
  json drives = json::array();
  for (const auto& d : rep.drives)
    drives.push_back(json{{"device", d.device}, {"ok", d.ok}, {"state", d.state}, {"error", d.error}});
  return json{{"drives", drives}, {"warnings", rep.warnings}};
}

AutoUnlockHooks drive_unlock_hooks(std::shared_ptr<SedState> st, EventLog* events) {
  AutoUnlockHooks h;
  h.list = [st]() -> Result<std::vector<RegisteredVolume>> {
    std::lock_guard lock(st->svc->mu);
    STORCRYPT_ASSIGN_OR_RETURN(auto drives, st->svc->lockable());
    std::vector<RegisteredVolume> out;
    for (const auto& d : drives) out.push_back({d.device, d.device, !d.locked});
    return out;
  };
  h.open = [st](const RegisteredVolume& v) -> Status {
    std::lock_guard lock(st->svc->mu);
    auto r = st->svc->unlock(v.device);
    return r.ok() ? ok_status() : Status(std::move(r).error());
  };
  h.raise = [events](const RegisteredVolume& v, const std::string& reason) -> Result<int64_t> {
    if (!events) return Error(ErrorCode::kUnavailable, "no event log");
    return events->raise(kDriveLockedEvent, "self-encrypting drive " + v.device + " stays locked: " + reason,
                         {{"drive", v.device}, {"reason", reason}});
  };
  h.mark_fixed = [events](int64_t id) {
    if (events) (void)events->mark_fixed(id);
  };
  return h;
}

}  // namespace

Status register_drive_methods(Dispatcher& d, Context& ctx) {
  auto st = sed_state_for(ctx);
  if (ctx.events) ctx.events->define(drive_locked_event());
  if (st->svc) {
    ctx.add_start_hook([st, events = ctx.events] {
      {
        // Discover drives and enroll new ones while EAR is on, before the unlock pass.
        std::lock_guard lock(st->svc->mu);
        SedReport rep;
        auto r = st->svc->refresh(&rep);
        if (!r.ok()) spdlog::error("drive discovery: {}", r.error().to_string());
        for (const auto& o : rep.drives)
          if (o.ok) spdlog::info("drive {} enrolled for at-rest encryption", o.device);
        for (const auto& w : rep.warnings) spdlog::warn("drive enrolment: {}", w);
      }
      st->unlocker = std::make_unique<AutoUnlockWorker>(
          drive_unlock_hooks(st, events), std::chrono::seconds(st->settings.unlock_retry_seconds),
          [](const AutoUnlockPass& p) {
            for (const auto& n : p.opened) spdlog::info("drive {} unlocked with its key from the key media", n);
            for (const auto& n : p.raised) spdlog::error("drive {} stays locked (see 'storcrypt event list')", n);
            for (const auto& e : p.errors) spdlog::error("drive unlock: {}", e);
          });
      st->scanner = std::make_unique<Ticker>(std::chrono::seconds(st->settings.scan_seconds), [st] {
        std::lock_guard lock(st->svc->mu);
        SedReport rep;
        (void)st->svc->refresh(&rep);
        for (const auto& o : rep.drives)
          if (o.ok) spdlog::info("drive {} enrolled for at-rest encryption", o.device);
      });
    });
  }
  ctx.add_doctor_check([st, events = ctx.events] {
    std::vector<CheckResult> out;
    if (st->config_error) out.push_back({"drives", "config", "error", st->config_error->message(), st->config_error->fix()});
    if (events) {
      EventFilter f;
      f.code = kDriveLockedEvent;
      f.unfixed_only = true;
      if (auto locked = events->list(f); locked.ok())
        for (const auto& e : *locked)
          out.push_back({"drives", "drive-locked", "error", e.message,
                         "make a key medium holding the drives' key present; event " + std::to_string(e.id) +
                             " has the fix procedure"});
    }
    return out;
  });

  ServiceMethods<SedService> m(d, [st] { return resolve(*st); });
  const ParamSpec drive_param{"drive", ParamType::kString, true, "block device path, e.g. /dev/nvme0n1"};
  STORCRYPT_TRY(m.add("drive.list", "list the drives: Opal-capable or not (why), owned, locking, locked, AK generation",
                      {}, false, [](SedService& s, const Params&) -> Result<json> {
                        STORCRYPT_ASSIGN_OR_RETURN(auto drives, s.refresh());
                        json arr = json::array();
                        for (const auto& r : drives) arr.push_back(record_json(r));
                        return json{{"drives", arr}};
                      }));
  STORCRYPT_TRY(m.add("drive.show", "show one drive", {drive_param}, false,
                      [](SedService& s, const Params& p) -> Result<json> {
                        STORCRYPT_ASSIGN_OR_RETURN(auto r, s.show(p.str("drive")));
                        return record_json(r);
                      }));
  STORCRYPT_TRY(m.add("drive.lock", "lock an enrolled drive (its data becomes unreadable until unlocked)",
                      {drive_param}, true, [](SedService& s, const Params& p) -> Result<json> {
                        STORCRYPT_ASSIGN_OR_RETURN(auto r, s.lock(p.str("drive")));
                        return record_json(r);
                      }));
  STORCRYPT_TRY(m.add("drive.unlock", "unlock an enrolled drive with its key (and save it for resume)",
                      {drive_param}, true, [](SedService& s, const Params& p) -> Result<json> {
                        STORCRYPT_ASSIGN_OR_RETURN(auto r, s.unlock(p.str("drive")));
                        return record_json(r);
                      }));
  STORCRYPT_TRY(m.add(
      "SecureEraseDrives", "secure erase: each drive's range gets a new media key (its data is gone)",
      {{"drives", ParamType::kArray, true, "block device paths"},
       {"confirm", ParamType::kBoolean, true, "must be true: the data becomes unrecoverable"}},
      true, [](SedService& s, const Params& p) -> Result<json> {
        if (!p.boolean("confirm"))
          return Error(ErrorCode::kInvalidInput, "SecureEraseDrives needs confirm=true",
                       "pass --yes: the data on the drives becomes unrecoverable");
        std::vector<std::string> devs;
        for (const auto& v : p.json()["drives"]) {
          if (!v.is_string()) return Error(ErrorCode::kInvalidInput, "drives must hold device paths (strings)");
          devs.push_back(v.get<std::string>());
        }
        STORCRYPT_ASSIGN_OR_RETURN(auto rep, s.erase(devs));
        return report_json(rep);
      }));
  STORCRYPT_TRY(m.add(
      "drive.revert", "factory-reset a drive (data destroyed): with its PSID, or with our SID if storcrypt owns it",
      {drive_param,
       {"psid", ParamType::kString, false, "the PSID printed on the drive's label"},
       {"confirm", ParamType::kBoolean, true, "must be true: the data becomes unrecoverable"}},
      true, [](SedService& s, const Params& p) -> Result<json> {
        if (!p.boolean("confirm"))
          return Error(ErrorCode::kInvalidInput, "drive.revert needs confirm=true",
                       "pass --yes: the drive's data becomes unrecoverable");
        std::optional<std::string> psid;
        if (p.has("psid")) {
          psid = p.str("psid");
          if (psid->empty() || psid->size() > 256)
            return Error(ErrorCode::kInvalidInput, "the PSID must be 1..256 characters");
        }
        STORCRYPT_ASSIGN_OR_RETURN(auto r, s.revert(p.str("drive"), psid));
        return record_json(r);
      }));
  return ok_status();
}

namespace {

/// keyProviderID of EnableEncryptionAtRest names a KMIP key provider: a
/// positive integer, or a string of digits (the key media's id is a name).
std::optional<int64_t> kmip_provider_id(const Params& p) {
  if (!p.has("keyProviderID")) return std::nullopt;
  const json& v = p.json()["keyProviderID"];
  if (v.is_number_integer()) return v.get<int64_t>();
  if (!v.is_string()) return std::nullopt;
  const std::string t = v.get<std::string>();
  if (t.empty() || t.size() > 18 || t.find_first_not_of("0123456789") != std::string::npos) return std::nullopt;
  return std::stoll(t);
}

/// The volumes' at-rest key source: the active KMIP key provider, if any.
json volumes_key_source(KmipState& kst) {
  json r{{"enabled", false}, {"provider", {{"kind", "keymedia"}, {"id", "local"}}}};
  if (!kst.svc) return r;
  std::lock_guard lock(kst.svc->mu);
  auto a = kst.svc->active_provider();
  if (!a.ok()) {
    r["error"] = a.error().message();
    return r;
  }
  if (!*a) return r;
  auto keyed = kst.svc->volumes_keyed_from((*a)->id);
  r = json{{"enabled", true},
           {"provider", {{"kind", "kmip"}, {"id", std::to_string((*a)->id)}, {"name", (*a)->name}}},
           {"volumesKeyed", keyed.ok() ? *keyed : 0}};
  return r;
}

/// EnableEncryptionAtRest with a KMIP key provider: probe its key servers,
/// then make it the active at-rest key source (new volumes keep their keys
/// on it), then move the existing key-media volumes to it (ear.migrate,
/// journalled per volume; its outcome is reported under "migration": a
/// failed migration leaves the provider enabled and every volume openable).
Result<json> enable_kmip(KmipState& kst, int64_t id) {
  if (kst.load_error) return Error(*kst.load_error);
  if (!kst.svc)
    return Error(ErrorCode::kUnavailable, "KMIP key management is not available (no state database)",
                 "run storcryptd with a state directory", "xKeyProviderUnavailable");
  KmipService& k = *kst.svc;
  std::vector<KmipKeyServer> servers;
  {
    std::lock_guard lock(k.mu);
    STORCRYPT_ASSIGN_OR_RETURN(servers, k.at_rest_candidate(id));
  }
  // Network I/O without the lock, like TestKeyProviderKmip.
  auto probe = k.probe_servers(servers);
  if (!probe.ok())
    return Error(probe.error().code(),
                 "key provider " + std::to_string(id) + " is unavailable: " + probe.error().message() + " (" +
                     probe.error().name() + ")",
                 probe.error().fix(), "xKeyProviderUnavailable");
  {
    std::lock_guard lock(k.mu);
    STORCRYPT_TRY(k.at_rest_candidate(id));  // still valid after the probe
    STORCRYPT_TRY(k.set_provider_active(id, true));
  }
  json r{{"enabled", true}, {"keyProviderID", id}, {"keyServers", *probe}, {"warnings", json::array()}};
  // The migration takes the at-rest service's lock, then the KMIP one.
  if (kst.migrate_volumes) {
    auto m = kst.migrate_volumes(id);
    if (m.ok()) {
      r["migration"] = *m;
    } else {
      r["migration"] = json{{"error", {{"name", m.error().name()}, {"message", m.error().message()}}}};
      r["warnings"].push_back("the key provider is enabled, but not every key-media volume moved to it: " +
                              m.error().message() + "; run 'storcrypt ear migrate' again");
    }
  }
  return r;
}

}  // namespace

Status register_ear_methods(Dispatcher& d, Context& ctx) {
  auto st = sed_state_for(ctx);
  auto kst = kmip_state_for(ctx);
  ServiceMethods<SedService> m(d, [st] { return resolve(*st); });
  // A KMIP key provider id: the volumes' key source (kmip_service.h); else the
  // drives (SedService, with the key media).
  STORCRYPT_TRY(d.add({"EnableEncryptionAtRest",
                       "make a KMIP key provider the at-rest key source of new volumes (keyProviderID of a KMIP "
                       "key provider), or set the access key on every self-encrypting drive and keep enrolling "
                       "drives found later (no keyProviderID, or the key media's)",
                       {{"keyProviderID", ParamType::kAny, false,
                         "KMIP key provider id, or the key media's id (default: the drives with the key media)"}},
                       true,
                       [st, kst](const Params& p) -> Result<json> {
                         if (auto id = kmip_provider_id(p)) return enable_kmip(*kst, *id);
                         if (p.has("keyProviderID") && !p.json()["keyProviderID"].is_string())
                           return Error(ErrorCode::kInvalidInput, "keyProviderID must be an id",
                                        "give a KMIP key provider id (storcrypt keyprovider list)",
                                        "xInvalidParameter");
                         STORCRYPT_ASSIGN_OR_RETURN(SedService * s, resolve(*st));
                         std::lock_guard lock(s->mu);
                         STORCRYPT_ASSIGN_OR_RETURN(auto rep, s->enable(p.str("keyProviderID")));
                         json r = report_json(rep);
                         r["enabled"] = true;
                         return r;
                       }}));
  STORCRYPT_TRY(d.add(
      {"DisableEncryptionAtRest",
       "stop using the active KMIP key provider for new volumes (refused while volumes are keyed from it), and turn "
       "locking off on every owned drive (unlocked, data intact, ownership kept)",
       {},
       true,
       [st, kst](const Params&) -> Result<json> {
         std::optional<int64_t> kmip_id;
         if (kst->svc) {
           KmipService& k = *kst->svc;
           std::lock_guard lock(k.mu);
           STORCRYPT_ASSIGN_OR_RETURN(auto active, k.active_provider());
           if (active) {
             STORCRYPT_ASSIGN_OR_RETURN(int64_t keyed, k.volumes_keyed_from(active->id));
             if (keyed > 0)
               return Error(ErrorCode::kConflict,
                            "encryption at rest cannot be disabled: " + std::to_string(keyed) +
                                " volume(s) keep their keys on key provider " + std::to_string(active->id) + " ('" +
                                active->name + "'), and dm-crypt volumes cannot fall back to local keys",
                            "crypto-erase those volumes first (storcrypt volume list shows each volume's provider)",
                            "xKeyProviderHasVolumes");
             STORCRYPT_TRY(k.set_provider_active(active->id, false));
             kmip_id = active->id;
           }
         }
         if (kmip_id) {
           json r{{"enabled", false}, {"keyProviderID", *kmip_id}};
           // The drives too, when their encryption at rest is on.
           if (auto s = resolve(*st); s.ok()) {
             std::lock_guard lock((*s)->mu);
             STORCRYPT_ASSIGN_OR_RETURN(auto e, (*s)->status());
             if (e.enabled) {
               STORCRYPT_ASSIGN_OR_RETURN(auto rep, (*s)->disable());
               r["drives"] = report_json(rep);
             }
           }
           return r;
         }
         STORCRYPT_ASSIGN_OR_RETURN(SedService * s, resolve(*st));
         std::lock_guard lock(s->mu);
         STORCRYPT_ASSIGN_OR_RETURN(auto rep, s->disable());
         json r = report_json(rep);
         r["enabled"] = false;
         return r;
       }}));
  STORCRYPT_TRY(m.add("ear.status",
                      "at-rest encryption: the volumes' key source (active KMIP key provider); the drives: enabled, "
                      "key provider, AK generation, drives",
                      {}, false, [kst](SedService& s, const Params&) -> Result<json> {
                        STORCRYPT_ASSIGN_OR_RETURN(auto e, s.status());
                        json drives = json::array();
                        for (const auto& r : e.drives) drives.push_back(record_json(r));
                        return json{{"enabled", e.enabled},
                                    {"provider", {{"kind", e.provider_kind}, {"id", e.provider_id}}},
                                    {"ak_generation", e.ak_generation},
                                    {"drives", drives},
                                    {"volumes", volumes_key_source(*kst)}};
                      }));
  STORCRYPT_TRY(m.add("ear.rekey", "rotate the drives' access key (journalled: never locks the drives out)", {}, true,
                      [](SedService& s, const Params&) -> Result<json> {
                        STORCRYPT_ASSIGN_OR_RETURN(auto rep, s.rekey());
                        STORCRYPT_ASSIGN_OR_RETURN(auto e, s.status());
                        json r = report_json(rep);
                        r["ak_generation"] = e.ak_generation;
                        return r;
                      }));
  return ok_status();
}

}  // namespace storcrypt::controller
