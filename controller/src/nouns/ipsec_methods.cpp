// API methods of the IPsec policy nouns over storcrypt_policy:
//   policy.*  the ordered list (uncommitted edits, test tool, validate, commit)
//   key.*     named keys for manual keying (values never leave except encrypted)
//   ipsec.*   enforcement in the kernel (enable, disable, status, default)
// State and start-up behaviour: see include/storcrypt/controller/ipsec.h.
#include <spdlog/spdlog.h>

#include <algorithm>
#include <charconv>
#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <thread>

#include "storcrypt/common/files.h"
#include "storcrypt/controller/ipsec.h"
#include "storcrypt/controller/nouns.h"
#include "storcrypt/controller/ticker.h"
#include "storcrypt/policy/compiler.h"
#include "storcrypt/policy/installer.h"
#include "storcrypt/policy/keys.h"
#include "storcrypt/policy/model.h"
#include "storcrypt/policy/test_tool.h"
#include "storcrypt/policy/text.h"

namespace storcrypt::controller {

using nlohmann::json;
namespace pol = storcrypt::policy;

namespace {

constexpr const char* kUncommitted = "uncommitted";
constexpr const char* kCommitted = "committed";
constexpr std::size_t kMinPassphrase = 8;

EventDef integrity_event() {
  return {kIpsecIntegrityEvent,
          Severity::kError,
          "IPsec packets fail their integrity check",
          {"the partner keys this SA with a different value (manual keying: the named key differs on the two "
           "nodes)",
           "the partner replaced the key and this node has not imported the new value (or the other way round)",
           "the two nodes use different algorithms or SPIs for the policy", "packets are modified in transit"},
          {"export the key on the partner ('storcrypt key export') and import it here with 'storcrypt key import "
           "--replace', or the other way round; the daemon marks this event fixed when packets authenticate again",
           "compare the policy on both nodes: 'storcrypt policy show NAME' (SPI, algorithms, key names)",
           "watch 'storcrypt ipsec status' (the INTEGRITY FAILURES column) while traffic flows"}};
}

EventDef restore_event() {
  return {kIpsecRestoreEvent,
          Severity::kCritical,
          "IPsec enforcement could not be restored at start-up",
          {"the kernel lacks XFRM/ESP support or storcryptd lacks CAP_NET_ADMIN",
           "a key the committed list needs is missing from the key store"},
          {"run 'storcrypt system doctor' and 'storcrypt ipsec status' to see the error",
           "fix the cause, then run 'storcrypt ipsec enable'"}};
}

/// One policy as its policy-file block.
std::string policy_text(const pol::Policy& p) { return pol::export_policies(pol::PolicyList({p})); }

/// The fields of a policy-file block ("Name" -> "x", ...), in file order.
std::vector<std::pair<std::string, std::string>> fields_of(const std::string& text) {
  std::vector<std::pair<std::string, std::string>> out;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    auto eq = line.find(" = ");
    if (line.empty() || line[0] == '#' || eq == std::string::npos) continue;
    out.emplace_back(line.substr(0, eq), line.substr(eq + 3));
  }
  return out;
}

json policy_json(const pol::Policy& p, std::size_t position) {
  std::string text = policy_text(p);
  json f = json::object();
  for (auto& [k, v] : fields_of(text)) f[k] = v;
  return json{{"position", position + 1}, {"name", p.name}, {"fields", f}, {"text", text}};
}

json list_json(const pol::PolicyList& l) {
  json arr = json::array();
  for (std::size_t i = 0; i < l.size(); ++i) arr.push_back(policy_json(l.policies()[i], i));
  return arr;
}

/// A policy from API fields (the policy file's names), optionally on top of a
/// base policy: a field given as "" removes it; changing Action away from
/// PROTECT drops the IPsec fields.
Result<pol::Policy> policy_from_fields(const json& fields, const pol::Policy* base) {
  if (!fields.is_object())
    return Error(ErrorCode::kInvalidInput, "parameter 'fields' must be an object of policy fields",
                 "pass e.g. {\"Name\": \"web\", \"Direction\": \"outbound\", \"Action\": \"BYPASS\"}");
  std::vector<std::pair<std::string, std::string>> merged;
  if (base) merged = fields_of(policy_text(*base));
  for (const auto& item : fields.items()) {
    const std::string k = item.key();  // a named copy: clang 14 cannot capture structured bindings
    const json& v = item.value();
    std::string value;
    if (v.is_string()) {
      value = v.get<std::string>();
    } else if (v.is_number_unsigned()) {
      value = std::to_string(v.get<std::uint64_t>());
    } else {
      return Error(ErrorCode::kInvalidInput, "policy field '" + k + "' must be a string or a number",
                   "write the value as in a policy file, e.g. \"5000-5001\"");
    }
    if (value.find_first_of("\r\n") != std::string::npos || k.find_first_of("\r\n =") != std::string::npos)
      return Error(ErrorCode::kInvalidInput, "policy field '" + k + "' holds a line break or a bad name",
                   "give one field per key, one value per field");
    auto it = std::find_if(merged.begin(), merged.end(), [&](const auto& kv) { return kv.first == k; });
    if (value.empty()) {
      if (it != merged.end()) merged.erase(it);
    } else if (it != merged.end()) {
      it->second = value;
    } else {
      merged.emplace_back(k, value);
    }
  }
  auto action = std::find_if(merged.begin(), merged.end(), [](const auto& kv) { return kv.first == "Action"; });
  if (base && action != merged.end() && action->second != "PROTECT" && action->second != "protect") {
    std::erase_if(merged, [&](const auto& kv) {
      const auto& pf = pol::protection_fields();
      return std::find(pf.begin(), pf.end(), kv.first) != pf.end() && !fields.contains(kv.first);
    });
  }
  std::string text;
  // Name first: the file format starts a block at its Name line.
  for (auto& [k, v] : merged)
    if (k == "Name") text += k + " = " + v + "\n";
  for (auto& [k, v] : merged)
    if (k != "Name") text += k + " = " + v + "\n";
  auto parsed = pol::import_policies(text);
  if (!parsed.ok()) {
    const Error& e = parsed.error();
    std::string msg = e.message();
    // The block is built here: line numbers would mean nothing to the caller.
    if (msg.rfind("line ", 0) == 0) {
      auto colon = msg.find(": ");
      if (colon != std::string::npos) msg = msg.substr(colon + 2);
    }
    return Error(e.code(), msg, e.fix(), e.name().empty() ? "xPolicyInvalid" : e.name());
  }
  if (parsed->size() != 1)
    return Error(ErrorCode::kInvalidInput, "the fields describe " + std::to_string(parsed->size()) + " policies",
                 "give exactly one Name");
  return parsed->policies()[0];
}

/// What the watcher remembers of one inbound SA.
struct SaWatch {
  std::uint64_t integrity_failed = 0;
  std::uint64_t packets = 0;
  int64_t event_id = 0;  ///< open event, 0 when none
};

class IpsecService {
 public:
  IpsecService(Db& db, std::string keys_path, IpsecKernel kernel, EventLog* events)
      : db_(db), keys_path_(std::move(keys_path)), kernel_(std::move(kernel)), events_(events) {}

