// Fuzz the NETLINK_XFRM decoders (bytes from the kernel or a hostile netlink
// peer). Every decoder must reject or accept without reading out of bounds;
// an accepted SA or policy that validates must survive encode -> decode
// unchanged.
#include <cstdint>
#include <cstdlib>

#include "storcrypt/netlink/xfrm_codec.h"

using namespace storcrypt;
using namespace storcrypt::netlink;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  codec::Bytes in(data, size);
  for (codec::Bytes m : codec::split_messages(in)) {
    if (m.size() > size) std::abort();
    (void)codec::peek_owner(m);
    (void)codec::decode_event(m);
    (void)codec::decode_default(m);
    (void)codec::decode_error(m);
    (void)codec::field_at_offset(m, static_cast<std::uint32_t>(size / 2));
    if (auto sa = codec::decode_sa(m); sa.ok() && validate(sa->sa).ok()) {
      auto again = codec::decode_sa(codec::encode_sa(sa->sa, false).view());
      if (!again.ok()) std::abort();
      const Sa& a = sa->sa;
      const Sa& b = again->sa;
      if (!(a.src == b.src && a.dst == b.dst && a.spi == b.spi && a.enc == b.enc && a.integ == b.integ &&
            a.enc_key.equals(b.enc_key) && a.integ_key.equals(b.integ_key) && a.lifetime == b.lifetime &&
            a.replay_window == b.replay_window && a.esn == b.esn && a.mark == b.mark && a.encap == b.encap))
        std::abort();
    }
    if (auto p = codec::decode_policy(m); p.ok() && validate(*p).ok()) {
      auto again = codec::decode_policy(codec::encode_policy(*p, false).view());
      if (!again.ok() || !(*again == *p)) std::abort();
    }
  }
  // Also the whole buffer as one message (split_messages stops at the first bad header).
  (void)codec::decode_sa(in);
  (void)codec::decode_policy(in);
  (void)codec::decode_event(in);
  return 0;
}
