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

namespace {
constexpr std::string_view kKeysOp = "ipsec.keys";
constexpr std::string_view kCommitOp = "ipsec.commit";
constexpr std::string_view kEnableOp = "ipsec.enable";
constexpr std::string_view kDisableOp = "ipsec.disable";
constexpr std::string_view kDefaultOp = "ipsec.default";
/// What the key file records for the ipsec.keys operation `id` that wrote it.
std::string key_generation_of(std::int64_t id) { return "op-" + std::to_string(id); }
}  // namespace

class IpsecService::Op {
 public:
  Op() = default;
  Op(journal::Journal* j, std::int64_t id) : j_(j), id_(id) {}
  Status step(std::string_view name) { return j_ ? j_->step(id_, name) : ok_status(); }
  /// Between a write and its record ("written" before "saved").
  Status point(std::string_view name) { return j_ ? j_->point(id_, name) : ok_status(); }
  Status finish() { return j_ ? j_->finish(id_) : ok_status(); }
  /// The change was refused and undone; the error is the caller's answer.
  Error undone(Error e) {
    if (j_) (void)j_->rolled_back(id_, e.message());
    return e;
  }
  /// What the key file records for this change (its operation).
  std::string generation() const { return j_ ? key_generation_of(id_) : std::string(); }

 private:
  journal::Journal* j_ = nullptr;
  std::int64_t id_ = 0;
};

Result<IpsecService::Op> IpsecService::begin(std::string_view kind, nlohmann::json payload) {
  if (!journal_) return Op();
  STORCRYPT_ASSIGN_OR_RETURN(auto id, journal_->begin(kind, payload));
  return Op(journal_, id);
}

void IpsecService::use_journal(journal::Journal& j) {
  journal_ = &j;
  for (auto kind : {kKeysOp, kCommitOp, kEnableOp, kDisableOp, kDefaultOp})
    j.register_handler(std::string(kind), [this](journal::Journal& jj, const journal::Entry& e) {
      std::lock_guard lock(mu);
      return settle(jj, e);
    });
}

Status IpsecService::settle(journal::Journal& j, const journal::Entry& e) {
  std::string want = e.payload.value("outcome", std::string());
  std::string stored, where;
  if (e.kind == kKeysOp) {
    want = key_generation_of(e.id);  // the id is known only after begin: the payload cannot carry it
    STORCRYPT_ASSIGN_OR_RETURN(stored, store_->key_generation());
    where = "the key file";
  } else if (e.kind == kCommitOp) {
    STORCRYPT_ASSIGN_OR_RETURN(stored, store_->stored_list_digest(ListKind::kCommitted));
    where = "the committed list";
  } else if (e.kind == kEnableOp || e.kind == kDisableOp) {
    STORCRYPT_ASSIGN_OR_RETURN(stored, store_->setting("enabled", "0"));
    where = "the enforcement setting";
  } else if (e.kind == kDefaultOp) {
    STORCRYPT_ASSIGN_OR_RETURN(stored, store_->setting("default_disposition", "IPv6Only"));
    where = "the default disposition";
  } else {
    return Error(ErrorCode::kInternal, "no IPsec resume rule for operation kind " + e.kind);
  }
  // The kernel may hold some of the change (steps before the crash): start-up
  // enforcement (restore) makes it match what is stored either way.
  STORCRYPT_TRY(store_->set_setting("applying", "1"));
  if (!want.empty() && stored == want) return j.finish(e.id);
  return j.rolled_back(e.id, "the change never reached " + where +
                                 "; what is stored stands and start-up enforcement puts the kernel back to it");
}

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
  o.warn_kernel_policies = warn_kernel_policies_;
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
  STORCRYPT_ASSIGN_OR_RETURN(
      auto op, begin(kCommitOp, {{"outcome", IpsecStore::list_digest(uncommitted_)}, {"enforced", enabled_}}));
  if (enabled_) {
    auto a = apply(*set);
    if (!a.ok()) return op.undone(std::move(a).error());
    out.applied = *a;
    STORCRYPT_TRY(op.step("kernel-applied"));
  }
  Status saved =
      store_->transaction([&]() -> Status { return store_->save_list(ListKind::kCommitted, uncommitted_); });
  if (!saved.ok()) {
    if (enabled_) (void)reenforce();  // the kernel back to the committed list (best effort)
    return op.undone(saved.error());
  }
  STORCRYPT_TRY(op.point("written"));
  STORCRYPT_TRY(op.step("saved"));
  committed_ = uncommitted_;
  STORCRYPT_TRY(op.finish());
  return out;
}

