// A daemon's worth of controller state for unit tests: SQLite state and event
// log in a directory, every noun registered through the dispatcher, and the
// ipsec kernel seam bound to FakeXfrm. A "restart" is a new Node on the same
// directory.
#pragma once

#include <gtest/gtest.h>

#include <functional>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "storcrypt/controller/db.h"
#include "storcrypt/controller/dispatcher.h"
#include "storcrypt/controller/events.h"
#include "storcrypt/controller/ipsec.h"
#include "storcrypt/controller/journal_store.h"
#include "storcrypt/controller/nouns.h"
#include "storcrypt/testing/fake_xfrm.h"

namespace storcrypt::controller::test {

namespace nl = storcrypt::netlink;
using nlohmann::json;

struct Node {
  /// `before_register` runs on the Context before the nouns are registered
  /// (e.g. to put more kernel seams in it).
  explicit Node(const std::string& dir, bool run_start_hooks = false,
                const std::function<void(Context&)>& before_register = {}) {
    auto d = Db::open(dir + "/state.db");
    EXPECT_TRUE(d.ok()) << d.error().to_string();
    db = std::move(d).value();
    auto j = open_db_journal(*db);
    EXPECT_TRUE(j.ok()) << j.error().to_string();
    journal = std::move(j).value();
    auto e = EventLog::create(*db);
    EXPECT_TRUE(e.ok());
    events = std::move(e).value();
    ctx.config.state_directory = dir;
    ctx.db = db.get();
    ctx.journal = journal.get();
    ctx.events = events.get();
    auto kernel = std::make_shared<IpsecKernel>();
    kernel->open = [this](const nl::Ownership& own) -> Result<std::unique_ptr<nl::XfrmApi>> {
      auto f = kernel_of ? std::make_unique<nl::FakeXfrm>(*kernel_of, own) : std::make_unique<nl::FakeXfrm>(own);
      fake = f.get();
      for (auto& p : foreign) f->add_foreign_policy(p);
      return std::unique_ptr<nl::XfrmApi>(std::move(f));
    };
    kernel->local_addresses = [this]() -> Result<std::vector<IpAddress>> {
      std::lock_guard lock(addresses_mu);
      return local_addresses;
    };
    ctx.set_service(kernel);
    if (before_register) before_register(ctx);
    Status s = register_all_methods(disp, ctx);
    EXPECT_TRUE(s.ok()) << s.error().to_string();
    if (run_start_hooks)
      for (auto& h : ctx.start_hooks) h();
  }
  Result<json> call(const std::string& m, const json& p = json::object()) { return disp.call(m, p); }
  json ok(const std::string& m, const json& p = json::object()) {
    auto r = call(m, p);
    EXPECT_TRUE(r.ok()) << m << ": " << r.error().to_string();
    return r.ok() ? *r : json();
  }

  std::unique_ptr<Db> db;
  std::unique_ptr<journal::Journal> journal;
  std::unique_ptr<EventLog> events;
  Context ctx;
  Dispatcher disp;
  nl::FakeXfrm* fake = nullptr;
  /// When set before the kernel is first opened: this node's fake kernel is
  /// that one's (a restart after a crash finds what the crashed node left).
  const nl::FakeXfrm* kernel_of = nullptr;
  std::vector<nl::Policy> foreign;
  /// The node's own addresses (what LocalAddress ANY stands for in transport mode);
  /// change them with set_local_addresses() once a ticker may read them.
  std::vector<IpAddress> local_addresses = {*IpAddress::parse("192.0.2.1"), *IpAddress::parse("2001:db8::1")};
  std::mutex addresses_mu;
  void set_local_addresses(std::vector<IpAddress> a) {
    std::lock_guard lock(addresses_mu);
    local_addresses = std::move(a);
  }
};

}  // namespace storcrypt::controller::test
