#include "storcrypt/ike/sk.h"

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include <string>

#include "storcrypt/ike/crypto.h"

namespace storcrypt::ike {

namespace {

constexpr auto kSkType = static_cast<std::uint8_t>(PayloadType::kSk);
constexpr auto kSkfType = static_cast<std::uint8_t>(PayloadType::kSkf);
// Reassembled messages larger than this are refused (RFC 7383 leaves the
// limit to the implementation; a certificate chain needs a few KiB).
constexpr std::size_t kMaxReassembled = std::size_t{256} * 1024;
constexpr std::uint16_t kMaxFragments = 256;

Error bad(std::string what) {
  return Error(ErrorCode::kProtocol, "encrypted payload: " + what, {}, "xIkeInvalidSyntax");
}
Error integrity() { return Error(ErrorCode::kProtocol, "integrity check failed", {}, "xIkeIntegrity"); }

}  // namespace

Result<SkProtector> SkProtector::create(std::uint16_t encr_id, std::uint16_t key_bits, std::uint16_t integ_id,
                                        SecretBytes encr_key, SecretBytes integ_key) {
  STORCRYPT_ASSIGN_OR_RETURN(KeySizes sizes, ike_key_sizes(encr_id, key_bits, integ_id));
  if (encr_key.size() != sizes.encr || integ_key.size() != sizes.integ)
    return Error(ErrorCode::kInvalidInput, "SK keys of the wrong size for the negotiated transforms");
  SkProtector p;
  p.aead_ = encr_id == transform_id::kEncrAesGcm16;
  if (p.aead_) {
    p.icv_ = 16;
  } else {
    switch (integ_id) {
      case transform_id::kIntegHmacSha256_128:
        p.icv_ = 16;
        p.integ_digest_ = static_cast<int>(PrfAlg::kHmacSha256);
        break;
      case transform_id::kIntegHmacSha384_192:
        p.icv_ = 24;
        p.integ_digest_ = static_cast<int>(PrfAlg::kHmacSha384);
        break;
      default:
        p.icv_ = 32;
        p.integ_digest_ = static_cast<int>(PrfAlg::kHmacSha512);
        break;
    }
  }
  p.encr_ = std::move(encr_key);
  p.integ_ = std::move(integ_key);
  return p;
}

Result<Bytes> SkProtector::seal_one(const Header& header, std::span<const Payload> clear, std::uint8_t container,
                                    std::uint8_t next, std::uint16_t frag_no, std::uint16_t frag_total,
                                    std::span<const std::uint8_t> inner) {
  // Plaintext: inner payloads || padding (zeros) || pad length.
  const std::size_t bs = block_size();
  const std::size_t pad = (bs - (inner.size() + 1) % bs) % bs;
  Bytes pt(inner.begin(), inner.end());
  pt.resize(inner.size() + pad + 1, 0);
  pt.back() = static_cast<std::uint8_t>(pad);
  const std::size_t body = iv_size() + pt.size() + icv_;

  // Lay the message out with a zero-filled body, so the header and payload
  // lengths are final, then fill in IV, ciphertext and ICV.
  Message m;
  m.header = header;
  m.payloads.assign(clear.begin(), clear.end());
  if (container == kSkType) {
    m.payloads.push_back(Payload::of(PayloadType::kSk, SkPayload{next, Bytes(body, 0)}));
  } else {
    m.payloads.push_back(Payload::of(PayloadType::kSkf, SkfPayload{next, frag_no, frag_total, Bytes(body, 0)}));
  }
  STORCRYPT_ASSIGN_OR_RETURN(Bytes out, serialize(m));
  const std::size_t body_at = out.size() - body;
  std::uint8_t* iv = out.data() + body_at;
  if (aead_) {
    const std::uint64_t c = ++counter_;
    for (int i = 0; i < 8; ++i) iv[i] = static_cast<std::uint8_t>(c >> (56 - 8 * i));
    std::uint8_t nonce[12];
    std::copy(encr_.data() + encr_.size() - 4, encr_.data() + encr_.size(), nonce);
    std::copy(iv, iv + 8, nonce + 4);
    STORCRYPT_ASSIGN_OR_RETURN(
        Bytes ct, aes_gcm_seal(encr_.view().first(encr_.size() - 4), nonce, std::span(out.data(), body_at), pt));
    OPENSSL_cleanse(nonce, sizeof nonce);  // the salt is key material
    std::copy(ct.begin(), ct.end(), iv + 8);
  } else {
    if (RAND_bytes(iv, 16) != 1) return Error(ErrorCode::kInternal, "OpenSSL: no random IV");
    STORCRYPT_ASSIGN_OR_RETURN(Bytes ct, aes_cbc(true, encr_.view(), std::span(iv, 16), pt));
    std::copy(ct.begin(), ct.end(), iv + 16);
    const std::size_t icv_at = out.size() - icv_;
    STORCRYPT_ASSIGN_OR_RETURN(SecretBytes mac,
                               prf(static_cast<PrfAlg>(integ_digest_), integ_.view(), std::span(out.data(), icv_at)));
    std::copy(mac.data(), mac.data() + icv_, out.data() + icv_at);
  }
  OPENSSL_cleanse(pt.data(), pt.size());
  return out;
}

Result<Bytes> SkProtector::seal(const Header& header, std::span<const Payload> inner, std::span<const Payload> clear) {
  STORCRYPT_ASSIGN_OR_RETURN(Bytes chain, serialize_payload_chain(inner));
  const std::uint8_t next = inner.empty() ? 0 : inner.front().type;
  return seal_one(header, clear, kSkType, next, 0, 0, chain);
}

Result<std::vector<Bytes>> SkProtector::seal_fragments(const Header& header, std::span<const Payload> inner,
                                                       std::size_t max_message_size) {
  STORCRYPT_ASSIGN_OR_RETURN(Bytes chain, serialize_payload_chain(inner));
  const std::uint8_t next = inner.empty() ? 0 : inner.front().type;
  const std::size_t fixed = kHeaderSize + kGenericHeaderSize + 4 + iv_size() + icv_;
  if (max_message_size <= fixed + block_size())
    return Error(ErrorCode::kInvalidInput, "fragment size " + std::to_string(max_message_size) + " is too small");
  // Largest inner chunk whose padded plaintext (chunk + padding + pad length) fits.
  const std::size_t room = (max_message_size - fixed) / block_size() * block_size();
  const std::size_t chunk = room - 1;
  const std::size_t count = chain.empty() ? 1 : (chain.size() + chunk - 1) / chunk;
  if (count > kMaxFragments) return Error(ErrorCode::kInvalidInput, "message needs too many fragments");
  std::vector<Bytes> out;
  for (std::size_t i = 0; i < count; ++i) {
    const std::size_t from = i * chunk;
    const std::size_t len = std::min(chunk, chain.size() - std::min(chain.size(), from));
    STORCRYPT_ASSIGN_OR_RETURN(Bytes msg, seal_one(header, {}, kSkfType, i == 0 ? next : 0,
                                                   static_cast<std::uint16_t>(i + 1), static_cast<std::uint16_t>(count),
                                                   std::span(chain).subspan(std::min(chain.size(), from), len)));
    out.push_back(std::move(msg));
  }
  return out;
}

Result<SkProtector::Opened> SkProtector::open(std::span<const std::uint8_t> message) const {
  STORCRYPT_ASSIGN_OR_RETURN(Message m, parse(message));
  if (m.payloads.empty()) return bad("message has no payloads");
  const Payload& last = m.payloads.back();
  Opened o;
  o.header = m.header;
  const Bytes* data = nullptr;
  if (const auto* sk = std::get_if<SkPayload>(&last.body)) {
    o.next = sk->next;
    data = &sk->data;
  } else if (const auto* skf = std::get_if<SkfPayload>(&last.body)) {
    o.next = skf->next;
    o.fragment_number = skf->fragment_number;
    o.total_fragments = skf->total_fragments;
    data = &skf->data;
  } else {
    return bad("message has no SK or SKF payload");
  }
  // The container's body is the end of the message: everything before it is
  // authenticated (header, clear payloads, container header).
  const std::size_t body_at = message.size() - data->size();
  if (data->size() < iv_size() + icv_ + 1) return bad("too short for IV, ICV and pad length");
  const std::size_t ct_len = data->size() - iv_size() - icv_;
  std::span<const std::uint8_t> iv = message.subspan(body_at, iv_size());
  Bytes pt;
  if (aead_) {
    std::uint8_t nonce[12];
    std::copy(encr_.data() + encr_.size() - 4, encr_.data() + encr_.size(), nonce);
    std::copy(iv.begin(), iv.end(), nonce + 4);
    auto r = aes_gcm_open(encr_.view().first(encr_.size() - 4), nonce, message.first(body_at),
                          message.subspan(body_at + 8, ct_len + icv_));
    OPENSSL_cleanse(nonce, sizeof nonce);  // the salt is key material
    if (!r.ok()) return r.error().code() == ErrorCode::kProtocol ? integrity() : std::move(r).error();
    pt = std::move(r).value();
  } else {
    if (ct_len % 16 != 0) return bad("ciphertext is not a whole number of AES blocks");
    const std::size_t icv_at = message.size() - icv_;
    STORCRYPT_ASSIGN_OR_RETURN(SecretBytes mac,
                               prf(static_cast<PrfAlg>(integ_digest_), integ_.view(), message.first(icv_at)));
    if (CRYPTO_memcmp(mac.data(), message.data() + icv_at, icv_) != 0) return integrity();
    STORCRYPT_ASSIGN_OR_RETURN(pt, aes_cbc(false, encr_.view(), iv, message.subspan(body_at + 16, ct_len)));
  }
  const std::size_t pad = pt.back();
  if (pad + 1 > pt.size()) {
    OPENSSL_cleanse(pt.data(), pt.size());
    return bad("pad length " + std::to_string(pad) + " exceeds the plaintext");
  }
  pt.resize(pt.size() - pad - 1);
  o.plaintext = std::move(pt);
  return o;
}

Result<std::optional<std::vector<Payload>>> FragmentReassembler::add(const SkProtector::Opened& f) {
  if (f.fragment_number == 0) return bad("not a fragment");
  if (f.total_fragments > kMaxFragments) return bad("too many fragments");
  if (total_ == 0) total_ = f.total_fragments;
  if (f.total_fragments != total_) return bad("fragments disagree on their total");
  if (parts_.count(f.fragment_number) != 0) return std::optional<std::vector<Payload>>();  // duplicate: ignored
  if (bytes_ + f.plaintext.size() > kMaxReassembled) return bad("reassembled message too large");
  if (f.fragment_number == 1) next_ = f.next;
  bytes_ += f.plaintext.size();
  parts_.emplace(f.fragment_number, f.plaintext);
  if (parts_.size() < total_) return std::optional<std::vector<Payload>>();
  Bytes all;
  all.reserve(bytes_);
  for (const auto& [n, part] : parts_) all.insert(all.end(), part.begin(), part.end());
  STORCRYPT_ASSIGN_OR_RETURN(auto payloads, parse_payload_chain(next_, all));
  return std::optional<std::vector<Payload>>(std::move(payloads));
}

}  // namespace storcrypt::ike
