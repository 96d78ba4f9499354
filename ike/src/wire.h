// Bounds-checked big-endian reader and writer for the IKE codec (internal).
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

namespace storcrypt::ike {

/// Reads big-endian integers and byte runs from a span; every read checks the
/// remaining length first and fails (returns false, reads nothing) when short.
class Reader {
 public:
  explicit Reader(std::span<const std::uint8_t> b) : b_(b) {}
  std::size_t pos() const { return pos_; }
  std::size_t remaining() const { return b_.size() - pos_; }
  bool empty() const { return pos_ == b_.size(); }

  bool u8(std::uint8_t& v) {
    if (remaining() < 1) return false;
    v = b_[pos_++];
    return true;
  }
  bool u16(std::uint16_t& v) {
    if (remaining() < 2) return false;
    v = static_cast<std::uint16_t>((b_[pos_] << 8) | b_[pos_ + 1]);
    pos_ += 2;
    return true;
  }
  bool u32(std::uint32_t& v) {
    if (remaining() < 4) return false;
    v = 0;
    for (int i = 0; i < 4; ++i) v = (v << 8) | b_[pos_++];
    return true;
  }
  bool u64(std::uint64_t& v) {
    if (remaining() < 8) return false;
    v = 0;
    for (int i = 0; i < 8; ++i) v = (v << 8) | b_[pos_++];
    return true;
  }
  bool take(std::size_t n, std::span<const std::uint8_t>& out) {
    if (remaining() < n) return false;
    out = b_.subspan(pos_, n);
    pos_ += n;
    return true;
  }
  /// A reader over the next n bytes (the caller checked n <= remaining()); this one moves past them.
  Reader sub(std::size_t n) {
    Reader r(b_.subspan(pos_, n));
    pos_ += n;
    return r;
  }
  std::span<const std::uint8_t> rest() {
    auto r = b_.subspan(pos_);
    pos_ = b_.size();
    return r;
  }
  std::vector<std::uint8_t> rest_bytes() {
    auto r = rest();
    return {r.begin(), r.end()};
  }

 private:
  std::span<const std::uint8_t> b_;
  std::size_t pos_ = 0;
};

class Writer {
 public:
  std::size_t size() const { return b_.size(); }
  void u8(unsigned v) { b_.push_back(static_cast<std::uint8_t>(v)); }
  void u16(unsigned v) {
    b_.push_back(static_cast<std::uint8_t>(v >> 8));
    b_.push_back(static_cast<std::uint8_t>(v));
  }
  void u32(std::uint32_t v) {
    for (int s = 24; s >= 0; s -= 8) b_.push_back(static_cast<std::uint8_t>(v >> s));
  }
  void u64(std::uint64_t v) {
    for (int s = 56; s >= 0; s -= 8) b_.push_back(static_cast<std::uint8_t>(v >> s));
  }
  template <typename C>
  void bytes(const C& c) {
    b_.insert(b_.end(), std::begin(c), std::end(c));
  }
  /// Write a 16-bit length at `at`; false when it does not fit.
  bool patch_len16(std::size_t at, std::size_t len) {
    if (len > 0xFFFF) return false;
    b_[at] = static_cast<std::uint8_t>(len >> 8);
    b_[at + 1] = static_cast<std::uint8_t>(len);
    return true;
  }
  void patch_u32(std::size_t at, std::uint32_t v) {
    for (int i = 0; i < 4; ++i) b_[at + i] = static_cast<std::uint8_t>(v >> (24 - 8 * i));
  }
  std::vector<std::uint8_t> take() && { return std::move(b_); }

 private:
  std::vector<std::uint8_t> b_;
};

}  // namespace storcrypt::ike
