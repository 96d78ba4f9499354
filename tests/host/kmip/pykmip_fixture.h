// Test fixture: certificates generated with the openssl command at test time
// and PyKMIP servers (/usr/bin/pykmip-server, Debian bookworm) on free
// loopback ports, each with its own config and SQLite database in a temp dir.
// Shared by tests/host/kmip and tests/bench/kmip.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <vector>

#include "storcrypt/kmip/client.h"

namespace storcrypt::kmip::testing {

/// Paths of one generated PKI (in `dir`).
struct TestPki {
  std::string dir;
  std::string ca;  ///< CA that signed everything below
  std::string server_cert, server_key;
  std::string client_cert, client_key;          ///< EKU clientAuth, CN=storcrypt-node
  std::string noauth_cert, noauth_key;          ///< same CA, no extended key usage (so no clientAuth)
  std::string serveronly_cert, serveronly_key;  ///< same CA, EKU serverAuth only
  std::string other_ca;                         ///< unrelated CA
  std::string foreign_cert, foreign_key;        ///< client cert (clientAuth) signed by other_ca
};

/// Generate (or reuse the cached) PKI; empty `error` on success.
TestPki make_pki(std::string& error);
/// Generate a new PKI into directory `d`.
TestPki generate_pki(const std::string& d, std::string& error);

class PyKmipServer {
 public:
  PyKmipServer() = default;
  ~PyKmipServer();
  PyKmipServer(const PyKmipServer&) = delete;
  PyKmipServer& operator=(const PyKmipServer&) = delete;

  /// Start on a free 127.0.0.1 port; waits until it accepts TCP connections.
  bool start(const TestPki& pki, std::string& error);
  /// SIGKILL the server's whole process group (main process plus the
  /// multiprocessing children PyKMIP forks; simulates a crashed server) and reap.
  void kill_now();
  bool running() const { return pid_ > 0; }
  std::uint16_t port() const { return port_; }
  const std::string& log_path() const { return log_; }

 private:
  pid_t pid_ = -1;     ///< watchdog, leader of the server's process group
  int lifeline_ = -1;  ///< write end; the watchdog kills the group when it closes
  std::uint16_t port_ = 0;
  std::string dir_, log_;
};

/// Tools present (python3 with PyKMIP, pykmip-server, openssl)?
bool pykmip_available(std::string& why);

/// Client config for `ports` on 127.0.0.1 using the given client credentials.
ClientConfig client_config(const TestPki& pki, const std::vector<std::uint16_t>& ports);

/// A loopback port nothing listens on (bound then released).
std::uint16_t free_port();

}  // namespace storcrypt::kmip::testing
