#include "storcrypt/policy/selector.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <random>

#include "test_helpers.h"

namespace storcrypt::policy {
namespace {
using testing::addr;
using testing::ip;

std::vector<std::string> prefixes(const std::string& range) {
  auto spec = AddressSpec::parse(range);
  EXPECT_TRUE(spec.ok()) << range;
  std::vector<std::string> out;
  for (const Prefix& p : range_to_prefixes(*spec->range(*spec->family()))) out.push_back(p.to_string());
  return out;
}

TEST(Address, ParsesAndPrints) {
  EXPECT_EQ(ip("192.0.2.1").to_string(), "192.0.2.1");
  EXPECT_EQ(ip("2001:db8::1").to_string(), "2001:db8::1");
  EXPECT_EQ(ip("2001:db8::1").family, Family::kIPv6);
  EXPECT_FALSE(IpAddress::parse("192.0.2").ok());
  EXPECT_FALSE(IpAddress::parse("").ok());
  EXPECT_FALSE(IpAddress::parse("2001:db8::g").ok());
}

TEST(AddressSpec, Kinds) {
  EXPECT_TRUE(addr("ANY").is_any());
  EXPECT_EQ(addr("192.0.2.0/24").kind, AddressSpec::Kind::kPrefix);
  EXPECT_EQ(addr("192.0.2.7/32").kind, AddressSpec::Kind::kSingle);
  EXPECT_EQ(addr("192.0.2.1-192.0.2.9").to_string(), "192.0.2.1-192.0.2.9");
  EXPECT_TRUE(addr("192.0.2.0/24").matches(ip("192.0.2.255")));
  EXPECT_FALSE(addr("192.0.2.0/24").matches(ip("192.0.3.0")));
  EXPECT_FALSE(addr("192.0.2.0/24").matches(ip("2001:db8::1")));
  EXPECT_TRUE(addr("ANY").matches(ip("2001:db8::1")));
  auto bad = AddressSpec::parse("192.0.2.1/24");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.error().message().find("host bits"), std::string::npos);
  EXPECT_NE(bad.error().fix().find("192.0.2.0/24"), std::string::npos);
  EXPECT_FALSE(AddressSpec::parse("192.0.2.9-192.0.2.1").ok());
  EXPECT_FALSE(AddressSpec::parse("192.0.2.1-2001:db8::1").ok());
  EXPECT_FALSE(AddressSpec::parse("192.0.2.0/33").ok());
}

TEST(Decompose, AddressRangeToPrefixes) {
  EXPECT_EQ(prefixes("192.0.2.0-192.0.2.255"), std::vector<std::string>{"192.0.2.0/24"});
  EXPECT_EQ(prefixes("192.0.2.1-192.0.2.6"),
            (std::vector<std::string>{"192.0.2.1/32", "192.0.2.2/31", "192.0.2.4/31", "192.0.2.6/32"}));
  EXPECT_EQ(prefixes("10.0.0.255-10.0.1.0"), (std::vector<std::string>{"10.0.0.255/32", "10.0.1.0/32"}));
  EXPECT_EQ(prefixes("0.0.0.0-255.255.255.255"), std::vector<std::string>{"0.0.0.0/0"});
  EXPECT_EQ(prefixes("0.0.0.1-255.255.255.255").size(), 32u);
  EXPECT_EQ(prefixes("2001:db8::-2001:db8::ffff"), std::vector<std::string>{"2001:db8::/112"});
  AddressRange all6{Family::kIPv6, 0, family_max(Family::kIPv6)};
  ASSERT_EQ(range_to_prefixes(all6).size(), 1u);
  EXPECT_EQ(range_to_prefixes(all6)[0].len, 0);
  AddressRange top6{Family::kIPv6, 1, family_max(Family::kIPv6)};
  EXPECT_EQ(range_to_prefixes(top6).size(), 128u);
}

TEST(Decompose, PrefixesCoverRangeExactly) {
  // Exhaustive on a small window of IPv4 space: union == range, no overlap.
  for (std::uint32_t lo = 0; lo < 70; lo += 3) {
    for (std::uint32_t hi = lo; hi < 80; hi += 5) {
      auto ps = range_to_prefixes({Family::kIPv4, 1000 + lo, 1000 + hi});
      for (std::uint32_t v = 990; v < 1090; ++v) {
        int hits = 0;
        for (const Prefix& p : ps) {
          const U128 size = U128{1} << (32 - p.len);
          if (v >= p.addr.value() && v < p.addr.value() + size) ++hits;
        }
        EXPECT_EQ(hits, (v >= 1000 + lo && v <= 1000 + hi) ? 1 : 0) << lo << "-" << hi << " v=" << v;
      }
    }
  }
}

TEST(Decompose, PortRangeToMasks) {
  EXPECT_EQ(port_range_to_masks({5000, 5001}), (std::vector<PortMask>{{5000, 0xfffe}}));
  EXPECT_EQ(port_range_to_masks({0, 65535}), (std::vector<PortMask>{{0, 0}}));
  EXPECT_EQ(port_range_to_masks({80, 80}), (std::vector<PortMask>{{80, 0xffff}}));
  EXPECT_EQ(port_range_to_masks({1, 65535}).size(), 16u);
  EXPECT_EQ(port_range_to_masks({1024, 65535}),
            (std::vector<PortMask>{
                {1024, 0xfc00}, {2048, 0xf800}, {4096, 0xf000}, {8192, 0xe000}, {16384, 0xc000}, {32768, 0x8000}}));
  for (std::uint32_t lo : {0u, 1u, 7u, 100u, 1023u, 65534u}) {
    for (std::uint32_t hi : {lo, lo + 1, lo + 13, 1024u, 65535u}) {
      if (hi < lo || hi > 65535) continue;
      auto ms = port_range_to_masks({static_cast<std::uint16_t>(lo), static_cast<std::uint16_t>(hi)});
      for (std::uint32_t v = 0; v <= 65535; v += (v < 2000 || v > 65000) ? 1 : 97) {
        int hits = 0;
        for (const PortMask& m : ms) hits += m.matches(static_cast<std::uint16_t>(v)) ? 1 : 0;
        EXPECT_EQ(hits, (v >= lo && v <= hi) ? 1 : 0) << lo << "-" << hi << " v=" << v;
      }
    }
  }
}

// Union of `ms` == union of `rs` over every 16-bit value; values carry no bits outside their mask.
void expect_exact(const std::vector<PortMask>& ms, const std::vector<PortRange>& rs, const std::string& what) {
  for (const PortMask& m : ms) EXPECT_EQ(m.value & ~m.mask, 0) << what;
  for (std::uint32_t v = 0; v <= 65535; ++v) {
    const bool want = std::any_of(rs.begin(), rs.end(), [&](PortRange r) { return r.contains(v); });
    const bool got =
        std::any_of(ms.begin(), ms.end(), [&](const PortMask& m) { return m.matches(static_cast<std::uint16_t>(v)); });
    if (want != got) {
      ADD_FAILURE() << what << ": value " << v << (want ? " missing" : " matched but outside the set");
      return;
    }
  }
}

std::size_t prefix_pairs(std::vector<PortRange> rs) {
  PortSpec s{std::move(rs)};
  s.normalize();
  std::size_t n = 0;
  for (PortRange r : s.ranges) n += port_range_to_masks(r).size();
  return n;
}

TEST(Decompose, PortSetToFewestMasks) {
  // Masks need not be contiguous: 1-6 = 0b001..0b110 = 0*1, 10*, *10 (4 prefixes).
  auto m = ports_to_masks({{1, 6}});
  EXPECT_EQ(m.size(), 3u);
  expect_exact(m, {{1, 6}}, "1-6");
  // Two pieces one free bit apart: 10-11,14-15 = 1*1* (2 prefixes).
  EXPECT_EQ(ports_to_masks({{10, 11}, {14, 15}}), (std::vector<PortMask>{{10, 0xfffa}}));
  // Already minimal prefix covers stay as they are.
  EXPECT_EQ(ports_to_masks({{5000, 5001}}), (std::vector<PortMask>{{5000, 0xfffe}}));
  EXPECT_EQ(ports_to_masks({{0, 65535}}), (std::vector<PortMask>{{0, 0}}));
  EXPECT_EQ(ports_to_masks({{1024, 65535}}), port_range_to_masks({1024, 65535}));
  EXPECT_TRUE(ports_to_masks({}).empty());
  // 1025-65534: 29 prefixes, fewer pairs (1-65534: 30 prefixes, 16 would do; the greedy cover finds 29).
  m = ports_to_masks({{1025, 65534}});
  EXPECT_LE(m.size(), 25u);
  expect_exact(m, {{1025, 65534}}, "1025-65534");
  m = ports_to_masks({{1, 65534}});
  EXPECT_LT(m.size(), 30u);
  expect_exact(m, {{1, 65534}}, "1-65534");
  // A single range whose halves below the first differing bit do not overlap
  // (1000-2999: 1000-1023|1024-2047 and 2048-2999) has no pair straddling that
  // bit: its prefix cover is already the fewest.
  EXPECT_EQ(ports_to_masks({{1000, 2999}}), port_range_to_masks({1000, 2999}));
}

TEST(Decompose, PortPiecesAreMergedBeforeExpansion) {
  // Overlapping, adjacent and unsorted pieces give what their merged union gives.
  const std::vector<PortRange> pieces = {{101, 120}, {80, 90}, {85, 100}, {90, 95}};
  EXPECT_EQ(ports_to_masks(pieces), ports_to_masks({{80, 120}}));
  expect_exact(ports_to_masks(pieces), pieces, "pieces");
  EXPECT_EQ(ports_to_masks({{0, 32767}, {32768, 65535}}), (std::vector<PortMask>{{0, 0}}));
  EXPECT_EQ(ports_to_masks({{8000, 8003}, {8004, 8007}}), (std::vector<PortMask>{{8000, 0xfff8}}));
}

TEST(Decompose, PortSetsExactAndNeverMoreThanPrefixes) {
  std::mt19937_64 rng(0x9047);
  auto pick = [&](std::uint32_t n) { return static_cast<std::uint32_t>(rng() % n); };
  std::size_t pairs = 0, prefixes_total = 0;
  for (int i = 0; i < 400; ++i) {
    std::vector<PortRange> rs;
    const std::uint32_t n = 1 + pick(4);
    const std::uint32_t span = i % 4 == 0 ? 256 : i % 4 == 1 ? 64 : i % 4 == 2 ? 4096 : 65536;
    for (std::uint32_t k = 0; k < n; ++k) {
      std::uint32_t a = pick(span), b = std::min<std::uint32_t>(span - 1, a + pick(i % 3 == 0 ? span : 40));
      if (i % 7 == 0) b = span - 1;  // up to the top of the space
      rs.push_back({static_cast<std::uint16_t>(a), static_cast<std::uint16_t>(b)});
    }
    const auto ms = ports_to_masks(rs);
    std::string what = "set " + std::to_string(i) + ":";
    for (PortRange r : rs) what += " " + std::to_string(r.lo) + "-" + std::to_string(r.hi);
    expect_exact(ms, rs, what);
    const std::size_t pre = prefix_pairs(rs);
    EXPECT_LE(ms.size(), pre) << what;
    pairs += ms.size();
    prefixes_total += pre;
  }
  EXPECT_LT(pairs, prefixes_total);  // it does find shorter covers
  std::printf("value/mask pairs %zu vs prefix cover %zu\n", pairs, prefixes_total);
}

TEST(PortSpec, ParseListsAndErrors) {
  auto p = PortSpec::parse("443, 80,8000-8080,8081", 65535, "RemotePort");
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(p->to_string(), "80,443,8000-8081");
  EXPECT_TRUE(p->matches(8081));
  EXPECT_FALSE(p->matches(8082));
  EXPECT_TRUE(PortSpec::parse("0-65535", 65535, "x")->is_any());
  auto bad = PortSpec::parse("70000", 65535, "RemotePort");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.error().message().find("RemotePort"), std::string::npos);
  EXPECT_FALSE(PortSpec::parse("9-1", 65535, "x").ok());
  EXPECT_FALSE(PortSpec::parse("256", 255, "IcmpType").ok());
  EXPECT_FALSE(PortSpec::parse("1,,2", 65535, "x").ok());
  EXPECT_FALSE(PortSpec::parse("", 65535, "x").ok());
}

}  // namespace
}  // namespace storcrypt::policy
