// storcrypt KMIP: request/response messages, batches, results and attributes
// in both the KMIP 1.x (Attribute Name/Index/Value, Template-Attribute) and
// KMIP 2.0 (attribute under its own tag, Attributes structure) encodings.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "storcrypt/common/result.h"
#include "storcrypt/kmip/tags.h"
#include "storcrypt/kmip/ttlv.h"

namespace storcrypt::kmip {

struct ProtocolVersion {
  int major = 1;
  int minor = 4;
  bool operator==(const ProtocolVersion& o) const { return major == o.major && minor == o.minor; }
  bool is_v2() const { return major >= 2; }
  std::string to_string() const { return std::to_string(major) + "." + std::to_string(minor); }
};

Ttlv encode_protocol_version(ProtocolVersion v);
Result<ProtocolVersion> decode_protocol_version(const Ttlv& item);

/// One attribute, independent of the wire encoding. `value` carries the type
/// and content (its tag is ignored: 1.x writes it as Attribute Value, 2.0 as
/// the attribute's own tag).
struct Attribute {
  std::string name;
  std::optional<std::int32_t> index;  ///< KMIP 1.x only
  Ttlv value;

  static Attribute enumeration(std::string name, std::uint32_t v);
  static Attribute integer(std::string name, std::int32_t v);
  static Attribute text(std::string name, std::string v);
  static Attribute date_time(std::string name, std::int64_t v);
  /// Name attribute (Name Value + Name Type Uninterpreted Text String).
  static Attribute name_attr(std::string v);
};

/// Encode for the given version: 1.x -> Attribute structure; 2.0 -> an item
/// with the attribute's own tag (kInvalidInput for names without a 2.0 tag).
Result<Ttlv> encode_attribute(const Attribute& a, ProtocolVersion v);
/// Decode either encoding (1.x Attribute structure or a 2.0 attribute item).
Result<Attribute> decode_attribute(const Ttlv& item);
/// Encode a set of attributes as the version's container: Template-Attribute
/// (1.x) or Attributes (2.0).
Result<Ttlv> encode_attribute_container(const std::vector<Attribute>& attrs, ProtocolVersion v);

struct RequestItem {
  Operation operation = Operation::kQuery;
  Ttlv payload = Ttlv::structure(tag::kRequestPayload);
};

struct RequestOptions {
  std::optional<std::int32_t> maximum_response_size;
  std::optional<BatchErrorContinuationOption> batch_error_continuation;
  std::optional<bool> batch_order;
};

/// Build a Request Message. With more than one item every item gets a
/// unique 4-byte Unique Batch Item ID (0,1,2,...). No Time Stamp is sent
/// (servers reject clock skew; see reference 3.4).
Ttlv build_request(ProtocolVersion v, const std::vector<RequestItem>& items, const RequestOptions& opts = {});

/// Batch item ID that build_request assigns to item `i` of a multi-item batch.
Bytes batch_item_id(std::size_t i);

struct ResponseItem {
  std::optional<Operation> operation;
  Bytes batch_item_id;
  ResultStatus status = ResultStatus::kOperationFailed;
  ResultReason reason = ResultReason::kNone;
  std::string message;
  std::optional<Ttlv> payload;  ///< Response Payload structure when present
};

struct Response {
  ProtocolVersion version;
  std::optional<std::int64_t> time_stamp;
  std::vector<ResponseItem> items;
};

/// Parse a Response Message (lenient about unknown fields, strict about the
/// required ones: header, protocol version, batch count, result status).
Result<Response> parse_response(const Ttlv& msg);

/// Match response items to the request's items: by Unique Batch Item ID for
/// multi-item batches, by position otherwise. Items the server omitted (e.g.
/// after a failure with the Stop option) are nullopt.
Result<std::vector<std::optional<ResponseItem>>> match_batch(std::size_t request_items, Response resp);

}  // namespace storcrypt::kmip
