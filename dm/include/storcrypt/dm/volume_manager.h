// storcrypt: encrypted volumes (LUKS2, aes-xts-plain64, 512-bit volume key,
// 4096-byte sectors) whose access keys come from a key provider.
//
// One keyslot per access key (AK, 256 random bits, pbkdf2/1000); the
// storcrypt LUKS2 token names the provider, key and keyslot. Rekey is
// add-new-slot -> token -> provider commit -> destroy-old-slot, journalled;
// resume() finishes or rolls back an interrupted rekey or erase.
#pragma once

#include <filesystem>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "storcrypt/dm/crypt_backend.h"
#include "storcrypt/dm/device_probe.h"
#include "storcrypt/dm/journal.h"
#include "storcrypt/dm/policy.h"
#include "storcrypt/dm/token.h"
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

/// Named points of rekey/erase where a crash can be injected (tests).
/// rekey: begin, add-slot, slot-added, token-set, token-updated, provider-commit,
///        provider-committed, destroy-old, old-destroyed, token-final, retire-old, done
/// erase: erase-begin, slots-destroyed, tokens-removed, header-wiped, backups-shredded, keys-destroyed
const std::vector<std::string>& rekey_crash_points();
const std::vector<std::string>& erase_crash_points();

class VolumeManager {
 public:
  /// `providers`: the first one stores keys of new volumes; open/rekey pick
  /// the one whose kind and id the volume's token names.
  /// `probe` is asked before anything destructive: what the device holds and who uses it.
  VolumeManager(CryptBackend& backend, DeviceProbe& probe, std::vector<keys::KeyProvider*> providers, Journal& journal,
                VolumeManagerConfig cfg = {});

  /// Refused (nothing written, no key stored) when the device is in use
  /// (xDeviceInUse), already a storcrypt volume (xVolumeExists), or holds any
  /// signature libblkid knows (xDeviceNotBlank) unless req.force.
  Result<VolumeInfo> create(const CreateRequest& req, OpReport* report = nullptr);
  /// Open with the key the token names (falls back to the previous key
  /// during an interrupted rekey). `name` empty: the token's name.
  Status open(const std::string& device, const std::string& name = {}, OpReport* report = nullptr);
  Status close(const std::string& name);
  Result<VolumeInfo> show(const std::string& device);
  /// show() for each device; devices that are not storcrypt volumes are skipped.
  Result<std::vector<VolumeInfo>> list(const std::vector<std::string>& devices);
  /// New AK, new keyslot, old keyslot destroyed; the volume may be open and in use.
  Status rekey(const std::string& device, OpReport* report = nullptr);
  /// Finish or roll back every unfinished journalled operation.
  Result<ResumeReport> resume();
  /// Crypto erase: no keyslot, no token, header area zeroed, backups and
  /// every key copy shredded. Refused unless the device carries a storcrypt
  /// token (xNotStorcryptVolume), and while the volume is open (xVolumeOpen)
  /// or the device is in use (xDeviceInUse).
  Status erase(const std::string& device, OpReport* report = nullptr);
  /// A storcrypt volume found by its own token (e.g. after the state database
  /// was lost): refused for foreign LUKS devices (xNotStorcryptVolume) and
  /// unless the key the token names is reachable and opens its keyslot.
  /// Writes nothing; the caller registers the returned volume.
  Result<VolumeInfo> adopt(const std::string& device, OpReport* report = nullptr);

  /// Fault injection: called at each crash point; returning true makes the
  /// operation stop right there as if the process died (error kInternal,
  /// no cleanup). The VM driver _exit()s instead.
  void set_crash_hook(std::function<bool(std::string_view point)> hook) { crash_hook_ = std::move(hook); }

 private:
  struct Rekey;
  Result<keys::KeyProvider*> provider_for(const VolumeToken& t);
  Result<std::optional<KeyslotRef>> with_token_key(const VolumeToken& tok, keys::KeyProvider* prov, OpReport* report,
                                                   const std::function<Status(const KeyslotRef&, const SecretBytes& ak)>& use);
  Result<HeaderInfo> load_header(const std::string& device);
  /// load_header() + the storcrypt token; a device without one is refused as foreign.
  Result<std::pair<HeaderInfo, std::pair<int, VolumeToken>>> load_storcrypt(const std::string& device,
                                                                            const std::string& what);
  Status check_not_in_use(const std::string& device, const std::string& what);
  bool crash(std::string_view point);
  Status journal(const std::string& op, const std::string& uuid, const std::string& device, const std::string& step,
                 const std::string& data);
  Status backup_header(const std::string& device, const std::string& uuid);
  Status rekey_forward(Rekey& r, const std::string& from_step, OpReport* report);
  Status rekey_rollback(Rekey& r, OpReport* report);
  Status erase_forward(const JournalEntry& begin, OpReport* report);
  Status resume_rekey(const JournalEntry& last, OpReport* report, std::string* outcome);

  CryptBackend& backend_;
  DeviceProbe& probe_;
  std::vector<keys::KeyProvider*> providers_;
  Journal& journal_;
  VolumeManagerConfig cfg_;
  std::function<bool(std::string_view)> crash_hook_;
};

}  // namespace storcrypt::dm
