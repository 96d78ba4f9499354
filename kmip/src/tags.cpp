#include "storcrypt/kmip/tags.h"

#include <array>
#include <utility>

namespace storcrypt::kmip {
namespace {
struct TagName {
  std::uint32_t tag;
  std::string_view name;
};
constexpr TagName kTagNames[] = {
    {tag::kActivationDate, "Activation Date"},
    {tag::kApplicationData, "Application Data"},
    {tag::kApplicationNamespace, "Application Namespace"},
    {tag::kApplicationSpecificInformation, "Application Specific Information"},
    {tag::kAttribute, "Attribute"},
    {tag::kAttributeIndex, "Attribute Index"},
    {tag::kAttributeName, "Attribute Name"},
    {tag::kAttributeValue, "Attribute Value"},
    {tag::kAuthentication, "Authentication"},
    {tag::kBatchCount, "Batch Count"},
    {tag::kBatchErrorContinuationOption, "Batch Error Continuation Option"},
    {tag::kBatchItem, "Batch Item"},
    {tag::kBatchOrderOption, "Batch Order Option"},
    {tag::kCompromiseOccurrenceDate, "Compromise Occurrence Date"},
    {tag::kCredential, "Credential"},
    {tag::kCredentialType, "Credential Type"},
    {tag::kCredentialValue, "Credential Value"},
    {tag::kCryptographicAlgorithm, "Cryptographic Algorithm"},
    {tag::kCryptographicLength, "Cryptographic Length"},
    {tag::kCryptographicParameters, "Cryptographic Parameters"},
    {tag::kCryptographicUsageMask, "Cryptographic Usage Mask"},
    {tag::kCustomAttribute, "Custom Attribute"},
    {tag::kDeactivationDate, "Deactivation Date"},
    {tag::kDigest, "Digest"},
    {tag::kHashingAlgorithm, "Hashing Algorithm"},
    {tag::kInitialDate, "Initial Date"},
    {tag::kKey, "Key"},
    {tag::kKeyBlock, "Key Block"},
    {tag::kKeyCompressionType, "Key Compression Type"},
    {tag::kKeyFormatType, "Key Format Type"},
    {tag::kKeyMaterial, "Key Material"},
    {tag::kKeyValue, "Key Value"},
    {tag::kKeyWrappingData, "Key Wrapping Data"},
    {tag::kKeyWrappingSpecification, "Key Wrapping Specification"},
    {tag::kLastChangeDate, "Last Change Date"},
    {tag::kLink, "Link"},
    {tag::kMaximumItems, "Maximum Items"},
    {tag::kMaximumResponseSize, "Maximum Response Size"},
    {tag::kName, "Name"},
    {tag::kNameType, "Name Type"},
    {tag::kNameValue, "Name Value"},
    {tag::kObjectGroup, "Object Group"},
    {tag::kObjectType, "Object Type"},
    {tag::kOperation, "Operation"},
    {tag::kOperationPolicyName, "Operation Policy Name"},
    {tag::kProtocolVersion, "Protocol Version"},
    {tag::kProtocolVersionMajor, "Protocol Version Major"},
    {tag::kProtocolVersionMinor, "Protocol Version Minor"},
    {tag::kQueryFunction, "Query Function"},
    {tag::kRequestHeader, "Request Header"},
    {tag::kRequestMessage, "Request Message"},
    {tag::kRequestPayload, "Request Payload"},
    {tag::kResponseHeader, "Response Header"},
    {tag::kResponseMessage, "Response Message"},
    {tag::kResponsePayload, "Response Payload"},
    {tag::kResultMessage, "Result Message"},
    {tag::kResultReason, "Result Reason"},
    {tag::kResultStatus, "Result Status"},
    {tag::kRevocationMessage, "Revocation Message"},
    {tag::kRevocationReason, "Revocation Reason"},
    {tag::kRevocationReasonCode, "Revocation Reason Code"},
    {tag::kSecretData, "Secret Data"},
    {tag::kSecretDataType, "Secret Data Type"},
    {tag::kServerInformation, "Server Information"},
    {tag::kState, "State"},
    {tag::kStorageStatusMask, "Storage Status Mask"},
    {tag::kSymmetricKey, "Symmetric Key"},
    {tag::kTemplate, "Template"},
    {tag::kTemplateAttribute, "Template-Attribute"},
    {tag::kTimeStamp, "Time Stamp"},
    {tag::kUniqueBatchItemId, "Unique Batch Item ID"},
    {tag::kUniqueIdentifier, "Unique Identifier"},
    {tag::kUsername, "Username"},
    {tag::kVendorIdentification, "Vendor Identification"},
    {tag::kDigestValue, "Digest Value"},
    {tag::kPassword, "Password"},
    {tag::kObjectGroupMember, "Object Group Member"},
    {tag::kOffsetItems, "Offset Items"},
    {tag::kLocatedItems, "Located Items"},
    {tag::kAttributes, "Attributes"},
    {tag::kCommonAttributes, "Common Attributes"},
    {tag::kPrivateKeyAttributes, "Private Key Attributes"},
    {tag::kPublicKeyAttributes, "Public Key Attributes"},
    {tag::kAttributeReference, "Attribute Reference"},
    {tag::kCurrentAttribute, "Current Attribute"},
    {tag::kNewAttribute, "New Attribute"},
};

// KMIP 1.x attribute names whose 2.0 encoding uses the attribute's own tag.
constexpr std::uint32_t kAttributeTags[] = {
    tag::kActivationDate,
    tag::kApplicationSpecificInformation,
    tag::kCryptographicAlgorithm,
    tag::kCryptographicLength,
    tag::kCryptographicParameters,
    tag::kCryptographicUsageMask,
    tag::kDeactivationDate,
    tag::kDigest,
    tag::kInitialDate,
    tag::kLastChangeDate,
    tag::kLink,
    tag::kName,
    tag::kObjectGroup,
    tag::kObjectType,
    tag::kOperationPolicyName,
    tag::kState,
    tag::kUniqueIdentifier,
    tag::kCompromiseOccurrenceDate,
    tag::kRevocationReason,
};
}  // namespace

std::string_view tag_name(std::uint32_t t) {
  for (const auto& e : kTagNames)
    if (e.tag == t) return e.name;
  return {};
}

std::uint32_t attribute_tag(std::string_view name) {
  for (auto t : kAttributeTags)
    if (tag_name(t) == name) return t;
  return 0;
}

std::string_view operation_name(Operation op) {
  switch (op) {
    case Operation::kCreate:
      return "Create";
    case Operation::kCreateKeyPair:
      return "CreateKeyPair";
    case Operation::kRegister:
      return "Register";
    case Operation::kReKey:
      return "ReKey";
    case Operation::kDeriveKey:
      return "DeriveKey";
    case Operation::kCertify:
      return "Certify";
    case Operation::kReCertify:
      return "ReCertify";
    case Operation::kLocate:
      return "Locate";
    case Operation::kCheck:
      return "Check";
    case Operation::kGet:
      return "Get";
    case Operation::kGetAttributes:
      return "GetAttributes";
    case Operation::kGetAttributeList:
      return "GetAttributeList";
    case Operation::kAddAttribute:
      return "AddAttribute";
    case Operation::kModifyAttribute:
      return "ModifyAttribute";
    case Operation::kDeleteAttribute:
      return "DeleteAttribute";
    case Operation::kObtainLease:
      return "ObtainLease";
    case Operation::kGetUsageAllocation:
      return "GetUsageAllocation";
    case Operation::kActivate:
      return "Activate";
    case Operation::kRevoke:
      return "Revoke";
    case Operation::kDestroy:
      return "Destroy";
    case Operation::kArchive:
      return "Archive";
    case Operation::kRecover:
      return "Recover";
    case Operation::kValidate:
      return "Validate";
    case Operation::kQuery:
      return "Query";
    case Operation::kCancel:
      return "Cancel";
    case Operation::kPoll:
      return "Poll";
    case Operation::kNotify:
      return "Notify";
    case Operation::kPut:
      return "Put";
    case Operation::kReKeyKeyPair:
      return "ReKeyKeyPair";
    case Operation::kDiscoverVersions:
      return "DiscoverVersions";
    case Operation::kAdjustAttribute:
      return "AdjustAttribute";
    case Operation::kSetAttribute:
      return "SetAttribute";
  }
  return "UnknownOperation";
}

std::string_view result_reason_name(ResultReason r) {
  switch (r) {
    case ResultReason::kNone:
      return "None";
    case ResultReason::kItemNotFound:
      return "Item Not Found";
    case ResultReason::kResponseTooLarge:
      return "Response Too Large";
    case ResultReason::kAuthenticationNotSuccessful:
      return "Authentication Not Successful";
    case ResultReason::kInvalidMessage:
      return "Invalid Message";
    case ResultReason::kOperationNotSupported:
      return "Operation Not Supported";
    case ResultReason::kMissingData:
      return "Missing Data";
    case ResultReason::kInvalidField:
      return "Invalid Field";
    case ResultReason::kFeatureNotSupported:
      return "Feature Not Supported";
    case ResultReason::kOperationCanceledByRequester:
      return "Operation Canceled By Requester";
    case ResultReason::kCryptographicFailure:
      return "Cryptographic Failure";
    case ResultReason::kIllegalOperation:
      return "Illegal Operation";
    case ResultReason::kPermissionDenied:
      return "Permission Denied";
    case ResultReason::kObjectArchived:
      return "Object Archived";
    case ResultReason::kIndexOutOfBounds:
      return "Index Out Of Bounds";
    case ResultReason::kApplicationNamespaceNotSupported:
      return "Application Namespace Not Supported";
    case ResultReason::kKeyFormatTypeNotSupported:
      return "Key Format Type Not Supported";
    case ResultReason::kKeyCompressionTypeNotSupported:
      return "Key Compression Type Not Supported";
    case ResultReason::kEncodingOptionError:
      return "Encoding Option Error";
    case ResultReason::kKeyValueNotPresent:
      return "Key Value Not Present";
    case ResultReason::kAttestationRequired:
      return "Attestation Required";
    case ResultReason::kAttestationFailed:
      return "Attestation Failed";
    case ResultReason::kSensitive:
      return "Sensitive";
    case ResultReason::kNotExtractable:
      return "Not Extractable";
    case ResultReason::kObjectAlreadyExists:
      return "Object Already Exists";
    case ResultReason::kInvalidTicket:
      return "Invalid Ticket";
    case ResultReason::kUsageLimitExceeded:
      return "Usage Limit Exceeded";
    case ResultReason::kNumericRange:
      return "Numeric Range";
    case ResultReason::kInvalidDataType:
      return "Invalid Data Type";
    case ResultReason::kReadOnlyAttribute:
      return "Read Only Attribute";
    case ResultReason::kMultiValuedAttribute:
      return "Multi Valued Attribute";
    case ResultReason::kUnsupportedAttribute:
      return "Unsupported Attribute";
    case ResultReason::kAttributeInstanceNotFound:
      return "Attribute Instance Not Found";
    case ResultReason::kAttributeNotFound:
      return "Attribute Not Found";
    case ResultReason::kAttributeReadOnly:
      return "Attribute Read Only";
    case ResultReason::kAttributeSingleValued:
      return "Attribute Single Valued";
    case ResultReason::kBadCryptographicParameters:
      return "Bad Cryptographic Parameters";
    case ResultReason::kBadPassword:
      return "Bad Password";
    case ResultReason::kCodecError:
      return "Codec Error";
    case ResultReason::kIllegalObjectType:
      return "Illegal Object Type";
    case ResultReason::kIncompatibleCryptographicUsageMask:
      return "Incompatible Cryptographic Usage Mask";
    case ResultReason::kInternalServerError:
      return "Internal Server Error";
    case ResultReason::kInvalidAsynchronousCorrelationValue:
      return "Invalid Asynchronous Correlation Value";
    case ResultReason::kInvalidAttribute:
      return "Invalid Attribute";
    case ResultReason::kInvalidAttributeValue:
      return "Invalid Attribute Value";
    case ResultReason::kInvalidCorrelationValue:
      return "Invalid Correlation Value";
    case ResultReason::kInvalidCsr:
      return "Invalid CSR";
    case ResultReason::kInvalidObjectType:
      return "Invalid Object Type";
    case ResultReason::kKeyWrapTypeNotSupported:
      return "Key Wrap Type Not Supported";
    case ResultReason::kMissingInitializationVector:
      return "Missing Initialization Vector";
    case ResultReason::kNonUniqueNameAttribute:
      return "Non Unique Name Attribute";
    case ResultReason::kObjectDestroyed:
      return "Object Destroyed";
    case ResultReason::kObjectNotFound:
      return "Object Not Found";
    case ResultReason::kNotAuthorised:
      return "Not Authorised";
    case ResultReason::kServerLimitExceeded:
      return "Server Limit Exceeded";
    case ResultReason::kUnknownEnumeration:
      return "Unknown Enumeration";
    case ResultReason::kUnknownMessageExtension:
      return "Unknown Message Extension";
    case ResultReason::kUnknownTag:
      return "Unknown Tag";
    case ResultReason::kUnsupportedCryptographicParameters:
      return "Unsupported Cryptographic Parameters";
    case ResultReason::kUnsupportedProtocolVersion:
      return "Unsupported Protocol Version";
    case ResultReason::kWrappingObjectArchived:
      return "Wrapping Object Archived";
    case ResultReason::kWrappingObjectDestroyed:
      return "Wrapping Object Destroyed";
    case ResultReason::kWrappingObjectNotFound:
      return "Wrapping Object Not Found";
    case ResultReason::kWrongKeyLifecycleState:
      return "Wrong Key Lifecycle State";
    case ResultReason::kProtectionStorageUnavailable:
      return "Protection Storage Unavailable";
    case ResultReason::kPkcs11CodecError:
      return "PKCS11 Codec Error";
    case ResultReason::kPkcs11InvalidFunction:
      return "PKCS11 Invalid Function";
    case ResultReason::kPkcs11InvalidInterface:
      return "PKCS11 Invalid Interface";
    case ResultReason::kGeneralFailure:
      return "General Failure";
  }
  return "Unknown Reason";
}

std::string_view state_name(State s) {
  switch (s) {
    case State::kPreActive:
      return "Pre-Active";
    case State::kActive:
      return "Active";
    case State::kDeactivated:
      return "Deactivated";
    case State::kCompromised:
      return "Compromised";
    case State::kDestroyed:
      return "Destroyed";
    case State::kDestroyedCompromised:
      return "Destroyed Compromised";
  }
  return "Unknown State";
}

}  // namespace storcrypt::kmip
