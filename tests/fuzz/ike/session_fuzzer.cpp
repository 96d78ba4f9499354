// Fuzz an ESTABLISHED IKE SA: the CREATE_CHILD_SA and INFORMATIONAL handling
// that only an authenticated peer reaches (CHILD_SA creation and rekey with
// REKEY_SA, rekey collisions, DELETE of CHILD_SAs and of the IKE SA, error
// notifies, answers to our own requests).
//
// Each input starts from a fresh pair of IKE SAs, left (initiator) and right
// (responder), brought up through the real exchanges over in-memory
// transports with fake kernels; left holds one CHILD_SA. Then the input is a
// program, one opcode byte at a time:
//   0  right sends left a request (CREATE_CHILD_SA or INFORMATIONAL, next
//      byte's bit 0) whose encrypted payload chain is fuzzed: next byte is
//      the first payload type, then a 2-byte length and that many bytes
//   1  right answers left's outstanding request with a fuzzed payload chain
//   2  left / 3 right: rekey the first CHILD_SA
//   4  left / 5 right: delete the first CHILD_SA
//   6  deliver one datagram left -> right, 7 right -> left
//   8  both tick 600 ms on; 9 left creates one more CHILD_SA; 10 left pings
//   11 left / 12 right: rekey the IKE SA (the new IkeSa takes over the side;
//      the replaced one still gets the messages addressed to its SPI)
// SPIs are fixed (left's kernel hands out 0xc0000100, 0xc0000101, ...,
// right's 0xc0000200, ...), so the seeds in session_corpus/ can name them.
// Properties: nothing crashes, leaks or reads out of bounds; every kernel
// operation is one the fake kernel accepts for the state it is in (it
// refuses inconsistent ones: an SPI not reserved, an SA of another reqid);
// and when both IKE SAs are aborted at the end, NOTHING is left in either
// kernel: no SA, no policy, no reserved SPI (abort() on a violation).
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <span>

#include "storcrypt/ike/ike_sa.h"
#include "storcrypt/ike/message.h"
#include "storcrypt/testing/ike_fakes.h"

namespace storcrypt::ike {

/// The peer's side of the friend declaration in ike_sa.h.
struct IkeSaFuzzAccess {
  /// `sa` sends a request of exchange `ex` carrying `inner` (sealed with its keys).
  static Result<std::vector<Bytes>> request(IkeSa& sa, ExchangeType ex, const std::vector<Payload>& inner) {
    auto b = sa.seal(sa.header(ex, false, sa.next_request_id_), inner);
    if (b) ++sa.next_request_id_;
    return b;
  }
  /// `sa` answers the request `peer` has outstanding with `inner`.
  static Result<std::vector<Bytes>> answer(IkeSa& sa, const IkeSa& peer, const std::vector<Payload>& inner) {
    if (!peer.outstanding_) return Error(ErrorCode::kNotFound, "no request outstanding");
    return sa.seal(sa.header(peer.outstanding_->exchange, true, peer.outstanding_->message_id), inner);
  }
};

}  // namespace storcrypt::ike

