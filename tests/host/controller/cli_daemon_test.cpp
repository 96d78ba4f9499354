// Host tier: a real storcryptd in a temporary state directory with its own
// socket, driven only through the storcrypt binary. The sqlite3 and setpriv
// programs act as independent judges (database integrity, caller identity).
#include <grp.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <set>
#include <thread>

#include "daemon_fixture.h"
#include "storcrypt/testing/environment.h"
#include "storcrypt/testing/process.h"

namespace {

using nlohmann::json;
using storcrypt::testing::ProcessResult;
using storcrypt::testing::run;

using storcrypt::testing::Daemon;

TEST_F(Daemon, SystemStatusAndDoctorHappyPath) {
  start();
  ProcessResult r = cli({"system", "status"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("state directory:  " + state_), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("events=1"), std::string::npos) << r.out;

  json st = cli_json({"system", "status"});
  EXPECT_EQ(st["result"]["socket_path"], sock_);
  EXPECT_EQ(st["result"]["database"]["schema"]["journal"], 1);

  ProcessResult d = cli({"system", "doctor"});
  ASSERT_EQ(d.exit_code, 0) << d.err;
  EXPECT_NE(d.out.find("database-integrity"), std::string::npos) << d.out;
  json dj = cli_json({"system", "doctor"});
  ASSERT_EQ(dj["ok"], true) << dj.dump(2);
  EXPECT_FALSE(dj["result"]["versions"]["sqlite"].get<std::string>().empty());
  std::map<std::string, json> by_check;
  for (const auto& ch : dj["result"]["checks"]) {
    by_check[ch["area"].get<std::string>() + "/" + ch["check"].get<std::string>()] = ch;
    if (ch["area"] == "state") {
      EXPECT_EQ(ch["status"], "ok") << ch.dump();
    }
    if (ch["status"] != "ok") {
      EXPECT_TRUE(ch.contains("fix")) << "non-ok check without fix: " << ch.dump();
    }
  }
  // Kernel capabilities, judged against /sys/module: a loaded module is ok.
  for (const char* m : {"xfrm_user", "esp4", "dm-crypt"}) {
    ASSERT_TRUE(by_check.count(std::string("kernel/") + m)) << m << " missing from " << dj.dump(2);
  }
  for (const auto& [mod, sys] : std::vector<std::pair<std::string, std::string>>{
           {"xfrm_user", "xfrm_user"}, {"esp4", "esp4"}, {"dm-crypt", "dm_crypt"}}) {
    if (std::filesystem::exists("/sys/module/" + sys)) {
      EXPECT_EQ(by_check["kernel/" + mod]["status"], "ok") << mod;
    }
  }
  // A fresh system has no endpoint certificate yet: a warning with a fix.
  EXPECT_EQ(by_check["certificates/endpoint-certificate"]["status"], "warning") << dj.dump(2);

  // The socket: 0660, group storcrypt; the state directory 0700.
  struct stat s {};
  ASSERT_EQ(::stat(sock_.c_str(), &s), 0);
  EXPECT_EQ(s.st_mode & 07777, 0660u);
  EXPECT_EQ(s.st_gid, getgrnam("storcrypt")->gr_gid);
  ASSERT_EQ(::stat(state_.c_str(), &s), 0);
  EXPECT_EQ(s.st_mode & 07777, 0700u);
}

TEST_F(Daemon, EventVerbsHappyPath) {
  start();
  ProcessResult t = cli({"event", "test", "--message", "hello from the host test"});
  ASSERT_EQ(t.exit_code, 0) << t.err;
  EXPECT_NE(t.out.find("raised test event"), std::string::npos);
  int64_t id = raise_test_event();
  ASSERT_GT(id, 0);

  ProcessResult l = cli({"event", "list"});
  ASSERT_EQ(l.exit_code, 0) << l.err;
  EXPECT_NE(l.out.find("hello from the host test"), std::string::npos) << l.out;
  json lj = cli_json({"event", "list", "--code", "1099"});
  ASSERT_EQ(lj["result"]["events"].size(), 2u) << lj.dump();

  ProcessResult s = cli({"event", "show", std::to_string(id)});
  ASSERT_EQ(s.exit_code, 0) << s.err;
  EXPECT_NE(s.out.find("user actions:"), std::string::npos) << s.out;
  EXPECT_NE(s.out.find("fixed:     no"), std::string::npos) << s.out;

  ProcessResult f = cli({"event", "fix", std::to_string(id)});
  ASSERT_EQ(f.exit_code, 0) << f.err;
  json sj = cli_json({"event", "show", std::to_string(id)});
  EXPECT_EQ(sj["result"]["fixed"], true);
  json unfixed = cli_json({"event", "list", "--unfixed"});
  for (const auto& e : unfixed["result"]["events"]) EXPECT_NE(e["id"], id);
  json errors = cli_json({"event", "list", "--severity", "error"});
  EXPECT_TRUE(errors["result"]["events"].empty());
}

TEST_F(Daemon, HelpEverywhere) {
  for (std::vector<std::string> args : {std::vector<std::string>{"--help"},
                                        {"system", "--help"},
                                        {"system", "status", "--help"},
                                        {"system", "doctor", "--help"},
                                        {"event", "--help"},
                                        {"event", "list", "--help"},
                                        {"event", "show", "--help"},
                                        {"event", "fix", "--help"},
                                        {"event", "test", "--help"}}) {
    ProcessResult r = cli(args);
    EXPECT_EQ(r.exit_code, 0) << args[0] << r.err;
    EXPECT_NE(r.out.find("Usage"), std::string::npos) << r.out;
  }
  EXPECT_EQ(run({STORCRYPTD_BIN, "--help"}).exit_code, 0);
}

struct BadInput {
  std::vector<std::string> args;
  int exit_code;
  const char* text;  // expected in stderr
};

TEST_F(Daemon, BadInputGivesClearMessageAndDocumentedExitCode) {
  start();
  const std::vector<BadInput> cases = {
      {{}, 1, "a noun is required (choose from: system, event"},
      {{"nonsense"}, 1, "unknown noun 'nonsense' (choose from: system, event"},
      {{"event", "bogus"}, 1, "unknown verb 'bogus' for 'event' (choose from: list, show, fix, test)"},
      {{"event"}, 1, "'event' needs a verb (choose from: list, show, fix, test)"},
      {{"event", "show"}, 1, "id is required"},
      {{"event", "show", "abc"}, 1, "abc"},
      {{"event", "show", "1", "2"}, 1, "not expected: 2"},
      {{"event", "list", "--severity", "loud"}, 1, "loud"},
      {{"event", "list", "--limit", "0"}, 1, "--limit: Value 0 not in range"},
      {{"event", "show", "0"}, 2, "'id' must be a positive integer"},
      {{"event", "show", "424242"}, 3, "event 424242 does not exist"},
      {{"event", "fix", "424242"}, 3, "event 424242 does not exist"},
  };
  for (const auto& c : cases) {
    ProcessResult r = cli(c.args);
    std::string what = c.args.empty() ? "(none)" : c.args.back();
    EXPECT_EQ(r.exit_code, c.exit_code) << what << ": " << r.err;
    EXPECT_NE(r.err.find(c.text), std::string::npos) << what << ": " << r.err;
    EXPECT_EQ(r.err.find("Options:"), std::string::npos) << "usage errors must not dump the help: " << r.err;
  }
  // --json errors: one document with the stable error shape.
  json j = cli_json({"event", "show", "424242"});
  EXPECT_EQ(j["exit_code"], 3);
  EXPECT_EQ(j["ok"], false);
  EXPECT_EQ(j["error"]["name"], "xEventNotFound");
  EXPECT_EQ(j["error"]["category"], "not-found");
  EXPECT_EQ(j["error"]["exit_code"], 3);
  EXPECT_FALSE(j["error"]["fix"].get<std::string>().empty());
}

TEST_F(Daemon, OversizedRequestRefused) {
  write_config("max_request_bytes = 4096\n");
  start();
  ProcessResult r = cli({"event", "test", "--message", std::string(8000, 'm')});
  EXPECT_EQ(r.exit_code, 9) << r.err;
  EXPECT_NE(r.err.find("exceeds the limit of 4096 bytes"), std::string::npos) << r.err;
  // The daemon is still serving.
  EXPECT_EQ(cli({"system", "status"}).exit_code, 0);
}

TEST_F(Daemon, NoDaemonIsUnavailable) {
  ProcessResult r = cli({"system", "status"});
  EXPECT_EQ(r.exit_code, 5) << r.err;
  EXPECT_NE(r.err.find("storcryptd is not running"), std::string::npos) << r.err;
}

TEST_F(Daemon, FiftyConcurrentClientsAllAnswered) {
  start();
  constexpr int kClients = 50;
  std::vector<std::thread> threads;
  std::vector<ProcessResult> results(kClients);
  for (int i = 0; i < kClients; ++i) {
    threads.emplace_back([&, i] {
      // Half write, half read, all at once.
      results[static_cast<size_t>(i)] =
          i % 2 ? cli({"--json", "event", "test", "--message", "client " + std::to_string(i)})
                : cli({"--json", "system", "status"});
    });
  }
  for (auto& t : threads) t.join();
  std::set<int64_t> ids;
  for (int i = 0; i < kClients; ++i) {
    const auto& r = results[static_cast<size_t>(i)];
    ASSERT_EQ(r.exit_code, 0) << "client " << i << ": " << r.err << r.out;
    json j = json::parse(r.out);
    ASSERT_EQ(j["ok"], true);
    if (i % 2) ids.insert(j["result"]["id"].get<int64_t>());
  }
  EXPECT_EQ(ids.size(), static_cast<size_t>(kClients / 2));
  json l = cli_json({"event", "list", "--code", "1099"});
  EXPECT_EQ(l["result"]["events"].size(), static_cast<size_t>(kClients / 2));
}

TEST_F(Daemon, KillNineDuringWritesLosesNothingAcknowledged) {
  STORCRYPT_REQUIRE(!storcrypt::testing::find_program("sqlite3").empty(), "needs the sqlite3 program");
  start();
  std::mutex mu;
  std::vector<int64_t> acked;
  std::atomic<bool> go{true};
  std::vector<std::thread> writers;
  for (int w = 0; w < 4; ++w) {
    writers.emplace_back([&] {
      while (go) {
        int64_t id = raise_test_event();
        if (id > 0) {
          std::lock_guard lock(mu);
          acked.push_back(id);
        }
      }
    });
  }
  // Let writes flow, then kill the daemon while writers are mid-request.
  for (;;) {
    {
      std::lock_guard lock(mu);
      if (acked.size() >= 40) break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  stop(SIGKILL);
  go = false;
  for (auto& t : writers) t.join();

  std::string db = state_ + "/storcrypt.db";
  ProcessResult ic = run({"sqlite3", db, "PRAGMA integrity_check;"});
  EXPECT_EQ(ic.exit_code, 0) << ic.err;
  EXPECT_EQ(ic.out, "ok\n");

  start();
  ProcessResult ic2 = run({"sqlite3", db, "PRAGMA integrity_check;"});
  EXPECT_EQ(ic2.out, "ok\n");
  json l = cli_json({"event", "list", "--code", "1099", "--limit", "10000"});
  std::set<int64_t> present;
  for (const auto& e : l["result"]["events"]) present.insert(e["id"].get<int64_t>());
  ASSERT_GE(acked.size(), 40u);
  for (int64_t id : acked) EXPECT_TRUE(present.count(id)) << "acknowledged event " << id << " lost";
  // The restart noticed the unclean shutdown.
  json unclean = cli_json({"event", "list", "--code", "1001"});
  EXPECT_EQ(unclean["result"]["events"].size(), 1u);
}

TEST_F(Daemon, GracefulShutdownOnSigterm) {
  start();
  stop(SIGTERM);
  EXPECT_FALSE(std::filesystem::exists(sock_)) << "socket left behind";
  start();
  json unclean = cli_json({"event", "list", "--code", "1001"});
  EXPECT_TRUE(unclean["result"]["events"].empty()) << "clean stop reported as unclean";
}

TEST_F(Daemon, SecondDaemonRefused) {
  start();
  ProcessResult r = run({STORCRYPTD_BIN, "--config", conf_, "--foreground"});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("another storcryptd"), std::string::npos) << r.err;
  EXPECT_EQ(cli({"system", "status"}).exit_code, 0);  // the first one is untouched
}

TEST_F(Daemon, BadConfigNamesLineAndKey) {
  write_config("log_levle = info\n");
  ProcessResult r = run({STORCRYPTD_BIN, "--config", conf_, "--foreground"});
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_NE(r.err.find(conf_ + ":5: log_levle: unknown key"), std::string::npos) << r.err;
  ProcessResult m = run({STORCRYPTD_BIN, "--config", dir_ + "/missing.conf", "--foreground"});
  EXPECT_EQ(m.exit_code, 2);
  EXPECT_NE(m.err.find("missing.conf"), std::string::npos) << m.err;
}

TEST_F(Daemon, NonRootNonGroupUserRefused) {
  STORCRYPT_REQUIRE(!storcrypt::testing::find_program("setpriv").empty(), "needs setpriv");
  start();
  // A copy of the CLI that user 65534 can execute.
  std::string bin = dir_ + "/storcrypt";
  std::filesystem::copy_file(STORCRYPT_BIN, bin);
  ::chmod(bin.c_str(), 0755);
  auto as_nobody = [&](std::vector<std::string> extra_groups) {
    std::vector<std::string> argv{"setpriv", "--reuid=65534", "--regid=65534"};
    if (extra_groups.empty()) {
      argv.push_back("--clear-groups");
    } else {
      argv.push_back("--groups=" + extra_groups[0]);
    }
    for (const auto& a : {bin, std::string("--socket"), sock_, std::string("system"), std::string("status")}) {
      argv.push_back(a);
    }
    return run(argv);
  };
  // Layer 1: the socket's mode and group.
  ProcessResult r = as_nobody({});
  EXPECT_EQ(r.exit_code, 6) << r.err;
  EXPECT_NE(r.err.find("permission denied"), std::string::npos) << r.err;

  // Layer 2: with the file mode opened up, SO_PEERCRED still refuses.
  ASSERT_EQ(::chmod(sock_.c_str(), 0666), 0);
  r = as_nobody({});
  EXPECT_EQ(r.exit_code, 6) << r.err;
  EXPECT_NE(r.err.find("uid 65534 may not use the storcrypt API"), std::string::npos) << r.err;

  // Control: the same user as a member of group storcrypt is served.
  r = as_nobody({std::to_string(getgrnam("storcrypt")->gr_gid)});
  EXPECT_EQ(r.exit_code, 0) << r.err;
}

}  // namespace

namespace {

// cert/truststore nouns, judged by the openssl command.
class CertNoun : public Daemon {
 protected:
  void SetUp() override {
    Daemon::SetUp();
    if (IsSkipped() || HasFatalFailure()) return;
    STORCRYPT_REQUIRE(!storcrypt::testing::find_program("openssl").empty(), "needs the openssl program");
  }
  std::string path(const std::string& name) { return dir_ + "/" + name; }
  ProcessResult openssl(std::vector<std::string> args) {
    args.insert(args.begin(), "openssl");
    return run(args);
  }
  // A foreign CA made with openssl (EC P-384).
  void make_foreign_ca(const std::string& name) {
    ASSERT_EQ(openssl({"req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-384", "-nodes", "-keyout",
                       path(name + ".key"), "-out", path(name + ".pem"), "-days", "365", "-subj",
                       "/CN=" + name + " Foreign CA/O=Partner", "-addext", "basicConstraints=critical,CA:TRUE",
                       "-addext", "keyUsage=critical,keyCertSign,cRLSign"})
                  .exit_code,
              0);
  }
  std::string fingerprint(const std::string& pem_file) {
    ProcessResult r = openssl({"x509", "-in", pem_file, "-noout", "-fingerprint", "-sha256"});
    auto eq = r.out.find('=');
    std::string fp = eq == std::string::npos ? "" : r.out.substr(eq + 1);
    while (!fp.empty() && (fp.back() == '\n' || fp.back() == '\r')) fp.pop_back();
    return fp;
  }
};

TEST_F(CertNoun, CreateInternalShowAndExportRoot) {
  start();
  ProcessResult c = cli({"cert", "create", "--cn", "node1.example", "--org", "Example", "--country", "DE", "--dns",
                         "node1.example", "--ip", "192.0.2.1"});
  ASSERT_EQ(c.exit_code, 0) << c.err;
  EXPECT_NE(c.out.find("subject:     CN=node1.example"), std::string::npos) << c.out;

  json show = cli_json({"cert", "show"});
  ASSERT_EQ(show["ok"], true) << show.dump();
  EXPECT_EQ(show["result"]["mode"], "internal");
  EXPECT_EQ(show["result"]["expiry"], "ok");
  EXPECT_EQ(show["result"]["endpoint"]["ip_addresses"][0], "192.0.2.1");
  EXPECT_EQ(cli({"cert", "show"}).exit_code, 0);

  ProcessResult e = cli({"cert", "export-root", "--out", path("root.pem")});
  ASSERT_EQ(e.exit_code, 0) << e.err;
  // openssl agrees on the root's fingerprint and that it is a CA.
  EXPECT_EQ(fingerprint(path("root.pem")), show["result"]["root"]["sha256_fingerprint"].get<std::string>());
  ProcessResult text = openssl({"x509", "-in", path("root.pem"), "-noout", "-text"});
  EXPECT_NE(text.out.find("CA:TRUE"), std::string::npos);
  EXPECT_EQ(show["result"]["endpoint"]["issuer"], show["result"]["root"]["subject"]);
  // To stdout as well.
  ProcessResult e2 = cli({"cert", "export-root"});
  EXPECT_NE(e2.out.find("-----BEGIN CERTIFICATE-----"), std::string::npos);

  // Doctor reports the certificates' expiry classes.
  json doc = cli_json({"system", "doctor"});
  bool endpoint_ok = false;
  for (const auto& ch : doc["result"]["checks"]) {
    if (ch["area"] == "certificates" && ch["check"] == "endpoint") endpoint_ok = ch["status"] == "ok";
  }
  EXPECT_TRUE(endpoint_ok) << doc.dump(2);
}

TEST_F(CertNoun, CsrSignedByForeignCaInstallsAndDoctorWarnsOnExpiry) {
  start();
  ProcessResult csr = cli({"cert", "csr", "--cn", "node2.example", "--dns", "node2.example", "--out", path("n2.csr")});
  ASSERT_EQ(csr.exit_code, 0) << csr.err;
  ASSERT_EQ(openssl({"req", "-in", path("n2.csr"), "-noout", "-verify"}).exit_code, 0);
  make_foreign_ca("partner");
  std::ofstream(path("ext.cnf")) << "basicConstraints=CA:FALSE\nkeyUsage=digitalSignature\n"
                                    "extendedKeyUsage=serverAuth,clientAuth\nsubjectAltName=DNS:node2.example\n";
  // 20 days: inside the 30-day warning window.
  ProcessResult sign =
      openssl({"x509", "-req", "-in", path("n2.csr"), "-CA", path("partner.pem"), "-CAkey", path("partner.key"),
               "-CAcreateserial", "-days", "20", "-extfile", path("ext.cnf"), "-out", path("n2.pem")});
  ASSERT_EQ(sign.exit_code, 0) << sign.err;
  ProcessResult inst = cli({"cert", "install", path("n2.pem")});
  ASSERT_EQ(inst.exit_code, 0) << inst.err;
  json show = cli_json({"cert", "show"});
  EXPECT_EQ(show["result"]["mode"], "external");
  EXPECT_EQ(show["result"]["expiry"], "warning");
  EXPECT_EQ(show["result"]["endpoint"]["sha256_fingerprint"].get<std::string>(), fingerprint(path("n2.pem")));

  json doc = cli_json({"system", "doctor"});
  // Overall: at least a warning (the host kernel may add errors of its own, e.g. no ESP).
  EXPECT_NE(doc["result"]["status"], "ok") << doc.dump(2);
  bool warned = false;
  for (const auto& ch : doc["result"]["checks"]) {
    if (ch["area"] == "certificates" && ch["check"] == "endpoint") {
      warned = ch["status"] == "warning" && ch.contains("fix");
    }
  }
  EXPECT_TRUE(warned) << doc.dump(2);
}

TEST_F(CertNoun, BadInputGivesClearErrors) {
  start();
  std::ofstream(path("garbage.pem"))
      << "-----BEGIN CERTIFICATE-----\nthis is not base64 !!!\n-----END CERTIFICATE-----\n";
  json g = cli_json({"cert", "install", path("garbage.pem")});
  EXPECT_EQ(g["exit_code"], 2);
  EXPECT_EQ(g["error"]["name"], "xCertGarbage") << g.dump();
  ProcessResult gh = cli({"cert", "install", path("garbage.pem")});
  EXPECT_EQ(gh.exit_code, 2);
  EXPECT_NE(gh.err.find("fix:"), std::string::npos) << gh.err;

  std::ofstream(path("text.txt")) << "hello\n";
  EXPECT_EQ(cli({"cert", "install", path("text.txt")}).exit_code, 2);
  std::ofstream(path("empty.pem")) << "";
  ProcessResult empty = cli({"cert", "install", path("empty.pem")});
  EXPECT_EQ(empty.exit_code, 2);
  EXPECT_NE(empty.err.find("is empty"), std::string::npos) << empty.err;

  ProcessResult missing = cli({"cert", "install", path("nope.pem")});
  EXPECT_EQ(missing.exit_code, 3) << missing.err;
  EXPECT_NE(missing.err.find("nope.pem"), std::string::npos) << missing.err;

  // Nothing to install against yet: no CSR key, no endpoint.
  make_foreign_ca("other");
  json nokey = cli_json({"cert", "install", path("other.pem")});
  EXPECT_EQ(nokey["exit_code"], 3) << nokey.dump();
  EXPECT_EQ(nokey["error"]["name"], "xCertNoKey") << nokey.dump();
  json noroot = cli_json({"cert", "export-root"});
  EXPECT_EQ(noroot["exit_code"], 3);
  EXPECT_EQ(noroot["error"]["name"], "xCertNoInternalRoot") << noroot.dump();

  // A valid leaf for somebody else's key, once this system has an endpoint.
  ASSERT_EQ(cli({"cert", "create", "--cn", "mine"}).exit_code, 0);
  ASSERT_EQ(openssl({"req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-384", "-nodes", "-keyout",
                     path("x.key"), "-out", path("x.csr"), "-subj", "/CN=mine"})
                .exit_code,
            0);
  std::ofstream(path("leaf.cnf")) << "basicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth,clientAuth\n";
  ASSERT_EQ(openssl({"x509", "-req", "-in", path("x.csr"), "-CA", path("other.pem"), "-CAkey", path("other.key"),
                     "-CAcreateserial", "-days", "90", "-extfile", path("leaf.cnf"), "-out", path("leaf.pem")})
                .exit_code,
            0);
  json mismatch = cli_json({"cert", "install", path("leaf.pem")});
  EXPECT_EQ(mismatch["exit_code"], 2) << mismatch.dump();
  EXPECT_EQ(mismatch["error"]["name"], "xCertKeyMismatch") << mismatch.dump();
  // A CA certificate is not an endpoint certificate.
  json ca = cli_json({"cert", "install", path("other.pem")});
  EXPECT_EQ(ca["exit_code"], 2) << ca.dump();

  json country = cli_json({"cert", "create", "--cn", "n", "--country", "DEU"});
  EXPECT_EQ(country["exit_code"], 2);
  EXPECT_EQ(country["error"]["name"], "xCertBadSubject") << country.dump();
  json san = cli_json({"cert", "csr", "--cn", "n", "--ip", "300.1.1.1"});
  EXPECT_EQ(san["exit_code"], 2);
  EXPECT_EQ(san["error"]["name"], "xCertBadSan") << san.dump();
  json kt = cli_json({"cert", "create", "--cn", "n", "--key-type", "dsa-512"});
  EXPECT_EQ(kt["exit_code"], 2);
  EXPECT_EQ(kt["error"]["name"], "xCertBadKeyType") << kt.dump();

  ProcessResult nocn = cli({"cert", "create"});
  EXPECT_EQ(nocn.exit_code, 1);
  EXPECT_NE(nocn.err.find("--cn"), std::string::npos) << nocn.err;
  EXPECT_EQ(cli({"cert", "create", "--cn", "n", "--days", "0"}).exit_code, 1);

  make_foreign_ca("p");
  json use = cli_json({"truststore", "add", path("p.pem"), "--use", "ipsec,smtp"});
  EXPECT_EQ(use["exit_code"], 2);
  EXPECT_EQ(use["error"]["name"], "xTrustBadUse") << use.dump();
  EXPECT_EQ(cli({"truststore", "add", path("p.pem")}).exit_code, 1);  // --use is required
  EXPECT_EQ(cli({"truststore", "remove"}).exit_code, 1);
}

TEST_F(CertNoun, TruststoreAddListRemove) {
  start();
  // A partner chain made with openssl: root -> intermediate.
  make_foreign_ca("proot");
  std::ofstream(path("int.cnf"))
      << "basicConstraints=critical,CA:TRUE,pathlen:0\nkeyUsage=critical,keyCertSign,cRLSign\n";
  ASSERT_EQ(openssl({"req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-384", "-nodes", "-keyout",
                     path("int.key"), "-out", path("int.csr"), "-subj", "/CN=Partner Intermediate/O=Partner"})
                .exit_code,
            0);
  ASSERT_EQ(openssl({"x509", "-req", "-in", path("int.csr"), "-CA", path("proot.pem"), "-CAkey", path("proot.key"),
                     "-CAcreateserial", "-days", "200", "-extfile", path("int.cnf"), "-out", path("int.pem")})
                .exit_code,
            0);
  {
    std::ofstream bundle(path("bundle.pem"));
    bundle << std::ifstream(path("int.pem")).rdbuf() << std::ifstream(path("proot.pem")).rdbuf();
  }
  ProcessResult add = cli({"truststore", "add", path("bundle.pem"), "--use", "ipsec,kmip"});
  ASSERT_EQ(add.exit_code, 0) << add.err;
  json list = cli_json({"truststore", "list"});
  ASSERT_EQ(list["ok"], true) << list.dump();
  std::set<std::string> fps;
  for (const auto& e : list["result"]["entries"]) {
    fps.insert(e["sha256_fingerprint"].get<std::string>());
    EXPECT_EQ(e["uses"], json({"ipsec", "kmip"})) << e.dump();
  }
  EXPECT_EQ(fps, (std::set<std::string>{fingerprint(path("int.pem")), fingerprint(path("proot.pem"))}));
  ProcessResult l = cli({"truststore", "list"});
  EXPECT_NE(l.out.find("CN=Partner Intermediate"), std::string::npos) << l.out;

  // Only the intermediate, without its root: refused, nothing added.
  ASSERT_EQ(cli({"truststore", "remove", fingerprint(path("int.pem"))}).exit_code, 0);
  ASSERT_EQ(cli({"truststore", "remove", fingerprint(path("proot.pem"))}).exit_code, 0);
  EXPECT_TRUE(cli_json({"truststore", "list"})["result"]["entries"].empty());
  json alone = cli_json({"truststore", "add", path("int.pem"), "--use", "ipsec"});
  EXPECT_NE(alone["exit_code"], 0) << alone.dump();
  EXPECT_EQ(alone["error"]["name"], "xCertMissingIntermediate") << alone.dump();
  EXPECT_TRUE(cli_json({"truststore", "list"})["result"]["entries"].empty());

  json unknown = cli_json({"truststore", "remove", "AB:CD:EF:01:23:45:67:89"});
  EXPECT_EQ(unknown["exit_code"], 3) << unknown.dump();
  EXPECT_EQ(unknown["error"]["name"], "xTrustEntryNotFound") << unknown.dump();
  std::ofstream(path("junk.pem")) << "-----BEGIN CERTIFICATE-----\n@@@@\n-----END CERTIFICATE-----\n";
  json junk = cli_json({"truststore", "add", path("junk.pem"), "--use", "ipsec"});
  EXPECT_EQ(junk["exit_code"], 2) << junk.dump();
  EXPECT_EQ(junk["error"]["name"], "xCertGarbage") << junk.dump();
}

TEST_F(CertNoun, HelpForCertAndTruststoreVerbs) {
  for (std::vector<std::string> args : {std::vector<std::string>{"cert", "--help"},
                                        {"cert", "create", "--help"},
                                        {"cert", "csr", "--help"},
                                        {"cert", "install", "--help"},
                                        {"cert", "show", "--help"},
                                        {"cert", "export-root", "--help"},
                                        {"truststore", "--help"},
                                        {"truststore", "add", "--help"},
                                        {"truststore", "list", "--help"},
                                        {"truststore", "remove", "--help"}}) {
    ProcessResult r = cli(args);
    EXPECT_EQ(r.exit_code, 0) << args[0] << " " << args[1];
    EXPECT_NE(r.out.find("Usage"), std::string::npos);
  }
}

}  // namespace

namespace {

// The daemon's log (debug level) never carries key material: create a key
// pair through the API and look for the private key's PEM lines in the log.
TEST_F(CertNoun, LogNeverContainsKeyMaterial) {
  std::string log = path("daemon.log");
  start_logged(log);
  ASSERT_EQ(cli({"cert", "create", "--cn", "logcheck"}).exit_code, 0);
  ASSERT_EQ(cli({"cert", "csr", "--cn", "logcheck2", "--out", path("c.csr")}).exit_code, 0);
  stop(SIGTERM);

  std::string text;
  {
    std::ifstream in(log);
    text.assign(std::istreambuf_iterator<char>(in), {});
  }
  EXPECT_NE(text.find("cert.create ok"), std::string::npos) << text;  // the log is the one we think
  EXPECT_EQ(text.find("PRIVATE KEY"), std::string::npos) << text;
  int key_files = 0;
  for (const auto& f : std::filesystem::recursive_directory_iterator(state_ + "/certs")) {
    if (f.path().filename() != "key.pem") continue;
    ++key_files;
    struct stat s {};
    ASSERT_EQ(::stat(f.path().c_str(), &s), 0);
    EXPECT_EQ(s.st_mode & 077, 0u) << f.path() << " is readable by others";
    std::ifstream in(f.path());
    std::string line;
    while (std::getline(in, line)) {
      if (line.size() < 40 || line.rfind("-----", 0) == 0) continue;
      EXPECT_EQ(text.find(line), std::string::npos) << "key line from " << f.path() << " found in the log";
    }
  }
  EXPECT_GE(key_files, 2);  // endpoint key and pending CSR key
}

}  // namespace
