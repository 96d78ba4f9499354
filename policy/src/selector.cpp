#include "storcrypt/policy/selector.h"

#include <arpa/inet.h>

#include <algorithm>
#include <bit>
#include <charconv>
#include <set>
#include <tuple>

namespace storcrypt::policy {
namespace {

U128 low_mask(int k) { return k >= 128 ? ~U128{0} : ((U128{1} << k) - 1); }

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() &&
         std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) { return (x | 0x20) == (y | 0x20); });
}

// Decompose [lo, hi] of a `bits`-wide space into aligned power-of-two blocks;
// emit(start, k) gets blocks of 2^k values.
template <typename Emit>
void decompose(U128 lo, U128 hi, int bits, Emit emit) {
  const U128 max = low_mask(bits);
  if (lo > hi || hi > max) return;
  for (;;) {
    int k = 0;
    while (k < bits && (lo & low_mask(k + 1)) == 0 && hi - lo >= low_mask(k + 1)) ++k;
    emit(lo, k);
    const U128 end = lo + low_mask(k);
    if (end >= hi) break;
    lo = end + 1;
  }
}

Result<std::uint32_t> parse_number(std::string_view s, std::uint32_t max, std::string_view field) {
  s = trim(s);
  std::uint32_t v = 0;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (s.empty() || ec != std::errc{} || p != s.data() + s.size() || v > max) {
    return Error(ErrorCode::kInvalidInput,
                 std::string(field) + ": '" + std::string(s) + "' is not a number from 0 to " + std::to_string(max),
                 "give a decimal number, a range such as 5000-5001, a comma-separated list, or ANY");
  }
  return v;
}

}  // namespace

std::string_view family_label(Family f) { return f == Family::kIPv4 ? "IPv4" : "IPv6"; }

std::vector<Prefix> range_to_prefixes(const AddressRange& r) {
  if (r.hi > family_max(r.family)) return {};
  return prefixes_covering(IpAddress::from_value(r.family, r.lo), IpAddress::from_value(r.family, r.hi));
}

std::vector<PortMask> port_range_to_masks(PortRange r) {
  std::vector<PortMask> out;
  decompose(r.lo, r.hi, 16, [&](U128 start, int k) {
    out.push_back({static_cast<std::uint16_t>(start), static_cast<std::uint16_t>(~low_mask(k) & 0xffff)});
  });
  return out;
}

