#include "storcrypt/common/text.h"

#include <gtest/gtest.h>

namespace storcrypt {
namespace {

using namespace std::string_literals;

TEST(Text, WellFormedUtf8IsText) {
  EXPECT_TRUE(is_text(""));
  EXPECT_TRUE(is_text("plain ascii\t\r\n"));
  EXPECT_TRUE(is_text("Gr\xc3\xbc\xc3\x9f" "e \xe2\x82\xac \xf0\x9f\x94\x91"));  // Grüße € 🔑
  EXPECT_TRUE(is_text("\xf4\x8f\xbf\xbf"));                                    // U+10FFFF
  EXPECT_TRUE(is_text("\xed\x9f\xbf"));                                        // U+D7FF, just below the surrogates
}

TEST(Text, FirstBadByteIsFound) {
  EXPECT_EQ(first_non_text_byte("ab\xff" "cd"), 2u);
  EXPECT_EQ(first_non_text_byte("\x80"), 0u);                   // lone continuation byte
  EXPECT_EQ(first_non_text_byte("x\xc3"), 1u);                  // truncated sequence
  EXPECT_EQ(first_non_text_byte("\xc0\xaf"), 0u);               // overlong '/'
  EXPECT_EQ(first_non_text_byte("\xe0\x80\xaf"), 0u);           // overlong, 3 bytes
  EXPECT_EQ(first_non_text_byte("\xf0\x80\x80\xaf"), 0u);       // overlong, 4 bytes
  EXPECT_EQ(first_non_text_byte("ok\xed\xa0\x80"), 2u);         // surrogate U+D800
  EXPECT_EQ(first_non_text_byte("\xf4\x90\x80\x80"), 0u);       // above U+10FFFF
  EXPECT_EQ(first_non_text_byte("\xf5\x80\x80\x80"), 0u);
  EXPECT_EQ(first_non_text_byte("abc\0def"s), 3u);              // NUL: a binary file
  EXPECT_EQ(first_non_text_byte("\xe2\x82" "A"), 0u);           // bad continuation
}

TEST(Text, PrintableEscapesOnlyTheBadBytes) {
  EXPECT_EQ(printable("caf\xc3\xa9"), "caf\xc3\xa9");
  EXPECT_EQ(printable("a\xff" "b\xc3"), "a\\xffb\\xc3");
  EXPECT_EQ(printable("x\0y"s), "x\\x00y");
  EXPECT_TRUE(is_text(printable("\xed\xa0\x80\xf8\x80")));
}

TEST(Text, RequireTextNamesTheInputAndTheByteNotItsContent) {
  EXPECT_TRUE(require_text("fine", "--cn").ok());
  Status st = require_text("secret\xfftail", "the file key.hex");
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.error().code(), ErrorCode::kInvalidInput);
  EXPECT_EQ(st.error().name(), "xNotText");
  EXPECT_NE(st.error().message().find("the file key.hex is not text"), std::string::npos) << st.error().message();
  EXPECT_NE(st.error().message().find("byte 7"), std::string::npos) << st.error().message();
  EXPECT_EQ(st.error().message().find("secret"), std::string::npos) << "must not echo the input";
  EXPECT_FALSE(st.error().fix().empty());
}

TEST(SplitTokens, NonEmptyRunsBetweenAnySeparator) {
  using V = std::vector<std::string>;
  EXPECT_EQ(split_tokens("a,,b", ","), (V{"a", "b"}));
  EXPECT_EQ(split_tokens("volume.create:store-key,sed.rekey:begin", ","),
            (V{"volume.create:store-key", "sed.rekey:begin"}));
  EXPECT_EQ(split_tokens("authenc(hmac(sha256),cbc(aes))", "(),"), (V{"authenc", "hmac", "sha256", "cbc", "aes"}));
  EXPECT_EQ(split_tokens("", ","), V{});
  EXPECT_EQ(split_tokens(",,", ","), V{});
  EXPECT_EQ(split_tokens("abc", ","), (V{"abc"}));
}

}  // namespace
}  // namespace storcrypt
