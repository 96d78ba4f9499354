// storcrypt IKEv2: proposal selection (RFC 7296 §2.7, §3.3.6).
//
// Our configured proposals are the only acceptable ones: a responder picks
// from them (in our order of preference) what the peer also offered; an
// initiator accepts an answer only if it is exactly one of the proposals it
// offered with one transform of each offered type. Nothing the peer adds or
// drops can make us use a weaker suite than configured.
#pragma once

#include <cstdint>
#include <optional>
#include <span>

#include "storcrypt/common/result.h"
#include "storcrypt/ike/message.h"

namespace storcrypt::ike {

/// A negotiated suite: one transform per type (0 / nullopt when absent).
struct Suite {
  ProtocolId protocol = ProtocolId::kIke;
  std::uint16_t encr = 0;
  std::uint16_t encr_key_bits = 0;
  std::uint16_t integ = 0;           ///< 0 = none (AEAD)
  std::uint16_t prf = 0;             ///< IKE only
  std::uint16_t ke = 0;              ///< D-H group; 0 = none
  std::optional<std::uint16_t> esn;  ///< ESP/AH only
  bool operator==(const Suite&) const = default;
};

/// The suite of a proposal with one transform per type (a chosen proposal);
/// kProtocol when a type repeats.
Result<Suite> suite_of(const Proposal& chosen);

/// Responder: the first of `ours` (our order) that the peer's offer can
/// satisfy, reduced to one transform per type and carrying the peer's
/// proposal number (the SPI is left for the caller to fill in). Transforms
/// match on type, id and key length. A peer proposal must offer every
/// transform type ours has and no other. nullopt: NO_PROPOSAL_CHOSEN.
std::optional<Proposal> choose_proposal(const SaPayload& offer, std::span<const Proposal> ours);

/// Initiator: check the responder's SA payload against what we offered:
/// exactly one proposal, whose number names one of ours, with exactly one
/// transform of each type that proposal has, each of them one we offered.
/// Returns the accepted proposal's suite; kProtocol errors otherwise.
Result<Suite> check_chosen(const SaPayload& answer, std::span<const Proposal> offered);

}  // namespace storcrypt::ike
