// storcrypt IKEv2: message codec (RFC 7296 §3, RFC 7383 SKF).
//
// parse() takes untrusted bytes from the network and returns either a typed
// Message or a kProtocol Error; it never throws and never reads outside the
// given span. Every field that is on the wire is kept (including reserved
// bits and the critical flag), so serialize(parse(x)) == x for every x that
// parses. Payload lengths, next-payload fields and the header length are not
// stored: serialize() derives them.
//
// Parsing is syntactic. Semantic checks (which payloads an exchange needs,
// nonce lengths, SPI sizes per protocol) belong to the exchange layer; the one
// exception is unsupported_critical_payload(), which RFC 7296 §2.5 asks every
// receiver to apply before anything else.
//
// The SK (46) and SKF (53) payloads are opaque containers here: their body
// (IV, ciphertext, ICV) is kept as bytes and sk.h decrypts it and parses the
// inner payload chain with parse_payload_chain().
//
// Error names (Error::name()) say which notify the responder should answer:
//   xIkeInvalidSyntax       -> INVALID_SYNTAX (7)
//   xIkeInvalidMajorVersion -> INVALID_MAJOR_VERSION (5)
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string_view>
#include <variant>
#include <vector>

#include "storcrypt/common/result.h"

namespace storcrypt::ike {

using Bytes = std::vector<std::uint8_t>;

inline constexpr std::size_t kHeaderSize = 28;
inline constexpr std::size_t kGenericHeaderSize = 4;
/// Messages larger than this are refused (RFC 7296 allows 2^32; no sane peer
/// sends more than a few fragments' worth in one datagram).
inline constexpr std::size_t kMaxMessageSize = 65535;

enum class ExchangeType : std::uint8_t {
  kIkeSaInit = 34,
  kIkeAuth = 35,
  kCreateChildSa = 36,
  kInformational = 37,
};

/// Header flags (RFC 7296 §3.1).
inline constexpr std::uint8_t kFlagInitiator = 0x08;
inline constexpr std::uint8_t kFlagVersion = 0x10;
inline constexpr std::uint8_t kFlagResponse = 0x20;

enum class PayloadType : std::uint8_t {
  kNone = 0,
  kSa = 33,
  kKe = 34,
  kIdi = 35,
  kIdr = 36,
  kCert = 37,
  kCertReq = 38,
  kAuth = 39,
  kNonce = 40,
  kNotify = 41,
  kDelete = 42,
  kVendor = 43,
  kTsi = 44,
  kTsr = 45,
  kSk = 46,
  kCp = 47,
  kEap = 48,
  kSkf = 53,
};
std::string_view payload_type_name(std::uint8_t type);

enum class ProtocolId : std::uint8_t { kNone = 0, kIke = 1, kAh = 2, kEsp = 3 };

enum class TransformType : std::uint8_t { kEncr = 1, kPrf = 2, kInteg = 3, kKe = 4, kEsn = 5 };

/// Transform IDs used by the default suites (IANA "IKEv2 Parameters").
namespace transform_id {
inline constexpr std::uint16_t kEncrAesCbc = 12;
inline constexpr std::uint16_t kEncrAesGcm8 = 18;
inline constexpr std::uint16_t kEncrAesGcm12 = 19;
inline constexpr std::uint16_t kEncrAesGcm16 = 20;
inline constexpr std::uint16_t kPrfHmacSha256 = 5;
inline constexpr std::uint16_t kPrfHmacSha384 = 6;
inline constexpr std::uint16_t kPrfHmacSha512 = 7;
inline constexpr std::uint16_t kIntegNone = 0;
inline constexpr std::uint16_t kIntegHmacSha256_128 = 12;
inline constexpr std::uint16_t kIntegHmacSha384_192 = 13;
inline constexpr std::uint16_t kIntegHmacSha512_256 = 14;
inline constexpr std::uint16_t kGroupEcp256 = 19;
inline constexpr std::uint16_t kGroupEcp384 = 20;
inline constexpr std::uint16_t kGroupEcp521 = 21;
inline constexpr std::uint16_t kGroupCurve25519 = 31;
inline constexpr std::uint16_t kEsnNo = 0;
inline constexpr std::uint16_t kEsnYes = 1;
}  // namespace transform_id

/// Transform attribute type Key Length (RFC 7296 §3.3.5), always TV.
inline constexpr std::uint16_t kAttrKeyLength = 14;

/// Notify message types (IANA "IKEv2 Notify Message Types").
namespace notify {
inline constexpr std::uint16_t kUnsupportedCriticalPayload = 1;
inline constexpr std::uint16_t kInvalidIkeSpi = 4;
inline constexpr std::uint16_t kInvalidMajorVersion = 5;
inline constexpr std::uint16_t kInvalidSyntax = 7;
inline constexpr std::uint16_t kInvalidMessageId = 9;
inline constexpr std::uint16_t kInvalidSpi = 11;
inline constexpr std::uint16_t kNoProposalChosen = 14;
inline constexpr std::uint16_t kInvalidKePayload = 17;
inline constexpr std::uint16_t kAuthenticationFailed = 24;
inline constexpr std::uint16_t kSinglePairRequired = 34;
inline constexpr std::uint16_t kNoAdditionalSas = 35;
inline constexpr std::uint16_t kInternalAddressFailure = 36;
inline constexpr std::uint16_t kFailedCpRequired = 37;
inline constexpr std::uint16_t kTsUnacceptable = 38;
inline constexpr std::uint16_t kInvalidSelectors = 39;
inline constexpr std::uint16_t kTemporaryFailure = 43;
inline constexpr std::uint16_t kChildSaNotFound = 44;
inline constexpr std::uint16_t kInitialContact = 16384;
inline constexpr std::uint16_t kSetWindowSize = 16385;
inline constexpr std::uint16_t kAdditionalTsPossible = 16386;
inline constexpr std::uint16_t kIpcompSupported = 16387;
inline constexpr std::uint16_t kNatDetectionSourceIp = 16388;
inline constexpr std::uint16_t kNatDetectionDestinationIp = 16389;
inline constexpr std::uint16_t kCookie = 16390;
inline constexpr std::uint16_t kUseTransportMode = 16391;
inline constexpr std::uint16_t kRekeySa = 16393;
inline constexpr std::uint16_t kEspTfcPaddingNotSupported = 16394;
inline constexpr std::uint16_t kIkev2FragmentationSupported = 16430;
inline constexpr std::uint16_t kSignatureHashAlgorithms = 16431;
/// Types below this are errors (RFC 7296 §3.10.1).
inline constexpr std::uint16_t kFirstStatusType = 16384;
}  // namespace notify

/// ID types (RFC 7296 §3.5).
namespace id_type {
inline constexpr std::uint8_t kIpv4Addr = 1;
inline constexpr std::uint8_t kFqdn = 2;
inline constexpr std::uint8_t kRfc822Addr = 3;
inline constexpr std::uint8_t kIpv6Addr = 5;
inline constexpr std::uint8_t kDerAsn1Dn = 9;
inline constexpr std::uint8_t kDerAsn1Gn = 10;
inline constexpr std::uint8_t kKeyId = 11;
}  // namespace id_type

/// AUTH methods (RFC 7296 §3.8, RFC 4754, RFC 7427).
namespace auth_method {
inline constexpr std::uint8_t kRsaSig = 1;
inline constexpr std::uint8_t kSharedKey = 2;
inline constexpr std::uint8_t kEcdsaSha256P256 = 9;
inline constexpr std::uint8_t kEcdsaSha384P384 = 10;
inline constexpr std::uint8_t kEcdsaSha512P521 = 11;
inline constexpr std::uint8_t kDigitalSignature = 14;
}  // namespace auth_method

/// CERT / CERTREQ encodings (RFC 7296 §3.6).
inline constexpr std::uint8_t kCertX509Signature = 4;

/// Traffic selector types (RFC 7296 §3.13.1).
inline constexpr std::uint8_t kTsIpv4AddrRange = 7;
inline constexpr std::uint8_t kTsIpv6AddrRange = 8;

/// Hash algorithm IDs for SIGNATURE_HASH_ALGORITHMS (RFC 7427 §7).
namespace hash_alg {
inline constexpr std::uint16_t kSha1 = 1;
inline constexpr std::uint16_t kSha256 = 2;
inline constexpr std::uint16_t kSha384 = 3;
inline constexpr std::uint16_t kSha512 = 4;
}  // namespace hash_alg

// ---------------------------------------------------------------------------
// Payload bodies

/// Transform attribute (RFC 7296 §3.3.5). TV (AF=1) attributes carry a 16-bit
/// value; TLV attributes carry bytes.
struct Attribute {
  std::uint16_t type = 0;  ///< 15 bits
  bool tv = true;
  std::uint16_t value = 0;  ///< TV only
  Bytes data;               ///< TLV only
  bool operator==(const Attribute&) const = default;
};

struct Transform {
  TransformType type = TransformType::kEncr;
  std::uint16_t id = 0;
  std::vector<Attribute> attributes;
  std::uint8_t reserved1 = 0;  ///< after "last substruc" (ignored on receipt, kept for round trips)
  std::uint8_t reserved2 = 0;  ///< after "transform type"
  /// Key Length attribute value in bits, if present.
  std::optional<std::uint16_t> key_length() const;
  static Transform make(TransformType type, std::uint16_t id, std::optional<std::uint16_t> key_bits = std::nullopt);
  bool operator==(const Transform&) const = default;
};

struct Proposal {
  std::uint8_t number = 1;
  ProtocolId protocol = ProtocolId::kIke;
  Bytes spi;  ///< 0 bytes (IKE_SA_INIT), 8 (IKE rekey) or 4 (ESP/AH)
  std::vector<Transform> transforms;
  std::uint8_t reserved = 0;
  bool operator==(const Proposal&) const = default;
};

struct SaPayload {
  std::vector<Proposal> proposals;
  bool operator==(const SaPayload&) const = default;
};

struct KePayload {
  std::uint16_t group = 0;
  std::uint16_t reserved = 0;
  Bytes data;  ///< the public value (ECP: x || y, RFC 5903 §7)
  bool operator==(const KePayload&) const = default;
};

struct NoncePayload {
  Bytes data;
  bool operator==(const NoncePayload&) const = default;
};

struct NotifyPayload {
  ProtocolId protocol = ProtocolId::kNone;
  Bytes spi;
  std::uint16_t type = 0;
  Bytes data;
  bool is_error() const { return type < notify::kFirstStatusType; }
  bool operator==(const NotifyPayload&) const = default;
};

/// IDi or IDr (the Payload's type says which).
struct IdPayload {
  std::uint8_t id_type = 0;
  std::array<std::uint8_t, 3> reserved{};
  Bytes data;
  bool operator==(const IdPayload&) const = default;
};

/// CERT or CERTREQ (the Payload's type says which).
struct CertPayload {
  std::uint8_t encoding = kCertX509Signature;
  Bytes data;
  bool operator==(const CertPayload&) const = default;
};

struct AuthPayload {
  std::uint8_t method = 0;
  std::array<std::uint8_t, 3> reserved{};
  Bytes data;
  bool operator==(const AuthPayload&) const = default;
};

struct TrafficSelector {
  std::uint8_t ts_type = kTsIpv4AddrRange;
  std::uint8_t ip_protocol = 0;  ///< 0 = any
  std::uint16_t start_port = 0;
  std::uint16_t end_port = 65535;
  Bytes start_address;  ///< 4 or 16 bytes for types 7/8
  Bytes end_address;
  Bytes other;  ///< body of a selector type this codec does not know (after the 4-byte type/length)
  bool operator==(const TrafficSelector&) const = default;
};

/// TSi or TSr (the Payload's type says which).
struct TsPayload {
  std::array<std::uint8_t, 3> reserved{};
  std::vector<TrafficSelector> selectors;
  bool operator==(const TsPayload&) const = default;
};

struct DeletePayload {
  ProtocolId protocol = ProtocolId::kEsp;
  std::uint8_t spi_size = 4;  ///< 0 for IKE, 4 for ESP/AH
  std::vector<Bytes> spis;    ///< each spi_size bytes
  bool operator==(const DeletePayload&) const = default;
};

struct VendorPayload {
  Bytes data;
  bool operator==(const VendorPayload&) const = default;
};

/// SK (RFC 7296 §3.14): `next` is the type of the first inner payload;
/// `data` is IV || ciphertext || ICV, decrypted by sk.h.
struct SkPayload {
  std::uint8_t next = 0;
  Bytes data;
  bool operator==(const SkPayload&) const = default;
};

/// SKF (RFC 7383 §2.5): `next` is the first inner payload's type in fragment
/// 1 and 0 in the others.
struct SkfPayload {
  std::uint8_t next = 0;
  std::uint16_t fragment_number = 1;
  std::uint16_t total_fragments = 1;
  Bytes data;  ///< IV || ciphertext || ICV
  bool operator==(const SkfPayload&) const = default;
};

/// A payload of a type this codec does not decode (CP, EAP, future types).
struct RawPayload {
  Bytes data;
  bool operator==(const RawPayload&) const = default;
};

using PayloadBody = std::variant<SaPayload, KePayload, NoncePayload, NotifyPayload, IdPayload, CertPayload, AuthPayload,
                                 TsPayload, DeletePayload, VendorPayload, SkPayload, SkfPayload, RawPayload>;

struct Payload {
  std::uint8_t type = 0;  ///< PayloadType value
  /// Generic header byte 2: bit 0x80 critical, the rest RESERVED (kept as received).
  std::uint8_t flags = 0;
  PayloadBody body;

