#include "storcrypt/ike/message.h"

#include <cstring>
#include <string>

#include "wire.h"

namespace storcrypt::ike {

namespace {

constexpr auto kSkType = static_cast<std::uint8_t>(PayloadType::kSk);
constexpr auto kSkfType = static_cast<std::uint8_t>(PayloadType::kSkf);

Error syntax(std::string what) {
  return Error(ErrorCode::kProtocol, "malformed IKE message: " + what, {}, "xIkeInvalidSyntax");
}

std::string where(std::uint8_t type, std::size_t offset) {
  return std::string(payload_type_name(type)) + " payload at offset " + std::to_string(offset);
}

// ---- decoders (body = the payload after its generic header) ---------------

Result<std::vector<Attribute>> decode_attributes(Reader r) {
  std::vector<Attribute> out;
  while (!r.empty()) {
    std::uint16_t t = 0, v = 0;
    if (!r.u16(t) || !r.u16(v)) return syntax("truncated transform attribute");
    Attribute a;
    a.type = t & 0x7FFF;
    a.tv = (t & 0x8000) != 0;
    if (a.tv) {
      a.value = v;
    } else {
      std::span<const std::uint8_t> d;
      if (!r.take(v, d)) return syntax("transform attribute length exceeds the transform");
      a.data.assign(d.begin(), d.end());
    }
    out.push_back(std::move(a));
  }
  return out;
}

Result<SaPayload> decode_sa(Reader r) {
  SaPayload sa;
  bool more = !r.empty();
  while (more) {
    std::uint8_t last = 0, reserved = 0, number = 0, proto = 0, spi_size = 0, ntrans = 0;
    std::uint16_t plen = 0;
    const std::size_t start = r.pos();
    if (!r.u8(last) || !r.u8(reserved) || !r.u16(plen) || !r.u8(number) || !r.u8(proto) || !r.u8(spi_size) ||
        !r.u8(ntrans))
      return syntax("truncated proposal");
    if (plen < 8 || plen - 8u > r.remaining()) return syntax("proposal length " + std::to_string(plen) + " is wrong");
    if (last != 0 && last != 2) return syntax("proposal 'last substruc' is " + std::to_string(last));
    Reader pr = r.sub(plen - 8u);
    Proposal p;
    p.number = number;
    p.protocol = static_cast<ProtocolId>(proto);
    p.reserved = reserved;
    std::span<const std::uint8_t> spi;
    if (!pr.take(spi_size, spi)) return syntax("proposal SPI size exceeds the proposal");
    p.spi.assign(spi.begin(), spi.end());
    for (unsigned i = 0; i < ntrans; ++i) {
      std::uint8_t tlast = 0, r1 = 0, type = 0, r2 = 0;
      std::uint16_t tlen = 0, id = 0;
      if (!pr.u8(tlast) || !pr.u8(r1) || !pr.u16(tlen) || !pr.u8(type) || !pr.u8(r2) || !pr.u16(id))
        return syntax("truncated transform");
      if (tlen < 8 || tlen - 8u > pr.remaining())
        return syntax("transform length " + std::to_string(tlen) + " is wrong");
      const bool is_last = i + 1 == ntrans;
      if (tlast != (is_last ? 0 : 3)) return syntax("transform 'last substruc' disagrees with the transform count");
      STORCRYPT_ASSIGN_OR_RETURN(auto attrs, decode_attributes(pr.sub(tlen - 8u)));
      Transform t;
      t.type = static_cast<TransformType>(type);
      t.id = id;
      t.reserved1 = r1;
      t.reserved2 = r2;
      t.attributes = std::move(attrs);
      p.transforms.push_back(std::move(t));
    }
    if (!pr.empty()) return syntax("proposal has bytes after its transforms");
    more = !r.empty();
    if (more != (last == 2))
      return syntax("proposal at offset " + std::to_string(start) + ": 'last substruc' disagrees with the SA length");
    sa.proposals.push_back(std::move(p));
  }
  return sa;
}

Result<TsPayload> decode_ts(Reader r) {
  TsPayload ts;
  std::uint8_t count = 0;
  if (!r.u8(count) || !r.u8(ts.reserved[0]) || !r.u8(ts.reserved[1]) || !r.u8(ts.reserved[2]))
    return syntax("truncated traffic selector payload");
  for (unsigned i = 0; i < count; ++i) {
    TrafficSelector s;
    std::uint16_t len = 0;
    if (!r.u8(s.ts_type) || !r.u8(s.ip_protocol) || !r.u16(len)) return syntax("truncated traffic selector");
    if (len < 4 || len - 4u > r.remaining())
      return syntax("traffic selector length " + std::to_string(len) + " is wrong");
    Reader sr = r.sub(len - 4u);
    if (s.ts_type == kTsIpv4AddrRange || s.ts_type == kTsIpv6AddrRange) {
      const std::size_t alen = s.ts_type == kTsIpv4AddrRange ? 4 : 16;
      if (len != 8 + 2 * alen) return syntax("traffic selector length " + std::to_string(len) + " for its type");
      std::span<const std::uint8_t> a, b;
      if (!sr.u16(s.start_port) || !sr.u16(s.end_port) || !sr.take(alen, a) || !sr.take(alen, b))
        return syntax("truncated traffic selector");
      s.start_address.assign(a.begin(), a.end());
      s.end_address.assign(b.begin(), b.end());
    } else {
      auto rest = sr.rest();
      s.other.assign(rest.begin(), rest.end());
      s.start_port = 0;
      s.end_port = 0;
    }
    ts.selectors.push_back(std::move(s));
  }
  if (!r.empty()) return syntax("traffic selector payload has bytes after its selectors");
  return ts;
}

Result<PayloadBody> decode_body(std::uint8_t type, std::span<const std::uint8_t> body) {
  Reader r(body);
  switch (static_cast<PayloadType>(type)) {
    case PayloadType::kSa: {
      STORCRYPT_ASSIGN_OR_RETURN(auto sa, decode_sa(r));
      return PayloadBody(std::move(sa));
    }
    case PayloadType::kKe: {
      KePayload ke;
      if (!r.u16(ke.group) || !r.u16(ke.reserved)) return syntax("truncated KE payload");
      ke.data = r.rest_bytes();
      return PayloadBody(std::move(ke));
    }
    case PayloadType::kNonce:
      return PayloadBody(NoncePayload{r.rest_bytes()});
    case PayloadType::kNotify: {
      NotifyPayload n;
      std::uint8_t proto = 0, spi_size = 0;
      std::span<const std::uint8_t> spi;
      if (!r.u8(proto) || !r.u8(spi_size) || !r.u16(n.type)) return syntax("truncated notify payload");
      if (!r.take(spi_size, spi)) return syntax("notify SPI size exceeds the payload");
      n.protocol = static_cast<ProtocolId>(proto);
      n.spi.assign(spi.begin(), spi.end());
      n.data = r.rest_bytes();
      return PayloadBody(std::move(n));
    }
    case PayloadType::kIdi:
    case PayloadType::kIdr: {
      IdPayload id;
      if (!r.u8(id.id_type) || !r.u8(id.reserved[0]) || !r.u8(id.reserved[1]) || !r.u8(id.reserved[2]))
        return syntax("truncated ID payload");
      id.data = r.rest_bytes();
      return PayloadBody(std::move(id));
    }
    case PayloadType::kCert:
    case PayloadType::kCertReq: {
      CertPayload c;
      if (!r.u8(c.encoding)) return syntax("truncated CERT/CERTREQ payload");
      c.data = r.rest_bytes();
      return PayloadBody(std::move(c));
    }
    case PayloadType::kAuth: {
      AuthPayload a;
      if (!r.u8(a.method) || !r.u8(a.reserved[0]) || !r.u8(a.reserved[1]) || !r.u8(a.reserved[2]))
        return syntax("truncated AUTH payload");
      a.data = r.rest_bytes();
      return PayloadBody(std::move(a));
    }
    case PayloadType::kTsi:
    case PayloadType::kTsr: {
      STORCRYPT_ASSIGN_OR_RETURN(auto ts, decode_ts(r));
      return PayloadBody(std::move(ts));
    }
    case PayloadType::kDelete: {
      DeletePayload d;
      std::uint8_t proto = 0;
      std::uint16_t num = 0;
      if (!r.u8(proto) || !r.u8(d.spi_size) || !r.u16(num)) return syntax("truncated delete payload");
      d.protocol = static_cast<ProtocolId>(proto);
      if (d.spi_size == 0 && num != 0) return syntax("delete payload lists SPIs of size 0");
      if (static_cast<std::size_t>(num) * d.spi_size != r.remaining())
        return syntax("delete payload SPI count disagrees with its length");
      for (unsigned i = 0; i < num; ++i) {
        std::span<const std::uint8_t> s;
        r.take(d.spi_size, s);
        d.spis.emplace_back(s.begin(), s.end());
      }
      return PayloadBody(std::move(d));
    }
    case PayloadType::kVendor:
      return PayloadBody(VendorPayload{r.rest_bytes()});
    case PayloadType::kSkf: {
      SkfPayload f;
      if (!r.u16(f.fragment_number) || !r.u16(f.total_fragments)) return syntax("truncated SKF payload");
      if (f.fragment_number == 0 || f.total_fragments == 0 || f.fragment_number > f.total_fragments)
        return syntax("SKF fragment " + std::to_string(f.fragment_number) + " of " + std::to_string(f.total_fragments));
      f.data = r.rest_bytes();
      return PayloadBody(std::move(f));
    }
    case PayloadType::kSk:
      return PayloadBody(SkPayload{0, r.rest_bytes()});
    default:
      return PayloadBody(RawPayload{r.rest_bytes()});
  }
}

Result<std::vector<Payload>> decode_chain(std::uint8_t first, std::span<const std::uint8_t> bytes, bool allow_sk,
                                          std::size_t base_offset) {
  std::vector<Payload> out;
  Reader r(bytes);
  std::uint8_t type = first;
  while (type != 0) {
    const std::size_t at = base_offset + r.pos();
    std::uint8_t next = 0, flags = 0;
    std::uint16_t len = 0;
    if (!r.u8(next) || !r.u8(flags) || !r.u16(len)) return syntax("truncated generic header of " + where(type, at));
    if (len < kGenericHeaderSize || len - kGenericHeaderSize > r.remaining())
      return syntax("length " + std::to_string(len) + " of " + where(type, at) + " is wrong");
    std::span<const std::uint8_t> body;
    r.take(len - kGenericHeaderSize, body);
    Payload p;
    p.type = type;
    p.flags = flags;
    if (type == kSkType || type == kSkfType) {
      if (!allow_sk) return syntax(where(type, at) + " inside an encrypted payload");
      if (!r.empty()) return syntax(where(type, at) + " is not the last payload");
      STORCRYPT_ASSIGN_OR_RETURN(p.body, decode_body(type, body));
      if (auto* sk = std::get_if<SkPayload>(&p.body)) sk->next = next;
      if (auto* skf = std::get_if<SkfPayload>(&p.body)) skf->next = next;
      out.push_back(std::move(p));
      return out;
    }
    auto b = decode_body(type, body);
    if (!b.ok()) return std::move(b).error().context(where(type, at));
    p.body = std::move(b).value();
    out.push_back(std::move(p));
    type = next;
  }
  if (!r.empty()) return syntax(std::to_string(r.remaining()) + " bytes after the last payload");
  return out;
}

// ---- encoders --------------------------------------------------------------

Error encode_error(std::string what) { return Error(ErrorCode::kInvalidInput, "cannot encode IKE message: " + what); }

Status encode_sa(Writer& w, const SaPayload& sa) {
  for (std::size_t i = 0; i < sa.proposals.size(); ++i) {
    const Proposal& p = sa.proposals[i];
    if (p.spi.size() > 255 || p.transforms.size() > 255) return encode_error("proposal SPI or transform list too long");
    const std::size_t start = w.size();
    w.u8(i + 1 == sa.proposals.size() ? 0 : 2);
    w.u8(p.reserved);
    w.u16(0);  // length, patched below
    w.u8(p.number);
    w.u8(static_cast<std::uint8_t>(p.protocol));
    w.u8(static_cast<std::uint8_t>(p.spi.size()));
    w.u8(static_cast<std::uint8_t>(p.transforms.size()));
    w.bytes(p.spi);
    for (std::size_t j = 0; j < p.transforms.size(); ++j) {
      const Transform& t = p.transforms[j];
      const std::size_t tstart = w.size();
      w.u8(j + 1 == p.transforms.size() ? 0 : 3);
      w.u8(t.reserved1);
      w.u16(0);
      w.u8(static_cast<std::uint8_t>(t.type));
      w.u8(t.reserved2);
      w.u16(t.id);
      for (const Attribute& a : t.attributes) {
        if (a.type > 0x7FFF) return encode_error("attribute type over 15 bits");
        if (a.tv) {
          w.u16(0x8000 | a.type);
          w.u16(a.value);
        } else {
          if (a.data.size() > 0xFFFF) return encode_error("attribute too long");
          w.u16(a.type);
          w.u16(static_cast<std::uint16_t>(a.data.size()));
          w.bytes(a.data);
        }
      }
      if (!w.patch_len16(tstart + 2, w.size() - tstart)) return encode_error("transform too long");
    }
    if (!w.patch_len16(start + 2, w.size() - start)) return encode_error("proposal too long");
  }
  return ok_status();
}

Status encode_ts(Writer& w, const TsPayload& ts) {
  if (ts.selectors.size() > 255) return encode_error("too many traffic selectors");
  w.u8(static_cast<std::uint8_t>(ts.selectors.size()));
  w.bytes(ts.reserved);
  for (const TrafficSelector& s : ts.selectors) {
    w.u8(s.ts_type);
    w.u8(s.ip_protocol);
    if (s.ts_type == kTsIpv4AddrRange || s.ts_type == kTsIpv6AddrRange) {
      const std::size_t alen = s.ts_type == kTsIpv4AddrRange ? 4 : 16;
      if (s.start_address.size() != alen || s.end_address.size() != alen || !s.other.empty())
        return encode_error("traffic selector addresses do not fit its type");
      w.u16(static_cast<std::uint16_t>(8 + 2 * alen));
      w.u16(s.start_port);
      w.u16(s.end_port);
      w.bytes(s.start_address);
      w.bytes(s.end_address);
    } else {
      if (s.other.size() > 0xFFFF - 4) return encode_error("traffic selector too long");
      w.u16(static_cast<std::uint16_t>(4 + s.other.size()));
      w.bytes(s.other);
    }
  }
  return ok_status();
}

// Which variant alternative a payload type decodes into.
std::size_t body_index(std::uint8_t type) {
  switch (static_cast<PayloadType>(type)) {
    case PayloadType::kSa:
      return 0;
    case PayloadType::kKe:
      return 1;
    case PayloadType::kNonce:
      return 2;
    case PayloadType::kNotify:
      return 3;
    case PayloadType::kIdi:
    case PayloadType::kIdr:
      return 4;
    case PayloadType::kCert:
    case PayloadType::kCertReq:
      return 5;
    case PayloadType::kAuth:
      return 6;
    case PayloadType::kTsi:
    case PayloadType::kTsr:
      return 7;
    case PayloadType::kDelete:
      return 8;
    case PayloadType::kVendor:
      return 9;
    case PayloadType::kSk:
      return 10;
    case PayloadType::kSkf:
      return 11;
    default:
      return 12;
  }
}

Status encode_body(Writer& w, const PayloadBody& body) {
  struct V {
    Writer& w;
    Status operator()(const SaPayload& p) { return encode_sa(w, p); }
    Status operator()(const KePayload& p) {
      w.u16(p.group);
      w.u16(p.reserved);
      w.bytes(p.data);
      return ok_status();
    }
    Status operator()(const NoncePayload& p) {
      w.bytes(p.data);
      return ok_status();
    }
    Status operator()(const NotifyPayload& p) {
      if (p.spi.size() > 255) return encode_error("notify SPI too long");
      w.u8(static_cast<std::uint8_t>(p.protocol));
      w.u8(static_cast<std::uint8_t>(p.spi.size()));
      w.u16(p.type);
      w.bytes(p.spi);
      w.bytes(p.data);
      return ok_status();
    }
    Status operator()(const IdPayload& p) {
      w.u8(p.id_type);
      w.bytes(p.reserved);
      w.bytes(p.data);
      return ok_status();
    }
    Status operator()(const CertPayload& p) {
      w.u8(p.encoding);
      w.bytes(p.data);
      return ok_status();
    }
    Status operator()(const AuthPayload& p) {
      w.u8(p.method);
      w.bytes(p.reserved);
      w.bytes(p.data);
      return ok_status();
    }
    Status operator()(const TsPayload& p) { return encode_ts(w, p); }
    Status operator()(const DeletePayload& p) {
      if (p.spis.size() > 0xFFFF || (p.spi_size == 0 && !p.spis.empty()))
        return encode_error("delete payload SPI list does not fit");
      w.u8(static_cast<std::uint8_t>(p.protocol));
      w.u8(p.spi_size);
      w.u16(static_cast<std::uint16_t>(p.spis.size()));
      for (const Bytes& s : p.spis) {
        if (s.size() != p.spi_size) return encode_error("delete payload SPI of the wrong size");
        w.bytes(s);
      }
      return ok_status();
    }
    Status operator()(const VendorPayload& p) {
      w.bytes(p.data);
      return ok_status();
    }
    Status operator()(const SkPayload& p) {
      w.bytes(p.data);
      return ok_status();
    }
    Status operator()(const SkfPayload& p) {
      if (p.fragment_number == 0 || p.fragment_number > p.total_fragments)
        return encode_error("SKF fragment number out of range");
      w.u16(p.fragment_number);
      w.u16(p.total_fragments);
      w.bytes(p.data);
      return ok_status();
    }
    Status operator()(const RawPayload& p) {
      w.bytes(p.data);
      return ok_status();
    }
  };
  return std::visit(V{w}, body);
}

Status encode_chain(Writer& w, std::span<const Payload> payloads, bool allow_sk) {
  for (std::size_t i = 0; i < payloads.size(); ++i) {
    const Payload& p = payloads[i];
    if (p.type == 0) return encode_error("payload type 0");
    if (body_index(p.type) != p.body.index())
      return encode_error(std::string(payload_type_name(p.type)) + " payload with a body of another type");
    std::uint8_t next = i + 1 < payloads.size() ? payloads[i + 1].type : 0;
    if (p.type == kSkType || p.type == kSkfType) {
      if (!allow_sk) return encode_error("SK/SKF inside an encrypted payload");
      if (i + 1 != payloads.size()) return encode_error("SK/SKF must be the last payload");
      next = p.type == kSkType ? std::get<SkPayload>(p.body).next : std::get<SkfPayload>(p.body).next;
    }
    const std::size_t start = w.size();
    w.u8(next);
    w.u8(p.flags);
    w.u16(0);
    STORCRYPT_TRY(encode_body(w, p.body));
    if (!w.patch_len16(start + 2, w.size() - start))
      return encode_error(std::string(payload_type_name(p.type)) + " payload over 65535 bytes");
  }
  return ok_status();
}

}  // namespace

std::string_view payload_type_name(std::uint8_t type) {
  switch (static_cast<PayloadType>(type)) {
    case PayloadType::kNone:
      return "NONE";
    case PayloadType::kSa:
      return "SA";
    case PayloadType::kKe:
      return "KE";
    case PayloadType::kIdi:
      return "IDi";
    case PayloadType::kIdr:
      return "IDr";
    case PayloadType::kCert:
      return "CERT";
    case PayloadType::kCertReq:
      return "CERTREQ";
    case PayloadType::kAuth:
      return "AUTH";
    case PayloadType::kNonce:
      return "Nonce";
    case PayloadType::kNotify:
      return "N";
    case PayloadType::kDelete:
      return "D";
    case PayloadType::kVendor:
      return "V";
    case PayloadType::kTsi:
      return "TSi";
    case PayloadType::kTsr:
      return "TSr";
    case PayloadType::kSk:
      return "SK";
    case PayloadType::kCp:
      return "CP";
    case PayloadType::kEap:
      return "EAP";
    case PayloadType::kSkf:
      return "SKF";
  }
  return "unknown";
}

std::optional<std::uint16_t> Transform::key_length() const {
  for (const Attribute& a : attributes)
    if (a.type == kAttrKeyLength && a.tv) return a.value;
  return std::nullopt;
}

Transform Transform::make(TransformType type, std::uint16_t id, std::optional<std::uint16_t> key_bits) {
  Transform t;
  t.type = type;
  t.id = id;
  if (key_bits) t.attributes.push_back(Attribute{kAttrKeyLength, true, *key_bits, {}});
  return t;
}

const Payload* Message::find(PayloadType type) const {
  for (const Payload& p : payloads)
    if (p.type == static_cast<std::uint8_t>(type)) return &p;
  return nullptr;
}

const NotifyPayload* Message::find_notify(std::uint16_t notify_type) const {
  for (const Payload& p : payloads)
    if (const auto* n = std::get_if<NotifyPayload>(&p.body); n != nullptr && n->type == notify_type) return n;
  return nullptr;
}

Result<RawHeader> parse_header(std::span<const std::uint8_t> bytes) {
  Reader r(bytes);
  RawHeader h;
  if (!r.u64(h.header.spi_i) || !r.u64(h.header.spi_r) || !r.u8(h.next_payload) || !r.u8(h.header.version) ||
      !r.u8(h.header.exchange) || !r.u8(h.header.flags) || !r.u32(h.header.message_id) || !r.u32(h.length))
    return syntax("shorter than an IKE header (" + std::to_string(bytes.size()) + " bytes)");
  return h;
}

Result<Message> parse(std::span<const std::uint8_t> bytes) {
  STORCRYPT_ASSIGN_OR_RETURN(RawHeader h, parse_header(bytes));
  if ((h.header.version >> 4) != 2)
    return Error(ErrorCode::kProtocol, "IKE major version " + std::to_string(h.header.version >> 4) + " is not 2", {},
                 "xIkeInvalidMajorVersion");
  if (h.length != bytes.size())
    return syntax("header length " + std::to_string(h.length) + " but " + std::to_string(bytes.size()) +
                  " bytes received");
  if (bytes.size() > kMaxMessageSize) return syntax("message of " + std::to_string(bytes.size()) + " bytes");
  Message m;
  m.header = h.header;
  STORCRYPT_ASSIGN_OR_RETURN(m.payloads, decode_chain(h.next_payload, bytes.subspan(kHeaderSize), true, kHeaderSize));
  return m;
}

Result<std::vector<Payload>> parse_payload_chain(std::uint8_t first, std::span<const std::uint8_t> bytes) {
  return decode_chain(first, bytes, false, 0);
}

Result<Bytes> serialize(const Message& m) {
  Writer w;
  w.u64(m.header.spi_i);
  w.u64(m.header.spi_r);
  w.u8(m.payloads.empty() ? 0 : m.payloads.front().type);
  w.u8(m.header.version);
  w.u8(m.header.exchange);
  w.u8(m.header.flags);
  w.u32(m.header.message_id);
  w.u32(0);
  STORCRYPT_TRY(encode_chain(w, m.payloads, true));
  if (w.size() > kMaxMessageSize) return encode_error("message over " + std::to_string(kMaxMessageSize) + " bytes");
  w.patch_u32(24, static_cast<std::uint32_t>(w.size()));
  return std::move(w).take();
}

Result<Bytes> serialize_payload_chain(std::span<const Payload> payloads) {
  Writer w;
  STORCRYPT_TRY(encode_chain(w, payloads, false));
  return std::move(w).take();
}

std::optional<std::uint8_t> unsupported_critical_payload(std::span<const Payload> payloads) {
  for (const Payload& p : payloads) {
    if (!p.critical()) continue;
    if (body_index(p.type) == 12) return p.type;  // decoded by nobody here (CP, EAP, unknown)
  }
  return std::nullopt;
}

Bytes encode_hash_algorithms(std::span<const std::uint16_t> ids) {
  Writer w;
  for (std::uint16_t id : ids) w.u16(id);
  return std::move(w).take();
}

Result<std::vector<std::uint16_t>> decode_hash_algorithms(std::span<const std::uint8_t> data) {
  if (data.size() % 2 != 0) return syntax("SIGNATURE_HASH_ALGORITHMS data of odd length");
  std::vector<std::uint16_t> out;
  Reader r(data);
  std::uint16_t v = 0;
  while (r.u16(v)) out.push_back(v);
  return out;
}

Bytes encode_invalid_ke(std::uint16_t group) {
  Writer w;
  w.u16(group);
  return std::move(w).take();
}

Result<std::uint16_t> decode_invalid_ke(std::span<const std::uint8_t> data) {
  Reader r(data);
  std::uint16_t g = 0;
  if (data.size() != 2 || !r.u16(g)) return syntax("INVALID_KE_PAYLOAD data is not a 2-byte group");
  return g;
}

Bytes spi_bytes(std::uint32_t spi) {
  Writer w;
  w.u32(spi);
  return std::move(w).take();
}

Udp4500Datagram classify_udp4500(std::span<const std::uint8_t> d) {
  if (d.size() == 1 && d[0] == 0xFF) return {Udp4500Kind::kKeepalive, d};
  if (d.size() >= 4 && d[0] == 0 && d[1] == 0 && d[2] == 0 && d[3] == 0) return {Udp4500Kind::kIke, d.subspan(4)};
  // ESP header: SPI (nonzero, checked above) and sequence number.
  if (d.size() >= 8) return {Udp4500Kind::kEsp, d};
  return {Udp4500Kind::kInvalid, {}};
}

Bytes add_non_esp_marker(std::span<const std::uint8_t> ike_message) {
  // resize + memcpy: g++ 12 -O2 warns (-Warray-bounds, a false positive) on insert after a 4-byte vector.
  Bytes out(4 + ike_message.size(), 0);
  if (!ike_message.empty()) std::memcpy(out.data() + 4, ike_message.data(), ike_message.size());
  return out;
}

}  // namespace storcrypt::ike
