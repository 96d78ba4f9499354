// Fuzz the key-file envelope parser and the decrypted-payload parser (the
// KDF and AES-GCM are OpenSSL's and are not re-run per input).
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "storcrypt/policy/keys.h"

using namespace storcrypt::policy;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);
  auto env = parse_key_file(in);
  if (env.ok()) {
    if (env->nonce.size() != 12 || env->data.size() < 16 || env->header.size() > in.size()) std::abort();
  }
  auto keys = parse_key_payload({data, size});
  if (keys.ok()) {
    KeyStore ks;
    for (NamedKey& k : *keys) {
      if (k.value.size() != algorithm_key_bytes(k.algorithm)) std::abort();
      if (!ks.add(std::move(k)).ok()) std::abort();
    }
  }
  return 0;
}
