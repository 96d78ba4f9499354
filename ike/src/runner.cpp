// Runner: see runner.h.
#include "storcrypt/ike/runner.h"

#include <poll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <thread>

#include "storcrypt/ike/xfrm_kernel.h"
#include "storcrypt/netlink/xfrm_api.h"

namespace storcrypt::ike {

Result<std::unique_ptr<Runner>> Runner::start(const RunnerOptions& opts,
                                              std::function<void(const Event&)> on_event) {
  auto udp = UdpTransport::open(opts.udp);
  if (!udp.ok()) return udp.error();
  netlink::XfrmOptions xo;
  xo.netns = opts.udp.netns;
  xo.ownership = netlink::Ownership::ike();
  auto xfrm = netlink::open_xfrm(xo);
  if (!xfrm.ok()) return xfrm.error();
  std::shared_ptr<netlink::XfrmApi> api(std::move(*xfrm));
  auto kernel = XfrmChildSaKernel::create(*api);
  if (!kernel.ok()) return kernel.error();
  UdpTransport* raw = udp->get();
  Io io;
  io.poll_fds = [raw] { return raw->fds(); };
  io.receive = [raw] { return raw->receive(); };
  io.transport = std::move(*udp);
  io.kernel = std::move(*kernel);
  io.keep_alive = api;
  auto r = start(std::move(io), opts, std::move(on_event));
  if (r.ok()) (*r)->endpoints_ = raw->endpoints();
  return r;
}

Result<std::unique_ptr<Runner>> Runner::start(Io io, const RunnerOptions& opts,
                                              std::function<void(const Event&)> on_event) {
  if (!io.transport || !io.kernel || !io.poll_fds || !io.receive)
    return Error(ErrorCode::kInvalidInput, "IKE runner: a transport, a kernel and their poll/receive are needed");
  // Before the Engine exists: a killed predecessor's SAs go, its policies
  // stay until replaced or pruned (ChildSaKernel::clear_stale()).
  auto stale = io.kernel->clear_stale();
  if (!stale.ok()) return std::move(stale).error().context("IKE runner start-up");
  std::unique_ptr<Runner> r(new Runner());
  r->stale_ = *stale;
  r->wake_fd_ = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (r->wake_fd_ < 0)
    return Error(ErrorCode::kUnavailable, std::string("IKE runner: eventfd failed: ") + std::strerror(errno));
  r->io_ = std::move(io);
  r->tick_ = opts.tick.count() > 0 ? opts.tick : std::chrono::milliseconds(100);
  r->engine_ = std::make_unique<Engine>(*r->io_.transport, *r->io_.kernel, opts.engine);
  if (on_event) r->engine_->set_event_callback(std::move(on_event));
  Runner* self = r.get();
  r->thread_ = std::make_unique<std::thread>([self] { self->loop(); });
  return r;
}

Runner::~Runner() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  if (wake_fd_ >= 0) {
    const std::uint64_t one = 1;
    [[maybe_unused]] auto n = ::write(wake_fd_, &one, sizeof one);
  }
  if (thread_ && thread_->joinable()) thread_->join();
  engine_.reset();  // before the transport and kernel it borrows
  if (wake_fd_ >= 0) ::close(wake_fd_);
}

void Runner::loop() {
  auto next_tick = std::chrono::steady_clock::now();
  for (;;) {
    std::vector<pollfd> pfds;
    {
      std::lock_guard lock(mu_);
      if (stop_) return;
      for (int fd : io_.poll_fds()) pfds.push_back(pollfd{fd, POLLIN, 0});
    }
    // A transport without descriptors (an in-memory one in tests) cannot wake
    // poll(): its receive() is polled on every pass instead.
    const bool fdless = pfds.empty();
    pfds.push_back(pollfd{wake_fd_, POLLIN, 0});
    const auto now = std::chrono::steady_clock::now();
    const auto wait = std::chrono::duration_cast<std::chrono::milliseconds>(next_tick - now);
    const int timeout = wait.count() > 0 ? static_cast<int>(wait.count()) : 0;
    const int n = ::poll(pfds.data(), pfds.size(), timeout);
    std::lock_guard lock(mu_);
    if (stop_) return;
    if (n > 0 || fdless) {
      // Drain what is waiting (bounded, so a flood cannot starve tick()).
      for (int i = 0; i < 256; ++i) {
        auto d = io_.receive();
        if (!d.ok() || !*d) break;
        engine_->receive(**d);
      }
    }
    const auto t = std::chrono::steady_clock::now();
    if (t >= next_tick) {
      engine_->tick(t);
      next_tick = t + tick_;
    }
  }
}

}  // namespace storcrypt::ike
