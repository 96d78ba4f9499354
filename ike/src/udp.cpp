#include "storcrypt/ike/udp.h"

#include <arpa/inet.h>
#include <fmt/format.h>
#include <linux/udp.h>
#include <linux/xfrm.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <array>
#include <cerrno>
#include <cstring>
#include <set>

#include "storcrypt/common/netns.h"

#ifndef UDP_ENCAP
#define UDP_ENCAP 100
#endif
#ifndef UDP_ENCAP_ESPINUDP
#define UDP_ENCAP_ESPINUDP 2
#endif
#ifndef IP_XFRM_POLICY
#define IP_XFRM_POLICY 17
#endif
#ifndef IPV6_XFRM_POLICY
#define IPV6_XFRM_POLICY 35
#endif

namespace storcrypt::ike {
namespace {

constexpr std::size_t kRecvBuf = 65536 + 16;

/// Write one control message (the only one) into m's control buffer.
template <class Info>
void put_cmsg(msghdr& m, int level, int type, const Info& info) {
  m.msg_controllen = CMSG_SPACE(sizeof(Info));
  cmsghdr* c = CMSG_FIRSTHDR(&m);
  c->cmsg_level = level;
  c->cmsg_type = type;
  c->cmsg_len = CMSG_LEN(sizeof(Info));
  std::memcpy(CMSG_DATA(c), &info, sizeof info);
}

union SockAddr {
  sockaddr sa;
  sockaddr_in v4;
  sockaddr_in6 v6;
  sockaddr_storage ss;
};

socklen_t to_sockaddr(const Endpoint& e, SockAddr& out) {
  std::memset(&out, 0, sizeof out);
  if (e.addr.family == Family::kIPv4) {
    out.v4.sin_family = AF_INET;
    out.v4.sin_port = htons(e.port);
    std::memcpy(&out.v4.sin_addr, e.addr.bytes.data(), 4);
    return sizeof out.v4;
  }
  out.v6.sin6_family = AF_INET6;
  out.v6.sin6_port = htons(e.port);
  std::memcpy(&out.v6.sin6_addr, e.addr.bytes.data(), 16);
  return sizeof out.v6;
}

std::optional<Endpoint> from_sockaddr(const SockAddr& s) {
  Endpoint e;
  if (s.sa.sa_family == AF_INET) {
    e.addr.family = Family::kIPv4;
    std::memcpy(e.addr.bytes.data(), &s.v4.sin_addr, 4);
    e.port = ntohs(s.v4.sin_port);
    return e;
  }
  if (s.sa.sa_family == AF_INET6) {
    e.addr.family = Family::kIPv6;
    std::memcpy(e.addr.bytes.data(), &s.v6.sin6_addr, 16);
    e.port = ntohs(s.v6.sin6_port);
    return e;
  }
  return std::nullopt;
}

Error sock_error(int err, const Endpoint& e, std::string_view what) {
  const std::string where = fmt::format("UDP {} on {}", e.port, e.addr.to_string());
  switch (err) {
    case EADDRINUSE:
      return Error(ErrorCode::kConflict, fmt::format("{} is in use (another IKE daemon such as charon?)", where),
                   "stop the other IKE daemon (e.g. `systemctl stop strongswan`) or listen on other addresses")
          .with_errno(err);
    case EACCES:
    case EPERM:
      return Error(ErrorCode::kPermission,
                   fmt::format("{}: {}: {} (needs CAP_NET_BIND_SERVICE and CAP_NET_ADMIN)", where, what,
                               std::strerror(err)),
                   "run as root or grant the capabilities")
          .with_errno(err);
    case EADDRNOTAVAIL:
      return Error(ErrorCode::kNotFound,
                   fmt::format("{}: {}: the address is not configured on any interface in this namespace", where, what),
                   "add the address first (`ip addr add`), or listen on 0.0.0.0 / ::")
          .with_errno(err);
    default:
      return errno_error(err, fmt::format("{}: {}", where, what));
  }
}

/// Per-socket bypass: an allow policy for each direction on this socket
/// exempts its packets from every SPD entry (strongSwan add_socket_bypass).
Status bypass(int fd, const Endpoint& e) {
  const bool v4 = e.addr.family == Family::kIPv4;
  xfrm_userpolicy_info pol{};
  pol.action = XFRM_POLICY_ALLOW;
  pol.sel.family = v4 ? AF_INET : AF_INET6;
  for (int dir : {XFRM_POLICY_IN, XFRM_POLICY_OUT}) {
    pol.dir = static_cast<std::uint8_t>(dir);
    if (::setsockopt(fd, v4 ? IPPROTO_IP : IPPROTO_IPV6, v4 ? IP_XFRM_POLICY : IPV6_XFRM_POLICY, &pol, sizeof pol) != 0)
      return sock_error(errno, e,
                        fmt::format("setting the XFRM bypass policy (dir {})", dir == XFRM_POLICY_IN ? "in" : "out"));
  }
  return ok_status();
}

Result<UniqueFd> open_socket(const Endpoint& e, bool natt) {
  const bool v4 = e.addr.family == Family::kIPv4;
  UniqueFd fd(::socket(v4 ? AF_INET : AF_INET6, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, IPPROTO_UDP));
  if (!fd.valid()) return sock_error(errno, e, "creating the socket");
  const int on = 1;
  if (v4) {
    if (::setsockopt(fd.get(), IPPROTO_IP, IP_PKTINFO, &on, sizeof on) != 0)
      return sock_error(errno, e, "enabling IP_PKTINFO");
  } else {
    if (::setsockopt(fd.get(), IPPROTO_IPV6, IPV6_V6ONLY, &on, sizeof on) != 0)
      return sock_error(errno, e, "setting IPV6_V6ONLY");
    if (::setsockopt(fd.get(), IPPROTO_IPV6, IPV6_RECVPKTINFO, &on, sizeof on) != 0)
      return sock_error(errno, e, "enabling IPV6_RECVPKTINFO");
  }
  STORCRYPT_TRY(bypass(fd.get(), e));
  SockAddr sa;
  const socklen_t len = to_sockaddr(e, sa);
  if (::bind(fd.get(), &sa.sa, len) != 0) return sock_error(errno, e, "binding");
  if (natt) {
    const int type = UDP_ENCAP_ESPINUDP;
    if (::setsockopt(fd.get(), IPPROTO_UDP, UDP_ENCAP, &type, sizeof type) != 0)
      return sock_error(errno, e, "enabling ESP-in-UDP (UDP_ENCAP_ESPINUDP)");
  }
  return fd;
}

}  // namespace

Result<std::unique_ptr<UdpTransport>> UdpTransport::open(const UdpOptions& opts) {
  if (opts.addresses.empty())
    return Error(ErrorCode::kInvalidInput, "addresses: give at least one local address to listen on",
                 "e.g. 0.0.0.0 and ::, or the node's addresses");
  if (opts.ike_port == opts.natt_port || opts.ike_port == 0 || opts.natt_port == 0)
    return Error(ErrorCode::kInvalidInput,
                 fmt::format("ports: IKE port {} and NAT-T port {} must be two different non-zero ports", opts.ike_port,
                             opts.natt_port));
  std::set<std::pair<Family, std::array<std::uint8_t, 16>>> seen;
  for (const IpAddress& a : opts.addresses)
    if (!seen.insert({a.family, a.bytes}).second)
      return Error(ErrorCode::kInvalidInput, fmt::format("addresses: {} is listed twice", a.to_string()));

  STORCRYPT_ASSIGN_OR_RETURN(UniqueFd ns, open_netns(opts.netns));
  auto socks = in_netns(ns.get(), [&]() -> Result<std::vector<Sock>> {
    std::vector<Sock> out;
    for (const IpAddress& a : opts.addresses)
      for (bool natt : {false, true}) {
        Endpoint e{a, natt ? opts.natt_port : opts.ike_port};
        STORCRYPT_ASSIGN_OR_RETURN(UniqueFd fd, open_socket(e, natt));
        out.push_back(Sock{e, std::move(fd), natt});
      }
    return out;
  });
  if (!socks.ok()) return std::move(socks).error();
  return std::unique_ptr<UdpTransport>(new UdpTransport(opts, std::move(*socks)));
}

UdpTransport::~UdpTransport() = default;

std::vector<int> UdpTransport::fds() const {
  std::vector<int> out;
  for (const auto& s : socks_) out.push_back(s.fd.get());
  return out;
}

std::vector<Endpoint> UdpTransport::endpoints() const {
  std::vector<Endpoint> out;
  for (const auto& s : socks_) out.push_back(s.bound);
  return out;
}

const UdpTransport::Sock* UdpTransport::socket_for(const Endpoint& local) const {
  // An exact bind first, then a wildcard of the family on that port.
  for (const auto& s : socks_)
    if (s.bound == local) return &s;
  for (const auto& s : socks_)
    if (s.bound.port == local.port && s.bound.addr.family == local.addr.family && s.bound.addr.is_any()) return &s;
  return nullptr;
}

Status UdpTransport::send(const Datagram& d) {
  const Sock* s = socket_for(d.local);
  if (!s)
    return Error(
        ErrorCode::kInvalidInput,
        fmt::format("local: the transport does not listen on UDP {} on {}", d.local.port, d.local.addr.to_string()),
        "send from an endpoint given to UdpTransport::open()");
  if (d.remote.addr.family != d.local.addr.family)
    return Error(ErrorCode::kInvalidInput,
                 fmt::format("remote: {} is not of the local address's family", d.remote.addr.to_string()));
  Bytes marked;
  std::span<const std::uint8_t> payload = d.data;
  if (s->natt) {
    marked = add_non_esp_marker(d.data);
    payload = marked;
  }
  SockAddr to;
  const socklen_t tolen = to_sockaddr(d.remote, to);
  iovec iov{const_cast<std::uint8_t*>(payload.data()), payload.size()};
  msghdr m{};
  m.msg_name = &to;
  m.msg_namelen = tolen;
  m.msg_iov = &iov;
  m.msg_iovlen = 1;
  alignas(cmsghdr) std::array<char, CMSG_SPACE(sizeof(in6_pktinfo))> ctl{};
  if (s->bound.addr.is_any() && !d.local.addr.is_any()) {
    // A wildcard socket: choose the source address per datagram.
    m.msg_control = ctl.data();
    if (d.local.addr.family == Family::kIPv4) {
      in_pktinfo pi{};
      std::memcpy(&pi.ipi_spec_dst, d.local.addr.bytes.data(), 4);
      put_cmsg(m, IPPROTO_IP, IP_PKTINFO, pi);
    } else {
      in6_pktinfo pi{};
      std::memcpy(&pi.ipi6_addr, d.local.addr.bytes.data(), 16);
      put_cmsg(m, IPPROTO_IPV6, IPV6_PKTINFO, pi);
    }
  }
  ssize_t n;
  do {
    n = ::sendmsg(s->fd.get(), &m, MSG_DONTWAIT | MSG_NOSIGNAL);
  } while (n < 0 && errno == EINTR);
  if (n < 0)
    return errno_error(errno,
                       fmt::format("sending {} bytes from UDP {} on {} to {} port {}", payload.size(), d.local.port,
                                   d.local.addr.to_string(), d.remote.addr.to_string(), d.remote.port));
  return ok_status();
}

Result<std::optional<Datagram>> UdpTransport::receive() {
  std::vector<std::uint8_t>& buf = recv_buf_;
  buf.resize(kRecvBuf);  // allocated once, reused for every datagram
  for (std::size_t i = 0; i < socks_.size(); ++i) {
    const std::size_t at = (next_ + i) % socks_.size();
    const Sock& s = socks_[at];
    for (;;) {
      SockAddr from{};
      iovec iov{buf.data(), buf.size()};
      alignas(cmsghdr) std::array<char, 256> ctl{};
      msghdr m{};
      m.msg_name = &from;
      m.msg_namelen = sizeof from;
      m.msg_iov = &iov;
      m.msg_iovlen = 1;
      m.msg_control = ctl.data();
      m.msg_controllen = ctl.size();
      const ssize_t n = ::recvmsg(s.fd.get(), &m, MSG_DONTWAIT);
      if (n < 0) {
        if (errno == EINTR) continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) break;
        return errno_error(errno, fmt::format("receiving on UDP {} on {}", s.bound.port, s.bound.addr.to_string()));
      }
      if (m.msg_flags & MSG_TRUNC) continue;  // larger than any IKE message we accept
      auto remote = from_sockaddr(from);
      if (!remote) continue;
      Datagram d;
      d.remote = *remote;
      d.local = s.bound;
      for (cmsghdr* c = CMSG_FIRSTHDR(&m); c; c = CMSG_NXTHDR(&m, c)) {
        if (c->cmsg_level == IPPROTO_IP && c->cmsg_type == IP_PKTINFO) {
          in_pktinfo pi;
          std::memcpy(&pi, CMSG_DATA(c), sizeof pi);
          d.local.addr.family = Family::kIPv4;
          d.local.addr.bytes = {};
          std::memcpy(d.local.addr.bytes.data(), &pi.ipi_addr, 4);
        } else if (c->cmsg_level == IPPROTO_IPV6 && c->cmsg_type == IPV6_PKTINFO) {
          in6_pktinfo pi;
          std::memcpy(&pi, CMSG_DATA(c), sizeof pi);
          d.local.addr.family = Family::kIPv6;
          std::memcpy(d.local.addr.bytes.data(), &pi.ipi6_addr, 16);
        }
      }
      std::span<const std::uint8_t> got(buf.data(), static_cast<std::size_t>(n));
      if (s.natt) {
        Udp4500Datagram c = classify_udp4500(got);
        if (c.kind != Udp4500Kind::kIke) continue;  // keepalive, stray ESP, junk
        d.data.assign(c.payload.begin(), c.payload.end());
      } else {
        d.data.assign(got.begin(), got.end());
      }
      next_ = (at + 1) % socks_.size();
      return std::optional<Datagram>(std::move(d));
    }
  }
  return std::optional<Datagram>();
}

}  // namespace storcrypt::ike
