// storcrypt: the LUKS2 token that makes a volume self-describing.
//
//   {"type":"storcrypt","keyslots":["0"],"version":1,"name":"vol1",
//    "provider":{"kind":"keymedia","id":"local"},"key_id":"...","label":"...",
//    "generation":1,"keyslot":0}
// During a rekey it also carries "previous":{"generation":g,"keyslot":s} and
// lists both keyslots, so an interrupted rekey still opens with either key.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>

#include "storcrypt/common/result.h"

namespace storcrypt::dm {

inline constexpr const char* kTokenType = "storcrypt";

struct KeyslotRef {
  std::uint64_t generation = 0;
  int keyslot = -1;
};

struct VolumeToken {
  std::string name;  ///< dm mapping name (/dev/mapper/<name>)
  std::string provider_kind;
  std::string provider_id;
  std::string key_id;
  std::string label;
  std::uint64_t generation = 0;
  int keyslot = -1;
  std::optional<KeyslotRef> previous;  ///< set only while a rekey is in flight
};

std::string token_to_json(const VolumeToken& t);
Result<VolumeToken> token_from_json(const std::string& json);

/// The storcrypt token among a header's tokens: (token id, token). kNotFound if none.
Result<std::pair<int, VolumeToken>> find_token(const std::map<int, std::string>& tokens);

/// Volume (mapping) names: 1..64 of [A-Za-z0-9._-], not starting with '.' or '-'.
bool valid_volume_name(const std::string& s);

}  // namespace storcrypt::dm
