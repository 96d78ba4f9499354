// Fuzz the API's request path: JSON-RPC envelope parsing, parameter validation
// against every registered method's spec, and the handlers behind them (on an
// in-memory state database). Invariants: never crash, always answer a
// non-notification with exactly one well-formed JSON-RPC response.
#include <stdlib.h>

#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <string_view>

#include "storcrypt/controller/dispatcher.h"
#include "storcrypt/controller/nouns.h"
#include "storcrypt/controller/ipsec.h"
#include "storcrypt/controller/journal_store.h"
#include "storcrypt/controller/rpc.h"
#include "storcrypt/testing/fake_xfrm.h"

namespace {

struct World {
  std::unique_ptr<storcrypt::controller::Db> db;
  std::unique_ptr<storcrypt::journal::Journal> journal;
  std::unique_ptr<storcrypt::controller::EventLog> events;
  storcrypt::controller::Context ctx;
  storcrypt::controller::Dispatcher dispatcher;

  World() {
    using namespace storcrypt::controller;
    db = std::move(Db::open(":memory:").value());
    journal = std::move(open_db_journal(*db).value());
    events = std::move(EventLog::create(*db).value());
    std::string tmpl = (std::filesystem::temp_directory_path() / "storcrypt-fuzz-XXXXXX").string();
    if (::mkdtemp(tmpl.data()) == nullptr) std::abort();
    ctx.config.state_directory = tmpl;
    ctx.db = db.get();
    ctx.journal = journal.get();
    ctx.events = events.get();
    ctx.version = "fuzz";
    // The ipsec nouns must never touch the fuzzing host's kernel.
    auto kernel = std::make_shared<IpsecKernel>();
    kernel->open = [](const storcrypt::netlink::Ownership& own)
        -> storcrypt::Result<std::unique_ptr<storcrypt::netlink::XfrmApi>> {
      return std::unique_ptr<storcrypt::netlink::XfrmApi>(std::make_unique<storcrypt::netlink::FakeXfrm>(own));
    };
    ctx.set_service(kernel);
    if (!register_all_methods(dispatcher, ctx).ok()) std::abort();
  }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static World* world = new World();
  std::string_view in(reinterpret_cast<const char*>(data), size);
  nlohmann::json id;
  auto req = storcrypt::controller::rpc::parse_request(in, &id);
  // RSA key generation takes seconds; the parameter validation in front of it
  // is the same as for EC keys, which are cheap.
  if (req.ok() && req->params.contains("key_type") && req->params["key_type"].is_string() &&
      req->params["key_type"].get<std::string>().find("rsa") != std::string::npos) {
    return 0;
  }
  std::string out = world->dispatcher.handle_text(in, storcrypt::controller::PeerInfo{0, 0, 1});
  if (req.ok() && req->notification) {
    if (!out.empty()) std::abort();
    return 0;
  }
  auto resp = nlohmann::json::parse(out, nullptr, false);
  if (resp.is_discarded() || !resp.is_object() || resp.value("jsonrpc", "") != "2.0") std::abort();
  if (resp.contains("result") == resp.contains("error")) std::abort();
  if (!req.ok() && !resp.contains("error")) std::abort();
  if (resp.contains("error")) {
    const auto& e = resp["error"];
    if (!e["code"].is_number_integer() || !e["message"].is_string() || !e["data"]["name"].is_string()) std::abort();
  }
  return 0;
}
