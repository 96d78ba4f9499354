// storcrypt: typed model of XFRM security associations and policies.
//
// These types are what callers of XfrmApi see. No kernel structure leaks out
// of netlink/: the real implementation translates to and from
// <linux/xfrm.h> inside the library, the fake keeps these values in memory.
// Key material travels only in SecretBytes.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "storcrypt/common/ip.h"
#include "storcrypt/common/result.h"
#include "storcrypt/common/secret.h"

namespace storcrypt::netlink {

// The address model is the project's one (storcrypt/common/ip.h).
using storcrypt::Family;
using storcrypt::family_name;
using storcrypt::IpAddress;
using storcrypt::Prefix;

/// A port and bit mask as XFRM selectors hold them; mask 0 matches any port.
struct PortMatch {
  std::uint16_t port = 0;
  std::uint16_t mask = 0;

  static PortMatch any() { return {}; }
  static PortMatch exact(std::uint16_t p) { return {p, 0xffff}; }
  bool matches(std::uint16_t p) const { return (p & mask) == (port & mask); }
  /// Number of set bits in mask (used for priority specificity).
  unsigned mask_bits() const;
  friend bool operator==(const PortMatch&, const PortMatch&) = default;
};

/// Split the inclusive range [lo, hi] into the minimal list of port/mask
/// pairs that cover it exactly (a selector holds one pair, so a range that
/// is not a single mask needs several policies). lo > hi is an error.
Result<std::vector<PortMatch>> port_range_to_masks(std::uint16_t lo, std::uint16_t hi);
/// The single port/mask pair for [lo, hi], or an error naming `field` when
/// the range is not expressible as one mask.
Result<PortMatch> port_range_to_mask(std::uint16_t lo, std::uint16_t hi, std::string_view field = "port range");

inline constexpr std::uint8_t kProtoAny = 0;
inline constexpr std::uint8_t kProtoIcmp = 1;
inline constexpr std::uint8_t kProtoTcp = 6;
inline constexpr std::uint8_t kProtoUdp = 17;
inline constexpr std::uint8_t kProtoIcmpV6 = 58;

/// Traffic selector. For ICMP/ICMPv6 the type and code are kept in
/// icmp_type/icmp_code (the kernel stores them in the port fields).
struct Selector {
  Family family = Family::kIPv4;
  Prefix src = Prefix::any(Family::kIPv4);
  Prefix dst = Prefix::any(Family::kIPv4);
  std::uint8_t proto = kProtoAny;  ///< IP protocol number, 0 = any
  PortMatch sport;                 ///< TCP/UDP/SCTP only
  PortMatch dport;
  std::optional<std::uint8_t> icmp_type;  ///< ICMP/ICMPv6 only
  std::optional<std::uint8_t> icmp_code;
  int ifindex = 0;  ///< 0 = any interface

