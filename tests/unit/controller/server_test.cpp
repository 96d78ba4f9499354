// The request loop on a real Unix socket (no root needed): per-request
// timeout, request size limit, concurrent requests on one worker pool.
#include "storcrypt/controller/server.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <future>
#include <thread>

#include "storcrypt/controller/client.h"
#include "temp_dir.h"

namespace storcrypt::controller {
namespace {

using nlohmann::json;

class ServerTest : public ::testing::Test {
 protected:
  void start(Config c) {
    c.socket_path = dir.file("s.sock");
    c.socket_group.clear();  // the test user may not be in group storcrypt
    server = std::make_unique<Server>(io, d, c);
    Status st = server->listen();
    ASSERT_TRUE(st.ok()) << st.error().to_string();
    loop = std::thread([this] { io.run(); });
  }
  void TearDown() override {
    if (server) asio::post(io, [this] { server->stop(); });
    io.stop();
    if (loop.joinable()) loop.join();
    server.reset();
  }
  test::TempDir dir;
  Dispatcher d;
  asio::io_context io;
  std::unique_ptr<Server> server;
  std::thread loop;
};

TEST_F(ServerTest, SlowRequestIsAnsweredWithTimeoutError) {
  std::promise<void> release;
  std::shared_future<void> released = release.get_future().share();
  ASSERT_TRUE(d.add({"demo.block",
                     "blocks until the test releases it",
                     {},
                     false,
                     [released](const Params&) -> Result<json> {
                       released.wait();
                       return json{{"late", true}};
                     }})
                  .ok());
  Config c;
  c.request_timeout_seconds = 1;
  start(c);
  auto r = rpc_call(dir.file("s.sock"), "demo.block", json::object(), 30);
  release.set_value();
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().name(), "xRequestTimeout") << r.error().to_string();
  EXPECT_EQ(r.error().code(), ErrorCode::kUnavailable);
  EXPECT_NE(r.error().message().find("outcome is unknown"), std::string::npos);
}

TEST_F(ServerTest, OversizedRequestIsRefusedAndServerKeepsServing) {
  ASSERT_TRUE(d.add({"demo.echo",
                     "echo",
                     {{"text", ParamType::kString, true, ""}},
                     false,
                     [](const Params& p) -> Result<json> {
                       return json{{"text", p.str("text")}};
                     }})
                  .ok());
  Config c;
  c.max_request_bytes = 1024;
  start(c);
  auto big = rpc_call(dir.file("s.sock"), "demo.echo", {{"text", std::string(4000, 'x')}}, 30);
  ASSERT_FALSE(big.ok());
  EXPECT_EQ(big.error().name(), "xRequestTooLarge");
  EXPECT_EQ(big.error().code(), ErrorCode::kProtocol);
  auto small = rpc_call(dir.file("s.sock"), "demo.echo", {{"text", "hi"}}, 30);
  ASSERT_TRUE(small.ok()) << small.error().to_string();
  EXPECT_EQ((*small)["text"], "hi");
}

TEST_F(ServerTest, RequestsRunConcurrentlyOnWorkers) {
  // Two requests that each wait for the other: they complete only if the
  // pool runs them at the same time.
  auto arrived = std::make_shared<std::atomic<int>>(0);
  ASSERT_TRUE(d.add({"demo.meet",
                     "waits for a second caller",
                     {},
                     false,
                     [arrived](const Params&) -> Result<json> {
                       ++*arrived;
                       while (arrived->load() < 2) std::this_thread::yield();
                       return json{{"met", true}};
                     }})
                  .ok());
  Config c;
  c.worker_threads = 2;
  start(c);
  auto a =
      std::async(std::launch::async, [&] { return rpc_call(dir.file("s.sock"), "demo.meet", json::object(), 60); });
  auto b = rpc_call(dir.file("s.sock"), "demo.meet", json::object(), 60);
  ASSERT_TRUE(b.ok()) << b.error().to_string();
  ASSERT_TRUE(a.get().ok());
}

TEST_F(ServerTest, SecondServerOnSameSocketRefusedAndFirstUntouched) {
  start(Config{});
  Config c;
  c.socket_path = dir.file("s.sock");
  c.socket_group.clear();
  asio::io_context io2;
  Server second(io2, d, c);
  Status st = second.listen();
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.error().name(), "xDaemonAlreadyRunning");
  // Destroying the refused server must not remove the first one's socket.
  auto r = rpc_call(dir.file("s.sock"), "rpc.discover", json::object(), 30);
  EXPECT_TRUE(r.ok());
}

TEST(ClientCall, NoDaemonIsUnavailable) {
  test::TempDir dir;
  auto r = rpc_call(dir.file("none.sock"), "system.status", json::object(), 5);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code(), ErrorCode::kUnavailable);
  EXPECT_EQ(category_exit_code(r.error().code()), 5);
}

}  // namespace
}  // namespace storcrypt::controller
