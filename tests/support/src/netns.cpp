#include "storcrypt/testing/netns.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <fstream>
#include <sstream>
#include <thread>

#include "storcrypt/common/fd.h"
#include "storcrypt/testing/process.h"

namespace storcrypt::testing {

TestNetns::TestNetns(const std::string& base) : name_(base + "-" + std::to_string(getpid())) {
  (void)run({"ip", "netns", "del", name_});
  ok_ = run({"ip", "netns", "add", name_}).exit_code == 0;
  if (ok_) ok_ = ip("link set lo up") == 0;
}

TestNetns::~TestNetns() {
  if (ok_) (void)run({"ip", "netns", "del", name_});
}

int TestNetns::ip(const std::string& args, std::string* out) const {
  auto r = sh("ip -n " + name_ + " " + args);
  if (out) *out = r.out + r.err;
  return r.exit_code;
}

int TestNetns::run_inside(const std::function<int()>& fn) const {
  int result = -1;
  std::thread t([&] {
    UniqueFd fd(open(("/run/netns/" + name_).c_str(), O_RDONLY | O_CLOEXEC));
    if (!fd.valid() || setns(fd.get(), CLONE_NEWNET) != 0) return;
    result = fn();
  });
  t.join();
  return result;
}

VethPair::VethPair() {
  if (!left.ok() || !right.ok()) return;
  std::string pid = std::to_string(getpid());
  std::string a = "va" + pid, b = "vb" + pid;
  if (sh("ip link add " + a + " netns " + left.name() + " type veth peer name " + b + " netns " + right.name())
          .exit_code != 0)
    return;
  ok = left.ip("link set " + a + " name vl") == 0 && right.ip("link set " + b + " name vr") == 0 &&
       left.ip("addr add 192.0.2.1/24 dev vl") == 0 && right.ip("addr add 192.0.2.2/24 dev vr") == 0 &&
       left.ip("link set vl up") == 0 && right.ip("link set vr up") == 0;
}

int tcp_connect_errno(const TestNetns& ns, const std::string& addr, int port, int timeout_ms) {
  return ns.run_inside([&]() -> int {
    UniqueFd s(socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
    if (!s.valid()) return errno;
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_port = htons(static_cast<uint16_t>(port));
    inet_pton(AF_INET, addr.c_str(), &sa.sin_addr);
    if (connect(s.get(), reinterpret_cast<sockaddr*>(&sa), sizeof sa) == 0) return 0;
    if (errno != EINPROGRESS) return errno;
    pollfd p{s.get(), POLLOUT, 0};
    int n = poll(&p, 1, timeout_ms);
    if (n == 0) return ETIMEDOUT;
    int err = 0;
    socklen_t len = sizeof err;
    getsockopt(s.get(), SOL_SOCKET, SO_ERROR, &err, &len);
    return err;
  });
}

long xfrm_stat(const TestNetns& ns, const std::string& counter) {
  long value = -1;
  ns.run_inside([&] {
    // /proc/net follows the reading thread's network namespace.
    std::ifstream f("/proc/thread-self/net/xfrm_stat");
    std::string name;
    long v;
    while (f >> name >> v)
      if (name == counter) value = v;
    return 0;
  });
  return value;
}

}  // namespace storcrypt::testing