  /// Selector covering everything of one family.
  static Selector any(Family f);
  /// Selector between two prefixes (families must match).
  static Result<Selector> between(const Prefix& src, const Prefix& dst, std::uint8_t proto = kProtoAny);
  /// Does a packet with these fields match (user-space replica of the kernel match).
  bool matches(const IpAddress& s, const IpAddress& d, std::uint8_t proto, std::uint16_t sport,
               std::uint16_t dport) const;
  std::string to_string() const;
  friend bool operator==(const Selector&, const Selector&) = default;
};

enum class XfrmProto : std::uint8_t { kEsp = 50, kAh = 51 };
std::string_view proto_name(XfrmProto p);  ///< "esp" / "ah"

enum class Mode : std::uint8_t { kTransport = 0, kTunnel = 1 };
std::string_view mode_name(Mode m);

enum class Direction : std::uint8_t { kIn = 0, kOut = 1, kFwd = 2 };
std::string_view direction_name(Direction d);

enum class PolicyAction : std::uint8_t { kAllow = 0, kBlock = 1 };
std::string_view action_name(PolicyAction a);

/// Encryption algorithms. GCM keys are key || 4-byte salt (RFC 4106), ICV 16 bytes.
enum class EncAlgo : std::uint8_t {
  kNone,       ///< AH, or ESP with integrity only (sent as ecb(cipher_null) with an empty key)
  kAesCbc128,  ///< cbc(aes), 16-byte key
  kAesCbc192,  ///< cbc(aes), 24-byte key
  kAesCbc256,  ///< cbc(aes), 32-byte key
  kAesGcm128,  ///< rfc4106(gcm(aes)), 16 + 4 bytes
  kAesGcm256,  ///< rfc4106(gcm(aes)), 32 + 4 bytes
};
/// Integrity algorithms (HMAC with the RFC 4868 truncation).
enum class IntegAlgo : std::uint8_t {
  kNone,
  kHmacSha1_96,     ///< hmac(sha1), 20-byte key, 96-bit ICV
  kHmacSha256_128,  ///< hmac(sha256), 32-byte key, 128-bit ICV
  kHmacSha384_192,  ///< hmac(sha384), 48-byte key, 192-bit ICV
  kHmacSha512_256,  ///< hmac(sha512), 64-byte key, 256-bit ICV
};

std::string_view enc_name(EncAlgo a);      ///< "aes-gcm-256", "aes-cbc-128", "none"
std::string_view integ_name(IntegAlgo a);  ///< "hmac-sha256-128", "none"
/// Parse the names above; the error names `field` and lists the valid names.
Result<EncAlgo> parse_enc(std::string_view name, std::string_view field = "enc");
Result<IntegAlgo> parse_integ(std::string_view name, std::string_view field = "integ");
/// Kernel crypto API name ("rfc4106(gcm(aes))", "cbc(aes)", "hmac(sha384)"); "" for kNone.
std::string_view enc_kernel_name(EncAlgo a);
/// The cipher an ESP SA with enc=none (integrity only) carries: the kernel
/// refuses an ESP SA without XFRMA_ALG_CRYPT/AEAD, so it is sent with key length 0.
inline constexpr std::string_view kEspNullCipher = "ecb(cipher_null)";
std::string_view integ_kernel_name(IntegAlgo a);
/// Required key length in bytes (GCM includes the salt); 0 for kNone.
std::size_t enc_key_bytes(EncAlgo a);
std::size_t integ_key_bytes(IntegAlgo a);
/// ICV/truncation length in bits (GCM: 128; HMAC: truncation; 0 for kNone/CBC).
unsigned enc_icv_bits(EncAlgo a);
unsigned integ_trunc_bits(IntegAlgo a);
bool enc_is_aead(EncAlgo a);

/// Kernel mark + mask on SAs and policies.
struct Mark {
  std::uint32_t value = 0;
  std::uint32_t mask = 0xffffffff;
  friend bool operator==(const Mark&, const Mark&) = default;
};

/// Soft/hard limits; 0 means "no limit" (the kernel's XFRM_INF).
struct Lifetime {
  std::uint64_t soft_bytes = 0, hard_bytes = 0;
  std::uint64_t soft_packets = 0, hard_packets = 0;
  std::uint64_t soft_add_seconds = 0, hard_add_seconds = 0;
  std::uint64_t soft_use_seconds = 0, hard_use_seconds = 0;
  friend bool operator==(const Lifetime&, const Lifetime&) = default;
};

/// ESP-in-UDP (RFC 3948) encapsulation ports.
struct UdpEncap {
  std::uint16_t sport = 4500;
  std::uint16_t dport = 4500;
  friend bool operator==(const UdpEncap&, const UdpEncap&) = default;
};

/// What identifies one SA in the kernel: (dst, spi, proto) + mark.
struct SaId {
  IpAddress dst;
  std::uint32_t spi = 0;
  XfrmProto proto = XfrmProto::kEsp;
  std::optional<Mark> mark;
  std::string to_string() const;  ///< "esp spi=0x00001000 dst=192.0.2.2"
  friend bool operator==(const SaId&, const SaId&) = default;
};

/// SPIs 1..255 are reserved by IANA (RFC 4303 §2.1); 0 is "no SA".
inline constexpr std::uint32_t kMinSpi = 256;

/// One security association (move-only: it holds keys).
struct Sa {
  IpAddress src;
  IpAddress dst;
  std::uint32_t spi = 0;
  XfrmProto proto = XfrmProto::kEsp;
  Mode mode = Mode::kTunnel;
  std::uint32_t reqid = 0;

