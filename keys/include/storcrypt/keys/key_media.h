// storcrypt: the local key-media provider.
//
// Keys live as small key files (key_file.h) on removable media mounted at
// configured directories. Every write goes to every present medium; a key
// opens as soon as one valid copy is found; corrupt, foreign or mislabelled
// copies are reported and never used.
#pragma once

#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include "storcrypt/keys/key_file.h"
#include "storcrypt/keys/key_provider.h"

namespace storcrypt::keys {

struct KeyMediaConfig {
  std::vector<std::filesystem::path> media_dirs;  ///< mount points of the key media
  std::string system_id;                          ///< this system's id (key files are bound to it)
  std::string provider_id = "local";              ///< recorded in LUKS2 tokens
  std::size_t desired_copies = 4;                 ///< fewer present media -> warning
  /// Fault injection: called after each medium's copy is durably written;
  /// returning true stops right there as if the process died (error kInternal).
  std::function<bool(const std::filesystem::path& medium)> after_medium_write;
};

/// One key file found on a medium.
struct KeyFileEntry {
  std::filesystem::path path;
  std::string key_id;        ///< from the file name
  std::uint64_t generation;  ///< from the file name
  KeyFileProblem problem = KeyFileProblem::kNone;
  std::string detail;  ///< why it is unusable (empty when valid)
};

struct MediumStatus {
  std::filesystem::path dir;
  bool present = false;
  std::vector<KeyFileEntry> files;
};

/// File name of a key copy on a medium: "storcrypt-<key id>.g<generation>.key".
std::string key_file_name(const KeyRef& ref);

class KeyMediaProvider final : public KeyProvider {
 public:
  explicit KeyMediaProvider(KeyMediaConfig cfg);
  /// Checks the configuration (ids, at least one directory).
  static Result<KeyMediaProvider> create(KeyMediaConfig cfg);

  std::string kind() const override { return "keymedia"; }
  std::string id() const override { return cfg_.provider_id; }
  Result<ProviderReport> store(const KeyRef& ref, const SecretBytes& ak) override;
  Result<FetchedKey> fetch(const KeyRef& ref) override;
  Result<ProviderReport> rekey(const KeyRef& current, const KeyRef& next, const SecretBytes& new_ak) override;
  Result<ProviderReport> retire(const KeyRef& ref) override;
  Result<ProviderReport> destroy_all(const std::string& key_id) override;
  Result<bool> holds(const std::string& key_id) override;

  /// Every configured medium with every key file on it, each verified.
  std::vector<MediumStatus> scan() const;
  /// Initialise a (new, empty or partial) medium: copy every key that has a
  /// valid copy elsewhere onto `dir`. `dir` must be one of the configured media.
  Result<ProviderReport> init_medium(const std::filesystem::path& dir);

  const KeyMediaConfig& config() const { return cfg_; }

 private:
  std::vector<std::filesystem::path> present_media() const;
  Result<ProviderReport> write_everywhere(const KeyRef& ref, const SecretBytes& ak);
  KeyMediaConfig cfg_;
};

/// Overwrite a file's bytes with zeros, fsync, unlink, fsync the directory.
/// Best effort on flash media (see the FAQ); the AK is also removed from the header.
Status shred_file(const std::filesystem::path& path);
/// Read a whole small file (at most max_bytes+1 bytes are read).
Result<std::string> read_small_file(const std::filesystem::path& path, std::size_t max_bytes);

}  // namespace storcrypt::keys
