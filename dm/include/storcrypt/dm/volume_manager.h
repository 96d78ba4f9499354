// storcrypt: encrypted volumes (LUKS2, aes-xts-plain64, 512-bit volume key,
// 4096-byte sectors) whose access keys come from a key provider.
//
// One keyslot per access key (AK, 256 random bits, pbkdf2/1000); the
// storcrypt LUKS2 token names the provider, key and keyslot. Rekey is
// add-new-slot -> token -> provider commit -> destroy-old-slot. Migrate moves
// a key-media volume's access key to another (external) provider. Create,
// rekey, erase and migrate are operations of the one journal
// (storcrypt/journal/journal.h, kinds "volume.create", "volume.rekey",
// "volume.erase", "volume.migrate"); resume() finishes or rolls back an
// interrupted one.
#pragma once

#include <filesystem>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "storcrypt/dm/crypt_backend.h"
#include "storcrypt/dm/device_probe.h"
#include "storcrypt/dm/policy.h"
#include "storcrypt/dm/token.h"
#include "storcrypt/journal/journal.h"
#include "storcrypt/keys/key_provider.h"

namespace storcrypt::dm {

struct VolumeManagerConfig {
  ActivationFlags activation;             ///< dm-crypt performance flags for open()
  std::uint32_t pbkdf_iterations = 1000;  ///< pbkdf2 iterations of every keyslot
  std::uint32_t sector_size = 4096;
  AtRestPolicy policy;
  /// When set, a LUKS2 header backup (a key copy!) is kept here as
  /// storcrypt-<uuid>.luks2hdr (0600) and shredded by erase().
  std::filesystem::path header_backup_dir;
};

struct CreateRequest {
  std::string device;
  std::string name;    ///< mapping name; also the key label
  std::string key_id;  ///< empty: "vol-" + 16 random hex digits
  bool encrypted = true;
  /// Overwrite foreign signatures (filesystem, partition table, RAID/LVM/LUKS).
  /// Never overrides "in use" (mounted, held, opened exclusively) and never
  /// overwrites a storcrypt volume (erase it first).
  bool force = false;
  /// The provider that keeps the new volume's key (kind and id, as recorded
  /// in the token); empty: the first provider.
  std::string provider_kind;
  std::string provider_id;
};

struct VolumeInfo {
  std::string device;
  std::string uuid;
  std::string state;  ///< "open" | "closed"
  std::string name;
  std::string cipher;  ///< "aes-xts-plain64"
  std::size_t key_bits = 0;
  std::uint32_t sector_size = 0;
  std::string provider_kind;
  std::string provider_id;
  std::string key_id;
  std::uint64_t generation = 0;
  int keyslot = -1;
  std::vector<int> active_keyslots;
  bool rekey_in_progress = false;
};

struct OpReport {
  std::vector<std::string> warnings;
};

struct ResumeReport {
  struct Item {
    std::string op, volume_uuid, device, outcome;  ///< outcome: "completed" | "rolled-back"
  };
  std::vector<Item> items;
  std::vector<std::string> warnings;
};

/// Journal kinds of the volume operations.
inline constexpr const char* kCreateKind = "volume.create";
inline constexpr const char* kRekeyKind = "volume.rekey";
inline constexpr const char* kEraseKind = "volume.erase";
inline constexpr const char* kMigrateKind = "volume.migrate";

/// Named points of each operation where a test can stop it (journal pause
/// and stop hooks; "<kind>:<point>"). Journal steps are recorded durably
/// before their point; the others are between an action and its record.
/// create: begin, key-stored, format, formatted, token-set, registered, done
/// rekey:  begin, add-slot, slot-added, token-set, token-updated,
///         provider-partial (keymedia:medium-written), provider-commit,
///         provider-committed, destroy-old, old-destroyed, token-final, retire-old, done
/// erase:  begin, slots-destroyed, tokens-removed, header-wiped, backups-shredded,
///         keys-destroyed
/// migrate: begin, store-key, key-stored, add-slot, slot-added, set-token,
///         token-switched, registered, destroy-old, old-destroyed,
///         backup-replaced, shred-media, media-shredded, done
/// Until "token-switched" is recorded migrate rolls back unless the new key
/// is on the target provider and opens the new keyslot (then the token is
/// switched and it goes forward); from it on it goes forward.
/// Until "token-set" is recorded create rolls back (the header this create
/// wrote wiped, its key copies destroyed); from it on it goes forward
/// (header backup, registered).
const std::vector<std::string>& create_crash_points();
const std::vector<std::string>& rekey_crash_points();
const std::vector<std::string>& erase_crash_points();
const std::vector<std::string>& migrate_crash_points();

/// The caller's registry of volumes (the daemon's database). add is the last
/// step of create, remove the last step of erase; both are repeated by
/// resume and must be idempotent. Unset members: nothing to register.
struct VolumeRegistry {
  std::function<Status(const VolumeInfo&)> add;
  std::function<Status(const std::string& uuid)> remove;
};

class VolumeManager {
 public:
  /// `providers`: the first one stores keys of new volumes; open/rekey pick
  /// the one whose kind and id the volume's token names.
  /// `probe` is asked before anything destructive: what the device holds and who uses it.
  VolumeManager(CryptBackend& backend, DeviceProbe& probe, std::vector<keys::KeyProvider*> providers,
                journal::Journal& journal, VolumeManagerConfig cfg = {}, VolumeRegistry registry = {});

