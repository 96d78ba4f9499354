// storcrypt controller: the self-encrypting drive service (see sed.h).
#include <algorithm>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <set>

#include "storcrypt/controller/sed.h"

namespace storcrypt::controller {

using nlohmann::json;

namespace {

constexpr std::size_t kKeyBytes = 32;

int64_t now() { return static_cast<int64_t>(std::time(nullptr)); }

bool is_name(const Error& e, std::string_view name) { return e.name() == name; }

}  // namespace

std::string DriveRecord::state() const {
  if (!capable) return "not-capable";
  if (foreign) return "foreign";
  if (!owned) return "available";
  if (!locking) return "locking-off";
  return locked ? "locked" : "unlocked";
}

std::vector<std::string> default_sed_devices() {
  namespace fs = std::filesystem;
  std::vector<std::string> out;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator("/sys/block", ec)) {
    const std::string n = e.path().filename().string();
    static const char* virt[] = {"loop", "ram", "zram", "dm-", "md", "sr", "fd", "nbd"};
    bool skip = false;
    for (const char* v : virt) skip = skip || n.rfind(v, 0) == 0;
    if (!skip) out.push_back("/dev/" + n);
  }
  std::sort(out.begin(), out.end());
  return out;
}

Result<std::unique_ptr<SedService>> SedService::create(Db& db, journal::Journal& journal, sed::SedIoctl& io,
                                                       keys::KeyProvider& keys, SedConfig cfg) {
  STORCRYPT_TRY(db.migrate(
      "sed", {{1, "self-encrypting drives and EAR settings",
               "CREATE TABLE sed_drives(device TEXT PRIMARY KEY, capable INTEGER NOT NULL, reason TEXT NOT NULL, "
               "owned INTEGER NOT NULL, foreign_owner INTEGER NOT NULL, locking INTEGER NOT NULL, "
               "locked INTEGER NOT NULL, ak_generation INTEGER NOT NULL, last_error TEXT NOT NULL, "
               "updated INTEGER NOT NULL);"
               "CREATE TABLE sed_settings(name TEXT PRIMARY KEY, value TEXT NOT NULL);"}}));
  if (!cfg.list_devices) cfg.list_devices = default_sed_devices;
  std::unique_ptr<SedService> s(new SedService(db, journal, io, keys, std::move(cfg)));
  SedService* self = s.get();
  journal.register_handler("sed.enable", [self](journal::Journal& j, const journal::Entry& e) {
    std::lock_guard lock(self->mu);
    return self->resume_enable(j, e);
  });
  journal.register_handler("sed.rekey", [self](journal::Journal& j, const journal::Entry& e) {
    std::lock_guard lock(self->mu);
    return self->resume_rekey(j, e);
  });
  return s;
}

// ------------------------------------------------------------------ store

Status SedService::save(const DriveRecord& r) {
  return db_.exec(
      "INSERT OR REPLACE INTO sed_drives(device, capable, reason, owned, foreign_owner, locking, locked, "
      "ak_generation, last_error, updated) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
      {r.device, int64_t{r.capable}, r.reason, int64_t{r.owned}, int64_t{r.foreign}, int64_t{r.locking},
       int64_t{r.locked}, static_cast<int64_t>(r.ak_generation), r.last_error, now()});
}

namespace {
DriveRecord record_of(const DbRow& row) {
  DriveRecord r;
  r.device = row.text(0);
  r.capable = row.integer(1);
  r.reason = row.text(2);
  r.owned = row.integer(3);
  r.foreign = row.integer(4);
  r.locking = row.integer(5);
  r.locked = row.integer(6);
  r.ak_generation = static_cast<std::uint64_t>(row.integer(7));
  r.last_error = row.text(8);
  r.updated = row.integer(9);
  return r;
}
constexpr const char* kSelect =
    "SELECT device, capable, reason, owned, foreign_owner, locking, locked, ak_generation, last_error, updated "
    "FROM sed_drives";
}  // namespace

Result<std::optional<DriveRecord>> SedService::load(const std::string& device) {
  STORCRYPT_ASSIGN_OR_RETURN(auto rows, db_.query(std::string(kSelect) + " WHERE device = ?1", {device}));
  if (rows.empty()) return std::optional<DriveRecord>();
  return std::optional<DriveRecord>(record_of(rows[0]));
}

