#include "storcrypt/policy/test_tool.h"

#include <algorithm>
#include <array>
#include <iterator>
#include <mutex>
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

// ---- the test tool's index ----
//
// What it answers: for a flow (direction, protocol, local and remote address,
// local and remote port/type/code) every effective entry that matches, in list
// order; the first of them decides. Brute force asks every entry; the index
// asks only the entries that can contain the flow:
//
//  1. Buckets. An entry can only match its own direction, the address families
//     selector_families() allows, and its protocol (ANY: every protocol). So
//     there is one bucket per (direction, family, protocol named in the list),
//     holding that protocol's entries plus the ANY-protocol ones, and one per
//     (direction, family) for every other protocol (ANY-protocol entries only).
//  2. Inside a bucket each entry is a box in four dimensions: local address,
//     remote address, local port (ICMP: type), remote port (ICMP: code), each a
//     sorted list of disjoint spans (named address selectors give several; an
//     ANY protocol or ANY ports the whole dimension).
//  3. A bucket is a tree of slabs. A split node cuts one dimension of its
//     region into up to kMaxSlabs slabs at quantiles of its entries' span
//     boundaries; each child holds, in list order, the entries that overlap
//     its slab (an entry crossing a boundary is in both). The dimension
//     chosen is the one whose slabs are smallest where the entries are (sum
//     of squared slab sizes / sum of sizes: splitting off empty space does
//     not count), and a node is split only when that is at most kSplitGain of
//     its entries; nodes of <= kLeafMax entries, or with nothing worth
//     splitting, or kMaxDepth deep, are leaves.
//  4. A point query descends one slab per level (a branch-free binary search
//     over the node's cuts) and tests the leaf's entries in list order against
//     the point (a hull record per entry; the spans only for entries with
//     several): the first that contains the flow is the first match, and all
//     of them are the row's matching policies. A wide query (port ranges)
//     visits every slab its ranges overlap and collects the entries it meets;
//     the grid below then works on those only, so its cost follows the
//     entries in the rectangle and the rows, not the list.
//
// Entries are copied into every slab they overlap, so memory depends on how
// the list overlaps; stats() reports it (the policy benchmark prints it with
// the build time). A budget of stored entry references (64 per entry +
// 65,536) turns further splits into leaves: answers stay exact, only slower.

namespace {

constexpr int kDims = 4;  // local address, remote address, local port/type, remote port/code
constexpr std::size_t kLeafMax = 4;
constexpr std::size_t kMaxSlabs = 64;
constexpr int kMaxDepth = 12;
constexpr double kSplitGain = 0.75;
constexpr std::uint8_t kLeaf = 0xff;

struct Span {
  U128 lo = 0, hi = 0;
};

/// One effective entry within one family: its spans per dimension.
struct Shape {
  std::uint32_t eff = 0;
  std::uint32_t off[kDims + 1] = {};  // spans[off[d], off[d + 1]) for dimension d
};

/// A shape's hull per dimension, in one cache-friendly record: the leaf scan
/// reads only this, and the spans only for entries with several spans.
/// The fields checked first (remote address and ports) share a cache line.
struct Hull {
  U128 ra = 0, rb = 0;  // remote address
  std::uint16_t rpa = 0, rpb = 0, lpa = 0, lpb = 0;
  U128 la = 0, lb = 0;  // local address
  bool exact = true;    // one span per dimension: the hull is the shape
};

struct Node {
  std::uint8_t dim = kLeaf;  // split dimension, or kLeaf
  bool wide = false;         // split: cuts in cuts128 (some cut needs more than 64 bits), else in cuts64
  std::uint32_t first = 0;   // leaf: into ids; split: into cuts64/cuts128
  std::uint32_t count = 0;
  std::uint32_t child = 0;  // split: into children (count of them)
};

using Point = std::array<U128, kDims>;
using Box = std::array<Span, kDims>;

int family_slot(Family f) { return f == Family::kIPv4 ? 0 : 1; }

}  // namespace

struct TestIndex::Impl {
  EnforcementOptions opt;
  std::vector<EffectivePolicy> eff;
  std::optional<Error> unresolved;  // an undefined address selector: every test() fails with it
  std::vector<Span> spans;
  std::vector<Shape> shapes;
  std::vector<Hull> hulls;  // parallel to shapes
  std::vector<Node> nodes;
  // Split nodes: slab starts (the first is the node's region start). Ports
  // and IPv4 addresses fit 64 bits: half the bytes for the searches to touch.
  std::vector<std::uint64_t> cuts64;
  std::vector<U128> cuts128;
  std::vector<std::uint32_t> children;
  std::vector<std::uint32_t> ids;      // leaves: shape indices, ascending (= list order)
  std::uint32_t root[2][2][256] = {};  // [direction][family][protocol] -> node
  std::size_t budget = 0;              // remaining entry references splits may store
  std::size_t max_leaf = 0;
  int max_depth = 0;

