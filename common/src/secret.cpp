#include "storcrypt/common/secret.h"

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include <atomic>
#include <new>

#include "storcrypt/common/hex.h"

namespace storcrypt {

namespace {
std::atomic<std::size_t> g_fallbacks{0};
std::atomic<bool> g_locked{false};
std::atomic<std::size_t> g_bytes{0};
}  // namespace

void secure_wipe(void* p, std::size_t n) {
  if (p != nullptr && n > 0) OPENSSL_cleanse(p, n);
}
void secure_wipe(std::string& s) {
  secure_wipe(s.data(), s.size());
  s.clear();
}

void* secure_allocate(std::size_t n) {
  if (n == 0) n = 1;
  // Falls back to the ordinary heap by itself when no secure heap was set
  // up; returns null when it was and is full.
  void* p = OPENSSL_secure_malloc(n);
  if (p == nullptr && CRYPTO_secure_malloc_initialized() == 1) {
    g_fallbacks.fetch_add(1, std::memory_order_relaxed);
    p = OPENSSL_malloc(n);
  }
  if (p == nullptr) throw std::bad_alloc();
  return p;
}

void secure_deallocate(void* p, std::size_t n) noexcept {
  // Wipes n bytes (the whole block when it is in the secure heap), then
  // releases it to whichever heap it came from.
  if (p != nullptr) OPENSSL_secure_clear_free(p, n);
}

Status init_secure_memory(std::size_t bytes) {
  if (CRYPTO_secure_malloc_initialized() == 1) return ok_status();
  // minsize 32: a key (16..64 bytes) takes one or two blocks.
  int rc = CRYPTO_secure_malloc_init(bytes, 32);
  if (rc == 0) {
    return Error(ErrorCode::kInternal,
                 "cannot set up the secure heap for key material (" + std::to_string(bytes) + " bytes)",
                 "check the memory limits of storcryptd");
  }
  g_locked = rc == 1;
  g_bytes = bytes;
  return ok_status();
}

SecureMemoryStatus secure_memory_status() {
  SecureMemoryStatus s;
  s.initialized = CRYPTO_secure_malloc_initialized() == 1;
  s.locked = s.initialized && g_locked.load();
  s.bytes = s.initialized ? g_bytes.load() : 0;
  s.used = s.initialized ? CRYPTO_secure_used() : 0;
  s.fallbacks = g_fallbacks.load();
  return s;
}

// Not inlined, so its frame lies below the caller's, where the callee
// frames that handled secrets were. A fixed array (not alloca) so the wiped
// bytes start right below this function's saved registers, with no gap.
__attribute__((noinline)) void wipe_stack(std::size_t bytes) {
  constexpr std::size_t kMax = 128 * 1024;
  unsigned char buf[kMax];
  if (bytes > kMax) bytes = kMax;
  // The stack grows down: the end of the array is nearest the caller.
  OPENSSL_cleanse(buf + (kMax - bytes), bytes);
  // Keep the compiler from treating the buffer as dead.
  __asm__ __volatile__("" : : "r"(buf) : "memory");
  wipe_vector_registers();
}

#if defined(__x86_64__)
namespace {
__attribute__((target("sse2"))) void wipe_sse() {
  __asm__ __volatile__(
      "pxor %%xmm0, %%xmm0\n\tpxor %%xmm1, %%xmm1\n\tpxor %%xmm2, %%xmm2\n\tpxor %%xmm3, %%xmm3\n\t"
      "pxor %%xmm4, %%xmm4\n\tpxor %%xmm5, %%xmm5\n\tpxor %%xmm6, %%xmm6\n\tpxor %%xmm7, %%xmm7\n\t"
      "pxor %%xmm8, %%xmm8\n\tpxor %%xmm9, %%xmm9\n\tpxor %%xmm10, %%xmm10\n\tpxor %%xmm11, %%xmm11\n\t"
      "pxor %%xmm12, %%xmm12\n\tpxor %%xmm13, %%xmm13\n\tpxor %%xmm14, %%xmm14\n\tpxor %%xmm15, %%xmm15" ::
          : "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8", "xmm9", "xmm10", "xmm11",
            "xmm12", "xmm13", "xmm14", "xmm15");
}
// VZEROALL zeroes ymm0-15 (and, on AVX-512 CPUs, all of zmm0-15).
__attribute__((target("avx"))) void wipe_avx() { __asm__ __volatile__("vzeroall" ::: "memory"); }
// zmm16-31 exist only with AVX-512 and VZEROALL leaves them alone.
__attribute__((target("avx512f"))) void wipe_avx512_upper() {
  __asm__ __volatile__(
      "vpxord %%zmm16, %%zmm16, %%zmm16\n\tvpxord %%zmm17, %%zmm17, %%zmm17\n\t"
      "vpxord %%zmm18, %%zmm18, %%zmm18\n\tvpxord %%zmm19, %%zmm19, %%zmm19\n\t"
      "vpxord %%zmm20, %%zmm20, %%zmm20\n\tvpxord %%zmm21, %%zmm21, %%zmm21\n\t"
      "vpxord %%zmm22, %%zmm22, %%zmm22\n\tvpxord %%zmm23, %%zmm23, %%zmm23\n\t"
      "vpxord %%zmm24, %%zmm24, %%zmm24\n\tvpxord %%zmm25, %%zmm25, %%zmm25\n\t"
      "vpxord %%zmm26, %%zmm26, %%zmm26\n\tvpxord %%zmm27, %%zmm27, %%zmm27\n\t"
      "vpxord %%zmm28, %%zmm28, %%zmm28\n\tvpxord %%zmm29, %%zmm29, %%zmm29\n\t"
      "vpxord %%zmm30, %%zmm30, %%zmm30\n\tvpxord %%zmm31, %%zmm31, %%zmm31" ::
          : "memory");
}
}  // namespace

__attribute__((noinline)) void wipe_vector_registers() {
  if (__builtin_cpu_supports("avx512f")) {
    wipe_avx();
    wipe_avx512_upper();
  } else if (__builtin_cpu_supports("avx")) {
    wipe_avx();
  } else {
    wipe_sse();
  }
}
#else
void wipe_vector_registers() {}
#endif

void SecretBytes::wipe() {
  secure_wipe(b_.data(), b_.size());
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
  // Do not echo the offending text: it is (part of) a key.
  if (auto bad = hex_decode_into(hex, s.mutable_view()))
    return Error(ErrorCode::kInvalidInput,
                 "hexadecimal key has a non-hex character at position " + std::to_string(*bad), "use only 0-9 and a-f");
  return s;
}

void SecretBytes::resize(std::size_t n) {
  if (n < b_.size()) {
    secure_wipe(b_.data() + n, b_.size() - n);
    b_.resize(n);
    return;
  }
  // Growing may reallocate: the allocator wipes the old buffer.
  b_.resize(n, 0);
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

}  // namespace storcrypt
