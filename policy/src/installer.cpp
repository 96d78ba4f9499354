#include "storcrypt/policy/installer.h"

#include <algorithm>
#include <map>
#include <set>

namespace storcrypt::policy {
namespace {

namespace nl = storcrypt::netlink;

Result<Prefix> prefix(const IpAddress& a, int len) { return Prefix::make(a, static_cast<unsigned>(len), "selector"); }

/// ICMP type/code values selected by a value/mask pair (nullopt = any).
std::vector<std::optional<std::uint8_t>> icmp_values(std::uint16_t value, std::uint16_t mask, bool force) {
  if ((mask & 0xff) == 0 && !force) return {std::nullopt};  // no bit of an 8-bit value is fixed: any
  std::vector<std::optional<std::uint8_t>> out;
  for (unsigned v = 0; v < 256; ++v) {
    if (((v ^ value) & mask) == 0) out.push_back(static_cast<std::uint8_t>(v));
  }
  return out;
}

Result<nl::EncAlgo> enc_of(Algorithm a) {
  switch (a) {
    case Algorithm::kAesCbc128:
      return nl::EncAlgo::kAesCbc128;
    case Algorithm::kAesCbc256:
      return nl::EncAlgo::kAesCbc256;
    case Algorithm::kAesGcm256:
      return nl::EncAlgo::kAesGcm256;
    default:
      return Error(ErrorCode::kInvalidInput, std::string(to_string(a)) + " is not an encryption algorithm");
  }
}

Result<nl::IntegAlgo> integ_of(Algorithm a) {
  switch (a) {
    case Algorithm::kHmacSha1_96:
      return nl::IntegAlgo::kHmacSha1_96;
    case Algorithm::kHmacSha256_128:
      return nl::IntegAlgo::kHmacSha256_128;
    case Algorithm::kHmacSha512_256:
      return nl::IntegAlgo::kHmacSha512_256;
    default:
      return Error(ErrorCode::kInvalidInput, std::string(to_string(a)) + " is not an integrity algorithm");
  }
}

Result<SecretBytes> key_value(const KeyStore& keys, const std::string& name, const std::string& policy) {
  const NamedKey* k = keys.find(name);
  if (!k) {
    return Error(ErrorCode::kNotFound, "policy '" + policy + "': key '" + name + "' does not exist",
                 "create or import key '" + name + "' and enable again");
  }
  return k->value.clone();
}

bool same_sa(const nl::Sa& a, const nl::Sa& b) {
  return a.src == b.src && a.dst == b.dst && a.spi == b.spi && a.proto == b.proto && a.mode == b.mode &&
         a.reqid == b.reqid && a.enc == b.enc && a.integ == b.integ && a.enc_key.equals(b.enc_key) &&
         a.integ_key.equals(b.integ_key) && a.replay_window == b.replay_window;
}

bool same_policy(const nl::Policy& a, const nl::Policy& b) {
  return a.selector == b.selector && a.dir == b.dir && a.action == b.action && a.priority == b.priority &&
         a.templates == b.templates;
}

bool prefixes_overlap(const nl::Prefix& a, const nl::Prefix& b) {
  return a.len <= b.len ? a.contains(b.addr) : b.contains(a.addr);
}

bool prefix_covers(const nl::Prefix& outer, const nl::Prefix& inner) {
  return outer.len <= inner.len && outer.contains(inner.addr);
}

bool ports_overlap(const nl::PortMatch& a, const nl::PortMatch& b) {
  return ((a.port ^ b.port) & a.mask & b.mask) == 0;
}

bool port_covers(const nl::PortMatch& outer, const nl::PortMatch& inner) {
  return (outer.mask & ~inner.mask) == 0 && ((outer.port ^ inner.port) & outer.mask) == 0;
}

bool opt_overlap(const std::optional<std::uint8_t>& a, const std::optional<std::uint8_t>& b) {
  return !a || !b || *a == *b;
}

/// Some packet can match both selectors.
bool selectors_overlap(const nl::Selector& a, const nl::Selector& b) {
  return a.family == b.family && prefixes_overlap(a.src, b.src) && prefixes_overlap(a.dst, b.dst) &&
         (a.proto == 0 || b.proto == 0 || a.proto == b.proto) && ports_overlap(a.sport, b.sport) &&
         ports_overlap(a.dport, b.dport) && opt_overlap(a.icmp_type, b.icmp_type) &&
         opt_overlap(a.icmp_code, b.icmp_code) && (a.ifindex == 0 || b.ifindex == 0 || a.ifindex == b.ifindex);
}

/// Every packet `inner` matches also matches `outer`.
bool selector_covers(const nl::Selector& outer, const nl::Selector& inner) {
  return outer.family == inner.family && prefix_covers(outer.src, inner.src) &&
         prefix_covers(outer.dst, inner.dst) && (outer.proto == 0 || outer.proto == inner.proto) &&
         port_covers(outer.sport, inner.sport) && port_covers(outer.dport, inner.dport) &&
         (!outer.icmp_type || outer.icmp_type == inner.icmp_type) &&
         (!outer.icmp_code || outer.icmp_code == inner.icmp_code) &&
         (outer.ifindex == 0 || outer.ifindex == inner.ifindex);
}

std::string describe_foreign(const nl::Policy& p) {
  std::string what = p.action == nl::PolicyAction::kBlock ? "block"
                     : p.templates.empty()                 ? "allow"
                                                           : std::string(nl::proto_name(p.templates.front().proto)) +
                                                                 " " + std::string(nl::mode_name(p.templates.front().mode));
  return std::string(nl::direction_name(p.dir)) + " " + p.selector.to_string() + " " + what + " priority " +
         std::to_string(p.priority) + " index " + std::to_string(p.index);
}

/// The kernel policies of a compiled set, each with the spec it comes from.
Result<std::vector<std::pair<nl::Policy, const PolicySpec*>>> kernel_policies(const CompiledPolicySet& set) {
  std::vector<std::pair<nl::Policy, const PolicySpec*>> out;
  std::set<std::pair<int, std::string>> seen;  // (dir, selector text) already emitted
  for (const PolicySpec& p : set.policies) {
    nl::Policy base;
    base.dir = p.dir == XfrmDir::kIn    ? nl::Direction::kIn
               : p.dir == XfrmDir::kOut ? nl::Direction::kOut
                                        : nl::Direction::kFwd;
    base.action = p.action == XfrmAction::kBlock ? nl::PolicyAction::kBlock : nl::PolicyAction::kAllow;
    base.priority = p.priority;
    if (p.tmpl) {
      nl::Template t;
      t.proto = p.tmpl->proto == proto::kAh ? nl::XfrmProto::kAh : nl::XfrmProto::kEsp;
      t.mode = p.tmpl->mode == Mode::kTunnel ? nl::Mode::kTunnel : nl::Mode::kTransport;
      t.family = p.tmpl->family;
      t.src = p.tmpl->saddr;
      t.dst = p.tmpl->daddr;
      t.reqid = p.tmpl->reqid;
      t.spi = p.tmpl->spi;
      base.templates.push_back(t);
    }
    const SelectorSpec& s = p.selector;
    nl::Selector sel = nl::Selector::any(s.family);
    STORCRYPT_ASSIGN_OR_RETURN(sel.src, prefix(s.saddr, s.prefixlen_s));
    STORCRYPT_ASSIGN_OR_RETURN(sel.dst, prefix(s.daddr, s.prefixlen_d));
    sel.proto = s.proto;
    std::vector<nl::Selector> sels;
    if (protocol_is_icmp(s.proto)) {
      // One ICMP type (and code) per selector; a code needs a type.
      for (auto type : icmp_values(s.sport, s.sport_mask, s.dport_mask != 0)) {
        for (auto code : icmp_values(s.dport, s.dport_mask, false)) {
          nl::Selector x = sel;
          x.icmp_type = type;
          x.icmp_code = code;
          sels.push_back(x);
        }
      }
    } else {
      sel.sport = {s.sport, s.sport_mask};
      sel.dport = {s.dport, s.dport_mask};
      sels.push_back(sel);
    }
    for (nl::Selector& x : sels) {
      if (!seen.insert({static_cast<int>(base.dir), x.to_string()}).second) continue;
      nl::Policy np = base;
      np.selector = std::move(x);
      if (auto st = nl::validate(np); !st.ok()) return std::move(st).error().context("policy '" + p.source + "'");
      out.emplace_back(std::move(np), &p);
    }
  }
  return out;
}

}  // namespace

Result<KernelSet> to_kernel(const CompiledPolicySet& set, const KeyStore& keys) {
  KernelSet out;
  for (const SaSpec& s : set.sas) {
    nl::Sa sa;
    sa.src = s.saddr;
    sa.dst = s.daddr;
    sa.spi = s.spi;
    sa.proto = s.proto == proto::kAh ? nl::XfrmProto::kAh : nl::XfrmProto::kEsp;
    sa.mode = s.mode == Mode::kTunnel ? nl::Mode::kTunnel : nl::Mode::kTransport;
    sa.reqid = s.reqid;
    // Manual keys have no sequence-number reset on restart: no anti-replay (RFC 4303 3.3.3).
    sa.replay_window = 0;
    if (s.aead) {
      STORCRYPT_ASSIGN_OR_RETURN(sa.enc, enc_of(s.aead->algorithm));
      STORCRYPT_ASSIGN_OR_RETURN(sa.enc_key, key_value(keys, s.aead->key_name, s.source));
    }
    if (s.crypt) {
      if (s.crypt->kernel_name == nl::kEspNullCipher) {
        // ESP integrity only: the netlink layer sends the NULL cipher (no key) for enc=none.
        if (!s.crypt->key_name.empty()) {
          return Error(ErrorCode::kInvalidInput,
                       "policy '" + s.source + "': the NULL cipher of ESP integrity only takes no key (got '" +
                           s.crypt->key_name + "')",
                       "remove EncryptionKey, or choose an encryption algorithm");
        }
        sa.enc = nl::EncAlgo::kNone;
      } else {
        if (s.crypt->key_name.empty()) {
          return Error(ErrorCode::kInvalidInput,
                       "policy '" + s.source + "': cipher " + s.crypt->kernel_name + " has no key",
                       "set EncryptionKey to the name of a stored key");
        }
        STORCRYPT_ASSIGN_OR_RETURN(sa.enc, enc_of(s.crypt->algorithm));
        STORCRYPT_ASSIGN_OR_RETURN(sa.enc_key, key_value(keys, s.crypt->key_name, s.source));
      }
    }
    if (s.auth) {
      STORCRYPT_ASSIGN_OR_RETURN(sa.integ, integ_of(s.auth->algorithm));
      STORCRYPT_ASSIGN_OR_RETURN(sa.integ_key, key_value(keys, s.auth->key_name, s.source));
    }
    // ESP confidentiality without integrity was chosen explicitly by the policy's service.
    sa.allow_no_integrity = sa.proto == nl::XfrmProto::kEsp && !s.auth && !s.aead;
    if (auto st = nl::validate(sa); !st.ok()) return std::move(st).error().context("policy '" + s.source + "'");
    out.sas.push_back(std::move(sa));
  }

  STORCRYPT_ASSIGN_OR_RETURN(auto pols, kernel_policies(set));
  for (auto& [p, spec] : pols) out.policies.push_back(std::move(p));
  return out;
}

netlink::Ownership installer_ownership(const CompileOptions& opt) {
  netlink::Ownership o;
  o.index_min = netlink::kOwnedIndexMin;
  o.index_max = netlink::kManualIndexMax;
  o.reqid_min = opt.reqid_base;
  o.reqid_max = opt.reqid_base + kReqidSpan - 1;
  return o;
}

PolicyInstaller::PolicyInstaller(netlink::XfrmApi& xfrm, CompileOptions opt)
    : xfrm_(xfrm), opt_(std::move(opt)), own_(installer_ownership(opt_)) {}

bool PolicyInstaller::owns(const netlink::Policy& p) const { return own_.owns(p); }

bool PolicyInstaller::owns(const netlink::Sa& sa) const { return own_.owns(sa); }

Result<ApplyStats> PolicyInstaller::enable(const CompiledPolicySet& set, const KeyStore& keys) {
  if (set.policies.size() >= kMaxPolicies) {
    return Error(ErrorCode::kInvalidInput, "the compiled list is too large to install", "shorten the list");
  }
  STORCRYPT_ASSIGN_OR_RETURN(KernelSet want, to_kernel(set, keys));
  ApplyStats st;
  STORCRYPT_ASSIGN_OR_RETURN(auto have_sas, xfrm_.dump_sas());
  STORCRYPT_ASSIGN_OR_RETURN(auto have_pols, xfrm_.dump_policies());

  // 1. SAs first, so that new PROTECT policies find their SA at once.
  std::vector<const nl::Sa*> stale_sas;
  std::set<std::string> wanted_sa_ids;
  for (const nl::Sa& sa : want.sas) wanted_sa_ids.insert(sa.id().to_string());
  for (const auto& h : have_sas) {
    if (owns(h.sa) && !wanted_sa_ids.count(h.sa.id().to_string())) stale_sas.push_back(&h.sa);
  }
  std::vector<nl::Sa> to_add;
  for (const nl::Sa& sa : want.sas) {
    auto it =
        std::find_if(have_sas.begin(), have_sas.end(), [&](const nl::SaState& h) { return h.sa.id() == sa.id(); });
    if (it != have_sas.end()) {
      if (same_sa(it->sa, sa)) continue;
      if (!owns(it->sa)) {
        return Error(ErrorCode::kConflict, "an SA " + sa.id().to_string() + " that storcrypt does not own exists",
                     "choose another SPI or remove the foreign SA");
      }
      // Keys and algorithms of an existing SA cannot be updated in place: replace it.
      STORCRYPT_TRY(xfrm_.delete_sa(it->sa.id()));
      ++st.sas_replaced;
    } else {
      ++st.sas_added;
    }
    to_add.push_back(sa.clone());
  }
  if (!to_add.empty()) {
    STORCRYPT_ASSIGN_OR_RETURN(auto br, xfrm_.add_sas(to_add));
    STORCRYPT_TRY(br.first_error());
  }

  // 2. Policies: add missing, update changed, delete stale.
  std::map<std::string, const nl::Policy*> have_by_id;
  for (const nl::Policy& h : have_pols) {
    if (owns(h)) have_by_id[h.id().to_string()] = &h;
  }
  // Every policy carries an index from our range (the ownership tag); new
  // ones take the lowest free slot of their direction.
  std::set<std::uint32_t> used_indexes;
  for (const nl::Policy& h : have_pols) {
    if (owns(h)) used_indexes.insert(h.index);
  }
  std::map<nl::Direction, std::uint32_t> next_slot;
  auto free_index = [&](nl::Direction dir) -> Result<std::uint32_t> {
    for (std::uint32_t& slot = next_slot[dir];; ++slot) {
      auto idx = own_.policy_index(slot, dir);
      if (!idx) {
        return Error(ErrorCode::kInvalidInput, "no free policy index left in storcrypt's range",
                     "shorten the list, or disable and enable again");
      }
      if (used_indexes.insert(*idx).second) return *idx;
    }
  };
  std::vector<nl::Policy> add;
  std::set<std::string> wanted_ids;
  for (const nl::Policy& p : want.policies) {
    const std::string id = p.id().to_string();
    wanted_ids.insert(id);
    auto it = have_by_id.find(id);
    if (it == have_by_id.end()) {
      nl::Policy np = p;
      STORCRYPT_ASSIGN_OR_RETURN(np.index, free_index(p.dir));
      add.push_back(std::move(np));
    } else if (!same_policy(*it->second, p)) {
      nl::Policy up = p;
      up.index = it->second->index;  // the kernel keeps the installed policy's index
      STORCRYPT_TRY(xfrm_.update_policy(up));
      ++st.policies_updated;
    }
  }
  if (!add.empty()) {
    STORCRYPT_ASSIGN_OR_RETURN(auto br, xfrm_.add_policies(add));
    STORCRYPT_TRY(br.first_error());
    st.policies_added = add.size();
  }
  std::vector<nl::PolicyId> del;
  for (const auto& [id, p] : have_by_id) {
    if (wanted_ids.count(id)) continue;
    nl::PolicyId pid = p->id();
    pid.index = p->index;
    del.push_back(pid);
  }
  if (!del.empty()) {
    STORCRYPT_ASSIGN_OR_RETURN(auto br, xfrm_.delete_policies(del));
    STORCRYPT_TRY(br.first_error());
    st.policies_deleted = del.size();
  }
  // 3. SAs no policy uses any more.
  std::vector<nl::SaId> del_sas;
  for (const nl::Sa* sa : stale_sas) del_sas.push_back(sa->id());
  if (!del_sas.empty()) {
    STORCRYPT_ASSIGN_OR_RETURN(auto br, xfrm_.delete_sas(del_sas));
    STORCRYPT_TRY(br.first_error());
    st.sas_deleted = del_sas.size();
  }
  enabled_ = set;
  return st;
}

Result<ApplyStats> PolicyInstaller::disable() {
  ApplyStats st;
  STORCRYPT_ASSIGN_OR_RETURN(auto pols, xfrm_.dump_policies());
  std::vector<nl::PolicyId> del;
  for (const nl::Policy& p : pols) {
    if (!owns(p)) continue;
    nl::PolicyId id = p.id();
    id.index = p.index;  // by index when the kernel reported one: no selector scan
    del.push_back(id);
  }
  if (!del.empty()) {
    STORCRYPT_ASSIGN_OR_RETURN(auto br, xfrm_.delete_policies(del));
    for (const auto& [i, e] : br.failures) {
      if (e.code() != ErrorCode::kNotFound) return Error(e);  // already gone is fine
    }
    st.policies_deleted = br.succeeded;
  }
  STORCRYPT_ASSIGN_OR_RETURN(auto sas, xfrm_.dump_sas());
  std::vector<nl::SaId> del_sas;
  for (const auto& s : sas) {
    if (owns(s.sa)) del_sas.push_back(s.sa.id());
  }
  if (!del_sas.empty()) {
    STORCRYPT_ASSIGN_OR_RETURN(auto br, xfrm_.delete_sas(del_sas));
    for (const auto& [i, e] : br.failures) {
      if (e.code() != ErrorCode::kNotFound) return Error(e);
    }
    st.sas_deleted = br.succeeded;
  }
  enabled_.reset();
  return st;
}

std::vector<Diagnostic> foreign_precedence_warnings(const CompiledPolicySet& set,
                                                    const std::vector<netlink::Policy>& foreign) {
  std::vector<Diagnostic> out;
  auto pols = kernel_policies(set);
  if (!pols.ok()) return out;  // commit reports the list's own errors
  // Per list entry (in list order): the foreign policies it takes precedence over.
  std::map<std::size_t, std::pair<const PolicySpec*, std::vector<std::pair<const nl::Policy*, bool>>>> hits;
  for (const nl::Policy& f : foreign) {
    // An xfrm-interface policy (if_id) only applies to that interface's
    // lookups, where ours (if_id 0) never match.
    if (f.if_id != 0) continue;
    std::set<std::size_t> seen_entries;
    for (const auto& [mine, spec] : *pols) {
      // The kernel picks the lowest priority value; at equal values the older policy.
      if (mine.dir != f.dir || mine.priority > f.priority) continue;
      if (!selectors_overlap(mine.selector, f.selector)) continue;
      if (!seen_entries.insert(spec->effective_index).second) continue;
      auto& h = hits[spec->effective_index];
      h.first = spec;
      h.second.emplace_back(&f, selector_covers(mine.selector, f.selector));
    }
  }
  for (const auto& [idx, h] : hits) {
    const auto& [spec, fs] = h;
    const bool all_full = std::all_of(fs.begin(), fs.end(), [](const auto& x) { return x.second; });
    std::string msg = std::string(to_string(spec->dir)) + " selector takes precedence over " +
                      std::to_string(fs.size()) + (fs.size() == 1 ? " policy" : " policies") +
                      " of another IPsec daemon already in the kernel (" +
                      (all_full ? "entirely" : "at least partly") +
                      "): that traffic will follow this list instead of the other daemon's policy: ";
    for (std::size_t i = 0; i < fs.size() && i < 3; ++i) msg += (i ? "; " : "") + describe_foreign(*fs[i].first);
    if (fs.size() > 3) msg += "; and " + std::to_string(fs.size() - 3) + " more";
    std::string fix =
        "narrow this policy's addresses, protocol or ports so they leave the other daemon's traffic alone, unless "
        "this list is meant to decide for it (see PRECEDENCE in storcrypt(8))";
    out.push_back({Severity::kWarning, spec->source, std::move(msg), std::move(fix)});
  }
  return out;
}

Result<std::vector<Diagnostic>> PolicyInstaller::precedence_warnings(const CompiledPolicySet& set) {
  STORCRYPT_ASSIGN_OR_RETURN(auto foreign, xfrm_.dump_foreign_policies());
  // The XfrmApi's scope may be wider than the installer's (e.g. Ownership::all()).
  STORCRYPT_ASSIGN_OR_RETURN(auto listed, xfrm_.dump_policies());
  for (auto& p : listed)
    if (!owns(p)) foreign.push_back(std::move(p));
  return foreign_precedence_warnings(set, foreign);
}

Result<std::vector<EnforcedPolicy>> PolicyInstaller::status() {
  STORCRYPT_ASSIGN_OR_RETURN(auto pols, xfrm_.dump_policies());
  STORCRYPT_ASSIGN_OR_RETURN(auto sas, xfrm_.dump_sas());
  std::map<std::pair<std::uint32_t, int>, EnforcedPolicy> rows;
  for (const nl::Policy& p : pols) {
    if (!owns(p)) continue;
    EnforcedPolicy& r = rows[{p.priority, static_cast<int>(p.dir)}];
    r.priority = p.priority;
    r.direction = std::string(nl::direction_name(p.dir));
    r.action = p.action == nl::PolicyAction::kBlock ? "DISCARD" : p.templates.empty() ? "BYPASS" : "PROTECT";
    ++r.kernel_policies;
    r.name = "priority " + std::to_string(p.priority);
    if (enabled_) {
      for (const PolicySpec& s : enabled_->policies) {
        if (s.priority == p.priority) {
          r.name = s.source;
          break;
        }
      }
    }
    if (!p.templates.empty()) {
      const nl::Template& t = p.templates.front();
      for (const auto& s : sas) {
        if (s.sa.reqid == t.reqid && s.sa.spi == t.spi && s.sa.proto == t.proto) {
          r.sa = s.sa.id();
          r.counters = s.counters;
        }
      }
    }
  }
  std::vector<EnforcedPolicy> out;
  for (auto& [k, r] : rows) out.push_back(std::move(r));
  return out;
}

}  // namespace storcrypt::policy