  bool covers(const Shape& sh, int d, U128 v) const {
    for (std::uint32_t k = sh.off[d]; k < sh.off[d + 1]; ++k)
      if (v >= spans[k].lo && v <= spans[k].hi) return true;
    return false;
  }
  bool overlaps(const Shape& sh, int d, Span r) const {
    for (std::uint32_t k = sh.off[d]; k < sh.off[d + 1]; ++k)
      if (spans[k].lo <= r.hi && r.lo <= spans[k].hi) return true;
    return false;
  }
  // Does the entry at leaf position k contain p?
  bool contains(std::uint32_t k, const Point& p) const {
    const std::uint32_t id = ids[k];
    const Hull& h = hulls[id];
    if (p[1] < h.ra || p[1] > h.rb || p[3] < h.rpa || p[3] > h.rpb || p[2] < h.lpa || p[2] > h.lpb || p[0] < h.la ||
        p[0] > h.lb)
      return false;
    if (h.exact) return true;
    const Shape& sh = shapes[id];
    for (int d = 0; d < kDims; ++d)
      if (!covers(sh, d, p[d])) return false;
    return true;
  }
  bool intersects(const Shape& sh, const Box& b) const {
    for (int d = 0; d < kDims; ++d)
      if (!overlaps(sh, d, b[d])) return false;
    return true;
  }

  // Segment of node `nd` holding value v.
  // (the last cut <= v; the first cut is the node's region start, <= v).
  // Branch-free: the comparisons of a random flow do not predict.
  template <typename T>
  static std::uint32_t last_at_most(const T* b, std::uint32_t len, T v) {
    std::uint32_t lo = 0;
    while (len > 1) {
      const std::uint32_t half = len / 2;
      lo = b[lo + half] <= v ? lo + half : lo;
      len -= half;
    }
    return lo;
  }
  std::uint32_t segment(const Node& nd, U128 v) const {
    if (nd.wide) return last_at_most<U128>(cuts128.data() + nd.first, nd.count, v);
    // every cut is < 2^64, so a larger v compares like 2^64 - 1
    const std::uint64_t v64 = (v >> 64) != 0 ? ~std::uint64_t{0} : static_cast<std::uint64_t>(v);
    return last_at_most<std::uint64_t>(cuts64.data() + nd.first, nd.count, v64);
  }
  U128 region_start(const Node& nd) const { return nd.wide ? cuts128[nd.first] : U128{cuts64[nd.first]}; }

  std::optional<std::uint32_t> empty_leaf;  // shared by every empty segment

  std::uint32_t leaf(const std::vector<std::uint32_t>& list) {
    if (list.empty() && empty_leaf) return *empty_leaf;
    Node n{kLeaf, false, static_cast<std::uint32_t>(ids.size()), static_cast<std::uint32_t>(list.size()), 0};
    ids.insert(ids.end(), list.begin(), list.end());
    max_leaf = std::max(max_leaf, list.size());
    nodes.push_back(n);
    if (list.empty()) empty_leaf = static_cast<std::uint32_t>(nodes.size() - 1);
    return static_cast<std::uint32_t>(nodes.size() - 1);
  }