  std::mutex mu;  // every public member below is called with mu held

  Status load() {
    STORCRYPT_ASSIGN_OR_RETURN(auto rows, db_.query("SELECT which, text FROM ipsec_lists"));
    for (const auto& r : rows) {
      auto l = pol::import_policies(r.text(1));
      if (!l.ok()) return std::move(l).error().context("stored " + r.text(0) + " policy list");
      (r.text(0) == kCommitted ? committed_ : uncommitted_) = std::move(l).value();
    }
    STORCRYPT_ASSIGN_OR_RETURN(auto dd, setting("default_disposition", "IPv6Only"));
    STORCRYPT_ASSIGN_OR_RETURN(default_, pol::parse_default_disposition(dd));
    STORCRYPT_ASSIGN_OR_RETURN(auto en, setting("enabled", "0"));
    enabled_ = en == "1";
    std::error_code ec;
    if (std::filesystem::exists(keys_path_, ec)) {
      STORCRYPT_ASSIGN_OR_RETURN(std::string text, pol::read_file(keys_path_));
      SecretBytes plain(reinterpret_cast<const std::uint8_t*>(text.data()), text.size());
      secure_wipe(text);
      auto parsed = pol::parse_key_payload(plain.view());
      if (!parsed.ok()) return std::move(parsed).error().context(keys_path_);
      for (auto& k : *parsed) STORCRYPT_TRY(keys_.add(std::move(k), true));
    }
    return ok_status();
  }

  // ---- the lists ----
  pol::PolicyList& uncommitted() { return uncommitted_; }
  const pol::PolicyList& committed() const { return committed_; }
  /// A list was committed (commit refuses an empty list, so the committed list is empty only before).
  bool has_committed() const { return !committed_.policies().empty(); }
  pol::KeyStore& keys() { return keys_; }
  bool enabled() const { return enabled_; }
  pol::DefaultDisposition default_disposition() const { return default_; }

  /// Apply an edit to the uncommitted list and store it (nothing changes on error).
  Status edit(const std::function<Status(pol::PolicyList&)>& fn) {
    pol::PolicyList copy = uncommitted_;
    STORCRYPT_TRY(fn(copy));
    STORCRYPT_TRY(store_list(kUncommitted, copy));
    uncommitted_ = std::move(copy);
    return ok_status();
  }

  pol::CompileOptions options(pol::DefaultDisposition d) const {
    pol::CompileOptions o;
    o.enforcement.default_disposition = d;
    return o;
  }
  pol::CompileOptions options() const { return options(default_); }

  struct CommitOutcome {
    pol::ValidationReport report;
    std::optional<pol::ApplyStats> applied;
    std::size_t kernel_policies = 0, sas = 0;
  };

  Result<CommitOutcome> commit() {
    auto opt = options();
    auto set = pol::commit(uncommitted_, keys_, opt);
    if (!set.ok()) return std::move(set).error();
    CommitOutcome out{set->report, std::nullopt, set->policies.size(), set->sas.size()};
    if (enabled_) {
      STORCRYPT_ASSIGN_OR_RETURN(out.applied, apply(*set));
    }
    STORCRYPT_TRY(db_.transaction([&]() -> Status { return store_list(kCommitted, uncommitted_); }));
    committed_ = uncommitted_;
    return out;
  }

  Result<pol::ApplyStats> enable() {
    if (!has_committed())
      return Error(ErrorCode::kConflict, "there is no committed policy list to enforce",
                   "build the list with 'storcrypt policy add' (or import), then 'storcrypt policy commit'",
                   "xIpsecNothingCommitted");
    STORCRYPT_ASSIGN_OR_RETURN(auto st, reenforce());
    STORCRYPT_TRY(set_setting("enabled", "1"));
    enabled_ = true;
    return st;
  }

  Result<pol::ApplyStats> disable() {
    STORCRYPT_ASSIGN_OR_RETURN(auto* inst, installer());
    STORCRYPT_TRY(set_setting("applying", "1"));
    STORCRYPT_ASSIGN_OR_RETURN(auto st, inst->disable());
    STORCRYPT_TRY(set_setting("enabled", "0"));
    STORCRYPT_TRY(set_setting("applying", "0"));
    enabled_ = false;
    watch_.clear();
    return st;
  }

