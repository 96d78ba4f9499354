// storcrypt: the key-provider interface used by the at-rest volume manager.
//
// A provider holds access keys (AKs) by (key id, generation). Generations let
// a rekey write the new key next to the old one, so a crash at any point
// leaves at least one generation that opens the volume.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "storcrypt/common/result.h"
#include "storcrypt/common/secret.h"

namespace storcrypt::keys {

/// Names one access key: key id plus generation (1, 2, ... one per rekey).
struct KeyRef {
  std::string key_id;
  std::uint64_t generation = 0;
};

/// Non-fatal findings of a provider operation (bad copies, too few copies).
/// Never contains key material.
struct ProviderReport {
  std::size_t copies_written = 0;  ///< store/rekey: copies of the key now on media
  std::size_t copies_removed = 0;  ///< retire/destroy: copies shredded
  std::vector<std::string> warnings;
};

struct FetchedKey {
  SecretBytes ak;
  std::size_t valid_copies = 0;
  std::vector<std::string> warnings;  ///< e.g. "medium /a: copy corrupt (MAC mismatch)"
};

class KeyProvider {
 public:
  virtual ~KeyProvider() = default;
  /// Provider kind recorded in the LUKS2 token ("keymedia", "kmip", ...).
  virtual std::string kind() const = 0;
  /// Provider instance id recorded in the LUKS2 token.
  virtual std::string id() const = 0;

  /// Store a brand-new key (volume create). Fails when it cannot keep one copy.
  virtual Result<ProviderReport> store(const KeyRef& ref, const SecretBytes& ak) = 0;
  /// Fetch a key; kNotFound when no valid copy exists.
  virtual Result<FetchedKey> fetch(const KeyRef& ref) = 0;
  /// Rekey: requires a valid copy of `current`, then stores `next` everywhere.
  /// The current generation stays until retire().
  virtual Result<ProviderReport> rekey(const KeyRef& current, const KeyRef& next, const SecretBytes& new_ak) = 0;
  /// Remove (shred) every copy of one generation.
  virtual Result<ProviderReport> retire(const KeyRef& ref) = 0;
  /// Remove (shred) every copy of every generation of a key id (crypto erase).
  virtual Result<ProviderReport> destroy_all(const std::string& key_id) = 0;
  /// True when any copy of any generation of `key_id` exists (a key id that
  /// names a key is never handed to a new volume: undoing that create would
  /// destroy the other volume's keys).
  virtual Result<bool> holds(const std::string& key_id) = 0;
};

}  // namespace storcrypt::keys
