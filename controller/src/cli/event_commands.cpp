// `storcrypt event list|show|fix|test`.
#include <CLI/CLI.hpp>
#include <iostream>

#include "storcrypt/controller/client.h"
#include "storcrypt/controller/nouns.h"

namespace storcrypt::controller {

using nlohmann::json;

namespace {

void print_event(const json& e) {
  std::cout << "id:        " << plain(e["id"]) << "\n"
            << "code:      " << plain(e["code"]) << " (" << plain(e["title"]) << ")\n"
            << "severity:  " << plain(e["severity"]) << "\n"
            << "time:      " << format_time(e.value("time", int64_t{0})) << "\n"
            << "fixed:     "
            << (e.value("fixed", false) ? "yes (" + format_time(e.value("fixed_time", int64_t{0})) + ")" : "no") << "\n"
            << "message:   " << plain(e["message"]) << "\n";
  if (e.contains("sense") && e["sense"].is_object() && !e["sense"].empty()) {
    std::cout << "sense data:\n";
    for (const auto& [k, v] : e["sense"].items()) std::cout << "  " << k << ": " << plain(v) << "\n";
  }
  const json& fp = e["fix_procedure"];
  if (fp.is_object()) {
    if (!fp["probable_causes"].empty()) {
      std::cout << "probable causes:\n";
      int i = 1;
      for (const auto& c : fp["probable_causes"]) std::cout << "  " << i++ << ". " << plain(c) << "\n";
    }
    if (!fp["user_actions"].empty()) {
      std::cout << "user actions:\n";
      int i = 1;
      for (const auto& a : fp["user_actions"]) std::cout << "  " << i++ << ". " << plain(a) << "\n";
    }
  }
}

}  // namespace

void add_event_commands(CLI::App& app, ClientContext& cc) {
  auto* noun = app.add_subcommand("event", "Events: faults and notable changes, with fix procedures");
  noun->require_subcommand(1);

  struct ListOpts {
    bool unfixed = false;
    std::string severity;
    int code = -1;
    int limit = 200;
  };
  auto lo = std::make_shared<ListOpts>();
  auto* list = noun->add_subcommand("list", "List events, newest first");
  list->add_flag("--unfixed", lo->unfixed, "Only events not yet marked fixed");
  list->add_option("--severity", lo->severity, "Minimum severity")
      ->check(CLI::IsMember({"info", "warning", "error", "critical"}));
  list->add_option("--code", lo->code, "Only events with this code")->check(CLI::Range(0, 99999));
  list->add_option("--limit", lo->limit, "At most this many events")->check(CLI::Range(1, 10000));
  list->callback([&cc, lo] {
    json p = json::object();
    if (lo->unfixed) p["unfixed"] = true;
    if (!lo->severity.empty()) p["severity"] = lo->severity;
    if (lo->code >= 0) p["code"] = lo->code;
    p["limit"] = lo->limit;
    cc.run("event.list", p, [](const json& r) {
      std::vector<std::vector<std::string>> rows;
      for (const auto& e : r["events"]) {
        rows.push_back({plain(e["id"]), plain(e["code"]), plain(e["severity"]),
                        format_time(e.value("time", int64_t{0})), e.value("fixed", false) ? "yes" : "no",
                        plain(e["message"])});
      }
      if (rows.empty()) {
        std::cout << "no events\n";
        return;
      }
      print_table({"ID", "CODE", "SEVERITY", "TIME", "FIXED", "MESSAGE"}, rows);
    });
  });

  auto id = std::make_shared<int64_t>(0);
  auto* show = noun->add_subcommand("show", "Show an event with its sense data and fix procedure");
  show->add_option("id", *id, "Event id (from `storcrypt event list`)")->required();
  show->callback([&cc, id] { cc.run("event.show", {{"id", *id}}, print_event); });

  auto* fix = noun->add_subcommand("fix", "Mark an event fixed");
  fix->add_option("id", *id, "Event id (from `storcrypt event list`)")->required();
  fix->callback([&cc, id] {
    cc.run("event.fix", {{"id", *id}},
           [](const json& e) { std::cout << "event " << plain(e["id"]) << " marked fixed\n"; });
  });

  auto msg = std::make_shared<std::string>();
  auto* test = noun->add_subcommand("test", "Raise a test event (code 1099)");
  test->add_option("--message", *msg, "Message of the test event");
  test->callback([&cc, msg] {
    json p = json::object();
    if (!msg->empty()) p["message"] = *msg;
    cc.run("event.test", p, [](const json& r) { std::cout << "raised test event " << plain(r["id"]) << "\n"; });
  });
}

}  // namespace storcrypt::controller
