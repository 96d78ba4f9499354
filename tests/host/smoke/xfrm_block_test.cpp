// Host smoke: the host kernel's XFRM policy engine, seen from two network
// namespaces joined by veth. A block policy must make a TCP connect fail and
// XfrmOutPolBlock must rise. Uses `ip xfrm` only; the netlink/ library has
// its own host tests.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <thread>

#include "storcrypt/common/fd.h"
#include "storcrypt/testing/environment.h"
#include "storcrypt/testing/netns.h"

namespace storcrypt::testing {
namespace {

TEST(HostSmoke, XfrmBlockPolicyDropsTcpAndCountsIt) {
  STORCRYPT_REQUIRE(can_use_netns(), "needs root and network namespaces");
  VethPair net;
  ASSERT_TRUE(net.ok) << "could not build the veth pair";

  // A listener on the right side, opened inside its namespace.
  UniqueFd listener;
  ASSERT_EQ(net.right.run_inside([&] {
    listener.reset(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    int one = 1;
    setsockopt(listener.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_port = htons(5001);
    inet_pton(AF_INET, "192.0.2.2", &sa.sin_addr);
    if (bind(listener.get(), reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0) return errno;
    return listen(listener.get(), 16) == 0 ? 0 : errno;
  }),
            0);

  // Before any policy: the connection is accepted by the kernel's backlog.
  EXPECT_EQ(tcp_connect_errno(net.left, "192.0.2.2", 5001), 0);
  long before = xfrm_stat(net.left, "XfrmOutPolBlock");
  ASSERT_GE(before, 0) << "kernel has no XFRM statistics (CONFIG_XFRM_STATISTICS)";

  std::string out;
  ASSERT_EQ(
      net.left.ip("xfrm policy add src 192.0.2.1/32 dst 192.0.2.2/32 proto tcp dport 5001 dir out action block", &out),
      0)
      << out;
  int err = tcp_connect_errno(net.left, "192.0.2.2", 5001);
  EXPECT_EQ(err, EPERM) << "connect through a block policy should fail with EPERM, got errno " << err;
  EXPECT_GT(xfrm_stat(net.left, "XfrmOutPolBlock"), before);

  // Other ports are not matched by the selector and still connect.
  EXPECT_EQ(tcp_connect_errno(net.left, "192.0.2.2", 5002), ECONNREFUSED);
}

}  // namespace
}  // namespace storcrypt::testing
