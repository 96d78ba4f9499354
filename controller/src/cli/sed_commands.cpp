// `storcrypt drive list|show|lock|unlock|erase|revert` and
// `storcrypt ear enable|disable|status|rekey` (self-encrypting drives).
#include <CLI/CLI.hpp>
#include <iostream>
#include <string>

#include "storcrypt/controller/client.h"
#include "storcrypt/controller/nouns.h"

namespace storcrypt::controller {

using nlohmann::json;

namespace {

void print_warnings(const json& r) {
  if (r.contains("warnings"))
    for (const auto& w : r["warnings"]) std::cerr << "storcrypt: warning: " << plain(w) << "\n";
}

void print_drive(const json& d) {
  std::cout << "drive:          " << plain(d["device"]) << "\n"
            << "state:          " << plain(d["state"]) << "\n"
            << "opal capable:   " << (d.value("capable", false) ? "yes" : "no") << "\n";
  if (!d.value("reason", std::string()).empty()) std::cout << "reason:         " << plain(d["reason"]) << "\n";
  std::cout << "owned by us:    " << (d.value("owned", false) ? "yes" : "no") << "\n"
            << "locking:        " << (d.value("locking", false) ? "on" : "off") << "\n"
            << "locked:         " << (d.value("locked", false) ? "yes" : "no") << "\n"
            << "AK generation:  " << plain(d["ak_generation"]) << "\n";
  if (!d.value("last_error", std::string()).empty())
    std::cout << "last error:     " << plain(d["last_error"]) << "\n";
}

void print_drive_table(const json& drives) {
  std::vector<std::vector<std::string>> rows;
  for (const auto& d : drives)
    rows.push_back({plain(d["device"]), plain(d["state"]), d.value("capable", false) ? "yes" : "no",
                    d.value("owned", false) ? "yes" : "no", plain(d["ak_generation"]),
                    d.value("capable", false) ? plain(d["last_error"]) : plain(d["reason"])});
  if (rows.empty()) {
    std::cout << "no drives\n";
    return;
  }
  print_table({"DRIVE", "STATE", "OPAL", "OWNED", "AK GEN", "DETAIL"}, rows);
}

void print_report(const json& r) {
  for (const auto& d : r["drives"])
    std::cout << plain(d["device"]) << ": " << (d.value("ok", false) ? plain(d["state"]) : "failed: " + plain(d["error"]))
              << "\n";
  print_warnings(r);
}

/// EnableEncryptionAtRest / DisableEncryptionAtRest: the KMIP key provider's
/// result (with the drives' report when they were changed too), or the drives'.
// ear.migrate's result: one line per volume.
void print_migration(const json& m) {
  if (!m.contains("volumes")) return;
  std::cout << "volumes migrated to KMIP key provider " << plain(m["keyProviderID"]) << ": " << plain(m["migrated"])
            << "\n";
  for (const auto& v : m["volumes"]) {
    std::cout << "  " << plain(v["name"]) << " (" << plain(v["device"]) << "): " << plain(v["outcome"]);
    if (v.contains("provider")) std::cout << " " << plain(v["provider"]["kind"]) << "/" << plain(v["provider"]["id"]);
    std::cout << "\n";
    if (v.contains("warnings"))
      for (const auto& w : v["warnings"]) std::cout << "    warning: " << plain(w) << "\n";
  }
}

void print_ear_result(const json& r) {
  if (!r.contains("keyProviderID")) {
    print_report(r);
    return;
  }
  std::cout << "encryption at rest: " << (r.value("enabled", false) ? "enabled" : "disabled") << ", KMIP key provider "
            << plain(r["keyProviderID"]) << "\n";
  if (r.contains("drives") && r["drives"].is_object()) print_report(r["drives"]);
  if (r.contains("migration")) print_migration(r["migration"]);
  print_warnings(r);
}

}  // namespace

void add_drive_commands(CLI::App& app, ClientContext& cc) {
  auto* noun = app.add_subcommand("drive", "Self-encrypting drives (TCG Opal through the kernel's sed-opal)");
  noun->require_subcommand(1);
  struct Opts {
    std::string drive;
    std::vector<std::string> drives;
    bool yes = false, psid = false;
  };
  auto o = std::make_shared<Opts>();

  auto* list = noun->add_subcommand("list", "List drives: Opal-capable or not (and why), state, AK generation");
  list->callback([&cc] { cc.run("drive.list", json::object(), [](const json& r) { print_drive_table(r["drives"]); }); });

  auto verb = [&](const char* name, const char* help, const char* method) {
    auto* c = noun->add_subcommand(name, help);
    c->add_option("drive", o->drive, "Block device, e.g. /dev/nvme0n1")->required();
    c->callback([&cc, o, method] { cc.run(method, {{"drive", o->drive}}, print_drive); });
  };
  verb("show", "Show one drive", "drive.show");
  verb("lock", "Lock an enrolled drive (data unreadable until unlocked)", "drive.lock");
  verb("unlock", "Unlock an enrolled drive with its key and save it for resume", "drive.unlock");

  auto* erase = noun->add_subcommand("erase", "Secure erase: new media key, the drives' data is gone (SecureEraseDrives)");
  erase->add_option("drive", o->drives, "Block devices")->required();
  erase->add_flag("--yes", o->yes, "Confirm: the data on the drives becomes unrecoverable");
  erase->callback([&cc, o] {
    if (!o->yes) {
      cc.fail(Error(ErrorCode::kInvalidInput, "drive erase destroys the data of the named drives",
                    "add --yes to confirm"));
      return;
    }
    cc.run("SecureEraseDrives", {{"drives", o->drives}, {"confirm", true}}, print_report);
  });

  auto* revert = noun->add_subcommand(
      "revert", "Factory-reset a drive (data destroyed): our SID, or --psid (read from stdin) for any drive");
  revert->add_option("drive", o->drive, "Block device")->required();
  revert->add_flag("--psid", o->psid, "Use the PSID from the drive's label, read from standard input");
  revert->add_flag("--yes", o->yes, "Confirm: the drive's data becomes unrecoverable");
  revert->callback([&cc, o] {
    if (!o->yes) {
      cc.fail(Error(ErrorCode::kInvalidInput, "drive revert destroys the data of " + o->drive, "add --yes to confirm"));
      return;
    }
    json p = {{"drive", o->drive}, {"confirm", true}};
    if (o->psid) {
      std::string line;
      std::getline(std::cin, line);
      while (!line.empty() && (line.back() == '\r' || line.back() == ' ')) line.pop_back();
      if (line.empty()) {
        cc.fail(Error(ErrorCode::kInvalidInput, "no PSID on standard input",
                      "echo the PSID printed on the drive's label into the command"));
        return;
      }
      p["psid"] = line;
    }
    cc.run("drive.revert", p, print_drive);
  });
}

void add_ear_commands(CLI::App& app, ClientContext& cc) {
  auto* noun = app.add_subcommand("ear", "Encryption at rest: the volumes' KMIP key provider, self-encrypting drives");
  noun->require_subcommand(1);
  auto provider = std::make_shared<std::string>();
  auto* enable = noun->add_subcommand(
      "enable",
      "With --key-provider ID of a KMIP key provider: new volumes keep their keys on it; else set the access key on "
      "every self-encrypting drive (EnableEncryptionAtRest)");
  enable->add_option("--key-provider", *provider,
                     "KMIP key provider id (storcrypt keyprovider list); default: the drives, with the key media");
  enable->callback([&cc, provider] {
    json p = json::object();
    if (!provider->empty()) p["keyProviderID"] = *provider;
    cc.run("EnableEncryptionAtRest", p, print_ear_result);
  });
  auto* disable = noun->add_subcommand(
      "disable",
      "Stop keying new volumes from the KMIP key provider (refused while volumes use it); turn locking off on every "
      "drive, data intact (DisableEncryptionAtRest)");
  disable->callback([&cc] { cc.run("DisableEncryptionAtRest", json::object(), print_ear_result); });
  auto* status = noun->add_subcommand("status", "Enabled or not, key provider, AK generation, drives");
  status->callback([&cc] {
    cc.run("ear.status", json::object(), [](const json& r) {
      if (r.contains("volumes")) {
        const json& v = r["volumes"];
        std::cout << "volumes' key source:         ";
        if (v.value("enabled", false))
          std::cout << "KMIP key provider " << plain(v["provider"]["id"]) << " (" << plain(v["provider"]["name"])
                    << "), " << plain(v["volumesKeyed"]) << " volume(s) keyed from it\n";
        else
          std::cout << "key media\n";
      }
      std::cout << "encryption at rest (drives): " << (r.value("enabled", false) ? "enabled" : "disabled") << "\n"
                << "key provider:                " << plain(r["provider"]["kind"]) << "/" << plain(r["provider"]["id"])
                << "\n"
                << "access key generation:       " << plain(r["ak_generation"]) << "\n";
      print_drive_table(r["drives"]);
    });
  });
  auto migrate_provider = std::make_shared<std::string>();
  auto* migrate = noun->add_subcommand(
      "migrate",
      "Move every key-media volume's access key to the active KMIP key provider, online and journalled (ear.migrate; "
      "ear enable --key-provider starts it too); never back to the key media");
  migrate->add_option("--key-provider", *migrate_provider,
                      "the active KMIP key provider's id (default: the active one; 'local' is refused)");
  migrate->callback([&cc, migrate_provider] {
    json p = json::object();
    if (!migrate_provider->empty()) p["key_provider"] = *migrate_provider;
    cc.run("ear.migrate", p, print_migration);
  });
  auto* rekey = noun->add_subcommand("rekey", "Rotate the drives' access key");
  rekey->callback([&cc] {
    cc.run("ear.rekey", json::object(), [](const json& r) {
      print_report(r);
      std::cout << "access key generation: " << plain(r["ak_generation"]) << "\n";
    });
  });
}

}  // namespace storcrypt::controller
