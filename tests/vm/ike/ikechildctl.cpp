// ikechildctl: installs and removes one CHILD_SA through ike::XfrmChildSaKernel
// (over an IKE-scoped netlink::XfrmApi) for the kernel-VM scenario
// child_sa.sh. The keys are random (never printed); `ip xfrm` judges.
//
//   ikechildctl NETNS install gcm|cbc [encap]   prints "reqid SPI_IN SPI_OUT"
//   ikechildctl NETNS remove REQID SPI_IN SPI_OUT
//   ikechildctl NETNS rekey REQID SPI_IN SPI_OUT   (a gcm encap CHILD_SA: new SAs
//       under the reqid, then the old ones removed; prints "reqid SPI_IN SPI_OUT")
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <string>

#include "storcrypt/ike/xfrm_kernel.h"

using namespace storcrypt;
using namespace storcrypt::ike;

namespace {

int fail(const std::string& what, const Error& e) {
  std::cerr << "ikechildctl: " << what << ": " << e.to_string() << "\n";
  return 1;
}

TsRange ts(const char* lo, const char* hi) {
  TsRange t;
  t.start = *IpAddress::parse(lo);
  t.end = *IpAddress::parse(hi);
  return t;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) {
    std::cerr << "usage: ikechildctl NETNS install gcm|cbc [encap] | remove REQID SPI_IN SPI_OUT\n";
    return 2;
  }
  netlink::XfrmOptions o;
  o.netns = argv[1];
  o.ownership = netlink::Ownership::ike();
  auto x = netlink::open_xfrm(o);
  if (!x.ok()) return fail("opening XFRM", x.error());
  auto k = XfrmChildSaKernel::create(**x);
  if (!k.ok()) return fail("creating the kernel", k.error());
  const IpAddress local = *IpAddress::parse("192.0.2.1"), remote = *IpAddress::parse("192.0.2.2");
  const std::string cmd = argv[2];
  if (cmd == "install" && argc >= 4) {
    const bool gcm = std::string(argv[3]) == "gcm";
    auto slot = (*k)->reserve(local, remote);
    if (!slot.ok()) return fail("reserve", slot.error());
    ChildSaSpec s;
    s.slot = *slot;
    s.spi_out = 0xc0000000u | (slot->reqid & 0xffff);
    s.local = local;
    s.remote = remote;
    s.suite.protocol = ProtocolId::kEsp;
    s.suite.encr = gcm ? transform_id::kEncrAesGcm16 : transform_id::kEncrAesCbc;
    s.suite.encr_key_bits = 256;
    s.suite.integ = gcm ? transform_id::kIntegNone : transform_id::kIntegHmacSha384_192;
    s.suite.esn = transform_id::kEsnNo;
    for (DirectionKeys* d : {&s.in, &s.out}) {
      d->encr = std::move(*SecretBytes::random(gcm ? 36 : 32));
      if (!gcm) d->integ = std::move(*SecretBytes::random(48));
    }
    if (argc >= 5 && std::string(argv[4]) == "encap") s.encap = std::pair<std::uint16_t, std::uint16_t>{4500, 4500};
    // The two suites use different local networks: two CHILD_SAs cannot share a selector.
    s.local_ts = {gcm ? ts("198.51.100.0", "198.51.100.255") : ts("198.51.101.0", "198.51.101.255")};
    s.remote_ts = {ts("203.0.113.0", "203.0.113.255")};
    s.lifetime.soft_add = std::chrono::seconds(3000);
    s.lifetime.hard_add = std::chrono::seconds(3600);
    if (auto st = (*k)->install(s); !st.ok()) return fail("install", st.error());
    std::printf("%u %u %u\n", slot->reqid, slot->spi_in, s.spi_out);
    return 0;
  }
  if (cmd == "rekey" && argc == 6) {
    const ChildSaSlot old{static_cast<std::uint32_t>(std::stoul(argv[3])),
                          static_cast<std::uint32_t>(std::stoul(argv[4]))};
    const auto old_out = static_cast<std::uint32_t>(std::stoul(argv[5]));
    auto slot = (*k)->reserve_rekey(old, local, remote);
    if (!slot.ok()) return fail("reserve_rekey", slot.error());
    ChildSaSpec s;
    s.slot = *slot;
    s.spi_out = 0xd0000000u | (old.reqid & 0xffff);  // apart from install's 0xc000xxxx (the next CHILD_SA's)
    s.local = local;
    s.remote = remote;
    s.suite.protocol = ProtocolId::kEsp;
    s.suite.encr = transform_id::kEncrAesGcm16;
    s.suite.encr_key_bits = 256;
    s.suite.integ = transform_id::kIntegNone;
    s.suite.esn = transform_id::kEsnNo;
    for (DirectionKeys* d : {&s.in, &s.out}) d->encr = std::move(*SecretBytes::random(36));
    s.encap = std::pair<std::uint16_t, std::uint16_t>{4500, 4500};
    s.local_ts = {ts("198.51.100.0", "198.51.100.255")};
    s.remote_ts = {ts("203.0.113.0", "203.0.113.255")};
    if (auto st = (*k)->install_sa(s, SaDirection::kIn); !st.ok()) return fail("install_sa in", st.error());
    if (auto st = (*k)->install_sa(s, SaDirection::kOut); !st.ok()) return fail("install_sa out", st.error());
    if (auto st = (*k)->remove_sa(old.reqid, local, old.spi_in); !st.ok()) return fail("remove_sa in", st.error());
    if (auto st = (*k)->remove_sa(old.reqid, remote, old_out); !st.ok()) return fail("remove_sa out", st.error());
    std::printf("%u %u %u\n", slot->reqid, slot->spi_in, s.spi_out);
    return 0;
  }
  if (cmd == "remove" && argc == 6) {
    ChildSaSlot slot{static_cast<std::uint32_t>(std::stoul(argv[3])), static_cast<std::uint32_t>(std::stoul(argv[4]))};
    if (auto st = (*k)->remove(slot, local, remote, static_cast<std::uint32_t>(std::stoul(argv[5]))); !st.ok())
      return fail("remove", st.error());
    return 0;
  }
  std::cerr << "ikechildctl: bad arguments\n";
  return 2;
}
