// storcrypt KMIP: request payloads and response parsers for the operations
// the controller uses. Pure functions (no I/O), so they are unit-testable
// against the byte vectors of the KMIP test cases.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "storcrypt/common/result.h"
#include "storcrypt/common/secret.h"
#include "storcrypt/kmip/messages.h"

namespace storcrypt::kmip {

// ---- Discover Versions ---------------------------------------------------
RequestItem discover_versions_request(const std::vector<ProtocolVersion>& versions);
Result<std::vector<ProtocolVersion>> parse_discover_versions(const ResponseItem& item);

// ---- Query ---------------------------------------------------------------
struct QueryResult {
  std::vector<Operation> operations;
  std::vector<ObjectType> object_types;
  std::string vendor_identification;
  std::string server_information;  ///< dump of the structure (no secrets)
};
RequestItem query_request(const std::vector<QueryFunction>& functions);
Result<QueryResult> parse_query(const ResponseItem& item);

// ---- Create (symmetric key) ---------------------------------------------
struct CreateKeyParams {
  CryptographicAlgorithm algorithm = CryptographicAlgorithm::kAes;
  std::int32_t length_bits = 256;
  std::uint32_t usage_mask = usage::kEncrypt | usage::kDecrypt;
  std::string name;                   ///< optional Name
  std::string object_group;           ///< optional Object Group
  std::string operation_policy_name;  ///< optional (KMIP 1.x only)
};
Result<RequestItem> create_request(const CreateKeyParams& p, ProtocolVersion v);

// ---- Register --------------------------------------------------------------
struct RegisterParams {
  ObjectType object_type = ObjectType::kSymmetricKey;               ///< kSymmetricKey or kSecretData
  CryptographicAlgorithm algorithm = CryptographicAlgorithm::kAes;  ///< symmetric keys
  std::uint32_t usage_mask = usage::kEncrypt | usage::kDecrypt;
  SecretDataType secret_type = SecretDataType::kPassword;  ///< secret data
  std::string name;
  std::string object_group;
  std::string operation_policy_name;
};
Result<RequestItem> register_request(const RegisterParams& p, const SecretBytes& material, ProtocolVersion v);

/// Parse a response carrying only a Unique Identifier (Create, Register,
/// Activate, Revoke, Destroy, Add/Modify Attribute).
Result<std::string> parse_unique_identifier(const ResponseItem& item);

// ---- Get -------------------------------------------------------------------
struct ManagedObject {
  ObjectType object_type = ObjectType::kSymmetricKey;
  std::string unique_identifier;
  KeyFormatType key_format = KeyFormatType::kRaw;
  std::optional<CryptographicAlgorithm> algorithm;
  std::optional<std::int32_t> length_bits;
  std::optional<SecretDataType> secret_type;
  SecretBytes material;  ///< key bytes: never print or log
};
RequestItem get_request(const std::string& uid, std::optional<KeyFormatType> format = std::nullopt);
/// Accepts Raw, Opaque and Transparent Symmetric Key formats; rejects wrapped keys.
Result<ManagedObject> parse_get(const ResponseItem& item);

// ---- Locate ----------------------------------------------------------------
struct LocateFilter {
  std::optional<std::string> name;
  std::optional<std::string> object_group;
  std::optional<ObjectType> object_type;
  std::optional<State> state;
  std::optional<std::int32_t> maximum_items;
  std::optional<std::int32_t> offset_items;  ///< KMIP 1.3+
};
Result<RequestItem> locate_request(const LocateFilter& f, ProtocolVersion v);
Result<std::vector<std::string>> parse_locate(const ResponseItem& item);

// ---- Activate, Revoke, Destroy --------------------------------------------
RequestItem activate_request(const std::string& uid);
RequestItem destroy_request(const std::string& uid);
struct RevokeParams {
  RevocationReasonCode reason = RevocationReasonCode::kCessationOfOperation;
  std::string message;                                ///< optional
  std::optional<std::int64_t> compromise_occurrence;  ///< POSIX seconds; for Key Compromise
};
RequestItem revoke_request(const std::string& uid, const RevokeParams& p);

// ---- Attributes ------------------------------------------------------------
Result<RequestItem> get_attributes_request(const std::string& uid, const std::vector<std::string>& names,
                                           ProtocolVersion v);
struct GetAttributesResult {
  std::string unique_identifier;
  std::vector<Attribute> attributes;
};
Result<GetAttributesResult> parse_get_attributes(const ResponseItem& item);
/// Add Attribute (KMIP 1.x: Attribute; 2.0: New Attribute).
Result<RequestItem> add_attribute_request(const std::string& uid, const Attribute& a, ProtocolVersion v);
/// Modify Attribute (KMIP 1.x: Attribute with optional Index; 2.0: optional
/// Current Attribute, required for multi-valued attributes such as Object
/// Group, then New Attribute).
Result<RequestItem> modify_attribute_request(const std::string& uid, const Attribute& a, ProtocolVersion v,
                                             const std::optional<Attribute>& current = std::nullopt);
/// Set Attribute (KMIP 2.0 only).
Result<RequestItem> set_attribute_request(const std::string& uid, const Attribute& a, ProtocolVersion v);

}  // namespace storcrypt::kmip