  // Split `list` (entries meeting `region`) into slabs of one dimension, or
  // make it a leaf. Slab boundaries are quantiles of the entries' span
  // boundaries inside the region; an entry goes to every slab it overlaps.
  std::uint32_t build(const std::vector<std::uint32_t>& list, const Box& region, int depth) {
    max_depth = std::max(max_depth, depth);
    if (list.size() <= kLeafMax || depth >= kMaxDepth) return leaf(list);
    const std::size_t want = std::clamp<std::size_t>(list.size() / 2, 2, kMaxSlabs);
    int best = -1;
    std::vector<U128> best_cuts;
    std::size_t best_total = 0;
    double best_cost = 0;
    for (int d = 0; d < kDims; ++d) {
      const Span r = region[d];
      std::vector<U128> pts;
      for (std::uint32_t id : list) {
        const Shape& sh = shapes[id];
        for (std::uint32_t k = sh.off[d]; k < sh.off[d + 1]; ++k) {
          if (spans[k].lo > r.lo && spans[k].lo <= r.hi) pts.push_back(spans[k].lo);
          if (spans[k].hi >= r.lo && spans[k].hi < r.hi) pts.push_back(spans[k].hi + 1);
        }
      }
      if (pts.empty()) continue;
      std::sort(pts.begin(), pts.end());
      pts.erase(std::unique(pts.begin(), pts.end()), pts.end());
      std::vector<U128> c{r.lo};  // slab starts
      const std::size_t slabs = std::min(want, pts.size() + 1);
      for (std::size_t j = 1; j < slabs; ++j) {
        const U128 v = pts[j * pts.size() / slabs];
        if (v != c.back()) c.push_back(v);
      }
      // Cost: the expected size of the slab a query lands in when queries
      // fall where the entries are (sum of squared slab sizes / sum of sizes);
      // an unweighted mean would favour splitting off empty space.
      std::vector<std::int64_t> diff(c.size() + 1, 0);
      for (std::uint32_t id : list) {
        const Shape& sh = shapes[id];
        for (std::uint32_t k = sh.off[d]; k < sh.off[d + 1]; ++k) {
          if (spans[k].hi < r.lo || spans[k].lo > r.hi) continue;
          diff[static_cast<std::size_t>(std::upper_bound(c.begin(), c.end(), std::max(spans[k].lo, r.lo)) - c.begin() -
                                        1)]++;
          diff[static_cast<std::size_t>(std::upper_bound(c.begin(), c.end(), std::min(spans[k].hi, r.hi)) -
                                        c.begin())]--;
        }
      }
      double total = 0, squares = 0;
      std::int64_t run = 0;
      for (std::size_t j = 0; j < c.size(); ++j) {
        run += diff[j];
        total += static_cast<double>(run);
        squares += static_cast<double>(run) * static_cast<double>(run);
      }
      const double cost = total > 0 ? squares / total : 0;
      if (best < 0 || cost < best_cost) {
        best = d;
        best_cuts = std::move(c);
        best_cost = cost;
        best_total = static_cast<std::size_t>(total);
      }
    }
    // Split only when that slab holds at most 3/4 of the entries.
    if (best < 0 || best_cost > kSplitGain * static_cast<double>(list.size()) || best_total > budget) return leaf(list);
    budget -= best_total;
    const int d = best;
    const Span r = region[d];
    std::vector<std::vector<std::uint32_t>> seg(best_cuts.size());
    for (std::uint32_t id : list) {
      const Shape& sh = shapes[id];
      std::size_t last = SIZE_MAX;  // an entry's spans are ascending: never the same slab twice in a row
      for (std::uint32_t k = sh.off[d]; k < sh.off[d + 1]; ++k) {
        if (spans[k].hi < r.lo || spans[k].lo > r.hi) continue;
        auto lo = static_cast<std::size_t>(
            std::upper_bound(best_cuts.begin(), best_cuts.end(), std::max(spans[k].lo, r.lo)) - best_cuts.begin() - 1);
        auto hi = static_cast<std::size_t>(
            std::upper_bound(best_cuts.begin(), best_cuts.end(), std::min(spans[k].hi, r.hi)) - best_cuts.begin());
        for (std::size_t s = lo; s < hi; ++s) {
          if (s == last) continue;
          seg[s].push_back(id);
          last = s;
        }
      }
    }
    const auto self = static_cast<std::uint32_t>(nodes.size());
    const bool wide = (best_cuts.back() >> 64) != 0;
    nodes.push_back({static_cast<std::uint8_t>(d), wide,
                     static_cast<std::uint32_t>(wide ? cuts128.size() : cuts64.size()),
                     static_cast<std::uint32_t>(best_cuts.size()), static_cast<std::uint32_t>(children.size())});
    if (wide) {
      cuts128.insert(cuts128.end(), best_cuts.begin(), best_cuts.end());
    } else {
      for (U128 c : best_cuts) cuts64.push_back(static_cast<std::uint64_t>(c));
    }
    children.resize(children.size() + best_cuts.size());
    for (std::size_t s = 0; s < seg.size(); ++s) {
      Box sub = region;
      sub[d].lo = best_cuts[s];
      sub[d].hi = s + 1 < best_cuts.size() ? best_cuts[s + 1] - 1 : r.hi;
      const std::uint32_t child = build(seg[s], sub, depth + 1);
      children[nodes[self].child + s] = child;
      std::vector<std::uint32_t>().swap(seg[s]);
    }
    return self;
  }

