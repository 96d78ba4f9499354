// storcrypt IKEv2: the seam between the IKE engine and the network.
//
// The engine (engine.h) is sans-IO: it is fed received datagrams and hands
// the datagrams it wants sent to a Transport. Implementations:
//  - UdpTransport (ike/udp.h): UDP sockets on ports 500 and 4500 inside one
//    network namespace, exempt from every XFRM policy (per-socket bypass),
//    port 4500 with UDP_ENCAP_ESPINUDP so the kernel takes ESP-in-UDP;
//  - an in-memory transport in tests/support for unit tests.
#pragma once

#include <cstdint>

#include "storcrypt/ike/message.h"  // Bytes
#include "storcrypt/common/ip.h"
#include "storcrypt/common/result.h"

namespace storcrypt::ike {

inline constexpr std::uint16_t kIkePort = 500;
inline constexpr std::uint16_t kNatTPort = 4500;

struct Endpoint {
  IpAddress addr;
  std::uint16_t port = kIkePort;
  bool operator==(const Endpoint&) const = default;
};

/// One IKE message on the wire. `data` is the IKE message itself: the
/// transport adds the non-ESP marker when sending from port 4500 and strips
/// it on receive (ESP-in-UDP and NAT keepalives never reach the engine).
struct Datagram {
  Endpoint local;
  Endpoint remote;
  Bytes data;
};

class Transport {
 public:
  virtual ~Transport() = default;
  /// Send `d.data` from `d.local` to `d.remote`. The local endpoint must be
  /// one the transport listens on.
  virtual Status send(const Datagram& d) = 0;
};

}  // namespace storcrypt::ike
