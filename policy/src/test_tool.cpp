#include "storcrypt/policy/test_tool.h"

#include <algorithm>
#include <sstream>

namespace storcrypt::policy {
namespace {

Policy make_bypass(std::string name, Direction d, std::uint8_t p, PortSpec lp, PortSpec rp, AddressSpec remote) {
  Policy pol;
  pol.name = std::move(name);
  pol.direction = d;
  pol.selector.remote = remote;
  pol.selector.protocol = p;
  pol.selector.local_ports = std::move(lp);
  pol.selector.remote_ports = std::move(rp);
  pol.disposition = Disposition::kBypass;
  return pol;
}

AddressSpec all_ipv6() {
  AddressSpec s;
  s.kind = AddressSpec::Kind::kPrefix;
  s.first = IpAddress::any(Family::kIPv6);
  s.last = IpAddress::from_value(Family::kIPv6, family_max(Family::kIPv6));
  s.prefix_len = 0;
  return s;
}

std::uint16_t dim_max(std::uint8_t p) { return protocol_is_icmp(p) ? 255 : 65535; }

}  // namespace

std::vector<ControlExemption> default_control_traffic() {
  return {
      {"IKE", proto::kUdp, PortSpec::of(500, 500), PortSpec::any()},
      {"IKE", proto::kUdp, PortSpec::any(), PortSpec::of(500, 500)},
      {"IKE-NAT-T", proto::kUdp, PortSpec::of(4500, 4500), PortSpec::any()},
      {"IKE-NAT-T", proto::kUdp, PortSpec::any(), PortSpec::of(4500, 4500)},
      {"KMIP", proto::kTcp, PortSpec::any(), PortSpec::of(5696, 5696)},
  };
}

std::vector<EffectivePolicy> effective_policies(const PolicyList& list, const EnforcementOptions& opt) {
  std::vector<EffectivePolicy> out;
  for (std::size_t i = 0; i < list.size(); ++i) {
    // Named address selectors stand for their entries (an undefined one matches nothing).
    Policy p = list.policies()[i];
    p.selector.local = resolve_address(p.selector.local, list.addresses());
    p.selector.remote = resolve_address(p.selector.remote, list.addresses());
    out.push_back({std::move(p), Origin::kUser, i});
  }
  const DefaultDisposition d = opt.default_disposition;
  if (d == DefaultDisposition::kBypass) return out;
  const AddressSpec remote = d == DefaultDisposition::kIPv6Only ? all_ipv6() : AddressSpec::any();
  if (d != DefaultDisposition::kDenyAll) {
    for (const ControlExemption& e : opt.control) {
      for (Direction dir : {Direction::kOutbound, Direction::kInbound}) {
        out.push_back({make_bypass("(control: " + e.name + ")", dir, e.protocol, e.local_ports, e.remote_ports, remote),
                       Origin::kControlExemption, 0});
      }
    }
  }
  for (Direction dir : {Direction::kOutbound, Direction::kInbound}) {
    Policy pol;
    pol.name = "(default: " + std::string(to_string(d)) + ")";
    pol.direction = dir;
    pol.selector.remote = remote;
    pol.disposition = Disposition::kDiscard;
    out.push_back({std::move(pol), Origin::kDefault, 0});
  }
  return out;
}

Decision first_match(const std::vector<EffectivePolicy>& eff, const Packet& pkt) {
  for (std::size_t i = 0; i < eff.size(); ++i) {
    if (matches(eff[i].policy, pkt)) return {eff[i].policy.disposition, eff[i].origin, eff[i].policy.name, i};
  }
  return {Disposition::kBypass, Origin::kDefault, "(no policy: BYPASS)", std::nullopt};
}

Result<std::vector<TestRow>> test_traffic(const PolicyList& list, const EnforcementOptions& opt, const TestQuery& q0) {
  TestQuery q = q0;
  if (q.local.family != q.remote.family) {
    return Error(ErrorCode::kInvalidInput, "local and remote address are of different families",
                 "give two IPv4 or two IPv6 addresses");
  }
  const bool dims = protocol_has_ports(q.protocol) || protocol_is_icmp(q.protocol);
  const std::uint16_t max = dim_max(q.protocol);
  if (!dims) {
    q.local_ports = {0, 0};
    q.remote_ports = {0, 0};
  }
  for (const PortRange* r : {&q.local_ports, &q.remote_ports}) {
    if (r->lo > r->hi || r->hi > max) {
      return Error(ErrorCode::kInvalidInput,
                   protocol_is_icmp(q.protocol) ? "ICMP type/code range must be ascending within 0-255"
                                                : "port range must be ascending within 0-65535",
                   "give FIRST-LAST with FIRST <= LAST");
    }
  }

  STORCRYPT_TRY(list.resolved());  // an undefined address selector is the caller's error, not "no match"
  const auto eff = effective_policies(list, opt);
  struct Cand {
    std::size_t idx;
    std::vector<PortRange> a, b;
  };
  std::vector<Cand> cands;
  Packet probe{q.direction, q.local, q.remote, q.protocol, 0, 0};
  for (std::size_t i = 0; i < eff.size(); ++i) {
    const Policy& p = eff[i].policy;
    Policy no_ports = p;
    no_ports.selector.local_ports = {};
    no_ports.selector.remote_ports = {};
    if (!matches(no_ports, probe)) continue;
    Cand c{i, {PortRange{0, 65535}}, {PortRange{0, 65535}}};
    if (p.selector.protocol && dims) {
      c.a = p.selector.local_ports.effective(max);
      c.b = p.selector.remote_ports.effective(max);
    }
    cands.push_back(std::move(c));
  }

  auto contains = [](const std::vector<PortRange>& rs, std::uint32_t v) {
    return std::any_of(rs.begin(), rs.end(), [v](PortRange r) { return r.contains(v); });
  };
  auto intervals = [](PortRange whole, const std::vector<const std::vector<PortRange>*>& sets) {
    std::vector<std::uint32_t> cuts{whole.lo};
    for (const auto* s : sets) {
      for (PortRange r : *s) {
        if (r.lo > whole.lo && r.lo <= whole.hi) cuts.push_back(r.lo);
        if (static_cast<std::uint32_t>(r.hi) + 1 > whole.lo && r.hi < whole.hi) cuts.push_back(r.hi + 1u);
      }
    }
    std::sort(cuts.begin(), cuts.end());
    cuts.erase(std::unique(cuts.begin(), cuts.end()), cuts.end());
    std::vector<PortRange> out;
    for (std::size_t i = 0; i < cuts.size(); ++i) {
      std::uint32_t hi = i + 1 < cuts.size() ? cuts[i + 1] - 1 : whole.hi;
      out.push_back({static_cast<std::uint16_t>(cuts[i]), static_cast<std::uint16_t>(hi)});
    }
    return out;
  };

  // A row's identity: the matching user policies plus the deciding entry.
  struct Key {
    std::vector<std::size_t> user;
    std::optional<std::size_t> decider;
    bool operator==(const Key&) const = default;
  };
  struct Cell {
    PortRange a, b;
    Key key;
  };
  std::vector<std::vector<Cell>> columns;  // one per local (A) sub-range

  std::vector<const std::vector<PortRange>*> asets;
  for (const Cand& c : cands) asets.push_back(&c.a);
  for (PortRange a : intervals(q.local_ports, asets)) {
    std::vector<const Cand*> in_a;
    std::vector<const std::vector<PortRange>*> bsets;
    for (const Cand& c : cands) {
      if (contains(c.a, a.lo)) {
        in_a.push_back(&c);
        bsets.push_back(&c.b);
      }
    }
    std::vector<Cell> col;
    for (PortRange b : intervals(q.remote_ports, bsets)) {
      Key k;
      for (const Cand* c : in_a) {
        if (!contains(c->b, b.lo)) continue;
        if (!k.decider) k.decider = c->idx;
        if (eff[c->idx].origin == Origin::kUser) k.user.push_back(c->idx);
      }
      if (!col.empty() && col.back().key == k) {
        col.back().b.hi = b.hi;
      } else {
        col.push_back({a, b, std::move(k)});
      }
    }
    auto same_shape = [](const std::vector<Cell>& x, const std::vector<Cell>& y) {
      if (x.size() != y.size()) return false;
      for (std::size_t i = 0; i < x.size(); ++i) {
        if (x[i].b != y[i].b || !(x[i].key == y[i].key)) return false;
      }
      return true;
    };
    if (!columns.empty() && same_shape(columns.back(), col)) {
      for (Cell& c : columns.back()) c.a.hi = a.hi;
    } else {
      columns.push_back(std::move(col));
    }
  }

  std::vector<TestRow> rows;
  for (const auto& col : columns) {
    for (const Cell& c : col) {
      TestRow r;
      r.local_ports = c.a;
      r.remote_ports = c.b;
      if (c.key.decider) {
        const EffectivePolicy& d = eff[*c.key.decider];
        r.disposition = d.policy.disposition;
        r.origin = d.origin;
        r.first_match = d.policy.name;
      } else {
        r.disposition = Disposition::kBypass;
        r.origin = Origin::kDefault;
        r.first_match = "(no policy: BYPASS)";
      }
      for (std::size_t i : c.key.user) {
        const Policy& p = eff[i].policy;
        (p.disposition == Disposition::kBypass    ? r.bypass
         : p.disposition == Disposition::kDiscard ? r.discard
                                                  : r.protect)
            .push_back(p.name);
      }
      if (r.disposition == Disposition::kDiscard) {
        if (q.protocol == proto::kIcmpv6 && r.local_ports.lo <= 137 && r.local_ports.hi >= 133) {
          r.notes.push_back("ICMPv6 neighbour/router discovery (types 133-137) would be discarded: IPv6 breaks");
        } else if (q.protocol == proto::kIcmpv6) {
          r.notes.push_back("ICMPv6 would be discarded: errors and path-MTU discovery fail");
        } else if (q.protocol == proto::kIcmp) {
          r.notes.push_back("ICMP would be discarded: ping, errors and path-MTU discovery fail");
        }
      }
      rows.push_back(std::move(r));
    }
  }
  return rows;
}

std::string format_test_rows(const TestQuery& q, const std::vector<TestRow>& rows) {
  std::ostringstream os;
  const bool icmp = protocol_is_icmp(q.protocol);
  auto range = [](PortRange r) {
    return r.lo == r.hi ? std::to_string(r.lo) : std::to_string(r.lo) + "-" + std::to_string(r.hi);
  };
  auto names = [](const std::vector<std::string>& v) {
    std::string s;
    for (const auto& n : v) s += (s.empty() ? "" : ",") + n;
    return s.empty() ? std::string("-") : s;
  };
  for (const TestRow& r : rows) {
    os << (icmp ? "type " : "local ") << range(r.local_ports) << (icmp ? " code " : " remote ") << range(r.remote_ports)
       << ": " << to_string(r.disposition) << " by " << r.first_match << " | bypass=" << names(r.bypass)
       << " discard=" << names(r.discard) << " protect=" << names(r.protect);
    for (const auto& n : r.notes) os << " | WARNING: " << n;
    os << "\n";
  }
  return os.str();
}

}  // namespace storcrypt::policy
