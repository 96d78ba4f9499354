// storcrypt IKEv2: UdpTransport, the Transport over real UDP sockets.
//
// One socket per (local address, port): ports 500 and 4500 (configurable,
// so tests can use high ports) on each given address, IPv4 and IPv6 (a
// wildcard 0.0.0.0 / :: listens on every address of its family), all
// created inside one network namespace (named, a path, or the caller's) on a
// short-lived thread, so the calling thread never changes namespace.
//
// Every socket carries a per-socket XFRM policy bypass (IP_XFRM_POLICY /
// IPV6_XFRM_POLICY, action allow, in and out, as strongSwan does), so no
// policy list, DISCARD rule or default disposition can cut off key exchange
// (needs CAP_NET_ADMIN). The NAT-T (4500) sockets are UDP_ENCAP_ESPINUDP:
// the kernel takes ESP-in-UDP from them and drops NAT keepalives; what
// reaches user space carries the non-ESP marker, which receive() strips
// (anything else on 4500, e.g. ESP the kernel did not consume, is dropped)
// and send() adds. The local address of each received datagram comes from
// IP_PKTINFO / IPV6_PKTINFO, so a wildcard socket still reports it, and
// send() sources from the datagram's local address the same way.
//
// Errors are values: kConflict when a port is taken ("UDP 500 on 192.0.2.1
// is in use (another IKE daemon such as charon?)"), kPermission without
// CAP_NET_ADMIN / CAP_NET_BIND_SERVICE, kNotFound for a missing namespace or
// an address not on any interface, kInvalidInput for a send from an
// endpoint the transport does not listen on.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "storcrypt/common/fd.h"
#include "storcrypt/ike/transport.h"

namespace storcrypt::ike {

struct UdpOptions {
  /// Network namespace: "" = the caller's, a name under /run/netns, or an
  /// absolute path (/proc/PID/ns/net).
  std::string netns;
  /// Local addresses to listen on (IPv4 and/or IPv6; 0.0.0.0 / :: = all of
  /// that family). At least one; no duplicates.
  std::vector<IpAddress> addresses;
  std::uint16_t ike_port = kIkePort;    ///< plain IKE
  std::uint16_t natt_port = kNatTPort;  ///< NAT-T: non-ESP marker, ESP-in-UDP
};

class UdpTransport : public Transport {
 public:
  static Result<std::unique_ptr<UdpTransport>> open(const UdpOptions& opts);
  ~UdpTransport() override;

  /// Send d.data from d.local (an address and port we listen on, or any
  /// address of a wildcard's family on that port) to d.remote; on the NAT-T
  /// port the non-ESP marker is prepended.
  Status send(const Datagram& d) override;

  /// The next received IKE message from any socket, without blocking;
  /// nullopt when none is waiting. Keepalives, stray ESP and truncated or
  /// marker-less datagrams on the NAT-T port are consumed and skipped.
  Result<std::optional<Datagram>> receive();

  /// File descriptors to poll for readability (then call receive()).
  std::vector<int> fds() const;
  /// What the transport listens on (address as given, port).
  std::vector<Endpoint> endpoints() const;

 private:
  struct Sock {
    Endpoint bound;
    UniqueFd fd;
    bool natt = false;
  };
  UdpTransport(UdpOptions opts, std::vector<Sock> socks) : opts_(std::move(opts)), socks_(std::move(socks)) {}
  const Sock* socket_for(const Endpoint& local) const;

  UdpOptions opts_;
  std::vector<Sock> socks_;
  std::size_t next_ = 0;  ///< round-robin start for receive()
  std::vector<std::uint8_t> recv_buf_;  ///< receive()'s buffer, allocated once
};

}  // namespace storcrypt::ike
