#include <gtest/gtest.h>

#include "storcrypt/dm/policy.h"
#include "storcrypt/dm/token.h"

namespace storcrypt::dm {
namespace {

TEST(Token, RoundTripWithAndWithoutPrevious) {
  VolumeToken t{"vol1", "keymedia", "local", "vol-abc", "vol1", 3, 2, std::nullopt};
  auto back = token_from_json(token_to_json(t));
  ASSERT_TRUE(back.ok()) << back.error().to_string();
  EXPECT_EQ(back->key_id, "vol-abc");
  EXPECT_EQ(back->generation, 3u);
  EXPECT_EQ(back->keyslot, 2);
  EXPECT_FALSE(back->previous);
  EXPECT_NE(token_to_json(t).find(R"("keyslots":["2"])"), std::string::npos);
  t.previous = KeyslotRef{2, 0};
  auto json = token_to_json(t);
  EXPECT_NE(json.find(R"("keyslots":["2","0"])"), std::string::npos) << json;
  back = token_from_json(json);
  ASSERT_TRUE(back.ok());
  ASSERT_TRUE(back->previous);
  EXPECT_EQ(back->previous->keyslot, 0);
}

TEST(Token, RejectsMalformed) {
  EXPECT_FALSE(token_from_json("[]").ok());
  EXPECT_FALSE(token_from_json(R"({"type":"clevis"})").ok());
  auto r = token_from_json(
      R"({"type":"storcrypt","version":1,"name":"v","provider":{"kind":"k","id":"i"},"key_id":"x","generation":1,"keyslot":40})");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message().find("keyslot"), std::string::npos);
}

TEST(Token, HugeKeyslotDoesNotWrapIntoRange) {
  EXPECT_FALSE(
      token_from_json(
          R"({"type":"storcrypt","version":1,"name":"v","provider":{"kind":"k","id":"i"},"key_id":"x","generation":1,"keyslot":4294967296})")
          .ok());
  EXPECT_FALSE(
      token_from_json(
          R"({"type":"storcrypt","version":1,"name":"v","provider":{"kind":"k","id":"i"},"key_id":"x","generation":1,"keyslot":1,"previous":{"generation":1,"keyslot":-1}})")
          .ok());
}

TEST(Token, FindSkipsForeignTokens) {
  std::map<int, std::string> toks = {{0, R"({"type":"systemd-tpm2","keyslots":["1"]})"},
                                     {3, token_to_json({"v", "keymedia", "local", "k", "v", 1, 0, std::nullopt})}};
  auto f = find_token(toks);
  ASSERT_TRUE(f.ok());
  EXPECT_EQ(f->first, 3);
  EXPECT_EQ(find_token({}).error().code(), ErrorCode::kNotFound);
}

TEST(Policy, AlwaysOnRefusesPlainVolumesAndTurningOff) {
  AtRestPolicy on{true}, off{false};
  EXPECT_TRUE(check_volume_create(off, false).ok());
  EXPECT_TRUE(check_volume_create(on, true).ok());
  auto e = check_volume_create(on, false);
  ASSERT_FALSE(e.ok());
  EXPECT_EQ(e.error().name(), "xEncryptionRequired");
  EXPECT_TRUE(check_policy_change(off, on).ok());
  EXPECT_TRUE(check_policy_change(on, on).ok());
  auto c = check_policy_change(on, off);
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.error().name(), "xEncryptionAlwaysOn");
}

}  // namespace
}  // namespace storcrypt::dm
