// storcrypt: an in-memory CryptBackend for unit tests of volume logic.
//
// Models what the manager relies on: keyslots hold (passphrase -> volume
// key), tokens must reference existing keyslots, destroying a slot drops it
// from tokens, activating needs the slot's passphrase, and a wiped header is
// no LUKS device. Adding a key into an active slot is an error (the manager
// must never overwrite a keyslot in place).
#pragma once

#include <functional>
#include <map>
#include <string>

#include "storcrypt/dm/crypt_backend.h"

namespace storcrypt::dm {

class FakeCryptBackend final : public CryptBackend {
 public:
  struct Volume {
    HeaderInfo header;
    std::map<int, SecretBytes> slots;  ///< slot -> passphrase
    bool wiped = false;
  };
  struct Mapping {
    std::string device;
    ActivationFlags flags;
    bool busy = false;
  };

  /// Register a blank device (as a loop device would be).
  void add_device(const std::string& dev) { devices_[dev]; }
  /// Fail the next call of `op` ("format", "add_keyslot", "activate", ...).
  void fail_next(const std::string& op, Error e) { failures_.insert_or_assign(op, std::move(e)); }
  const std::map<std::string, Volume>& devices() const { return devices_; }
  std::map<std::string, Mapping>& mappings() { return mappings_; }
  int calls(const std::string& op) const {
    auto it = calls_.find(op);
    return it == calls_.end() ? 0 : it->second;
  }

  Result<bool> is_luks(const std::string& dev) override;
  Result<HeaderInfo> inspect(const std::string& dev) override;
  Status format(const std::string& dev, const FormatParams& p, int keyslot, const SecretBytes& ak) override;
  Status add_keyslot(const std::string& dev, int new_slot, const SecretBytes& existing_ak, const SecretBytes& new_ak,
                     std::uint32_t pbkdf_iterations) override;
  Status destroy_keyslot(const std::string& dev, int slot) override;
  Result<int> set_token(const std::string& dev, int token, const std::string& json) override;
  Status remove_token(const std::string& dev, int token) override;
  Status verify_key(const std::string& dev, int slot, const SecretBytes& ak) override;
  Status activate(const std::string& dev, const std::string& name, int slot, const SecretBytes& ak,
                  const ActivationFlags& flags) override;
  Status deactivate(const std::string& name) override;
  Result<std::optional<ActiveInfo>> active(const std::string& name) override;
  Status wipe_area(const std::string& dev, std::uint64_t length) override;
  Status header_backup(const std::string& dev, const std::string& file) override;

 private:
  Status enter(const std::string& op);
  Result<Volume*> luks(const std::string& dev);
  std::map<std::string, Volume> devices_;
  std::map<std::string, Mapping> mappings_;
  std::map<std::string, Error> failures_;
  std::map<std::string, int> calls_;
  int next_uuid_ = 1;
};

}  // namespace storcrypt::dm
