#include "storcrypt/common/ip.h"

#include <arpa/inet.h>

namespace storcrypt {
namespace {

Error invalid(std::string_view field, std::string msg, std::string fix = {}) {
  std::string m = field.empty() ? std::move(msg) : std::string(field) + ": " + msg;
  return Error(ErrorCode::kInvalidInput, std::move(m), std::move(fix));
}

}  // namespace

std::string_view family_name(Family f) { return f == Family::kIPv4 ? "ipv4" : "ipv6"; }

U128 family_max(Family f) { return f == Family::kIPv4 ? U128{0xffffffffu} : ~U128{0}; }

// ---- IpAddress ----------------------------------------------------------------

Result<IpAddress> IpAddress::parse(std::string_view text, std::string_view field) {
  IpAddress a;
  std::string s(text);
  if (s.find(':') != std::string::npos) {
    a.family = Family::kIPv6;
    if (inet_pton(AF_INET6, s.c_str(), a.bytes.data()) == 1) return a;
  } else {
    a.family = Family::kIPv4;
    if (!s.empty() && inet_pton(AF_INET, s.c_str(), a.bytes.data()) == 1) return a;
  }
  return invalid(field, "'" + s + "' is not an IPv4 or IPv6 address",
                 "write a dotted IPv4 address (192.0.2.1) or an IPv6 address (2001:db8::1)");
}

IpAddress IpAddress::any(Family f) {
  IpAddress a;
  a.family = f;
  return a;
}

IpAddress IpAddress::from_value(Family f, U128 v) {
  IpAddress a;
  a.family = f;
  const int n = f == Family::kIPv4 ? 4 : 16;
  for (int i = n - 1; i >= 0; --i) {
    a.bytes[static_cast<std::size_t>(i)] = static_cast<std::uint8_t>(v & 0xff);
    v >>= 8;
  }
  return a;
}

U128 IpAddress::value() const {
  const int n = family == Family::kIPv4 ? 4 : 16;
  U128 v = 0;
  for (int i = 0; i < n; ++i) v = (v << 8) | bytes[static_cast<std::size_t>(i)];
  return v;
}

std::string IpAddress::to_string() const {
  char buf[INET6_ADDRSTRLEN] = {};
  inet_ntop(family == Family::kIPv4 ? AF_INET : AF_INET6, bytes.data(), buf, sizeof buf);
  return buf;
}

bool IpAddress::is_any() const {
  for (auto b : bytes)
    if (b) return false;
  return true;
}

// ---- Prefix -----------------------------------------------------------------

Result<Prefix> Prefix::make(const IpAddress& addr, unsigned len, std::string_view field) {
  if (len > addr.max_prefix())
    return invalid(field,
                   "prefix length " + std::to_string(len) + " exceeds " + std::to_string(addr.max_prefix()) +
                       " for " + std::string(family_name(addr.family)),
                   "use a prefix length between 0 and 32 (IPv4) or 128 (IPv6)");
  Prefix p;
  p.addr = addr;
  p.len = static_cast<std::uint8_t>(len);
  // Clear host bits (and, for IPv4, the unused tail) so equal networks compare equal.
  for (unsigned bit = len; bit < 128; ++bit) p.addr.bytes[bit / 8] &= static_cast<std::uint8_t>(~(0x80u >> (bit % 8)));
  return p;
}

Result<Prefix> Prefix::parse(std::string_view text, std::string_view field) {
  auto slash = text.find('/');
  std::string_view a = text.substr(0, slash);
  STORCRYPT_ASSIGN_OR_RETURN(IpAddress addr, IpAddress::parse(a, field));
  unsigned len = addr.max_prefix();
  if (slash != std::string_view::npos) {
    std::string_view l = text.substr(slash + 1);
    if (l.empty() || l.size() > 3) return invalid(field, "bad prefix length in '" + std::string(text) + "'");
    len = 0;
    for (char c : l) {
      if (c < '0' || c > '9') return invalid(field, "bad prefix length in '" + std::string(text) + "'");
      len = len * 10 + static_cast<unsigned>(c - '0');
    }
  }
  return make(addr, len, field);
}

Prefix Prefix::any(Family f) {
  Prefix p;
  p.addr = IpAddress::any(f);
  p.len = 0;
  return p;
}

bool Prefix::contains(const IpAddress& a) const {
  if (a.family != addr.family) return false;
  for (unsigned bit = 0; bit < len; bit += 8) {
    unsigned n = len - bit >= 8 ? 8 : len - bit;
    auto mask = static_cast<std::uint8_t>(0xff << (8 - n));
    if ((a.bytes[bit / 8] & mask) != (addr.bytes[bit / 8] & mask)) return false;
  }
  return true;
}

std::string Prefix::to_string() const { return addr.to_string() + "/" + std::to_string(len); }

std::vector<Prefix> prefixes_covering(const IpAddress& first, const IpAddress& last) {
  std::vector<Prefix> out;
  if (first.family != last.family) return out;
  const int bits = family_bits(first.family);
  auto low_mask = [](int k) { return k >= 128 ? ~U128{0} : ((U128{1} << k) - 1); };
  U128 lo = first.value();
  const U128 hi = last.value();
  if (lo > hi) return out;
  // Greedy: the largest aligned block starting at lo that stays within hi.
  for (;;) {
    int k = 0;
    while (k < bits && (lo & low_mask(k + 1)) == 0 && hi - lo >= low_mask(k + 1)) ++k;
    out.push_back({IpAddress::from_value(first.family, lo), static_cast<std::uint8_t>(bits - k)});
    const U128 end = lo + low_mask(k);
    if (end >= hi) break;
    lo = end + 1;
  }
  return out;
}

}  // namespace storcrypt
