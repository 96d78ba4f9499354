// Fuzz the KMIP TTLV decoder (bytes from a key server, i.e. the network).
// Property: anything that decodes re-encodes to exactly the same bytes, and
// the response parsers accept or reject it without crashing.
#include <cstdint>
#include <cstdlib>
#include <cstring>

#include "storcrypt/kmip/operations.h"
#include "storcrypt/kmip/ttlv.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace storcrypt::kmip;
  auto r = decode(std::span<const std::uint8_t>(data, size));
  if (size >= 8) (void)framed_size(std::span<const std::uint8_t>(data, 8));
  if (r.ok()) {
    (void)dump(*r);
    auto enc = encode(*r);
    if (!enc.ok()) std::abort();
    if (enc->size() != size || std::memcmp(enc->data(), data, size) != 0) std::abort();
    // Response handling must reject or accept, never crash.
    auto resp = parse_response(*r);
    if (resp.ok()) {
      for (const auto& it : resp->items) {
        (void)parse_get(it);
        (void)parse_get_attributes(it);
        (void)parse_locate(it);
        (void)parse_query(it);
        (void)parse_discover_versions(it);
        (void)parse_unique_identifier(it);
      }
      (void)match_batch(resp->items.size(), *resp);
      (void)match_batch(3, *resp);
    }
  }
  return 0;
}
