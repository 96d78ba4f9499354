// Runner over a caller-made Io without file descriptors (the in-memory
// transport of unit tests): receive() must still be polled, on every pass of
// the I/O thread, so datagrams queued in memory reach the Engine. Before the
// fix the loop only drained when poll() reported a readable descriptor, so an
// fd-less transport was never read.
#include "storcrypt/ike/runner.h"

#include <gtest/gtest.h>

#include <chrono>
#include <condition_variable>
#include <mutex>

#include "storcrypt/testing/ike_fakes.h"

namespace storcrypt::ike {
namespace {

using storcrypt::testing::FakeChildSaKernel;
using storcrypt::testing::MemoryTransport;

TEST(Runner, FdlessTransportIsReceivedFrom) {
  std::mutex mu;
  std::condition_variable cv;
  int calls = 0;
  Runner::Io io;
  io.transport = std::make_unique<MemoryTransport>();
  io.kernel = std::make_unique<FakeChildSaKernel>();
  io.poll_fds = [] { return std::vector<int>{}; };
  io.receive = [&]() -> Result<std::optional<Datagram>> {
    std::lock_guard lock(mu);
    ++calls;
    cv.notify_all();
    return std::optional<Datagram>();
  };
  RunnerOptions opts;
  opts.tick = std::chrono::milliseconds(10);
  auto r = Runner::start(std::move(io), opts, {});
  ASSERT_TRUE(r.ok()) << r.error().to_string();
  {
    std::unique_lock lock(mu);
    // Generous bound: a failure means receive() is never called at all.
    EXPECT_TRUE(cv.wait_for(lock, std::chrono::seconds(30), [&] { return calls >= 3; })) << "receive() calls: " << calls;
  }
  r->reset();  // stop and join before the counters go out of scope
}

}  // namespace
}  // namespace storcrypt::ike
