// Network namespaces for host-tier tests: created by the test, removed after.
#pragma once
#include <functional>
#include <string>

namespace storcrypt::testing {

/// Owns one named network namespace (`ip netns add`), deleted on destruction.
/// Names get a per-process suffix so parallel test binaries never collide.
class TestNetns {
 public:
  explicit TestNetns(const std::string& base);
  ~TestNetns();
  TestNetns(const TestNetns&) = delete;
  TestNetns& operator=(const TestNetns&) = delete;

  const std::string& name() const { return name_; }
  bool ok() const { return ok_; }
  /// `ip -n NAME <args>`; returns the exit code and fills out/err.
  int ip(const std::string& args, std::string* out = nullptr) const;
  /// Run fn on a thread that has joined this namespace (setns is per thread).
  /// Returns fn's value, or -1 if the namespace could not be entered.
  int run_inside(const std::function<int()>& fn) const;

 private:
  std::string name_;
  bool ok_ = false;
};

/// Two namespaces joined by a veth pair, addressed in TEST-NET-1 (192.0.2.0/24):
/// left 192.0.2.1/24 on dev "vl", right 192.0.2.2/24 on dev "vr".
struct VethPair {
  VethPair();
  TestNetns left{"sc-l"};
  TestNetns right{"sc-r"};
  bool ok = false;
};

/// TCP connect from inside ns to addr:port with a short timeout.
/// Returns 0 on success, or the errno of the failure.
int tcp_connect_errno(const TestNetns& ns, const std::string& addr, int port, int timeout_ms = 2000);

/// Read one counter (e.g. "XfrmOutPolBlock") from /proc/net/xfrm_stat inside ns; -1 if absent.
long xfrm_stat(const TestNetns& ns, const std::string& counter);

}  // namespace storcrypt::testing