namespace {

unsigned free_bits(std::uint16_t mask) { return static_cast<unsigned>(std::popcount(static_cast<unsigned>(~mask & 0xffffu))); }

// Values v in [0, x] with ((v ^ t.value) & t.mask) == 0.
std::uint32_t count_le(std::uint32_t x, PortMask t) {
  std::uint32_t n = 0;
  for (int b = 15; b >= 0; --b) {
    const std::uint32_t bit = 1u << b;
    const bool fixed = (t.mask & bit) != 0, one = (t.value & bit) != 0;
    // Values agreeing with x above b: those with a 0 at b (when allowed) are below x.
    if (x & bit) {
      if (!fixed || !one) n += 1u << free_bits(static_cast<std::uint16_t>(t.mask | ~(bit - 1)));
      if (fixed && !one) return n;
    } else if (fixed && one) {
      return n;
    }
  }
  return n + 1;  // x itself
}

// Every value the pair matches lies in the (sorted, disjoint) ranges.
bool inside(PortMask t, const std::vector<PortRange>& rs) {
  std::uint32_t n = 0;
  for (PortRange r : rs) n += count_le(r.hi, t) - (r.lo ? count_le(r.lo - 1u, t) : 0);
  return n == (1u << free_bits(t.mask));
}

bool mask_contains(PortMask outer, PortMask inner) {
  return (outer.mask & ~inner.mask) == 0 && ((outer.value ^ inner.value) & outer.mask) == 0;
}

bool mask_overlaps(PortMask a, PortMask b) { return ((a.value ^ b.value) & a.mask & b.mask) == 0; }

// Every value `t` matches is matched by some pair of `by`.
bool covered(PortMask t, const std::vector<PortMask>& by) {
  std::vector<PortMask> hit;
  for (PortMask u : by) {
    if (mask_contains(u, t)) return true;
    if (mask_overlaps(u, t)) hit.push_back(u);
  }
  for (PortMask u : hit) {
    // u overlaps t without containing it, so it fixes a bit t leaves free: split t there.
    const auto split = static_cast<std::uint16_t>(u.mask & ~t.mask);
    const auto bit = static_cast<std::uint16_t>(split & (~split + 1));
    const auto m = static_cast<std::uint16_t>(t.mask | bit);
    return covered({static_cast<std::uint16_t>(t.value & ~bit), m}, hit) &&
           covered({static_cast<std::uint16_t>(t.value | bit), m}, hit);
  }
  return false;
}

// The maximal pairs inside `rs` reachable from `t` by freeing mask bits (at
// most about `budget` pairs visited; the low-first and high-first greedy
// widenings are always among them).
void primes_from(PortMask t, const std::vector<PortRange>& rs, std::size_t budget, std::set<std::pair<std::uint16_t, std::uint16_t>>& seen,
                 std::vector<PortMask>& out) {
  for (bool high_first : {false, true}) {
    PortMask w = t;
    for (int i = 0; i < 16; ++i) {
      const auto bit = static_cast<std::uint16_t>(1u << (high_first ? 15 - i : i));
      const PortMask x{static_cast<std::uint16_t>(w.value & ~bit), static_cast<std::uint16_t>(w.mask & ~bit)};
      if ((w.mask & bit) && inside(x, rs)) w = x;
    }
    if (seen.insert({w.value, w.mask}).second) out.push_back(w);
  }
  std::set<std::pair<std::uint16_t, std::uint16_t>> visited;
  std::vector<PortMask> stack{t};
  while (!stack.empty() && visited.size() < budget) {
    const PortMask cur = stack.back();
    stack.pop_back();
    if (!visited.insert({cur.value, cur.mask}).second) continue;
    bool maximal = true;
    for (int b = 0; b < 16; ++b) {
      const auto bit = static_cast<std::uint16_t>(1u << b);
      if (!(cur.mask & bit)) continue;
      const PortMask x{static_cast<std::uint16_t>(cur.value & ~bit), static_cast<std::uint16_t>(cur.mask & ~bit)};
      if (!inside(x, rs)) continue;
      maximal = false;
      stack.push_back(x);
    }
    if (maximal && seen.insert({cur.value, cur.mask}).second) out.push_back(cur);
  }
}

// Bitset of the values in [base, base + 64 * words) a pair matches.
std::vector<std::uint64_t> bits_of(PortMask t, std::uint32_t base, std::size_t words) {
  std::vector<std::uint64_t> out(words);
  const auto free = static_cast<std::uint32_t>(~t.mask & 0xffffu);
  for (std::uint32_t sub = 0;; sub = (sub - free) & free) {
    const std::uint32_t v = (t.value | sub) - base;
    if (v < words * 64) out[v / 64] |= std::uint64_t{1} << (v % 64);
    if (sub == free) break;
  }
  return out;
}

// Greedy set cover of the set's values by the candidate pairs (in `order`
// on ties), then drop pairs the others cover.
std::vector<PortMask> greedy_cover(const std::vector<PortMask>& cand, const std::vector<std::vector<std::uint64_t>>& bits,
                                   std::vector<std::uint64_t> uncovered, std::size_t first) {
  std::vector<PortMask> out{cand[first]};
  for (std::size_t w = 0; w < uncovered.size(); ++w) uncovered[w] &= ~bits[first][w];
  for (;;) {
    std::size_t best = cand.size(), best_gain = 0;
    for (std::size_t i = 0; i < cand.size(); ++i) {
      std::size_t gain = 0;
      for (std::size_t w = 0; w < uncovered.size(); ++w) gain += static_cast<std::size_t>(std::popcount(bits[i][w] & uncovered[w]));
      if (gain > best_gain) best = i, best_gain = gain;
    }
    if (best == cand.size()) break;  // all covered
    out.push_back(cand[best]);
    for (std::size_t w = 0; w < uncovered.size(); ++w) uncovered[w] &= ~bits[best][w];
  }
  for (std::size_t i = out.size(); i-- > 0;) {
    std::vector<PortMask> others = out;
    others.erase(others.begin() + static_cast<std::ptrdiff_t>(i));
    if (covered(out[i], others)) out = std::move(others);
  }
  return out;
}

}  // namespace

