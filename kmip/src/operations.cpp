#include "storcrypt/kmip/operations.h"

#include <cstdio>

namespace storcrypt::kmip {
namespace {

Error proto(std::string msg) {
  return Error(ErrorCode::kProtocol, "unexpected KMIP response payload: " + std::move(msg),
               "check the key server's KMIP version and object; capture the TTLV for the vendor", "xKmipProtocolError");
}

std::string tag_str(std::uint32_t t) {
  auto n = tag_name(t);
  if (!n.empty()) return std::string(n);
  char b[16];
  std::snprintf(b, sizeof b, "0x%06X", static_cast<unsigned>(t));
  return b;
}

Result<const Ttlv*> payload_of(const ResponseItem& item) {
  if (!item.payload) return proto("response has no payload");
  return &*item.payload;
}

Result<const Ttlv*> need(const Ttlv& parent, std::uint32_t t, ItemType type) {
  const Ttlv* c = parent.find(t);
  if (c == nullptr) return proto(tag_str(parent.tag) + " lacks " + tag_str(t));
  if (c->type != type)
    return proto(tag_str(t) + " is a " + std::string(item_type_name(c->type)) + ", expected " +
                 std::string(item_type_name(type)));
  return c;
}

Ttlv uid_item(const std::string& uid) { return Ttlv::text_string(tag::kUniqueIdentifier, uid); }

RequestItem item(Operation op, std::vector<Ttlv> children) {
  return RequestItem{op, Ttlv::structure(tag::kRequestPayload, std::move(children))};
}

Status check_uid(const std::string& uid) {
  if (uid.empty())
    return Error(ErrorCode::kInvalidInput, "KMIP unique identifier is empty",
                 "pass the identifier returned by Create, Register or Locate");
  return ok_status();
}

void add_common(std::vector<Attribute>& attrs, const std::string& name, const std::string& group,
                const std::string& policy) {
  if (!name.empty()) attrs.push_back(Attribute::name_attr(name));
  if (!group.empty()) attrs.push_back(Attribute::text("Object Group", group));
  if (!policy.empty()) attrs.push_back(Attribute::text("Operation Policy Name", policy));
}

}  // namespace

RequestItem discover_versions_request(const std::vector<ProtocolVersion>& versions) {
  std::vector<Ttlv> c;
  for (auto v : versions) c.push_back(encode_protocol_version(v));
  return item(Operation::kDiscoverVersions, std::move(c));
}

Result<std::vector<ProtocolVersion>> parse_discover_versions(const ResponseItem& it) {
  std::vector<ProtocolVersion> out;
  if (!it.payload) return out;  // an empty payload means "none of yours"
  for (const Ttlv* pv : it.payload->find_all(tag::kProtocolVersion)) {
    STORCRYPT_ASSIGN_OR_RETURN(auto v, decode_protocol_version(*pv));
    out.push_back(v);
  }
  return out;
}

RequestItem query_request(const std::vector<QueryFunction>& functions) {
  std::vector<Ttlv> c;
  for (auto f : functions) c.push_back(Ttlv::enumeration(tag::kQueryFunction, static_cast<std::uint32_t>(f)));
  return item(Operation::kQuery, std::move(c));
}

Result<QueryResult> parse_query(const ResponseItem& it) {
  QueryResult q;
  if (!it.payload) return q;
  for (const auto& c : it.payload->children) {
    if (c.tag == tag::kOperation && c.type == ItemType::kEnumeration)
      q.operations.push_back(static_cast<Operation>(c.num));
    else if (c.tag == tag::kObjectType && c.type == ItemType::kEnumeration)
      q.object_types.push_back(static_cast<ObjectType>(c.num));
    else if (c.tag == tag::kVendorIdentification && c.type == ItemType::kTextString)
      q.vendor_identification = c.text;
    else if (c.tag == tag::kServerInformation)
      q.server_information = dump(c);
  }
  return q;
}

Result<RequestItem> create_request(const CreateKeyParams& p, ProtocolVersion v) {
  if (p.length_bits <= 0 || p.length_bits % 8 != 0)
    return Error(ErrorCode::kInvalidInput,
                 "cryptographic length " + std::to_string(p.length_bits) + " is not a positive multiple of 8",
                 "use 128 or 256 for AES");
  std::vector<Attribute> attrs{
      Attribute::enumeration("Cryptographic Algorithm", static_cast<std::uint32_t>(p.algorithm)),
      Attribute::integer("Cryptographic Length", p.length_bits),
      Attribute::integer("Cryptographic Usage Mask", static_cast<std::int32_t>(p.usage_mask)),
  };
  add_common(attrs, p.name, p.object_group, p.operation_policy_name);
  STORCRYPT_ASSIGN_OR_RETURN(Ttlv container, encode_attribute_container(attrs, v));
  return item(Operation::kCreate,
              {Ttlv::enumeration(tag::kObjectType, static_cast<std::uint32_t>(ObjectType::kSymmetricKey)),
               std::move(container)});
}

Result<RequestItem> register_request(const RegisterParams& p, const SecretBytes& material, ProtocolVersion v) {
  if (material.empty())
    return Error(ErrorCode::kInvalidInput, "key material to register is empty", "pass the key or secret bytes");
  std::vector<Attribute> attrs;
  Ttlv key_value = Ttlv::structure(tag::kKeyValue, {Ttlv::byte_string(tag::kKeyMaterial, material.view())});
  Ttlv object;
  if (p.object_type == ObjectType::kSymmetricKey) {
    attrs.push_back(Attribute::integer("Cryptographic Usage Mask", static_cast<std::int32_t>(p.usage_mask)));
    object = Ttlv::structure(
        tag::kSymmetricKey,
        {Ttlv::structure(tag::kKeyBlock,
                         {Ttlv::enumeration(tag::kKeyFormatType, static_cast<std::uint32_t>(KeyFormatType::kRaw)),
                          std::move(key_value),
                          Ttlv::enumeration(tag::kCryptographicAlgorithm, static_cast<std::uint32_t>(p.algorithm)),
                          Ttlv::integer(tag::kCryptographicLength, static_cast<std::int32_t>(material.size() * 8))})});
  } else if (p.object_type == ObjectType::kSecretData) {
    attrs.push_back(Attribute::integer("Cryptographic Usage Mask", static_cast<std::int32_t>(p.usage_mask)));
    object = Ttlv::structure(
        tag::kSecretData,
        {Ttlv::enumeration(tag::kSecretDataType, static_cast<std::uint32_t>(p.secret_type)),
         Ttlv::structure(tag::kKeyBlock,
                         {Ttlv::enumeration(tag::kKeyFormatType, static_cast<std::uint32_t>(KeyFormatType::kOpaque)),
                          std::move(key_value)})});
  } else {
    return Error(ErrorCode::kInvalidInput, "Register supports Symmetric Key and Secret Data objects only",
                 "register a symmetric key or secret data");
  }
  add_common(attrs, p.name, p.object_group, p.operation_policy_name);
  STORCRYPT_ASSIGN_OR_RETURN(Ttlv container, encode_attribute_container(attrs, v));
  return item(Operation::kRegister, {Ttlv::enumeration(tag::kObjectType, static_cast<std::uint32_t>(p.object_type)),
                                     std::move(container), std::move(object)});
}

Result<std::string> parse_unique_identifier(const ResponseItem& it) {
  STORCRYPT_ASSIGN_OR_RETURN(const Ttlv* p, payload_of(it));
  STORCRYPT_ASSIGN_OR_RETURN(const Ttlv* u, need(*p, tag::kUniqueIdentifier, ItemType::kTextString));
  return u->text;
}

RequestItem get_request(const std::string& uid, std::optional<KeyFormatType> format) {
  std::vector<Ttlv> c{uid_item(uid)};
  if (format) c.push_back(Ttlv::enumeration(tag::kKeyFormatType, static_cast<std::uint32_t>(*format)));
  return item(Operation::kGet, std::move(c));
}

Result<ManagedObject> parse_get(const ResponseItem& it) {
  STORCRYPT_ASSIGN_OR_RETURN(const Ttlv* p, payload_of(it));
  ManagedObject m;
  STORCRYPT_ASSIGN_OR_RETURN(const Ttlv* ot, need(*p, tag::kObjectType, ItemType::kEnumeration));
  m.object_type = static_cast<ObjectType>(ot->num);
  STORCRYPT_ASSIGN_OR_RETURN(const Ttlv* u, need(*p, tag::kUniqueIdentifier, ItemType::kTextString));
  m.unique_identifier = u->text;
  std::uint32_t obj_tag = 0;
  switch (m.object_type) {
    case ObjectType::kSymmetricKey:
      obj_tag = tag::kSymmetricKey;
      break;
    case ObjectType::kSecretData:
      obj_tag = tag::kSecretData;
      break;
    default:
      return Error(ErrorCode::kUnsupported,
                   "KMIP object " + m.unique_identifier + " has object type " + std::to_string(ot->num) +
                       ", this client reads Symmetric Key and Secret Data only",
                   "use the identifier of a symmetric key or secret data object");
  }
  STORCRYPT_ASSIGN_OR_RETURN(const Ttlv* obj, need(*p, obj_tag, ItemType::kStructure));
  if (m.object_type == ObjectType::kSecretData) {
    if (const Ttlv* st = obj->find(tag::kSecretDataType); st != nullptr && st->type == ItemType::kEnumeration)
      m.secret_type = static_cast<SecretDataType>(st->num);
  }
  STORCRYPT_ASSIGN_OR_RETURN(const Ttlv* kb, need(*obj, tag::kKeyBlock, ItemType::kStructure));
  STORCRYPT_ASSIGN_OR_RETURN(const Ttlv* kft, need(*kb, tag::kKeyFormatType, ItemType::kEnumeration));
  m.key_format = static_cast<KeyFormatType>(kft->num);
  if (kb->find(tag::kKeyWrappingData) != nullptr)
    return Error(ErrorCode::kUnsupported, "KMIP object " + m.unique_identifier + " was returned wrapped",
                 "request the key without a Key Wrapping Specification");
  if (const Ttlv* a = kb->find(tag::kCryptographicAlgorithm); a != nullptr && a->type == ItemType::kEnumeration)
    m.algorithm = static_cast<CryptographicAlgorithm>(a->num);
  if (const Ttlv* l = kb->find(tag::kCryptographicLength); l != nullptr && l->type == ItemType::kInteger)
    m.length_bits = static_cast<std::int32_t>(l->num);
  STORCRYPT_ASSIGN_OR_RETURN(const Ttlv* kv, need(*kb, tag::kKeyValue, ItemType::kStructure));
  const Ttlv* km = kv->find(tag::kKeyMaterial);
  if (km == nullptr) return proto("Key Value lacks Key Material");
  if (km->type == ItemType::kByteString) {
    if (m.key_format != KeyFormatType::kRaw && m.key_format != KeyFormatType::kOpaque)
      return proto("Key Material is a Byte String but Key Format Type is " + std::to_string(kft->num));
    m.material = SecretBytes(km->bytes.data(), km->bytes.size());
  } else if (km->type == ItemType::kStructure && m.key_format == KeyFormatType::kTransparentSymmetricKey) {
    STORCRYPT_ASSIGN_OR_RETURN(const Ttlv* k, need(*km, tag::kKey, ItemType::kByteString));
    m.material = SecretBytes(k->bytes.data(), k->bytes.size());
  } else {
    return Error(ErrorCode::kUnsupported,
                 "KMIP key format type " + std::to_string(kft->num) + " is not supported by this client",
                 "store keys as Raw, Opaque or Transparent Symmetric Key");
  }
  return m;
}

Result<RequestItem> locate_request(const LocateFilter& f, ProtocolVersion v) {
  std::vector<Ttlv> c;
  if (f.maximum_items) c.push_back(Ttlv::integer(tag::kMaximumItems, *f.maximum_items));
  if (f.offset_items) {
    if (!v.is_v2() && v.minor < 3)
      return Error(ErrorCode::kUnsupported, "Locate Offset Items needs KMIP 1.3 or later",
                   "drop the offset or use a newer server");
    c.push_back(Ttlv::integer(tag::kOffsetItems, *f.offset_items));
  }
  std::vector<Attribute> attrs;
  if (f.object_type) attrs.push_back(Attribute::enumeration("Object Type", static_cast<std::uint32_t>(*f.object_type)));
  if (f.name) attrs.push_back(Attribute::name_attr(*f.name));
  if (f.object_group) attrs.push_back(Attribute::text("Object Group", *f.object_group));
  if (f.state) attrs.push_back(Attribute::enumeration("State", static_cast<std::uint32_t>(*f.state)));
  if (v.is_v2()) {
    STORCRYPT_ASSIGN_OR_RETURN(Ttlv container, encode_attribute_container(attrs, v));
    c.push_back(std::move(container));
  } else {
    for (const auto& a : attrs) {
      STORCRYPT_ASSIGN_OR_RETURN(Ttlv e, encode_attribute(a, v));
      c.push_back(std::move(e));
    }
  }
  return item(Operation::kLocate, std::move(c));
}

Result<std::vector<std::string>> parse_locate(const ResponseItem& it) {
  std::vector<std::string> out;
  if (!it.payload) return out;
  for (const Ttlv* u : it.payload->find_all(tag::kUniqueIdentifier)) {
    if (u->type != ItemType::kTextString) return proto("Unique Identifier in Locate response is not a Text String");
    out.push_back(u->text);
  }
  return out;
}

RequestItem activate_request(const std::string& uid) { return item(Operation::kActivate, {uid_item(uid)}); }
RequestItem destroy_request(const std::string& uid) { return item(Operation::kDestroy, {uid_item(uid)}); }

RequestItem revoke_request(const std::string& uid, const RevokeParams& p) {
  Ttlv reason = Ttlv::structure(tag::kRevocationReason,
                                {Ttlv::enumeration(tag::kRevocationReasonCode, static_cast<std::uint32_t>(p.reason))});
  if (!p.message.empty()) reason.add(Ttlv::text_string(tag::kRevocationMessage, p.message));
  std::vector<Ttlv> c{uid_item(uid), std::move(reason)};
  if (p.compromise_occurrence) c.push_back(Ttlv::date_time(tag::kCompromiseOccurrenceDate, *p.compromise_occurrence));
  return item(Operation::kRevoke, std::move(c));
}

Result<RequestItem> get_attributes_request(const std::string& uid, const std::vector<std::string>& names,
                                           ProtocolVersion v) {
  STORCRYPT_TRY(check_uid(uid));
  std::vector<Ttlv> c{uid_item(uid)};
  for (const auto& n : names) {
    if (v.is_v2()) {
      std::uint32_t t = attribute_tag(n);
      if (t == 0)
        return Error(ErrorCode::kInvalidInput, "attribute \"" + n + "\" has no KMIP 2.0 tag in this client",
                     "use a standard attribute name");
      c.push_back(Ttlv::enumeration(tag::kAttributeReference, t));
    } else {
      c.push_back(Ttlv::text_string(tag::kAttributeName, n));
    }
  }
  return item(Operation::kGetAttributes, std::move(c));
}

Result<GetAttributesResult> parse_get_attributes(const ResponseItem& it) {
  STORCRYPT_ASSIGN_OR_RETURN(const Ttlv* p, payload_of(it));
  GetAttributesResult r;
  STORCRYPT_ASSIGN_OR_RETURN(const Ttlv* u, need(*p, tag::kUniqueIdentifier, ItemType::kTextString));
  r.unique_identifier = u->text;
  for (const Ttlv* a : p->find_all(tag::kAttribute)) {
    STORCRYPT_ASSIGN_OR_RETURN(auto attr, decode_attribute(*a));
    r.attributes.push_back(std::move(attr));
  }
  if (const Ttlv* as = p->find(tag::kAttributes); as != nullptr && as->type == ItemType::kStructure) {
    for (const auto& a : as->children) {
      auto attr = decode_attribute(a);
      if (attr.ok()) r.attributes.push_back(std::move(attr).value());  // skip vendor tags we do not know
    }
  }
  return r;
}

Result<RequestItem> add_attribute_request(const std::string& uid, const Attribute& a, ProtocolVersion v) {
  STORCRYPT_TRY(check_uid(uid));
  STORCRYPT_ASSIGN_OR_RETURN(Ttlv e, encode_attribute(a, v));
  if (v.is_v2()) e = Ttlv::structure(tag::kNewAttribute, {std::move(e)});
  return item(Operation::kAddAttribute, {uid_item(uid), std::move(e)});
}

Result<RequestItem> modify_attribute_request(const std::string& uid, const Attribute& a, ProtocolVersion v,
                                             const std::optional<Attribute>& current) {
  STORCRYPT_TRY(check_uid(uid));
  STORCRYPT_ASSIGN_OR_RETURN(Ttlv e, encode_attribute(a, v));
  if (!v.is_v2()) return item(Operation::kModifyAttribute, {uid_item(uid), std::move(e)});
  std::vector<Ttlv> c{uid_item(uid)};
  if (current) {
    STORCRYPT_ASSIGN_OR_RETURN(Ttlv cur, encode_attribute(*current, v));
    c.push_back(Ttlv::structure(tag::kCurrentAttribute, {std::move(cur)}));
  }
  c.push_back(Ttlv::structure(tag::kNewAttribute, {std::move(e)}));
  return item(Operation::kModifyAttribute, std::move(c));
}

Result<RequestItem> set_attribute_request(const std::string& uid, const Attribute& a, ProtocolVersion v) {
  STORCRYPT_TRY(check_uid(uid));
  if (!v.is_v2())
    return Error(ErrorCode::kUnsupported, "Set Attribute exists only in KMIP 2.0",
                 "use Add Attribute or Modify Attribute with KMIP 1.x");
  STORCRYPT_ASSIGN_OR_RETURN(Ttlv e, encode_attribute(a, v));
  return item(Operation::kSetAttribute, {uid_item(uid), Ttlv::structure(tag::kNewAttribute, {std::move(e)})});
}

}  // namespace storcrypt::kmip
