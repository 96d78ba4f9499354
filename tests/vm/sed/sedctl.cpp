// sedctl: drives one storcrypt::sed operation on a block device for the
// kernel-VM scenarios (tests/vm/sed/*.sh). Test tool, not the product CLI.
//
//   sedctl DEVICE status
//   sedctl DEVICE own|activate|enable|disable|lock|unlock|save|erase|revert --key-file F
//   sedctl DEVICE setpw --key-file OLD --new-key-file NEW
//   sedctl DEVICE psid-revert --psid PSID
//   sedctl DEVICE in-use
//
// Keys are read from files (raw bytes). Exit 0 on success; otherwise the
// error is printed and the exit code is the error category's
// (category_exit_code), with the stable error name on the last line.
#include <fstream>
#include <iostream>
#include <iterator>
#include <string>

#include "storcrypt/sed/opal.h"

using namespace storcrypt;

namespace {
Result<SecretBytes> read_key(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) return Error(ErrorCode::kNotFound, "cannot read key file " + path);
  std::string s((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  SecretBytes k(reinterpret_cast<const std::uint8_t*>(s.data()), s.size());
  secure_wipe(s);
  return k;
}
int usage() {
  std::cerr << "usage: sedctl DEVICE status|in-use|own|activate|enable|disable|lock|unlock|save|erase|revert"
               "|setpw|psid-revert [--key-file F] [--new-key-file F] [--psid P]\n";
  return 2;
}
}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) return usage();
  const std::string dev = argv[1], op = argv[2];
  std::string key_file, new_key_file, psid;
  for (int i = 3; i + 1 < argc; i += 2) {
    const std::string a = argv[i];
    if (a == "--key-file") key_file = argv[i + 1];
    else if (a == "--new-key-file") new_key_file = argv[i + 1];
    else if (a == "--psid") psid = argv[i + 1];
    else return usage();
  }
  auto io = sed::make_kernel_ioctl();
  sed::Drive d(*io, dev);
  Status st;
  if (op == "status") {
    auto s = d.status();
    if (s.ok()) {
      std::cout << "flags=" << s->flags << " locking_enabled=" << s->locking_enabled << " locked=" << s->locked
                << " mbr_enabled=" << s->mbr_enabled << "\n";
      return 0;
    }
    st = std::move(s).error();
  } else if (op == "in-use") {
    st = d.check_not_in_use();
  } else if (op == "psid-revert") {
    st = d.psid_revert(psid);
  } else {
    auto k = read_key(key_file);
    if (!k.ok()) {
      st = std::move(k).error();
    } else if (op == "own") {
      st = d.take_ownership(*k);
    } else if (op == "activate") {
      st = d.activate_locking(*k);
    } else if (op == "enable") {
      st = d.setup_global_range(*k, true);
    } else if (op == "disable") {
      st = d.setup_global_range(*k, false);
    } else if (op == "lock") {
      st = d.lock(*k);
    } else if (op == "unlock") {
      st = d.unlock(*k);
    } else if (op == "save") {
      st = d.save_for_resume(*k);
    } else if (op == "erase") {
      st = d.secure_erase(*k);
    } else if (op == "revert") {
      st = d.revert(*k);
    } else if (op == "setpw") {
      auto n = read_key(new_key_file);
      st = n.ok() ? d.set_admin1_password(*k, *n) : Status(std::move(n).error());
    } else {
      return usage();
    }
  }
  if (st.ok()) return 0;
  std::cerr << "error: " << st.error().to_string() << "\n" << st.error().name() << "\n";
  return category_exit_code(st.error().code());
}