Result<pol::ApplyStats> IpsecService::enable() {
  if (!has_committed())
    return Error(ErrorCode::kConflict, "there is no committed policy list to enforce",
                 "build the list with 'storcrypt policy add' (or import), then 'storcrypt policy commit'",
                 "xIpsecNothingCommitted");
  STORCRYPT_ASSIGN_OR_RETURN(auto op, begin(kEnableOp, {{"outcome", "1"}}));
  auto st = reenforce();
  if (!st.ok()) return op.undone(std::move(st).error());
  STORCRYPT_TRY(op.step("kernel-applied"));
  if (Status s = store_->set_setting("enabled", "1"); !s.ok()) {
    if (!enabled_) {
      if (auto* inst = installer_.get()) (void)inst->disable();
    }
    return op.undone(s.error());
  }
  STORCRYPT_TRY(op.point("written"));
  STORCRYPT_TRY(op.step("saved"));
  enabled_ = true;
  STORCRYPT_TRY(op.finish());
  return st;
}

Result<pol::ApplyStats> IpsecService::disable() {
  STORCRYPT_ASSIGN_OR_RETURN(auto* inst, installer());
  STORCRYPT_ASSIGN_OR_RETURN(auto op, begin(kDisableOp, {{"outcome", "0"}}));
  STORCRYPT_TRY(store_->set_setting("applying", "1"));
  auto st = inst->disable();
  if (!st.ok()) return op.undone(std::move(st).error());
  STORCRYPT_TRY(op.step("kernel-applied"));
  STORCRYPT_TRY(store_->set_setting("enabled", "0"));
  STORCRYPT_TRY(store_->set_setting("applying", "0"));
  STORCRYPT_TRY(op.point("written"));
  STORCRYPT_TRY(op.step("saved"));
  STORCRYPT_TRY(op.finish());
  enabled_ = false;
  enforced_any_local_.clear();
  ++generation_;
  return st;
}

Result<std::optional<pol::ApplyStats>> IpsecService::set_default(pol::DefaultDisposition d) {
  std::optional<pol::ApplyStats> applied;
  const std::string name(pol::to_string(d));
  STORCRYPT_ASSIGN_OR_RETURN(auto op, begin(kDefaultOp, {{"outcome", name}}));
  if (enabled_ && has_committed()) {
    auto set = pol::commit(committed_, keys_, options(d));
    if (!set.ok()) return op.undone(std::move(set).error());
    auto a = apply(*set);
    if (!a.ok()) return op.undone(std::move(a).error());
    applied = *a;
    STORCRYPT_TRY(op.step("kernel-applied"));
  }
  if (Status s = store_->set_setting("default_disposition", name); !s.ok()) {
    if (applied) (void)reenforce();  // the kernel back to the stored disposition (best effort)
    return op.undone(s.error());
  }
  STORCRYPT_TRY(op.point("written"));
  STORCRYPT_TRY(op.step("saved"));
  default_ = d;
  STORCRYPT_TRY(op.finish());
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
  auto undo_in_memory = [&] {
    for (const auto& n : added) (void)keys_.remove(n);
    for (auto& o : previous) (void)keys_.add(std::move(o), true);
  };
  for (auto& k : keys) {
    if (Status st = keys_.add(std::move(k), true); !st.ok()) {
      undo_in_memory();
      return st.error();
    }
  }
  const bool enforced = enabled_ && uses_any(committed_, names);
  auto op = begin(kKeysOp, {{"names", std::vector<std::string>(names.begin(), names.end())}, {"enforced", enforced}});
  if (!op.ok()) {
    undo_in_memory();
    return std::move(op).error();
  }
  // The file records this change's generation: after a crash, recovery knows whether this write happened.
  const std::string generation = op->generation();
  std::optional<pol::ApplyStats> applied;
  if (enforced) {
    auto st = reenforce();
    if (!st.ok()) {
      undo_in_memory();
      (void)reenforce();  // the kernel back to the old values (best effort)
      return op->undone(std::move(st).error());
    }
    applied = *st;
    STORCRYPT_TRY(op->step("kernel-applied"));
  }
  if (Status saved = store_->save_keys(keys_, generation); !saved.ok()) {
    undo_in_memory();
    if (enforced) (void)reenforce();  // the kernel back to the stored values (best effort)
    return op->undone(saved.error());
  }
  STORCRYPT_TRY(op->point("written"));
  STORCRYPT_TRY(op->step("saved"));
  STORCRYPT_TRY(op->finish());
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
