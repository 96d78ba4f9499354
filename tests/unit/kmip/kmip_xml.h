// Test helper: read the OASIS KMIP test cases written in the XML form of
// "KMIP Additional Message Encodings v1.0" into TTLV items, and compare a
// real response with an expected one ($NOW and $UNIQUE_IDENTIFIER_n are
// placeholders). Covers every tag and enumeration the 35 KMIP 1.4 test cases
// in tests/data/kmip/v1.4 use; an unknown one is an error, never skipped.
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

/// The OASIS KMIP 1.4 test-case directory inside the repository
/// (STORCRYPT_SOURCE_DIR/tests/data/kmip/v1.4). Nothing outside the source
/// tree is read: a clone placed anywhere carries its own test cases.
std::string testcase_dir();

/// Error naming the missing file and how to restore it when `dir` lacks the
/// test cases (a test must fail, not skip, then).
Status check_testcase_dir(const std::string& dir);

/// Names ("SKLC-M-1-14") of all *.xml test cases in `dir`, sorted.
std::vector<std::string> list_testcases(const std::string& dir);

/// A test-case name ("SKLC-M-1-14") as a gtest parameter name ("SKLC_M_1_14").
std::string param_name(std::string testcase);

/// Replace "$UNIQUE_IDENTIFIER_n" text values using `uids`.
void substitute(Ttlv& item, const std::map<std::string, std::string>& uids);

/// Compare `actual` against `expected`: placeholders bind (uids) or match
/// anything ($NOW). When `subset` is true, `actual` may carry extra items
/// and Attribute entries missing from actual are allowed (server subset).
/// With `key_material_length_only`, Key Material byte strings compare by
/// length (a key the server generated is random: the test case shows the
/// reference server's key).
bool matches(const Ttlv& expected, const Ttlv& actual, std::map<std::string, std::string>& uids, bool subset,
             std::string& why, bool key_material_length_only = false);

}  // namespace storcrypt::kmip::xmltest