std::vector<PortMask> ports_to_masks(std::vector<PortRange> ranges) {
  PortSpec merged{std::move(ranges)};
  merged.normalize();
  const auto& rs = merged.ranges;
  std::vector<PortMask> prefixes;
  for (PortRange r : rs) {
    auto m = port_range_to_masks(r);
    prefixes.insert(prefixes.end(), m.begin(), m.end());
  }
  std::vector<PortMask> best = prefixes;
  // One range [lo, hi]: below the highest bit where lo and hi differ, the
  // halves are "at least lo'" and "at most hi'". When lo' > hi' no pair can
  // straddle that bit (its lower bits would lie in both), and each half is a
  // threshold, whose prefix cover is the fewest: nothing to search for.
  bool search = prefixes.size() > 2 || rs.size() > 1;
  if (search && rs.size() == 1) {
    const std::uint32_t lo = rs[0].lo, hi = rs[0].hi;
    const std::uint32_t below = (std::bit_floor(lo ^ hi)) - 1;
    search = (lo & below) <= (hi & below);
  }
  if (search) {
    // Candidates: maximal pairs inside the set grown from each prefix; then a
    // greedy cover of the set's values (a bitset over its span), in two tie orders.
    std::set<std::pair<std::uint16_t, std::uint16_t>> seen;
    std::vector<PortMask> cand;
    for (PortMask t : prefixes) primes_from(t, rs, 32, seen, cand);
    const std::uint32_t base = rs.front().lo & ~63u;
    const std::size_t words = (static_cast<std::size_t>(rs.back().hi) - base) / 64 + 1;
    std::vector<std::uint64_t> all(words);
    for (PortMask t : prefixes) {
      const auto b = bits_of(t, base, words);
      for (std::size_t w = 0; w < words; ++w) all[w] |= b[w];
    }
    for (bool widest_first : {true, false}) {
      std::sort(cand.begin(), cand.end(), [&](PortMask a, PortMask b) {
        return widest_first ? std::tuple(free_bits(b.mask), a.value, a.mask) < std::tuple(free_bits(a.mask), b.value, b.mask)
                            : std::pair(a.value, a.mask) < std::pair(b.value, b.mask);
      });
      std::vector<std::vector<std::uint64_t>> bits;
      bits.reserve(cand.size());
      for (PortMask c : cand) bits.push_back(bits_of(c, base, words));
      // Greedy from each of the first few candidates (ties decide a lot: 1-6).
      for (std::size_t first = 0; first < std::min<std::size_t>(cand.size(), widest_first ? 3 : 1); ++first) {
        auto t = greedy_cover(cand, bits, all, first);
        if (t.size() < best.size()) best = std::move(t);
      }
    }
  }
  std::sort(best.begin(), best.end(),
            [](PortMask a, PortMask b) { return std::pair(a.value, a.mask) < std::pair(b.value, b.mask); });
  return best;
}

