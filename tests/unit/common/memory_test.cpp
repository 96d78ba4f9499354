// Key material in memory: SecretBytes lives in the secure heap (locked,
// excluded from core dumps), the wiping heap zeroes released C++ blocks, and
// wipe_stack() clears the stack below the caller. This binary links the
// wiping heap like storcryptd and storcrypt do.
#include <gtest/gtest.h>
#include <malloc.h>
#include <openssl/crypto.h>

#include <cstdint>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <fstream>
#include <sstream>
#include <string>

#include "storcrypt/common/secret.h"
#include "storcrypt/common/wipe_heap.h"

namespace storcrypt {
namespace {

// The VmFlags line of the /proc/self/smaps mapping that holds `p`.
std::string vm_flags_of(const void* p) {
  auto a = reinterpret_cast<std::uintptr_t>(p);
  std::ifstream smaps("/proc/self/smaps");
  bool inside = false;
  for (std::string line; std::getline(smaps, line);) {
    unsigned long lo = 0, hi = 0;
    if (std::sscanf(line.c_str(), "%lx-%lx ", &lo, &hi) == 2 && line.find('-') < 16) {
      inside = a >= lo && a < hi;
      continue;
    }
    if (inside && line.rfind("VmFlags:", 0) == 0) return line;
  }
  return {};
}

TEST(SecureMemory, SecretBytesLiveInLockedPagesExcludedFromCoreDumps) {
  ASSERT_TRUE(init_secure_memory(64 * 1024).ok());
  SecureMemoryStatus st = secure_memory_status();
  EXPECT_TRUE(st.initialized);
  EXPECT_EQ(st.bytes, 64u * 1024);
  auto key = SecretBytes::random(32);
  ASSERT_TRUE(key.ok());
  EXPECT_EQ(CRYPTO_secure_allocated(key->data()), 1) << "not from the secure heap";
  EXPECT_GE(secure_memory_status().used, 32u);
  std::string flags = vm_flags_of(key->data());
  ASSERT_FALSE(flags.empty());
  EXPECT_NE(flags.find(" dd"), std::string::npos) << "not MADV_DONTDUMP: " << flags;
  if (st.locked)
    EXPECT_NE(flags.find(" lo"), std::string::npos) << "not mlocked: " << flags;
  else
    std::cerr << "note: mlock refused here (RLIMIT_MEMLOCK); storcryptd's unit sets LimitMEMLOCK=infinity\n";
  // Growing moves the bytes; the old block is wiped and released.
  SecretBytes grown = key->clone();
  const std::uint8_t more[40] = {};
  grown.append(more);
  EXPECT_EQ(CRYPTO_secure_allocated(grown.data()), 1);
}

TEST(SecureMemory, AFullSecureHeapFallsBackToTheOrdinaryHeap) {
  ASSERT_TRUE(init_secure_memory(64 * 1024).ok());
  const std::size_t before = secure_memory_status().fallbacks;
  SecretBytes big(256 * 1024);  // larger than the whole secure heap
  EXPECT_EQ(big.size(), 256u * 1024);
  EXPECT_EQ(CRYPTO_secure_allocated(big.data()), 0);
  EXPECT_EQ(secure_memory_status().fallbacks, before + 1);
}

// Reads released memory on purpose (it stays mapped: glibc keeps small
// blocks in its caches); allocator metadata overwrites the first 16 bytes.
TEST(WipingHeap, ReleasedStringsAreZeroed) {
  if (!wiping_heap_active()) GTEST_SKIP() << "sanitizer build: its runtime owns operator new/delete";
  const char* p = nullptr;
  std::size_t n = 0;
  {
    std::string passphrase(200, 'Q');
    p = passphrase.data();
    n = ::malloc_usable_size(const_cast<char*>(p));
    passphrase += std::string(300, 'R');  // grows: the old block is released
  }
  ASSERT_GE(n, 200u);
  const volatile char* v = p;
  std::size_t left = 0;
  for (std::size_t i = 16; i < 200; ++i) left += v[i] == 'Q';
  EXPECT_EQ(left, 0u) << "the released buffer still holds the text";
}

__attribute__((noinline)) void leave_secret_on_stack(const char* text) {
  volatile char buf[256];
  for (std::size_t i = 0; i < sizeof buf; ++i) buf[i] = text[i % std::strlen(text)];
}

// Reads its own uninitialised array on purpose: what lies there is what
// earlier frames left.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
__attribute__((noinline)) std::size_t count_marker_below() {
  volatile char probe[4096];
  std::size_t n = 0;
  for (std::size_t i = 0; i < sizeof probe; ++i) n += probe[i] == '#';
  return n;
}
#pragma GCC diagnostic pop

TEST(WipeStack, ClearsWhatCalleesLeftBelowTheCaller) {
  leave_secret_on_stack("#");
  const std::size_t before = count_marker_below();
  leave_secret_on_stack("#");
  wipe_stack(64 * 1024);
  const std::size_t after = count_marker_below();
  ASSERT_GT(before, 0u) << "the probe does not see the callee's frame: this test could not judge the wipe";
  EXPECT_EQ(after, 0u) << "before the wipe the probe saw " << before;
}

#if defined(__x86_64__)
// Load/store one register the way glibc's memcpy leaves key bytes in it.
__attribute__((target("avx512f"), noinline)) void load_zmm16(const void* p) {
  __asm__ __volatile__("vmovdqu64 (%0), %%zmm16" : : "r"(p) : "memory");
}
__attribute__((target("avx512f"), noinline)) void store_zmm16(void* p) {
  __asm__ __volatile__("vmovdqu64 %%zmm16, (%0)" : : "r"(p) : "memory");
}
__attribute__((noinline)) void load_xmm15(const void* p) {
  __asm__ __volatile__("movdqu (%0), %%xmm15" : : "r"(p) : "memory", "xmm15");
}
__attribute__((noinline)) void store_xmm15(void* p) { __asm__ __volatile__("movdqu %%xmm15, (%0)" : : "r"(p) : "memory"); }

TEST(WipeVectorRegisters, ClearsTheRegistersMemcpyMovesKeysThrough) {
  unsigned char pattern[64], out[64];
  std::memset(pattern, 0xa5, sizeof pattern);
  const unsigned char zero[64] = {};
  // xmm15 (every x86-64 CPU); control first: the load/store pair works.
  load_xmm15(pattern);
  store_xmm15(out);
  ASSERT_EQ(std::memcmp(out, pattern, 16), 0) << "control: xmm15 did not hold the pattern";
  load_xmm15(pattern);
  wipe_vector_registers();
  store_xmm15(out);
  EXPECT_EQ(std::memcmp(out, zero, 16), 0) << "xmm15 still holds the pattern";
  if (!__builtin_cpu_supports("avx512f")) {
    std::cerr << "no AVX-512 on this CPU: zmm16-31 not checked (they do not exist)\n";
    return;
  }
  load_zmm16(pattern);
  store_zmm16(out);
  ASSERT_EQ(std::memcmp(out, pattern, 64), 0) << "control: zmm16 did not hold the pattern";
  load_zmm16(pattern);
  wipe_stack(4096);  // the entry point the daemon calls after each request
  store_zmm16(out);
  EXPECT_EQ(std::memcmp(out, zero, 64), 0) << "zmm16 still holds the pattern";
}
#endif

}  // namespace
}  // namespace storcrypt
