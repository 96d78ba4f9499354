// Fuzz the KMIP TTLV decoder (bytes from a key server, i.e. the network).
// Property: anything that decodes re-encodes to exactly the same bytes.
#include <cstdint>
#include <cstdlib>
#include <cstring>

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
  }
  return 0;
}