namespace {

using namespace storcrypt;
using namespace storcrypt::ike;
using storcrypt::testing::FakeChildSaKernel;
using storcrypt::testing::IkeTestPki;
using storcrypt::testing::MemoryTransport;

const IkeTestPki& pki() {
  static const IkeTestPki* p = new IkeTestPki();
  return *p;
}

struct Side {
  MemoryTransport transport;
  FakeChildSaKernel kernel;
  std::unique_ptr<IkeSa> sa;
  std::vector<std::unique_ptr<IkeSa>> replaced;  ///< IKE SAs that were rekeyed, oldest first
  /// After an IKE SA rekey the new IkeSa is the side's SA.
  void adopt() {
    if (auto next = sa->take_successor()) {
      replaced.push_back(std::move(sa));
      sa = std::move(next);
    }
  }
};

void deliver_to(Side& to, const Datagram& d) {
  const Datagram in{d.remote, d.local, d.data};
  auto m = parse(in.data);
  if (!m) return;
  // Dispatch by our SPI, as the engine does.
  const std::uint64_t ours = m->header.from_initiator() ? m->header.spi_r : m->header.spi_i;
  IkeSa* target = to.sa.get();
  for (auto& old : to.replaced)
    if (old->local_spi() == ours && ours != 0) target = old.get();
  target->receive(in, *m);
  to.adopt();
}

bool deliver_one(Side& from, Side& to) {
  if (from.transport.sent.empty()) return false;
  const Datagram d = from.transport.sent.front();
  from.transport.sent.pop_front();
  deliver_to(to, d);
  return true;
}

void run(Side& l, Side& r) {
  for (int i = 0; i < 40; ++i) {
    const bool moved_right = deliver_one(l, r);  // both directions every round
    const bool moved_left = deliver_one(r, l);
    if (!moved_right && !moved_left) break;
  }
}

// The payload chain described by the input (type byte, 2-byte length, bytes).
bool take_chain(std::span<const std::uint8_t>& in, std::vector<Payload>& out) {
  if (in.size() < 3) return false;
  const std::uint8_t first = in[0];
  std::size_t len = static_cast<std::size_t>(in[1]) << 8 | in[2];
  in = in.subspan(3);
  len = std::min(len, in.size());
  auto chain = parse_payload_chain(first, in.first(len));
  in = in.subspan(len);
  if (!chain) return false;
  out = std::move(*chain);
  return true;
}

void send_all(Side& to, const Result<std::vector<Bytes>>& datagrams, const Side& from) {
  if (!datagrams) return;
  for (const Bytes& b : *datagrams) {
    // As right's transport would send it: right's endpoints, as left receives it.
    Datagram d{from.sa->local_endpoint(), from.sa->remote_endpoint(), b};
    deliver_to(to, d);
  }
}

std::uint32_t first_child(const IkeSa& sa) {
  auto c = sa.children();
  return c.empty() ? 0 : c.front().slot.spi_in;
}

bool kernel_empty(const FakeChildSaKernel& k) {
  for (const auto& [reqid, n] : k.policies)
    if (n != 0) return false;
  return k.sas.empty() && k.installed.empty() && k.reserved.empty();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  Side l, r;
  // Fixed SPIs, so seeds can name CHILD_SAs: left's first inbound SPI is
  // 0xc0000100, right's 0xc0000200.
  l.kernel.next_spi = 0xc0000100;
  r.kernel.next_spi = 0xc0000200;
  auto emit = [](Event) {};
  auto li = IkeSa::initiator(pki().left_config("right"), IkeSaEnv{&l.transport, &l.kernel, emit});
  if (!li) std::abort();
  l.sa = std::move(*li);
  if (!l.sa->start().ok() || l.transport.sent.empty()) std::abort();
  {
    const Datagram first = l.transport.sent.front();
    l.transport.sent.pop_front();
    const Datagram in{first.remote, first.local, first.data};
    auto ri = IkeSa::responder(pki().right_config("left"), IkeSaEnv{&r.transport, &r.kernel, emit}, in);
    if (!ri) std::abort();
    r.sa = std::move(*ri);
    deliver_to(r, first);
  }
  run(l, r);
  if (l.sa->state() != IkeState::kEstablished || r.sa->state() != IkeState::kEstablished ||
      l.sa->children().size() != 1)
    std::abort();  // the fixture itself is broken

  auto t = std::chrono::steady_clock::time_point{} + std::chrono::hours(1);
  std::span<const std::uint8_t> in(data, size);
  for (int steps = 0; !in.empty() && steps < 64; ++steps) {
    const std::uint8_t op = in[0] % 13;
    in = in.subspan(1);
    switch (op) {
      case 0: {
        if (in.empty()) break;
        const ExchangeType ex = (in[0] & 1) ? ExchangeType::kCreateChildSa : ExchangeType::kInformational;
        in = in.subspan(1);
        std::vector<Payload> chain;
        if (take_chain(in, chain)) send_all(l, IkeSaFuzzAccess::request(*r.sa, ex, chain), r);
        break;
      }
      case 1: {
        std::vector<Payload> chain;
        if (take_chain(in, chain)) send_all(l, IkeSaFuzzAccess::answer(*r.sa, *l.sa, chain), r);
        break;
      }
      case 2:
        (void)l.sa->rekey_child(first_child(*l.sa));
        break;
      case 3:
        (void)r.sa->rekey_child(first_child(*r.sa));
        break;
      case 4:
        (void)l.sa->delete_child(first_child(*l.sa));
        break;
      case 5:
        (void)r.sa->delete_child(first_child(*r.sa));
        break;
      case 6:
        deliver_one(l, r);
        break;
      case 7:
        deliver_one(r, l);
        break;
      case 8:
        t += std::chrono::milliseconds(600);
        for (Side* s : {&l, &r}) {
          s->sa->tick(t);
          for (auto& old : s->replaced) old->tick(t);
          s->adopt();
        }
        break;
      case 9:
        (void)l.sa->create_child();
        break;
      case 10:
        (void)l.sa->ping();
        break;
      case 11:
        (void)l.sa->rekey_ike();
        break;
      case 12:
        (void)r.sa->rekey_ike();
        break;
    }
  }
  run(l, r);
  for (Side* s : {&l, &r}) {
    s->sa->abort("fuzz input done");
    for (auto& old : s->replaced) old->abort("fuzz input done");
  }
  if (!kernel_empty(l.kernel) || !kernel_empty(r.kernel)) std::abort();  // an IKE SA left kernel objects behind
  return 0;
}
