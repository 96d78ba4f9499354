// Test helper: read the OASIS KMIP test cases written in the XML form of
// "KMIP Additional Message Encodings v1.0" into TTLV items, and compare a
// real response with an expected one ($NOW and $UNIQUE_IDENTIFIER_n are
// placeholders). Covers the tags and enumerations the SKLC/TL test cases use.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "storcrypt/common/result.h"
#include "storcrypt/kmip/ttlv.h"

namespace storcrypt::kmip::xmltest {

/// DateTime value standing for "$NOW".
inline constexpr std::int64_t kNow = -0x7000000000000000LL;

struct XmlMessage {
  bool request = true;
  Ttlv message;
};

/// All Request/Response messages of one test-case file, in order.
Result<std::vector<XmlMessage>> load_testcase(const std::string& path);

/// The OASIS KMIP 1.4 test-case directory, read in place: $STORCRYPT_KMIP_TESTCASES,
/// else ../shared/kmip-testcases/v1.4 beside the source tree; "" when absent.
std::string testcase_dir();

/// A test-case name ("SKLC-M-1-14") as a gtest parameter name ("SKLC_M_1_14").
std::string param_name(std::string testcase);

/// Replace "$UNIQUE_IDENTIFIER_n" text values using `uids`.
void substitute(Ttlv& item, const std::map<std::string, std::string>& uids);

/// Compare `actual` against `expected`: placeholders bind (uids) or match
/// anything ($NOW). When `subset` is true, `actual` may carry extra items
/// and Attribute entries missing from actual are allowed (server subset).
bool matches(const Ttlv& expected, const Ttlv& actual, std::map<std::string, std::string>& uids, bool subset,
             std::string& why);

}  // namespace storcrypt::kmip::xmltest
