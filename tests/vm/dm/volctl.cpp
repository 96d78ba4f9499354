// volctl: a small driver over storcrypt_dm + storcrypt_keys for the kernel-VM
// scenarios (tests/vm/dm/*.sh) and the benchmarks. Not the product CLI.
//
//   volctl --media DIR [--media DIR...] --system-id ID --journal FILE
//          [--backup-dir DIR] [--copies N] [--no-workqueue]
//          create DEV NAME [--key-id K] | open DEV [NAME] | close NAME | show DEV
//          | list DEV... | rekey DEV | resume | erase DEV | media-status
//
// The journal is the one journal on a file (journal::FileStore). Crash tests
// use its pause hook: STORCRYPT_PAUSE_AT=volume.rekey:<point> (see
// dm::rekey_crash_points(); keymedia:medium-written pauses after each key
// medium written) and STORCRYPT_PAUSE_FILE, then kill -9 the process.
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <iostream>

#include "storcrypt/dm/volume_manager.h"
#include "storcrypt/keys/key_media.h"

using namespace storcrypt;

namespace {

int fail(const Error& e) {
  std::cerr << "error: " << e.to_string() << "\n";
  return category_exit_code(e.code());
}

void warn(const dm::OpReport& r) {
  for (auto& w : r.warnings) std::cerr << "warning: " << w << "\n";
}

void print(const dm::VolumeInfo& v) {
  std::cout << "device=" << v.device << "\nuuid=" << v.uuid << "\nname=" << v.name << "\nstate=" << v.state
            << "\ncipher=" << v.cipher << "\nkey_bits=" << v.key_bits << "\nsector_size=" << v.sector_size
            << "\nprovider=" << v.provider_kind << "/" << v.provider_id << "\nkey_id=" << v.key_id
            << "\ngeneration=" << v.generation << "\nkeyslot=" << v.keyslot << "\nkeyslots=";
  for (std::size_t i = 0; i < v.active_keyslots.size(); ++i) std::cout << (i ? "," : "") << v.active_keyslots[i];
  std::cout << "\nrekey_in_progress=" << (v.rekey_in_progress ? "yes" : "no") << "\n";
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"storcrypt dm test driver"};
  std::vector<std::string> media;
  std::string system_id, journal_path, backup_dir;
  std::size_t copies = 4;
  bool no_wq = false;
  app.add_option("--media", media, "key medium directory (repeatable)")->required();
  app.add_option("--system-id", system_id, "this system's id")->required();
  app.add_option("--journal", journal_path, "journal file")->required();
  app.add_option("--backup-dir", backup_dir, "header backup directory");
  app.add_option("--copies", copies, "desired key copies");
  app.add_flag("--no-workqueue", no_wq, "open with no_read_workqueue + no_write_workqueue");
  app.require_subcommand(1);

  std::string dev, name, key_id;
  std::vector<std::string> devs;
  auto* c_create = app.add_subcommand("create", "create an encrypted volume");
  c_create->add_option("device", dev)->required();
  c_create->add_option("name", name)->required();
  c_create->add_option("--key-id", key_id);
  auto* c_open = app.add_subcommand("open", "open a volume");
  c_open->add_option("device", dev)->required();
  c_open->add_option("name", name);
  auto* c_close = app.add_subcommand("close", "close a volume");
  c_close->add_option("name", name)->required();
  auto* c_show = app.add_subcommand("show", "show a volume");
  c_show->add_option("device", dev)->required();
  auto* c_list = app.add_subcommand("list", "list volumes among devices");
  c_list->add_option("devices", devs)->required();
  auto* c_rekey = app.add_subcommand("rekey", "rekey a volume");
  c_rekey->add_option("device", dev)->required();
  auto* c_resume = app.add_subcommand("resume", "finish or roll back interrupted operations");
  auto* c_erase = app.add_subcommand("erase", "crypto-erase a volume");
  c_erase->add_option("device", dev)->required();
  auto* c_media = app.add_subcommand("media-status", "list key media and key files");
  CLI11_PARSE(app, argc, argv);

  keys::KeyMediaConfig kc;
  for (auto& m : media) kc.media_dirs.emplace_back(m);
  kc.system_id = system_id;
  kc.desired_copies = copies;
  kc.after_medium_write = [](const std::filesystem::path&) {
    journal::pause_if_requested("keymedia", "medium-written");
    return false;
  };
  auto prov = keys::KeyMediaProvider::create(kc);
  if (!prov.ok()) return fail(prov.error());
  journal::Journal journal(std::make_unique<journal::FileStore>(journal_path), {.keep_settled = 16});
  auto backend = dm::make_libcryptsetup_backend();
  dm::VolumeManagerConfig cfg;
  cfg.activation.no_read_workqueue = no_wq;
  cfg.activation.no_write_workqueue = no_wq;
  cfg.header_backup_dir = backup_dir;
  auto probe = dm::make_system_probe();
  dm::VolumeManager vm(*backend, *probe, {&*prov}, journal, cfg);

  dm::OpReport rep;
  if (*c_create) {
    auto v = vm.create({dev, name, key_id, true}, &rep);
    warn(rep);
    if (!v.ok()) return fail(v.error());
    print(*v);
  } else if (*c_open) {
    auto st = vm.open(dev, name, &rep);
    warn(rep);
    if (!st.ok()) return fail(st.error());
  } else if (*c_close) {
    auto st = vm.close(name);
    if (!st.ok()) return fail(st.error());
  } else if (*c_show) {
    auto v = vm.show(dev);
    if (!v.ok()) return fail(v.error());
    print(*v);
  } else if (*c_list) {
    auto l = vm.list(devs);
    if (!l.ok()) return fail(l.error());
    for (auto& v : *l)
      std::cout << v.device << " " << v.name << " " << v.state << " " << v.key_id << " g" << v.generation << "\n";
  } else if (*c_rekey) {
    auto st = vm.rekey(dev, &rep);
    warn(rep);
    if (!st.ok()) return fail(st.error());
  } else if (*c_resume) {
    auto r = vm.resume();
    if (!r.ok()) return fail(r.error());
    for (auto& w : r->warnings) std::cerr << "warning: " << w << "\n";
    for (auto& i : r->items) std::cout << i.op << " " << i.device << " " << i.outcome << "\n";
  } else if (*c_erase) {
    auto st = vm.erase(dev, &rep);
    warn(rep);
    if (!st.ok()) return fail(st.error());
  } else if (*c_media) {
    for (auto& m : prov->scan()) {
      std::cout << m.dir.string() << (m.present ? " present" : " absent") << "\n";
      for (auto& f : m.files)
        std::cout << "  " << f.path.filename().string() << " " << keys::key_file_problem_name(f.problem)
                  << (f.detail.empty() ? "" : " (" + f.detail + ")") << "\n";
    }
  }
  return 0;
}
