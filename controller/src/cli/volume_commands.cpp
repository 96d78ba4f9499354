// `storcrypt volume create|open|close|list|show|rekey|erase|adopt|resume` and
// `storcrypt keymedia list|status|init`.
#include <CLI/CLI.hpp>
#include <iostream>

#include "storcrypt/controller/client.h"
#include "storcrypt/controller/nouns.h"

namespace storcrypt::controller {

using nlohmann::json;

namespace {

void print_warnings(const json& r) {
  if (r.contains("warnings"))
    for (const auto& w : r["warnings"]) std::cerr << "storcrypt: warning: " << plain(w) << "\n";
}

void print_volume(const json& v) {
  std::cout << "name:        " << plain(v["name"]) << "\n"
            << "device:      " << plain(v["device"]) << "\n"
            << "uuid:        " << plain(v["uuid"]) << "\n"
            << "state:       " << plain(v["state"]) << "\n"
            << "cipher:      " << plain(v["cipher"]) << " (" << plain(v["key_bits"]) << "-bit key, "
            << plain(v["sector_size"]) << "-byte sectors)\n"
            << "provider:    " << plain(v["provider"]["kind"]) << "/" << plain(v["provider"]["id"]) << "\n"
            << "key id:      " << plain(v["key_id"]) << "\n"
            << "generation:  " << plain(v["generation"]) << " (keyslot " << plain(v["keyslot"]) << ")\n";
  if (v.value("rekey_in_progress", false)) std::cout << "rekey:       interrupted, run 'storcrypt volume resume'\n";
  print_warnings(v);
}

}  // namespace

void add_volume_commands(CLI::App& app, ClientContext& cc) {
  auto* noun = app.add_subcommand("volume", "Encrypted volumes (LUKS2, keys on key media or KMIP key servers)");
  noun->require_subcommand(1);

  struct Opts {
    std::string device, name, key_id, volume, key_provider;
    bool unencrypted = false, yes = false, force = false;
  };
  auto o = std::make_shared<Opts>();

  auto* create = noun->add_subcommand("create", "Create an encrypted volume on a block device");
  create->add_option("device", o->device, "Block device, e.g. /dev/sdb")->required();
  create->add_option("name", o->name, "Volume name (/dev/mapper/<name>)")->required();
  create->add_option("--key-id", o->key_id, "Key id (default: generated)");
  create->add_option("--key-provider", o->key_provider,
                     "Key provider: a KMIP key provider id, or 'local' for the key media (default: the active "
                     "provider of EnableEncryptionAtRest, else the key media)");
  create->add_flag("--unencrypted", o->unencrypted, "Ask for an unencrypted volume (refused when always-on)");
  create->add_flag("--force", o->force,
                   "Overwrite a filesystem, partition table or RAID/LVM/LUKS signature (never a device in use)");
  create->callback([&cc, o] {
    json p = {{"device", o->device}, {"name", o->name}};
    if (!o->key_id.empty()) p["key_id"] = o->key_id;
    if (!o->key_provider.empty()) p["key_provider"] = o->key_provider;
    if (o->unencrypted) p["encrypted"] = false;
    if (o->force) p["force"] = true;
    cc.run("volume.create", p, print_volume);
  });

  auto verb = [&](const char* name, const char* help, const char* method, bool print_vol) {
    auto* c = noun->add_subcommand(name, help);
    c->add_option("volume", o->volume, "Volume name or device path")->required();
    c->callback([&cc, o, method, print_vol] {
      cc.run(method, {{"volume", o->volume}}, [print_vol](const json& r) {
        if (print_vol) {
          print_volume(r);
        } else {
          std::cout << plain(r["name"]) << ": " << plain(r["state"]) << "\n";
        }
      });
    });
  };
  verb("open", "Open a volume with its key from the key media", "volume.open", true);
  verb("close", "Close an open volume", "volume.close", false);
  verb("show", "Show a volume", "volume.show", true);
  verb("rekey", "Replace the volume's access key (may stay open)", "volume.rekey", true);

  auto* list = noun->add_subcommand("list", "List volumes");
  list->callback([&cc] {
    cc.run("volume.list", json::object(), [](const json& r) {
      std::vector<std::vector<std::string>> rows;
      for (const auto& v : r["volumes"])
        rows.push_back({plain(v["name"]), plain(v["device"]), plain(v["state"]), plain(v.value("key_id", json(""))),
                        plain(v.value("generation", json("")))});
      if (rows.empty()) {
        std::cout << "no volumes\n";
        return;
      }
      print_table({"NAME", "DEVICE", "STATE", "KEY ID", "GENERATION"}, rows);
    });
  });

  auto* erase = noun->add_subcommand("erase", "Crypto-erase a closed volume (data becomes unrecoverable)");
  erase->add_option("volume", o->volume, "Volume name or device path")->required();
  erase->add_flag("--yes", o->yes, "Confirm: destroy every key of the volume");
  erase->callback([&cc, o] {
    if (!o->yes) {
      cc.fail(
          Error(ErrorCode::kInvalidInput, "volume erase destroys every key of " + o->volume, "add --yes to confirm"));
      return;
    }
    cc.run("volume.erase", {{"volume", o->volume}, {"confirm", true}}, [](const json& r) {
      std::cout << plain(r["device"]) << ": crypto-erased\n";
      print_warnings(r);
    });
  });

  auto* adopt = noun->add_subcommand("adopt", "Register a storcrypt volume from its own LUKS2 token (lost database)");
  adopt->add_option("device", o->device, "Block device holding the volume")->required();
  adopt->callback([&cc, o] {
    cc.run("volume.adopt", {{"device", o->device}}, [](const json& r) {
      if (!r.value("adopted", false)) std::cout << "already registered on this node\n";
      print_volume(r);
    });
  });

  auto* resume = noun->add_subcommand("resume", "Finish or roll back interrupted create/rekey/erase/migrate operations");
  resume->callback([&cc] {
    cc.run("volume.resume", json::object(), [](const json& r) {
      if (r["operations"].empty()) std::cout << "nothing to resume\n";
      for (const auto& i : r["operations"])
        std::cout << plain(i["op"]) << " " << plain(i["device"]) << ": " << plain(i["outcome"]) << "\n";
      print_warnings(r);
    });
  });
}

void add_keymedia_commands(CLI::App& app, ClientContext& cc) {
  auto* noun = app.add_subcommand("keymedia", "Local key media holding volume access keys");
  noun->require_subcommand(1);
  auto* list = noun->add_subcommand("list", "List key media and the key files on them");
  list->callback([&cc] {
    cc.run("keymedia.list", json::object(), [](const json& r) {
      std::vector<std::vector<std::string>> rows;
      for (const auto& m : r["media"]) {
        if (m["files"].empty())
          rows.push_back({plain(m["dir"]), m.value("present", false) ? "present" : "absent", "", ""});
        for (const auto& f : m["files"])
          rows.push_back({plain(m["dir"]), "present", plain(f["file"]), plain(f["status"])});
      }
      print_table({"MEDIUM", "STATE", "KEY FILE", "STATUS"}, rows);
    });
  });
  auto* status = noun->add_subcommand("status", "Valid and bad copies per key");
  status->callback([&cc] {
    cc.run("keymedia.status", json::object(), [](const json& r) {
      std::cout << "media present: " << plain(r["media_present"]) << " of " << plain(r["media_configured"])
                << " (desired copies " << plain(r["desired_copies"]) << ")\n";
      std::vector<std::vector<std::string>> rows;
      for (const auto& k : r["keys"]) {
        std::string bad;
        for (const auto& b : k["bad_copies"]) bad += (bad.empty() ? "" : "; ") + plain(b);
        rows.push_back({plain(k["key_id"]), plain(k["generation"]), plain(k["valid_copies"]), bad});
      }
      if (!rows.empty()) print_table({"KEY ID", "GENERATION", "VALID COPIES", "BAD COPIES"}, rows);
    });
  });
  auto dir = std::make_shared<std::string>();
  auto* init = noun->add_subcommand("init", "Copy every key onto a (new) configured medium");
  init->add_option("dir", *dir, "Mount point of the medium")->required();
  init->callback([&cc, dir] {
    cc.run("keymedia.init", {{"dir", *dir}}, [](const json& r) {
      std::cout << plain(r["dir"]) << ": " << plain(r["copies_written"]) << " key(s) written\n";
    });
  });
}

}  // namespace storcrypt::controller
