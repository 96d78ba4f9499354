#include "kmip_xml.h"

#include <algorithm>
#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <utility>

#include "storcrypt/common/hex.h"
#include "storcrypt/kmip/tags.h"

namespace storcrypt::kmip::xmltest {

std::string testcase_dir() { return std::string(STORCRYPT_SOURCE_DIR) + "/tests/data/kmip/v1.4"; }

Status check_testcase_dir(const std::string& dir) {
  if (std::filesystem::exists(dir + "/SKLC-M-1-14.xml")) return {};
  return Error(ErrorCode::kNotFound, "KMIP test cases missing: " + dir +
                                         "/SKLC-M-1-14.xml does not exist; they are part of the repository "
                                         "(tests/data/kmip/v1.4, see tests/data/kmip/README.md): restore them with "
                                         "`git checkout -- tests/data/kmip`");
}

std::vector<std::string> list_testcases(const std::string& dir) {
  std::vector<std::string> out;
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(dir, ec))
    if (e.path().extension() == ".xml") out.push_back(e.path().stem().string());
  std::sort(out.begin(), out.end());
  return out;
}

namespace {

struct Node {
  std::string name;
  std::map<std::string, std::string> attrs;
  std::vector<Node> children;
};

Error bad(const std::string& m) { return Error(ErrorCode::kInvalidInput, "KMIP XML test case: " + m); }

class Parser {
 public:
  explicit Parser(std::string s) : s_(std::move(s)) {}
  Result<std::vector<Node>> parse_top() {
    std::vector<Node> out;
    skip_misc();
    while (pos_ < s_.size()) {
      STORCRYPT_ASSIGN_OR_RETURN(Node n, element());
      out.push_back(std::move(n));
      skip_misc();
    }
    return out;
  }

