// storcrypt controller, KMIP faults (issue 17): a watcher on the daemon's
// Ticker (every kmip_watch_interval_seconds of storcrypt.conf, default 60)
// that looks at the key servers assigned to a key provider.
//
// KmipServerFault, one open event per key server, code by failure category
// of TestKeyServerKmip (short timeouts, network I/O without the service lock):
//   4010 connection (xKeyServerUnavailable)       error
//   4011 TLS (xKeyServerSslError)                 error
//   4012 authentication (xKeyServerAuthFailed,
//        xKeyServerInvalidAuth)                   error
//   4013 server error (xKeyServerFailed)          error
// Sense: keyServerID, keyServerName, node (this node's host name), hostname
// and port tried, category, error (the API error name), detail. A change of
// category marks the old event fixed and raises the new one; the event is
// marked fixed when a test of that server succeeds again (or the server is no
// longer assigned to a provider / deleted).
//
// KmipCertificateFault, one open event per certificate (each CA certificate of
// kmipCaCertificate, role "ca", and our client certificate, role "client"):
//   4020 less than 30 days left    warning
//   4021 less than 7 days left     error
//   4022 less than 3 days left     critical
//   4023 expired                   critical
//   4024 not yet valid             critical
// Raised once per class: a later class marks the earlier event fixed; a
// renewed (or removed) certificate marks its event fixed. Sense: keyServerID,
// keyServerName, node, role, subject, fingerprint, not_before, not_after,
// class.
//
// Open events are found again after a restart (their sense carries
// keyServerID, role and fingerprint), so a restart raises no duplicates.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "nouns/kmip_service.h"
#include "storcrypt/certs/certs.h"
#include "storcrypt/controller/events.h"

namespace storcrypt::controller {

namespace kmip_event {
inline constexpr int kServerConnection = 4010;
inline constexpr int kServerTls = 4011;
inline constexpr int kServerAuthentication = 4012;
inline constexpr int kServerError = 4013;
inline constexpr int kCertWithin30Days = 4020;
inline constexpr int kCertWithin7Days = 4021;
inline constexpr int kCertWithin3Days = 4022;
inline constexpr int kCertExpired = 4023;
inline constexpr int kCertNotYetValid = 4024;
}  // namespace kmip_event

/// Catalog entries of the codes above.
std::vector<EventDef> kmip_fault_events();

/// "connection", "tls", "authentication" or "server-error" for an
/// xKeyServer* error name (kmip_server_error()); its event code.
std::string kmip_fault_category(const std::string& error_name);
int kmip_server_fault_code(const std::string& category);
/// The event code of an expiry class (nullopt for kOk).
std::optional<int> kmip_cert_fault_code(certs::ExpiryClass c);

class KmipFaultWatcher {
 public:
  /// Test one key server: nullopt when it works, else the error (an
  /// xKeyServer* name, the message names the host).
  using TestFn = std::function<std::optional<Error>(const KmipKeyServer&)>;

  KmipFaultWatcher(EventLog& events, std::string node) : events_(events), node_(std::move(node)) {}

  /// One pass over `servers` (the ones assigned to a provider; a snapshot):
  /// certificates classified at `now`, each server tested with `test`.
  void pass(const std::vector<KmipKeyServer>& servers, const TestFn& test, certs::UnixTime now);

 private:
  struct Open {
    int code = 0;
    int64_t id = 0;
  };
  void load();
  void server_pass(const KmipKeyServer& s, const TestFn& test);
  void cert_pass(const KmipKeyServer& s, certs::UnixTime now, std::map<std::string, Open>& seen);

  EventLog& events_;
  std::string node_;
  bool loaded_ = false;
  std::map<int64_t, Open> server_open_;    ///< keyServerID -> its open KmipServerFault
  std::map<std::string, Open> cert_open_;  ///< "<server id> <role> <fingerprint>" -> open KmipCertificateFault
};

/// Starts the watcher of ctx (start hook); a no-op without events or database.
void start_kmip_fault_watcher(Context& ctx);

}  // namespace storcrypt::controller
