// Host tier (root): key material and passphrases do not stay in memory.
//
// After key create/import/export through a real storcryptd, successful and
// refused ones (key exists, wrong passphrase), the test takes a core of the
// running daemon with gcore (root may whatever the dumpable flag) and of the
// storcrypt client stopped at exit() (gdb, breakpoint on exit), and searches
// them for every key (its hex text and its bytes) and every passphrase.
// Freed heap blocks start with allocator metadata, so each secret is also
// searched as 12-byte pieces, not only whole.
//
// The daemon keeps the live keys (the kernel path and a restart need them)
// in SecretBytes, which storcryptd allocates from a secure heap marked
// MADV_DONTDUMP: no dumper (kernel or gcore) writes those pages, so no copy
// is expected anywhere in the core. A positive control (the key names and
// the daemon's state path) proves the core holds the heap it searched.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <fstream>
#include <iterator>

#include "daemon_fixture.h"
#include "storcrypt/testing/environment.h"
#include "storcrypt/testing/netns.h"

namespace {

using storcrypt::testing::Daemon;
using storcrypt::testing::ProcessResult;
using storcrypt::testing::TestNetns;

struct Secret {
  std::string what;
  std::string bytes;
};

std::string from_hex(const std::string& h) {
  std::string out;
  for (size_t i = 0; i + 1 < h.size(); i += 2) out += static_cast<char>(std::stoi(h.substr(i, 2), nullptr, 16));
  return out;
}

std::string hex_of(const std::string& b) {
  static const char* d = "0123456789abcdef";
  std::string out;
  for (unsigned char c : b) out += {d[c >> 4], d[c & 15]};
  return out;
}

std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

// Where in `core` a secret (or a 12-byte piece of it) occurs; empty if nowhere.
std::string find_secret(const std::string& core, const Secret& s) {
  const size_t piece = 12;
  std::vector<size_t> starts{0};
  for (size_t o = piece; o + piece <= s.bytes.size(); o += piece) starts.push_back(o);
  if (s.bytes.size() > piece) starts.push_back(s.bytes.size() - piece);
  for (size_t o : starts) {
    std::string needle = s.bytes.substr(o, s.bytes.size() < piece ? s.bytes.size() : piece);
    size_t at = core.find(needle);
    if (at != std::string::npos) {
      // What surrounds it says where it is (stack addresses, a heap block).
      std::string around;
      for (size_t i = at >= 64 ? at - 64 : 0; i < std::min(core.size(), at + 64); ++i) {
        unsigned char c = static_cast<unsigned char>(core[i]);
        around += c >= 32 && c < 127 ? std::string(1, static_cast<char>(c)) : "\\x" + hex_of(std::string(1, core[i]));
      }
      return s.what + " (bytes " + std::to_string(o) + ".." + std::to_string(o + needle.size()) + ") at core offset " +
             std::to_string(at) + ": " + around;
    }
  }
  return {};
}

class SecretsInMemory : public Daemon {
 protected:
  void SetUp() override {
    Daemon::SetUp();
    if (HasFatalFailure() || IsSkipped()) return;
    STORCRYPT_REQUIRE(storcrypt::testing::is_root(), "needs root (gcore attaches to the daemon)");
    gcore_ = storcrypt::testing::find_program("gcore");
    gdb_ = storcrypt::testing::find_program("gdb");
    STORCRYPT_REQUIRE(!gcore_.empty() && !gdb_.empty(), "needs gdb and gcore (scripts/setup.sh installs gdb)");
    ns_ = std::make_unique<TestNetns>("scsecret");
    STORCRYPT_REQUIRE(ns_->ok(), "needs network namespaces (ip netns add)");
    netns_ = ns_->name();
  }
  void TearDown() override {
    Daemon::TearDown();
    ns_.reset();
  }
  std::string file(const std::string& name, const std::string& text) {
    std::string p = dir_ + "/" + name;
    std::ofstream(p, std::ios::binary) << text;
    ::chmod(p.c_str(), 0600);
    return p;
  }

  // A core of the running daemon.
  std::string daemon_core() {
    const std::string prefix = dir_ + "/daemon-core";
    ProcessResult r = storcrypt::testing::run({gcore_, "-o", prefix, std::to_string(pid_)});
    EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
    std::string core = slurp(prefix + "." + std::to_string(pid_));
    EXPECT_GT(core.size(), 1u << 20) << "no core of the daemon (" << r.err << ")";
    std::filesystem::remove(prefix + "." + std::to_string(pid_));
    return core;
  }

