// storcrypt KMIP: tag and enumeration values used by the client (KMIP 1.0-1.4
// and 2.0 spec tables; cross-checked with PyKMIP kmip/core/enums.py).
#pragma once

#include <cstdint>
#include <string_view>

namespace storcrypt::kmip {

namespace tag {
inline constexpr std::uint32_t kActivationDate = 0x420001;
inline constexpr std::uint32_t kApplicationData = 0x420002;
inline constexpr std::uint32_t kApplicationNamespace = 0x420003;
inline constexpr std::uint32_t kApplicationSpecificInformation = 0x420004;
inline constexpr std::uint32_t kAttribute = 0x420008;
inline constexpr std::uint32_t kAttributeIndex = 0x420009;
inline constexpr std::uint32_t kAttributeName = 0x42000A;
inline constexpr std::uint32_t kAttributeValue = 0x42000B;
inline constexpr std::uint32_t kAuthentication = 0x42000C;
inline constexpr std::uint32_t kBatchCount = 0x42000D;
inline constexpr std::uint32_t kBatchErrorContinuationOption = 0x42000E;
inline constexpr std::uint32_t kBatchItem = 0x42000F;
inline constexpr std::uint32_t kBatchOrderOption = 0x420010;
inline constexpr std::uint32_t kCompromiseOccurrenceDate = 0x420021;
inline constexpr std::uint32_t kCredential = 0x420023;
inline constexpr std::uint32_t kCredentialType = 0x420024;
inline constexpr std::uint32_t kCredentialValue = 0x420025;
inline constexpr std::uint32_t kCryptographicAlgorithm = 0x420028;
inline constexpr std::uint32_t kCryptographicLength = 0x42002A;
inline constexpr std::uint32_t kCryptographicParameters = 0x42002B;
inline constexpr std::uint32_t kCryptographicUsageMask = 0x42002C;
inline constexpr std::uint32_t kCustomAttribute = 0x42002D;
inline constexpr std::uint32_t kDeactivationDate = 0x42002F;
inline constexpr std::uint32_t kDigest = 0x420034;
inline constexpr std::uint32_t kHashingAlgorithm = 0x420038;
inline constexpr std::uint32_t kInitialDate = 0x420039;
inline constexpr std::uint32_t kKey = 0x42003F;
inline constexpr std::uint32_t kKeyBlock = 0x420040;
inline constexpr std::uint32_t kKeyCompressionType = 0x420041;
inline constexpr std::uint32_t kKeyFormatType = 0x420042;
inline constexpr std::uint32_t kKeyMaterial = 0x420043;
inline constexpr std::uint32_t kKeyValue = 0x420045;
inline constexpr std::uint32_t kKeyWrappingData = 0x420046;
inline constexpr std::uint32_t kKeyWrappingSpecification = 0x420047;
inline constexpr std::uint32_t kLastChangeDate = 0x420048;
inline constexpr std::uint32_t kLink = 0x42004A;
inline constexpr std::uint32_t kMaximumItems = 0x42004F;
inline constexpr std::uint32_t kMaximumResponseSize = 0x420050;
inline constexpr std::uint32_t kName = 0x420053;
inline constexpr std::uint32_t kNameType = 0x420054;
inline constexpr std::uint32_t kNameValue = 0x420055;
inline constexpr std::uint32_t kObjectGroup = 0x420056;
inline constexpr std::uint32_t kObjectType = 0x420057;
inline constexpr std::uint32_t kOperation = 0x42005C;
inline constexpr std::uint32_t kOperationPolicyName = 0x42005D;
inline constexpr std::uint32_t kProtocolVersion = 0x420069;
inline constexpr std::uint32_t kProtocolVersionMajor = 0x42006A;
inline constexpr std::uint32_t kProtocolVersionMinor = 0x42006B;
inline constexpr std::uint32_t kQueryFunction = 0x420074;
inline constexpr std::uint32_t kRequestHeader = 0x420077;
inline constexpr std::uint32_t kRequestMessage = 0x420078;
inline constexpr std::uint32_t kRequestPayload = 0x420079;
inline constexpr std::uint32_t kResponseHeader = 0x42007A;
inline constexpr std::uint32_t kResponseMessage = 0x42007B;
inline constexpr std::uint32_t kResponsePayload = 0x42007C;
inline constexpr std::uint32_t kResultMessage = 0x42007D;
inline constexpr std::uint32_t kResultReason = 0x42007E;
inline constexpr std::uint32_t kResultStatus = 0x42007F;
inline constexpr std::uint32_t kRevocationMessage = 0x420080;
inline constexpr std::uint32_t kRevocationReason = 0x420081;
inline constexpr std::uint32_t kRevocationReasonCode = 0x420082;
inline constexpr std::uint32_t kSecretData = 0x420085;
inline constexpr std::uint32_t kSecretDataType = 0x420086;
inline constexpr std::uint32_t kServerInformation = 0x420088;
inline constexpr std::uint32_t kState = 0x42008D;
inline constexpr std::uint32_t kStorageStatusMask = 0x42008E;
inline constexpr std::uint32_t kSymmetricKey = 0x42008F;
inline constexpr std::uint32_t kTemplate = 0x420090;
inline constexpr std::uint32_t kTemplateAttribute = 0x420091;
inline constexpr std::uint32_t kTimeStamp = 0x420092;
inline constexpr std::uint32_t kUniqueBatchItemId = 0x420093;
inline constexpr std::uint32_t kUniqueIdentifier = 0x420094;
inline constexpr std::uint32_t kUsername = 0x420099;
inline constexpr std::uint32_t kVendorIdentification = 0x42009D;
inline constexpr std::uint32_t kDigestValue = 0x4200A0;
inline constexpr std::uint32_t kPassword = 0x4200A1;
inline constexpr std::uint32_t kObjectGroupMember = 0x4200AC;
inline constexpr std::uint32_t kOffsetItems = 0x4200D4;
inline constexpr std::uint32_t kLocatedItems = 0x4200D5;
// KMIP 2.0
inline constexpr std::uint32_t kAttributes = 0x420125;
inline constexpr std::uint32_t kCommonAttributes = 0x420126;
inline constexpr std::uint32_t kPrivateKeyAttributes = 0x420127;
inline constexpr std::uint32_t kPublicKeyAttributes = 0x420128;
inline constexpr std::uint32_t kAttributeReference = 0x42013B;
inline constexpr std::uint32_t kCurrentAttribute = 0x42013C;
inline constexpr std::uint32_t kNewAttribute = 0x42013D;
}  // namespace tag

/// Human name of a tag ("Unique Identifier"), or "" when unknown.
std::string_view tag_name(std::uint32_t tag);
/// Tag of a KMIP 1.x attribute name ("Cryptographic Algorithm" -> 0x420028), 0 when unknown.
std::uint32_t attribute_tag(std::string_view name);

enum class Operation : std::uint32_t {
  kCreate = 0x01,
  kCreateKeyPair = 0x02,
  kRegister = 0x03,
  kReKey = 0x04,
  kDeriveKey = 0x05,
  kCertify = 0x06,
  kReCertify = 0x07,
  kLocate = 0x08,
  kCheck = 0x09,
  kGet = 0x0A,
  kGetAttributes = 0x0B,
  kGetAttributeList = 0x0C,
  kAddAttribute = 0x0D,
  kModifyAttribute = 0x0E,
  kDeleteAttribute = 0x0F,
  kObtainLease = 0x10,
  kGetUsageAllocation = 0x11,
  kActivate = 0x12,
  kRevoke = 0x13,
  kDestroy = 0x14,
  kArchive = 0x15,
  kRecover = 0x16,
  kValidate = 0x17,
  kQuery = 0x18,
  kCancel = 0x19,
  kPoll = 0x1A,
  kNotify = 0x1B,
  kPut = 0x1C,
  kReKeyKeyPair = 0x1D,
  kDiscoverVersions = 0x1E,
  kAdjustAttribute = 0x30,
  kSetAttribute = 0x31,
};
std::string_view operation_name(Operation op);

enum class ObjectType : std::uint32_t {
  kCertificate = 1,
  kSymmetricKey = 2,
  kPublicKey = 3,
  kPrivateKey = 4,
  kSplitKey = 5,
  kTemplate = 6,
  kSecretData = 7,
  kOpaqueObject = 8,
  kPgpKey = 9,
};

enum class ResultStatus : std::uint32_t {
  kSuccess = 0,
  kOperationFailed = 1,
  kOperationPending = 2,
  kOperationUndone = 3,
};

enum class ResultReason : std::uint32_t {
  kNone = 0,
  kItemNotFound = 0x01,
  kResponseTooLarge = 0x02,
  kAuthenticationNotSuccessful = 0x03,
  kInvalidMessage = 0x04,
  kOperationNotSupported = 0x05,
  kMissingData = 0x06,
  kInvalidField = 0x07,
  kFeatureNotSupported = 0x08,
  kOperationCanceledByRequester = 0x09,
  kCryptographicFailure = 0x0A,
  kIllegalOperation = 0x0B,
  kPermissionDenied = 0x0C,
  kObjectArchived = 0x0D,
  kIndexOutOfBounds = 0x0E,
  kApplicationNamespaceNotSupported = 0x0F,
  kKeyFormatTypeNotSupported = 0x10,
  kKeyCompressionTypeNotSupported = 0x11,
  kEncodingOptionError = 0x12,
  kKeyValueNotPresent = 0x13,
  kAttestationRequired = 0x14,
  kAttestationFailed = 0x15,
  kSensitive = 0x16,
  kNotExtractable = 0x17,
  kObjectAlreadyExists = 0x18,
  // KMIP 2.0
  kInvalidTicket = 0x19,
  kUsageLimitExceeded = 0x1A,
  kNumericRange = 0x1B,
  kInvalidDataType = 0x1C,
  kReadOnlyAttribute = 0x1D,
  kMultiValuedAttribute = 0x1E,
  kUnsupportedAttribute = 0x1F,
  kAttributeInstanceNotFound = 0x20,
  kAttributeNotFound = 0x21,
  kAttributeReadOnly = 0x22,
  kAttributeSingleValued = 0x23,
  kBadCryptographicParameters = 0x24,
  kBadPassword = 0x25,
  kCodecError = 0x26,
  kIllegalObjectType = 0x28,
  kIncompatibleCryptographicUsageMask = 0x29,
  kInternalServerError = 0x2A,
  kInvalidAsynchronousCorrelationValue = 0x2B,
  kInvalidAttribute = 0x2C,
  kInvalidAttributeValue = 0x2D,
  kInvalidCorrelationValue = 0x2E,
  kInvalidCsr = 0x2F,
  kInvalidObjectType = 0x30,
  kKeyWrapTypeNotSupported = 0x32,
  kMissingInitializationVector = 0x34,
  kNonUniqueNameAttribute = 0x35,
  kObjectDestroyed = 0x36,
  kObjectNotFound = 0x37,
  kNotAuthorised = 0x39,
  kServerLimitExceeded = 0x3A,
  kUnknownEnumeration = 0x3B,
  kUnknownMessageExtension = 0x3C,
  kUnknownTag = 0x3D,
  kUnsupportedCryptographicParameters = 0x3E,
  kUnsupportedProtocolVersion = 0x3F,
  kWrappingObjectArchived = 0x40,
  kWrappingObjectDestroyed = 0x41,
  kWrappingObjectNotFound = 0x42,
  kWrongKeyLifecycleState = 0x43,
  kProtectionStorageUnavailable = 0x44,
  kPkcs11CodecError = 0x45,
  kPkcs11InvalidFunction = 0x46,
  kPkcs11InvalidInterface = 0x47,
  kGeneralFailure = 0x100,
};
std::string_view result_reason_name(ResultReason r);

enum class CryptographicAlgorithm : std::uint32_t {
  kDes = 1,
  kTripleDes = 2,
  kAes = 3,
  kRsa = 4,
  kHmacSha256 = 8,
};

namespace usage {
inline constexpr std::uint32_t kSign = 0x01;
inline constexpr std::uint32_t kVerify = 0x02;
inline constexpr std::uint32_t kEncrypt = 0x04;
inline constexpr std::uint32_t kDecrypt = 0x08;
inline constexpr std::uint32_t kWrapKey = 0x10;
inline constexpr std::uint32_t kUnwrapKey = 0x20;
inline constexpr std::uint32_t kExport = 0x40;
}  // namespace usage

enum class KeyFormatType : std::uint32_t {
  kRaw = 1,
  kOpaque = 2,
  kPkcs1 = 3,
  kPkcs8 = 4,
  kX509 = 5,
  kEcPrivateKey = 6,
  kTransparentSymmetricKey = 7,
};

enum class State : std::uint32_t {
  kPreActive = 1,
  kActive = 2,
  kDeactivated = 3,
  kCompromised = 4,
  kDestroyed = 5,
  kDestroyedCompromised = 6,
};
std::string_view state_name(State s);

enum class RevocationReasonCode : std::uint32_t {
  kUnspecified = 1,
  kKeyCompromise = 2,
  kCaCompromise = 3,
  kAffiliationChanged = 4,
  kSuperseded = 5,
  kCessationOfOperation = 6,
  kPrivilegeWithdrawn = 7,
};

enum class SecretDataType : std::uint32_t { kPassword = 1, kSeed = 2 };
enum class NameType : std::uint32_t { kUninterpretedTextString = 1, kUri = 2 };
enum class QueryFunction : std::uint32_t {
  kOperations = 1,
  kObjects = 2,
  kServerInformation = 3,
};
enum class BatchErrorContinuationOption : std::uint32_t { kContinue = 1, kStop = 2, kUndo = 3 };

}  // namespace storcrypt::kmip
