// storcrypt: SecretBytes, the one type key material travels in.
//
// Move-only, zeroized on destruction with OPENSSL_cleanse, and printed as
// "<redacted>" by every formatter. If a key can be logged, a type allowed it.
//
// Where key material lives in memory (see also wipe_heap.h):
//  - SecretBytes (and anything using SecureAllocator) comes from OpenSSL's
//    secure heap once the process called init_secure_memory() (storcryptd
//    does at start-up): pages locked with mlock (kept out of swap),
//    excluded from core dumps with MADV_DONTDUMP, behind guard pages. Without
//    it (the CLI, tests) or when that heap is full, from the ordinary heap.
//    Either way the bytes are wiped when released, including the old buffer
//    when a SecretBytes grows.
//  - Transient text (a JSON request carrying a passphrase, a key's hex on
//    its way into SecretBytes) lives in ordinary std::string/json buffers:
//    the executables link the wiping heap (wipe_heap.h), so every C++ heap
//    block is wiped when released, and they wipe what stays allocated
//    (request buffers) and the stack they used (wipe_stack()) themselves.
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

/// Memory for key material (see above). Never returns null (throws
/// std::bad_alloc when neither heap has room).
void* secure_allocate(std::size_t n);
/// Wipe n bytes at p and release them (p from secure_allocate, or null).
void secure_deallocate(void* p, std::size_t n) noexcept;

/// std::allocator for key material: secure_allocate / secure_deallocate.
template <typename T>
struct SecureAllocator {
  using value_type = T;
  SecureAllocator() = default;
  template <typename U>
  SecureAllocator(const SecureAllocator<U>&) noexcept {}  // NOLINT(google-explicit-constructor)
  T* allocate(std::size_t n) { return static_cast<T*>(secure_allocate(n * sizeof(T))); }
  void deallocate(T* p, std::size_t n) noexcept { secure_deallocate(p, n * sizeof(T)); }
  template <typename U>
  bool operator==(const SecureAllocator<U>&) const noexcept {
    return true;
  }
};

/// State of the process's secure heap, for `system doctor`.
struct SecureMemoryStatus {
  bool initialized = false;  ///< init_secure_memory() set up the heap
  bool locked = false;       ///< mlock and MADV_DONTDUMP both succeeded
  std::size_t bytes = 0;     ///< its size
  std::size_t used = 0;      ///< bytes allocated from it now
  std::size_t fallbacks = 0;  ///< allocations that found it full and used the ordinary heap
};

/// Set up the secure heap (once per process; `bytes` a power of two). An
/// error when it cannot be created; ok with status().locked == false when
/// mlock or MADV_DONTDUMP was refused (e.g. RLIMIT_MEMLOCK too small).
Status init_secure_memory(std::size_t bytes);
SecureMemoryStatus secure_memory_status();

/// Overwrite `bytes` of the calling thread's stack below the caller's frame
/// with zeros: call it after a function that handled secrets returns (their
/// frames, e.g. a JSON lexer's short-string buffer, lie there). It then
/// wipes the calling thread's vector registers too (wipe_vector_registers()).
void wipe_stack(std::size_t bytes = 128 * 1024);

/// Zero the calling thread's SIMD registers (x86-64: xmm/ymm/zmm 0-31 as the
/// CPU has them). glibc's memcpy moves keys through them (the AVX-512
/// variants through zmm16-31, which nothing else touches for a long time),
/// and an idle thread's registers are saved in its kernel context, where a
/// core dump (NT_X86_XSTATE) or ptrace reads them. No-op elsewhere.
void wipe_vector_registers();

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
  std::vector<std::uint8_t, SecureAllocator<std::uint8_t>> b_;
};

inline std::ostream& operator<<(std::ostream& os, const SecretBytes&) { return os << "<redacted>"; }

/// Zeroize a buffer that held key material (OPENSSL_cleanse).
void secure_wipe(void* p, std::size_t n);
void secure_wipe(std::string& s);

}  // namespace storcrypt
