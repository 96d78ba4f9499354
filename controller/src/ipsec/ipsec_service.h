// storcrypt controller, IPsec: the service behind the policy, key and ipsec
// nouns. It holds the uncommitted and committed policy lists, the named keys,
// the default disposition and whether enforcement is enabled; it validates,
// compiles and enforces the committed list through the injected kernel seam
// (IpsecKernel) and persists through IpsecStore. No JSON here: the RPC
// adapters (nouns/{policy,key,ipsec}_methods.cpp) translate.
//
// Thread safety: every member is called with `mu` held (ServiceMethods and
// the watcher's ticker take it).
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "ipsec/ipsec_store.h"
#include "storcrypt/common/result.h"
#include "storcrypt/controller/events.h"
#include "storcrypt/controller/ipsec.h"
#include "storcrypt/journal/journal.h"
#include "storcrypt/netlink/xfrm_api.h"
#include "storcrypt/policy/compiler.h"
#include "storcrypt/policy/installer.h"
#include "storcrypt/policy/keys.h"
#include "storcrypt/policy/model.h"

namespace storcrypt::controller {

/// Event 2011: the committed list could not be enforced at start-up.
EventDef ipsec_restore_event();

/// Passphrases of key files: at least this many characters.
inline constexpr std::size_t kMinPassphrase = 8;
/// A passphrase as SecretBytes (the string is wiped), or xPassphraseTooShort.
Result<SecretBytes> checked_passphrase(std::string text);

class IpsecService {
 public:
  IpsecService(std::unique_ptr<IpsecStore> store, IpsecKernel kernel);

  std::mutex mu;  // every public member below is called with mu held

  /// Read the lists, settings and keys (once, before use).
  Status load();

  /// Journal every change that touches the kernel and then the database or
  /// the key file (kinds ipsec.keys, ipsec.commit, ipsec.enable,
  /// ipsec.disable, ipsec.default; step "kernel-applied" when the kernel
  /// took the change, point "written" after the write to storage and step
  /// "saved" after it), and
  /// register their resume handlers (before journal.recover()). Without a
  /// journal (unit tests of the rules) nothing is recorded.
  ///
  /// What is stored (the key file, the committed list, the settings) is the
  /// truth after a crash: recovery settles each unfinished change by
  /// whether its write reached storage (the key file's generation, the
  /// committed list's digest, the setting's value): "done" when it did,
  /// "rolled-back" when it did not; restore() then makes the kernel match
  /// what is stored, so memory, kernel and key file agree.
  void use_journal(journal::Journal& j);

  // ---- the lists ----
  policy::PolicyList& uncommitted() { return uncommitted_; }
  const policy::PolicyList& committed() const { return committed_; }
  /// A list was committed (commit refuses an empty list, so the committed list is empty only before).
  bool has_committed() const { return !committed_.policies().empty(); }
  policy::KeyStore& keys() { return keys_; }
  bool enabled() const { return enabled_; }
  policy::DefaultDisposition default_disposition() const { return default_; }

  /// Apply an edit to the uncommitted list and store it (nothing changes on error).
  Status edit(const std::function<Status(policy::PolicyList&)>& fn);

  policy::CompileOptions options(policy::DefaultDisposition d) const;
  /// Commit warns above this many kernel policies (storcrypt.conf policy_warn_kernel_policies; 0: never).
  void set_warn_kernel_policies(std::size_t n) { warn_kernel_policies_ = n; }
  policy::CompileOptions options() const { return options(default_); }

  struct CommitOutcome {
    policy::ValidationReport report;
    std::optional<policy::ApplyStats> applied;
    std::size_t kernel_policies = 0, sas = 0;
    /// Transport-mode policies with LocalAddress ANY -> the node's addresses used.
    std::map<std::string, std::vector<IpAddress>> any_local;
  };
  /// Validate and commit the uncommitted list; enforce it at once when enabled.
  Result<CommitOutcome> commit();

  Result<policy::ApplyStats> enable();
  Result<policy::ApplyStats> disable();
  /// Set the default disposition (re-applied at once when enforcing).
  Result<std::optional<policy::ApplyStats>> set_default(policy::DefaultDisposition d);