Result<AddressSpec> AddressSpec::parse(std::string_view text) {
  std::string_view s = trim(text);
  if (iequals(s, "ANY") || s == "*") return AddressSpec::any();
  if (valid_address_name(s)) return AddressSpec::named(std::string(s));
  if (auto dash = s.find('-'); dash != std::string_view::npos) {
    STORCRYPT_ASSIGN_OR_RETURN(IpAddress a, IpAddress::parse(trim(s.substr(0, dash)), ""));
    STORCRYPT_ASSIGN_OR_RETURN(IpAddress b, IpAddress::parse(trim(s.substr(dash + 1)), ""));
    if (a.family != b.family || a.value() > b.value()) {
      return Error(ErrorCode::kInvalidInput,
                   "address range '" + std::string(s) + "' must go from a lower to a higher address of one family",
                   "write the range as FIRST-LAST, e.g. 192.0.2.10-192.0.2.20");
    }
    if (a.value() == b.value()) return AddressSpec::single(a);
    return AddressSpec{Kind::kRange, a, b, 0};
  }
  if (auto slash = s.find('/'); slash != std::string_view::npos) {
    STORCRYPT_ASSIGN_OR_RETURN(IpAddress a, IpAddress::parse(trim(s.substr(0, slash)), ""));
    const int bits = family_bits(a.family);
    STORCRYPT_ASSIGN_OR_RETURN(std::uint32_t len, parse_number(s.substr(slash + 1), bits, "prefix length"));
    const U128 host = low_mask(bits - static_cast<int>(len));
    if ((a.value() & host) != 0) {
      return Error(ErrorCode::kInvalidInput, "prefix '" + std::string(s) + "' has host bits set",
                   "use the network address, e.g. " + IpAddress::from_value(a.family, a.value() & ~host).to_string() + "/" +
                       std::to_string(len));
    }
    if (static_cast<int>(len) == bits) return AddressSpec::single(a);
    return AddressSpec{Kind::kPrefix, a, IpAddress::from_value(a.family, a.value() | host), static_cast<int>(len)};
  }
  STORCRYPT_ASSIGN_OR_RETURN(IpAddress a, IpAddress::parse(s, ""));
  return AddressSpec::single(a);
}

std::string AddressSpec::to_string() const {
  switch (kind) {
    case Kind::kAny:
      return "ANY";
    case Kind::kSingle:
      return first.to_string();
    case Kind::kPrefix:
      return first.to_string() + "/" + std::to_string(prefix_len);
    case Kind::kRange:
      return first.to_string() + "-" + last.to_string();
    case Kind::kNamed:
      return name;
  }
  return "?";
}

std::optional<Family> AddressSpec::family() const {
  if (kind == Kind::kAny) return std::nullopt;
  if (kind == Kind::kNamed) {
    std::optional<Family> f;
    for (const AddressSpec& m : members) {
      auto mf = m.family();
      if (!mf || (f && *f != *mf)) return std::nullopt;
      f = mf;
    }
    return f;
  }
  return first.family;
}

std::vector<AddressRange> AddressSpec::ranges(Family f) const {
  std::vector<AddressRange> out;
  if (kind != Kind::kNamed) {
    if (auto r = range(f)) out.push_back(*r);
    return out;
  }
  for (const AddressSpec& m : members)
    if (auto r = m.range(f)) out.push_back(*r);
  std::sort(out.begin(), out.end(), [](const AddressRange& a, const AddressRange& b) { return a.lo < b.lo; });
  std::vector<AddressRange> merged;
  for (const AddressRange& r : out) {
    if (!merged.empty() && (merged.back().hi == family_max(f) || r.lo <= merged.back().hi + 1)) {
      merged.back().hi = std::max(merged.back().hi, r.hi);
    } else {
      merged.push_back(r);
    }
  }
  return merged;
}

bool valid_address_name(std::string_view n) {
  if (n.empty() || n.size() > 64 || iequals(n, "ANY")) return false;
  if (!((n[0] >= 'A' && n[0] <= 'Z') || (n[0] >= 'a' && n[0] <= 'z'))) return false;
  return std::all_of(n.begin(), n.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '_';
  });
}

