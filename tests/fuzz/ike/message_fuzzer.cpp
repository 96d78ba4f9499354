// Fuzz the IKEv2 message codec (bytes from the network, before any
// authentication) and the SK/SKF open path.
// Properties: parse never crashes or reads out of bounds; anything that
// parses re-serializes to exactly the same bytes (whole messages and payload
// chains); SK open rejects or accepts without crashing.
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <span>

#include "storcrypt/ike/message.h"
#include "storcrypt/ike/proposal.h"
#include "storcrypt/ike/sk.h"

namespace {

using namespace storcrypt::ike;

void check_round_trip(std::span<const std::uint8_t> in, const storcrypt::Result<Bytes>& out) {
  if (!out.ok()) std::abort();
  if (out->size() != in.size() || (!in.empty() && std::memcmp(out->data(), in.data(), in.size()) != 0)) std::abort();
}

void inspect(const std::vector<Payload>& payloads) {
  (void)unsupported_critical_payload(payloads);
  for (const Payload& p : payloads) {
    if (const auto* n = std::get_if<NotifyPayload>(&p.body)) {
      (void)decode_hash_algorithms(n->data);
      (void)decode_invalid_ke(n->data);
    }
    if (const auto* sa = std::get_if<SaPayload>(&p.body)) {
      for (const Proposal& pr : sa->proposals) {
        for (const Transform& t : pr.transforms) (void)t.key_length();
        (void)suite_of(pr);
      }
      // Proposal selection on hostile offers and answers, against the CNSA defaults.
      static const std::vector<Proposal> ours = [] {
        Proposal cbc, gcm;
        cbc.transforms = {Transform::make(TransformType::kEncr, transform_id::kEncrAesCbc, 256),
                          Transform::make(TransformType::kInteg, transform_id::kIntegHmacSha384_192),
                          Transform::make(TransformType::kPrf, transform_id::kPrfHmacSha384),
                          Transform::make(TransformType::kKe, transform_id::kGroupEcp384)};
        gcm.number = 2;
        gcm.transforms = {Transform::make(TransformType::kEncr, transform_id::kEncrAesGcm16, 256),
                          Transform::make(TransformType::kPrf, transform_id::kPrfHmacSha384),
                          Transform::make(TransformType::kKe, transform_id::kGroupEcp384)};
        return std::vector<Proposal>{cbc, gcm};
      }();
      auto chosen = choose_proposal(*sa, ours);
      // Whatever is chosen is one of ours exactly (ours list one transform per type).
      if (chosen) {
        bool found = false;
        for (const Proposal& o : ours) found = found || o.transforms == chosen->transforms;
        if (!found) std::abort();
      }
      (void)check_chosen(*sa, ours);
    }
  }
}

SkProtector make(bool aead) {
  storcrypt::SecretBytes e(aead ? 36 : 32), a(aead ? 0 : 48);
  auto p = aead ? SkProtector::create(transform_id::kEncrAesGcm16, 256, 0, std::move(e), std::move(a))
                : SkProtector::create(transform_id::kEncrAesCbc, 256, transform_id::kIntegHmacSha384_192, std::move(e),
                                      std::move(a));
  if (!p.ok()) std::abort();
  return std::move(p).value();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::span<const std::uint8_t> in(data, size);
  // Whole message (port 500), and after the non-ESP marker (port 4500).
  for (int pass = 0; pass < 2; ++pass) {
    std::span<const std::uint8_t> msg = in;
    if (pass == 1) {
      auto d = classify_udp4500(in);
      if (d.kind != Udp4500Kind::kIke) break;
      msg = d.payload;
    }
    (void)parse_header(msg);
    auto m = parse(msg);
    if (m.ok()) {
      check_round_trip(msg, serialize(*m));
      inspect(m->payloads);
      if (!m->payloads.empty()) {
        static SkProtector gcm = make(true), cbc = make(false);
        for (SkProtector* p : {&gcm, &cbc}) {
          auto o = p->open(msg);
          if (o.ok()) {
            auto chain = parse_payload_chain(o->next, o->plaintext);
            if (chain.ok()) inspect(*chain);
          }
        }
      }
    }
  }
  // A decrypted payload chain: first byte = first payload type.
  if (size >= 1) {
    auto chain = parse_payload_chain(data[0], in.subspan(1));
    if (chain.ok()) {
      check_round_trip(in.subspan(1), serialize_payload_chain(*chain));
      inspect(*chain);
    }
  }
  return 0;
}
