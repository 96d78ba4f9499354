// Fuzz the key-media key-file parser: it must never crash, and anything it
// accepts must re-encode to exactly the same bytes (the format is canonical).
#include <cstdint>
#include <cstdlib>
#include <span>
#include <string>

#include "storcrypt/keys/key_file.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace storcrypt::keys;
  KeyFileProblem p = KeyFileProblem::kNone;
  auto kf = parse_key_file(std::span<const std::uint8_t>(data, size), &p);
  if (!kf.ok()) {
    if (p != KeyFileProblem::kCorrupt) std::abort();
    return 0;
  }
  auto again = encode_key_file(*kf);
  if (!again.ok()) std::abort();
  if (again->size() != size || again->compare(0, size, reinterpret_cast<const char*>(data), size) != 0) std::abort();
  return 0;
}
