// storcrypt: the thin, injectable boundary to LUKS2/dm-crypt.
//
// Every call names the device (or mapping) and works on a freshly loaded
// header, so no state survives between calls: a crash between two calls
// leaves exactly what is on disk. The real implementation is libcryptsetup
// (make_libcryptsetup_backend); tests/support (storcrypt::dm_fake) models it for unit tests.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "storcrypt/common/result.h"
#include "storcrypt/common/secret.h"

namespace storcrypt::dm {

struct FormatParams {
  std::string cipher = "aes";
  std::string cipher_mode = "xts-plain64";
  std::size_t volume_key_bytes = 64;  ///< 512-bit key = XTS-AES-256
  std::uint32_t sector_size = 4096;
  std::uint32_t pbkdf_iterations = 1000;  ///< pbkdf2, no benchmark: the AK is 256 random bits
  std::string label;                      ///< LUKS2 label (informational)
  /// LUKS2 UUID to write; empty: libcryptsetup picks one. Chosen up front by
  /// journalled create, so recovery wipes only the header it wrote.
  std::string uuid;
};

struct HeaderInfo {
  std::string uuid;
  std::string cipher;       ///< "aes"
  std::string cipher_mode;  ///< "xts-plain64"
  std::size_t volume_key_bytes = 0;
  std::uint32_t sector_size = 0;
  std::uint64_t data_offset_bytes = 0;  ///< header + keyslot areas end here
  std::vector<int> active_keyslots;
  std::map<int, std::string> tokens;  ///< token id -> token JSON
};

struct ActivationFlags {
  bool no_read_workqueue = false;   ///< CRYPT_ACTIVATE_NO_READ_WORKQUEUE
  bool no_write_workqueue = false;  ///< CRYPT_ACTIVATE_NO_WRITE_WORKQUEUE
};

struct ActiveInfo {
  std::string name;
  std::string device;  ///< underlying block device
  std::string cipher;  ///< "aes-xts-plain64"
  std::string uuid;    ///< LUKS UUID of the header
  ActivationFlags flags;
};

class CryptBackend {
 public:
  virtual ~CryptBackend() = default;
  /// true when `dev` carries a loadable LUKS2 header.
  virtual Result<bool> is_luks(const std::string& dev) = 0;
  virtual Result<HeaderInfo> inspect(const std::string& dev) = 0;
  /// crypt_format (LUKS2) + crypt_keyslot_add_by_volume_key(keyslot, ak) with pbkdf2.
  virtual Status format(const std::string& dev, const FormatParams& p, int keyslot, const SecretBytes& ak) = 0;
  /// crypt_keyslot_add_by_passphrase: store the volume key, unlocked with
  /// `existing_ak`, in the *inactive* slot `new_slot` under `new_ak`.
  virtual Status add_keyslot(const std::string& dev, int new_slot, const SecretBytes& existing_ak,
                             const SecretBytes& new_ak, std::uint32_t pbkdf_iterations) = 0;
  virtual Status destroy_keyslot(const std::string& dev, int slot) = 0;
  /// crypt_token_json_set; token < 0 allocates. Returns the token id.
  virtual Result<int> set_token(const std::string& dev, int token, const std::string& json) = 0;
  virtual Status remove_token(const std::string& dev, int token) = 0;
  /// Checks that `ak` opens `slot` without activating anything.
  virtual Status verify_key(const std::string& dev, int slot, const SecretBytes& ak) = 0;
  virtual Status activate(const std::string& dev, const std::string& name, int slot, const SecretBytes& ak,
                          const ActivationFlags& flags) = 0;
  virtual Status deactivate(const std::string& name) = 0;
  /// The active mapping `name`, or nullopt when it does not exist.
  virtual Result<std::optional<ActiveInfo>> active(const std::string& name) = 0;
  /// Zero bytes [0, length) of `dev` (the LUKS2 header and keyslot areas), synced.
  virtual Status wipe_area(const std::string& dev, std::uint64_t length) = 0;
  /// crypt_header_backup to `file` (created 0600; must not exist).
  virtual Status header_backup(const std::string& dev, const std::string& file) = 0;
};

std::unique_ptr<CryptBackend> make_libcryptsetup_backend();

}  // namespace storcrypt::dm
