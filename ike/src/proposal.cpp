#include "storcrypt/ike/proposal.h"

#include <algorithm>
#include <set>
#include <string>
#include <vector>

namespace storcrypt::ike {

namespace {

Error bad_choice(std::string what) {
  return Error(ErrorCode::kProtocol, "peer's chosen proposal: " + what, {}, "xIkeInvalidSyntax");
}

bool same(const Transform& a, const Transform& b) {
  return a.type == b.type && a.id == b.id && a.key_length() == b.key_length();
}

std::set<TransformType> types_of(const Proposal& p) {
  std::set<TransformType> s;
  for (const Transform& t : p.transforms) s.insert(t.type);
  return s;
}

// Transforms with attributes other than Key Length are not understood: never matched.
bool understood(const Transform& t) {
  for (const Attribute& a : t.attributes)
    if (a.type != kAttrKeyLength || !a.tv) return false;
  return true;
}

}  // namespace

Result<Suite> suite_of(const Proposal& chosen) {
  Suite s;
  s.protocol = chosen.protocol;
  std::set<TransformType> seen;
  for (const Transform& t : chosen.transforms) {
    if (!seen.insert(t.type).second)
      return bad_choice("transform type " + std::to_string(static_cast<int>(t.type)) + " appears twice");
    switch (t.type) {
      case TransformType::kEncr:
        s.encr = t.id;
        s.encr_key_bits = t.key_length().value_or(0);
        break;
      case TransformType::kPrf:
        s.prf = t.id;
        break;
      case TransformType::kInteg:
        s.integ = t.id;
        break;
      case TransformType::kKe:
        s.ke = t.id;
        break;
      case TransformType::kEsn:
        s.esn = t.id;
        break;
      default:
        return bad_choice("unknown transform type " + std::to_string(static_cast<int>(t.type)));
    }
  }
  return s;
}

std::optional<Proposal> choose_proposal(const SaPayload& offer, std::span<const Proposal> ours) {
  for (const Proposal& mine : ours) {
    const std::set<TransformType> my_types = types_of(mine);
    for (const Proposal& theirs : offer.proposals) {
      if (theirs.protocol != mine.protocol || types_of(theirs) != my_types) continue;
      Proposal chosen;
      chosen.number = theirs.number;
      chosen.protocol = theirs.protocol;
      bool complete = true;
      // Types in the order our proposal lists them.
      std::vector<TransformType> order;
      for (const Transform& t : mine.transforms)
        if (std::find(order.begin(), order.end(), t.type) == order.end()) order.push_back(t.type);
      for (TransformType type : order) {
        const Transform* pick = nullptr;
        for (const Transform& t : mine.transforms) {  // our preference within the type
          if (t.type != type) continue;
          for (const Transform& o : theirs.transforms)
            if (same(t, o) && understood(o)) {
              pick = &t;
              break;
            }
          if (pick != nullptr) break;
        }
        if (pick == nullptr) {
          complete = false;
          break;
        }
        chosen.transforms.push_back(*pick);
      }
      if (complete) return chosen;
    }
  }
  return std::nullopt;
}

Result<Suite> check_chosen(const SaPayload& answer, std::span<const Proposal> offered) {
  if (answer.proposals.size() != 1)
    return bad_choice(std::to_string(answer.proposals.size()) + " proposals instead of one");
  const Proposal& got = answer.proposals[0];
  const Proposal* mine = nullptr;
  for (const Proposal& p : offered)
    if (p.number == got.number && p.protocol == got.protocol) mine = &p;
  if (mine == nullptr) return bad_choice("number " + std::to_string(got.number) + " was not offered");
  if (types_of(got) != types_of(*mine)) return bad_choice("transform types differ from the offer");
  for (const Transform& t : got.transforms) {
    bool offered_it = false;
    for (const Transform& o : mine->transforms) offered_it = offered_it || same(t, o);
    if (!offered_it || !understood(t))
      return bad_choice("transform " + std::to_string(static_cast<int>(t.type)) + "/" + std::to_string(t.id) +
                        " was not offered");
  }
  return suite_of(got);  // also refuses a type chosen twice
}

}  // namespace storcrypt::ike