  // Every shape in the subtree of `n` intersecting `b` (unsorted, may repeat).
  void collect(std::uint32_t n, const Box& b, std::vector<std::uint32_t>& out) const {
    const Node& nd = nodes[n];
    if (nd.dim == kLeaf) {
      for (std::uint32_t k = nd.first; k < nd.first + nd.count; ++k)
        if (intersects(shapes[ids[k]], b)) out.push_back(ids[k]);
      return;
    }
    // b may reach past this node's region (cuts[nd.first] is its start): clamp.
    const std::uint32_t lo = segment(nd, std::max(b[nd.dim].lo, region_start(nd)));
    const std::uint32_t hi = segment(nd, std::max(b[nd.dim].hi, region_start(nd)));
    for (std::uint32_t s = lo; s <= hi; ++s) collect(children[nd.child + s], b, out);
  }

  // The leaf holding point p, or null when the flow's bucket is empty.
  const Node* leaf_of(const Packet& pkt, const Point& p) const {
    if (pkt.local.family != pkt.remote.family) return nullptr;
    std::uint32_t n = root[pkt.direction == Direction::kOutbound ? 1 : 0][family_slot(pkt.local.family)][pkt.protocol];
    while (nodes[n].dim != kLeaf) n = children[nodes[n].child + segment(nodes[n], p[nodes[n].dim])];
    return &nodes[n];
  }
};

namespace {
U128 value_of(const IpAddress& a) {  // IpAddress::value(), inline
  U128 v = 0;
  const int n = a.family == Family::kIPv4 ? 4 : 16;
  for (int i = 0; i < n; ++i) v = (v << 8) | a.bytes[static_cast<std::size_t>(i)];
  return v;
}
Point point_of(const Packet& pkt) {
  return {value_of(pkt.local), value_of(pkt.remote), pkt.local_port, pkt.remote_port};
}
}  // namespace