  /// Add or replace keys. When an enforced policy uses one, the kernel gets
  /// the new values at once; if it refuses, the old values come back (in
  /// memory, in the kernel) and nothing is stored. The key file is written
  /// only after success.
  Result<std::optional<policy::ApplyStats>> put_keys(std::vector<policy::NamedKey> keys);
  /// How key.create gives the value.
  struct KeyValue {
    enum class Kind { kRandom, kHex, kAscii } kind = Kind::kRandom;
    std::string text;  ///< hex digits or ASCII (wiped by create_key)
  };
  /// Create (or, with `replace`, replace) one named key; xKeyExists otherwise.
  Result<std::optional<policy::ApplyStats>> create_key(const std::string& name, policy::Algorithm alg,
                                                       KeyValue value, bool replace);
  /// Import a passphrase-protected key file; existing names need `replace`.
  /// Returns the imported names and what was re-applied.
  struct ImportOutcome {
    std::set<std::string> names;
    std::optional<policy::ApplyStats> applied;
  };
  Result<ImportOutcome> import_keys(const std::string& text, const SecretBytes& passphrase, bool replace);
  /// Export keys (all when `names` is empty) under a passphrase.
  Result<std::string> export_keys(const std::vector<std::string>& names, const SecretBytes& passphrase,
                                  const policy::KeyExportOptions& opt);
  /// Delete a key no policy (of either list) uses.
  Status delete_key(const std::string& name);
  /// Names of policies (either list) that use a key.
  std::vector<std::string> users_of(const std::string& key) const;

  /// The namespace's XFRM drop/error counters (empty when unavailable).
  std::map<std::string, std::uint64_t> kernel_stats();
  /// Enforced policies with their SA counters.
  Result<std::vector<policy::EnforcedPolicy>> status();

  /// Follow this node's addresses: when the enforced list has transport-mode
  /// policies with LocalAddress ANY and the node's addresses of their family
  /// changed, enforce the committed list again (inbound SAs on the new
  /// addresses, none on the old). nullopt when nothing changed; an error
  /// (e.g. no address of the family left) leaves the kernel as it was.
  Result<std::optional<policy::ApplyStats>> follow_addresses();

  /// Start-up: make the kernel match the database.
  Status restore();
  const std::optional<Error>& restore_error() const { return restore_error_; }
  void set_restore_error(std::optional<Error> e) { restore_error_ = std::move(e); }

  // ---- for the integrity watcher ----
  /// The owned SAs with their counters (opens the kernel on first use).
  Result<std::vector<netlink::SaState>> owned_sas();
  /// SPI -> policy name of the enforced inbound SAs (SPIs are unique on this host).
  const std::map<std::uint32_t, std::string>& inbound_sa_names() const { return inbound_sa_names_; }
  /// Changes whenever enforcement stops (disable): watchers forget what they counted.
  std::uint64_t enforcement_generation() const { return generation_; }

 private:
  static bool uses_any(const policy::PolicyList& l, const std::set<std::string>& names);
  /// One journalled change: begin, steps, finish or rolled back (no-ops without a journal).
  class Op;
  Result<Op> begin(std::string_view kind, nlohmann::json payload);
  /// Resume handler: settle `e` by whether its write reached storage.
  Status settle(journal::Journal& j, const journal::Entry& e);
  /// Enforce the committed list again with the current keys.
  Result<policy::ApplyStats> reenforce();
  Result<policy::PolicyInstaller*> installer();
  /// What the kernel enforces now: status rows are named after it, and the
  /// watcher knows its inbound SAs by SPI.
  void enforced(const policy::CompiledPolicySet& set);
  Result<policy::ApplyStats> apply(const policy::CompiledPolicySet& set);

  std::unique_ptr<IpsecStore> store_;
  IpsecKernel kernel_;
  policy::PolicyList uncommitted_, committed_;
  policy::KeyStore keys_;
  policy::DefaultDisposition default_ = policy::DefaultDisposition::kIPv6Only;
  bool enabled_ = false;
  std::unique_ptr<netlink::XfrmApi> xfrm_;
  std::unique_ptr<policy::PolicyInstaller> installer_;
  std::map<std::uint32_t, std::string> inbound_sa_names_;  ///< SPI -> policy of the enforced inbound SAs
  /// The enforced set's LocalAddress ANY policies -> the node's addresses they were installed for.
  std::map<std::string, std::vector<IpAddress>> enforced_any_local_;
  std::uint64_t generation_ = 0;
  std::size_t warn_kernel_policies_ = policy::CompileOptions{}.warn_kernel_policies;
  std::optional<Error> restore_error_;
  journal::Journal* journal_ = nullptr;
};

}  // namespace storcrypt::controller