  Result<std::optional<pol::ApplyStats>> set_default(pol::DefaultDisposition d) {
    std::optional<pol::ApplyStats> applied;
    if (enabled_ && has_committed()) {
      STORCRYPT_ASSIGN_OR_RETURN(auto set, pol::commit(committed_, keys_, options(d)));
      STORCRYPT_ASSIGN_OR_RETURN(applied, apply(set));
    }
    STORCRYPT_TRY(set_setting("default_disposition", std::string(pol::to_string(d))));
    default_ = d;
    return applied;
  }

  /// Add or replace keys. When an enforced policy uses one, the kernel gets
  /// the new values at once; if it refuses, the old values come back (in
  /// memory, in the kernel) and nothing is stored. The key file is written
  /// only after success.
  Result<std::optional<pol::ApplyStats>> put_keys(std::vector<pol::NamedKey> keys) {
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
    STORCRYPT_TRY(store_keys());
    return applied;
  }

  static bool uses_any(const pol::PolicyList& l, const std::set<std::string>& names) {
    for (const auto& p : l.policies())
      if (p.protection && (names.count(p.protection->integrity_key) || names.count(p.protection->encryption_key)))
        return true;
    return false;
  }
  /// Enforce the committed list again with the current keys.
  Result<pol::ApplyStats> reenforce() {
    STORCRYPT_ASSIGN_OR_RETURN(auto set, pol::commit(committed_, keys_, options()));
    return apply(set);
  }

  /// Names of policies (either list) that use a key.
  std::vector<std::string> users_of(const std::string& key) const {
    std::set<std::string> out;
    for (const auto* l : {&uncommitted_, &committed_})
      for (const auto& p : l->policies())
        if (p.protection && (p.protection->integrity_key == key || p.protection->encryption_key == key))
          out.insert(p.name);
    return {out.begin(), out.end()};
  }

  Status store_keys() {
    SecretBytes plain = pol::key_payload(pol::all_keys(keys_));
    return write_file_atomic(keys_path_, plain.view(), 0600);
  }

  /// The namespace's XFRM drop/error counters (empty when unavailable).
  std::map<std::string, std::uint64_t> kernel_stats() {
    if (!kernel_.stats) return {};
    auto r = kernel_.stats();
    return r.ok() ? *r : std::map<std::string, std::uint64_t>{};
  }

  Result<std::vector<pol::EnforcedPolicy>> status() {
    STORCRYPT_ASSIGN_OR_RETURN(auto* inst, installer());
    return inst->status();
  }

  /// Start-up: make the kernel match the database.
  Status restore() {
    STORCRYPT_ASSIGN_OR_RETURN(auto applying, setting("applying", "0"));
    if (enabled_) {
      STORCRYPT_TRY(enable());
    } else if (applying == "1") {
      STORCRYPT_TRY(disable());
    }
    return ok_status();
  }

  /// One watcher pass: integrity failures on inbound SAs.
  void watch() {
    if (!enabled_ || !events_) return;
    // Only the SAs are read (their counters), not the policy set: this runs every few seconds.
    if (!installer().ok()) return;
    auto sas = xfrm_->dump_sas();
    if (!sas.ok()) return;
    std::set<std::string> seen;
    for (const auto& st : *sas) {
      auto name = inbound_sa_names_.find(st.sa.spi);
      if (name == inbound_sa_names_.end()) continue;
      const std::string& policy = name->second;
      const std::string sa = st.sa.id().to_string();
      std::string id = policy + " " + sa;
      seen.insert(id);
      auto& w = watch_[id];
      const std::uint64_t failed = st.counters.integrity_failed, packets = st.counters.packets;
      if (failed > w.integrity_failed && w.event_id == 0) {
        auto ev = events_->raise(kIpsecIntegrityEvent,
                                 "policy " + policy + ": " + std::to_string(failed - w.integrity_failed) +
                                     " inbound packet(s) failed the integrity check on " + sa +
                                     " (the partner's key for this SA differs)",
                                 {{"policy", policy}, {"sa", sa}, {"integrity_failed", failed}, {"packets", packets}});
        if (ev.ok()) w.event_id = *ev;
      } else if (w.event_id != 0 && failed == w.integrity_failed && packets > w.packets) {
        (void)events_->mark_fixed(w.event_id);
        w.event_id = 0;
      }
      w.integrity_failed = failed;
      w.packets = packets;
    }
    std::erase_if(watch_, [&](const auto& kv) { return !seen.count(kv.first); });
  }

  const std::optional<Error>& restore_error() const { return restore_error_; }
  void set_restore_error(std::optional<Error> e) { restore_error_ = std::move(e); }