TestIndex::TestIndex(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
TestIndex::~TestIndex() = default;

std::shared_ptr<const TestIndex> TestIndex::build(const PolicyList& list, const EnforcementOptions& opt) {
  auto m = std::make_unique<Impl>();
  m->opt = opt;
  if (auto u = list.undefined_addresses(); !u.empty()) {
    auto r = list.resolved();
    if (!r.ok()) m->unresolved = r.error();
  }
  m->eff = effective_policies(list, opt);
  // Shapes per (direction, family), in list order.
  std::vector<std::uint32_t> by[2][2];
  for (std::size_t i = 0; i < m->eff.size(); ++i) {
    const Selector& s = m->eff[i].policy.selector;
    const int dir = m->eff[i].policy.direction == Direction::kOutbound ? 1 : 0;
    for (Family f : selector_families(s)) {
      const auto local = s.local.ranges(f), remote = s.remote.ranges(f);
      if (local.empty() || remote.empty()) continue;
      Shape sh;
      sh.eff = static_cast<std::uint32_t>(i);
      auto push_ports = [&](const PortSpec& ps) {
        if (!s.protocol || ps.ranges.empty()) {
          m->spans.push_back({0, 65535});
        } else {
          for (PortRange r : ps.ranges) m->spans.push_back({r.lo, r.hi});
        }
      };
      sh.off[0] = static_cast<std::uint32_t>(m->spans.size());
      for (const AddressRange& r : local) m->spans.push_back({r.lo, r.hi});
      sh.off[1] = static_cast<std::uint32_t>(m->spans.size());
      for (const AddressRange& r : remote) m->spans.push_back({r.lo, r.hi});
      sh.off[2] = static_cast<std::uint32_t>(m->spans.size());
      push_ports(s.local_ports);
      sh.off[3] = static_cast<std::uint32_t>(m->spans.size());
      push_ports(s.remote_ports);
      sh.off[4] = static_cast<std::uint32_t>(m->spans.size());
      by[dir][family_slot(f)].push_back(static_cast<std::uint32_t>(m->shapes.size()));
      m->shapes.push_back(sh);
      Hull h;
      const auto& sp = m->spans;
      h.la = sp[sh.off[0]].lo;
      h.lb = sp[sh.off[1] - 1].hi;
      h.ra = sp[sh.off[1]].lo;
      h.rb = sp[sh.off[2] - 1].hi;
      h.lpa = static_cast<std::uint16_t>(sp[sh.off[2]].lo);
      h.lpb = static_cast<std::uint16_t>(sp[sh.off[3] - 1].hi);
      h.rpa = static_cast<std::uint16_t>(sp[sh.off[3]].lo);
      h.rpb = static_cast<std::uint16_t>(sp[sh.off[4] - 1].hi);
      for (int d = 0; d < kDims; ++d) h.exact = h.exact && sh.off[d + 1] - sh.off[d] == 1;
      m->hulls.push_back(h);
    }
  }
  m->budget = 64 * m->shapes.size() + (1u << 16);
  for (int dir = 0; dir < 2; ++dir) {
    for (int fam = 0; fam < 2; ++fam) {
      std::vector<std::uint32_t> any_proto;
      std::vector<std::uint32_t> per_proto[256];
      for (std::uint32_t id : by[dir][fam]) {
        const auto& p = m->eff[m->shapes[id].eff].policy.selector.protocol;
        (p ? per_proto[*p] : any_proto).push_back(id);
      }
      const Box all{Span{0, family_max(fam ? Family::kIPv6 : Family::kIPv4)},
                    Span{0, family_max(fam ? Family::kIPv6 : Family::kIPv4)}, Span{0, 65535}, Span{0, 65535}};
      const std::uint32_t other = m->build(any_proto, all, 0);
      for (int p = 0; p < 256; ++p) {
        if (per_proto[p].empty()) {
          m->root[dir][fam][p] = other;
          continue;
        }
        std::vector<std::uint32_t> merged;
        std::merge(any_proto.begin(), any_proto.end(), per_proto[p].begin(), per_proto[p].end(),
                   std::back_inserter(merged));
        m->root[dir][fam][p] = m->build(merged, all, 0);
      }
    }
  }
  return std::shared_ptr<const TestIndex>(new TestIndex(std::move(m)));
}

const EnforcementOptions& TestIndex::options() const { return impl_->opt; }
const std::vector<EffectivePolicy>& TestIndex::effective() const { return impl_->eff; }

Decision TestIndex::first_match(const Packet& pkt) const {
  const Impl& m = *impl_;
  const Point p = point_of(pkt);
  if (const Node* leaf = m.leaf_of(pkt, p)) {
    for (std::uint32_t k = leaf->first; k < leaf->first + leaf->count; ++k) {
      if (!m.contains(k, p)) continue;
      const std::uint32_t i = m.shapes[m.ids[k]].eff;
      const EffectivePolicy& e = m.eff[i];
      return {e.policy.disposition, e.origin, e.policy.name, i};
    }
  }
  return {Disposition::kBypass, Origin::kDefault, "(no policy: BYPASS)", std::nullopt};
}

std::vector<std::size_t> TestIndex::all_matches(const Packet& pkt) const {
  const Impl& m = *impl_;
  const Point p = point_of(pkt);
  std::vector<std::size_t> out;
  if (const Node* leaf = m.leaf_of(pkt, p)) {
    for (std::uint32_t k = leaf->first; k < leaf->first + leaf->count; ++k) {
      if (m.contains(k, p)) out.push_back(m.shapes[m.ids[k]].eff);
    }
  }
  return out;
}

TestIndex::Stats TestIndex::stats() const {
  const Impl& m = *impl_;
  Stats s;
  s.entries = m.shapes.size();
  s.nodes = m.nodes.size();
  s.stored_ids = m.ids.size();
  s.max_leaf = m.max_leaf;
  s.depth = static_cast<std::size_t>(m.max_depth);
  s.bytes = m.spans.capacity() * sizeof(Span) + m.shapes.capacity() * sizeof(Shape) +
            m.hulls.capacity() * sizeof(Hull) + m.nodes.capacity() * sizeof(Node) +
            m.cuts64.capacity() * sizeof(std::uint64_t) + m.cuts128.capacity() * sizeof(U128) +
            m.children.capacity() * sizeof(std::uint32_t) + m.ids.capacity() * sizeof(std::uint32_t) + sizeof(Impl);
  return s;
}

namespace {

void add_notes(const TestQuery& q, TestRow& r) {
  if (r.disposition != Disposition::kDiscard) return;
  if (q.protocol == proto::kIcmpv6 && r.local_ports.lo <= 137 && r.local_ports.hi >= 133) {
    r.notes.push_back("ICMPv6 neighbour/router discovery (types 133-137) would be discarded: IPv6 breaks");
  } else if (q.protocol == proto::kIcmpv6) {
    r.notes.push_back("ICMPv6 would be discarded: errors and path-MTU discovery fail");
  } else if (q.protocol == proto::kIcmp) {
    r.notes.push_back("ICMP would be discarded: ping, errors and path-MTU discovery fail");
  }
}

// A row from its deciding entry and the matching user entries.
TestRow make_row(const TestQuery& q, const std::vector<EffectivePolicy>& eff, PortRange a, PortRange b,
                 std::optional<std::size_t> decider, const std::vector<std::size_t>& user) {
  TestRow r;
  r.local_ports = a;
  r.remote_ports = b;
  if (decider) {
    const EffectivePolicy& d = eff[*decider];
    r.disposition = d.policy.disposition;
    r.origin = d.origin;
    r.first_match = d.policy.name;
  } else {
    r.disposition = Disposition::kBypass;
    r.origin = Origin::kDefault;
    r.first_match = "(no policy: BYPASS)";
  }
  for (std::size_t i : user) {
    const Policy& p = eff[i].policy;
    (p.disposition == Disposition::kBypass    ? r.bypass
     : p.disposition == Disposition::kDiscard ? r.discard
                                              : r.protect)
        .push_back(p.name);
  }
  add_notes(q, r);
  return r;
}

}  // namespace

Result<std::vector<TestRow>> TestIndex::test(const TestQuery& q0) const {
  const Impl& m = *impl_;
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
  if (m.unresolved) return *m.unresolved;  // an undefined address selector is the caller's error, not "no match"
  const auto& eff = m.eff;

  // One flow: one row, straight from the leaf that holds it.
  if (q.local_ports.lo == q.local_ports.hi && q.remote_ports.lo == q.remote_ports.hi) {
    const Packet pkt{q.direction, q.local, q.remote, q.protocol, q.local_ports.lo, q.remote_ports.lo};
    const Point p = point_of(pkt);
    std::optional<std::size_t> decider;
    std::vector<std::size_t> user;
    if (const Node* leaf = m.leaf_of(pkt, p)) {
      for (std::uint32_t k = leaf->first; k < leaf->first + leaf->count; ++k) {
        if (!m.contains(k, p)) continue;
        const std::uint32_t i = m.shapes[m.ids[k]].eff;
        if (!decider) decider = i;
        if (eff[i].origin == Origin::kUser) user.push_back(i);
      }
    }
    std::vector<TestRow> rows;
    rows.push_back(make_row(q, eff, q.local_ports, q.remote_ports, decider, user));
    return rows;
  }

  // A wide query: the entries the index meets inside the queried rectangle,
  // then the grid of their port boundaries.
  struct Cand {
    std::size_t idx;
    std::vector<PortRange> a, b;
  };
  std::vector<Cand> cands;
  {
    std::vector<std::uint32_t> found;
    const Packet pkt{q.direction, q.local, q.remote, q.protocol, 0, 0};
    const Point p = point_of(pkt);
    const Box box{Span{p[0], p[0]}, Span{p[1], p[1]}, Span{q.local_ports.lo, q.local_ports.hi},
                  Span{q.remote_ports.lo, q.remote_ports.hi}};
    m.collect(m.root[q.direction == Direction::kOutbound ? 1 : 0][family_slot(q.local.family)][q.protocol], box, found);
    std::sort(found.begin(), found.end());
    found.erase(std::unique(found.begin(), found.end()), found.end());
    for (std::uint32_t id : found) {
      const std::size_t i = m.shapes[id].eff;
      const Policy& pol = eff[i].policy;
      Cand c{i, {PortRange{0, 65535}}, {PortRange{0, 65535}}};
      if (pol.selector.protocol && dims) {
        c.a = pol.selector.local_ports.effective(max);
        c.b = pol.selector.remote_ports.effective(max);
      }
      cands.push_back(std::move(c));
    }
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
      rows.push_back(make_row(q, eff, c.a, c.b, c.key.decider, c.key.user));
    }
  }
  return rows;
}

Result<std::vector<TestRow>> test_traffic(const PolicyList& list, const EnforcementOptions& opt, const TestQuery& q) {
  TestIndexSlot* slot = list.test_index_slot();
  if (!slot) return TestIndex::build(list, opt)->test(q);
  std::shared_ptr<const TestIndex> index;
  {
    std::lock_guard<std::mutex> lock(slot->mu);
    if (!slot->index || !(slot->index->options() == opt)) slot->index = TestIndex::build(list, opt);
    index = slot->index;
  }
  return index->test(q);
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
