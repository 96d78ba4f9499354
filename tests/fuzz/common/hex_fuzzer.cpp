// Fuzz the hexadecimal key parser (keys entered by administrators).
#include <cctype>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "storcrypt/common/secret.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);
  auto r = storcrypt::SecretBytes::from_hex(in);
  if (r.ok()) {
    // Round trip must reproduce the input modulo case.
    std::string back = r->reveal_hex();
    if (back.size() != in.size()) std::abort();
    for (size_t i = 0; i < in.size(); ++i)
      if (static_cast<char>(std::tolower(static_cast<unsigned char>(in[i]))) != back[i]) std::abort();
  }
  return 0;
}