  bool critical() const { return (flags & 0x80) != 0; }
  bool operator==(const Payload&) const = default;

  static Payload sa(SaPayload p) { return {static_cast<std::uint8_t>(PayloadType::kSa), 0, std::move(p)}; }
  static Payload ke(KePayload p) { return {static_cast<std::uint8_t>(PayloadType::kKe), 0, std::move(p)}; }
  static Payload nonce(Bytes n) {
    return {static_cast<std::uint8_t>(PayloadType::kNonce), 0, NoncePayload{std::move(n)}};
  }
  static Payload notification(std::uint16_t type, Bytes data = {}, ProtocolId proto = ProtocolId::kNone,
                              Bytes spi = {}) {
    return {static_cast<std::uint8_t>(PayloadType::kNotify), 0,
            NotifyPayload{proto, std::move(spi), type, std::move(data)}};
  }
  static Payload of(PayloadType t, PayloadBody b) { return {static_cast<std::uint8_t>(t), 0, std::move(b)}; }
};

struct Header {
  std::uint64_t spi_i = 0;
  std::uint64_t spi_r = 0;
  std::uint8_t version = 0x20;  ///< major 2, minor 0
  std::uint8_t exchange = static_cast<std::uint8_t>(ExchangeType::kIkeSaInit);
  std::uint8_t flags = kFlagInitiator;
  std::uint32_t message_id = 0;

