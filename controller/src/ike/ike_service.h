// storcrypt controller, IKEv2: the service behind the `ike` noun.
//
// Peers (IkePeerSpec) are stored in SQLite, component "ike":
//   ike_peers(name TEXT PRIMARY KEY, spec TEXT NOT NULL)   the spec as JSON
// One ike::Runner is started lazily (ensure_runner) through the
// IkeRunnerFactory seam; every stored peer is then added to its Engine. Our
// certificate, key and intermediates are the node's endpoint certificate
// (certs/, CertService); peers are validated by a PeerValidator over the
// truststore entries marked ipsec, rebuilt when a peer is added or brought up
// and when the truststore changed (CertService::trust_generation()).
//
// Engine events are queued by the Runner's callback (which runs with the
// Runner's mutex held) and raised into the event log by the service's own
// thread (codes in controller/ike.h).
//
// Thread safety: public members are called with `mu` held (ServiceMethods).
// Lock order: mu -> the Runner's mutex -> validator -> CertService.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "ike/ike_peer.h"
#include "nouns/cert_service.h"
#include "storcrypt/common/result.h"
#include "storcrypt/controller/db.h"
#include "storcrypt/controller/events.h"
#include "storcrypt/controller/ike.h"
#include "storcrypt/ike/engine.h"
#include "storcrypt/ike/peer_auth.h"
#include "storcrypt/ike/runner.h"

namespace storcrypt::controller {

/// The catalog entries of the ike noun's events (2020-2024).
std::vector<EventDef> ike_event_defs();

class IkeService {
 public:
  struct Deps {
    Db* db = nullptr;
    std::shared_ptr<CertService> certs;
    EventLog* events = nullptr;  ///< may be null (then events are only kept per peer)
    ike::RunnerOptions runner_options;
    IkeRunnerFactory factory;
    /// Every peer's half-open IKE SAs are dropped after this (storcrypt.conf
    /// ike_half_open_timeout_seconds).
    std::chrono::milliseconds half_open_timeout = std::chrono::seconds(30);
  };
  explicit IkeService(Deps deps);
  ~IkeService();
  IkeService(const IkeService&) = delete;
  IkeService& operator=(const IkeService&) = delete;

  std::mutex mu;  // every public member below is called with mu held

  /// Create/upgrade the table and read the peers (once, before use).
  Status load();
  static Status migrate(Db& db);

  /// Daemon start-up: when peers exist, start the runner and bring up the
  /// peers with start=start. Returns the first error (the rest still runs).
  Status start_up();

  /// Validate, start the runner if needed, add to the engine, store.
  Result<IkePeerSpec> add_peer(IkePeerSpec spec);
  /// Delete the peer's SAs (DELETE sent) and forget it.
  Status remove_peer(const std::string& name);
  Result<IkePeerSpec> peer(const std::string& name) const;
  std::vector<IkePeerSpec> peers() const;
  /// Initiate an IKE SA (starts the runner if needed).
  Status up(const std::string& name);
  /// Delete the peer's IKE SAs.
  Status down(const std::string& name);

  /// IKE SAs (of one peer when `peer` is set); empty when the runner is not running.
  std::vector<ike::IkeSaStatus> sas(const std::string& peer = "");
  bool running() const { return runner_ != nullptr; }
  /// The engine's half-open IKE SAs and COOKIE/drop counters (nullopt when not running).
  std::optional<ike::EngineDosStats> dos_stats();
  /// What the runner listens on (empty when not running or in memory).
  std::vector<ike::Endpoint> endpoints() const;

  /// The last engine event of a peer (kind name, reason, unix time).
  struct LastEvent {
    std::string kind;
    std::string reason;
    std::int64_t time = 0;
  };
  std::optional<LastEvent> last_event(const std::string& name) const;

 private:
  struct Validator;
  class EventPump;

  /// Start the runner (once); `adding_remote`: the address of a peer being
  /// added, whose stale policies stay like those of the stored peers.
  Status ensure_runner(const std::string& adding_remote = "");
  Result<ike::PeerConfig> engine_config(const IkePeerSpec& spec);
  Status engine_add(const IkePeerSpec& spec);
  bool engine_has(const std::string& name);
  /// Drop the stale policies (ike::Runner::prune_stale) of peers not
  /// configured; returns how many went (0 also when the kernel refused).
  std::size_t prune_stale(const std::string& also_keep = "");

  Deps deps_;
  std::map<std::string, IkePeerSpec> peers_;
  std::shared_ptr<Validator> validator_;
  std::shared_ptr<EventPump> pump_;
  std::unique_ptr<ike::Runner> runner_;
};

}  // namespace storcrypt::controller