  /// Refused (nothing written, no key stored) when the device is in use
  /// (xDeviceInUse), already a storcrypt volume (xVolumeExists), or holds any
  /// signature libblkid knows (xDeviceNotBlank) unless req.force.
  Result<VolumeInfo> create(const CreateRequest& req, OpReport* report = nullptr);
  /// Replace the providers (e.g. key providers configured at run time); the
  /// first one stores keys of new volumes. Not during an operation.
  void set_providers(std::vector<keys::KeyProvider*> providers) { providers_ = std::move(providers); }
  /// Open with the key the token names (falls back to the previous key
  /// during an interrupted rekey). `name` empty: the token's name.
  Status open(const std::string& device, const std::string& name = {}, OpReport* report = nullptr);
  Status close(const std::string& name);
  Result<VolumeInfo> show(const std::string& device);
  /// show() for each device; devices that are not storcrypt volumes are skipped.
  Result<std::vector<VolumeInfo>> list(const std::vector<std::string>& devices);
  /// New AK, new keyslot, old keyslot destroyed; the volume may be open and in use.
  Status rekey(const std::string& device, OpReport* report = nullptr);
  /// Finish or roll back every unfinished volume operation of the journal;
  /// stops at the first one that cannot be settled (it stays pending).
  Result<ResumeReport> resume();
  /// Settle one unfinished volume operation; `outcome`: "completed" | "rolled-back".
  Status resume_one(const journal::Entry& e, OpReport* report, std::string* outcome);
  /// Register resume() for the volume kinds with the journal's recover(): an
  /// operation that cannot be settled now is deferred (left pending).
  void register_resume_handlers();
  /// Crypto erase: no keyslot, no token, header area zeroed, backups and
  /// every key copy shredded. Refused unless the device carries a storcrypt
  /// token (xNotStorcryptVolume), and while the volume is open (xVolumeOpen)
  /// or the device is in use (xDeviceInUse).
  Status erase(const std::string& device, OpReport* report = nullptr);
  /// Move the volume's access key from the key media to `target` (an
  /// external provider, e.g. KMIP), online (the volume may be open and in
  /// use): new key stored on the target, new keyslot added with it, the token
  /// switched to the target (and the registry updated), then the old keyslot
  /// destroyed, the header backup (which holds the old keyslot) shredded and
  /// taken anew, and every key-media copy of the key shredded. A volume that
  /// already names `target` is left alone (Ok, `*moved` false). Refused for
  /// volumes keyed from an external provider (xMigrationNotSupported: keys
  /// never move from an external provider back to local media, TS7700 rule)
  /// and while another operation on the volume is pending (xOperationPending).
  Status migrate(const std::string& device, keys::KeyProvider& target, OpReport* report = nullptr,
                 bool* moved = nullptr);
  /// A storcrypt volume found by its own token (e.g. after the state database
  /// was lost): refused for foreign LUKS devices (xNotStorcryptVolume) and
  /// unless the key the token names is reachable and opens its keyslot.
  /// Writes nothing; the caller registers the returned volume.
  Result<VolumeInfo> adopt(const std::string& device, OpReport* report = nullptr);

 private:
  struct Rekey;
  struct Migration;
  Result<keys::KeyProvider*> provider_for(const VolumeToken& t);
  Result<std::optional<KeyslotRef>> with_token_key(const VolumeToken& tok, keys::KeyProvider* prov, OpReport* report,
                                                   const std::function<Status(const KeyslotRef&, const SecretBytes& ak)>& use);
  Result<HeaderInfo> load_header(const std::string& device);
  /// load_header() + the storcrypt token; a device without one is refused as foreign.
  Result<std::pair<HeaderInfo, std::pair<int, VolumeToken>>> load_storcrypt(const std::string& device,
                                                                            const std::string& what);
  Status check_not_in_use(const std::string& device, const std::string& what);
  Result<std::optional<std::string>> pending_for(const std::string& uuid);
  Status backup_header(const std::string& device, const std::string& uuid);
  Status create_forward(std::int64_t id, const nlohmann::json& p, OpReport* report);
  Status create_rollback(std::int64_t id, const nlohmann::json& p, std::string_view why, OpReport* report);
  Status resume_create(const journal::Entry& e, OpReport* report, std::string* outcome);
  Status rekey_forward(Rekey& r, const std::string& from_step, OpReport* report);
  Status rekey_rollback(Rekey& r, OpReport* report);
  Status erase_forward(std::int64_t id, const nlohmann::json& p, OpReport* report);
  Status resume_rekey(const journal::Entry& e, OpReport* report, std::string* outcome);
  Status migrate_forward(Migration& m, OpReport* report);
  Status migrate_rollback(Migration& m, const HeaderInfo& hi, OpReport* report);
  Status resume_migrate(const journal::Entry& e, OpReport* report, std::string* outcome);

  CryptBackend& backend_;
  DeviceProbe& probe_;
  std::vector<keys::KeyProvider*> providers_;
  journal::Journal& journal_;
  VolumeManagerConfig cfg_;
  VolumeRegistry registry_;
};

}  // namespace storcrypt::dm