Result<std::vector<DriveRecord>> SedService::load_all() {
  STORCRYPT_ASSIGN_OR_RETURN(auto rows, db_.query(std::string(kSelect) + " ORDER BY device"));
  std::vector<DriveRecord> out;
  for (const auto& r : rows) out.push_back(record_of(r));
  return out;
}

Result<std::string> SedService::setting(const std::string& name, const std::string& dflt) {
  STORCRYPT_ASSIGN_OR_RETURN(auto rows, db_.query("SELECT value FROM sed_settings WHERE name = ?1", {name}));
  return rows.empty() ? dflt : rows[0].text(0);
}

Status SedService::set_setting(const std::string& name, const std::string& value) {
  return db_.exec("INSERT OR REPLACE INTO sed_settings(name, value) VALUES(?1, ?2)", {name, value});
}

Result<std::uint64_t> SedService::current_generation() {
  STORCRYPT_ASSIGN_OR_RETURN(auto g, setting("ak_generation", "0"));
  return static_cast<std::uint64_t>(std::stoull(g));
}

// ------------------------------------------------------------------ keys

Result<SecretBytes> SedService::fetch(const std::string& key_id, std::uint64_t generation) {
  auto k = keys_.fetch({key_id, generation});
  if (!k.ok()) {
    return Error(k.error().code(),
                 "the drives' key " + key_id + " generation " + std::to_string(generation) +
                     " is not available from key provider " + keys_.kind() + "/" + keys_.id() + ": " +
                     k.error().message(),
                 k.error().fix().empty() ? "make a key medium holding the key present (storcrypt keymedia status)"
                                         : k.error().fix(),
                 "xKeyProviderUnavailable");
  }
  return std::move(k->ak);
}

// ------------------------------------------------------------------ discovery

Result<std::vector<DriveRecord>> SedService::refresh(SedReport* report) {
  STORCRYPT_ASSIGN_OR_RETURN(std::string ear, setting("ear_enabled", "0"));
  std::set<std::string> seen;
  for (const auto& dev : cfg_.list_devices()) {
    seen.insert(dev);
    STORCRYPT_ASSIGN_OR_RETURN(auto old, load(dev));
    DriveRecord r = old ? *old : DriveRecord{};
    r.device = dev;
    sed::Drive d(io_, dev);
    auto st = d.status();
    if (!st.ok()) {
      if (is_name(st.error(), sed::kErrNotOpal)) {
        r.capable = false;
        r.reason = st.error().message();
      } else {
        r.last_error = st.error().message();  // keep what we knew; the drive did not answer
        if (!old) r.reason = "did not answer: " + st.error().message();
      }
      STORCRYPT_TRY(save(r));
      continue;
    }
    r.capable = true;
    r.reason.clear();
    r.locked = st->locked;
    // Locking active on a drive we never enrolled: someone else owns it.
    if (!r.owned && st->locking_enabled) r.foreign = true;
    if (r.owned && !st->locking_enabled) {  // reverted behind our back (e.g. PSID revert elsewhere)
      r.owned = r.locking = false;
      r.last_error = "the drive's Locking SP is no longer active (reverted outside storcrypt)";
    }
    STORCRYPT_TRY(save(r));
    if (ear == "1" && !r.owned && !r.foreign) {
      // Enroll drives that appeared while EAR is on.
      STORCRYPT_ASSIGN_OR_RETURN(std::uint64_t g, current_generation());
      auto sid = fetch(kSedSidKeyId, 1);
      auto ak = sid.ok() ? fetch(kSedAkKeyId, g) : Result<SecretBytes>(Error(sid.error()));
      Status e = ak.ok() ? enroll(r, *sid, *ak, g) : Status(ak.error());
      if (report) report->drives.push_back({dev, e.ok(), r.state(), e.ok() ? "" : e.error().message()});
      if (!e.ok() && report) report->warnings.push_back(e.error().message());
    }
  }
  // Drives that disappeared keep their record (a drive removed while locked stays locked).
  return load_all();
}

Result<DriveRecord> SedService::show(const std::string& device) {
  (void)refresh();
  STORCRYPT_ASSIGN_OR_RETURN(auto r, load(device));
  if (!r)
    return Error(ErrorCode::kNotFound, "no drive " + device, "see 'storcrypt drive list'", "xDriveNotFound");
  return *r;
}

