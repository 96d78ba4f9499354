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

}  // namespace
}  // namespace storcrypt
