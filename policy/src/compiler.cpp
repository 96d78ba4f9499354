#include "storcrypt/policy/compiler.h"

#include <algorithm>
#include <array>
#include <cstdio>
#include <map>
#include <set>
#include <sstream>

namespace storcrypt::policy {
namespace {

// ---- Region analysis over boxes (family, local, remote, proto, A, B) ----

struct Box {
  Family family = Family::kIPv4;
  std::array<U128, 5> lo{};
  std::array<U128, 5> hi{};
};

bool intersects(const Box& a, const Box& b) {
  if (a.family != b.family) return false;
  for (int d = 0; d < 5; ++d) {
    if (a.hi[d] < b.lo[d] || b.hi[d] < a.lo[d]) return false;
  }
  return true;
}

bool contains(const Box& outer, const Box& inner) {
  if (outer.family != inner.family) return false;
  for (int d = 0; d < 5; ++d) {
    if (inner.lo[d] < outer.lo[d] || inner.hi[d] > outer.hi[d]) return false;
  }
  return true;
}

std::vector<PortRange> dim_ranges(const Selector& s, bool local) {
  if (!s.protocol || !(protocol_has_ports(*s.protocol) || protocol_is_icmp(*s.protocol))) {
    return {PortRange{0, 65535}};
  }
  const std::uint16_t max = protocol_is_icmp(*s.protocol) ? 255 : 65535;
  return (local ? s.local_ports : s.remote_ports).effective(max);
}

std::vector<Box> boxes_of(const Policy& p) {
  std::vector<Box> out;
  const Selector& s = p.selector;
  for (Family f : selector_families(s)) {
    for (const AddressRange& l : s.local.ranges(f)) {
      for (const AddressRange& r : s.remote.ranges(f)) {
        for (PortRange a : dim_ranges(s, true)) {
          for (PortRange b : dim_ranges(s, false)) {
            Box box;
            box.family = f;
            box.lo = {l.lo, r.lo, s.protocol ? U128{*s.protocol} : U128{0}, a.lo, b.lo};
            box.hi = {l.hi, r.hi, s.protocol ? U128{*s.protocol} : U128{255}, a.hi, b.hi};
            out.push_back(box);
          }
        }
      }
    }
  }
  return out;
}

struct Flat {
  Box box;
  std::size_t index;  // index into the list being analysed
};

constexpr std::size_t kNone = static_cast<std::size_t>(-1);

// Which entries of `list` (in order) decide some part of `region`? kNone in
// the result means part of the region matches nothing. Returns false when
// the work budget ran out (result incomplete).
bool deciders(const Box& region, const std::vector<Flat>& list, std::size_t from, std::set<std::size_t>& out,
              std::size_t& budget) {
  if (budget == 0) return false;
  --budget;
  for (std::size_t i = from; i < list.size(); ++i) {
    const Box& b = list[i].box;
    if (!intersects(region, b)) continue;
    out.insert(list[i].index);
    if (contains(b, region)) return true;
    // Split region \ b into slabs, dimension by dimension.
    Box rest = region;
    for (int d = 0; d < 5; ++d) {
      if (rest.lo[d] < b.lo[d]) {
        Box part = rest;
        part.hi[d] = b.lo[d] - 1;
        if (!deciders(part, list, i + 1, out, budget)) return false;
        rest.lo[d] = b.lo[d];
      }
      if (rest.hi[d] > b.hi[d]) {
        Box part = rest;
        part.lo[d] = b.hi[d] + 1;
        if (!deciders(part, list, i + 1, out, budget)) return false;
        rest.hi[d] = b.hi[d];
      }
    }
    return true;
  }
  out.insert(kNone);
  return true;
}

std::vector<Flat> flatten(const std::vector<EffectivePolicy>& eff, const std::vector<std::vector<Box>>& boxes,
                          Direction dir, std::size_t end, const std::vector<Box>* filter) {
  std::vector<Flat> out;
  for (std::size_t k = 0; k < end && k < eff.size(); ++k) {
    if (eff[k].policy.direction != dir) continue;
    for (const Box& b : boxes[k]) {
      if (filter && std::none_of(filter->begin(), filter->end(), [&](const Box& f) { return intersects(f, b); })) {
        continue;
      }
      out.push_back({b, k});
    }
  }
  return out;
}

std::string join_names(const std::vector<EffectivePolicy>& eff, const std::set<std::size_t>& idx) {
  std::string s;
  int n = 0;
  for (std::size_t i : idx) {
    if (i == kNone) continue;
    if (++n > 5) {
      s += ", ...";
      break;
    }
    s += (s.empty() ? "'" : ", '") + eff[i].policy.name + "'";
  }
  return s;
}

// ---- Compilation ----

AlgorithmSpec alg_spec(Algorithm a, const std::string& key) {
  switch (a) {
    case Algorithm::kHmacSha1_96:
      return {a, "hmac(sha1)", 96, key};
    case Algorithm::kHmacSha256_128:
      return {a, "hmac(sha256)", 128, key};
    case Algorithm::kHmacSha512_256:
      return {a, "hmac(sha512)", 256, key};
    case Algorithm::kAesCbc128:
      return {a, "cbc(aes)", 128, key};
    case Algorithm::kAesCbc256:
      return {a, "cbc(aes)", 256, key};
    case Algorithm::kAesGcm256:
      return {a, "rfc4106(gcm(aes))", 128, key};
  }
  return {};
}

struct SaEnds {
  IpAddress saddr, daddr;
};

/// Transport mode with LocalAddress ANY: the local side is this node's addresses.
bool any_local_transport(const Policy& p) {
  return p.disposition == Disposition::kProtect && p.protection && p.protection->mode == Mode::kTransport &&
         p.selector.local.is_any();
}

SaEnds sa_ends(const Policy& p) {
  const Protection& pr = *p.protection;
  // Transport mode with LocalAddress ANY: the wildcard source (0.0.0.0 or ::),
  // which the kernel's outbound SA lookup accepts for any source address.
  IpAddress local = pr.mode == Mode::kTunnel      ? *pr.local_endpoint
                    : p.selector.local.is_any() ? IpAddress::any(p.selector.remote.first.family)
                                                : p.selector.local.first;
  IpAddress remote = pr.mode == Mode::kTunnel ? *pr.remote_endpoint : p.selector.remote.first;
  if (p.direction == Direction::kOutbound) return {local, remote};
  return {remote, local};
}

std::vector<PortMask> masks_of(const Selector& s, bool local, bool minimize) {
  if (!s.protocol || !(protocol_has_ports(*s.protocol) || protocol_is_icmp(*s.protocol))) return {PortMask{0, 0}};
  PortSpec merged{dim_ranges(s, local)};
  merged.normalize();  // a spec built in code may list overlapping or adjacent pieces
  const auto& ranges = merged.ranges;
  // ICMP types/codes are 8-bit: the whole 0-255 range is "any" (mask 0), not 0/0xff00.
  if (protocol_is_icmp(*s.protocol) && ranges.size() == 1 && ranges[0] == PortRange{0, 255}) return {PortMask{0, 0}};
  if (minimize) return ports_to_masks(ranges);
  std::vector<PortMask> out;
  for (PortRange r : ranges) {
    auto m = port_range_to_masks(r);
    out.insert(out.end(), m.begin(), m.end());
  }
  return out;
}

}  // namespace

std::vector<IpAddress> node_addresses(const CompileOptions& opt, Family f) {
  std::vector<IpAddress> out;
  if (!opt.local_addresses) return out;
  for (const IpAddress& a : *opt.local_addresses)
    if (a.family == f && std::find(out.begin(), out.end(), a) == out.end()) out.push_back(a);
  std::sort(out.begin(), out.end(), [](const IpAddress& a, const IpAddress& b) { return a.bytes < b.bytes; });
  return out;
}

std::string_view to_string(XfrmDir d) {
  switch (d) {
    case XfrmDir::kIn:
      return "in";
    case XfrmDir::kOut:
      return "out";
    case XfrmDir::kFwd:
      return "fwd";
  }
  return "?";
}

bool ValidationReport::ok() const { return errors().empty(); }

std::vector<const Diagnostic*> ValidationReport::warnings() const {
  std::vector<const Diagnostic*> out;
  for (const auto& d : diagnostics) {
    if (d.severity == Severity::kWarning) out.push_back(&d);
  }
  return out;
}

std::vector<const Diagnostic*> ValidationReport::errors() const {
  std::vector<const Diagnostic*> out;
  for (const auto& d : diagnostics) {
    if (d.severity == Severity::kError) out.push_back(&d);
  }
  return out;
}

std::string ValidationReport::to_string() const {
  std::ostringstream os;
  for (const auto& d : diagnostics) {
    os << (d.severity == Severity::kError ? "error: " : "warning: ");
    if (!d.policy.empty()) os << "policy '" << d.policy << "': ";
    os << d.message;
    if (!d.fix.empty()) os << " (fix: " << d.fix << ")";
    os << "\n";
  }
  return os.str();
}

std::size_t selector_count(const Policy& p, const CompileOptions& opt) {
  std::size_t total = 0;
  const std::size_t ports = masks_of(p.selector, true, opt.minimize_port_masks).size() *
                            masks_of(p.selector, false, opt.minimize_port_masks).size();
  for (Family f : selector_families(p.selector)) {
    std::size_t lp = 0, rp = 0;
    for (const AddressRange& l : p.selector.local.ranges(f)) lp += range_to_prefixes(l).size();
    for (const AddressRange& r : p.selector.remote.ranges(f)) rp += range_to_prefixes(r).size();
    total += lp * rp * ports;
  }
  return total;
}

std::size_t kernel_policy_count(const CompiledPolicySet& set) {
  // Values of an 8-bit ICMP type/code a pair matches (1 when no bit is fixed: any).
  auto icmp_values = [](std::uint16_t value, std::uint16_t mask) -> std::size_t {
    if ((mask & 0xff) == 0) return 1;
    std::size_t n = 0;
    for (unsigned v = 0; v < 256; ++v) n += ((v ^ value) & mask) == 0;
    return n;
  };
  std::size_t n = 0;
  for (const PolicySpec& p : set.policies) {
    const SelectorSpec& s = p.selector;
    n += protocol_is_icmp(s.proto) ? icmp_values(s.sport, s.sport_mask) * icmp_values(s.dport, s.dport_mask) : 1;
  }
  return n;
}

std::optional<Diagnostic> kernel_size_warning(const CompiledPolicySet& set, const CompileOptions& opt) {
  if (opt.warn_kernel_policies == 0) return std::nullopt;
  const std::size_t n = kernel_policy_count(set);
  if (n <= opt.warn_kernel_policies) return std::nullopt;
  char mib[32];
  std::snprintf(mib, sizeof mib, "%.1f", static_cast<double>(n * kKernelBytesPerPolicy) / (1024.0 * 1024.0));
  return Diagnostic{Severity::kWarning, "",
                    "the list compiles to " + std::to_string(n) + " kernel policies (warning limit " +
                        std::to_string(opt.warn_kernel_policies) + "), which take about " + mib +
                        " MiB of kernel memory (" + std::to_string(kKernelBytesPerPolicy) +
                        " bytes each) and make every install and packet lookup slower",
                    "use prefixes, aligned port ranges or address selectors with fewer pieces, or raise the limit "
                    "(policy_warn_kernel_policies in storcrypt.conf)"};
}

ValidationReport validate(const PolicyList& list, const KeyStore& keys, const CompileOptions& opt) {
  ValidationReport rep;
  auto error = [&](std::string pol, std::string msg, std::string fix) {
    rep.diagnostics.push_back({Severity::kError, std::move(pol), std::move(msg), std::move(fix)});
  };
  auto warn = [&](std::string pol, std::string msg, std::string fix) {
    rep.diagnostics.push_back({Severity::kWarning, std::move(pol), std::move(msg), std::move(fix)});
  };
  for (Direction d : {Direction::kInbound, Direction::kOutbound}) {
    if (std::none_of(list.policies().begin(), list.policies().end(),
                     [d](const Policy& p) { return p.direction == d; })) {
      error("", "the list has no " + std::string(to_string(d)) + " policy",
            "add at least one " + std::string(to_string(d)) + " policy (e.g. a final BYPASS or DISCARD)");
    }
  }
  // Named address selectors: every name a policy uses must be defined; the
  // checks below see the policies with their names expanded.
  for (const auto& [pol, name] : list.undefined_addresses()) {
    error(pol, "address selector '" + name + "' is not defined",
          "define it with 'storcrypt address add " + name + " ENTRY...' or use an address");
  }
  if (!rep.ok()) return rep;
  const PolicyList resolved = list.resolved().value();  // every name is defined (checked above)
  std::map<std::uint32_t, std::string> spis;
  for (const Policy& p : resolved.policies()) {
    if (auto st = check_policy(p); !st.ok()) {
      error("", st.error().message(), st.error().fix());
      continue;
    }
    if (std::size_t n = selector_count(p, opt); n > opt.max_selectors_per_policy) {
      error(p.name,
            "expands into " + std::to_string(n) + " kernel selectors (limit " +
                std::to_string(opt.max_selectors_per_policy) + ")",
            "use prefixes or aligned ranges, or split the policy");
    }
    if (!p.protection) continue;
    const Protection& pr = *p.protection;
    if (auto [it, fresh] = spis.emplace(pr.spi, p.name); !fresh) {
      char buf[16];
      std::snprintf(buf, sizeof buf, "0x%x", pr.spi);
      error(p.name, std::string("SPI ") + buf + " is already used by policy '" + it->second + "'",
            "give every PROTECT policy its own SPI");
    }
    for (auto [alg, key] : {std::pair{pr.integrity, &pr.integrity_key}, std::pair{pr.encryption, &pr.encryption_key}}) {
      if (!alg) continue;
      const NamedKey* k = keys.find(*key);
      if (!k) {
        error(p.name, "key '" + *key + "' does not exist", "create or import key '" + *key + "'");
      } else if (k->algorithm != *alg) {
        error(p.name,
              "key '" + *key + "' is a " + std::string(to_string(k->algorithm)) + " key, the policy uses " +
                  std::string(to_string(*alg)),
              "use a " + std::string(to_string(*alg)) + " key");
      } else if (k->value.size() != algorithm_key_bytes(*alg)) {
        error(p.name, "key '" + *key + "' has the wrong length for " + std::string(to_string(*alg)),
              "create the key again");
      }
    }
  }
  if (!rep.ok()) return rep;

  // Transport mode with LocalAddress ANY needs this node's addresses of the remote's family.
  for (const Policy& p : resolved.policies()) {
    if (!any_local_transport(p)) continue;
    const Family f = p.selector.remote.first.family;
    if (!opt.local_addresses) {
      error(p.name, "LocalAddress ANY in transport mode needs this node's own addresses, which are not known",
            "give LocalAddress (this node's address), or check that storcryptd can read its network interfaces");
    } else if (node_addresses(opt, f).empty()) {
      error(p.name,
            "LocalAddress ANY in transport mode stands for this node's " + std::string(family_label(f)) +
                " addresses, and it has none",
            "add an " + std::string(family_label(f)) + " address to an interface, or give LocalAddress");
    }
  }
  if (!rep.ok()) return rep;

  // Shadowed policies: every packet they match is decided by an earlier one.
  const auto eff = effective_policies(list, opt.enforcement);
  std::vector<std::vector<Box>> boxes;
  boxes.reserve(eff.size());
  for (const EffectivePolicy& e : eff) boxes.push_back(boxes_of(e.policy));
  for (std::size_t j = 0; j < list.size(); ++j) {
    const Policy& p = list.policies()[j];
    const auto& mine = boxes[j];
    const auto earlier = flatten(eff, boxes, p.direction, j, &mine);
    if (earlier.empty()) continue;
    std::set<std::size_t> dec;
    std::size_t budget = 200000;
    bool complete = true;
    for (const Box& b : mine) complete = complete && deciders(b, earlier, 0, dec, budget);
    if (!complete) {
      warn(p.name, "could not determine whether earlier policies shadow this policy (too complex)", "");
    } else if (!dec.count(kNone)) {
      const bool same = std::all_of(dec.begin(), dec.end(),
                                    [&](std::size_t i) { return eff[i].policy.disposition == p.disposition; });
      warn(p.name,
           std::string(same ? "is redundant" : "is shadowed") + ": it never matches, because earlier " +
               (dec.size() > 1 ? "policies " : "policy ") + join_names(eff, dec) + " match all its traffic",
           same ? "remove it" : "move it above " + join_names(eff, dec) + " or narrow the earlier policies");
    }
  }

  // Advice: ICMPv6 neighbour/router discovery and ICMP should not be discarded;
  // storcrypt's control traffic should not be discarded by the user's list.
  auto discarded_by = [&](Direction dir, Box region) {
    std::set<std::size_t> dec;
    std::size_t budget = 200000;
    const auto all = flatten(eff, boxes, dir, eff.size(), nullptr);
    deciders(region, all, 0, dec, budget);
    std::set<std::size_t> discards;
    for (std::size_t i : dec) {
      if (i != kNone && eff[i].policy.disposition == Disposition::kDiscard) discards.insert(i);
    }
    return discards;
  };
  for (Direction dir : {Direction::kInbound, Direction::kOutbound}) {
    Box nd;
    nd.family = Family::kIPv6;
    nd.lo = {0, 0, proto::kIcmpv6, 133, 0};
    nd.hi = {family_max(Family::kIPv6), family_max(Family::kIPv6), proto::kIcmpv6, 137, 255};
    if (auto d = discarded_by(dir, nd); !d.empty()) {
      warn("",
           std::string(to_string(dir)) + " ICMPv6 neighbour/router discovery (types 133-137) would be discarded by " +
               join_names(eff, d),
           "add a BYPASS policy for ICMPv6 types 133-137 near the top of the list");
    }
    Box icmp;
    icmp.family = Family::kIPv4;
    icmp.lo = {0, 0, proto::kIcmp, 0, 0};
    icmp.hi = {family_max(Family::kIPv4), family_max(Family::kIPv4), proto::kIcmp, 255, 255};
    if (auto d = discarded_by(dir, icmp); !d.empty()) {
      warn("", std::string(to_string(dir)) + " ICMP would be (partly) discarded by " + join_names(eff, d),
           "add a BYPASS policy for ICMP (at least types 0, 3, 8, 11) unless this is intended");
    }
  }
  if (opt.enforcement.default_disposition == DefaultDisposition::kDenyAll) {
    warn("", "default DENYALL discards storcrypt's own control traffic (IKE, KMIP) unless a policy lets it through",
         "add BYPASS policies for IKE (udp/500, udp/4500) and KMIP (tcp/5696) if they are needed");
  } else {
    for (const ControlExemption& e : opt.enforcement.control) {
      for (Direction dir : {Direction::kInbound, Direction::kOutbound}) {
        for (Family f : {Family::kIPv4, Family::kIPv6}) {
          Policy ex;
          ex.direction = dir;
          ex.selector.protocol = e.protocol;
          ex.selector.local_ports = e.local_ports;
          ex.selector.remote_ports = e.remote_ports;
          for (Box b : boxes_of(ex)) {
            if (b.family != f) continue;
            std::set<std::size_t> d = discarded_by(dir, b);
            std::erase_if(d, [&](std::size_t i) { return eff[i].origin != Origin::kUser; });
            if (!d.empty()) {
              warn("",
                   std::string(to_string(dir)) + " " + std::string(family_label(f)) + " control traffic (" + e.name +
                       ") would be discarded by " + join_names(eff, d),
                   "add a BYPASS policy for it above those policies if storcrypt needs it");
            }
          }
        }
      }
    }
  }
  return rep;
}

CompiledPolicySet compile(const PolicyList& list, const CompileOptions& opt) {
  CompiledPolicySet out;
  const auto eff = effective_policies(list, opt.enforcement);
  std::set<std::pair<XfrmDir, SelectorSpec>> seen;
  for (std::size_t k = 0; k < eff.size(); ++k) {
    const Policy& p = eff[k].policy;
    const XfrmDir dir = p.direction == Direction::kOutbound ? XfrmDir::kOut : XfrmDir::kIn;
    // The control exemptions and the default's catch-alls go below other daemons' policies (see compiler.h).
    const std::uint32_t priority = (eff[k].origin == Origin::kUser ? opt.priority_base : opt.default_priority_base) +
                                   static_cast<std::uint32_t>(k);
    std::optional<TemplateSpec> tmpl;
    if (p.disposition == Disposition::kProtect && p.protection) {
      const Protection& pr = *p.protection;
      const SaEnds ends = sa_ends(p);
      TemplateSpec t;
      t.family = ends.saddr.family;
      t.saddr = ends.saddr;
      t.daddr = ends.daddr;
      t.proto = pr.service == Service::kAh ? proto::kAh : proto::kEsp;
      t.spi = pr.spi;
      t.mode = pr.mode;
      t.reqid = opt.reqid_base + static_cast<std::uint32_t>(eff[k].user_index);
      tmpl = t;
      SaSpec sa;
      sa.family = t.family;
      sa.saddr = t.saddr;
      sa.daddr = t.daddr;
      sa.spi = t.spi;
      sa.proto = t.proto;
      sa.mode = t.mode;
      sa.reqid = t.reqid;
      sa.direction = p.direction;
      sa.source = p.name;
      std::vector<IpAddress> locals;
      if (any_local_transport(p)) {
        // One outbound SA (SAs are keyed by destination, SPI and protocol; its
        // wildcard source matches every local address), one inbound SA per
        // local address of the family (inbound lookup is by destination).
        locals = node_addresses(opt, t.family);
        out.any_local[p.name] = locals;
      }
      if (pr.encryption && algorithm_is_aead(*pr.encryption)) {
        sa.aead = alg_spec(*pr.encryption, pr.encryption_key);
      } else {
        if (pr.integrity) sa.auth = alg_spec(*pr.integrity, pr.integrity_key);
        if (pr.encryption) {
          sa.crypt = alg_spec(*pr.encryption, pr.encryption_key);
        } else if (t.proto == proto::kEsp) {
          sa.crypt = AlgorithmSpec{Algorithm::kAesCbc128, "ecb(cipher_null)", 0, ""};  // ESP integrity only
        }
      }
      if (any_local_transport(p) && p.direction == Direction::kInbound) {
        for (const IpAddress& a : locals) {
          SaSpec each = sa;
          each.daddr = a;
          out.sas.push_back(std::move(each));
        }
      } else {
        out.sas.push_back(std::move(sa));
      }
    }
    const XfrmAction action = p.disposition == Disposition::kDiscard ? XfrmAction::kBlock : XfrmAction::kAllow;
    const auto lm = masks_of(p.selector, true, opt.minimize_port_masks);
    const auto rm = masks_of(p.selector, false, opt.minimize_port_masks);
    const bool icmp = p.selector.protocol && protocol_is_icmp(*p.selector.protocol);
    for (Family f : selector_families(p.selector)) {
      std::vector<Prefix> lps, rps;
      for (const AddressRange& r : p.selector.local.ranges(f)) {
        auto v = range_to_prefixes(r);
        lps.insert(lps.end(), v.begin(), v.end());
      }
      for (const AddressRange& r : p.selector.remote.ranges(f)) {
        auto v = range_to_prefixes(r);
        rps.insert(rps.end(), v.begin(), v.end());
      }
      for (const Prefix& lp : lps) {
        for (const Prefix& rp : rps) {
          for (const PortMask& a : lm) {
            for (const PortMask& b : rm) {
              SelectorSpec s;
              s.family = f;
              s.proto = p.selector.protocol.value_or(0);
              const bool out_dir = dir == XfrmDir::kOut;
              s.saddr = out_dir ? lp.addr : rp.addr;
              s.prefixlen_s = out_dir ? lp.len : rp.len;
              s.daddr = out_dir ? rp.addr : lp.addr;
              s.prefixlen_d = out_dir ? rp.len : lp.len;
              // ICMP: the kernel's flow "source port" is the type and
              // "destination port" the code, in both directions.
              const PortMask& sp = (out_dir || icmp) ? a : b;
              const PortMask& dp = (out_dir || icmp) ? b : a;
              s.sport = sp.value;
              s.sport_mask = sp.mask;
              s.dport = dp.value;
              s.dport_mask = dp.mask;
              if (!seen.insert({dir, s}).second) continue;  // an earlier identical selector always wins
              out.policies.push_back({dir, s, priority, action, tmpl, p.name, eff[k].origin, k});
            }
          }
        }
      }
    }
  }
  return out;
}

Result<CompiledPolicySet> commit(const PolicyList& list, const KeyStore& keys, const CompileOptions& opt) {
  ValidationReport rep = validate(list, keys, opt);
  if (!rep.ok()) {
    return Error(ErrorCode::kInvalidInput, "the policy list cannot be committed:\n" + rep.to_string(),
                 "correct the errors listed and commit again", "xPolicyListInvalid");
  }
  CompiledPolicySet set = compile(list, opt);
  if (auto w = kernel_size_warning(set, opt)) rep.diagnostics.push_back(std::move(*w));
  set.report = std::move(rep);
  return set;
}

}  // namespace storcrypt::policy
