#include "ipsec/ipsec_service.h"

#include <algorithm>

namespace storcrypt::controller {

namespace pol = storcrypt::policy;

EventDef ipsec_restore_event() {
  return {kIpsecRestoreEvent,
          Severity::kCritical,
          "IPsec enforcement could not be restored at start-up",
          {"the kernel lacks XFRM/ESP support or storcryptd lacks CAP_NET_ADMIN",
           "a key the committed list needs is missing from the key store"},
          {"run 'storcrypt system doctor' and 'storcrypt ipsec status' to see the error",
           "fix the cause, then run 'storcrypt ipsec enable'"}};
}

Result<SecretBytes> checked_passphrase(std::string s) {
  if (s.size() < kMinPassphrase) {
    secure_wipe(s);
    return Error(ErrorCode::kInvalidInput,
                 "the passphrase is too short (at least " + std::to_string(kMinPassphrase) + " characters)",
                 "choose a longer passphrase and give it to the partner out of band", "xPassphraseTooShort");
  }
  SecretBytes out(reinterpret_cast<const std::uint8_t*>(s.data()), s.size());
  secure_wipe(s);
  return out;
}

IpsecService::IpsecService(std::unique_ptr<IpsecStore> store, IpsecKernel kernel)
    : store_(std::move(store)), kernel_(std::move(kernel)) {}

Status IpsecService::load() {
  STORCRYPT_ASSIGN_OR_RETURN(auto u, store_->load_list(ListKind::kUncommitted));
  STORCRYPT_ASSIGN_OR_RETURN(auto c, store_->load_list(ListKind::kCommitted));
  if (u) uncommitted_ = std::move(*u);
  if (c) committed_ = std::move(*c);
  STORCRYPT_ASSIGN_OR_RETURN(auto dd, store_->setting("default_disposition", "IPv6Only"));
  STORCRYPT_ASSIGN_OR_RETURN(default_, pol::parse_default_disposition(dd));
  STORCRYPT_ASSIGN_OR_RETURN(auto en, store_->setting("enabled", "0"));
  enabled_ = en == "1";
  STORCRYPT_ASSIGN_OR_RETURN(auto keys, store_->load_keys());
  for (auto& k : keys) STORCRYPT_TRY(keys_.add(std::move(k), true));
  return ok_status();
}

Status IpsecService::edit(const std::function<Status(pol::PolicyList&)>& fn) {
  pol::PolicyList copy = uncommitted_;
  STORCRYPT_TRY(fn(copy));
  STORCRYPT_TRY(store_->save_list(ListKind::kUncommitted, copy));
  uncommitted_ = std::move(copy);
  return ok_status();
}

pol::CompileOptions IpsecService::options(pol::DefaultDisposition d) const {
  pol::CompileOptions o;
  o.enforcement.default_disposition = d;
  // Read now (not cached): a commit or enable after an address change installs the current ones.
  if (kernel_.local_addresses) {
    if (auto a = kernel_.local_addresses(); a.ok()) o.local_addresses = std::move(a).value();
  }
  return o;
}

Result<IpsecService::CommitOutcome> IpsecService::commit() {
  auto opt = options();
  auto set = pol::commit(uncommitted_, keys_, opt);
  if (!set.ok()) return std::move(set).error();
  CommitOutcome out{set->report, std::nullopt, set->policies.size(), set->sas.size(), set->any_local};
  // Precedence against other IPsec daemons' policies already in the kernel
  // (read only: a commit on a disabled node changes nothing there).
  auto inst = installer();
  auto shadow = inst.ok() ? (*inst)->precedence_warnings(*set) : Result<std::vector<pol::Diagnostic>>(inst.error());
  if (shadow.ok()) {
    for (auto& d : *shadow) out.report.diagnostics.push_back(std::move(d));
  } else {
    out.report.diagnostics.push_back(
        {pol::Severity::kWarning, "",
         "could not read other IPsec daemons' policies from the kernel to check precedence: " +
             shadow.error().message(),
         "run 'storcrypt system doctor'; commit again to repeat the check"});
  }
  if (enabled_) {
    STORCRYPT_ASSIGN_OR_RETURN(out.applied, apply(*set));
  }
  STORCRYPT_TRY(store_->transaction([&]() -> Status { return store_->save_list(ListKind::kCommitted, uncommitted_); }));
  committed_ = uncommitted_;
  return out;
}

Result<pol::ApplyStats> IpsecService::enable() {
  if (!has_committed())
    return Error(ErrorCode::kConflict, "there is no committed policy list to enforce",
                 "build the list with 'storcrypt policy add' (or import), then 'storcrypt policy commit'",
                 "xIpsecNothingCommitted");
  STORCRYPT_ASSIGN_OR_RETURN(auto st, reenforce());
  STORCRYPT_TRY(store_->set_setting("enabled", "1"));
  enabled_ = true;
  return st;
}

Result<pol::ApplyStats> IpsecService::disable() {
  STORCRYPT_ASSIGN_OR_RETURN(auto* inst, installer());
  STORCRYPT_TRY(store_->set_setting("applying", "1"));
  STORCRYPT_ASSIGN_OR_RETURN(auto st, inst->disable());
  STORCRYPT_TRY(store_->set_setting("enabled", "0"));
  STORCRYPT_TRY(store_->set_setting("applying", "0"));
  enabled_ = false;
  enforced_any_local_.clear();
  ++generation_;
  return st;
}

Result<std::optional<pol::ApplyStats>> IpsecService::set_default(pol::DefaultDisposition d) {
  std::optional<pol::ApplyStats> applied;
  if (enabled_ && has_committed()) {
    STORCRYPT_ASSIGN_OR_RETURN(auto set, pol::commit(committed_, keys_, options(d)));
    STORCRYPT_ASSIGN_OR_RETURN(applied, apply(set));
  }
  STORCRYPT_TRY(store_->set_setting("default_disposition", std::string(pol::to_string(d))));
  default_ = d;
  return applied;
}

Result<std::optional<pol::ApplyStats>> IpsecService::put_keys(std::vector<pol::NamedKey> keys) {
  std::vector<pol::NamedKey> previous;
  std::vector<std::string> added;
  std::set<std::string> names;
  for (const auto& k : keys) {
    names.insert(k.name);
    if (const pol::NamedKey* o = keys_.find(k.name))
      previous.push_back({o->name, o->algorithm, o->value.clone()});
    else
      added.push_back(k.name);
  }
  auto restore = [&] {
    for (const auto& n : added) (void)keys_.remove(n);
    for (auto& o : previous) (void)keys_.add(std::move(o), true);
  };
  for (auto& k : keys) {
    if (Status st = keys_.add(std::move(k), true); !st.ok()) {
      restore();
      return st.error();
    }
  }
  std::optional<pol::ApplyStats> applied;
  if (enabled_ && uses_any(committed_, names)) {
    auto st = reenforce();
    if (!st.ok()) {
      restore();
      (void)reenforce();  // the kernel back to the old values (best effort)
      return std::move(st).error();
    }
    applied = *st;
  }
  STORCRYPT_TRY(store_->save_keys(keys_));
  return applied;
}

Result<std::optional<pol::ApplyStats>> IpsecService::create_key(const std::string& name, pol::Algorithm alg,
                                                                KeyValue value, bool replace) {
  if (keys_.find(name) && !replace) {
    secure_wipe(value.text);
    return Error(ErrorCode::kConflict, "a key named '" + name + "' exists",
                 "pick another name, or replace it (--replace)", "xKeyExists");
  }
  pol::KeyStore scratch;  // build the value first: nothing changes on bad input
  Status c = ok_status();
  switch (value.kind) {
    case KeyValue::Kind::kHex:
      c = scratch.create_hex(name, alg, value.text);
      break;
    case KeyValue::Kind::kAscii:
      c = scratch.create_ascii(name, alg, value.text);
      break;
    case KeyValue::Kind::kRandom:
      c = scratch.create_random(name, alg);
      break;
  }
  secure_wipe(value.text);
  STORCRYPT_TRY(c);
  const pol::NamedKey* k = scratch.find(name);
  std::vector<pol::NamedKey> one;
  one.push_back({k->name, k->algorithm, k->value.clone()});
  return put_keys(std::move(one));
}

Result<IpsecService::ImportOutcome> IpsecService::import_keys(const std::string& text, const SecretBytes& passphrase,
                                                              bool replace) {
  STORCRYPT_ASSIGN_OR_RETURN(auto keys, pol::import_keys(text, passphrase));
  ImportOutcome out;
  for (const auto& k : keys) {
    if (keys_.find(k.name) && !replace)
      return Error(ErrorCode::kConflict, "a key named '" + k.name + "' exists", "import with --replace to overwrite it",
                   "xKeyExists");
    out.names.insert(k.name);
  }
  STORCRYPT_ASSIGN_OR_RETURN(out.applied, put_keys(std::move(keys)));
  return out;
}

Result<std::string> IpsecService::export_keys(const std::vector<std::string>& names, const SecretBytes& passphrase,
                                              const pol::KeyExportOptions& opt) {
  return pol::export_keys(keys_, names, passphrase, opt);
}

Status IpsecService::delete_key(const std::string& name) {
  if (!keys_.find(name))
    return Error(ErrorCode::kNotFound, "no key named '" + name + "'", "see 'storcrypt key list'", "xKeyNotFound");
  auto users = users_of(name);
  if (!users.empty()) {
    std::string u;
    for (const auto& x : users) u += (u.empty() ? "" : ", ") + x;
    return Error(ErrorCode::kConflict, "key '" + name + "' is used by policy " + u,
                 "change or remove those policies (and commit) first", "xKeyInUse");
  }
  STORCRYPT_TRY(keys_.remove(name));
  return store_->save_keys(keys_);
}

bool IpsecService::uses_any(const pol::PolicyList& l, const std::set<std::string>& names) {
  for (const auto& p : l.policies())
    if (p.protection && (names.count(p.protection->integrity_key) || names.count(p.protection->encryption_key)))
      return true;
  return false;
}

Result<pol::ApplyStats> IpsecService::reenforce() {
  STORCRYPT_ASSIGN_OR_RETURN(auto set, pol::commit(committed_, keys_, options()));
  return apply(set);
}

std::vector<std::string> IpsecService::users_of(const std::string& key) const {
  std::set<std::string> out;
  for (const auto* l : {&uncommitted_, &committed_})
    for (const auto& p : l->policies())
      if (p.protection && (p.protection->integrity_key == key || p.protection->encryption_key == key))
        out.insert(p.name);
  return {out.begin(), out.end()};
}

std::map<std::string, std::uint64_t> IpsecService::kernel_stats() {
  if (!kernel_.stats) return {};
  auto r = kernel_.stats();
  return r.ok() ? *r : std::map<std::string, std::uint64_t>{};
}

Result<std::vector<pol::EnforcedPolicy>> IpsecService::status() {
  STORCRYPT_ASSIGN_OR_RETURN(auto* inst, installer());
  return inst->status();
}

Status IpsecService::restore() {
  STORCRYPT_ASSIGN_OR_RETURN(auto applying, store_->setting("applying", "0"));
  if (enabled_) {
    STORCRYPT_TRY(enable());
  } else if (applying == "1") {
    STORCRYPT_TRY(disable());
  }
  return ok_status();
}

Result<std::vector<netlink::SaState>> IpsecService::owned_sas() {
  STORCRYPT_TRY(installer());
  return xfrm_->dump_sas();
}

Result<pol::PolicyInstaller*> IpsecService::installer() {
  if (!installer_) {
    if (!xfrm_) {
      auto x = kernel_.open(pol::installer_ownership(pol::CompileOptions{}));
      if (!x.ok()) return std::move(x).error().context("opening the kernel's XFRM interface");
      xfrm_ = std::move(x).value();
    }
    // Ranges are independent of the default disposition: one installer serves every set.
    installer_ = std::make_unique<pol::PolicyInstaller>(*xfrm_, pol::CompileOptions{});
    // Name status rows after the committed list until an apply describes what it enforced
    // (compiled once here, not on every status call or watcher pass).
    if (has_committed()) enforced(pol::compile(committed_, options()));
  }
  return installer_.get();
}

Result<std::optional<pol::ApplyStats>> IpsecService::follow_addresses() {
  if (!enabled_ || enforced_any_local_.empty() || !kernel_.local_addresses) return std::optional<pol::ApplyStats>();
  const pol::CompileOptions opt = options();
  if (!opt.local_addresses) return std::optional<pol::ApplyStats>();  // unreadable now: keep what is enforced
  bool changed = false;
  for (const auto& [name, addrs] : enforced_any_local_) {
    if (addrs.empty()) continue;
    if (pol::node_addresses(opt, addrs.front().family) != addrs) changed = true;
  }
  if (!changed) return std::optional<pol::ApplyStats>();
  STORCRYPT_ASSIGN_OR_RETURN(auto set, pol::commit(committed_, keys_, opt));
  STORCRYPT_ASSIGN_OR_RETURN(auto st, apply(set));
  return std::optional<pol::ApplyStats>(st);
}

void IpsecService::enforced(const pol::CompiledPolicySet& set) {
  installer_->describe_with(set);
  enforced_any_local_ = set.any_local;
  inbound_sa_names_.clear();
  for (const auto& sa : set.sas)
    if (sa.direction == pol::Direction::kInbound) inbound_sa_names_[sa.spi] = sa.source;
}

Result<pol::ApplyStats> IpsecService::apply(const pol::CompiledPolicySet& set) {
  STORCRYPT_ASSIGN_OR_RETURN(auto* inst, installer());
  STORCRYPT_TRY(store_->set_setting("applying", "1"));
  auto st = inst->enable(set, keys_);
  if (!st.ok()) {
    // Put back what was enforced before (best effort); the error is the caller's answer.
    if (enabled_ && has_committed()) {
      if (auto old = pol::commit(committed_, keys_, options()); old.ok()) (void)inst->enable(*old, keys_);
    } else {
      (void)inst->disable();
    }
    return std::move(st).error();
  }
  enforced(set);
  STORCRYPT_TRY(store_->set_setting("applying", "0"));
  return st;
}

}  // namespace storcrypt::controller
