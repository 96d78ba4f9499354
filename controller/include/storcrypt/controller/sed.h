// storcrypt controller: self-encrypting drives (issue 18), the service layer of
// the `drive` and `ear` nouns. State and rules only (no JSON); the drives are
// reached through storcrypt::sed (the kernel's sed-opal ioctls, injected as a
// SedIoctl) and the keys through a keys::KeyProvider (key media today).
//
// Keys (one set for all the node's drives, as Element does):
//   "sed-sid" generation 1  the drives' SID (Admin SP owner). Linux 6.1 has no
//                           ioctl to change a SID, so it is never rotated;
//                           used for activation and revert.
//   "sed-ak"  generation g  the access key: Admin1's password of the Locking
//                           SP, which locks and unlocks the global range.
// Enable (EnableEncryptionAtRest) stores new keys first (journalled), then
// enrolls every capable drive: take ownership (SID), activate the Locking SP,
// Admin1 := AK, lock enabling on the global range, unlocked + saved for
// resume. Drives found later are enrolled while EAR is on. A drive someone
// else owns is refused and left untouched (state "foreign").
//
// AK rotation (journal kind "sed.rekey"): new generation stored beside the old
// one -> each drive's Admin1 changed old->new (and its saved resume unlock) ->
// the new generation committed -> the old generation retired. Recovery rolls
// forward once the new key is stored (a drive has either key: the old one
// stays until every drive is confirmed on the new one), and rolls back (new
// generation removed) before that.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "storcrypt/common/result.h"
#include "storcrypt/controller/db.h"
#include "storcrypt/controller/journal_store.h"
#include "storcrypt/keys/key_provider.h"
#include "storcrypt/sed/opal.h"

namespace storcrypt::controller {

inline constexpr const char* kSedAkKeyId = "sed-ak";
inline constexpr const char* kSedSidKeyId = "sed-sid";
/// Event: an enrolled drive could not be unlocked at start-up (or on a retry).
inline constexpr int kDriveLockedEvent = 6010;

/// One drive as the daemon records it.
struct DriveRecord {
  std::string device;
  bool capable = false;
  std::string reason;          ///< why not capable (empty when capable)
  bool owned = false;          ///< enrolled by storcrypt (SID and AK are ours)
  bool foreign = false;        ///< someone else owns it (refused, untouched)
  bool locking = false;        ///< lock enabling on the global range
  bool locked = false;         ///< last known lock state (GET_STATUS)
  std::uint64_t ak_generation = 0;
  std::string last_error;
  std::int64_t updated = 0;
  /// "not-capable", "available", "foreign", "unlocked", "locked", "locking-off".
  std::string state() const;
};

/// What happened to one drive in a multi-drive operation.
struct DriveOutcome {
  std::string device;
  bool ok = false;
  std::string state;  ///< state afterwards
  std::string error;  ///< when !ok
};

struct SedReport {
  std::vector<DriveOutcome> drives;
  std::vector<std::string> warnings;
};

struct EarStatus {
  bool enabled = false;
  std::string provider_kind, provider_id;
  std::uint64_t ak_generation = 0;
  std::vector<DriveRecord> drives;
};

struct SedConfig {
  /// Candidate block devices (default: every whole disk in /sys/block except
  /// virtual ones: loop, ram, zram, dm, md, sr, fd, nbd).
  std::function<std::vector<std::string>()> list_devices;
};

/// Every whole disk in /sys/block that is not virtual, as /dev/<name>.
std::vector<std::string> default_sed_devices();

class SedService {
 public:
  /// Creates the tables (component "sed") and registers the journal handlers.
  static Result<std::unique_ptr<SedService>> create(Db& db, journal::Journal& journal, sed::SedIoctl& io,
                                                    keys::KeyProvider& keys, SedConfig cfg);

  std::mutex mu;  ///< held by the RPC layer around every call

  /// Discover drives (Opal-capable or not, with the reason), update the
  /// records; with EAR on, enroll capable drives nobody owns yet.
  Result<std::vector<DriveRecord>> refresh(SedReport* report = nullptr);
  Result<DriveRecord> show(const std::string& device);
  Result<EarStatus> status();

  /// EnableEncryptionAtRest: provider_id empty or this provider's id.
  Result<SedReport> enable(const std::string& provider_id);
  /// DisableEncryptionAtRest: locking off on every owned drive (unlocked,
  /// ownership and keys kept, data intact).
  Result<SedReport> disable();
  /// AK rotation over every owned drive (journalled).
  Result<SedReport> rekey();
  /// SecureEraseDrives: new media key on each (owned, not in use) drive.
  Result<SedReport> erase(const std::vector<std::string>& devices);
  /// Factory reset: with the PSID (any drive, last resort) or with our SID.
  Result<DriveRecord> revert(const std::string& device, const std::optional<std::string>& psid);
  /// Lock / unlock (and save for resume) one owned drive with its AK.
  Result<DriveRecord> lock(const std::string& device);
  Result<DriveRecord> unlock(const std::string& device);

  /// Owned drives with locking on and whether they are unlocked now (for the start-up unlock).
  Result<std::vector<DriveRecord>> lockable();

 private:
  SedService(Db& db, journal::Journal& journal, sed::SedIoctl& io, keys::KeyProvider& keys, SedConfig cfg)
      : db_(db), journal_(journal), io_(io), keys_(keys), cfg_(std::move(cfg)) {}
  // store
  Status save(const DriveRecord& r);
  Result<std::optional<DriveRecord>> load(const std::string& device);
  Result<std::vector<DriveRecord>> load_all();
  Result<std::string> setting(const std::string& name, const std::string& dflt);
  Status set_setting(const std::string& name, const std::string& value);
  Result<std::uint64_t> current_generation();
  // rules
  Result<DriveRecord> owned_drive(const std::string& device);
  Result<SecretBytes> fetch(const std::string& key_id, std::uint64_t generation);
  Status enroll(DriveRecord& r, const SecretBytes& sid, const SecretBytes& ak, std::uint64_t generation);
  Status unlock_and_save(sed::Drive& d, const SecretBytes& ak);
  Status resume_enable(journal::Journal& j, const journal::Entry& e);
  Status resume_rekey(journal::Journal& j, const journal::Entry& e);
  Status finish_rekey(int64_t id, const nlohmann::json& payload, const std::vector<std::string>& done_steps);

  Db& db_;
  journal::Journal& journal_;
  sed::SedIoctl& io_;
  keys::KeyProvider& keys_;
  SedConfig cfg_;
};

}  // namespace storcrypt::controller
