#include "pykmip_fixture.h"

#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <thread>

#include "storcrypt/testing/environment.h"
#include "storcrypt/testing/process.h"

namespace storcrypt::kmip::testing {
namespace {

const char* kPython = "/usr/bin/python3";
const char* kServer = "/usr/bin/pykmip-server";

std::string make_temp_dir(const char* prefix) {
  std::string t = std::string("/tmp/") + prefix + "XXXXXX";
  if (mkdtemp(t.data()) == nullptr) return {};
  return t;
}

bool write_file(const std::string& path, const std::string& content) {
  std::ofstream f(path);
  f << content;
  return static_cast<bool>(f);
}

bool openssl(const std::vector<std::string>& args, std::string& error) {
  std::vector<std::string> argv{"openssl"};
  argv.insert(argv.end(), args.begin(), args.end());
  auto r = storcrypt::testing::run(argv);
  if (r.exit_code != 0) {
    error = "openssl " + args[0] + " failed: " + r.err;
    return false;
  }
  return true;
}

// Issue a certificate for a new key signed by ca/ca_key with the extension text.
bool issue(const std::string& dir, const std::string& name, const std::string& cn, bool rsa, const std::string& ca,
           const std::string& ca_key, const std::string& ext, int serial, std::string& error) {
  std::string key = dir + "/" + name + ".key", csr = dir + "/" + name + ".csr", crt = dir + "/" + name + ".pem",
              extf = dir + "/" + name + ".ext";
  std::vector<std::string> req{"req", "-new", "-nodes", "-keyout", key, "-out", csr, "-subj", "/CN=" + cn};
  if (rsa) {
    req.insert(req.begin() + 2, {"-newkey", "rsa:2048"});
  } else {
    req.insert(req.begin() + 2, {"-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"});
  }
  if (!openssl(req, error)) return false;
  chmod(key.c_str(), 0600);
  if (!write_file(extf, ext)) {
    error = "cannot write " + extf;
    return false;
  }
  return openssl({"x509", "-req", "-in", csr, "-CA", ca, "-CAkey", ca_key, "-set_serial", std::to_string(serial),
                  "-days", "2", "-out", crt, "-extfile", extf},
                 error);
}

bool make_ca(const std::string& dir, const std::string& name, std::string& error) {
  std::string key = dir + "/" + name + ".key";
  bool ok = openssl({"req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", key,
                     "-out", dir + "/" + name + ".pem", "-days", "2", "-subj", "/CN=storcrypt test " + name, "-addext",
                     "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign"},
                    error);
  chmod(key.c_str(), 0600);
  return ok;
}

}  // namespace

bool pykmip_available(std::string& why) {
  if (access(kPython, X_OK) != 0 || access(kServer, R_OK) != 0) {
    why = "needs /usr/bin/python3 and /usr/bin/pykmip-server (python3-pykmip)";
    return false;
  }
  if (storcrypt::testing::find_program("openssl").empty()) {
    why = "needs the openssl command";
    return false;
  }
  return true;
}

namespace {
TestPki pki_paths(const std::string& d) {
  TestPki p;
  p.dir = d;
  p.ca = d + "/ca.pem";
  p.server_cert = d + "/server.pem";
  p.server_key = d + "/server.key";
  p.client_cert = d + "/client.pem";
  p.client_key = d + "/client.key";
  p.noauth_cert = d + "/noauth.pem";
  p.noauth_key = d + "/noauth.key";
  p.serveronly_cert = d + "/serveronly.pem";
  p.serveronly_key = d + "/serveronly.key";
  p.other_ca = d + "/other-ca.pem";
  p.foreign_cert = d + "/foreign.pem";
  p.foreign_key = d + "/foreign.key";
  return p;
}

bool fresh_cache(const std::string& d) {
  struct stat st {};
  if (stat((d + "/complete").c_str(), &st) != 0) return false;
  return time(nullptr) - st.st_mtime < 12 * 3600;  // certificates are valid for 2 days
}
}  // namespace

TestPki generate_pki(const std::string& d, std::string& error) {
  TestPki p = pki_paths(d);
  const std::string server_ext =
      "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\nbasicConstraints=CA:FALSE\n"
      "keyUsage=critical,digitalSignature,keyEncipherment\n";
  const std::string client_ext =
      "extendedKeyUsage=clientAuth\nbasicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\n";
  // No extendedKeyUsage at all: OpenSSL accepts it for any purpose, PyKMIP's
  // session then refuses it for lacking clientAuth.
  const std::string noauth_ext = "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\n";
  // EKU present but serverAuth only: the TLS layer rejects it as a client certificate.
  const std::string serveronly_ext =
      "extendedKeyUsage=serverAuth\nbasicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\n";
  if (!make_ca(d, "ca", error) || !make_ca(d, "other-ca", error)) return p;
  // PyKMIP only negotiates ECDHE-RSA CBC suites, so the server key is RSA.
  if (!issue(d, "server", "127.0.0.1", true, d + "/ca.pem", d + "/ca.key", server_ext, 2, error)) return p;
  if (!issue(d, "client", "storcrypt-node", false, d + "/ca.pem", d + "/ca.key", client_ext, 3, error)) return p;
  if (!issue(d, "noauth", "storcrypt-node", false, d + "/ca.pem", d + "/ca.key", noauth_ext, 4, error)) return p;
  if (!issue(d, "serveronly", "storcrypt-node", false, d + "/ca.pem", d + "/ca.key", serveronly_ext, 6, error))
    return p;
  if (!issue(d, "foreign", "storcrypt-node", false, d + "/other-ca.pem", d + "/other-ca.key", client_ext, 5, error))
    return p;
  return p;
}

// Each ctest test is its own process, so the generated PKI (about 2 s of
// openssl calls) is cached per user for 12 hours and shared by the tests.
TestPki make_pki(std::string& error) {
  std::string cache = "/tmp/storcrypt-kmip-test-pki-v1-" + std::to_string(geteuid());
  if (fresh_cache(cache)) return pki_paths(cache);
  std::string tmp = make_temp_dir("storcrypt-kmip-pki-");
  if (tmp.empty()) {
    error = "mkdtemp failed";
    return {};
  }
  TestPki p = generate_pki(tmp, error);
  if (!error.empty()) return p;
  write_file(tmp + "/complete", "ok\n");
  storcrypt::testing::run({"rm", "-rf", cache});
  if (rename(tmp.c_str(), cache.c_str()) == 0) return pki_paths(cache);
  return p;  // another test won the race: use our own copy
}

std::uint16_t free_port() {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = 0;
  socklen_t len = sizeof a;
  std::uint16_t port = 0;
  if (bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0 &&
      getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) == 0)
    port = ntohs(a.sin_port);
  close(fd);
  return port;
}

