// storcrypt IKEv2: the engine of one network namespace, sans-IO.
//
// Holds the configured peers and their IKE SAs. Received datagrams go to
// receive(): IKE_SA_INIT requests create responder SAs (the peer is found by
// the datagram's remote address, and local address when configured), every
// other message is dispatched by our SPI. initiate()/terminate() bring a peer
// up and down; list() reports IKE and CHILD SAs with suite, SPIs, state and
// the kernel's counters; events (up, down, failed + reason, auth failure with
// the peer certificate's subject/issuer) go to a callback and a queue.
//
// The caller owns the I/O: it feeds receive() from the UDP sockets (ike/udp.h)
// and calls tick() regularly (every ~100 ms) with a monotonic clock.
// Random SPIs and nonces come from OpenSSL RAND_bytes. Nothing here logs.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "storcrypt/common/result.h"
#include "storcrypt/common/secret.h"
#include "storcrypt/ike/ike_sa.h"
#include "storcrypt/ike/kernel.h"
#include "storcrypt/ike/transport.h"

namespace storcrypt::ike {

/// Denial-of-service limits on half-open IKE SAs: responder SAs whose
/// IKE_SA_INIT we answered and whose IKE_AUTH has not arrived (they are
/// dropped after the peer's half-open timeout, 30 s by default). The defaults
/// follow strongSwan's charon.cookie_threshold (10), cookie_threshold_ip (3),
/// block_threshold (5) and init_limit_half_open (0 there = unlimited; 1000
/// here). The checks run in this order on an IKE_SA_INIT request from a
/// configured peer's address, before any per-request state (no IkeSa, no DH):
/// over half_open_limit overall -> dropped; over block_threshold from its
/// source address -> dropped; cookies required (require_cookies, or at
/// cookie_threshold overall, or at cookie_threshold_ip from its source) and no
/// valid COOKIE first -> answered with a COOKIE notify only (RFC 7296 §2.6).
/// Requests from addresses that are no configured peer's are dropped first.
struct EngineOptions {
  /// Require a COOKIE from every new IKE_SA_INIT, whatever the load.
  bool require_cookies = false;
  /// Half-open IKE SAs overall from which new ones need a COOKIE (0: always).
  std::size_t cookie_threshold = 10;
  /// Half-open IKE SAs from one source address from which that address needs a COOKIE (0: always).
  std::size_t cookie_threshold_ip = 3;
  /// Half-open IKE SAs from one source address from which its IKE_SA_INIT requests are dropped.
  std::size_t block_threshold = 5;
  /// Half-open IKE SAs overall from which every IKE_SA_INIT request is dropped.
  std::size_t half_open_limit = 1000;
  /// The COOKIE secret is replaced this often (on tick()); cookies made with
  /// the one before stay valid, so a cookie lives between one and two periods.
  std::chrono::seconds cookie_secret_lifetime{120};
};

/// What the denial-of-service checks did (since construction) and the
/// half-open IKE SAs now.
struct EngineDosStats {
  std::size_t half_open = 0;        ///< responder IKE SAs waiting for IKE_AUTH
  std::uint64_t cookies_sent = 0;   ///< IKE_SA_INIT requests answered with a COOKIE
  std::uint64_t bad_cookies = 0;    ///< of those, requests that carried an invalid or stale COOKIE
  std::uint64_t blocked = 0;        ///< dropped: block_threshold of their source address
  std::uint64_t over_limit = 0;     ///< dropped: half_open_limit
};

struct ChildSaStatus {
  ChildSaInfo info;
  std::optional<ChildSaCounters> counters;  ///< nullopt when the kernel could not say
};

struct IkeSaStatus {
  std::string peer;
  IkeRole role = IkeRole::kInitiator;
  IkeState state = IkeState::kIdle;
  std::uint64_t spi_i = 0, spi_r = 0;
  Suite suite;
  Endpoint local, remote;
  bool nat = false;
  std::vector<ChildSaStatus> children;
};

class Engine {
 public:
  Engine(Transport& transport, ChildSaKernel& kernel, EngineOptions options = {});
  ~Engine();
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  /// Add a peer (kConflict when the name exists, kInvalidInput when the
  /// configuration is unusable: no certificate/key, no proposals, no selectors).
  Status add_peer(PeerConfig cfg);
  /// Remove a peer; its IKE SAs are deleted (DELETE sent) and dropped.
  Status remove_peer(const std::string& name);
  std::vector<std::string> peers() const;