  EncAlgo enc = EncAlgo::kNone;
  SecretBytes enc_key;  ///< GCM: key || salt
  IntegAlgo integ = IntegAlgo::kNone;
  SecretBytes integ_key;
  /// ESP with encryption but no integrity is refused unless this is set;
  /// such an SA reports integrity_warning() == true.
  bool allow_no_integrity = false;

  std::uint32_t replay_window = 0;  ///< packets; 0 = no replay protection (outbound)
  bool esn = false;                 ///< 64-bit extended sequence numbers
  Lifetime lifetime;
  std::optional<Mark> mark;
  std::uint32_t if_id = 0;  ///< xfrm interface id, 0 = none
  std::optional<UdpEncap> encap;
  /// Inner selector; transport-mode SAs usually pin it to src/dst. nullopt = any.
  std::optional<Selector> selector;
  /// ACQUIRE sequence number to answer (0 = none); lets the kernel replace its larval state.
  std::uint32_t acquire_seq = 0;

  SaId id() const { return SaId{dst, spi, proto, mark}; }
  Family family() const { return dst.family; }
  bool integrity_warning() const { return proto == XfrmProto::kEsp && integ == IntegAlgo::kNone && !enc_is_aead(enc); }
  Sa clone() const;
  std::string to_string() const;  ///< summary without keys
};

/// Usage counters and error statistics the kernel keeps per SA.
struct SaCounters {
  std::uint64_t bytes = 0;
  std::uint64_t packets = 0;
  std::uint64_t add_time = 0;  ///< seconds since epoch
  std::uint64_t use_time = 0;
  std::uint32_t replay_window_errors = 0;  ///< stats.replay_window
  std::uint32_t replay_errors = 0;         ///< stats.replay
  std::uint32_t integrity_failed = 0;      ///< stats.integrity_failed
  std::uint64_t oseq = 0;                  ///< outbound sequence number (from the replay state)
  std::uint64_t seq = 0;                   ///< highest inbound sequence number
};

/// An SA as read back from the kernel.
struct SaState {
  Sa sa;
  SaCounters counters;
};

/// One template of a policy: which SA(s) the traffic must use.
struct Template {
  XfrmProto proto = XfrmProto::kEsp;
  Mode mode = Mode::kTunnel;
  Family family = Family::kIPv4;  ///< outer family (tunnel mode)
  IpAddress src;                  ///< tunnel endpoints; ignored in transport mode
  IpAddress dst;
  std::uint32_t reqid = 0;
  std::uint32_t spi = 0;  ///< 0 = any SA with this reqid
  bool optional = false;
  friend bool operator==(const Template&, const Template&) = default;
};

/// What identifies one policy in the kernel: (selector, dir, mark, if_id),
/// or its index when index != 0.
struct PolicyId {
  Selector selector;
  Direction dir = Direction::kOut;
  std::optional<Mark> mark;
  std::uint32_t if_id = 0;
  std::uint32_t index = 0;
  std::string to_string() const;
  friend bool operator==(const PolicyId&, const PolicyId&) = default;
};

/// One security policy.
struct Policy {
  Selector selector;
  Direction dir = Direction::kOut;
  PolicyAction action = PolicyAction::kAllow;
  std::uint32_t priority = 0;  ///< lower = preferred; always explicit
  std::vector<Template> templates;
  /// storcrypt's ownership tag (see Ownership): on add, an index from the
  /// owner's range with index % 8 == dir (0 = let the kernel choose, only for
  /// Ownership::all()); filled in on read back. An update keeps the index the
  /// installed policy has.
  std::uint32_t index = 0;
  std::optional<Mark> mark;
  std::uint32_t if_id = 0;
  Lifetime lifetime;