static bool port_open(std::uint16_t port) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons(port);
  bool ok = connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
  close(fd);
  return ok;
}

bool PyKmipServer::start(const TestPki& pki, std::string& error) {
  dir_ = make_temp_dir("storcrypt-pykmip-");
  if (dir_.empty()) {
    error = "mkdtemp failed";
    return false;
  }
  mkdir((dir_ + "/policies").c_str(), 0700);
  port_ = free_port();
  log_ = dir_ + "/server.log";
  std::string conf = dir_ + "/server.conf";
  // TLS1.2 auth suite: PyKMIP pins TLS 1.2; its default cipher list is used
  // (the client's list must overlap with it).
  std::string text =
      "[server]\nhostname=127.0.0.1\nport=" + std::to_string(port_) + "\ncertificate_path=" + pki.server_cert +
      "\nkey_path=" + pki.server_key + "\nca_path=" + pki.ca + "\nauth_suite=TLS1.2\npolicy_path=" + dir_ +
      "/policies\nenable_tls_client_auth=True\nlogging_level=INFO\ndatabase_path=" + dir_ + "/pykmip.sqlite\n";
  if (!write_file(conf, text)) {
    error = "cannot write " + conf;
    return false;
  }
  // pykmip-server is not one process: its main process forks a
  // multiprocessing.Manager server and a PolicyDirectoryMonitor process.
  // SIGKILL to the main process alone (as this fixture once did) leaves both
  // children running, orphaned to PID 1, after every test. So the server runs
  // in its own process group under a small watchdog (the group leader) that
  //  - kills the whole group when the server's main process exits,
  //  - kills the whole group when this test process dies or closes the
  //    lifeline pipe (crash, ctest timeout: no destructor runs then),
  // and kill_now() kills the group directly.
  int lifeline[2];
  if (pipe2(lifeline, O_CLOEXEC) != 0) {
    error = "pipe2 failed";
    return false;
  }
  const std::string out = dir_ + "/stdout.txt";
  const char* argv[] = {kPython, kServer, "-f", conf.c_str(), "-l", log_.c_str(), nullptr};
  pid_t pid = fork();
  if (pid < 0) {
    close(lifeline[0]);
    close(lifeline[1]);
    error = "fork failed";
    return false;
  }
  if (pid == 0) {
    // Watchdog. Only async-signal-safe calls: the test process has threads.
    setpgid(0, 0);
    if (dup2(lifeline[0], 3) < 0) _exit(127);
    close_range(4, ~0U, 0);  // also drops the write end and other servers' lifelines
    pid_t server = fork();
    if (server < 0) _exit(127);
    if (server == 0) {
      prctl(PR_SET_PDEATHSIG, SIGKILL);
      close(3);
      int fd = open(out.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
      if (fd < 0 || dup2(fd, 1) < 0 || dup2(fd, 2) < 0) _exit(127);
      execv(kPython, const_cast<char* const*>(argv));
      _exit(127);
    }
    for (;;) {
      pollfd p{3, POLLIN, 0};
      int r = poll(&p, 1, 200);
      if (r > 0) kill(0, SIGKILL);  // lifeline closed (EOF): the group dies, this watchdog with it
      int st = 0;
      if (waitpid(server, &st, WNOHANG) == server) kill(0, SIGKILL);  // server gone: take its children along
    }
  }
  setpgid(pid, pid);  // also in the parent: no window where kill(-pid) misses
  close(lifeline[0]);
  lifeline_ = lifeline[1];
  pid_ = pid;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (std::chrono::steady_clock::now() < deadline) {
    if (port_open(port_)) return true;
    int st = 0;
    if (waitpid(pid_, &st, WNOHANG) == pid_) {
      pid_ = -1;
      std::ifstream in(dir_ + "/stdout.txt");
      std::string all((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
      error = "pykmip-server exited during startup: " + all.substr(all.size() > 2000 ? all.size() - 2000 : 0);
      return false;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  error = "pykmip-server did not listen on port " + std::to_string(port_) + " within 30 s";
  kill_now();
  return false;
}

void PyKmipServer::kill_now() {
  if (pid_ > 0) {
    ::kill(-pid_, SIGKILL);  // the watchdog's process group: server, its manager and monitor
    int st = 0;
    waitpid(pid_, &st, 0);
    // The group's other members were children of the server's main process:
    // init reaps them. Wait until none is left so nothing outlives the test.
    for (int i = 0; i < 200 && ::kill(-pid_, 0) == 0; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
    pid_ = -1;
  }
  if (lifeline_ >= 0) {
    close(lifeline_);
    lifeline_ = -1;
  }
}

PyKmipServer::~PyKmipServer() {
  kill_now();
  if (!dir_.empty() && std::getenv("STORCRYPT_KEEP_PYKMIP") == nullptr) storcrypt::testing::run({"rm", "-rf", dir_});
}

ClientConfig client_config(const TestPki& pki, const std::vector<std::uint16_t>& ports) {
  ClientConfig c;
  for (auto p : ports) c.servers.push_back(ServerEndpoint{"127.0.0.1", p, {}});
  c.tls.ca_file = pki.ca;
  c.tls.cert_file = pki.client_cert;
  c.tls.key_file = pki.client_key;
  c.connect_timeout = std::chrono::milliseconds(5000);
  c.io_timeout = std::chrono::milliseconds(15000);
  return c;
}

}  // namespace storcrypt::kmip::testing