  /// Start an IKE SA (initiator) for a peer. kConflict when one is already
  /// up or being set up.
  Status initiate(const std::string& name);
  /// Delete every IKE SA of a peer (DELETE; half-open ones are dropped).
  Status terminate(const std::string& name);
  /// One more CHILD_SA on the peer's established IKE SA.
  Status create_child(const std::string& name);
  /// Delete one CHILD_SA (by our inbound SPI) of the peer's IKE SA.
  Status delete_child(const std::string& name, std::uint32_t spi_in);
  /// Rekey one CHILD_SA (by our inbound SPI) of the peer's IKE SA, make-before-break.
  Status rekey_child(const std::string& name, std::uint32_t spi_in);
  /// Rekey the peer's established IKE SA (its CHILD_SAs move to the new one).
  Status rekey_ike(const std::string& name);
  /// Liveness check on the peer's established IKE SA.
  Status ping(const std::string& name);

  /// A datagram from the transport (IKE message, non-ESP marker stripped).
  void receive(const Datagram& d);
  /// Retransmissions and timeouts; then SAs that ended are dropped.
  void tick(std::chrono::steady_clock::time_point now);

  std::vector<IkeSaStatus> list() const;
  EngineDosStats dos_stats() const;

  /// Events are queued (take_events()) and, when set, passed to the callback.
  void set_event_callback(std::function<void(const Event&)> cb) { callback_ = std::move(cb); }
  std::vector<Event> take_events();

 private:
  IkeSaEnv env();
  IkeSa* established_sa(const std::string& name);
  void respond_unprotected(const Datagram& d, const Header& req, std::uint16_t notify_type, Bytes data);
  /// RFC 7296 §2.6 COOKIE for this request under secret generation `version`
  /// (empty when that generation is not kept).
  Bytes cookie_for(const Datagram& d, const Header& h, const Bytes& ni, std::uint8_t version) const;
  /// Whether a new IKE_SA_INIT request may create an IKE SA; answers or drops it when not.
  bool admit_sa_init(const Datagram& d, const Header& h, const Message& m);
  struct HalfOpen {
    std::size_t total = 0, from_source = 0;
  };
  HalfOpen count_half_open(const IpAddress& source) const;
  void rotate_cookie_secret(std::chrono::steady_clock::time_point now);
  void reap();

  Transport& transport_;
  ChildSaKernel& kernel_;
  EngineOptions options_;
  /// The current COOKIE secret (generation cookie_version_) and the one before.
  SecretBytes cookie_secret_, previous_cookie_secret_;
  std::uint8_t cookie_version_ = 0;
  std::optional<std::chrono::steady_clock::time_point> cookie_secret_since_;
  EngineDosStats dos_;
  std::map<std::string, PeerConfig> peers_;
  std::map<std::uint64_t, std::unique_ptr<IkeSa>> sas_;  ///< by our SPI
  std::deque<Event> events_;
  std::function<void(const Event&)> callback_;
  /// Peers to restart after they were found dead (dpd_action kRestart): when
  /// the next attempt is due (time_point::max(): an attempt is under way).
  /// An attempt that does not come up is retried kRestartRetry later; the
  /// entry goes once an IKE SA of the peer is established, or with
  /// terminate()/remove_peer().
  std::map<std::string, std::chrono::steady_clock::time_point> restarts_;
};

/// How long after a failed restart attempt the next one starts.
inline constexpr std::chrono::seconds kRestartRetry{30};

}  // namespace storcrypt::ike