  PolicyId id() const { return PolicyId{selector, dir, mark, if_id, 0}; }
  std::string to_string() const;
  friend bool operator==(const Policy&, const Policy&) = default;
};

/// XFRM default action per direction when no policy matches (Linux >= 5.16).
struct DefaultPolicy {
  PolicyAction in = PolicyAction::kAllow;
  PolicyAction fwd = PolicyAction::kAllow;
  PolicyAction out = PolicyAction::kAllow;
  friend bool operator==(const DefaultPolicy&, const DefaultPolicy&) = default;
};

// ---- ownership: which kernel objects are storcrypt's ----------------------
//
// Other IPsec daemons (strongSwan's charon, libreswan's pluto, ...) share the
// kernel's SAD and SPD with storcrypt. storcrypt owns exactly the objects that
// carry its kernel-visible tag, one mechanism for everything it installs (the
// manual policy list now, IKE-negotiated SAs later):
//
//  * a policy is storcrypt's when its INDEX lies in [kOwnedIndexMin,
//    kOwnedIndexMax] (0xf0000000-0xffffffff, the top sixteenth of the index
//    space). The index is chosen by storcrypt on every add (the kernel honours
//    a user-chosen index when index % 8 == dir and the index is free:
//    verify_newpolicy_info() and xfrm_gen_index() in net/xfrm, Linux 6.1) and
//    does not take part in packet matching. Priority, selector, mark and
//    templates are free for the policy's meaning; in particular the priority
//    says nothing about the owner (charon uses roughly 68k..600k, the old
//    storcrypt band 1000+ would have overlapped any daemon's choice).
//    If the kernel does not honour the chosen index (it is taken), the add is
//    undone and refused (kConflict), so no storcrypt policy ever lives outside
//    the range. The kernel's own index generator starts at 0 and steps by 8:
//    it reaches the range only after ~500 million policy insertions with a
//    kernel-chosen index in one namespace.
//  * an SA is storcrypt's when its REQID lies in [kOwnedReqidMin,
//    kOwnedReqidMax] (0x5c000-0x7bfff; charon allocates reqids upwards from 1).
//    The SPI alone is no tag: the peer or the kernel chooses it.
//
// Sub-ranges: the manual policy list uses indexes [kOwnedIndexMin,
// kManualIndexMax] and reqids [kOwnedReqidMin, kManualReqidMax]; the upper
// halves are reserved for IKE-negotiated policies and SAs, so disabling one
// never removes the other's objects.
//
// Objects outside an Ownership scope (any priority, any reqid or index outside
// the range) are never listed as owned, never modified and never deleted.
inline constexpr std::uint32_t kOwnedIndexMin = 0xf0000000u;
inline constexpr std::uint32_t kOwnedIndexMax = 0xffffffffu;
inline constexpr std::uint32_t kManualIndexMax = 0xf7ffffffu;
inline constexpr std::uint32_t kOwnedReqidMin = 0x5c000u;
inline constexpr std::uint32_t kOwnedReqidMax = 0x7bfffu;
inline constexpr std::uint32_t kManualReqidMax = 0x6bfffu;
inline constexpr std::uint32_t kIkeIndexMin = kManualIndexMax + 1;  ///< 0xf8000000
inline constexpr std::uint32_t kIkeReqidMin = kManualReqidMax + 1;  ///< 0x6c000

/// The slice of the kernel's SAD/SPD one XfrmApi instance owns (see above).
/// An SA is owned when its reqid is in [reqid_min, reqid_max], a policy when
/// its index is in [index_min, index_max]; both also need `mark` when set.
/// Adding a policy needs an index in the range (index 0, "kernel chooses",
/// is allowed only when 0 is in the range, as with all()).
struct Ownership {
  std::uint32_t reqid_min = 0;
  std::uint32_t reqid_max = 0xffffffff;
  std::uint32_t index_min = 0;
  std::uint32_t index_max = 0xffffffff;
  std::optional<Mark> mark;