 private:
  void skip_ws() {
    while (pos_ < s_.size() && std::isspace(static_cast<unsigned char>(s_[pos_]))) ++pos_;
  }
  void skip_misc() {
    for (;;) {
      skip_ws();
      if (s_.compare(pos_, 4, "<!--") == 0) {
        auto e = s_.find("-->", pos_);
        pos_ = e == std::string::npos ? s_.size() : e + 3;
      } else if (s_.compare(pos_, 2, "<?") == 0) {
        auto e = s_.find("?>", pos_);
        pos_ = e == std::string::npos ? s_.size() : e + 2;
      } else {
        return;
      }
    }
  }
  static std::string unescape(const std::string& v) {
    std::string o;
    for (std::size_t i = 0; i < v.size(); ++i) {
      if (v[i] == '&') {
        auto e = v.find(';', i);
        std::string ent = v.substr(i + 1, e - i - 1);
        o += ent == "amp" ? "&" : ent == "lt" ? "<" : ent == "gt" ? ">" : ent == "quot" ? "\"" : "'";
        i = e;
      } else {
        o += v[i];
      }
    }
    return o;
  }
  Result<Node> element() {
    if (pos_ >= s_.size() || s_[pos_] != '<') return bad("expected '<' at offset " + std::to_string(pos_));
    ++pos_;
    Node n;
    while (pos_ < s_.size() && (std::isalnum(static_cast<unsigned char>(s_[pos_])) || s_[pos_] == '_'))
      n.name += s_[pos_++];
    for (;;) {
      skip_ws();
      if (pos_ >= s_.size()) return bad("unterminated element " + n.name);
      if (s_.compare(pos_, 2, "/>") == 0) {
        pos_ += 2;
        return n;
      }
      if (s_[pos_] == '>') {
        ++pos_;
        break;
      }
      std::string key;
      while (pos_ < s_.size() && s_[pos_] != '=' && !std::isspace(static_cast<unsigned char>(s_[pos_])))
        key += s_[pos_++];
      skip_ws();
      if (pos_ >= s_.size() || s_[pos_] != '=') return bad("attribute without value in " + n.name);
      ++pos_;
      skip_ws();
      char q = s_[pos_++];
      auto e = s_.find(q, pos_);
      if (e == std::string::npos) return bad("unterminated attribute value in " + n.name);
      n.attrs[key] = unescape(s_.substr(pos_, e - pos_));
      pos_ = e + 1;
    }
    for (;;) {
      skip_misc();
      if (s_.compare(pos_, 2, "</") == 0) {
        auto e = s_.find('>', pos_);
        if (s_.substr(pos_ + 2, e - pos_ - 2) != n.name) return bad("mismatched end tag for " + n.name);
        pos_ = e + 1;
        return n;
      }
      STORCRYPT_ASSIGN_OR_RETURN(Node c, element());
      n.children.push_back(std::move(c));
    }
  }
  std::string s_;
  std::size_t pos_ = 0;
};

std::string squash(std::string_view s) {
  std::string o;
  for (char c : s)
    if (c != ' ' && c != '-') o += c;
  return o;
}

using EnumTable = std::vector<std::pair<std::string, std::uint32_t>>;

const EnumTable kObjectType{{"Certificate", 1}, {"SymmetricKey", 2}, {"PublicKey", 3},
                            {"PrivateKey", 4},  {"SplitKey", 5},     {"Template", 6},
                            {"SecretData", 7},  {"OpaqueObject", 8}, {"PGPKey", 9}};
const EnumTable kAlgorithm{{"DES", 1}, {"3DES", 2},  {"DES3", 2},      {"AES", 3},        {"RSA", 4},
                           {"DSA", 5}, {"ECDSA", 6}, {"HMAC_SHA1", 7}, {"HMAC_SHA256", 8}};
const EnumTable kState{{"PreActive", 1},   {"Active", 2},    {"Deactivated", 3},
                       {"Compromised", 4}, {"Destroyed", 5}, {"DestroyedCompromised", 6}};
const EnumTable kNameType{{"UninterpretedTextString", 1}, {"URI", 2}};
const EnumTable kResultStatus{{"Success", 0}, {"OperationFailed", 1}, {"OperationPending", 2}, {"OperationUndone", 3}};
const EnumTable kRevocation{{"Unspecified", 1},        {"KeyCompromise", 2}, {"CACompromise", 3},
                            {"AffiliationChanged", 4}, {"Superseded", 5},    {"CessationOfOperation", 6},
                            {"PrivilegeWithdrawn", 7}};
const EnumTable kKeyFormat{{"Raw", 1},
                           {"Opaque", 2},
                           {"PKCS_1", 3},
                           {"PKCS_8", 4},
                           {"X_509", 5},
                           {"ECPrivateKey", 6},
                           {"TransparentSymmetricKey", 7}};
const EnumTable kHashing{{"MD2", 1},     {"MD4", 2},     {"MD5", 3},     {"SHA_1", 4},
                         {"SHA_224", 5}, {"SHA_256", 6}, {"SHA_384", 7}, {"SHA_512", 8}};
const EnumTable kQuery{{"QueryOperations", 1},        {"QueryObjects", 2},
                       {"QueryServerInformation", 3}, {"QueryApplicationNamespaces", 4},
                       {"QueryExtensionList", 5},     {"QueryExtensionMap", 6},
                       {"QueryAttestationTypes", 7},  {"QueryRNGs", 8},
                       {"QueryValidations", 9},       {"QueryProfiles", 0xA},
                       {"QueryCapabilities", 0xB},    {"QueryClientRegistrationMethods", 0xC}};
// KMIP 1.4 section 9.1.3.2 enumerations the client itself does not use
// (values cross-checked with PyKMIP 0.10 kmip/core/enums.py).
const EnumTable kLinkType{{"CertificateLink", 0x101},
                          {"PublicKeyLink", 0x102},
                          {"PrivateKeyLink", 0x103},
                          {"DerivationBaseObjectLink", 0x104},
                          {"DerivedKeyLink", 0x105},
                          {"ReplacementObjectLink", 0x106},
                          {"ReplacedObjectLink", 0x107},
                          {"ParentLink", 0x108},
                          {"ChildLink", 0x109},
                          {"PreviousLink", 0x10A},
                          {"NextLink", 0x10B}};
const EnumTable kRngAlgorithm{{"Unspecified", 1}, {"FIPS186_2", 2}, {"DRBG", 3},
                              {"NRBG", 4},        {"ANSIX9_31", 5}, {"ANSIX9_62", 6}};
const EnumTable kAlternativeNameType{
    {"UninterpretedTextString", 1}, {"URI", 2},      {"ObjectSerialNumber", 3}, {"EmailAddress", 4}, {"DNSName", 5},
    {"X500DistinguishedName", 6},   {"IPAddress", 7}};
const EnumTable kPutFunction{{"New", 1}, {"Replace", 2}};
const EnumTable kUnwrapMode{{"Unspecified", 1}, {"Processed", 2}, {"NotProcessed", 3}};
const EnumTable kDestroyAction{{"Unspecified", 1},     {"KeyMaterialDeleted", 2}, {"KeyMaterialShredded", 3},
                               {"MetaDataDeleted", 4}, {"MetaDataShredded", 5},   {"Deleted", 6},
                               {"Shredded", 7}};
const EnumTable kShreddingAlgorithm{{"Unspecified", 1}, {"Cryptographic", 2}, {"Unsupported", 3}};
const EnumTable kRngMode{{"Unspecified", 1}, {"SharedInstantiation", 2}, {"NonSharedInstantiation", 3}};
// Only the profile names the test cases use (Tape Library server, KMIP 1.2-1.4).
const EnumTable kProfileName{
    {"TapeLibraryServerKMIPV1_2", 0x0C}, {"TapeLibraryServerKMIPV1_3", 0x5C}, {"TapeLibraryServerKMIPV1_4", 0x80}};

// Element names of the KMIP 1.4 tags (section 9.1.3.1) the client library
// does not name itself; the library's own names come from tag_name().
const std::pair<const char*, std::uint32_t> kExtraTags[] = {
    {"AlternativeNameType", 0x4200C1},
    {"AlternativeNameValue", 0x4200C0},
    {"AsynchronousCapability", 0x4200F0},
    {"AttestationCapability", 0x4200F1},
    {"BatchContinueCapability", 0x4200FA},
    {"BatchUndoCapability", 0x4200F9},
    {"CapabilityInformation", 0x4200F7},
    {"CommonTemplateAttribute", 0x42001F},
    {"DestroyAction", 0x4200F3},
    {"LinkType", 0x42004B},
    {"LinkedObjectIdentifier", 0x42004C},
    {"OpaqueDataType", 0x420059},
    {"OpaqueDataValue", 0x42005A},
    {"OpaqueObject", 0x42005B},
    {"PrivateKeyTemplateAttribute", 0x420065},
    {"PrivateKeyUniqueIdentifier", 0x420066},
    {"ProfileInformation", 0x4200EB},
    {"ProfileName", 0x4200EC},
    {"PublicKeyTemplateAttribute", 0x42006E},
    {"PublicKeyUniqueIdentifier", 0x42006F},
    {"PutFunction", 0x420070},
    {"RNGAlgorithm", 0x4200DA},
    {"RNGMode", 0x4200F5},
    {"RNGParameters", 0x4200D9},
    {"ShreddingAlgorithm", 0x4200F4},
    {"StreamingCapability", 0x4200EF},
    {"UnwrapMode", 0x4200F2},
};
const EnumTable kSecretDataType{{"Password", 1}, {"Seed", 2}};
const EnumTable kUsage{{"Sign", 0x1},        {"Verify", 0x2},     {"Encrypt", 0x4}, {"Decrypt", 0x8},
                       {"WrapKey", 0x10},    {"UnwrapKey", 0x20}, {"Export", 0x40}, {"MACGenerate", 0x80},
                       {"MACVerify", 0x100}, {"DeriveKey", 0x200}};

EnumTable operation_table() {
  EnumTable t;
  for (std::uint32_t i = 1; i <= 0x31; ++i) {
    auto n = operation_name(static_cast<Operation>(i));
    if (n != "UnknownOperation") t.emplace_back(std::string(n), i);
  }
  // KMIP 1.2-1.4 operations the client library does not implement.
  for (const auto& [n, v] : EnumTable{{"Encrypt", 0x1F},
                                      {"Decrypt", 0x20},
                                      {"Sign", 0x21},
                                      {"SignatureVerify", 0x22},
                                      {"MAC", 0x23},
                                      {"MACVerify", 0x24},
                                      {"RNGRetrieve", 0x25},
                                      {"RNGSeed", 0x26},
                                      {"Hash", 0x27},
                                      {"CreateSplitKey", 0x28},
                                      {"JoinSplitKey", 0x29}})
    t.emplace_back(n, v);
  return t;
}
EnumTable reason_table() {
  EnumTable t;
  for (std::uint32_t i : {0x01u, 0x02u, 0x03u, 0x04u, 0x05u, 0x06u, 0x07u, 0x08u, 0x09u, 0x0Au, 0x0Bu, 0x0Cu, 0x0Du,
                          0x0Eu, 0x0Fu, 0x10u, 0x11u, 0x12u, 0x13u, 0x14u, 0x15u, 0x16u, 0x17u, 0x18u, 0x100u})
    t.emplace_back(squash(result_reason_name(static_cast<ResultReason>(i))), i);
  return t;
}

const EnumTable* table_for(std::uint32_t t, const std::string& attribute_name) {
  static const EnumTable ops = operation_table();
  static const EnumTable reasons = reason_table();
  std::uint32_t key = t == tag::kAttributeValue ? attribute_tag(attribute_name) : t;
  switch (key) {
    case tag::kObjectType:
      return &kObjectType;
    case tag::kCryptographicAlgorithm:
      return &kAlgorithm;
    case tag::kState:
      return &kState;
    case tag::kNameType:
      return &kNameType;
    case tag::kResultStatus:
      return &kResultStatus;
    case tag::kResultReason:
      return &reasons;
    case tag::kOperation:
      return &ops;
    case tag::kRevocationReasonCode:
      return &kRevocation;
    case tag::kKeyFormatType:
      return &kKeyFormat;
    case tag::kHashingAlgorithm:
      return &kHashing;
    case tag::kQueryFunction:
      return &kQuery;
    case tag::kSecretDataType:
      return &kSecretDataType;
    case 0x4200C1:
      return &kAlternativeNameType;
    case 0x42004B:
      return &kLinkType;
    case 0x4200DA:
      return &kRngAlgorithm;
    case 0x420070:
      return &kPutFunction;
    case 0x4200F2:
      return &kUnwrapMode;
    case 0x4200F3:
      return &kDestroyAction;
    case 0x4200F4:
      return &kShreddingAlgorithm;
    case 0x4200F5:
      return &kRngMode;
    case 0x4200EC:
      return &kProfileName;
    default:
      return nullptr;
  }
}

Result<std::uint32_t> tag_of(const std::string& element) {
  static std::map<std::string, std::uint32_t> names = [] {
    std::map<std::string, std::uint32_t> m;
    for (std::uint32_t t = 0x420001; t <= 0x420160; ++t) {
      auto n = tag_name(t);
      if (!n.empty()) m[squash(n)] = t;
    }
    for (const auto& [n, t] : kExtraTags) m[n] = t;
    return m;
  }();
  auto it = names.find(element);
  if (it == names.end()) return bad("unknown element <" + element + "> (add its tag to tags.cpp)");
  return it->second;
}

Result<std::int64_t> parse_number(const std::string& v) {
  try {
    if (v.rfind("0x", 0) == 0) return static_cast<std::int64_t>(std::stoull(v.substr(2), nullptr, 16));
    return static_cast<std::int64_t>(std::stoll(v));
  } catch (...) {
    return bad("not a number: " + v);
  }
}

Result<std::int64_t> parse_enum(std::uint32_t t, const std::string& attribute_name, const std::string& v) {
  if (v.rfind("0x", 0) == 0) return parse_number(v);
  const EnumTable* tab = table_for(t, attribute_name);
  if (tab != nullptr)
    for (const auto& [n, val] : *tab)
      if (n == v) return static_cast<std::int64_t>(val);
  return bad("unknown enumeration value '" + v + "' for tag " + std::string(tag_name(t)));
}

Result<std::int64_t> parse_datetime(const std::string& v) {
  if (v == "$NOW") return kNow;
  std::tm tm{};
  const char* rest = strptime(v.c_str(), "%Y-%m-%dT%H:%M:%S", &tm);
  if (rest == nullptr) return bad("bad DateTime " + v);
  return static_cast<std::int64_t>(timegm(&tm));
}

Result<Ttlv> convert(const Node& n, const std::string& attribute_name) {
  STORCRYPT_ASSIGN_OR_RETURN(std::uint32_t t, tag_of(n.name));
  auto type_it = n.attrs.find("type");
  std::string type = type_it == n.attrs.end() ? "Structure" : type_it->second;
  std::string v = n.attrs.count("value") ? n.attrs.at("value") : std::string();
  if (type == "Structure") {
    Ttlv s = Ttlv::structure(t);
    std::string attr_name;
    for (const auto& c : n.children) {
      STORCRYPT_ASSIGN_OR_RETURN(Ttlv ct, convert(c, attr_name));
      if (ct.tag == tag::kAttributeName) attr_name = ct.text;
      s.add(std::move(ct));
    }
    return s;
  }
  if (type == "TextString") return Ttlv::text_string(t, v);
  if (type == "ByteString") {
    auto b = parse_hex(v);
    if (!b) return bad("bad ByteString hex " + v);
    return Ttlv::byte_string(t, *b);
  }
  if (type == "Enumeration") {
    STORCRYPT_ASSIGN_OR_RETURN(auto e, parse_enum(t, attribute_name, v));
    return Ttlv::enumeration(t, static_cast<std::uint32_t>(e));
  }
  if (type == "Integer") {
    if (!v.empty() && (std::isalpha(static_cast<unsigned char>(v[0])) != 0)) {  // mask names
      std::int64_t mask = 0;
      std::istringstream in(v);
      std::string word;
      while (in >> word) {
        bool found = false;
        for (const auto& [name, bit] : kUsage)
          if (name == word) {
            mask |= bit;
            found = true;
          }
        if (!found) return bad("unknown mask name " + word);
      }
      return Ttlv::integer(t, static_cast<std::int32_t>(mask));
    }
    STORCRYPT_ASSIGN_OR_RETURN(auto i, parse_number(v));
    return Ttlv::integer(t, static_cast<std::int32_t>(i));
  }
  if (type == "LongInteger") {
    STORCRYPT_ASSIGN_OR_RETURN(auto i, parse_number(v));
    return Ttlv::long_integer(t, i);
  }
  if (type == "Boolean") return Ttlv::boolean(t, v == "true" || v == "1");
  if (type == "DateTime") {
    STORCRYPT_ASSIGN_OR_RETURN(auto d, parse_datetime(v));
    return Ttlv::date_time(t, d);
  }
  if (type == "Interval") {
    STORCRYPT_ASSIGN_OR_RETURN(auto i, parse_number(v));
    return Ttlv::interval(t, static_cast<std::uint32_t>(i));
  }
  return bad("unsupported type " + type + " in <" + n.name + ">");
}

}  // namespace

