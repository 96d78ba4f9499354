#include "storcrypt/netlink/xfrm_types.h"

#include <arpa/inet.h>
#include <fmt/format.h>

#include <bit>
#include <cstring>

#include "storcrypt/netlink/xfrm_api.h"

namespace storcrypt::netlink {
namespace {

Error invalid(std::string_view field, std::string msg, std::string fix = {}) {
  return Error(ErrorCode::kInvalidInput, fmt::format("{}: {}", field, msg), std::move(fix));
}

std::string fmt_mark(const std::optional<Mark>& m) {
  if (!m) return {};
  return fmt::format(" mark=0x{:x}/0x{:x}", m->value, m->mask);
}

bool proto_has_ports(std::uint8_t p) { return p == 6 || p == 17 || p == 132 || p == 136; }
bool proto_is_icmp(std::uint8_t p) { return p == kProtoIcmp || p == kProtoIcmpV6; }

std::string proto_text(std::uint8_t p) {
  switch (p) {
    case 0:
      return "any";
    case 1:
      return "icmp";
    case 6:
      return "tcp";
    case 17:
      return "udp";
    case 58:
      return "ipv6-icmp";
    case 132:
      return "sctp";
    default:
      return std::to_string(p);
  }
}

}  // namespace

// ---- ports ------------------------------------------------------------------

unsigned PortMatch::mask_bits() const { return static_cast<unsigned>(std::popcount(mask)); }

Result<std::vector<PortMatch>> port_range_to_masks(std::uint16_t lo, std::uint16_t hi) {
  if (lo > hi)
    return invalid("port range", fmt::format("start {} is above end {}", lo, hi), "write the lower port first");
  std::vector<PortMatch> out;
  if (lo == 0 && hi == 0xffff) {
    out.push_back(PortMatch::any());
    return out;
  }
  std::uint32_t cur = lo;
  const std::uint32_t end = hi;
  while (cur <= end) {
    // Largest aligned block starting at cur that stays within [cur, end].
    std::uint32_t size = cur == 0 ? 0x10000 : (cur & (~cur + 1));
    while (cur + size - 1 > end) size >>= 1;
    auto mask = static_cast<std::uint16_t>(~(size - 1) & 0xffff);
    out.push_back(PortMatch{static_cast<std::uint16_t>(cur), mask});
    cur += size;
  }
  return out;
}

Result<PortMatch> port_range_to_mask(std::uint16_t lo, std::uint16_t hi, std::string_view field) {
  STORCRYPT_ASSIGN_OR_RETURN(auto v, port_range_to_masks(lo, hi));
  if (v.size() != 1)
    return invalid(field,
                   fmt::format("ports {}-{} are not one port/mask block (they need {} selectors)", lo, hi, v.size()),
                   "use a range aligned to a power of two (e.g. 1024-2047) or split it into several rules");
  return v.front();
}

// ---- selector ---------------------------------------------------------------

Selector Selector::any(Family f) {
  Selector s;
  s.family = f;
  s.src = Prefix::any(f);
  s.dst = Prefix::any(f);
  return s;
}

Result<Selector> Selector::between(const Prefix& src, const Prefix& dst, std::uint8_t proto) {
  if (src.addr.family != dst.addr.family)
    return invalid("selector", fmt::format("source {} and destination {} are of different families", src.to_string(),
                                           dst.to_string()));
  Selector s = any(src.addr.family);
  s.src = src;
  s.dst = dst;
  s.proto = proto;
  return s;
}

bool Selector::matches(const IpAddress& s, const IpAddress& d, std::uint8_t p, std::uint16_t sp,
                       std::uint16_t dp) const {
  if (s.family != family || d.family != family) return false;
  if (!src.contains(s) || !dst.contains(d)) return false;
  if (proto != 0 && proto != p) return false;
  if (proto_is_icmp(proto)) {
    if (icmp_type && *icmp_type != sp) return false;
    if (icmp_code && *icmp_code != dp) return false;
    return true;
  }
  return sport.matches(sp) && dport.matches(dp);
}

std::string Selector::to_string() const {
  std::string out = fmt::format("{} -> {}", src.to_string(), dst.to_string());
  if (proto) out += " proto " + proto_text(proto);
  if (sport.mask) out += fmt::format(" sport {}/0x{:x}", sport.port, sport.mask);
  if (dport.mask) out += fmt::format(" dport {}/0x{:x}", dport.port, dport.mask);
  if (icmp_type) out += fmt::format(" type {}", *icmp_type);
  if (icmp_code) out += fmt::format(" code {}", *icmp_code);
  if (ifindex) out += fmt::format(" ifindex {}", ifindex);
  return out;
}

Status validate(const Selector& s, std::string_view field) {
  if (s.src.addr.family != s.family)
    return invalid(fmt::format("{}.src", field), fmt::format("{} is not {}", s.src.to_string(), family_name(s.family)),
                   "use addresses of the selector's family");
  if (s.dst.addr.family != s.family)
    return invalid(fmt::format("{}.dst", field), fmt::format("{} is not {}", s.dst.to_string(), family_name(s.family)),
                   "use addresses of the selector's family");
  for (const Prefix* p : {&s.src, &s.dst}) {
    if (p->len > p->addr.max_prefix())
      return invalid(fmt::format("{}.{}", field, p == &s.src ? "src" : "dst"),
                     fmt::format("prefix length {} too long", p->len));
    auto norm = Prefix::make(p->addr, p->len);
    if (!norm.ok() || !(norm->addr == p->addr))
      return invalid(fmt::format("{}.{}", field, p == &s.src ? "src" : "dst"),
                     fmt::format("{} has host bits set", p->to_string()), "use Prefix::parse/make to build prefixes");
  }
  const bool ports = s.sport.mask != 0 || s.dport.mask != 0 || s.sport.port != 0 || s.dport.port != 0;
  if (ports && !proto_has_ports(s.proto))
    return invalid(fmt::format("{}.sport", field),
                   fmt::format("ports need proto tcp, udp or sctp (proto is {})", proto_text(s.proto)),
                   "set the protocol or drop the ports");
  if ((s.sport.port & ~s.sport.mask) || (s.dport.port & ~s.dport.mask))
    return invalid(fmt::format("{}.{}", field, (s.sport.port & ~s.sport.mask) ? "sport" : "dport"),
                   "port has bits outside its mask", "use port_range_to_mask() to build port matches");
  if (s.icmp_type || s.icmp_code) {
    const std::uint8_t want = s.family == Family::kIPv4 ? kProtoIcmp : kProtoIcmpV6;
    if (s.proto != want)
      return invalid(fmt::format("{}.icmp_type", field),
                     fmt::format("ICMP type/code need proto {} for {} (proto is {})", proto_text(want),
                                 family_name(s.family), proto_text(s.proto)));
    if (s.icmp_code && !s.icmp_type)
      return invalid(fmt::format("{}.icmp_code", field), "an ICMP code needs an ICMP type", "set icmp_type as well");
  }
  if (s.ifindex < 0) return invalid(fmt::format("{}.ifindex", field), "negative interface index");
  return ok_status();
}

// ---- names ------------------------------------------------------------------

std::string_view proto_name(XfrmProto p) { return p == XfrmProto::kEsp ? "esp" : "ah"; }
std::string_view mode_name(Mode m) { return m == Mode::kTunnel ? "tunnel" : "transport"; }
std::string_view direction_name(Direction d) {
  switch (d) {
    case Direction::kIn:
      return "in";
    case Direction::kOut:
      return "out";
    case Direction::kFwd:
      return "fwd";
  }
  return "?";
}
std::string_view action_name(PolicyAction a) { return a == PolicyAction::kAllow ? "allow" : "block"; }

namespace {
struct EncInfo {
  EncAlgo a;
  std::string_view name, kernel;
  std::size_t key;
  unsigned icv;
};
constexpr EncInfo kEnc[] = {
    {EncAlgo::kNone, "none", "", 0, 0},
    {EncAlgo::kAesCbc128, "aes-cbc-128", "cbc(aes)", 16, 0},
    {EncAlgo::kAesCbc192, "aes-cbc-192", "cbc(aes)", 24, 0},
    {EncAlgo::kAesCbc256, "aes-cbc-256", "cbc(aes)", 32, 0},
    {EncAlgo::kAesGcm128, "aes-gcm-128", "rfc4106(gcm(aes))", 20, 128},
    {EncAlgo::kAesGcm256, "aes-gcm-256", "rfc4106(gcm(aes))", 36, 128},
};
struct IntegInfo {
  IntegAlgo a;
  std::string_view name, kernel;
  std::size_t key;
  unsigned trunc;
};
constexpr IntegInfo kInteg[] = {
    {IntegAlgo::kNone, "none", "", 0, 0},
    {IntegAlgo::kHmacSha1_96, "hmac-sha1-96", "hmac(sha1)", 20, 96},
    {IntegAlgo::kHmacSha256_128, "hmac-sha256-128", "hmac(sha256)", 32, 128},
    {IntegAlgo::kHmacSha384_192, "hmac-sha384-192", "hmac(sha384)", 48, 192},
    {IntegAlgo::kHmacSha512_256, "hmac-sha512-256", "hmac(sha512)", 64, 256},
};
const EncInfo& enc_info(EncAlgo a) {
  for (const auto& e : kEnc)
    if (e.a == a) return e;
  return kEnc[0];
}
const IntegInfo& integ_info(IntegAlgo a) {
  for (const auto& e : kInteg)
    if (e.a == a) return e;
  return kInteg[0];
}
}  // namespace

std::string_view enc_name(EncAlgo a) { return enc_info(a).name; }
std::string_view integ_name(IntegAlgo a) { return integ_info(a).name; }
std::string_view enc_kernel_name(EncAlgo a) { return enc_info(a).kernel; }
std::string_view integ_kernel_name(IntegAlgo a) { return integ_info(a).kernel; }
std::size_t enc_key_bytes(EncAlgo a) { return enc_info(a).key; }
std::size_t integ_key_bytes(IntegAlgo a) { return integ_info(a).key; }
unsigned enc_icv_bits(EncAlgo a) { return enc_info(a).icv; }
unsigned integ_trunc_bits(IntegAlgo a) { return integ_info(a).trunc; }
bool enc_is_aead(EncAlgo a) { return a == EncAlgo::kAesGcm128 || a == EncAlgo::kAesGcm256; }

Result<EncAlgo> parse_enc(std::string_view name, std::string_view field) {
  std::string valid;
  for (const auto& e : kEnc) {
    if (e.name == name) return e.a;
    valid += valid.empty() ? "" : ", ";
    valid += e.name;
  }
  return invalid(field, fmt::format("unknown encryption algorithm '{}'", name), "use one of: " + valid);
}

Result<IntegAlgo> parse_integ(std::string_view name, std::string_view field) {
  std::string valid;
  for (const auto& e : kInteg) {
    if (e.name == name) return e.a;
    valid += valid.empty() ? "" : ", ";
    valid += e.name;
  }
  return invalid(field, fmt::format("unknown integrity algorithm '{}'", name), "use one of: " + valid);
}

// ---- SA ---------------------------------------------------------------------

std::string SaId::to_string() const {
  return fmt::format("{} spi=0x{:08x} dst={}{}", proto_name(proto), spi, dst.to_string(), fmt_mark(mark));
}

Sa Sa::clone() const {
  Sa s;
  s.src = src;
  s.dst = dst;
  s.spi = spi;
  s.proto = proto;
  s.mode = mode;
  s.reqid = reqid;
  s.enc = enc;
  s.enc_key = enc_key.clone();
  s.integ = integ;
  s.integ_key = integ_key.clone();
  s.allow_no_integrity = allow_no_integrity;
  s.replay_window = replay_window;
  s.esn = esn;
  s.lifetime = lifetime;
  s.mark = mark;
  s.if_id = if_id;
  s.encap = encap;
  s.selector = selector;
  s.acquire_seq = acquire_seq;
  return s;
}

std::string Sa::to_string() const {
  return fmt::format("SA {} {} src={} reqid={} enc={} integ={}", id().to_string(), mode_name(mode), src.to_string(),
                     reqid, enc_name(enc), integ_name(integ));
}

namespace {
Status check_lifetime(const Lifetime& l, std::string_view field) {
  struct P {
    std::uint64_t s, h;
    const char* n;
  };
  for (P p : {P{l.soft_bytes, l.hard_bytes, "bytes"}, P{l.soft_packets, l.hard_packets, "packets"},
              P{l.soft_add_seconds, l.hard_add_seconds, "add_seconds"},
              P{l.soft_use_seconds, l.hard_use_seconds, "use_seconds"}}) {
    if (p.s != 0 && p.h != 0 && p.s > p.h)
      return invalid(fmt::format("{}.soft_{}", field, p.n),
                     fmt::format("soft limit {} is above hard limit {}", p.s, p.h),
                     "set the soft limit below the hard limit so a rekey can happen before expiry");
  }
  return ok_status();
}
}  // namespace

Status validate(const Sa& sa) {
  if (sa.spi < kMinSpi)
    return invalid(
        "spi",
        fmt::format("SPI {} (0x{:08x}) is reserved: 0 means 'no SA' and 1-255 are reserved by IANA", sa.spi, sa.spi),
        "use an SPI of 256 (0x100) or above, or allocate one with allocate_spi()");
  if (sa.src.family != sa.dst.family)
    return invalid("src", fmt::format("source {} and destination {} are of different families", sa.src.to_string(),
                                      sa.dst.to_string()));
  if (sa.dst.is_any()) return invalid("dst", "destination address must not be unspecified");
  if (sa.proto != XfrmProto::kEsp && sa.proto != XfrmProto::kAh)
    return invalid("proto", "only esp and ah are supported");
  if (sa.mode != Mode::kTunnel && sa.mode != Mode::kTransport) return invalid("mode", "unknown mode");
  if (sa.proto == XfrmProto::kAh) {
    if (sa.enc != EncAlgo::kNone)
      return invalid("enc", fmt::format("AH does not encrypt (enc is {})", enc_name(sa.enc)),
                     "set enc=none for AH, or use ESP");
    if (sa.integ == IntegAlgo::kNone)
      return invalid("integ", "AH needs an integrity algorithm", "set integ, e.g. hmac-sha256-128");
    if (sa.encap) return invalid("encap", "UDP encapsulation applies to ESP only");
  } else {
    // enc=none is ESP integrity only (RFC 4303 3.2, the kernel's ecb(cipher_null)): it needs an integrity algorithm.
    if (sa.enc == EncAlgo::kNone && sa.integ == IntegAlgo::kNone)
      return invalid("enc",
                     "ESP needs an encryption algorithm, an integrity algorithm, or both (enc and integ are none)",
                     "set enc (e.g. aes-gcm-256), or set integ (e.g. hmac-sha256-128) with enc=none for "
                     "integrity-only ESP");
    if (enc_is_aead(sa.enc) && sa.integ != IntegAlgo::kNone)
      return invalid("integ",
                     fmt::format("{} is an AEAD and already authenticates; integ must be none (is {})",
                                 enc_name(sa.enc), integ_name(sa.integ)),
                     "set integ=none");
    if (!enc_is_aead(sa.enc) && sa.integ == IntegAlgo::kNone && !sa.allow_no_integrity)
      return invalid("integ", fmt::format("{} without integrity protection is refused", enc_name(sa.enc)),
                     "add an integrity algorithm (e.g. hmac-sha256-128), use aes-gcm-256, or set "
                     "allow_no_integrity explicitly");
  }
  if (sa.enc_key.size() != enc_key_bytes(sa.enc)) {
    std::string what = enc_is_aead(sa.enc) ? fmt::format("{} bytes ({}-byte key + 4-byte salt)", enc_key_bytes(sa.enc),
                                                         enc_key_bytes(sa.enc) - 4)
                                           : fmt::format("{} bytes", enc_key_bytes(sa.enc));
    return invalid("enc_key",
                   fmt::format("{} needs a key of {}, got {} bytes", enc_name(sa.enc), what, sa.enc_key.size()),
                   "supply a key of the right length for the algorithm");
  }
  if (sa.integ_key.size() != integ_key_bytes(sa.integ))
    return invalid("integ_key",
                   fmt::format("{} needs a key of {} bytes, got {} bytes", integ_name(sa.integ),
                               integ_key_bytes(sa.integ), sa.integ_key.size()),
                   "supply a key of the right length for the algorithm");
  if (sa.replay_window > 4096)
    return invalid("replay_window", fmt::format("window {} is above the supported maximum 4096", sa.replay_window));
  if (sa.esn && sa.replay_window == 0)
    return invalid("replay_window", "ESN needs a replay window of at least 1 (the kernel refuses 0 with ESN)",
                   "use replay_window=1 for outbound SAs");
  STORCRYPT_TRY(check_lifetime(sa.lifetime, "lifetime"));
  if (sa.selector) {
    STORCRYPT_TRY(validate(*sa.selector, "selector"));
    if (sa.mode == Mode::kTransport && sa.selector->family != sa.family())
      return invalid("selector", "a transport-mode SA's selector must be of the SA's family");
  }
  return ok_status();
}

// ---- policy -----------------------------------------------------------------

std::string PolicyId::to_string() const {
  if (index) return fmt::format("policy dir={} index={}", direction_name(dir), index);
  return fmt::format("policy dir={} {}{}", direction_name(dir), selector.to_string(), fmt_mark(mark));
}

std::string Policy::to_string() const {
  return fmt::format("policy dir={} {} action={} priority={}{}", direction_name(dir), selector.to_string(),
                     action_name(action), priority, fmt_mark(mark));
}

Status validate(const Policy& p) {
  STORCRYPT_TRY(validate(p.selector, "selector"));
  if (p.dir != Direction::kIn && p.dir != Direction::kOut && p.dir != Direction::kFwd)
    return invalid("dir", "direction must be in, out or fwd");
  if (p.action != PolicyAction::kAllow && p.action != PolicyAction::kBlock)
    return invalid("action", "action must be allow or block");
  if (p.action == PolicyAction::kBlock && !p.templates.empty())
    return invalid("templates", "a block policy takes no templates", "drop the templates or use action=allow");
  if (p.templates.size() > 6) return invalid("templates", "at most 6 templates (XFRM_MAX_DEPTH)");
  if (p.index != 0 && (p.index & 7) != static_cast<std::uint32_t>(p.dir))
    return invalid("index",
                   fmt::format("index {} does not encode direction {} (index % 8 must be {})", p.index,
                               direction_name(p.dir), static_cast<int>(p.dir)),
                   "leave index 0 to let the kernel choose");
  for (std::size_t i = 0; i < p.templates.size(); ++i) {
    const Template& t = p.templates[i];
    std::string f = fmt::format("templates[{}]", i);
    if (t.proto != XfrmProto::kEsp && t.proto != XfrmProto::kAh)
      return invalid(f + ".proto", "only esp and ah are supported");
    if (t.mode == Mode::kTunnel) {
      if (t.src.family != t.family || t.dst.family != t.family)
        return invalid(f + ".src", fmt::format("tunnel endpoints {} -> {} must be {}", t.src.to_string(),
                                               t.dst.to_string(), family_name(t.family)));
      if (t.src.is_any() || t.dst.is_any())
        return invalid(f + ".dst", "tunnel-mode templates need both tunnel endpoints", "set src and dst");
    } else if (t.family != p.selector.family) {
      return invalid(f + ".family", "a transport-mode template must have the selector's family");
    }
    if (t.spi != 0 && t.spi < kMinSpi)
      return invalid(f + ".spi", fmt::format("SPI {} is reserved (1-255)", t.spi), "use 0 (any) or >= 256");
  }
  return check_lifetime(p.lifetime, "lifetime");
}

// ---- ownership --------------------------------------------------------------

bool Ownership::owns(const Sa& sa) const {
  if (!owns_reqid(sa.reqid)) return false;
  if (mark && sa.mark != mark) return false;
  return true;
}

bool Ownership::owns(const Policy& p) const {
  if (!owns_index(p.index)) return false;
  if (mark && p.mark != mark) return false;
  return true;
}

Status Ownership::require_owned(const Sa& sa) const {
  if (!owns_reqid(sa.reqid))
    return Error(ErrorCode::kInvalidInput,
                 fmt::format("reqid: {} is outside storcrypt's reqid range [{}, {}] ({})", sa.reqid, reqid_min,
                             reqid_max, sa.id().to_string()),
                 "allocate reqids from the configured range");
  if (mark && sa.mark != mark)
    return Error(ErrorCode::kInvalidInput, fmt::format("mark: {} must carry storcrypt's mark", sa.id().to_string()),
                 "set the SA's mark to the configured ownership mark");
  return ok_status();
}

Status Ownership::require_owned(const Policy& p) const {
  if (!owns_index(p.index))
    return Error(ErrorCode::kInvalidInput,
                 fmt::format("index: {} is outside storcrypt's policy index range [0x{:08x}, 0x{:08x}] ({})", p.index,
                             index_min, index_max, p.to_string()),
                 "choose the policy's index with Ownership::policy_index() (the index is storcrypt's ownership tag)");
  if (mark && p.mark != mark)
    return Error(ErrorCode::kInvalidInput, fmt::format("mark: {} must carry storcrypt's mark", p.to_string()),
                 "set the policy's mark to the configured ownership mark");
  return ok_status();
}

std::optional<std::uint32_t> Ownership::policy_index(std::uint32_t slot, Direction dir) const {
  const std::uint64_t base = (static_cast<std::uint64_t>(index_min) + 7) & ~std::uint64_t{7};
  const std::uint64_t idx = base + 8 * static_cast<std::uint64_t>(slot) + static_cast<std::uint64_t>(dir);
  if (idx > index_max || idx == 0) return std::nullopt;
  return static_cast<std::uint32_t>(idx);
}

Status BatchResult::first_error() const {
  if (failures.empty()) return ok_status();
  Error e = failures.front().second;
  return std::move(e).context(fmt::format("item {} of {}", failures.front().first, succeeded + failures.size()));
}

}  // namespace storcrypt::netlink