  /// Everything (for tools and tests that own their whole namespace).
  static Ownership all() { return {}; }
  /// Everything storcrypt installs (the manual list and IKE alike).
  static Ownership storcrypt() { return {kOwnedReqidMin, kOwnedReqidMax, kOwnedIndexMin, kOwnedIndexMax, {}}; }
  /// The manual policy list's lower halves: reqids [kOwnedReqidMin,
  /// kManualReqidMax], indexes [kOwnedIndexMin, kManualIndexMax] (what
  /// policy::installer_ownership() builds with the default reqid_base).
  static Ownership manual() { return {kOwnedReqidMin, kManualReqidMax, kOwnedIndexMin, kManualIndexMax, {}}; }
  /// IKE-negotiated CHILD_SAs' upper halves: reqids [kIkeReqidMin,
  /// kOwnedReqidMax], indexes [kIkeIndexMin, kOwnedIndexMax] (ike/xfrm_kernel.h).
  static Ownership ike() { return {kIkeReqidMin, kOwnedReqidMax, kIkeIndexMin, kOwnedIndexMax, {}}; }
  bool owns_reqid(std::uint32_t reqid) const { return reqid >= reqid_min && reqid <= reqid_max; }
  bool owns_index(std::uint32_t index) const { return index >= index_min && index <= index_max; }
  bool owns(const Sa& sa) const;
  bool owns(const Policy& p) const;
  /// The error an add/update of an object outside this scope returns
  /// (kInvalidInput naming the reqid/index/mark), or ok. Shared by every
  /// XfrmApi implementation so they refuse alike.
  Status require_owned(const Sa& sa) const;
  Status require_owned(const Policy& p) const;
  /// The index of slot `slot` for direction `dir`: index_min rounded up to a
  /// multiple of 8, plus 8 * slot, plus dir; nullopt when beyond index_max.
  std::optional<std::uint32_t> policy_index(std::uint32_t slot, Direction dir) const;
};

/// Check an SA before it goes to the kernel: algorithm/key lengths, SPI
/// range, replay window, AH/ESP combinations. Errors are kInvalidInput and
/// name the field ("enc_key", "spi", "integ", ...).
Status validate(const Sa& sa);
/// Check a policy: selector families/prefixes/ports, templates, priority.
Status validate(const Policy& p);
Status validate(const Selector& s, std::string_view field = "selector");

// ---- events -----------------------------------------------------------------

/// The kernel wants an SA for traffic matching a policy (XFRM_MSG_ACQUIRE).
struct AcquireEvent {
  Selector selector;  ///< the packet's selector
  XfrmProto proto = XfrmProto::kEsp;
  IpAddress src;  ///< outer addresses from the template
  IpAddress dst;
  std::uint32_t reqid = 0;  ///< from the first template
  std::uint32_t seq = 0;    ///< echo in Sa::acquire_seq
  std::uint32_t policy_index = 0;
  Direction policy_dir = Direction::kOut;
};

/// An SA reached a soft or hard limit (XFRM_MSG_EXPIRE).
struct SaExpireEvent {
  SaId id;
  IpAddress src;
  std::uint32_t reqid = 0;
  bool hard = false;
};

/// A policy reached a lifetime limit (XFRM_MSG_POLEXPIRE).
struct PolicyExpireEvent {
  PolicyId id;
  std::uint32_t priority = 0;
  bool hard = false;
};

}  // namespace storcrypt::netlink
