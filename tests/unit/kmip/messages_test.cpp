// Messages and operation payloads: byte-exact against the KMIP 1.1 test-case
// messages (kmip-testcases-v1.1 3.1.x, as used by PyKMIP's unit tests), KMIP
// 2.0 attribute encodings, batch IDs and response matching.
#include "storcrypt/kmip/messages.h"

#include <gtest/gtest.h>

#include <set>
#include <string>
#include <vector>

#include "storcrypt/common/hex.h"
#include "storcrypt/kmip/operations.h"

namespace storcrypt::kmip {
namespace {

constexpr char kCreateRequest[] =
    "42007801000001204200770100000038420069010000002042006a0200000004"
    "000000010000000042006b0200000004000000010000000042000d0200000004"
    "000000010000000042000f01000000d842005c05000000040000000100000000"
    "42007901000000c04200570500000004000000020000000042009101000000a8"
    "420008010000003042000a070000001743727970746f6772617068696320416c"
    "676f726974686d0042000b050000000400000003000000004200080100000030"
    "42000a070000001443727970746f67726170686963204c656e67746800000000"
    "42000b02000000040000008000000000420008010000003042000a0700000018"
    "43727970746f67726170686963205573616765204d61736b42000b0200000004"
    "0000000c00000000";
constexpr char kGetRequest[] =
    "42007801000000904200770100000038420069010000002042006a0200000004"
    "000000010000000042006b0200000004000000010000000042000d0200000004"
    "000000010000000042000f010000004842005c05000000040000000a00000000"
    "4200790100000030420094070000002434396131636138382d366265612d3466"
    "62322d623435302d37653538383032633330333800000000";
constexpr char kDestroyRequest[] =
    "42007801000000904200770100000038420069010000002042006a0200000004"
    "000000010000000042006b0200000004000000010000000042000d0200000004"
    "000000010000000042000f010000004842005c05000000040000001400000000"
    "4200790100000030420094070000002466623462356239632d363138382d3463"
    "36332d383134322d66653963333238313239666300000000";
constexpr char kLocateRequest[] =
    "42007801000000d04200770100000038420069010000002042006a0200000004"
    "000000010000000042006b0200000004000000010000000042000d0200000004"
    "000000010000000042000f010000008842005c05000000040000000800000000"
    "4200790100000070420008010000002842000a070000000b4f626a6563742054"
    "797065000000000042000b050000000400000002000000004200080100000038"
    "42000a07000000044e616d650000000042000b01000000204200550700000004"
    "4b6579310000000042005405000000040000000100000000";
constexpr char kCreateResponse[] =
    "42007b01000000c042007a0100000048420069010000002042006a0200000004"
    "000000010000000042006b020000000400000001000000004200920900000008"
    "000000004f9a54e542000d0200000004000000010000000042000f0100000068"
    "42005c0500000004000000010000000042007f05000000040000000000000000"
    "42007c0100000040420057050000000400000002000000004200940700000024"
    "66623462356239632d363138382d346336332d383134322d6665396333323831"
    "3239666300000000";
constexpr char kGetResponse[] =
    "42007b010000012842007a0100000048420069010000002042006a0200000004"
    "000000010000000042006b020000000400000001000000004200920900000008"
    "000000004f9a54e742000d0200000004000000010000000042000f01000000d0"
    "42005c05000000040000000a0000000042007f05000000040000000000000000"
    "42007c01000000a8420057050000000400000002000000004200940700000024"
    "34396131636138382d366265612d346662322d623435302d3765353838303263"
    "333033380000000042008f010000006042004001000000584200420500000004"
    "0000000100000000420045010000002042004308000000187367578051012a6d"
    "134a855e25c8cd5e4ca131455729d3c842002805000000040000000200000000"
    "42002a0200000004000000a800000000";
constexpr char kInvalidMessageResponse[] =
    "42007b01000000b042007a0100000048420069010000002042006a0200000004"
    "000000010000000042006b020000000400000001000000004200920900000008"
    "0000000056fa43bd42000d0200000004000000010000000042000f0100000058"
    "42007f0500000004000000010000000042007e05000000040000000400000000"
    "42007d070000002a44656661756c7420726573706f6e73652e204e6f206f7065"
    "726174696f6e7320737570706f727465642e000000000000";

const ProtocolVersion kV11{1, 1};
const ProtocolVersion kV14{1, 4};
const ProtocolVersion kV20{2, 0};

std::vector<std::uint8_t> unhex(std::string_view h) { return parse_hex(h).value(); }
std::string hex_of(const Bytes& b) { return to_hex(std::span<const std::uint8_t>(b.data(), b.size())); }

std::string encode_request(ProtocolVersion v, std::vector<RequestItem> items) {
  auto enc = encode(build_request(v, items));
  EXPECT_TRUE(enc.ok());
  return hex_of(*enc);
}

Response decode_response(std::string_view hex) {
  auto bytes = unhex(hex);
  auto t = decode(bytes);
  EXPECT_TRUE(t.ok()) << t.error().to_string();
  auto r = parse_response(*t);
  EXPECT_TRUE(r.ok()) << r.error().to_string();
  return std::move(r).value();
}

TEST(KmipMessageVectors, CreateRequestKmip11) {
  CreateKeyParams p;
  p.length_bits = 128;
  auto item = create_request(p, kV11);
  ASSERT_TRUE(item.ok());
  EXPECT_EQ(encode_request(kV11, {*item}), kCreateRequest);
}

TEST(KmipMessageVectors, GetRequestKmip11) {
  EXPECT_EQ(encode_request(kV11, {get_request("49a1ca88-6bea-4fb2-b450-7e58802c3038")}), kGetRequest);
}

TEST(KmipMessageVectors, DestroyRequestKmip11) {
  EXPECT_EQ(encode_request(kV11, {destroy_request("fb4b5b9c-6188-4c63-8142-fe9c328129fc")}), kDestroyRequest);
}

TEST(KmipMessageVectors, LocateRequestKmip11) {
  LocateFilter f;
  f.object_type = ObjectType::kSymmetricKey;
  f.name = "Key1";
  auto item = locate_request(f, kV11);
  ASSERT_TRUE(item.ok());
  EXPECT_EQ(encode_request(kV11, {*item}), kLocateRequest);
}

TEST(KmipMessageVectors, CreateResponse) {
  auto r = decode_response(kCreateResponse);
  EXPECT_EQ(r.version, kV11);
  ASSERT_TRUE(r.time_stamp.has_value());
  EXPECT_EQ(*r.time_stamp, 0x4F9A54E5);
  ASSERT_EQ(r.items.size(), 1u);
  EXPECT_EQ(r.items[0].operation, Operation::kCreate);
  EXPECT_EQ(r.items[0].status, ResultStatus::kSuccess);
  auto uid = parse_unique_identifier(r.items[0]);
  ASSERT_TRUE(uid.ok());
  EXPECT_EQ(*uid, "fb4b5b9c-6188-4c63-8142-fe9c328129fc");
}

TEST(KmipMessageVectors, GetResponseRawKey) {
  auto r = decode_response(kGetResponse);
  ASSERT_EQ(r.items.size(), 1u);
  auto m = parse_get(r.items[0]);
  ASSERT_TRUE(m.ok()) << m.error().to_string();
  EXPECT_EQ(m->object_type, ObjectType::kSymmetricKey);
  EXPECT_EQ(m->unique_identifier, "49a1ca88-6bea-4fb2-b450-7e58802c3038");
  EXPECT_EQ(m->key_format, KeyFormatType::kRaw);
  EXPECT_EQ(m->algorithm, CryptographicAlgorithm::kTripleDes);
  EXPECT_EQ(m->length_bits, 168);
  EXPECT_EQ(m->material.reveal_hex(), "7367578051012a6d134a855e25c8cd5e4ca131455729d3c8");
}

TEST(KmipMessageVectors, InvalidMessageResponse) {
  auto r = decode_response(kInvalidMessageResponse);
  ASSERT_EQ(r.items.size(), 1u);
  EXPECT_FALSE(r.items[0].operation.has_value());
  EXPECT_EQ(r.items[0].status, ResultStatus::kOperationFailed);
  EXPECT_EQ(r.items[0].reason, ResultReason::kInvalidMessage);
  EXPECT_EQ(r.items[0].message, "Default response. No operations supported.");
}

TEST(KmipMessages, ReencodedResponseVectorsAreByteExact) {
  for (const char* hex : {kCreateResponse, kGetResponse, kInvalidMessageResponse}) {
    auto bytes = unhex(hex);
    auto t = decode(bytes);
    ASSERT_TRUE(t.ok());
    auto enc = encode(*t);
    ASSERT_TRUE(enc.ok());
    EXPECT_EQ(hex_of(*enc), hex);
  }
}

TEST(KmipMessages, CreateKmip20UsesAttributeTags) {
  CreateKeyParams p;
  p.name = "vol-1";
  p.object_group = "storcrypt";
  auto item = create_request(p, kV20);
  ASSERT_TRUE(item.ok());
  const Ttlv& pl = item->payload;
  ASSERT_EQ(pl.find(tag::kTemplateAttribute), nullptr);
  const Ttlv* attrs = pl.find(tag::kAttributes);
  ASSERT_NE(attrs, nullptr);
  ASSERT_NE(attrs->find(tag::kCryptographicAlgorithm), nullptr);
  EXPECT_EQ(attrs->find(tag::kCryptographicAlgorithm)->num, 3);
  EXPECT_EQ(attrs->find(tag::kCryptographicLength)->num, 256);
  EXPECT_EQ(attrs->find(tag::kCryptographicUsageMask)->num, 0x0C);
  const Ttlv* name = attrs->find(tag::kName);
  ASSERT_NE(name, nullptr);
  EXPECT_EQ(name->find(tag::kNameValue)->text, "vol-1");
  EXPECT_EQ(name->find(tag::kNameType)->num, 1);
  EXPECT_EQ(attrs->find(tag::kObjectGroup)->text, "storcrypt");
  // And the 1.x form of the same request uses Attribute Name/Value pairs.
  auto v1 = create_request(p, kV14);
  ASSERT_TRUE(v1.ok());
  const Ttlv* ta = v1->payload.find(tag::kTemplateAttribute);
  ASSERT_NE(ta, nullptr);
  auto list = ta->find_all(tag::kAttribute);
  ASSERT_EQ(list.size(), 5u);
  EXPECT_EQ(list[3]->find(tag::kAttributeName)->text, "Name");
  EXPECT_EQ(list[4]->find(tag::kAttributeName)->text, "Object Group");
  EXPECT_EQ(list[4]->find(tag::kAttributeValue)->text, "storcrypt");
}

TEST(KmipMessages, LocateKmip20WrapsFiltersInAttributes) {
  LocateFilter f;
  f.object_group = "g";
  f.state = State::kActive;
  f.maximum_items = 10;
  auto v2 = locate_request(f, kV20);
  ASSERT_TRUE(v2.ok());
  EXPECT_EQ(v2->payload.find(tag::kMaximumItems)->num, 10);
  const Ttlv* attrs = v2->payload.find(tag::kAttributes);
  ASSERT_NE(attrs, nullptr);
  EXPECT_EQ(attrs->find(tag::kObjectGroup)->text, "g");
  EXPECT_EQ(attrs->find(tag::kState)->num, 2);
  f.offset_items = 5;
  EXPECT_EQ(locate_request(f, ProtocolVersion{1, 2}).error().code(), ErrorCode::kUnsupported);
  EXPECT_TRUE(locate_request(f, ProtocolVersion{1, 3}).ok());
}

TEST(KmipMessages, GetAttributesByVersion) {
  auto v1 = get_attributes_request("7", {"State", "Name"}, kV14);
  ASSERT_TRUE(v1.ok());
  auto names = v1->payload.find_all(tag::kAttributeName);
  ASSERT_EQ(names.size(), 2u);
  EXPECT_EQ(names[0]->text, "State");
  auto v2 = get_attributes_request("7", {"State", "Name"}, kV20);
  ASSERT_TRUE(v2.ok());
  auto refs = v2->payload.find_all(tag::kAttributeReference);
  ASSERT_EQ(refs.size(), 2u);
  EXPECT_EQ(refs[0]->type, ItemType::kEnumeration);
  EXPECT_EQ(refs[0]->num, static_cast<std::int64_t>(tag::kState));
  EXPECT_EQ(refs[1]->num, static_cast<std::int64_t>(tag::kName));
  EXPECT_EQ(get_attributes_request("7", {"x-custom"}, kV20).error().code(), ErrorCode::kInvalidInput);
  EXPECT_EQ(get_attributes_request("", {"State"}, kV14).error().code(), ErrorCode::kInvalidInput);
}

TEST(KmipMessages, ParseGetAttributesBothEncodings) {
  ResponseItem v1;
  v1.status = ResultStatus::kSuccess;
  v1.payload = Ttlv::structure(tag::kResponsePayload,
                               {Ttlv::text_string(tag::kUniqueIdentifier, "7"),
                                Ttlv::structure(tag::kAttribute, {Ttlv::text_string(tag::kAttributeName, "State"),
                                                                  Ttlv::enumeration(tag::kAttributeValue, 2)})});
  auto r1 = parse_get_attributes(v1);
  ASSERT_TRUE(r1.ok());
  ASSERT_EQ(r1->attributes.size(), 1u);
  EXPECT_EQ(r1->attributes[0].name, "State");
  EXPECT_EQ(r1->attributes[0].value.num, 2);
  ResponseItem v2 = v1;
  v2.payload = Ttlv::structure(
      tag::kResponsePayload,
      {Ttlv::text_string(tag::kUniqueIdentifier, "7"),
       Ttlv::structure(tag::kAttributes, {Ttlv::enumeration(tag::kState, 1), Ttlv::text_string(tag::kObjectGroup, "g"),
                                          Ttlv::text_string(0x540001, "vendor attribute is skipped")})});
  auto r2 = parse_get_attributes(v2);
  ASSERT_TRUE(r2.ok());
  ASSERT_EQ(r2->attributes.size(), 2u);
  EXPECT_EQ(r2->attributes[0].name, "State");
  EXPECT_EQ(r2->attributes[1].name, "Object Group");
  EXPECT_EQ(r2->attributes[1].value.text, "g");
}

TEST(KmipMessages, AddModifySetAttribute) {
  auto a = Attribute::text("Object Group", "g2");
  auto add1 = add_attribute_request("9", a, kV14);
  ASSERT_TRUE(add1.ok());
  EXPECT_EQ(add1->operation, Operation::kAddAttribute);
  EXPECT_NE(add1->payload.find(tag::kAttribute), nullptr);
  auto mod2 = modify_attribute_request("9", a, kV20);
  ASSERT_TRUE(mod2.ok());
  const Ttlv* na = mod2->payload.find(tag::kNewAttribute);
  ASSERT_NE(na, nullptr);
  EXPECT_EQ(na->find(tag::kObjectGroup)->text, "g2");
  auto mod2c = modify_attribute_request("9", a, kV20, Attribute::text("Object Group", "g1"));
  ASSERT_TRUE(mod2c.ok());
  ASSERT_EQ(mod2c->payload.children.size(), 3u);
  EXPECT_EQ(mod2c->payload.children[1].tag, tag::kCurrentAttribute);
  EXPECT_EQ(mod2c->payload.children[1].find(tag::kObjectGroup)->text, "g1");
  EXPECT_EQ(mod2c->payload.children[2].tag, tag::kNewAttribute);
  EXPECT_EQ(set_attribute_request("9", a, kV14).error().code(), ErrorCode::kUnsupported);
  EXPECT_TRUE(set_attribute_request("9", a, kV20).ok());
  Attribute indexed = a;
  indexed.index = 1;
  auto mod1 = modify_attribute_request("9", indexed, kV14);
  ASSERT_TRUE(mod1.ok());
  EXPECT_EQ(mod1->payload.find(tag::kAttribute)->find(tag::kAttributeIndex)->num, 1);
}

TEST(KmipMessages, RegisterSymmetricKeyAndSecretData) {
  auto key = SecretBytes::from_hex("000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f");
  ASSERT_TRUE(key.ok());
  RegisterParams p;
  p.name = "k";
  auto sk = register_request(p, *key, kV14);
  ASSERT_TRUE(sk.ok());
  const Ttlv* obj = sk->payload.find(tag::kSymmetricKey);
  ASSERT_NE(obj, nullptr);
  const Ttlv* kb = obj->find(tag::kKeyBlock);
  EXPECT_EQ(kb->find(tag::kKeyFormatType)->num, 1);
  EXPECT_EQ(kb->find(tag::kCryptographicLength)->num, 256);
  EXPECT_EQ(kb->find(tag::kKeyValue)->find(tag::kKeyMaterial)->bytes.size(), 32u);
  // A dump of the request never shows the key.
  auto d = dump(build_request(kV14, {*sk}));
  EXPECT_EQ(d.find("0001020304"), std::string::npos);
  EXPECT_EQ(d.find("1c1d1e1f"), std::string::npos);

  p.object_type = ObjectType::kSecretData;
  auto sd = register_request(p, *key, kV20);
  ASSERT_TRUE(sd.ok());
  const Ttlv* sdo = sd->payload.find(tag::kSecretData);
  ASSERT_NE(sdo, nullptr);
  EXPECT_EQ(sdo->find(tag::kSecretDataType)->num, 1);
  EXPECT_EQ(sdo->find(tag::kKeyBlock)->find(tag::kKeyFormatType)->num, 2);
  EXPECT_NE(sd->payload.find(tag::kAttributes), nullptr);

  EXPECT_EQ(register_request(p, SecretBytes{}, kV14).error().code(), ErrorCode::kInvalidInput);
  p.object_type = ObjectType::kCertificate;
  EXPECT_EQ(register_request(p, *key, kV14).error().code(), ErrorCode::kInvalidInput);
}

TEST(KmipMessages, ParseGetTransparentAndRejectsWrapped) {
  auto key = unhex("00112233445566778899aabbccddeeff");
  ResponseItem it;
  it.status = ResultStatus::kSuccess;
  auto make = [&](KeyFormatType f, Ttlv material, bool wrapped) {
    Ttlv kb = Ttlv::structure(tag::kKeyBlock, {Ttlv::enumeration(tag::kKeyFormatType, static_cast<std::uint32_t>(f)),
                                               Ttlv::structure(tag::kKeyValue, {std::move(material)})});
    if (wrapped) kb.add(Ttlv::structure(tag::kKeyWrappingData));
    return Ttlv::structure(tag::kResponsePayload,
                           {Ttlv::enumeration(tag::kObjectType, 2), Ttlv::text_string(tag::kUniqueIdentifier, "1"),
                            Ttlv::structure(tag::kSymmetricKey, {std::move(kb)})});
  };
  it.payload = make(KeyFormatType::kTransparentSymmetricKey,
                    Ttlv::structure(tag::kKeyMaterial, {Ttlv::byte_string(tag::kKey, key)}), false);
  auto m = parse_get(it);
  ASSERT_TRUE(m.ok()) << m.error().to_string();
  EXPECT_EQ(m->material.reveal_hex(), "00112233445566778899aabbccddeeff");
  it.payload = make(KeyFormatType::kRaw, Ttlv::byte_string(tag::kKeyMaterial, key), true);
  EXPECT_EQ(parse_get(it).error().code(), ErrorCode::kUnsupported);
  it.payload = make(KeyFormatType::kPkcs8, Ttlv::byte_string(tag::kKeyMaterial, key), false);
  EXPECT_FALSE(parse_get(it).ok());
  it.payload = std::nullopt;
  EXPECT_EQ(parse_get(it).error().code(), ErrorCode::kProtocol);
}

TEST(KmipMessages, RevokeCarriesReasonAndUid) {
  RevokeParams p;
  p.reason = RevocationReasonCode::kKeyCompromise;
  p.message = "rotated";
  p.compromise_occurrence = 1000;
  auto r = revoke_request("u1", p);
  EXPECT_EQ(r.operation, Operation::kRevoke);
  EXPECT_EQ(r.payload.find(tag::kUniqueIdentifier)->text, "u1");
  const Ttlv* rr = r.payload.find(tag::kRevocationReason);
  ASSERT_NE(rr, nullptr);
  EXPECT_EQ(rr->find(tag::kRevocationReasonCode)->num, 2);
  EXPECT_EQ(rr->find(tag::kRevocationMessage)->text, "rotated");
  EXPECT_EQ(r.payload.find(tag::kCompromiseOccurrenceDate)->num, 1000);
}

TEST(KmipBatch, UniqueIdsOnlyForMultiItemBatches) {
  auto one = build_request(kV14, {get_request("a")});
  EXPECT_EQ(one.find(tag::kBatchItem)->find(tag::kUniqueBatchItemId), nullptr);
  EXPECT_EQ(one.find(tag::kRequestHeader)->find(tag::kTimeStamp), nullptr);
  std::vector<RequestItem> items;
  for (int i = 0; i < 50; ++i) items.push_back(get_request("k" + std::to_string(i)));
  auto many = build_request(kV14, items);
  EXPECT_EQ(many.find(tag::kRequestHeader)->find(tag::kBatchCount)->num, 50);
  auto bis = many.find_all(tag::kBatchItem);
  ASSERT_EQ(bis.size(), 50u);
  std::set<std::string> ids;
  for (const Ttlv* bi : bis) {
    const Ttlv* id = bi->find(tag::kUniqueBatchItemId);
    ASSERT_NE(id, nullptr);
    ids.insert(hex_of(id->bytes));
  }
  EXPECT_EQ(ids.size(), 50u);
}

ResponseItem ok_item(std::size_t id, const std::string& uid) {
  ResponseItem it;
  it.status = ResultStatus::kSuccess;
  it.batch_item_id = batch_item_id(id);
  it.payload = Ttlv::structure(tag::kResponsePayload, {Ttlv::text_string(tag::kUniqueIdentifier, uid)});
  return it;
}

TEST(KmipBatch, MatchByIdOutOfOrderAndOmitted) {
  Response r;
  r.items.push_back(ok_item(2, "c"));
  r.items.push_back(ok_item(0, "a"));
  auto m = match_batch(3, r);
  ASSERT_TRUE(m.ok());
  EXPECT_EQ(*parse_unique_identifier(*(*m)[0]), "a");
  EXPECT_FALSE((*m)[1].has_value());
  EXPECT_EQ(*parse_unique_identifier(*(*m)[2]), "c");

  Response dup;
  dup.items.push_back(ok_item(1, "a"));
  dup.items.push_back(ok_item(1, "b"));
  EXPECT_EQ(match_batch(3, dup).error().code(), ErrorCode::kProtocol);
  Response unknown;
  unknown.items.push_back(ok_item(7, "a"));
  EXPECT_FALSE(match_batch(3, unknown).ok());

  Response whole;  // message-level failure without an ID applies to every item
  ResponseItem fail;
  fail.status = ResultStatus::kOperationFailed;
  fail.reason = ResultReason::kInvalidMessage;
  whole.items.push_back(fail);
  auto mw = match_batch(2, whole);
  ASSERT_TRUE(mw.ok());
  EXPECT_EQ((*mw)[1]->reason, ResultReason::kInvalidMessage);
}

TEST(KmipMessages, ResponseStructureErrors) {
  EXPECT_EQ(parse_response(Ttlv::structure(tag::kRequestMessage)).error().code(), ErrorCode::kProtocol);
  auto hdr = Ttlv::structure(tag::kResponseHeader, {encode_protocol_version(kV14), Ttlv::integer(tag::kBatchCount, 2)});
  auto msg = Ttlv::structure(tag::kResponseMessage,
                             {hdr, Ttlv::structure(tag::kBatchItem, {Ttlv::enumeration(tag::kResultStatus, 0)})});
  auto r = parse_response(msg);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message().find("Batch Count says 2"), std::string::npos);
  auto no_status = Ttlv::structure(
      tag::kResponseMessage,
      {Ttlv::structure(tag::kResponseHeader, {encode_protocol_version(kV14), Ttlv::integer(tag::kBatchCount, 1)}),
       Ttlv::structure(tag::kBatchItem, {Ttlv::enumeration(tag::kOperation, 10)})});
  EXPECT_NE(parse_response(no_status).error().message().find("Result Status"), std::string::npos);
}

TEST(KmipMessages, DiscoverVersionsRoundTrip) {
  auto req = discover_versions_request({kV20, kV14, ProtocolVersion{1, 0}});
  EXPECT_EQ(req.payload.find_all(tag::kProtocolVersion).size(), 3u);
  ResponseItem it;
  it.status = ResultStatus::kSuccess;
  it.payload = Ttlv::structure(tag::kResponsePayload, {encode_protocol_version(kV14), encode_protocol_version(kV11)});
  auto v = parse_discover_versions(it);
  ASSERT_TRUE(v.ok());
  ASSERT_EQ(v->size(), 2u);
  EXPECT_EQ((*v)[0], kV14);
}

}  // namespace
}  // namespace storcrypt::kmip