Result<EarStatus> SedService::status() {
  EarStatus s;
  STORCRYPT_ASSIGN_OR_RETURN(std::string ear, setting("ear_enabled", "0"));
  s.enabled = ear == "1";
  s.provider_kind = keys_.kind();
  s.provider_id = keys_.id();
  STORCRYPT_ASSIGN_OR_RETURN(s.ak_generation, current_generation());
  STORCRYPT_ASSIGN_OR_RETURN(s.drives, load_all());
  return s;
}

// ------------------------------------------------------------------ enroll

Status SedService::unlock_and_save(sed::Drive& d, const SecretBytes& ak) {
  STORCRYPT_TRY(d.unlock(ak));
  return d.save_for_resume(ak);  // the kernel replays it after suspend/resume
}

Status SedService::enroll(DriveRecord& r, const SecretBytes& sid, const SecretBytes& ak, std::uint64_t generation) {
  // Idempotent: each step tolerates having run before (a crash may repeat it).
  sed::Drive d(io_, r.device);
  bool took = false;
  Status own = d.take_ownership(sid);
  if (own.ok()) {
    took = true;
  } else if (!is_name(own.error(), sed::kErrNotAuthorized)) {
    r.last_error = own.error().message();
    (void)save(r);
    return own;
  }
  Status act = d.activate_locking(sid);
  if (!act.ok() && !is_name(act.error(), sed::kErrAlreadyActive)) {
    if (!took && is_name(act.error(), sed::kErrNotAuthorized)) {
      // Neither the MSID nor our SID opens it: someone else owns the drive. Nothing was changed.
      r.foreign = true;
      r.last_error = "owned by someone else: the drive refused take-ownership and our SID";
      (void)save(r);
      return Error(ErrorCode::kConflict, r.device + " is owned by someone else (the drive refused our SID)",
                   "if its data may be destroyed: 'storcrypt drive revert " + r.device +
                       " --psid --yes' with the PSID printed on the drive's label",
                   "xSedDriveForeign");
    }
    r.last_error = act.error().message();
    (void)save(r);
    return act;
  }
  // After activation Admin1 has the SID's password; move it to the AK (already done on a repeat).
  Status pw = d.set_admin1_password(sid, ak);
  if (!pw.ok() && !is_name(pw.error(), sed::kErrNotAuthorized)) {
    r.last_error = pw.error().message();
    (void)save(r);
    return pw;
  }
  Status lr = d.setup_global_range(ak, true);
  if (!lr.ok()) {
    r.last_error = lr.error().message();
    if (is_name(lr.error(), sed::kErrNotAuthorized) && !took) {
      r.foreign = true;
      r.last_error = "owned by someone else: its Admin1 refuses our access key";
    }
    (void)save(r);
    return lr;
  }
  Status ul = unlock_and_save(d, ak);
  if (!ul.ok()) {
    r.last_error = ul.error().message();
    (void)save(r);
    return ul;
  }
  r.owned = true;
  r.foreign = false;
  r.locking = true;
  r.locked = false;
  r.ak_generation = generation;
  r.last_error.clear();
  return save(r);
}

