// storcrypt IKEv2: Runner, the one place that gives the sans-IO Engine its
// I/O. It owns the UDP transport (ike/udp.h), the kernel side (XFRM over
// netlink in Ownership::ike()'s ranges, ike/xfrm_kernel.h) and the Engine,
// and runs one I/O thread: poll() on the transport's sockets, receive(),
// and Engine::tick() every `tick` (~100 ms). Every Engine call from another
// thread goes through with_engine(), which holds the one mutex the I/O
// thread also holds while it works, so the Engine is never entered twice.
//
// Events are delivered to the callback on the I/O thread or on the thread
// inside with_engine(), with the mutex held: the callback must not call back
// into the Runner (queue the event and return).
//
// Start-up clears what a killed predecessor left in the kernel before the
// Engine sees its first peer (stale(), prune_stale()).
//
// Destruction stops and joins the thread; it does not delete SAs (a caller
// that wants peers down calls terminate() first). The daemon (controller/)
// and the vm test tool (tests/vm/ike/) both compose exactly this.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "storcrypt/common/result.h"
#include "storcrypt/ike/engine.h"
#include "storcrypt/ike/udp.h"

namespace storcrypt::ike {

struct RunnerOptions {
  /// Sockets: namespace, listen addresses, ports. The kernel side opens
  /// netlink XFRM in the same namespace.
  UdpOptions udp;
  EngineOptions engine;
  std::chrono::milliseconds tick{100};
};

class Runner {
 public:
  /// Open the sockets and the kernel side, then start the I/O thread.
  /// Errors: those of UdpTransport::open (kConflict when a port is taken,
  /// kPermission, kNotFound) and of opening netlink XFRM.
  static Result<std::unique_ptr<Runner>> start(const RunnerOptions& opts,
                                               std::function<void(const Event&)> on_event);
  /// Same, over a transport and kernel the caller made (tests): `poll_fds`
  /// returns the descriptors to wait on, `receive` the next datagram.
  struct Io {
    std::unique_ptr<Transport> transport;
    std::function<std::vector<int>()> poll_fds;
    std::function<Result<std::optional<Datagram>>()> receive;
    std::unique_ptr<ChildSaKernel> kernel;
    std::shared_ptr<void> keep_alive;  ///< anything the kernel side borrows (e.g. the XfrmApi)
  };
  static Result<std::unique_ptr<Runner>> start(Io io, const RunnerOptions& opts,
                                               std::function<void(const Event&)> on_event);

  ~Runner();
  Runner(const Runner&) = delete;
  Runner& operator=(const Runner&) = delete;

  /// Run `f` on the Engine with the mutex held; returns what `f` returns.
  template <class F>
  auto with_engine(F&& f) -> decltype(f(std::declval<Engine&>())) {
    std::lock_guard lock(mu_);
    return f(*engine_);
  }

  /// What the transport listens on (empty for a caller-made transport).
  std::vector<Endpoint> endpoints() const { return endpoints_; }

  /// What start() found of a killed predecessor (ChildSaKernel::clear_stale():
  /// its SAs deleted, its policies kept so traffic is dropped, not sent in
  /// clear, until a new CHILD_SA replaces them).
  StaleObjects stale() const { return stale_; }
  /// Delete the stale policies of peers not in `keep` (the remote addresses
  /// of the configured peers): call it once the peers are added, and after a
  /// peer is removed. Returns how many were deleted.
  Result<std::size_t> prune_stale(const std::vector<IpAddress>& keep) {
    std::lock_guard lock(mu_);
    return io_.kernel->prune_stale(keep);
  }

 private:
  Runner() = default;
  void loop();

  std::mutex mu_;
  Io io_;
  std::unique_ptr<Engine> engine_;
  std::vector<Endpoint> endpoints_;
  StaleObjects stale_;
  std::chrono::milliseconds tick_{100};
  int wake_fd_ = -1;  ///< eventfd: destruction wakes poll()
  bool stop_ = false;
  std::unique_ptr<std::thread> thread_;
};

}  // namespace storcrypt::ike
