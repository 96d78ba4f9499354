// Host tier, issue 17: a real storcryptd and a real PyKMIP server
// (/usr/bin/pykmip-server, mutual TLS 1.2), driven only through the storcrypt
// binary. The node's CSR is signed with the openssl command by the test CA
// PyKMIP trusts; TestKeyServerKmip then succeeds, and fails with the error
// naming the cause for each condition made real here: a wrong CA
// (xKeyServerSslError), a client certificate without clientAuth
// (xKeyServerAuthFailed), a client certificate from a CA the server does not
// trust (xKeyServerInvalidAuth), and the server stopped (xKeyServerUnavailable).
// A TLS server that answers with TTLV that is not a KMIP response (a small
// Python ssl server) gives xKeyServerFailed.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <thread>

#include "kmip_daemon_fixture.h"
#include "storcrypt/testing/environment.h"
#include "storcrypt/testing/process.h"

namespace {

using nlohmann::json;
using storcrypt::testing::ProcessResult;
using storcrypt::testing::run;
using storcrypt::testing::sh;
namespace kt = storcrypt::kmip::testing;

class KmipDaemon : public KmipDaemonBase {
 protected:
  std::string error_of(const json& j) { return j["ok"] == false ? j["error"]["name"].get<std::string>() : "(ok)"; }

  /// Key pair, CSR signed by the test CA; the certificate's path.
  std::string enrolled_cert() {
    EXPECT_EQ(cli({"kmip-client", "create-keypair", "--cn", "storcrypt-node"}).exit_code, 0);
    const std::string csr = dir_ + "/node.csr";
    EXPECT_EQ(cli({"kmip-client", "csr", "--out", csr}).exit_code, 0);
    return sign(csr, "ca", "extendedKeyUsage=clientAuth\nbasicConstraints=CA:FALSE\n", dir_ + "/node.pem");
  }

