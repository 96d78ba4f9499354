// storcrypt: SecretBytes, the one type key material travels in.
//
// Move-only, zeroized on destruction with OPENSSL_cleanse, and printed as
// "<redacted>" by every formatter. If a key can be logged, a type allowed it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <ostream>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "storcrypt/common/result.h"

namespace storcrypt {

class SecretBytes {
 public:
  SecretBytes() = default;
  explicit SecretBytes(std::size_t n) : b_(n, 0) {}
  SecretBytes(const std::uint8_t* p, std::size_t n) : b_(p, p + n) {}
  explicit SecretBytes(std::span<const std::uint8_t> s) : b_(s.begin(), s.end()) {}
  ~SecretBytes() { wipe(); }

  SecretBytes(const SecretBytes&) = delete;
  SecretBytes& operator=(const SecretBytes&) = delete;
  SecretBytes(SecretBytes&& o) noexcept : b_(std::move(o.b_)) { o.b_.clear(); }
  SecretBytes& operator=(SecretBytes&& o) noexcept;

  /// An explicit, visible copy (for the rare place that needs two).
  SecretBytes clone() const { return SecretBytes(b_.data(), b_.size()); }

  /// Cryptographically random bytes from OpenSSL's DRBG.
  static Result<SecretBytes> random(std::size_t n);
  /// Parse hexadecimal (upper or lower case, no separators).
  static Result<SecretBytes> from_hex(std::string_view hex);

  std::size_t size() const { return b_.size(); }
  bool empty() const { return b_.empty(); }
  std::uint8_t* data() { return b_.data(); }
  const std::uint8_t* data() const { return b_.data(); }
  std::span<const std::uint8_t> view() const { return {b_.data(), b_.size()}; }
  std::span<std::uint8_t> mutable_view() { return {b_.data(), b_.size()}; }
  /// Resize; bytes dropped from the end are wiped first.
  void resize(std::size_t n);
  void append(std::span<const std::uint8_t> s);

  /// Lowercase hex; the result holds key material too: only for writing to
  /// a kernel/file sink, never for messages or logs.
  std::string reveal_hex() const;

  /// Constant-time comparison.
  bool equals(const SecretBytes& o) const;

 private:
  void wipe();
  std::vector<std::uint8_t> b_;
};

inline std::ostream& operator<<(std::ostream& os, const SecretBytes&) { return os << "<redacted>"; }

/// Zeroize a buffer that held key material (OPENSSL_cleanse).
void secure_wipe(void* p, std::size_t n);
void secure_wipe(std::string& s);

}  // namespace storcrypt
