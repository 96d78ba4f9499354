// `storcrypt system status|doctor`.
#include <CLI/CLI.hpp>
#include <iostream>

#include "storcrypt/controller/client.h"
#include "storcrypt/controller/nouns.h"

namespace storcrypt::controller {

using nlohmann::json;

void add_system_commands(CLI::App& app, ClientContext& cc) {
  auto* noun = app.add_subcommand("system", "The storcrypt daemon and this node");
  noun->require_subcommand(1);

  noun->add_subcommand("status", "Show daemon version, uptime, state and unfixed events")->callback([&cc] {
    cc.run("system.status", json::object(), [](const json& r) {
      std::cout << "version:          " << plain(r["version"]) << "\n"
                << "pid:              " << plain(r["pid"]) << "\n"
                << "started:          " << format_time(r.value("started", int64_t{0})) << " (up "
                << r.value("uptime_seconds", int64_t{0}) << " s)\n"
                << "state directory:  " << plain(r["state_directory"]) << "\n"
                << "socket:           " << plain(r["socket_path"]) << "\n"
                << "database:         " << plain(r["database"]["path"]) << " ("
                << r["database"].value("size_bytes", int64_t{0}) << " bytes)\n";
      std::cout << "schema:          ";
      for (const auto& [k, v] : r["database"]["schema"].items()) std::cout << " " << k << "=" << plain(v);
      std::cout << "\nunfixed events:  ";
      for (const auto& s : {"critical", "error", "warning", "info"}) {
        std::cout << " " << s << "=" << r["events"]["unfixed"].value(s, int64_t{0});
      }
      std::cout << "\nunfinished ops:   " << r["journal"]["unfinished"].size() << "\n";
      for (const auto& op : r["journal"]["unfinished"]) {
        std::cout << "  #" << plain(op["id"]) << " " << plain(op["kind"]) << " steps:";
        for (const auto& s : op["steps"]) std::cout << " " << plain(s);
        std::cout << "\n";
      }
    });
  });

  noun->add_subcommand("doctor", "Check kernel support, versions, state health and certificate expiry")
      ->callback([&cc] {
        cc.run("system.doctor", json::object(), [](const json& r) {
          std::cout << "overall: " << plain(r["status"]) << "\n\nversions:\n";
          for (const auto& [k, v] : r["versions"].items()) std::cout << "  " << k << ": " << plain(v) << "\n";
          std::cout << "\n";
          std::vector<std::vector<std::string>> rows;
          for (const auto& c : r["checks"]) {
            rows.push_back({plain(c["area"]), plain(c["check"]), plain(c["status"]), plain(c["detail"])});
          }
          print_table({"AREA", "CHECK", "STATUS", "DETAIL"}, rows);
          bool header = false;
          for (const auto& c : r["checks"]) {
            if (!c.contains("fix")) continue;
            if (!header) std::cout << "\nto fix:\n";
            header = true;
            std::cout << "  " << plain(c["check"]) << ": " << plain(c["fix"]) << "\n";
          }
        });
      });
}

}  // namespace storcrypt::controller
