// Unlock-cost benchmark (host, no device-mapper needed): our unlock path
// (key media fetch + libcryptsetup keyslot check on a pbkdf2/1000 slot)
// versus `cryptsetup open --test-passphrase` on a LUKS2 volume formatted with
// cryptsetup's defaults (argon2id, benchmarked), measured in the same run.
// Prints a ratio. Usage: storcrypt_dm_bench_unlock [workdir] [iterations]
#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <string>
#include <vector>

#include "storcrypt/dm/crypt_backend.h"
#include "storcrypt/keys/key_media.h"

using namespace storcrypt;
namespace fs = std::filesystem;
using clk = std::chrono::steady_clock;

namespace {
double ms_since(clk::time_point t) { return std::chrono::duration<double, std::milli>(clk::now() - t).count(); }

int run(const std::vector<std::string>& argv) {
  pid_t pid = fork();
  if (pid == 0) {
    std::vector<char*> a;
    for (auto& s : argv) a.push_back(const_cast<char*>(s.c_str()));
    a.push_back(nullptr);
    freopen("/dev/null", "w", stdout);
    execvp(a[0], a.data());
    _exit(127);
  }
  int st = 0;
  waitpid(pid, &st, 0);
  return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
}

void die(const std::string& m) {
  std::cerr << "bench: " << m << "\n";
  std::exit(1);
}
}  // namespace

int main(int argc, char** argv) {
  fs::path dir = argc > 1 ? fs::path(argv[1]) : fs::temp_directory_path() / "storcrypt-bench-unlock";
  int iters = argc > 2 ? std::atoi(argv[2]) : 20;
  fs::remove_all(dir);
  fs::create_directories(dir / "m1");
  for (auto* n : {"ours.img", "argon.img"}) {
    std::ofstream f(dir / n);
    f.close();
    fs::resize_file(dir / n, 20u << 20);
  }
  keys::KeyMediaConfig kc;
  kc.media_dirs = {dir / "m1"};
  kc.system_id = "bench";
  kc.desired_copies = 1;
  auto prov = keys::KeyMediaProvider::create(kc).value();
  auto ak = SecretBytes::random(32).value();
  if (!prov.store({"k", 1}, ak).ok()) die("store");
  auto be = dm::make_libcryptsetup_backend();
  dm::FormatParams fp;
  auto st = be->format((dir / "ours.img").string(), fp, 0, ak);
  if (!st.ok()) die(st.error().to_string());
  // Baseline volume: cryptsetup defaults (argon2id), same AK in a 0600 key file.
  {
    int fd = ::open((dir / "ak").c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (fd < 0 || ::write(fd, ak.data(), ak.size()) != static_cast<ssize_t>(ak.size())) die("ak file");
    ::close(fd);
  }
  std::cout << "formatting the baseline volume with cryptsetup defaults (argon2id benchmark)...\n" << std::flush;
  if (run({"cryptsetup", "luksFormat", "-q", "--type", "luks2", "--key-file", (dir / "ak").string(),
           (dir / "argon.img").string()}) != 0)
    die("cryptsetup luksFormat");

  // ours: fetch from media + keyslot check, in process
  auto t = clk::now();
  for (int i = 0; i < iters; ++i) {
    auto k = prov.fetch({"k", 1});
    if (!k.ok()) die(k.error().to_string());
    auto v = be->verify_key((dir / "ours.img").string(), 0, k->ak);
    if (!v.ok()) die(v.error().to_string());
  }
  double ours = ms_since(t) / iters;
  // the CLI on our pbkdf2 volume (process start + header load + pbkdf2)
  t = clk::now();
  for (int i = 0; i < iters; ++i)
    if (run({"cryptsetup", "open", "--test-passphrase", "--key-slot", "0", "--key-file", (dir / "ak").string(),
             (dir / "ours.img").string()}) != 0)
      die("cryptsetup on ours");
  double cli_ours = ms_since(t) / iters;
  int base_iters = 3;
  t = clk::now();
  for (int i = 0; i < base_iters; ++i)
    if (run({"cryptsetup", "open", "--test-passphrase", "--key-file", (dir / "ak").string(),
             (dir / "argon.img").string()}) != 0)
      die("cryptsetup on argon2 volume");
  double argon = ms_since(t) / base_iters;
  std::printf("unlock (keyslot check) latency, mean:\n");
  std::printf("  ours, in process (key media fetch + pbkdf2/1000 slot): %9.2f ms  (%d runs)\n", ours, iters);
  std::printf("  cryptsetup CLI on our pbkdf2/1000 volume:              %9.2f ms  (%d runs)\n", cli_ours, iters);
  std::printf("  cryptsetup CLI on default argon2id volume (baseline):  %9.2f ms  (%d runs)\n", argon, base_iters);
  std::printf("ratio baseline/ours = %.1fx faster; baseline/cli-on-ours = %.1fx\n", argon / ours, argon / cli_ours);
  fs::remove_all(dir);
  return 0;
}
