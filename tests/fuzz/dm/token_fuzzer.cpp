// Fuzz the storcrypt LUKS2 token parser (the token comes from an on-disk
// header, i.e. untrusted): no crash, and an accepted token survives a
// serialize/parse round trip unchanged.
#include <cstdint>
#include <cstdlib>
#include <string>

#include "storcrypt/dm/token.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace storcrypt::dm;
  std::string in(reinterpret_cast<const char*>(data), size);
  auto t = token_from_json(in);
  if (!t.ok()) return 0;
  auto again = token_from_json(token_to_json(*t));
  if (!again.ok()) std::abort();
  if (again->key_id != t->key_id || again->generation != t->generation || again->keyslot != t->keyslot ||
      again->name != t->name || again->previous.has_value() != t->previous.has_value())
    std::abort();
  std::map<int, std::string> toks{{0, in}};
  (void)find_token(toks);
  return 0;
}
