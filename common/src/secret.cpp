#include "storcrypt/common/secret.h"

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "storcrypt/common/hex.h"

namespace storcrypt {

void secure_wipe(void* p, std::size_t n) {
  if (p != nullptr && n > 0) OPENSSL_cleanse(p, n);
}
void secure_wipe(std::string& s) {
  secure_wipe(s.data(), s.size());
  s.clear();
}

void SecretBytes::wipe() {
  secure_wipe(b_.data(), b_.capacity() > 0 ? b_.size() : 0);
  b_.clear();
}

SecretBytes& SecretBytes::operator=(SecretBytes&& o) noexcept {
  if (this != &o) {
    wipe();
    b_ = std::move(o.b_);
    o.b_.clear();
  }
  return *this;
}

Result<SecretBytes> SecretBytes::random(std::size_t n) {
  SecretBytes s(n);
  if (n > 0 && RAND_priv_bytes(s.data(), static_cast<int>(n)) != 1)
    return Error(ErrorCode::kInternal, "the random generator failed (RAND_priv_bytes)");
  return s;
}

Result<SecretBytes> SecretBytes::from_hex(std::string_view hex) {
  if (hex.size() % 2 != 0)
    return Error(ErrorCode::kInvalidInput, "hexadecimal key has an odd number of digits",
                 "give two hex digits per byte");
  SecretBytes s(hex.size() / 2);
  auto nib = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  for (std::size_t i = 0; i < s.size(); ++i) {
    int hi = nib(hex[2 * i]), lo = nib(hex[2 * i + 1]);
    // Do not echo the offending text: it is (part of) a key.
    if (hi < 0 || lo < 0)
      return Error(ErrorCode::kInvalidInput,
                   "hexadecimal key has a non-hex character at position " + std::to_string(hi < 0 ? 2 * i : 2 * i + 1),
                   "use only 0-9 and a-f");
    s.data()[i] = static_cast<std::uint8_t>(hi << 4 | lo);
  }
  return s;
}

void SecretBytes::resize(std::size_t n) {
  if (n < b_.size()) {
    secure_wipe(b_.data() + n, b_.size() - n);
    b_.resize(n);
    return;
  }
  // Growing may reallocate: copy into a fresh buffer and wipe the old one.
  std::vector<std::uint8_t> nb(n, 0);
  std::copy(b_.begin(), b_.end(), nb.begin());
  wipe();
  b_ = std::move(nb);
}

void SecretBytes::append(std::span<const std::uint8_t> s) {
  std::size_t old = b_.size();
  resize(old + s.size());
  std::copy(s.begin(), s.end(), b_.begin() + static_cast<std::ptrdiff_t>(old));
}

std::string SecretBytes::reveal_hex() const { return to_hex(view()); }

bool SecretBytes::equals(const SecretBytes& o) const {
  return b_.size() == o.b_.size() && CRYPTO_memcmp(b_.data(), o.b_.data(), b_.size()) == 0;
}

std::string to_hex(std::span<const std::uint8_t> bytes) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out;
  out.reserve(bytes.size() * 2);
  for (auto b : bytes) {
    out.push_back(kDigits[b >> 4]);
    out.push_back(kDigits[b & 0xf]);
  }
  return out;
}

std::optional<std::vector<std::uint8_t>> parse_hex(std::string_view hex) {
  auto r = SecretBytes::from_hex(hex);
  if (!r.ok()) return std::nullopt;
  return std::vector<std::uint8_t>(r->data(), r->data() + r->size());
}

}  // namespace storcrypt