Result<SedReport> SedService::enable(const std::string& provider_id) {
  if (!provider_id.empty() && provider_id != keys_.id()) {
    return Error(ErrorCode::kNotFound, "no online key provider with id '" + provider_id + "'",
                 "use the configured key provider '" + keys_.id() + "' (or none)", "xNoOnlineKeyProviderWithThatID");
  }
  STORCRYPT_ASSIGN_OR_RETURN(auto drives, refresh());
  STORCRYPT_ASSIGN_OR_RETURN(std::uint64_t g, current_generation());
  const bool new_keys = g == 0;
  json targets = json::array();
  for (const auto& r : drives)
    if (r.capable && !r.foreign && (!r.owned || !r.locking)) targets.push_back(r.device);
  STORCRYPT_ASSIGN_OR_RETURN(int64_t id, journal_.begin("sed.enable", {{"new_keys", new_keys}, {"drives", targets}}));
  if (new_keys) {
    // Keys first: no drive may hold a key that is not durably stored.
    STORCRYPT_ASSIGN_OR_RETURN(auto sid, SecretBytes::random(kKeyBytes));
    STORCRYPT_ASSIGN_OR_RETURN(auto ak, SecretBytes::random(kKeyBytes));
    auto s1 = keys_.store({kSedSidKeyId, 1}, sid);
    auto s2 = s1.ok() ? keys_.store({kSedAkKeyId, 1}, ak) : Result<keys::ProviderReport>(Error(s1.error()));
    if (!s2.ok()) {
      (void)keys_.destroy_all(kSedSidKeyId);
      (void)keys_.destroy_all(kSedAkKeyId);
      (void)journal_.rolled_back(id, s2.error().message());
      return Error(s2.error()).context("storing the drives' keys");
    }
    STORCRYPT_TRY(set_setting("ak_generation", "1"));
  }
  STORCRYPT_TRY(journal_.step(id, "keys-stored"));
  STORCRYPT_ASSIGN_OR_RETURN(journal::Entry e, journal_.get(id));
  Status st = resume_enable(journal_, e);
  if (!st.ok()) return st.error();
  SedReport rep;
  STORCRYPT_ASSIGN_OR_RETURN(auto after, load_all());
  std::size_t refused = 0, enrolled = 0;
  for (const auto& r : after) {
    if (!r.capable) continue;
    const bool ok = r.owned && r.locking;
    rep.drives.push_back({r.device, ok, r.state(), ok ? "" : r.last_error});
    if (ok) {
      ++enrolled;
    } else {
      ++refused;
      rep.warnings.push_back(r.device + ": " + r.last_error);
    }
  }
  if (after.empty() || (enrolled == 0 && refused == 0))
    rep.warnings.push_back("no self-encrypting (TCG Opal) drive found on this node");
  if (enrolled == 0 && refused > 0) {
    // Nothing could be enrolled: EAR stays as it was.
    STORCRYPT_TRY(set_setting("ear_enabled", "0"));
    std::string msg = "no drive could be enrolled:";
    for (const auto& w : rep.warnings) msg += " " + w + ";";
    msg.pop_back();
    return Error(ErrorCode::kConflict, msg,
                 "a drive owned by someone else can only be used after 'storcrypt drive revert DRIVE --psid --yes' "
                 "(destroys its data)",
                 "xSedDriveForeign");
  }
  return rep;
}

Status SedService::resume_enable(journal::Journal& j, const journal::Entry& e) {
  if (!e.has_step("keys-stored")) {
    // Crashed while storing new keys: no drive was touched. Remove partial copies.
    if (e.payload.value("new_keys", false)) {
      (void)keys_.destroy_all(kSedSidKeyId);
      (void)keys_.destroy_all(kSedAkKeyId);
      STORCRYPT_TRY(set_setting("ak_generation", "0"));
    }
    return j.rolled_back(e.id, "interrupted before the keys were stored");
  }
  STORCRYPT_ASSIGN_OR_RETURN(std::uint64_t g, current_generation());
  STORCRYPT_ASSIGN_OR_RETURN(auto sid, fetch(kSedSidKeyId, 1));
  STORCRYPT_ASSIGN_OR_RETURN(auto ak, fetch(kSedAkKeyId, g));
  for (const auto& dv : e.payload.value("drives", json::array())) {
    const std::string dev = dv.get<std::string>();
    if (e.has_step("drive:" + dev)) continue;
    STORCRYPT_ASSIGN_OR_RETURN(auto rec, load(dev));
    DriveRecord r = rec ? *rec : DriveRecord{dev, true};
    if (!r.owned && !r.foreign) {
      (void)enroll(r, sid, ak, g);  // outcome is in the record
    } else if (r.owned && !r.locking) {
      // Enrolled earlier, locking turned off by a disable: turn it back on.
      sed::Drive d(io_, r.device);
      Status st = d.setup_global_range(ak, true);
      if (st.ok()) st = unlock_and_save(d, ak);
      r.locking = st.ok();
      r.locked = false;
      r.last_error = st.ok() ? "" : st.error().message();
      STORCRYPT_TRY(save(r));
    }
    STORCRYPT_TRY(j.step(e.id, "drive:" + dev));
  }
  STORCRYPT_TRY(set_setting("ear_enabled", "1"));
  return j.finish(e.id);
}

// ------------------------------------------------------------------ disable, lock, unlock