 private:
  Result<pol::PolicyInstaller*> installer() {
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

  /// What the kernel enforces now: status rows are named after it, and the
  /// watcher knows its inbound SAs by SPI (SPIs are unique on this host).
  void enforced(const pol::CompiledPolicySet& set) {
    installer_->describe_with(set);
    inbound_sa_names_.clear();
    for (const auto& sa : set.sas)
      if (sa.direction == pol::Direction::kInbound) inbound_sa_names_[sa.spi] = sa.source;
  }

  Result<pol::ApplyStats> apply(const pol::CompiledPolicySet& set) {
    STORCRYPT_ASSIGN_OR_RETURN(auto* inst, installer());
    STORCRYPT_TRY(set_setting("applying", "1"));
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
    STORCRYPT_TRY(set_setting("applying", "0"));
    return st;
  }

  Status store_list(const char* which, const pol::PolicyList& l) {
    return db_.exec("INSERT OR REPLACE INTO ipsec_lists(which, text) VALUES(?1, ?2)",
                    {std::string(which), pol::export_policies(l)});
  }
  Result<std::string> setting(const std::string& key, const std::string& dflt) {
    STORCRYPT_ASSIGN_OR_RETURN(auto rows, db_.query("SELECT value FROM ipsec_settings WHERE key = ?1", {key}));
    return rows.empty() ? dflt : rows[0].text(0);
  }
  Status set_setting(const std::string& key, const std::string& value) {
    return db_.exec("INSERT OR REPLACE INTO ipsec_settings(key, value) VALUES(?1, ?2)", {key, value});
  }

  Db& db_;
  std::string keys_path_;
  IpsecKernel kernel_;
  EventLog* events_;
  pol::PolicyList uncommitted_, committed_;
  pol::KeyStore keys_;
  pol::DefaultDisposition default_ = pol::DefaultDisposition::kIPv6Only;
  bool enabled_ = false;
  std::unique_ptr<netlink::XfrmApi> xfrm_;
  std::unique_ptr<pol::PolicyInstaller> installer_;
  std::map<std::uint32_t, std::string> inbound_sa_names_;  ///< SPI -> policy of the enforced inbound SAs
  std::map<std::string, SaWatch> watch_;
  std::optional<Error> restore_error_;
};

struct IpsecState {
  std::shared_ptr<IpsecService> svc;
  std::optional<Error> load_error;
  std::unique_ptr<Ticker> watcher;  ///< declared last: joined first
};

Result<IpsecService*> service(IpsecState& st) {
  if (st.load_error) return Error(*st.load_error);
  if (!st.svc)
    return Error(ErrorCode::kUnavailable, "the IPsec policy store is not available (no state database)",
                 "run storcryptd with a state directory", "xIpsecUnavailable");
  return st.svc.get();
}

std::shared_ptr<IpsecState> state_for(Context& ctx) {
  if (auto s = ctx.service<IpsecState>()) return s;
  auto st = std::make_shared<IpsecState>();
  if (ctx.db) {
    IpsecKernel kernel;
    if (auto k = ctx.service<IpsecKernel>()) {
      kernel = *k;
    } else {
      kernel.open = [](const netlink::Ownership& own) {
        netlink::XfrmOptions o;
        o.ownership = own;
        return netlink::open_xfrm(o);
      };
      kernel.stats = []() -> Result<std::map<std::string, std::uint64_t>> {
        std::ifstream in("/proc/net/xfrm_stat");
        if (!in)
          return Error(ErrorCode::kUnsupported,
                       "/proc/net/xfrm_stat is missing (kernel without CONFIG_XFRM_STATISTICS)");
        std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
        return parse_xfrm_stat(text);
      };
    }
    auto svc = std::make_shared<IpsecService>(*ctx.db, ctx.config.state_directory + "/ipsec-keys", kernel, ctx.events);
    if (Status s = svc->load(); !s.ok())
      st->load_error = s.error();
    else
      st->svc = svc;
  }
  ctx.set_service(st);
  return st;
}

json report_json(const pol::ValidationReport& r) {
  json arr = json::array();
  for (const auto& d : r.diagnostics)
    arr.push_back(json{{"severity", d.severity == pol::Severity::kError ? "error" : "warning"},
                       {"policy", d.policy},
                       {"message", d.message},
                       {"fix", d.fix}});
  return arr;
}

json stats_json(const std::optional<pol::ApplyStats>& s) {
  if (!s) return nullptr;
  return json{{"policies_added", s->policies_added},     {"policies_updated", s->policies_updated},
              {"policies_deleted", s->policies_deleted}, {"sas_added", s->sas_added},
              {"sas_replaced", s->sas_replaced},         {"sas_deleted", s->sas_deleted}};
}

Result<pol::PortRange> parse_range(const std::string& field, const std::string& text, std::uint16_t max) {
  STORCRYPT_ASSIGN_OR_RETURN(auto spec, pol::PortSpec::parse(text, max, field));
  auto eff = spec.effective(max);
  if (eff.size() != 1)
    return Error(ErrorCode::kInvalidInput, field + ": the test tool takes one range (e.g. 1-65535), not a list",
                 "test each range separately");
  return eff[0];
}

Result<SecretBytes> passphrase_of(const Params& p) {
  std::string s = p.str("passphrase");
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

}  // namespace

Result<std::map<std::string, std::uint64_t>> parse_xfrm_stat(std::string_view text) {
  std::map<std::string, std::uint64_t> out;
  std::istringstream in{std::string(text)};
  std::size_t lineno = 0;
  for (std::string line; std::getline(in, line);) {
    ++lineno;
    if (line.empty()) continue;
    std::istringstream fields(line);
    std::string name, value, extra;
    fields >> name >> value >> extra;
    std::uint64_t v = 0;
    auto [p, ec] = std::from_chars(value.data(), value.data() + value.size(), v);
    if (name.empty() || value.empty() || !extra.empty() || ec != std::errc{} || p != value.data() + value.size())
      return Error(ErrorCode::kProtocol, "xfrm_stat line " + std::to_string(lineno) + " is not '<name> <count>'");
    out[name] = v;
  }
  return out;
}

Status register_policy_methods(Dispatcher& d, Context& ctx) {
  if (ctx.db) {
    STORCRYPT_TRY(
        ctx.db->migrate("ipsec", {{1, "ipsec policy lists and settings",
                                   "CREATE TABLE ipsec_lists(which TEXT PRIMARY KEY, text TEXT NOT NULL);"
                                   "CREATE TABLE ipsec_settings(key TEXT PRIMARY KEY, value TEXT NOT NULL);"}}));
  }
  auto st = state_for(ctx);
  ServiceMethods<IpsecService> methods(d, [st] { return service(*st); });
  auto position_of = [](const Params& p, std::size_t max) -> Result<std::size_t> {
    int64_t pos = p.integer("position");
    if (pos < 1 || static_cast<std::size_t>(pos) > max + 1)
      return Error(ErrorCode::kInvalidInput,
                   "position " + std::to_string(pos) + " is outside 1.." + std::to_string(max + 1),
                   "positions count from 1 (the first policy); see 'storcrypt policy list'");
    return static_cast<std::size_t>(pos - 1);
  };
  auto edited = [](IpsecService& s, const std::string& name) -> Result<json> {
    auto idx = s.uncommitted().index_of(name);
    if (!idx) return json{{"policies", s.uncommitted().size()}};
    return policy_json(s.uncommitted().policies()[*idx], *idx);
  };

  STORCRYPT_TRY(methods.add("policy.list", "the ordered policy list (uncommitted edits, or the committed list)",
                            {{"committed", ParamType::kBoolean, false, "show the committed list"}}, false,
                            [](IpsecService& s, const Params& p) -> Result<json> {
                              bool c = p.boolean("committed");
                              return json{{"list", c ? kCommitted : kUncommitted},
                                          {"policies", list_json(c ? s.committed() : s.uncommitted())},
                                          {"uncommitted_changes", s.uncommitted() != s.committed()}};
                            }));
  STORCRYPT_TRY(methods.add("policy.show", "one policy as its policy-file fields",
                            {{"name", ParamType::kString, true, "policy name"},
                             {"committed", ParamType::kBoolean, false, "from the committed list"}},
                            false, [](IpsecService& s, const Params& p) -> Result<json> {
                              const auto& l = p.boolean("committed") ? s.committed() : s.uncommitted();
                              auto idx = l.index_of(p.str("name"));
                              if (!idx)
                                return Error(ErrorCode::kNotFound, "no policy named '" + p.str("name") + "'",
                                             "see 'storcrypt policy list'", "xPolicyNotFound");
                              return policy_json(l.policies()[*idx], *idx);
                            }));
  STORCRYPT_TRY(methods.add(
      "policy.add", "add a policy to the uncommitted list (at the end, or before a position)",
      {{"fields", ParamType::kObject, true, "policy-file fields: Name, Direction, Action, LocalAddress, ..."},
       {"position", ParamType::kInteger, false, "insert at this position (1 = first); default: append"}},
      true, [position_of, edited](IpsecService& s, const Params& p) -> Result<json> {
        STORCRYPT_ASSIGN_OR_RETURN(auto pol, policy_from_fields(p.json()["fields"], nullptr));
        std::string name = pol.name;
        if (p.has("position")) {
          STORCRYPT_ASSIGN_OR_RETURN(std::size_t pos, position_of(p, s.uncommitted().size()));
          STORCRYPT_TRY(s.edit([&](pol::PolicyList& l) { return l.insert(pos, std::move(pol)); }));
        } else {
          STORCRYPT_TRY(s.edit([&](pol::PolicyList& l) { return l.add(std::move(pol)); }));
        }
        return edited(s, name);
      }));
  STORCRYPT_TRY(methods.add("policy.modify", "change fields of a policy in the uncommitted list (\"\" removes a field)",
                            {{"name", ParamType::kString, true, "policy name"},
                             {"fields", ParamType::kObject, true, "fields to change, e.g. {\"RemotePort\": \"5000\"}"}},
                            true, [edited](IpsecService& s, const Params& p) -> Result<json> {
                              const pol::Policy* cur = s.uncommitted().find(p.str("name"));
                              if (!cur)
                                return Error(ErrorCode::kNotFound, "no policy named '" + p.str("name") + "'",
                                             "see 'storcrypt policy list'", "xPolicyNotFound");
                              STORCRYPT_ASSIGN_OR_RETURN(auto pol, policy_from_fields(p.json()["fields"], cur));
                              std::string name = pol.name;
                              STORCRYPT_TRY(s.edit([&](pol::PolicyList& l) { return l.modify(p.str("name"), pol); }));
                              return edited(s, name);
                            }));
  STORCRYPT_TRY(methods.add("policy.move", "move a policy to a position of the uncommitted list",
                            {{"name", ParamType::kString, true, "policy name"},
                             {"position", ParamType::kInteger, true, "new position (1 = first)"}},
                            true, [position_of, edited](IpsecService& s, const Params& p) -> Result<json> {
                              std::size_t n = s.uncommitted().size();
                              STORCRYPT_ASSIGN_OR_RETURN(std::size_t pos, position_of(p, n == 0 ? 0 : n - 1));
                              STORCRYPT_TRY(s.edit([&](pol::PolicyList& l) { return l.move(p.str("name"), pos); }));
                              return edited(s, p.str("name"));
                            }));
  STORCRYPT_TRY(methods.add(
      "policy.clone", "copy a policy under a new name, directly after it",
      {{"name", ParamType::kString, true, "policy to copy"},
       {"new_name", ParamType::kString, true, "name of the copy"}},
      true, [edited](IpsecService& s, const Params& p) -> Result<json> {
        STORCRYPT_TRY(s.edit([&](pol::PolicyList& l) { return l.clone(p.str("name"), p.str("new_name")); }));
        return edited(s, p.str("new_name"));
      }));
  STORCRYPT_TRY(methods.add("policy.remove", "remove a policy from the uncommitted list",
                            {{"name", ParamType::kString, true, "policy name"}}, true,
                            [](IpsecService& s, const Params& p) -> Result<json> {
                              STORCRYPT_TRY(s.edit([&](pol::PolicyList& l) { return l.remove(p.str("name")); }));
                              return json{{"removed", p.str("name")}, {"policies", s.uncommitted().size()}};
                            }));
  STORCRYPT_TRY(
      methods.add("policy.import", "replace (or extend) the uncommitted list from a policy file",
                  {{"text", ParamType::kString, true, "policy file text (Name = Value blocks)"},
                   {"swap", ParamType::kBoolean, false, "the partner's list: swap local/remote and flip directions"},
                   {"append", ParamType::kBoolean, false, "append to the uncommitted list instead of replacing it"}},
                  true, [](IpsecService& s, const Params& p) -> Result<json> {
                    STORCRYPT_ASSIGN_OR_RETURN(auto imported, pol::import_policies(p.str("text"), {p.boolean("swap")}));
                    std::size_t n = imported.size();
                    STORCRYPT_TRY(s.edit([&](pol::PolicyList& l) -> Status {
                      if (!p.boolean("append")) {
                        l = std::move(imported);
                        return ok_status();
                      }
                      for (const auto& x : imported.policies()) STORCRYPT_TRY(l.add(x));
                      return ok_status();
                    }));
                    return json{{"imported", n}, {"policies", s.uncommitted().size()}};
                  }));
  STORCRYPT_TRY(methods.add(
      "policy.export", "the list as a policy file (keys by name only)",
      {{"committed", ParamType::kBoolean, false, "export the committed list"}}, false,
      [](IpsecService& s, const Params& p) -> Result<json> {
        return json{{"text", pol::export_policies(p.boolean("committed") ? s.committed() : s.uncommitted())}};
      }));
  STORCRYPT_TRY(methods.add("policy.revert", "discard uncommitted edits (back to the committed list)", {}, true,
                            [](IpsecService& s, const Params&) -> Result<json> {
                              pol::PolicyList c = s.committed();
                              STORCRYPT_TRY(s.edit([&](pol::PolicyList& l) {
                                l = c;
                                return ok_status();
                              }));
                              return json{{"policies", s.uncommitted().size()}};
                            }));
  STORCRYPT_TRY(methods.add(
      "policy.test", "which policies match some traffic, per sub-range (works on the uncommitted list)",
      {{"direction", ParamType::kString, true, "inbound or outbound"},
       {"protocol", ParamType::kString, true, "TCP, UDP, ICMP, ICMPv6, SCTP or a number"},
       {"local", ParamType::kString, true, "local address"},
       {"remote", ParamType::kString, true, "remote address"},
       {"local_ports", ParamType::kString, false, "local port range, or ICMP type range (default: all)"},
       {"remote_ports", ParamType::kString, false, "remote port range, or ICMP code range (default: all)"}},
      false, [](IpsecService& s, const Params& p) -> Result<json> {
        pol::TestQuery q;
        STORCRYPT_ASSIGN_OR_RETURN(q.direction, pol::parse_direction(p.str("direction")));
        STORCRYPT_ASSIGN_OR_RETURN(auto proto, pol::parse_protocol(p.str("protocol")));
        if (!proto)
          return Error(ErrorCode::kInvalidInput, "protocol: the test tool needs one protocol, not ANY",
                       "give TCP, UDP, ICMP, ICMPv6, SCTP or a number");
        q.protocol = *proto;
        STORCRYPT_ASSIGN_OR_RETURN(q.local, pol::IpAddress::parse(p.str("local")));
        STORCRYPT_ASSIGN_OR_RETURN(q.remote, pol::IpAddress::parse(p.str("remote")));
        std::uint16_t max = pol::protocol_is_icmp(q.protocol) ? 255 : 65535;
        q.local_ports = {0, max};
        q.remote_ports = {0, max};
        if (p.has("local_ports")) {
          STORCRYPT_ASSIGN_OR_RETURN(q.local_ports, parse_range("local_ports", p.str("local_ports"), max));
        }
        if (p.has("remote_ports")) {
          STORCRYPT_ASSIGN_OR_RETURN(q.remote_ports, parse_range("remote_ports", p.str("remote_ports"), max));
        }
        pol::EnforcementOptions eo;
        eo.default_disposition = s.default_disposition();
        STORCRYPT_ASSIGN_OR_RETURN(auto rows, pol::test_traffic(s.uncommitted(), eo, q));
        json arr = json::array();
        auto range = [](pol::PortRange r) {
          return r.lo == r.hi ? std::to_string(r.lo) : std::to_string(r.lo) + "-" + std::to_string(r.hi);
        };
        for (const auto& r : rows)
          arr.push_back(json{{"local_ports", range(r.local_ports)},
                             {"remote_ports", range(r.remote_ports)},
                             {"disposition", pol::to_string(r.disposition)},
                             {"first_match", r.first_match},
                             {"bypass", r.bypass},
                             {"discard", r.discard},
                             {"protect", r.protect},
                             {"notes", r.notes}});
        return json{{"rows", arr}, {"table", pol::format_test_rows(q, rows)}};
      }));
  STORCRYPT_TRY(methods.add("policy.validate", "check the uncommitted list as commit would, without committing", {},
                            false, [](IpsecService& s, const Params&) -> Result<json> {
                              auto rep = pol::validate(s.uncommitted(), s.keys(), s.options());
                              return json{{"ok", rep.ok()}, {"diagnostics", report_json(rep)}};
                            }));
  STORCRYPT_TRY(methods.add(
      "policy.commit",
      "validate and commit the uncommitted list (enforced at once when IPsec is enabled); warnings are returned", {},
      true, [](IpsecService& s, const Params&) -> Result<json> {
        STORCRYPT_ASSIGN_OR_RETURN(auto out, s.commit());
        return json{{"policies", s.committed().size()},
                    {"kernel_policies", out.kernel_policies},
                    {"sas", out.sas},
                    {"enforced", s.enabled()},
                    {"applied", stats_json(out.applied)},
                    {"diagnostics", report_json(out.report)}};
      }));
  return ok_status();
}

Status register_key_methods(Dispatcher& d, Context& ctx) {
  auto st = state_for(ctx);
  ServiceMethods<IpsecService> methods(d, [st] { return service(*st); });
  auto info = [](const pol::KeyInfo& k) {
    return json{{"name", k.name}, {"algorithm", pol::to_string(k.algorithm)}, {"bytes", k.bytes}};
  };
  STORCRYPT_TRY(methods.add("key.list", "named keys (names, algorithms and lengths; never values)", {}, false,
                            [info](IpsecService& s, const Params&) -> Result<json> {
                              json arr = json::array();
                              for (const auto& k : s.keys().list()) {
                                json j = info(k);
                                j["used_by"] = s.users_of(k.name);
                                arr.push_back(j);
                              }
                              return json{{"keys", arr}};
                            }));
  STORCRYPT_TRY(methods.add("key.create", "create a named key: random, or a value given as hexadecimal or ASCII",
                            {{"name", ParamType::kString, true, "key name"},
                             {"algorithm", ParamType::kString, true,
                              "HMAC-SHA1-96, HMAC-SHA-256-128, HMAC-SHA-512-256, AES-CBC-128, "
                              "AES-CBC-256 or AES-GCM-256"},
                             {"hex", ParamType::kString, false, "the value in hexadecimal (default: random)"},
                             {"ascii", ParamType::kString, false, "the value as ASCII text"},
                             {"replace", ParamType::kBoolean, false, "replace an existing key of this name"}},
                            true, [info](IpsecService& s, const Params& p) -> Result<json> {
                              STORCRYPT_ASSIGN_OR_RETURN(auto alg, pol::parse_algorithm(p.str("algorithm")));
                              if (p.has("hex") && p.has("ascii"))
                                return Error(ErrorCode::kInvalidInput, "give the value as hex or as ascii, not both");
                              std::string name = p.str("name");
                              if (s.keys().find(name) && !p.boolean("replace"))
                                return Error(ErrorCode::kConflict, "a key named '" + name + "' exists",
                                             "pick another name, or replace it (--replace)", "xKeyExists");
                              pol::KeyStore scratch;  // build the value first: nothing changes on bad input
                              if (p.has("hex")) {
                                std::string v = p.str("hex");
                                Status c = scratch.create_hex(name, alg, v);
                                secure_wipe(v);
                                STORCRYPT_TRY(c);
                              } else if (p.has("ascii")) {
                                std::string v = p.str("ascii");
                                Status c = scratch.create_ascii(name, alg, v);
                                secure_wipe(v);
                                STORCRYPT_TRY(c);
                              } else {
                                STORCRYPT_TRY(scratch.create_random(name, alg));
                              }
                              const pol::NamedKey* k = scratch.find(name);
                              std::vector<pol::NamedKey> one;
                              one.push_back({k->name, k->algorithm, k->value.clone()});
                              STORCRYPT_ASSIGN_OR_RETURN(auto applied, s.put_keys(std::move(one)));
                              json j = info(s.keys().list()[0]);
                              for (const auto& ki : s.keys().list())
                                if (ki.name == name) j = info(ki);
                              j["applied"] = stats_json(applied);
                              return j;
                            }));
  STORCRYPT_TRY(methods.add(
      "key.delete", "delete a named key no policy uses", {{"name", ParamType::kString, true, "key"}}, true,
      [](IpsecService& s, const Params& p) -> Result<json> {
        std::string name = p.str("name");
        if (!s.keys().find(name))
          return Error(ErrorCode::kNotFound, "no key named '" + name + "'", "see 'storcrypt key list'", "xKeyNotFound");
        auto users = s.users_of(name);
        if (!users.empty()) {
          std::string u;
          for (const auto& x : users) u += (u.empty() ? "" : ", ") + x;
          return Error(ErrorCode::kConflict, "key '" + name + "' is used by policy " + u,
                       "change or remove those policies (and commit) first", "xKeyInUse");
        }
        STORCRYPT_TRY(s.keys().remove(name));
        STORCRYPT_TRY(s.store_keys());
        return json{{"deleted", name}};
      }));
  STORCRYPT_TRY(
      methods.add("key.export", "encrypt keys under a passphrase (scrypt or PBKDF2, AES-256-GCM) for the partner",
                  {{"names", ParamType::kArray, false, "key names (default: all)"},
                   {"passphrase", ParamType::kString, true, "at least 8 characters"},
                   {"kdf", ParamType::kString, false, "scrypt (default) or pbkdf2"}},
                  false, [](IpsecService& s, const Params& p) -> Result<json> {
                    std::vector<std::string> names;
                    if (p.has("names"))
                      for (const auto& n : p.json()["names"]) {
                        if (!n.is_string()) return Error(ErrorCode::kInvalidInput, "names must be key names (strings)");
                        names.push_back(n.get<std::string>());
                      }
                    pol::KeyExportOptions o;
                    std::string kdf = p.str("kdf", "scrypt");
                    if (kdf == "pbkdf2")
                      o.kdf = pol::Kdf::kPbkdf2Sha256;
                    else if (kdf != "scrypt")
                      return Error(ErrorCode::kInvalidInput, "kdf '" + kdf + "' is not scrypt or pbkdf2", "use scrypt");
                    STORCRYPT_ASSIGN_OR_RETURN(SecretBytes pass, passphrase_of(p));
                    STORCRYPT_ASSIGN_OR_RETURN(std::string text, pol::export_keys(s.keys(), names, pass, o));
                    return json{{"file", text}, {"keys", names.empty() ? s.keys().size() : names.size()}};
                  }));
  STORCRYPT_TRY(methods.add("key.import", "import keys from a passphrase-protected key file",
                            {{"text", ParamType::kString, true, "key file text"},
                             {"passphrase", ParamType::kString, true, "the passphrase it was exported with"},
                             {"replace", ParamType::kBoolean, false, "replace keys of the same names"}},
                            true, [](IpsecService& s, const Params& p) -> Result<json> {
                              STORCRYPT_ASSIGN_OR_RETURN(SecretBytes pass, passphrase_of(p));
                              STORCRYPT_ASSIGN_OR_RETURN(auto keys, pol::import_keys(p.str("text"), pass));
                              std::set<std::string> names;
                              for (const auto& k : keys) {
                                if (s.keys().find(k.name) && !p.boolean("replace"))
                                  return Error(ErrorCode::kConflict, "a key named '" + k.name + "' exists",
                                               "import with --replace to overwrite it", "xKeyExists");
                                names.insert(k.name);
                              }
                              STORCRYPT_ASSIGN_OR_RETURN(auto applied, s.put_keys(std::move(keys)));
                              return json{{"imported", json(names)}, {"applied", stats_json(applied)}};
                            }));
  return ok_status();
}

Status register_ipsec_methods(Dispatcher& d, Context& ctx) {
  auto st = state_for(ctx);
  if (ctx.events) {
    ctx.events->define(integrity_event());
    ctx.events->define(restore_event());
  }
  if (st->svc) {
    ctx.add_start_hook([st, events = ctx.events] {
      {
        std::lock_guard lock(st->svc->mu);
        Status s = st->svc->restore();
        if (!s.ok()) {
          spdlog::error("ipsec: restoring enforcement: {}", s.error().to_string());
          st->svc->set_restore_error(s.error());
          if (events) (void)events->raise(kIpsecRestoreEvent, "IPsec enforcement not restored: " + s.error().message());
        } else if (st->svc->enabled()) {
          spdlog::info("ipsec: committed policy list enforced");
        }
      }
      auto every = interval_from_env("STORCRYPT_IPSEC_WATCH_SECONDS", std::chrono::seconds(10), 3600);
      st->watcher = std::make_unique<Ticker>(every, [svc = st->svc] {
        std::lock_guard lock(svc->mu);
        svc->watch();
      });
    });
  }
  ctx.add_doctor_check([st] {
    std::vector<CheckResult> out;
    if (st->load_error) {
      out.push_back({"ipsec", "state", "error", st->load_error->message(), st->load_error->fix()});
      return out;
    }
    if (!st->svc) return out;
    std::lock_guard lock(st->svc->mu);
    if (const auto& e = st->svc->restore_error())
      out.push_back({"ipsec", "enforcement", "critical", "not restored at start-up: " + e->message(),
                     "fix the cause, then run 'storcrypt ipsec enable'"});
    else
      out.push_back({"ipsec", "enforcement", "ok",
                     st->svc->enabled() ? "committed policy list enforced" : "IPsec policy enforcement disabled", ""});
    return out;
  });

  ServiceMethods<IpsecService> methods(d, [st] { return service(*st); });
  STORCRYPT_TRY(methods.add("ipsec.enable", "enforce the committed policy list in the kernel", {}, true,
                            [](IpsecService& s, const Params&) -> Result<json> {
                              STORCRYPT_ASSIGN_OR_RETURN(auto stats, s.enable());
                              return json{{"enabled", true}, {"applied", stats_json(stats)}};
                            }));
  STORCRYPT_TRY(methods.add("ipsec.disable", "remove every policy and SA storcrypt installed (and nothing else)", {},
                            true, [](IpsecService& s, const Params&) -> Result<json> {
                              STORCRYPT_ASSIGN_OR_RETURN(auto stats, s.disable());
                              return json{{"enabled", false}, {"applied", stats_json(stats)}};
                            }));
  STORCRYPT_TRY(
      methods.add("ipsec.default", "show or set the disposition of traffic no policy matches",
                  {{"disposition", ParamType::kString, false, "IPv6Only, BYPASS, DENY or DENYALL"}}, true,
                  [](IpsecService& s, const Params& p) -> Result<json> {
                    std::optional<pol::ApplyStats> applied;
                    if (p.has("disposition")) {
                      STORCRYPT_ASSIGN_OR_RETURN(auto dd, pol::parse_default_disposition(p.str("disposition")));
                      STORCRYPT_ASSIGN_OR_RETURN(applied, s.set_default(dd));
                    }
                    return json{{"default", pol::to_string(s.default_disposition())}, {"applied", stats_json(applied)}};
                  }));
  STORCRYPT_TRY(methods.add("ipsec.status", "enforced policies with packet/byte counters and drops", {}, false,
                            [](IpsecService& s, const Params&) -> Result<json> {
                              json r{{"enabled", s.enabled()},
                                     {"default", pol::to_string(s.default_disposition())},
                                     {"committed_policies", s.committed().size()},
                                     {"uncommitted_changes", s.uncommitted() != s.committed()}};
                              json arr = json::array();
                              if (s.enabled()) {
                                STORCRYPT_ASSIGN_OR_RETURN(auto rows, s.status());
                                for (const auto& e : rows) {
                                  json j{{"name", e.name},
                                         {"priority", e.priority},
                                         {"direction", e.direction},
                                         {"action", e.action},
                                         {"kernel_policies", e.kernel_policies}};
                                  if (e.sa)
                                    j["sa"] = json{{"id", e.sa->to_string()},
                                                   {"packets", e.counters.packets},
                                                   {"bytes", e.counters.bytes},
                                                   {"integrity_failed", e.counters.integrity_failed},
                                                   {"replay_errors", e.counters.replay_errors},
                                                   {"replay_window_errors", e.counters.replay_window_errors}};
                                  arr.push_back(j);
                                }
                              }
                              r["policies"] = arr;
                              r["kernel_counters"] = s.kernel_stats();
                              return r;
                            }));
  return ok_status();
}

}  // namespace storcrypt::controller
