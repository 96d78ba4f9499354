#include "storcrypt/kmip/ttlv.h"

#include <openssl/crypto.h>

#include <cstdio>
#include <limits>

#include "storcrypt/common/hex.h"
#include "storcrypt/kmip/tags.h"

namespace storcrypt::kmip {
namespace {

Error protocol_error(std::string msg) {
  return Error(ErrorCode::kProtocol, "malformed KMIP TTLV: " + std::move(msg),
               "the key server sent a message this client cannot parse; check the server's KMIP version and logs",
               "xKmipProtocolError");
}

std::string hex_tag(std::uint32_t tag) {
  char b[16];
  std::snprintf(b, sizeof b, "0x%06X", static_cast<unsigned>(tag));
  return b;
}

std::string to_hex_byte(std::uint8_t b) { return to_hex({&b, 1}, HexCase::kUpper); }

void put_be(Bytes& out, std::uint64_t v, int n) {
  for (int i = n - 1; i >= 0; --i) out.push_back(static_cast<std::uint8_t>(v >> (8 * i)));
}

std::uint64_t get_be(const std::uint8_t* p, int n) {
  std::uint64_t v = 0;
  for (int i = 0; i < n; ++i) v = (v << 8) | p[i];
  return v;
}

std::size_t padded(std::size_t n) { return (n + 7) & ~static_cast<std::size_t>(7); }

bool known_type(std::uint8_t t) { return t >= 0x01 && t <= 0x0B; }

Status encode_into(const Ttlv& it, Bytes& out, int depth) {
  if (depth > kMaxDepth) return Error(ErrorCode::kInvalidInput, "KMIP item nested deeper than 32 levels");
  if (it.tag > 0xFFFFFF)
    return Error(ErrorCode::kInvalidInput, "KMIP tag " + hex_tag(it.tag) + " does not fit in 3 bytes");
  put_be(out, it.tag, 3);
  out.push_back(static_cast<std::uint8_t>(it.type));
  switch (it.type) {
    case ItemType::kStructure: {
      std::size_t len_pos = out.size();
      put_be(out, 0, 4);
      std::size_t start = out.size();
      for (const auto& c : it.children) STORCRYPT_TRY(encode_into(c, out, depth + 1));
      std::size_t len = out.size() - start;
      if (len > std::numeric_limits<std::uint32_t>::max())
        return Error(ErrorCode::kInvalidInput, "KMIP structure " + hex_tag(it.tag) + " too large");
      for (int i = 0; i < 4; ++i) out[len_pos + i] = static_cast<std::uint8_t>(len >> (8 * (3 - i)));
      return ok_status();
    }
    case ItemType::kInteger:
      if (it.num < std::numeric_limits<std::int32_t>::min() || it.num > std::numeric_limits<std::int32_t>::max())
        return Error(ErrorCode::kInvalidInput, "KMIP Integer " + hex_tag(it.tag) + " out of 32-bit range");
      put_be(out, 4, 4);
      put_be(out, static_cast<std::uint32_t>(static_cast<std::int32_t>(it.num)), 4);
      put_be(out, 0, 4);
      return ok_status();
    case ItemType::kEnumeration:
    case ItemType::kInterval:
      if (it.num < 0 || it.num > std::numeric_limits<std::uint32_t>::max())
        return Error(ErrorCode::kInvalidInput,
                     "KMIP Enumeration/Interval " + hex_tag(it.tag) + " out of unsigned 32-bit range");
      put_be(out, 4, 4);
      put_be(out, static_cast<std::uint32_t>(it.num), 4);
      put_be(out, 0, 4);
      return ok_status();
    case ItemType::kBoolean:
      if (it.num != 0 && it.num != 1)
        return Error(ErrorCode::kInvalidInput, "KMIP Boolean " + hex_tag(it.tag) + " must be 0 or 1");
      [[fallthrough]];
    case ItemType::kLongInteger:
    case ItemType::kDateTime:
    case ItemType::kDateTimeExtended:
      put_be(out, 8, 4);
      put_be(out, static_cast<std::uint64_t>(it.num), 8);
      return ok_status();
    case ItemType::kBigInteger:
      if (it.bytes.empty() || it.bytes.size() % 8 != 0)
        return Error(ErrorCode::kInvalidInput,
                     "KMIP Big Integer " + hex_tag(it.tag) + " must be a non-empty multiple of 8 bytes");
      [[fallthrough]];
    case ItemType::kByteString: {
      if (it.bytes.size() > std::numeric_limits<std::uint32_t>::max())
        return Error(ErrorCode::kInvalidInput, "KMIP Byte String too long");
      put_be(out, it.bytes.size(), 4);
      out.insert(out.end(), it.bytes.begin(), it.bytes.end());
      out.resize(out.size() + (padded(it.bytes.size()) - it.bytes.size()), 0);
      return ok_status();
    }
    case ItemType::kTextString: {
      if (it.text.size() > std::numeric_limits<std::uint32_t>::max())
        return Error(ErrorCode::kInvalidInput, "KMIP Text String too long");
      put_be(out, it.text.size(), 4);
      out.insert(out.end(), it.text.begin(), it.text.end());
      out.resize(out.size() + (padded(it.text.size()) - it.text.size()), 0);
      return ok_status();
    }
  }
  return Error(ErrorCode::kInvalidInput, "KMIP item " + hex_tag(it.tag) + " has an unknown type");
}

bool zero_padding(const std::uint8_t* p, std::size_t n) {
  for (std::size_t i = 0; i < n; ++i)
    if (p[i] != 0) return false;
  return true;
}

// Decode one item starting at in[pos]; advances pos past the padded value.
Result<Ttlv> decode_at(std::span<const std::uint8_t> in, std::size_t& pos, int depth) {
  if (depth > kMaxDepth) return protocol_error("structures nested deeper than 32 levels");
  if (in.size() - pos < 8)
    return protocol_error("truncated item header at offset " + std::to_string(pos) + " (" +
                          std::to_string(in.size() - pos) + " bytes left, need 8)");
  const std::uint8_t* h = in.data() + pos;
  Ttlv it;
  it.tag = static_cast<std::uint32_t>(get_be(h, 3));
  std::uint8_t type = h[3];
  std::uint64_t len = get_be(h + 4, 4);
  if (!known_type(type))
    return protocol_error("item " + hex_tag(it.tag) + " at offset " + std::to_string(pos) + " has unknown type 0x" +
                          to_hex_byte(type));
  it.type = static_cast<ItemType>(type);
  pos += 8;
  std::size_t left = in.size() - pos;
  std::size_t plen = padded(len);
  if (it.type == ItemType::kStructure) {
    if (len % 8 != 0)
      return protocol_error("structure " + hex_tag(it.tag) + " length " + std::to_string(len) +
                            " is not a multiple of 8");
    if (len > left)
      return protocol_error("structure " + hex_tag(it.tag) + " claims " + std::to_string(len) + " bytes, only " +
                            std::to_string(left) + " present");
    std::size_t end = pos + len;
    auto sub = in.subspan(0, end);
    while (pos < end) {
      STORCRYPT_ASSIGN_OR_RETURN(Ttlv child, decode_at(sub, pos, depth + 1));
      it.children.push_back(std::move(child));
    }
    return it;
  }
  if (plen > left || len > left)
    return protocol_error("item " + hex_tag(it.tag) + " claims " + std::to_string(len) + " bytes (" +
                          std::to_string(plen) + " padded), only " + std::to_string(left) + " present");
  const std::uint8_t* v = in.data() + pos;
  auto want = [&](std::uint64_t n) -> Status {
    if (len != n)
      return protocol_error(std::string(item_type_name(it.type)) + " " + hex_tag(it.tag) + " has length " +
                            std::to_string(len) + ", expected " + std::to_string(n));
    return ok_status();
  };
  switch (it.type) {
    case ItemType::kInteger:
      STORCRYPT_TRY(want(4));
      it.num = static_cast<std::int32_t>(static_cast<std::uint32_t>(get_be(v, 4)));
      break;
    case ItemType::kEnumeration:
    case ItemType::kInterval:
      STORCRYPT_TRY(want(4));
      it.num = static_cast<std::int64_t>(get_be(v, 4));
      break;
    case ItemType::kBoolean:
      STORCRYPT_TRY(want(8));
      it.num = static_cast<std::int64_t>(get_be(v, 8));
      if (it.num != 0 && it.num != 1) return protocol_error("Boolean " + hex_tag(it.tag) + " is neither 0 nor 1");
      break;
    case ItemType::kLongInteger:
    case ItemType::kDateTime:
    case ItemType::kDateTimeExtended:
      STORCRYPT_TRY(want(8));
      it.num = static_cast<std::int64_t>(get_be(v, 8));
      break;
    case ItemType::kBigInteger:
      if (len == 0 || len % 8 != 0)
        return protocol_error("Big Integer " + hex_tag(it.tag) + " length " + std::to_string(len) +
                              " is not a non-zero multiple of 8");
      it.bytes.assign(v, v + len);
      break;
    case ItemType::kByteString:
      it.bytes.assign(v, v + len);
      break;
    case ItemType::kTextString:
      it.text.assign(reinterpret_cast<const char*>(v), len);
      break;
    case ItemType::kStructure:
      break;
  }
  if (!zero_padding(v + len, plen - len)) return protocol_error("item " + hex_tag(it.tag) + " has non-zero padding");
  pos += plen;
  return it;
}

}  // namespace

void wipe_memory(void* p, std::size_t n) noexcept {
  if (p != nullptr && n != 0) OPENSSL_cleanse(p, n);
}

std::string_view item_type_name(ItemType t) {
  switch (t) {
    case ItemType::kStructure:
      return "Structure";
    case ItemType::kInteger:
      return "Integer";
    case ItemType::kLongInteger:
      return "LongInteger";
    case ItemType::kBigInteger:
      return "BigInteger";
    case ItemType::kEnumeration:
      return "Enumeration";
    case ItemType::kBoolean:
      return "Boolean";
    case ItemType::kTextString:
      return "TextString";
    case ItemType::kByteString:
      return "ByteString";
    case ItemType::kDateTime:
      return "DateTime";
    case ItemType::kInterval:
      return "Interval";
    case ItemType::kDateTimeExtended:
      return "DateTimeExtended";
  }
  return "Unknown";
}

Ttlv Ttlv::structure(std::uint32_t tag, std::vector<Ttlv> children) {
  Ttlv t;
  t.tag = tag;
  t.type = ItemType::kStructure;
  t.children = std::move(children);
  return t;
}
static Ttlv scalar(std::uint32_t tag, ItemType type, std::int64_t v) {
  Ttlv t;
  t.tag = tag;
  t.type = type;
  t.num = v;
  return t;
}
Ttlv Ttlv::integer(std::uint32_t tag, std::int32_t v) { return scalar(tag, ItemType::kInteger, v); }
Ttlv Ttlv::long_integer(std::uint32_t tag, std::int64_t v) { return scalar(tag, ItemType::kLongInteger, v); }
Ttlv Ttlv::enumeration(std::uint32_t tag, std::uint32_t v) { return scalar(tag, ItemType::kEnumeration, v); }
Ttlv Ttlv::boolean(std::uint32_t tag, bool v) { return scalar(tag, ItemType::kBoolean, v ? 1 : 0); }
Ttlv Ttlv::date_time(std::uint32_t tag, std::int64_t s) { return scalar(tag, ItemType::kDateTime, s); }
Ttlv Ttlv::interval(std::uint32_t tag, std::uint32_t s) { return scalar(tag, ItemType::kInterval, s); }
Ttlv Ttlv::date_time_extended(std::uint32_t tag, std::int64_t us) {
  return scalar(tag, ItemType::kDateTimeExtended, us);
}
Ttlv Ttlv::big_integer(std::uint32_t tag, std::span<const std::uint8_t> v) {
  Ttlv t = scalar(tag, ItemType::kBigInteger, 0);
  t.bytes.assign(v.begin(), v.end());
  return t;
}
Ttlv Ttlv::text_string(std::uint32_t tag, std::string_view v) {
  Ttlv t = scalar(tag, ItemType::kTextString, 0);
  t.text.assign(v);
  return t;
}
Ttlv Ttlv::byte_string(std::uint32_t tag, std::span<const std::uint8_t> v) {
  Ttlv t = scalar(tag, ItemType::kByteString, 0);
  t.bytes.assign(v.begin(), v.end());
  return t;
}

const Ttlv* Ttlv::find(std::uint32_t t) const {
  for (const auto& c : children)
    if (c.tag == t) return &c;
  return nullptr;
}

std::vector<const Ttlv*> Ttlv::find_all(std::uint32_t t) const {
  std::vector<const Ttlv*> r;
  for (const auto& c : children)
    if (c.tag == t) r.push_back(&c);
  return r;
}

bool Ttlv::operator==(const Ttlv& o) const {
  return tag == o.tag && type == o.type && num == o.num && text == o.text && bytes == o.bytes && children == o.children;
}

Status encode(const Ttlv& item, Bytes& out) { return encode_into(item, out, 0); }

Result<Bytes> encode(const Ttlv& item) {
  Bytes out;
  STORCRYPT_TRY(encode_into(item, out, 0));
  return out;
}

Result<Ttlv> decode(std::span<const std::uint8_t> in) {
  std::size_t pos = 0;
  STORCRYPT_ASSIGN_OR_RETURN(Ttlv it, decode_at(in, pos, 0));
  if (pos != in.size())
    return protocol_error(std::to_string(in.size() - pos) + " trailing bytes after the top-level item");
  return it;
}

Result<std::size_t> framed_size(std::span<const std::uint8_t> header) {
  if (header.size() < 8) return protocol_error("message header shorter than 8 bytes");
  if (header[3] != static_cast<std::uint8_t>(ItemType::kStructure))
    return protocol_error("message does not start with a Structure (type 0x" + to_hex_byte(header[3]) + ")");
  std::uint64_t len = get_be(header.data() + 4, 4);
  if (len + 8 > kMaxMessageSize)
    return protocol_error("message of " + std::to_string(len) + " bytes exceeds the 1 MiB limit");
  if (len % 8 != 0) return protocol_error("message length " + std::to_string(len) + " is not a multiple of 8");
  return static_cast<std::size_t>(len + 8);
}

namespace {
void dump_into(const Ttlv& it, std::string& out, int indent) {
  out.append(static_cast<std::size_t>(indent) * 2, ' ');
  auto name = tag_name(it.tag);
  out += name.empty() ? hex_tag(it.tag) : std::string(name);
  out += " (";
  out += item_type_name(it.type);
  out += ")";
  switch (it.type) {
    case ItemType::kStructure:
      out += "\n";
      for (const auto& c : it.children) dump_into(c, out, indent + 1);
      return;
    case ItemType::kTextString:
      out += " \"" + it.text + "\"";
      break;
    case ItemType::kByteString:
    case ItemType::kBigInteger:
      out += " <" + std::to_string(it.bytes.size()) + " bytes>";
      break;
    default:
      out += " " + std::to_string(it.num);
  }
  out += "\n";
}
}  // namespace

std::string dump(const Ttlv& item) {
  std::string s;
  dump_into(item, s, 0);
  return s;
}

}  // namespace storcrypt::kmip