Result<DriveRecord> SedService::owned_drive(const std::string& device) {
  STORCRYPT_ASSIGN_OR_RETURN(auto r, load(device));
  if (!r) {
    (void)refresh();
    STORCRYPT_ASSIGN_OR_RETURN(r, load(device));
  }
  if (!r)
    return Error(ErrorCode::kNotFound, "no drive " + device, "see 'storcrypt drive list'", "xDriveNotFound");
  if (!r->capable)
    return Error(ErrorCode::kUnsupported, device + " is not a self-encrypting drive: " + r->reason, "",
                 std::string(sed::kErrNotOpal));
  if (!r->owned)
    return Error(ErrorCode::kConflict,
                 device + (r->foreign ? " is owned by someone else" : " is not enrolled by storcrypt"),
                 r->foreign ? "'storcrypt drive revert " + device + " --psid --yes' makes it usable (destroys its data)"
                            : "enable at-rest encryption first: 'storcrypt ear enable'",
                 "xDriveNotOwned");
  return *r;
}

Result<SedReport> SedService::disable() {
  STORCRYPT_ASSIGN_OR_RETURN(auto drives, load_all());
  SedReport rep;
  std::vector<std::string> failed;
  for (auto r : drives) {
    if (!r.owned || !r.locking) continue;
    STORCRYPT_ASSIGN_OR_RETURN(auto ak, fetch(kSedAkKeyId, r.ak_generation));
    sed::Drive d(io_, r.device);
    Status st = unlock_and_save(d, ak);
    if (st.ok()) st = d.setup_global_range(ak, false);
    if (st.ok()) {
      r.locking = r.locked = false;
      r.last_error.clear();
    } else {
      r.last_error = st.error().message();
      failed.push_back(st.error().message());
    }
    STORCRYPT_TRY(save(r));
    rep.drives.push_back({r.device, st.ok(), r.state(), st.ok() ? "" : st.error().message()});
  }
  if (!failed.empty()) {
    std::string msg = "locking could not be turned off on every drive (EAR stays enabled):";
    for (const auto& f : failed) msg += " " + f + ";";
    msg.pop_back();
    return Error(ErrorCode::kKernel, msg, "check 'storcrypt drive list' and retry", "xSedDriveRefused");
  }
  STORCRYPT_TRY(set_setting("ear_enabled", "0"));
  return rep;
}

Result<DriveRecord> SedService::lock(const std::string& device) {
  STORCRYPT_ASSIGN_OR_RETURN(DriveRecord r, owned_drive(device));
  if (!r.locking)
    return Error(ErrorCode::kConflict, device + " has locking turned off (at-rest encryption disabled)",
                 "enable it with 'storcrypt ear enable'", "xDriveLockingOff");
  STORCRYPT_ASSIGN_OR_RETURN(auto ak, fetch(kSedAkKeyId, r.ak_generation));
  sed::Drive d(io_, device);
  STORCRYPT_TRY(d.lock(ak));
  STORCRYPT_TRY(d.forget_saved_unlock());  // a resume must not unlock it again
  r.locked = true;
  r.last_error.clear();
  STORCRYPT_TRY(save(r));
  return r;
}

Result<DriveRecord> SedService::unlock(const std::string& device) {
  STORCRYPT_ASSIGN_OR_RETURN(DriveRecord r, owned_drive(device));
  STORCRYPT_ASSIGN_OR_RETURN(auto ak, fetch(kSedAkKeyId, r.ak_generation));
  sed::Drive d(io_, device);
  Status st = unlock_and_save(d, ak);
  if (!st.ok()) {
    r.last_error = st.error().message();
    (void)save(r);
    return Error(st.error().code(),
                 device + " stays locked: " + st.error().message() + " (access key generation " +
                     std::to_string(r.ak_generation) + ")",
                 st.error().fix(), st.error().name());
  }
  r.locked = false;
  r.last_error.clear();
  STORCRYPT_TRY(save(r));
  return r;
}

Result<std::vector<DriveRecord>> SedService::lockable() {
  STORCRYPT_ASSIGN_OR_RETURN(auto drives, load_all());
  std::vector<DriveRecord> out;
  for (auto r : drives) {
    if (!r.owned || !r.locking) continue;
    auto st = sed::Drive(io_, r.device).status();
    if (st.ok()) {
      r.locked = st->locked;
      (void)save(r);
    } else {
      r.locked = true;  // not answering: treat as locked, the unlock attempt reports why
    }
    out.push_back(r);
  }
  return out;
}

// ------------------------------------------------------------------ erase, revert

