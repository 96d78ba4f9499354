// storcrypt: probe the kernel for what storcrypt needs (IPsec and dm-crypt)
// and load missing modules with libkmod.
//
// probe() answers "can this kernel do it, and if not, exactly why": each
// check says how the feature is present (built in, module loaded, loaded
// now, algorithm registered, instantiated through AF_ALG) or what is missing
// with the kernel config symbol ("kernel has no ESP support (CONFIG_INET_ESP)").
// The report is what `storcrypt system doctor` prints.
//
// Crypto templates such as rfc4106(gcm(aes)) appear in /proc/crypto only once
// something instantiated them; the probe instantiates them by binding an
// AF_ALG socket, and falls back to module aliases ("crypto-gcm") when AF_ALG
// is not available.
#pragma once

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "storcrypt/common/result.h"

namespace storcrypt::kmodule {

enum class FeatureKind {
  kModule,     ///< a kernel module or built-in subsystem (esp4, dm-crypt)
  kAlgorithm,  ///< a crypto API algorithm (rfc4106(gcm(aes)))
};

/// What we look for.
struct Feature {
  std::string name;  ///< "esp4", "rfc4106(gcm(aes))"
  FeatureKind kind = FeatureKind::kModule;
  std::string description;          ///< "IPv4 ESP"
  std::string module;               ///< module name (kModule) or "" (algorithms use aliases)
  std::vector<std::string> config;  ///< CONFIG_ symbols that provide it
  std::string alg_type;             ///< AF_ALG type for algorithms: "aead", "skcipher", "hash"
  bool required = true;             ///< optional features only warn
};

/// Features for IPsec data paths (xfrm_user, esp4/esp6, GCM, CBC, HMACs, authenc).
std::vector<Feature> ipsec_features();
/// Features for encryption at rest (dm-mod, dm-crypt, xts(aes)).
std::vector<Feature> at_rest_features();

enum class CheckState {
  kPresent,   ///< usable now
  kLoadable,  ///< a module exists and will be loaded on demand (or load was not requested)
  kMissing,   ///< not available; see problem/fix
  kUnknown,   ///< could not tell (no config, no module index)
};
std::string_view check_state_name(CheckState s);

struct FeatureCheck {
  Feature feature;
  CheckState state = CheckState::kUnknown;
  std::string how;  ///< "built in", "module esp4 loaded", "module esp4 loaded now", "registered in /proc/crypto", ...
  std::string problem;  ///< empty when usable: "kernel has no ESP support (CONFIG_INET_ESP)"
  std::string fix;      ///< what to do
  bool usable() const { return state == CheckState::kPresent || state == CheckState::kLoadable; }
};

struct ProbeReport {
  std::string kernel_release;
  bool modules_supported = false;  ///< CONFIG_MODULES (a /proc/modules exists)
  bool config_available = false;   ///< /proc/config.gz or /boot/config-<release> was readable
  std::vector<FeatureCheck> checks;

  /// True when every required feature is usable.
  bool ok() const;
  /// Required features that are not usable.
  std::vector<const FeatureCheck*> missing() const;
  const FeatureCheck* find(const std::string& name) const;
  /// Human-readable lines, one per check ("ok   esp4: module esp4 loaded").
  std::string to_text() const;
};

/// The system the probe looks at. The real one reads /proc, /sys, /boot,
/// uses libkmod and AF_ALG; tests substitute a fake.
class SystemView {
 public:
  virtual ~SystemView() = default;
  virtual std::string kernel_release() = 0;
  /// Kernel config as CONFIG_X -> "y" / "m" / "n"; nullopt when unreadable.
  virtual std::optional<std::map<std::string, std::string>> kernel_config() = 0;
  virtual bool modules_supported() = 0;
  enum class ModuleState { kBuiltin, kLive, kAvailable, kAbsent };
  /// Resolve a module name or alias ("esp4", "crypto-gcm") with libkmod.
  /// Fills `resolved` with the module name found.
  virtual ModuleState module_state(const std::string& name_or_alias, std::string* resolved) = 0;
  virtual Status load_module(const std::string& name) = 0;
  /// Names and drivers registered in /proc/crypto.
  virtual std::vector<std::string> registered_algorithms() = 0;
  /// Bind an AF_ALG socket to (type, name): 0 on success, else errno
  /// (ENOENT: no such algorithm; EAFNOSUPPORT: no AF_ALG).
  virtual int alg_bind(const std::string& type, const std::string& name) = 0;
  /// Functional probes: NETLINK_XFRM socket, device-mapper control node.
  virtual bool xfrm_netlink_available() = 0;
  virtual bool device_mapper_available() = 0;
};

/// The real system (libkmod, /proc, AF_ALG).
std::unique_ptr<SystemView> real_system();

struct ProbeOptions {
  /// Try to load modules that are available but not loaded (needs root).
  bool load = true;
  /// Instantiate crypto templates through AF_ALG when not registered yet.
  bool instantiate = true;
};

/// Check `features` on `sys`.
ProbeReport probe(SystemView& sys, const std::vector<Feature>& features, const ProbeOptions& opts = {});
/// Convenience: the real system, IPsec + at-rest features.
ProbeReport probe_all(const ProbeOptions& opts = {});

/// Parse kernel config text ("CONFIG_X=y", "# CONFIG_Y is not set").
std::map<std::string, std::string> parse_kernel_config(const std::string& text);

}  // namespace storcrypt::kmodule