  // Run the storcrypt client under gdb, stop it in exit() (after main
  // returned), take its core and let it finish. Returns the core and sets
  // *exit_code to the client's exit status.
  std::string client_core(const std::vector<std::string>& args, int* exit_code) {
    const std::string core_path = dir_ + "/client-core";
    std::filesystem::remove(core_path);
    std::vector<std::string> argv{gdb_,    "-nx",  "-batch", "-ex", "set pagination off", "-ex", "break exit",
                                  "-ex",   "run",  "-ex",    "gcore " + core_path,       "-ex", "continue",
                                  "--args", STORCRYPT_BIN, "--socket", sock_};
    argv.insert(argv.end(), args.begin(), args.end());
    ProcessResult r = storcrypt::testing::run(argv);
    *exit_code = -1;
    // gdb reports "[Inferior 1 (process N) exited with code NN]" or "exited normally".
    if (r.out.find("exited normally") != std::string::npos) *exit_code = 0;
    auto at = r.out.find("exited with code ");
    if (at != std::string::npos) *exit_code = std::stoi(r.out.substr(at + 17), nullptr, 8);
    std::string core = slurp(core_path);
    EXPECT_GT(core.size(), 64u << 10) << "no core of the client:\n" << r.out << r.err;
    std::filesystem::remove(core_path);
    return core;
  }

  void daemon_scenario();