  bool is_response() const { return (flags & kFlagResponse) != 0; }
  bool from_initiator() const { return (flags & kFlagInitiator) != 0; }
  bool operator==(const Header&) const = default;
};

struct Message {
  Header header;
  std::vector<Payload> payloads;

  /// First payload of `type` (and, for notifies, of notify type `notify_type`).
  const Payload* find(PayloadType type) const;
  const NotifyPayload* find_notify(std::uint16_t notify_type) const;
  bool operator==(const Message&) const = default;
};

/// Header fields as received, before the payloads are looked at, so that a
/// responder can answer INVALID_MAJOR_VERSION or match the SPIs of a message
/// it cannot parse. Needs at least kHeaderSize bytes.
struct RawHeader {
  Header header;
  std::uint8_t next_payload = 0;
  std::uint32_t length = 0;
};
Result<RawHeader> parse_header(std::span<const std::uint8_t> bytes);

/// Parse a whole IKE message (a UDP payload on port 500, or on port 4500
/// after strip_non_esp_marker()). The header's length must equal bytes.size().
Result<Message> parse(std::span<const std::uint8_t> bytes);

/// Parse a payload chain that starts with a payload of type `first` (the
/// decrypted content of SK/SKF). SK and SKF are refused inside it.
Result<std::vector<Payload>> parse_payload_chain(std::uint8_t first, std::span<const std::uint8_t> bytes);

/// Encode a message. Fails (kInvalidInput) when a field cannot be encoded
/// (a body over 65535 bytes, a SPI longer than 255 bytes, SK/SKF not last).
Result<Bytes> serialize(const Message& m);

/// Encode a payload chain (the plaintext of SK); the first payload's type is
/// the SK payload's `next`.
Result<Bytes> serialize_payload_chain(std::span<const Payload> payloads);

/// The type of the first payload with the critical bit set whose type this
/// implementation does not understand (RFC 7296 §2.5: answer
/// UNSUPPORTED_CRITICAL_PAYLOAD with it as data), or nullopt.
std::optional<std::uint8_t> unsupported_critical_payload(std::span<const Payload> payloads);

// ---------------------------------------------------------------------------
// Notify data helpers

/// SIGNATURE_HASH_ALGORITHMS data: a list of 16-bit hash IDs.
Bytes encode_hash_algorithms(std::span<const std::uint16_t> ids);
Result<std::vector<std::uint16_t>> decode_hash_algorithms(std::span<const std::uint8_t> data);
/// INVALID_KE_PAYLOAD data: the 16-bit group the responder wants.
Bytes encode_invalid_ke(std::uint16_t group);
Result<std::uint16_t> decode_invalid_ke(std::span<const std::uint8_t> data);
/// REKEY_SA / DELETE helpers: the 4-byte ESP SPI in network order.
Bytes spi_bytes(std::uint32_t spi);

// ---------------------------------------------------------------------------
// UDP port 4500 (RFC 3948 §2.2, RFC 7296 §2.23)

enum class Udp4500Kind {
  kIke,        ///< non-ESP marker (4 zero bytes) + IKE message
  kEsp,        ///< UDP-encapsulated ESP (first 4 bytes are a nonzero SPI)
  kKeepalive,  ///< NAT-keepalive (one 0xFF byte)
  kInvalid,    ///< too short to be any of these
};
struct Udp4500Datagram {
  Udp4500Kind kind = Udp4500Kind::kInvalid;
  std::span<const std::uint8_t> payload;  ///< the IKE message (marker stripped) or the ESP packet
};
Udp4500Datagram classify_udp4500(std::span<const std::uint8_t> datagram);
/// Prefix an IKE message with the non-ESP marker for sending on port 4500.
Bytes add_non_esp_marker(std::span<const std::uint8_t> ike_message);

}  // namespace storcrypt::ike
