#pragma once
#include <gtest/gtest.h>

#include <string>

#include "storcrypt/policy/model.h"

namespace storcrypt::policy::testing {

inline IpAddress ip(const std::string& s) {
  auto r = IpAddress::parse(s);
  EXPECT_TRUE(r.ok()) << s;
  return r.ok() ? *r : IpAddress{};
}
inline AddressSpec addr(const std::string& s) {
  auto r = AddressSpec::parse(s);
  EXPECT_TRUE(r.ok()) << s;
  return r.ok() ? *r : AddressSpec{};
}
inline PortSpec ports(const std::string& s, std::uint16_t max = 65535) {
  auto r = PortSpec::parse(s, max, "test");
  EXPECT_TRUE(r.ok()) << s;
  return r.ok() ? *r : PortSpec{};
}

inline Policy simple(std::string name, Direction d, Disposition disp, std::optional<std::uint8_t> proto = {},
                     std::string local = "ANY", std::string remote = "ANY", std::string lports = "ANY",
                     std::string rports = "ANY") {
  Policy p;
  p.name = std::move(name);
  p.direction = d;
  p.disposition = disp;
  p.selector.local = addr(local);
  p.selector.remote = addr(remote);
  p.selector.protocol = proto;
  const std::uint16_t max = proto && protocol_is_icmp(*proto) ? 255 : 65535;
  p.selector.local_ports = ports(lports, max);
  p.selector.remote_ports = ports(rports, max);
  return p;
}

inline Protection esp_gcm(std::uint32_t spi, std::string key = "k-gcm") {
  Protection pr;
  pr.service = Service::kEspIntegrityConfidentiality;
  pr.mode = Mode::kTransport;
  pr.spi = spi;
  pr.encryption = Algorithm::kAesGcm256;
  pr.encryption_key = std::move(key);
  return pr;
}

/// The example: outbound TCP bypassed before a PROTECT policy for
/// TCP to 5000-5001 (which is therefore shadowed), and an inbound bypass.
inline PolicyList shadow_example() {
  PolicyList l;
  EXPECT_TRUE(l.add(simple("bypass-tcp", Direction::kOutbound, Disposition::kBypass, proto::kTcp)).ok());
  Policy prot = simple("protect-5000", Direction::kOutbound, Disposition::kProtect, proto::kTcp, "192.0.2.1",
                       "192.0.2.2", "ANY", "5000-5001");
  prot.protection = esp_gcm(0x1000);
  EXPECT_TRUE(l.add(prot).ok());
  EXPECT_TRUE(l.add(simple("in-all", Direction::kInbound, Disposition::kBypass)).ok());
  return l;
}

}  // namespace storcrypt::policy::testing
