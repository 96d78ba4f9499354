// storcrypt KMIP: TTLV (Tag-Type-Length-Value) items, encoder and decoder.
//
// KMIP 1.4 spec section 9.1 / KMIP 2.0 section 9.1. Every item is a 3-byte tag,
// a 1-byte type, a 4-byte length and a value padded to a multiple of 8 bytes.
// Decoding is strict about framing (lengths, padding, fixed sizes, nesting
// depth) and returns kProtocol errors instead of crashing on malformed input.
// Byte strings may hold key material: they live in zeroizing storage.
#pragma once

#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "storcrypt/common/result.h"

namespace storcrypt::kmip {

/// Allocator that wipes memory (OPENSSL_cleanse) before releasing it, so
/// vectors holding key material leave nothing behind when they grow or die.
template <typename T>
struct WipingAllocator {
  using value_type = T;
  WipingAllocator() noexcept = default;
  template <typename U>
  WipingAllocator(const WipingAllocator<U>&) noexcept {}  // NOLINT(google-explicit-constructor)
  T* allocate(std::size_t n) { return std::allocator<T>().allocate(n); }
  void deallocate(T* p, std::size_t n) noexcept;
  template <typename U>
  bool operator==(const WipingAllocator<U>&) const noexcept {
    return true;
  }
};
void wipe_memory(void* p, std::size_t n) noexcept;
template <typename T>
void WipingAllocator<T>::deallocate(T* p, std::size_t n) noexcept {
  wipe_memory(p, n * sizeof(T));
  std::allocator<T>().deallocate(p, n);
}

/// Byte buffer that is wiped when freed (wire buffers, byte strings).
using Bytes = std::vector<std::uint8_t, WipingAllocator<std::uint8_t>>;

enum class ItemType : std::uint8_t {
  kStructure = 0x01,
  kInteger = 0x02,
  kLongInteger = 0x03,
  kBigInteger = 0x04,
  kEnumeration = 0x05,
  kBoolean = 0x06,
  kTextString = 0x07,
  kByteString = 0x08,
  kDateTime = 0x09,
  kInterval = 0x0A,
  kDateTimeExtended = 0x0B,  ///< KMIP 2.0
};

std::string_view item_type_name(ItemType t);

/// One TTLV item. Scalars keep their value in `num` (Integer, Long Integer,
/// Enumeration, Boolean, Date-Time, Interval, Date-Time Extended), Text String
/// in `text`, Byte String and Big Integer (two's complement, big-endian,
/// length a multiple of 8) in `bytes`, Structure in `children`.
struct Ttlv {
  std::uint32_t tag = 0;
  ItemType type = ItemType::kStructure;
  std::int64_t num = 0;
  std::string text;
  Bytes bytes;
  std::vector<Ttlv> children;

  static Ttlv structure(std::uint32_t tag, std::vector<Ttlv> children = {});
  static Ttlv integer(std::uint32_t tag, std::int32_t v);
  static Ttlv long_integer(std::uint32_t tag, std::int64_t v);
  static Ttlv big_integer(std::uint32_t tag, std::span<const std::uint8_t> twos_complement);
  static Ttlv enumeration(std::uint32_t tag, std::uint32_t v);
  static Ttlv boolean(std::uint32_t tag, bool v);
  static Ttlv text_string(std::uint32_t tag, std::string_view v);
  static Ttlv byte_string(std::uint32_t tag, std::span<const std::uint8_t> v);
  static Ttlv date_time(std::uint32_t tag, std::int64_t posix_seconds);
  static Ttlv interval(std::uint32_t tag, std::uint32_t seconds);
  static Ttlv date_time_extended(std::uint32_t tag, std::int64_t posix_micros);

  Ttlv& add(Ttlv child) {
    children.push_back(std::move(child));
    return children.back();
  }
  /// First direct child with `tag`, or nullptr.
  const Ttlv* find(std::uint32_t tag) const;
  /// All direct children with `tag`.
  std::vector<const Ttlv*> find_all(std::uint32_t tag) const;

  bool operator==(const Ttlv& o) const;
};

/// Maximum nesting depth accepted by the decoder.
inline constexpr int kMaxDepth = 32;
/// Largest message the client accepts (PyKMIP's server uses 1 MiB too).
inline constexpr std::size_t kMaxMessageSize = 1u << 20;

/// Append the encoding of `item` to `out`. Fails (kInvalidInput) on values
/// that cannot be encoded: unknown type, Big Integer length not a multiple
/// of 8, Text/Byte String or structure longer than 2^32-1.
Status encode(const Ttlv& item, Bytes& out);
Result<Bytes> encode(const Ttlv& item);

/// Decode exactly one item spanning all of `in` (trailing bytes are an error).
Result<Ttlv> decode(std::span<const std::uint8_t> in);

/// Total encoded size of the message whose first 8 bytes are `header`
/// (8 + Length), for framing reads; kProtocol error when the header announces
/// something that is not a Structure or exceeds kMaxMessageSize.
Result<std::size_t> framed_size(std::span<const std::uint8_t> header);

/// Human-readable dump (tags in hex, names where known). Byte strings are
/// shown only as their length so dumps are safe to log.
std::string dump(const Ttlv& item);

}  // namespace storcrypt::kmip
