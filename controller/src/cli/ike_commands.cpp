// `storcrypt ike peer add|remove|show|list|up|down` and `storcrypt ike list|show`.
#include <CLI/CLI.hpp>
#include <iostream>

#include "storcrypt/controller/client.h"
#include "storcrypt/controller/nouns.h"

namespace storcrypt::controller {

using nlohmann::json;

namespace {

std::string joined(const json& arr, const char* sep = ",") {
  std::string out;
  if (!arr.is_array()) return out;
  for (const auto& v : arr) out += (out.empty() ? "" : sep) + plain(v);
  return out;
}

std::string or_dash(const json& v) { return v.is_null() || plain(v).empty() ? "-" : plain(v); }

void print_peer(const json& p) {
  std::cout << "name:          " << plain(p["name"]) << "\n"
            << "state:         " << plain(p["state"]) << "\n"
            << "remote:        " << plain(p["remote"]) << "\n"
            << "local:         " << (p["local"].is_null() ? std::string("any") : plain(p["local"])) << "\n"
            << "local-ts:      " << joined(p["local_ts"]) << "\n"
            << "remote-ts:     " << joined(p["remote_ts"]) << "\n"
            << "id:            " << plain(p["id"]) << "\n"
            << "remote-id:     " << (p["remote_id"].is_null() ? std::string("any the certificate names") : plain(p["remote_id"]))
            << "\n"
            << "ike-proposal:  " << plain(p["ike_proposal"]) << "\n"
            << "esp-proposal:  " << plain(p["esp_proposal"]) << "\n"
            << "start:         " << plain(p["start"]) << "\n"
            << "dpd-action:    " << plain(p["dpd_action"]) << "\n";
  if (p.contains("last_event") && !p["last_event"].is_null()) {
    const json& e = p["last_event"];
    std::cout << "last event:    " << plain(e["kind"]) << " at " << format_time(e.value("time", int64_t{0}))
              << (plain(e["reason"]).empty() ? "" : ": " + plain(e["reason"])) << "\n";
  }
}

std::string endpoint_text(const json& e) { return plain(e["address"]) + "[" + plain(e["port"]) + "]"; }

void print_sas(const json& sas) {
  if (sas.empty()) {
    std::cout << "no IKE SAs\n";
    return;
  }
  for (const auto& s : sas) {
    std::cout << plain(s["peer"]) << ": " << plain(s["state"]) << ", " << plain(s["role"]) << ", "
              << or_dash(s["suite"]) << "\n"
              << "  spi i/r:  " << plain(s["spi_i"]) << " / " << plain(s["spi_r"]) << "\n"
              << "  local:    " << endpoint_text(s["local"]) << "\n"
              << "  remote:   " << endpoint_text(s["remote"]) << "\n"
              << "  nat:      " << (s.value("nat", false) ? "yes (UDP-encapsulated ESP)" : "no") << "\n";
    for (const auto& c : s["children"]) {
      std::cout << "  child:    " << plain(c["suite"]) << ", spi in/out " << plain(c["spi_in"]) << " / "
                << plain(c["spi_out"]) << ", reqid " << plain(c["reqid"]) << "\n"
                << "            " << joined(c["local_ts"]) << " === " << joined(c["remote_ts"]) << "\n";
      if (c["counters"].is_null()) {
        std::cout << "            counters unavailable\n";
      } else {
        const json& k = c["counters"];
        std::cout << "            in " << plain(k["bytes_in"]) << " bytes " << plain(k["packets_in"])
                  << " packets, out " << plain(k["bytes_out"]) << " bytes " << plain(k["packets_out"])
                  << " packets\n";
      }
    }
  }
}

}  // namespace

void add_ike_commands(CLI::App& app, ClientContext& cc) {
  auto* noun = app.add_subcommand("ike", "IKEv2 key exchange: peers and IKE SAs");
  noun->require_subcommand(1);

  auto* peer = noun->add_subcommand("peer", "Configure IKEv2 peers");
  peer->require_subcommand(1);

  struct AddArgs {
    std::string name, remote, local, local_ts, remote_ts, id, remote_id, ike, esp, start, dpd_action;
  };
  auto a = std::make_shared<AddArgs>();
  auto* add = peer->add_subcommand("add", "Configure a peer (our certificate: this node's endpoint certificate)");
  add->add_option("name", a->name, "Peer name (letters, digits, . _ -)")->required();
  add->add_option("--remote", a->remote, "The peer's IP address")->required();
  add->add_option("--local", a->local, "This node's address (default: any address of the peer's family)");
  add->add_option("--local-ts", a->local_ts, "Our side's prefixes, comma-separated (e.g. 198.51.100.0/24)")
      ->required();
  add->add_option("--remote-ts", a->remote_ts, "The peer's side's prefixes, comma-separated")->required();
  add->add_option("--id", a->id, "Our ID: dn (default: the certificate's subject DN), fqdn:NAME or ip:ADDR (a SAN)");
  add->add_option("--remote-id", a->remote_id,
                  "The ID the peer must use: fqdn:NAME, ip:ADDR or dn:DN (default: any its certificate names)");
  add->add_option("--ike-proposal", a->ike,
                  "IKE proposals, strongSwan syntax (default aes256-sha384-ecp384,aes256gcm16-prfsha384-ecp384)");
  add->add_option("--esp-proposal", a->esp, "ESP proposals, strongSwan syntax (default aes256gcm16-ecp384)");
  add->add_option("--start", a->start, "none (default) or start: bring the peer up when storcryptd starts");
  add->add_option("--dpd-action", a->dpd_action,
                  "none (default) or restart: bring a peer found dead up again (retried every 30 s)");
  add->callback([&cc, a] {
    json p{{"name", a->name}, {"remote", a->remote}, {"local_ts", a->local_ts}, {"remote_ts", a->remote_ts}};
    if (!a->local.empty()) p["local"] = a->local;
    if (!a->id.empty()) p["id"] = a->id;
    if (!a->remote_id.empty()) p["remote_id"] = a->remote_id;
    if (!a->ike.empty()) p["ike_proposal"] = a->ike;
    if (!a->esp.empty()) p["esp_proposal"] = a->esp;
    if (!a->start.empty()) p["start"] = a->start;
    if (!a->dpd_action.empty()) p["dpd_action"] = a->dpd_action;
    cc.run("ike.peer.add", p, [](const json& r) { print_peer(r["peer"]); });
  });

  auto name = std::make_shared<std::string>();
  auto* rm = peer->add_subcommand("remove", "Delete a peer's IKE SAs and forget the peer");
  rm->add_option("name", *name, "Peer name")->required();
  rm->callback([&cc, name] {
    cc.run("ike.peer.remove", {{"name", *name}}, [](const json& r) { std::cout << "removed " << plain(r["removed"]) << "\n"; });
  });

  auto* show = peer->add_subcommand("show", "Show a peer's configuration and state");
  show->add_option("name", *name, "Peer name")->required();
  show->callback([&cc, name] { cc.run("ike.peer.show", {{"name", *name}}, [](const json& r) { print_peer(r["peer"]); }); });

  peer->add_subcommand("list", "List peers and their state")->callback([&cc] {
    cc.run("ike.peer.list", json::object(), [](const json& r) {
      std::vector<std::vector<std::string>> rows;
      for (const auto& p : r["peers"])
        rows.push_back({plain(p["name"]), plain(p["remote"]), joined(p["local_ts"]), joined(p["remote_ts"]),
                        plain(p["start"]), plain(p["state"])});
      if (rows.empty()) {
        std::cout << "no IKE peers\n";
        return;
      }
      print_table({"NAME", "REMOTE", "LOCAL-TS", "REMOTE-TS", "START", "STATE"}, rows);
    });
  });

  auto* up = peer->add_subcommand("up", "Bring a peer up (initiate; see `storcrypt ike list`)");
  up->add_option("name", *name, "Peer name")->required();
  up->callback([&cc, name] {
    cc.run("ike.peer.up", {{"name", *name}},
           [](const json& r) { std::cout << "initiating IKE SA with " << plain(r["peer"]) << "\n"; });
  });
  auto* down = peer->add_subcommand("down", "Take a peer down (delete its IKE and CHILD SAs)");
  down->add_option("name", *name, "Peer name")->required();
  down->callback([&cc, name] {
    cc.run("ike.peer.down", {{"name", *name}},
           [](const json& r) { std::cout << "deleting IKE SAs of " << plain(r["peer"]) << "\n"; });
  });

  noun->add_subcommand("list", "IKE SAs: suite, SPIs, endpoints, NAT, CHILD_SAs with counters")->callback([&cc] {
    cc.run("ike.list", json::object(), [](const json& r) {
      if (!r.value("running", false)) std::cout << "IKE is not running (no peer configured or brought up)\n";
      print_sas(r["sas"]);
      if (r.contains("dos")) {
        const json& d = r["dos"];
        std::cout << "half-open IKE SAs: " << plain(d["half_open"]) << "; IKE_SA_INIT answered with a COOKIE: "
                  << plain(d["cookies_sent"]) << " (" << plain(d["bad_cookies"])
                  << " with a bad one); dropped: " << plain(d["blocked"]) << " per-address limit, "
                  << plain(d["over_limit"]) << " overall limit\n";
      }
    });
  });
  auto* sa_show = noun->add_subcommand("show", "A peer's IKE SAs");
  sa_show->add_option("peer", *name, "Peer name")->required();
  sa_show->callback([&cc, name] {
    cc.run("ike.show", {{"peer", *name}}, [](const json& r) {
      std::cout << "peer " << plain(r["peer"]["name"]) << " (" << plain(r["peer"]["state"]) << ")\n";
      print_sas(r["sas"]);
    });
  });
}

}  // namespace storcrypt::controller