Result<std::vector<XmlMessage>> load_testcase(const std::string& path) {
  std::ifstream f(path);
  if (!f) return bad("cannot read " + path);
  std::string text((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  Parser p(text);
  STORCRYPT_ASSIGN_OR_RETURN(auto top, p.parse_top());
  std::vector<XmlMessage> out;
  for (const auto& root : top) {
    if (root.name != "KMIP") return bad("root element is not <KMIP>");
    for (const auto& m : root.children) {
      STORCRYPT_ASSIGN_OR_RETURN(Ttlv t, convert(m, {}));
      out.push_back({m.name == "RequestMessage", std::move(t)});
    }
  }
  return out;
}

void substitute(Ttlv& item, const std::map<std::string, std::string>& uids) {
  if (item.type == ItemType::kTextString) {
    auto it = uids.find(item.text);
    if (it != uids.end()) item.text = it->second;
  }
  for (auto& c : item.children) substitute(c, uids);
}

bool matches(const Ttlv& e, const Ttlv& a, std::map<std::string, std::string>& uids, bool subset, std::string& why,
             bool key_material_length_only) {
  std::string where = std::string(tag_name(e.tag));
  if (e.tag != a.tag || e.type != a.type) {
    why = "expected " + where + " (" + std::string(item_type_name(e.type)) + "), got " + std::string(tag_name(a.tag)) +
          " (" + std::string(item_type_name(a.type)) + ")";
    return false;
  }
  switch (e.type) {
    case ItemType::kStructure: {
      std::size_t j = 0;
      for (const auto& ec : e.children) {
        std::size_t k = subset ? 0 : j;  // a server may order attributes differently
        std::string sub;
        bool found = false;
        for (; k < a.children.size(); ++k) {
          if (a.children[k].tag != ec.tag) {
            if (!subset) break;
            continue;
          }
          if (matches(ec, a.children[k], uids, subset, sub, key_material_length_only)) {
            found = true;
            break;
          }
          if (!subset) break;
        }
        if (!found) {
          if (subset && ec.tag == tag::kAttribute) continue;  // server may not keep this attribute
          why = where + ": " + (sub.empty() ? "missing " + std::string(tag_name(ec.tag)) : sub);
          return false;
        }
        if (!subset) j = k + 1;
      }
      if (!subset && j != a.children.size()) {
        why = where + ": unexpected extra " + std::string(tag_name(a.children[j].tag));
        return false;
      }
      return true;
    }
    case ItemType::kTextString:
      if (e.text.rfind("$UNIQUE_IDENTIFIER_", 0) == 0) {
        auto [it, inserted] = uids.emplace(e.text, a.text);
        if (!inserted && it->second != a.text) {
          why = where + ": " + e.text + " was " + it->second + ", now " + a.text;
          return false;
        }
        return true;
      }
      if (e.text != a.text) {
        why = where + ": expected \"" + e.text + "\", got \"" + a.text + "\"";
        return false;
      }
      return true;
    case ItemType::kDateTime:
      if (e.num == kNow) return true;
      [[fallthrough]];
    case ItemType::kByteString:
      if (key_material_length_only && e.tag == tag::kKeyMaterial && e.type == ItemType::kByteString) {
        if (e.bytes.size() == a.bytes.size()) return true;
        why = where + ": expected " + std::to_string(e.bytes.size()) + " bytes, got " + std::to_string(a.bytes.size());
        return false;
      }
      [[fallthrough]];
    default:
      if (e.num != a.num || e.bytes != a.bytes) {
        why = where + (e.type == ItemType::kByteString || e.type == ItemType::kBigInteger
                           ? ": byte strings differ"
                           : ": expected " + std::to_string(e.num) + ", got " + std::to_string(a.num));
        return false;
      }
      return true;
  }
}

std::string param_name(std::string testcase) {
  for (auto& ch : testcase)
    if (ch == '-') ch = '_';
  return testcase;
}

}  // namespace storcrypt::kmip::xmltest