Result<SedReport> SedService::erase(const std::vector<std::string>& devices) {
  if (devices.empty()) return Error(ErrorCode::kInvalidInput, "no drive given", "name the drives to erase");
  // Check every drive first: nothing is erased unless all can be.
  std::vector<DriveRecord> targets;
  for (const auto& dev : devices) {
    STORCRYPT_ASSIGN_OR_RETURN(DriveRecord r, owned_drive(dev));
    STORCRYPT_TRY(sed::Drive(io_, dev).check_not_in_use());
    targets.push_back(r);
  }
  SedReport rep;
  for (auto& r : targets) {
    STORCRYPT_ASSIGN_OR_RETURN(auto ak, fetch(kSedAkKeyId, r.ak_generation));
    Status st = sed::Drive(io_, r.device).secure_erase(ak);
    r.last_error = st.ok() ? "" : st.error().message();
    STORCRYPT_TRY(save(r));
    if (!st.ok()) return Error(st.error()).context("secure erase stopped");
    rep.drives.push_back({r.device, true, r.state(), ""});
  }
  return rep;
}

Result<DriveRecord> SedService::revert(const std::string& device, const std::optional<std::string>& psid) {
  STORCRYPT_ASSIGN_OR_RETURN(auto rec, load(device));
  if (!rec) {
    (void)refresh();
    STORCRYPT_ASSIGN_OR_RETURN(rec, load(device));
  }
  if (!rec) return Error(ErrorCode::kNotFound, "no drive " + device, "see 'storcrypt drive list'", "xDriveNotFound");
  if (!rec->capable)
    return Error(ErrorCode::kUnsupported, device + " is not a self-encrypting drive: " + rec->reason, "",
                 std::string(sed::kErrNotOpal));
  sed::Drive d(io_, device);
  STORCRYPT_TRY(d.check_not_in_use());
  if (psid) {
    STORCRYPT_TRY(d.psid_revert(*psid));
  } else {
    if (!rec->owned)
      return Error(ErrorCode::kConflict, device + " is not owned by storcrypt: a revert needs its PSID",
                   "'storcrypt drive revert " + device + " --psid --yes' with the PSID from the drive's label",
                   "xDriveNotOwned");
    STORCRYPT_ASSIGN_OR_RETURN(auto sid, fetch(kSedSidKeyId, 1));
    STORCRYPT_TRY(d.revert(sid));
  }
  DriveRecord r = *rec;
  r.owned = r.foreign = r.locking = r.locked = false;
  r.ak_generation = 0;
  r.last_error.clear();
  STORCRYPT_TRY(save(r));
  return r;
}

// ------------------------------------------------------------------ rekey

Result<SedReport> SedService::rekey() {
  STORCRYPT_ASSIGN_OR_RETURN(std::string ear, setting("ear_enabled", "0"));
  if (ear != "1")
    return Error(ErrorCode::kConflict, "at-rest encryption of the drives is not enabled",
                 "enable it first: 'storcrypt ear enable'", "xEarNotEnabled");
  STORCRYPT_ASSIGN_OR_RETURN(std::uint64_t g, current_generation());
  STORCRYPT_ASSIGN_OR_RETURN(auto drives, load_all());
  json targets = json::array();
  for (const auto& r : drives) {
    if (!r.owned) continue;
    if (r.ak_generation != g)
      return Error(ErrorCode::kConflict,
                   r.device + " still uses access key generation " + std::to_string(r.ak_generation) +
                       " (current " + std::to_string(g) + ")",
                   "restart storcryptd to finish the interrupted rotation, then retry", "xSedRekeyPending");
    targets.push_back(r.device);
  }
  STORCRYPT_ASSIGN_OR_RETURN(auto old_ak, fetch(kSedAkKeyId, g));  // required before anything changes
  const json payload = {{"old", g}, {"new", g + 1}, {"drives", targets}};
  STORCRYPT_ASSIGN_OR_RETURN(int64_t id, journal_.begin("sed.rekey", payload));
  STORCRYPT_ASSIGN_OR_RETURN(auto new_ak, SecretBytes::random(kKeyBytes));
  auto stored = keys_.rekey({kSedAkKeyId, g}, {kSedAkKeyId, g + 1}, new_ak);
  if (!stored.ok()) {
    (void)keys_.retire({kSedAkKeyId, g + 1});
    (void)journal_.rolled_back(id, stored.error().message());
    return Error(stored.error()).context("storing the new access key");
  }
  STORCRYPT_TRY(journal_.step(id, "new-key-stored"));
  SedReport rep;
  std::vector<std::string> changed;
  for (const auto& dv : targets) {
    const std::string dev = dv.get<std::string>();
    sed::Drive d(io_, dev);
    Status st = d.set_admin1_password(old_ak, new_ak);
    // Test point: the drive has the new key, the journal does not know yet.
    if (st.ok()) STORCRYPT_TRY(journal_.point(id, "drive-changed"));
    if (st.ok()) st = d.save_for_resume(new_ak);
    if (!st.ok()) {
      // Undo: the drives already changed go back to the old key; the new generation is removed.
      for (const auto& c : changed) {
        sed::Drive back(io_, c);
        if (back.set_admin1_password(new_ak, old_ak).ok()) (void)back.save_for_resume(old_ak);
      }
      (void)keys_.retire({kSedAkKeyId, g + 1});
      (void)journal_.rolled_back(id, st.error().message());
      return Error(st.error()).context("access key rotation rolled back");
    }
    changed.push_back(dev);
    STORCRYPT_TRY(journal_.step(id, "drive:" + dev));
    STORCRYPT_ASSIGN_OR_RETURN(auto rec, load(dev));
    if (rec) {
      rec->ak_generation = g + 1;
      STORCRYPT_TRY(save(*rec));
    }
    rep.drives.push_back({dev, true, rec ? rec->state() : "", ""});
  }
  STORCRYPT_ASSIGN_OR_RETURN(journal::Entry e, journal_.get(id));
  STORCRYPT_TRY(finish_rekey(id, payload, e.steps));
  return rep;
}

