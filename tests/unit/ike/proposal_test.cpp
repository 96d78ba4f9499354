#include "storcrypt/ike/proposal.h"

#include <gtest/gtest.h>

namespace storcrypt::ike {
namespace {

Transform encr(std::uint16_t id, std::uint16_t bits) { return Transform::make(TransformType::kEncr, id, bits); }
Transform integ(std::uint16_t id) { return Transform::make(TransformType::kInteg, id); }
Transform prf(std::uint16_t id) { return Transform::make(TransformType::kPrf, id); }
Transform ke(std::uint16_t id) { return Transform::make(TransformType::kKe, id); }

Proposal proposal(std::uint8_t number, std::vector<Transform> t, ProtocolId proto = ProtocolId::kIke) {
  Proposal p;
  p.number = number;
  p.protocol = proto;
  p.transforms = std::move(t);
  return p;
}

// The CNSA defaults: aes256-sha384-ecp384, then aes256gcm16-prfsha384-ecp384.
std::vector<Proposal> ours() {
  return {proposal(1, {encr(transform_id::kEncrAesCbc, 256), integ(transform_id::kIntegHmacSha384_192),
                       prf(transform_id::kPrfHmacSha384), ke(transform_id::kGroupEcp384)}),
          proposal(2, {encr(transform_id::kEncrAesGcm16, 256), prf(transform_id::kPrfHmacSha384),
                       ke(transform_id::kGroupEcp384)})};
}

TEST(IkeProposal, ResponderPrefersOurOrderAndKeepsThePeersNumber) {
  SaPayload offer{{ours()[1], ours()[0]}};
  offer.proposals[0].number = 1;  // peer offers GCM first
  offer.proposals[1].number = 2;
  auto chosen = choose_proposal(offer, ours());
  ASSERT_TRUE(chosen.has_value());
  EXPECT_EQ(chosen->number, 2);
  EXPECT_EQ(chosen->transforms, ours()[0].transforms);
  auto s = suite_of(*chosen);
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(s->encr, transform_id::kEncrAesCbc);
  EXPECT_EQ(s->encr_key_bits, 256);
  EXPECT_EQ(s->integ, transform_id::kIntegHmacSha384_192);
  EXPECT_EQ(s->prf, transform_id::kPrfHmacSha384);
  EXPECT_EQ(s->ke, transform_id::kGroupEcp384);
}

TEST(IkeProposal, ResponderPicksOurPreferredTransformOfEachType) {
  // One peer proposal listing several transforms per type, weakest first.
  SaPayload offer{{proposal(1, {encr(transform_id::kEncrAesCbc, 128), encr(transform_id::kEncrAesCbc, 256),
                                integ(transform_id::kIntegHmacSha256_128), integ(transform_id::kIntegHmacSha384_192),
                                prf(transform_id::kPrfHmacSha256), prf(transform_id::kPrfHmacSha384),
                                ke(transform_id::kGroupEcp256), ke(transform_id::kGroupEcp384)})}};
  auto chosen = choose_proposal(offer, ours());
  ASSERT_TRUE(chosen.has_value());
  EXPECT_EQ(chosen->transforms, ours()[0].transforms);
}

TEST(IkeProposal, ResponderNeverAcceptsLessThanConfigured) {
  // AES-128, ecp256, SHA-256 integrity: each alone makes the offer unacceptable.
  for (int weak = 0; weak < 3; ++weak) {
    Proposal p = ours()[0];
    if (weak == 0) p.transforms[0] = encr(transform_id::kEncrAesCbc, 128);
    if (weak == 1) p.transforms[3] = ke(transform_id::kGroupEcp256);
    if (weak == 2) p.transforms[1] = integ(transform_id::kIntegHmacSha256_128);
    EXPECT_FALSE(choose_proposal(SaPayload{{p}}, ours()).has_value()) << weak;
  }
  // GCM with an extra INTEG transform, or a missing KE, is a different proposal shape.
  Proposal extra = ours()[1];
  extra.transforms.push_back(integ(transform_id::kIntegHmacSha384_192));
  EXPECT_FALSE(choose_proposal(SaPayload{{extra}}, {&ours()[1], 1}).has_value());
  Proposal missing = ours()[1];
  missing.transforms.pop_back();
  EXPECT_FALSE(choose_proposal(SaPayload{{missing}}, ours()).has_value());
  // Same transforms for ESP do not satisfy an IKE proposal.
  Proposal esp = ours()[0];
  esp.protocol = ProtocolId::kEsp;
  EXPECT_FALSE(choose_proposal(SaPayload{{esp}}, ours()).has_value());
  // An unknown attribute on a transform: not understood, not matched.
  Proposal odd = ours()[0];
  odd.transforms[3].attributes.push_back(Attribute{99, true, 1, {}});
  EXPECT_FALSE(choose_proposal(SaPayload{{odd}}, ours()).has_value());
  EXPECT_FALSE(choose_proposal(SaPayload{}, ours()).has_value());
}

TEST(IkeProposal, EspWithEsn) {
  Proposal mine =
      proposal(1, {encr(transform_id::kEncrAesGcm16, 256), Transform::make(TransformType::kEsn, transform_id::kEsnNo)},
               ProtocolId::kEsp);
  Proposal theirs = mine;
  theirs.spi = spi_bytes(0xc1c2c3c4);
  theirs.transforms.push_back(Transform::make(TransformType::kEsn, transform_id::kEsnYes));
  auto chosen = choose_proposal(SaPayload{{theirs}}, {&mine, 1});
  ASSERT_TRUE(chosen.has_value());
  auto s = suite_of(*chosen);
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(s->protocol, ProtocolId::kEsp);
  EXPECT_EQ(s->esn, transform_id::kEsnNo);
  EXPECT_EQ(s->integ, 0);
  EXPECT_EQ(s->ke, 0);
}

TEST(IkeProposal, InitiatorChecksTheAnswer) {
  const auto offered = ours();
  SaPayload answer{{offered[1]}};
  auto s = check_chosen(answer, offered);
  ASSERT_TRUE(s.ok()) << s.error().to_string();
  EXPECT_EQ(s->encr, transform_id::kEncrAesGcm16);
  EXPECT_EQ(s->integ, 0);

  SaPayload two{{offered[0], offered[1]}};
  EXPECT_FALSE(check_chosen(two, offered).ok());
  SaPayload none;
  EXPECT_FALSE(check_chosen(none, offered).ok());
  {  // a group we did not offer
    SaPayload a{{offered[0]}};
    a.proposals[0].transforms[3] = ke(transform_id::kGroupEcp256);
    EXPECT_EQ(check_chosen(a, offered).error().code(), ErrorCode::kProtocol);
  }
  {  // a proposal number we did not use
    SaPayload a{{offered[0]}};
    a.proposals[0].number = 7;
    EXPECT_FALSE(check_chosen(a, offered).ok());
  }
  {  // the CBC proposal without its INTEG transform
    SaPayload a{{offered[0]}};
    a.proposals[0].transforms.erase(a.proposals[0].transforms.begin() + 1);
    EXPECT_FALSE(check_chosen(a, offered).ok());
  }
  {  // two ENCR transforms in the answer
    std::vector<Proposal> multi = {offered[0]};
    multi[0].transforms.push_back(encr(transform_id::kEncrAesCbc, 128));
    SaPayload a{{multi[0]}};
    EXPECT_FALSE(check_chosen(a, multi).ok());
  }
  {  // the right transforms numbered as the other proposal
    SaPayload a{{offered[0]}};
    a.proposals[0].number = 2;
    EXPECT_FALSE(check_chosen(a, offered).ok());
  }
}

}  // namespace
}  // namespace storcrypt::ike