std::optional<AddressRange> AddressSpec::range(Family f) const {
  switch (kind) {
    case Kind::kAny:
      return AddressRange{f, 0, family_max(f)};
    case Kind::kSingle:
      if (first.family != f) return std::nullopt;
      return AddressRange{f, first.value(), first.value()};
    case Kind::kPrefix:
      if (first.family != f) return std::nullopt;
      return AddressRange{f, first.value(), first.value() | low_mask(family_bits(f) - prefix_len)};
    case Kind::kRange:
      if (first.family != f) return std::nullopt;
      return AddressRange{f, first.value(), last.value()};
    case Kind::kNamed:
      return std::nullopt;
  }
  return std::nullopt;
}

bool AddressSpec::matches(const IpAddress& a) const {
  if (kind == Kind::kNamed)
    return std::any_of(members.begin(), members.end(), [&](const AddressSpec& m) { return m.matches(a); });
  auto r = range(a.family);
  return r && r->contains(a);
}

Result<PortSpec> PortSpec::parse(std::string_view text, std::uint16_t max, std::string_view field) {
  std::string_view s = trim(text);
  PortSpec out;
  if (iequals(s, "ANY") || s == "*") return out;
  if (s.empty()) {
    return Error(ErrorCode::kInvalidInput, std::string(field) + " is empty", "write ANY, a number, a range or a list");
  }
  while (true) {
    auto comma = s.find(',');
    std::string_view item = trim(s.substr(0, comma));
    PortRange r;
    if (auto dash = item.find('-'); dash != std::string_view::npos) {
      STORCRYPT_ASSIGN_OR_RETURN(std::uint32_t lo, parse_number(item.substr(0, dash), max, field));
      STORCRYPT_ASSIGN_OR_RETURN(std::uint32_t hi, parse_number(item.substr(dash + 1), max, field));
      if (lo > hi) {
        return Error(ErrorCode::kInvalidInput, std::string(field) + ": range '" + std::string(item) + "' is reversed",
                     "write the lower number first, e.g. 5000-5001");
      }
      r = {static_cast<std::uint16_t>(lo), static_cast<std::uint16_t>(hi)};
    } else {
      STORCRYPT_ASSIGN_OR_RETURN(std::uint32_t v, parse_number(item, max, field));
      r = {static_cast<std::uint16_t>(v), static_cast<std::uint16_t>(v)};
    }
    out.ranges.push_back(r);
    if (comma == std::string_view::npos) break;
    s = s.substr(comma + 1);
  }
  out.normalize();
  if (out.ranges.size() == 1 && out.ranges[0].lo == 0 && out.ranges[0].hi == max) out.ranges.clear();
  return out;
}

void PortSpec::normalize() {
  std::sort(ranges.begin(), ranges.end(), [](PortRange a, PortRange b) { return a.lo < b.lo; });
  std::vector<PortRange> merged;
  for (PortRange r : ranges) {
    if (!merged.empty() && static_cast<std::uint32_t>(r.lo) <= static_cast<std::uint32_t>(merged.back().hi) + 1) {
      merged.back().hi = std::max(merged.back().hi, r.hi);
    } else {
      merged.push_back(r);
    }
  }
  ranges = std::move(merged);
}

std::string PortSpec::to_string() const {
  if (ranges.empty()) return "ANY";
  std::string out;
  for (const PortRange& r : ranges) {
    if (!out.empty()) out += ",";
    out += std::to_string(r.lo);
    if (r.hi != r.lo) out += "-" + std::to_string(r.hi);
  }
  return out;
}

bool PortSpec::matches(std::uint32_t v) const {
  if (ranges.empty()) return true;
  return std::any_of(ranges.begin(), ranges.end(), [v](PortRange r) { return r.contains(v); });
}

std::vector<PortRange> PortSpec::effective(std::uint16_t max) const {
  if (ranges.empty()) return {PortRange{0, max}};
  return ranges;
}

}  // namespace storcrypt::policy
