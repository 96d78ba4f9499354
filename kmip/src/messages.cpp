#include "storcrypt/kmip/messages.h"

#include <cstdio>

namespace storcrypt::kmip {
namespace {
Error proto(std::string msg) {
  return Error(ErrorCode::kProtocol, "unexpected KMIP response: " + std::move(msg),
               "check that the key server speaks KMIP 1.0-1.4 or 2.0; capture the TTLV for the vendor",
               "xKmipProtocolError");
}
std::string tag_str(std::uint32_t t) {
  auto n = tag_name(t);
  if (!n.empty()) return std::string(n);
  char b[16];
  std::snprintf(b, sizeof b, "0x%06X", static_cast<unsigned>(t));
  return b;
}
Result<const Ttlv*> need(const Ttlv& parent, std::uint32_t t, ItemType type) {
  const Ttlv* c = parent.find(t);
  if (c == nullptr) return proto(tag_str(parent.tag) + " lacks " + tag_str(t));
  if (c->type != type)
    return proto(tag_str(t) + " is a " + std::string(item_type_name(c->type)) + ", expected " +
                 std::string(item_type_name(type)));
  return c;
}
}  // namespace

Ttlv encode_protocol_version(ProtocolVersion v) {
  return Ttlv::structure(tag::kProtocolVersion, {Ttlv::integer(tag::kProtocolVersionMajor, v.major),
                                                 Ttlv::integer(tag::kProtocolVersionMinor, v.minor)});
}

Result<ProtocolVersion> decode_protocol_version(const Ttlv& item) {
  if (item.type != ItemType::kStructure) return proto("Protocol Version is not a structure");
  STORCRYPT_ASSIGN_OR_RETURN(const Ttlv* ma, need(item, tag::kProtocolVersionMajor, ItemType::kInteger));
  STORCRYPT_ASSIGN_OR_RETURN(const Ttlv* mi, need(item, tag::kProtocolVersionMinor, ItemType::kInteger));
  return ProtocolVersion{static_cast<int>(ma->num), static_cast<int>(mi->num)};
}

Attribute Attribute::enumeration(std::string name, std::uint32_t v) {
  return {std::move(name), std::nullopt, Ttlv::enumeration(tag::kAttributeValue, v)};
}
Attribute Attribute::integer(std::string name, std::int32_t v) {
  return {std::move(name), std::nullopt, Ttlv::integer(tag::kAttributeValue, v)};
}
Attribute Attribute::text(std::string name, std::string v) {
  return {std::move(name), std::nullopt, Ttlv::text_string(tag::kAttributeValue, v)};
}
Attribute Attribute::date_time(std::string name, std::int64_t v) {
  return {std::move(name), std::nullopt, Ttlv::date_time(tag::kAttributeValue, v)};
}
Attribute Attribute::name_attr(std::string v) {
  return {"Name", std::nullopt,
          Ttlv::structure(
              tag::kAttributeValue,
              {Ttlv::text_string(tag::kNameValue, v),
               Ttlv::enumeration(tag::kNameType, static_cast<std::uint32_t>(NameType::kUninterpretedTextString))})};
}

Result<Ttlv> encode_attribute(const Attribute& a, ProtocolVersion v) {
  if (v.is_v2()) {
    std::uint32_t t = attribute_tag(a.name);
    if (t == 0)
      return Error(ErrorCode::kInvalidInput, "attribute \"" + a.name + "\" has no KMIP 2.0 encoding in this client",
                   "use a standard attribute name or KMIP 1.x");
    Ttlv out = a.value;
    out.tag = t;
    return out;
  }
  Ttlv s = Ttlv::structure(tag::kAttribute, {Ttlv::text_string(tag::kAttributeName, a.name)});
  if (a.index) s.add(Ttlv::integer(tag::kAttributeIndex, *a.index));
  Ttlv val = a.value;
  val.tag = tag::kAttributeValue;
  s.add(std::move(val));
  return s;
}

Result<Attribute> decode_attribute(const Ttlv& item) {
  Attribute a;
  if (item.tag == tag::kAttribute) {
    if (item.type != ItemType::kStructure) return proto("Attribute is not a structure");
    STORCRYPT_ASSIGN_OR_RETURN(const Ttlv* n, need(item, tag::kAttributeName, ItemType::kTextString));
    a.name = n->text;
    if (const Ttlv* idx = item.find(tag::kAttributeIndex)) {
      if (idx->type != ItemType::kInteger) return proto("Attribute Index is not an Integer");
      a.index = static_cast<std::int32_t>(idx->num);
    }
    const Ttlv* v = item.find(tag::kAttributeValue);
    if (v == nullptr) return proto("Attribute \"" + a.name + "\" lacks Attribute Value");
    a.value = *v;
    return a;
  }
  auto n = tag_name(item.tag);
  if (n.empty()) return proto("unknown attribute tag " + tag_str(item.tag));
  a.name = std::string(n);
  a.value = item;
  a.value.tag = tag::kAttributeValue;
  return a;
}

Result<Ttlv> encode_attribute_container(const std::vector<Attribute>& attrs, ProtocolVersion v) {
  Ttlv c = Ttlv::structure(v.is_v2() ? tag::kAttributes : tag::kTemplateAttribute);
  for (const auto& a : attrs) {
    STORCRYPT_ASSIGN_OR_RETURN(Ttlv e, encode_attribute(a, v));
    c.add(std::move(e));
  }
  return c;
}

Bytes batch_item_id(std::size_t i) {
  Bytes b(4);
  for (int k = 0; k < 4; ++k) b[static_cast<std::size_t>(k)] = static_cast<std::uint8_t>(i >> (8 * (3 - k)));
  return b;
}

Ttlv build_request(ProtocolVersion v, const std::vector<RequestItem>& items, const RequestOptions& opts) {
  Ttlv header = Ttlv::structure(tag::kRequestHeader, {encode_protocol_version(v)});
  if (opts.maximum_response_size) header.add(Ttlv::integer(tag::kMaximumResponseSize, *opts.maximum_response_size));
  if (opts.batch_error_continuation)
    header.add(Ttlv::enumeration(tag::kBatchErrorContinuationOption,
                                 static_cast<std::uint32_t>(*opts.batch_error_continuation)));
  if (opts.batch_order) header.add(Ttlv::boolean(tag::kBatchOrderOption, *opts.batch_order));
  header.add(Ttlv::integer(tag::kBatchCount, static_cast<std::int32_t>(items.size())));
  Ttlv msg = Ttlv::structure(tag::kRequestMessage, {std::move(header)});
  for (std::size_t i = 0; i < items.size(); ++i) {
    Ttlv bi = Ttlv::structure(tag::kBatchItem,
                              {Ttlv::enumeration(tag::kOperation, static_cast<std::uint32_t>(items[i].operation))});
    if (items.size() > 1) {
      Bytes id = batch_item_id(i);
      bi.add(Ttlv::byte_string(tag::kUniqueBatchItemId, std::span<const std::uint8_t>(id.data(), id.size())));
    }
    Ttlv p = items[i].payload;
    p.tag = tag::kRequestPayload;
    bi.add(std::move(p));
    msg.add(std::move(bi));
  }
  return msg;
}

Result<Response> parse_response(const Ttlv& msg) {
  if (msg.tag != tag::kResponseMessage || msg.type != ItemType::kStructure)
    return proto("top-level item is " + tag_str(msg.tag) + ", expected Response Message");
  STORCRYPT_ASSIGN_OR_RETURN(const Ttlv* hdr, need(msg, tag::kResponseHeader, ItemType::kStructure));
  STORCRYPT_ASSIGN_OR_RETURN(const Ttlv* pv, need(*hdr, tag::kProtocolVersion, ItemType::kStructure));
  Response r;
  STORCRYPT_ASSIGN_OR_RETURN(r.version, decode_protocol_version(*pv));
  if (const Ttlv* ts = hdr->find(tag::kTimeStamp); ts != nullptr && ts->type == ItemType::kDateTime)
    r.time_stamp = ts->num;
  STORCRYPT_ASSIGN_OR_RETURN(const Ttlv* bc, need(*hdr, tag::kBatchCount, ItemType::kInteger));
  auto items = msg.find_all(tag::kBatchItem);
  if (bc->num < 0 || static_cast<std::size_t>(bc->num) != items.size())
    return proto("Batch Count says " + std::to_string(bc->num) + " but " + std::to_string(items.size()) +
                 " batch items are present");
  for (const Ttlv* bi : items) {
    if (bi->type != ItemType::kStructure) return proto("Batch Item is not a structure");
    ResponseItem it;
    if (const Ttlv* op = bi->find(tag::kOperation); op != nullptr && op->type == ItemType::kEnumeration)
      it.operation = static_cast<Operation>(op->num);
    if (const Ttlv* id = bi->find(tag::kUniqueBatchItemId); id != nullptr && id->type == ItemType::kByteString)
      it.batch_item_id = id->bytes;
    STORCRYPT_ASSIGN_OR_RETURN(const Ttlv* st, need(*bi, tag::kResultStatus, ItemType::kEnumeration));
    if (st->num > 3) return proto("unknown Result Status " + std::to_string(st->num));
    it.status = static_cast<ResultStatus>(st->num);
    if (const Ttlv* rr = bi->find(tag::kResultReason); rr != nullptr && rr->type == ItemType::kEnumeration)
      it.reason = static_cast<ResultReason>(rr->num);
    if (const Ttlv* rm = bi->find(tag::kResultMessage); rm != nullptr && rm->type == ItemType::kTextString)
      it.message = rm->text;
    if (const Ttlv* p = bi->find(tag::kResponsePayload); p != nullptr) {
      if (p->type != ItemType::kStructure) return proto("Response Payload is not a structure");
      it.payload = *p;
    }
    r.items.push_back(std::move(it));
  }
  return r;
}

Result<std::vector<std::optional<ResponseItem>>> match_batch(std::size_t n, Response resp) {
  std::vector<std::optional<ResponseItem>> out(n);
  if (n <= 1) {
    if (resp.items.size() > n)
      return proto("server returned " + std::to_string(resp.items.size()) + " results for " + std::to_string(n) +
                   " requests");
    if (n == 1 && !resp.items.empty()) out[0] = std::move(resp.items[0]);
    return out;
  }
  std::optional<ResponseItem> anonymous_failure;
  for (auto& it : resp.items) {
    if (it.batch_item_id.empty() && it.status != ResultStatus::kSuccess) {
      // Message-level failure (e.g. Invalid Message) reported without an ID.
      anonymous_failure = it;
      continue;
    }
    if (it.batch_item_id.size() != 4)
      return proto("response batch item lacks the 4-byte Unique Batch Item ID this client sent");
    std::size_t idx = 0;
    for (auto b : it.batch_item_id) idx = (idx << 8) | b;
    if (idx >= n) return proto("response names unknown Unique Batch Item ID " + std::to_string(idx));
    if (out[idx]) return proto("response repeats Unique Batch Item ID " + std::to_string(idx));
    out[idx] = std::move(it);
  }
  if (anonymous_failure)
    for (auto& o : out)
      if (!o) o = anonymous_failure;
  return out;
}

}  // namespace storcrypt::kmip