Status SedService::finish_rekey(int64_t id, const json& payload, const std::vector<std::string>& done_steps) {
  const std::uint64_t g = payload.at("old").get<std::uint64_t>(), ng = payload.at("new").get<std::uint64_t>();
  const bool committed = std::find(done_steps.begin(), done_steps.end(), "committed") != done_steps.end();
  if (!committed) {
    STORCRYPT_TRY(set_setting("ak_generation", std::to_string(ng)));
    STORCRYPT_TRY(journal_.step(id, "committed"));
  }
  // Only now, with every drive on the new key and the new key stored, the old one goes.
  auto r = keys_.retire({kSedAkKeyId, g});
  if (!r.ok() && r.error().code() != ErrorCode::kNotFound) return r.error();
  return journal_.finish(id);
}

Status SedService::resume_rekey(journal::Journal& j, const journal::Entry& e) {
  const std::uint64_t g = e.payload.at("old").get<std::uint64_t>(), ng = e.payload.at("new").get<std::uint64_t>();
  if (e.has_step("committed")) return finish_rekey(e.id, e.payload, e.steps);
  if (!e.has_step("new-key-stored")) {
    // No drive was touched; partial copies of the new generation go.
    (void)keys_.retire({kSedAkKeyId, ng});
    return j.rolled_back(e.id, "interrupted before the new access key was stored");
  }
  // Roll forward: both keys are stored; each drive has one of them.
  STORCRYPT_ASSIGN_OR_RETURN(auto new_ak, fetch(kSedAkKeyId, ng));
  auto old_ak = fetch(kSedAkKeyId, g);
  for (const auto& dv : e.payload.value("drives", json::array())) {
    const std::string dev = dv.get<std::string>();
    sed::Drive d(io_, dev);
    if (!e.has_step("drive:" + dev)) {
      Status on_new = d.unlock(new_ak);
      if (!on_new.ok()) {
        if (!is_name(on_new.error(), sed::kErrNotAuthorized) || !old_ak.ok())
          return Error(on_new.error()).context("resuming the access key rotation on " + dev);
        STORCRYPT_TRY(d.set_admin1_password(*old_ak, new_ak));
      }
      STORCRYPT_TRY(d.save_for_resume(new_ak));
      STORCRYPT_TRY(j.step(e.id, "drive:" + dev));
    }
    STORCRYPT_ASSIGN_OR_RETURN(auto rec, load(dev));
    if (rec && rec->ak_generation != ng) {
      rec->ak_generation = ng;
      STORCRYPT_TRY(save(*rec));
    }
  }
  STORCRYPT_ASSIGN_OR_RETURN(journal::Entry now_e, j.get(e.id));
  return finish_rekey(e.id, e.payload, now_e.steps);
}

}  // namespace storcrypt::controller