  /// `srv` started; key server kms1 on it (our enrolled certificate) in a
  /// new key provider "kmip", whose id goes to `pid`.
  void provider_with_server(kt::PyKmipServer& srv, std::string& pid) {
    std::string err;
    ASSERT_TRUE(srv.start(pki_, err)) << err;
    const std::string cert = enrolled_cert();
    json c = cli_json({"keyserver", "create", "--name", "kms1", "--hostname", "127.0.0.1", "--port",
                       std::to_string(srv.port()), "--ca-cert", pki_.ca, "--client-cert", cert});
    ASSERT_EQ(c["ok"], true) << c.dump();
    const std::string sid = std::to_string(c["result"]["keyServerID"].get<int64_t>());
    json p = cli_json({"keyprovider", "create", "--name", "kmip"});
    ASSERT_EQ(p["ok"], true) << p.dump();
    pid = std::to_string(p["result"]["keyProviderID"].get<int64_t>());
    ASSERT_EQ(cli({"keyprovider", "add-server", pid, sid}).exit_code, 0);
  }

};

const char* kClientExt = "extendedKeyUsage=clientAuth\nbasicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\n";
const char* kNoEkuExt = "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\n";

TEST_F(KmipDaemon, KeyServerAgainstPyKmip) {
  start();
  kt::PyKmipServer srv;
  std::string err;
  ASSERT_TRUE(srv.start(pki_, err)) << err;
  const std::string port = std::to_string(srv.port());

  // No key pair yet.
  EXPECT_EQ(error_of(cli_json({"kmip-client", "csr"})), "xSslKeysDoNotExist");

  ProcessResult r = cli({"kmip-client", "create-keypair", "--cn", "storcrypt-node", "--org", "storcrypt-test"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  struct stat st {};
  ASSERT_EQ(::stat((state_ + "/kmip/client-key.pem").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  const std::string csr = dir_ + "/node.csr";
  r = cli({"kmip-client", "csr", "--out", csr});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  r = run({"openssl", "req", "-in", csr, "-noout", "-verify", "-subject"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("storcrypt-node"), std::string::npos) << r.out;

  const std::string good = sign(csr, "ca", kClientExt, dir_ + "/node.pem");
  const std::string noeku = sign(csr, "ca", kNoEkuExt, dir_ + "/node-noeku.pem");
  const std::string foreign = sign(csr, "other-ca", kClientExt, dir_ + "/node-foreign.pem");

  json c = cli_json({"keyserver", "create", "--name", "kms1", "--hostname", "127.0.0.1", "--port", port, "--ca-cert",
                     pki_.ca, "--client-cert", good});
  ASSERT_EQ(c["ok"], true) << c.dump();
  const std::string id = std::to_string(c["result"]["keyServerID"].get<int64_t>());

  r = cli({"keyserver", "test", id});
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err << "\nPyKMIP log: " << srv.log_path();
  EXPECT_NE(r.out.find("127.0.0.1: ok, KMIP"), std::string::npos) << r.out;
  json t = cli_json({"keyserver", "test", id});
  ASSERT_EQ(t["ok"], true) << t.dump();
  EXPECT_EQ(t["result"]["hostnames"][0]["tlsVersion"], "TLSv1.2");

  json p = cli_json({"keyprovider", "create", "--name", "kmip"});
  ASSERT_EQ(p["ok"], true) << p.dump();
  const std::string pid = std::to_string(p["result"]["keyProviderID"].get<int64_t>());
  ASSERT_EQ(cli({"keyprovider", "add-server", pid, id}).exit_code, 0);
  r = cli({"keyprovider", "test", pid});
  EXPECT_EQ(r.exit_code, 0) << r.out << r.err;

  // Rules through the CLI.
  json del = cli_json({"keyserver", "delete", id});
  EXPECT_EQ(error_of(del), "xKeyServerHasProviderAssigned");
  EXPECT_EQ(del["exit_code"], 4);
  EXPECT_EQ(error_of(cli_json({"kmip-client", "create-keypair", "--cn", "x"})), "xKeyPairInUse");

  // Wrong CA: we reject the server's certificate.
  ASSERT_EQ(cli({"keyserver", "modify", id, "--ca-cert", pki_.other_ca}).exit_code, 0);
  json e = cli_json({"keyserver", "test", id});
  EXPECT_EQ(error_of(e), "xKeyServerSslError") << e.dump();
  EXPECT_EQ(e["exit_code"], 8);
  ASSERT_EQ(cli({"keyserver", "modify", id, "--ca-cert", pki_.ca}).exit_code, 0);

  // No clientAuth: accepted with a warning, TLS works, PyKMIP refuses every request.
  r = cli({"keyserver", "modify", id, "--client-cert", noeku});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.err.find("clientAuth"), std::string::npos) << r.err;
  e = cli_json({"keyserver", "test", id});
  EXPECT_EQ(error_of(e), "xKeyServerAuthFailed") << e.dump();

  // Client certificate from a CA PyKMIP does not trust: refused in the handshake.
  ASSERT_EQ(cli({"keyserver", "modify", id, "--client-cert", foreign}).exit_code, 0);
  e = cli_json({"keyserver", "test", id});
  EXPECT_EQ(error_of(e), "xKeyServerInvalidAuth") << e.dump();

  // Renewed in place: works again.
  ASSERT_EQ(cli({"keyserver", "modify", id, "--client-cert", good}).exit_code, 0);
  ASSERT_EQ(cli({"keyserver", "test", id}).exit_code, 0);

  // The listing carries certificates, never the key.
  r = cli({"--json", "keyserver", "list"});
  ASSERT_EQ(r.exit_code, 0);
  EXPECT_EQ(r.out.find("PRIVATE"), std::string::npos);
  EXPECT_NE(r.out.find("BEGIN CERTIFICATE"), std::string::npos);

  // Server stopped.
  srv.kill_now();
  e = cli_json({"keyserver", "test", id});
  EXPECT_EQ(error_of(e), "xKeyServerUnavailable") << e.dump();
  EXPECT_EQ(e["exit_code"], 5);
  EXPECT_EQ(error_of(cli_json({"keyprovider", "test", pid})), "xKeyServerUnavailable");

  // Clean up through the API.
  ASSERT_EQ(cli({"keyprovider", "remove-server", pid, id}).exit_code, 0);
  ASSERT_EQ(cli({"keyserver", "delete", id}).exit_code, 0);
  ASSERT_EQ(cli({"keyprovider", "delete", pid}).exit_code, 0);
  r = cli({"keyserver", "list"});
  EXPECT_NE(r.out.find("no key servers"), std::string::npos) << r.out;
}

// A TLS server (the PyKMIP server's certificate) that answers every request
// with a TTLV Request Message header instead of a Response Message.
TEST_F(KmipDaemon, ServerThatSpeaksNoKmip) {
  start();
  const std::string script = dir_ + "/notkmip.py", port_file = dir_ + "/notkmip.port";
  std::ofstream(script) << "import socket, ssl, sys\n"
                           "ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)\n"
                           "ctx.load_cert_chain(sys.argv[1], sys.argv[2])\n"
                           "s = socket.socket()\n"
                           "s.bind(('127.0.0.1', 0))\n"
                           "s.listen(8)\n"
                           "open(sys.argv[3] + '.tmp', 'w').write(str(s.getsockname()[1]))\n"
                           "import os; os.rename(sys.argv[3] + '.tmp', sys.argv[3])\n"
                           "while True:\n"
                           "    c, _ = s.accept()\n"
                           "    try:\n"
                           "        t = ctx.wrap_socket(c, server_side=True)\n"
                           "        t.recv(8)\n"
                           "        t.sendall(bytes([0x42, 0x00, 0x78, 0x01, 0, 0, 0, 0]))\n"
                           "        t.close()\n"
                           "    except Exception:\n"
                           "        c.close()\n";
  ProcessResult bg = sh("python3 " + script + " " + pki_.server_cert + " " + pki_.server_key + " " + port_file +
                        " >/dev/null 2>&1 & echo $!");
  ASSERT_EQ(bg.exit_code, 0);
  struct Reap {  // the Python server goes whatever happens below
    pid_t pid;
    ~Reap() {
      ::kill(pid, SIGKILL);
      int st = 0;
      ::waitpid(pid, &st, 0);
    }
  } server{static_cast<pid_t>(std::stol(bg.out))};
  std::string port;
  for (int i = 0; i < 500 && port.empty(); ++i) {
    std::ifstream in(port_file);
    std::getline(in, port);
    if (port.empty()) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  ASSERT_FALSE(port.empty()) << "the Python TLS server did not start";

  const std::string cert = enrolled_cert();
  json c = cli_json({"keyserver", "create", "--name", "notkmip", "--hostname", "127.0.0.1", "--port", port, "--ca-cert",
                     pki_.ca, "--client-cert", cert});
  ASSERT_EQ(c["ok"], true) << c.dump();
  json e = cli_json({"keyserver", "test", std::to_string(c["result"]["keyServerID"].get<int64_t>())});
  EXPECT_EQ(error_of(e), "xKeyServerFailed") << e.dump();
  EXPECT_NE(e["error"]["message"].get<std::string>().find("expected Response Message"), std::string::npos) << e.dump();
}

// Issue 17: a volume keyed from the provider through the CLI and a real
// storcryptd restart (a LUKS2 image file: no device-mapper open on the host
// tier). sed_devices names a device that does not exist so the drive
// discovery touches no disk of the host.
TEST_F(KmipDaemon, VolumeKeyedFromTheProviderAcrossARestart) {
  std::ofstream(dir_ + "/at-rest.json") << json{
      {"system_id", "node-cli"},
      {"media_dirs", {dir_ + "/m1"}},
      {"desired_copies", 1},
      {"sed_devices",
       {"/dev/storcrypt-test-no-such-drive"}}}.dump();
  std::filesystem::create_directories(dir_ + "/m1");
  const std::string img = dir_ + "/img";
  std::ofstream(img).close();
  std::filesystem::resize_file(img, 20u << 20);
  start();
  kt::PyKmipServer srv;
  std::string pid;
  ASSERT_NO_FATAL_FAILURE(provider_with_server(srv, pid));

  EXPECT_EQ(error_of(cli_json({"ear", "enable", "--key-provider", "99"})), "xNoOnlineKeyProviderWithThatID");
  ProcessResult r = cli({"ear", "enable", "--key-provider", pid});
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_NE(r.out.find("encryption at rest: enabled, KMIP key provider " + pid), std::string::npos) << r.out;
  r = cli({"volume", "create", img, "vol1", "--key-id", "k1"});
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_NE(r.out.find("kmip/" + pid), std::string::npos) << r.out;
  r = cli({"ear", "status"});
  EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_NE(r.out.find("KMIP key provider " + pid + " (kmip), 1 volume(s) keyed from it"), std::string::npos) << r.out;
  json dis = cli_json({"ear", "disable"});
  EXPECT_EQ(error_of(dis), "xKeyProviderHasVolumes");
  EXPECT_EQ(dis["exit_code"], 4);

  // A new storcryptd process: the key is fetched from PyKMIP by name.
  stop(SIGTERM);
  start();
  json s = cli_json({"volume", "show", "vol1"});
  ASSERT_EQ(s["ok"], true) << s.dump();
  EXPECT_EQ(s["result"]["provider"]["kind"], "kmip");
  r = cli({"volume", "rekey", "vol1"});
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err << "\nPyKMIP log: " << srv.log_path();
  r = cli({"volume", "erase", "vol1", "--yes"});
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  r = cli({"ear", "disable"});
  EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_NE(r.out.find("encryption at rest: disabled, KMIP key provider " + pid), std::string::npos) << r.out;
  // Nothing of the volume is left on the server.
  auto j = storcrypt::kmip::Client::create(kt::client_config(pki_, {srv.port()})).value();
  storcrypt::kmip::LocateFilter f;
  f.object_group = "node-cli-k1";
  auto left = j->locate(f);
  ASSERT_TRUE(left.ok()) << left.error().to_string();
  EXPECT_TRUE(left->empty());
}

// Issue 17: online migration of key-media volumes to the active KMIP key
// provider (ear migrate), with storcryptd killed (SIGKILL) at every
// journalled point of volume.migrate (STORCRYPT_PAUSE_AT). Each round pauses
// on the first volume still on the key media. Dead, before any recovery, the
// volume's LUKS2 token names a keyslot that exists, and once it names the
// provider stock cryptsetup opens the volume with the key from PyKMIP. After
// the kill a new
// storcryptd's journal recovery settles it, and every volume's key (from the
// key media or from PyKMIP, whichever its token names) still opens its
// keyslot (volume adopt verifies it and writes nothing). The interrupted
// volume, once on the provider, opens with stock cryptsetup and the key
// fetched from PyKMIP by a second client. At the end every volume is on the
// provider and the key media hold no key file.
TEST_F(KmipDaemon, MigrationSurvivesSigkillAtEveryStep) {
  const std::vector<std::string> points = {"begin",          "store-key",     "key-stored",      "add-slot",
                                           "slot-added",     "set-token",     "token-switched",  "registered",
                                           "destroy-old",    "old-destroyed", "backup-replaced", "shred-media",
                                           "media-shredded", "done"};
  // Rolled back: begin, store-key, key-stored (3); the rest finish it: one
  // volume per point plus one left for the final 'ear migrate'.
  const std::size_t nvol = points.size() - 3 + 1;
  std::ofstream(dir_ + "/at-rest.json") << json{
      {"system_id", "node-mig"},
      {"media_dirs", {dir_ + "/m1"}},
      {"desired_copies", 1},
      {"header_backup_dir", dir_ + "/hdr"},
      {"sed_devices",
       {"/dev/storcrypt-test-no-such-drive"}}}.dump();
  std::filesystem::create_directories(dir_ + "/m1");
  std::filesystem::create_directories(dir_ + "/hdr");
  start();
  kt::PyKmipServer srv;
  std::string pid;
  ASSERT_NO_FATAL_FAILURE(provider_with_server(srv, pid));
  EXPECT_EQ(error_of(cli_json({"ear", "migrate"})), "xNoActiveKeyProvider");

  auto name = [](std::size_t i) { return std::string("vol") + (i < 10 ? "0" : "") + std::to_string(i); };
  auto img = [&](std::size_t i) { return dir_ + "/img" + std::to_string(i); };
  for (std::size_t i = 0; i < nvol; ++i) {
    std::ofstream(img(i)).close();
    std::filesystem::resize_file(img(i), 20u << 20);
    ProcessResult r = cli({"volume", "create", img(i), name(i), "--key-id", "k" + std::to_string(i)});
    ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  }
  auto key_files = [&] {
    std::size_t n = 0;
    for (const auto& e : std::filesystem::directory_iterator(dir_ + "/m1")) n += e.is_regular_file();
    return n;
  };
  ASSERT_EQ(key_files(), nvol);
  // The key fetched from PyKMIP by a second client opens volume i's image with stock cryptsetup.
  auto opens_with_server_key = [&](std::size_t i) {
    auto client = storcrypt::kmip::Client::create(kt::client_config(pki_, {srv.port()})).value();
    storcrypt::kmip::LocateFilter f;
    f.name = "node-mig-k" + std::to_string(i) + "-g2";
    auto uids = client->locate(f);
    if (!uids.ok() || uids->size() != 1) return false;
    auto obj = client->get((*uids)[0]);
    if (!obj.ok()) return false;
    const std::string kf = dir_ + "/key";
    std::ofstream(kf, std::ios::binary)
        .write(reinterpret_cast<const char*>(obj->material.data()), static_cast<std::streamsize>(obj->material.size()));
    ::chmod(kf.c_str(), 0600);
    bool ok = run({"cryptsetup", "open", "--test-passphrase", "--key-file", kf, img(i)}).exit_code == 0;
    std::filesystem::remove(kf);
    return ok;
  };
  auto provider_of = [&](std::size_t i) {
    json s = cli_json({"volume", "show", name(i)});
    return s["ok"] == true ? s["result"]["provider"]["kind"].get<std::string>() : "(error)";
  };

  // SIGKILL, and wait until the process has let go of its state directory
  // (its flock): this environment's init may reap the reparented daemon
  // late, and a dead process holds no lock, socket or file.
  auto kill9 = [&] {
    ::kill(pid_, SIGKILL);
    const std::string lock = state_ + "/storcryptd.lock";
    for (;;) {
      int fd = ::open(lock.c_str(), O_RDONLY | O_CLOEXEC);
      bool free = fd >= 0 && ::flock(fd, LOCK_EX | LOCK_NB) == 0;
      if (fd >= 0) ::close(fd);
      if (free || ::kill(pid_, 0) != 0) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    pid_ = -1;
  };

  // One round per point: the first call is 'ear enable' (it starts the
  // migration), the others 'ear migrate'.
  const std::string pause_file = dir_ + "/paused";
  std::size_t migrated = 0;
  for (std::size_t round = 0; round < points.size(); ++round) {
    const std::string& point = points[round];
    SCOPED_TRACE("SIGKILL at volume.migrate:" + point);
    std::size_t first = nvol;  // the first volume still on the key media
    json list = cli_json({"volume", "list"});
    for (const auto& v : list["result"]["volumes"])
      if (first == nvol && v["provider"]["kind"] == "keymedia")
        first = std::stoul(v["name"].get<std::string>().substr(3));
    ASSERT_LT(first, nvol) << list.dump();
    kill9();
    std::filesystem::remove(pause_file);
    env_ = {"STORCRYPT_PAUSE_AT=volume.migrate:" + point, "STORCRYPT_PAUSE_FILE=" + pause_file};
    start();
    env_.clear();
    std::string cmd = std::string(STORCRYPT_BIN) + " --socket " + sock_ +
                      (round == 0 ? " ear enable --key-provider " + pid : std::string(" ear migrate")) +
                      " >/dev/null 2>&1 &";
    ASSERT_EQ(sh(cmd).exit_code, 0);
    for (int i = 0; i < 3000 && !std::filesystem::exists(pause_file); ++i)
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    ASSERT_TRUE(std::filesystem::exists(pause_file)) << "storcryptd never reached volume.migrate:" << point;
    kill9();
    // Dead, before any recovery: the header names a key that opens it. Once
    // the token names the provider, stock cryptsetup opens the volume with
    // the key from PyKMIP; before, the key-media keyslot is still there.
    {
      ProcessResult d = run({"cryptsetup", "luksDump", "--dump-json-metadata", img(first)});
      json md = json::parse(d.out, nullptr, false);
      ASSERT_FALSE(md.is_discarded()) << d.out << d.err;
      json tok;
      for (auto& [_, t] : md["tokens"].items())
        if (t["type"] == "storcrypt") tok = t;
      ASSERT_TRUE(tok.is_object()) << d.out;
      const std::string slot = std::to_string(tok["keyslot"].get<int>());
      EXPECT_TRUE(md["keyslots"].contains(slot)) << d.out;
      if (tok["provider"]["kind"] == "kmip") {
        EXPECT_TRUE(opens_with_server_key(first)) << name(first);
      } else {
        EXPECT_EQ(tok["provider"]["kind"], "keymedia");
        EXPECT_EQ(slot, "0");
      }
    }
    start();  // the journal's recovery settles the interrupted migration
    json doc = cli_json({"system", "doctor"});
    for (const auto& ch : doc["result"]["checks"]) {
      if (ch["check"] == "pending-operations") {
        EXPECT_EQ(ch["status"], "ok") << ch.dump();
      }
    }
    // The interrupted volume's key (from the key media or the key server,
    // as its token says) opens its keyslot: verified by the daemon, nothing
    // written. (The round touches no other volume; all are checked at the end.)
    json a = cli_json({"volume", "adopt", img(first)});
    EXPECT_EQ(a["ok"], true) << name(first) << ": " << a.dump();
    const bool rolled_back = round < 3;
    EXPECT_EQ(provider_of(first), rolled_back ? "keymedia" : "kmip");
    if (!rolled_back) {
      ++migrated;
      EXPECT_TRUE(opens_with_server_key(first)) << name(first);
    }
    EXPECT_EQ(key_files(), nvol - migrated) << "the migrated volumes' key-media copies are shredded";
  }
  // The last one, and nothing to do after it.
  ProcessResult r = cli({"ear", "migrate"});
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_NE(r.out.find("volumes migrated to KMIP key provider " + pid + ": 1"), std::string::npos) << r.out;
  r = cli({"ear", "migrate"});
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_NE(r.out.find(": already"), std::string::npos) << r.out;
  for (std::size_t i = 0; i < nvol; ++i) {
    EXPECT_EQ(provider_of(i), "kmip") << name(i);
    EXPECT_TRUE(opens_with_server_key(i)) << name(i);
    json a = cli_json({"volume", "adopt", img(i)});
    EXPECT_EQ(a["ok"], true) << name(i) << ": " << a.dump();
  }
  EXPECT_EQ(key_files(), 0u);
  // Keys never move back from the key server (TS7700 rule).
  EXPECT_EQ(error_of(cli_json({"ear", "migrate", "--key-provider", "local"})), "xMigrationNotSupported");
  EXPECT_EQ(error_of(cli_json({"ear", "migrate", "--key-provider", "99"})), "xKeyProviderNotActive");
  r = cli({"ear", "status"});
  EXPECT_NE(r.out.find(std::to_string(nvol) + " volume(s) keyed from it"), std::string::npos) << r.out;
}

}  // namespace