  std::string gcore_, gdb_;
  std::unique_ptr<TestNetns> ns_;
  bool restart_before_core_ = false;
};

TEST_F(SecretsInMemory, DaemonCoreHoldsNoKeyAndNoPassphrase) { daemon_scenario(); }

// A restart reads the keys back from the key file (text, then bytes) and
// re-enforces them: neither the text nor the bytes stay in memory either.
TEST_F(SecretsInMemory, DaemonCoreAfterARestartHoldsNoKey) {
  restart_before_core_ = true;
  daemon_scenario();
}

void SecretsInMemory::daemon_scenario() {
  start();
  // Keys and passphrases known only to this test (and the daemon).
  const std::string hex_a = "5ec7e7a10f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0";  // AES-GCM-256
  const std::string ascii_b = "Zq7!ascii-key-material-0042+xyz9";  // HMAC-SHA-256-128: 32 bytes
  ASSERT_EQ(ascii_b.size(), 32u);
  const std::string hex_c = "c0ffee5ec7e70001c0ffee5ec7e70002c0ffee5ec7e70003c0ffee5ec7e70004aabbccdd";  // from stdin
  const std::string pass_long = "correct horse battery staple 4711";
  const std::string pass_short = "Sh0rt#Pass!";  // fits std::string's inline buffer
  const std::string pass_wrong = "wrong horse battery staple 0815";
  const std::vector<Secret> secrets = {
      {"key a (hex)", hex_a},       {"key a (bytes)", from_hex(hex_a)}, {"key b (ascii/bytes)", ascii_b},
      {"key b (hex)", hex_of(ascii_b)}, {"key c (hex)", hex_c},      {"key c (bytes)", from_hex(hex_c)},
      {"passphrase", pass_long},    {"short passphrase", pass_short}, {"wrong passphrase", pass_wrong}};

  auto ok = [&](std::vector<std::string> a, int want, const std::string& input = {}) {
    std::vector<std::string> argv{STORCRYPT_BIN, "--socket", sock_};
    argv.insert(argv.end(), a.begin(), a.end());
    ProcessResult r = storcrypt::testing::run(argv, input);
    EXPECT_EQ(r.exit_code, want) << a[0] << " " << a[1] << ": " << r.err;
  };
  const std::string a_file = file("a.hex", hex_a + "\n"), b_file = file("b.txt", ascii_b + "\n");
  const std::string p_long = file("p-long", pass_long + "\n"), p_short = file("p-short", pass_short + "\n");
  const std::string p_wrong = file("p-wrong", pass_wrong + "\n");
  ok({"key", "create", "secret-name-ka", "--algorithm", "AES-GCM-256", "--hex-file", a_file}, 0);
  ok({"key", "create", "secret-name-ka", "--algorithm", "AES-GCM-256", "--hex-file", a_file}, 4);  // exists
  ok({"key", "create", "secret-name-kb", "--algorithm", "HMAC-SHA-256-128", "--ascii-file", b_file}, 0);
  ok({"key", "create", "secret-name-kc", "--algorithm", "AES-GCM-256", "--hex-file", "-"}, 0, hex_c + "\n");
  const std::string exported = dir_ + "/keys.exp", exported_short = dir_ + "/keys-short.exp";
  ok({"key", "export", exported, "--passphrase-file", p_long}, 0);
  ok({"key", "export", exported_short, "--passphrase-file", p_short, "--kdf", "pbkdf2"}, 0);
  ok({"key", "import", exported, "--passphrase-file", p_wrong}, 6);  // wrong passphrase
  ok({"key", "import", exported, "--passphrase-file", p_long}, 4);   // exist, no --replace
  ok({"key", "import", exported_short, "--passphrase-file", p_short, "--replace"}, 0);
  ok({"key", "export", "-", "--passphrase-file", "-", "--name", "secret-name-kc"}, 0, pass_long + "\n");
  // The kernel path: the keys enforced as SAs (when this kernel has ESP).
  std::string list = file("list.txt", storcrypt::testing::protect_pair_policy("secret-name-ka", "secret-name-kc"));
  ok({"policy", "import", list}, 0);
  ok({"policy", "commit"}, 0);
  ProcessResult en = cli({"ipsec", "enable"});
  const bool kernel_path = en.exit_code == 0;
  if (!kernel_path) {
    EXPECT_EQ(en.exit_code, 10) << en.err;  // no ESP in this kernel
  }
  // A restart reads the keys back from <state>/ipsec-keys (and re-enforces).
  if (restart_before_core_) {
    stop(SIGTERM);
    start();
  }

  std::string core = daemon_core();
  ASSERT_FALSE(core.empty());
  // Positive control: what is not secret is there (heap and configuration).
  EXPECT_NE(core.find("secret-name-ka"), std::string::npos) << "the core lacks the daemon's heap";
  EXPECT_NE(core.find(state_), std::string::npos) << "the core lacks the daemon's configuration";
  for (const auto& s : secrets) EXPECT_EQ(find_secret(core, s), "") << "found in the daemon's core";
  std::cerr << "daemon core: " << core.size() << " bytes searched; kernel path "
            << (kernel_path ? "exercised" : "not available (no ESP)") << "\n";
}

TEST_F(SecretsInMemory, ClientCoreAtExitHoldsNoKeyAndNoPassphrase) {
  start();
  const std::string hex_d = "d00dfeed5ec7e7d0d00dfeed5ec7e7d1d00dfeed5ec7e7d2d00dfeed5ec7e7d3a1a2a3a4";
  const std::string pass = "client side passphrase 2718281828";
  const std::string pass_short = "Cl1#Short!";
  const std::vector<Secret> secrets = {{"key d (hex)", hex_d}, {"passphrase", pass}, {"short passphrase", pass_short}};
  const std::string d_file = file("d.hex", hex_d + "\n"), p = file("p", pass + "\n");
  const std::string p_short = file("p-short", pass_short + "\n");
  const std::string exported = dir_ + "/keys.exp";
  struct Step {
    std::vector<std::string> args;
    int want;
  };
  const std::vector<Step> steps = {
      {{"key", "create", "kd", "--algorithm", "AES-GCM-256", "--hex-file", d_file}, 0},
      {{"key", "create", "kd", "--algorithm", "AES-GCM-256", "--hex-file", d_file}, 4},
      {{"key", "export", exported, "--passphrase-file", p}, 0},
      {{"key", "import", exported, "--passphrase-file", p_short}, 6},
      {{"key", "import", exported, "--passphrase-file", p, "--replace"}, 0},
  };
  for (const auto& st : steps) {
    int rc = -2;
    std::string core = client_core(st.args, &rc);
    const std::string what = st.args[0] + " " + st.args[1];
    EXPECT_EQ(rc, st.want) << what;
    ASSERT_FALSE(core.empty()) << what;
    EXPECT_NE(core.find(sock_), std::string::npos) << what << ": the core lacks the client's memory";
    for (const auto& s : secrets) EXPECT_EQ(find_secret(core, s), "") << "found in the client's core after " << what;
  }
}

}  // namespace
