// IkeService: see ike_service.h.
#include "ike/ike_service.h"

#include <openssl/evp.h>
#include <openssl/x509.h>

#include "storcrypt/ike/auth.h"

#include <fmt/format.h>

#include <algorithm>
#include <ctime>

namespace storcrypt::controller {

using nlohmann::json;

std::vector<EventDef> ike_event_defs() {
  return {
      {kIkeAuthFailedEvent,
       Severity::kError,
       "IKE authentication failure",
       {"the peer's certificate does not chain to an authority trusted for ipsec on this node",
        "this node's certificate is not trusted by the peer",
        "a certificate expired or is not yet valid (check the clocks)",
        "the peer's ID does not match its certificate or the configured --remote-id"},
       {"compare the certificate subject/issuer in the sense data with `storcrypt truststore list`",
        "add the peer's root with `storcrypt truststore add FILE --use ipsec`",
        "check `storcrypt cert show` on both nodes", "then retry with `storcrypt ike peer up PEER`"}},
      {kIkeUpEvent, Severity::kInfo, "IKE SA established", {"an IKE peer was brought up"}, {}},
      {kIkeDownEvent,
       Severity::kWarning,
       "IKE SA deleted",
       {"the peer or an operator took the tunnel down", "the peer stopped answering"},
       {"check the peer, then `storcrypt ike peer up PEER`"}},
      {kIkeFailedEvent,
       Severity::kError,
       "IKE SA setup failed",
       {"the peer does not answer (address, firewall, UDP 500/4500)", "no common proposal",
        "the IKE port is taken by another daemon (e.g. charon)"},
       {"read the reason in the message", "compare `storcrypt ike peer show PEER` on both nodes",
        "retry with `storcrypt ike peer up PEER`"}},
      {kIkeChildFailedEvent,
       Severity::kError,
       "IKE CHILD_SA failed",
       {"no common ESP proposal or traffic selectors", "the kernel refused the SA (no ESP support: esp4/esp6 modules)"},
       {"read the reason in the message", "compare --local-ts/--remote-ts and --esp-proposal on both nodes"}},
      {kIkeStaleClearedEvent,
       Severity::kInfo,
       "IKE cleared the CHILD_SAs of an earlier storcryptd",
       {"storcryptd ended without taking its tunnels down (SIGKILL, a crash, power loss of the process)"},
       {"nothing to do: the peers' new CHILD_SAs take the kept policies over (their traffic is dropped, not sent "
        "in clear, until then)",
        "a peer that stays down: `storcrypt ike peer show PEER`, then `storcrypt ike peer up PEER`"}},
  };
}

// ---- peer validation over the ipsec truststore ----

struct IkeService::Validator {
  std::shared_ptr<CertService> certs;
  std::mutex mu;
  std::shared_ptr<const ike::PeerValidator> current;
  std::uint64_t generation = 0;
  bool built = false;

  /// The validator, rebuilt when forced or when the truststore changed.
  Result<std::shared_ptr<const ike::PeerValidator>> get(bool force) {
    std::lock_guard lock(mu);
    const std::uint64_t gen = certs->trust_generation();
    if (force || !built || gen != generation) {
      auto v = certs->with([](certs::CertStore& s) { return ike::PeerValidator::from_truststore(s); });
      if (!v.ok()) return std::move(v).error().context("reading the ipsec truststore");
      current = std::make_shared<const ike::PeerValidator>(std::move(*v));
      generation = gen;
      built = true;
    }
    return current;
  }
};

// ---- events: queued under the Runner's mutex, raised by our own thread ----

class IkeService::EventPump {
 public:
  explicit EventPump(EventLog* log) : log_(log) {
    thread_ = std::thread([this] { run(); });
  }
  ~EventPump() {
    {
      std::lock_guard lock(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    if (thread_.joinable()) thread_.join();
  }
  /// Called by the Runner with its mutex held: queue and return.
  void push(const ike::Event& e) {
    {
      std::lock_guard lock(mu_);
      queue_.push_back(e);
      last_[e.peer] = LastEvent{std::string(ike::event_kind_name(e.kind)), e.reason, std::time(nullptr)};
    }
    cv_.notify_one();
  }
  std::optional<LastEvent> last(const std::string& peer) const {
    std::lock_guard lock(mu_);
    auto it = last_.find(peer);
    if (it == last_.end()) return std::nullopt;
    return it->second;
  }

 private:
  void run() {
    for (;;) {
      ike::Event e;
      {
        std::unique_lock lock(mu_);
        cv_.wait(lock, [&] { return stop_ || !queue_.empty(); });
        if (queue_.empty()) return;  // stopping and drained
        e = std::move(queue_.front());
        queue_.pop_front();
      }
      raise(e);
    }
  }
  void raise(const ike::Event& e) {
    if (!log_) return;
    json sense{{"peer", e.peer}, {"kind", std::string(ike::event_kind_name(e.kind))}};
    if (e.spi_i || e.spi_r) {
      char buf[40];
      std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(e.spi_i));
      sense["spi_i"] = buf;
      std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(e.spi_r));
      sense["spi_r"] = buf;
    }
    if (!e.reason.empty()) sense["reason"] = e.reason;
    const std::string who = "peer '" + e.peer + "'";
    switch (e.kind) {
      case ike::EventKind::kUp:
        (void)log_->raise(kIkeUpEvent, "IKE SA with " + who + " established", sense);
        break;
      case ike::EventKind::kDown:
        (void)log_->raise(kIkeDownEvent,
                          "IKE SA with " + who + " deleted" + (e.reason.empty() ? "" : ": " + e.reason), sense);
        break;
      case ike::EventKind::kFailed:
        (void)log_->raise(kIkeFailedEvent, "IKE SA with " + who + " failed: " + e.reason, sense);
        break;
      case ike::EventKind::kAuthFailed:
        sense["peer_subject"] = e.peer_subject;
        sense["peer_issuer"] = e.peer_issuer;
        (void)log_->raise(kIkeAuthFailedEvent,
                          "IKE authentication with " + who + " failed: " + e.reason +
                              (e.peer_subject.empty() ? "" : " (peer certificate " + e.peer_subject + ", issuer " +
                                                                 e.peer_issuer + ")"),
                          sense);
        break;
      case ike::EventKind::kChildFailed:
        (void)log_->raise(kIkeChildFailedEvent, "CHILD_SA with " + who + " failed: " + e.reason, sense);
        break;
      case ike::EventKind::kIkeRekeyFailed:
        (void)log_->raise(kIkeFailedEvent, "IKE SA rekey with " + who + " failed: " + e.reason, sense);
        break;
      case ike::EventKind::kChildUp:
      case ike::EventKind::kChildDown:
      case ike::EventKind::kChildRekeyed:
      case ike::EventKind::kIkeRekeyed:
        break;  // shown by `ike list`; not an event-log matter
    }
  }

  EventLog* log_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<ike::Event> queue_;
  std::map<std::string, LastEvent> last_;
  bool stop_ = false;
  std::thread thread_;
};

// ---- the service ----

IkeService::IkeService(Deps deps) : deps_(std::move(deps)) {
  validator_ = std::make_shared<Validator>();
  validator_->certs = deps_.certs;
  pump_ = std::make_shared<EventPump>(deps_.events);
}

IkeService::~IkeService() {
  runner_.reset();  // joins the I/O thread: no more events after this
  pump_.reset();    // raises what is queued, then joins
}

Status IkeService::migrate(Db& db) {
  return db.migrate("ike", {{1, "IKE peers", "CREATE TABLE ike_peers(name TEXT PRIMARY KEY, spec TEXT NOT NULL);"}});
}

Status IkeService::load() {
  STORCRYPT_TRY(migrate(*deps_.db));
  STORCRYPT_ASSIGN_OR_RETURN(auto rows, deps_.db->query("SELECT name, spec FROM ike_peers ORDER BY name"));
  peers_.clear();
  for (const auto& row : rows) {
    json j = json::parse(row.text(1), nullptr, false);
    if (j.is_discarded())
      return Error(ErrorCode::kInternal, "stored IKE peer '" + row.text(0) + "' is not JSON",
                   "remove it with `storcrypt ike peer remove " + row.text(0) + "` and add it again");
    STORCRYPT_ASSIGN_OR_RETURN(auto spec, IkePeerSpec::from_json(j));
    peers_.emplace(spec.name, std::move(spec));
  }
  return ok_status();
}

Result<ike::PeerConfig> IkeService::engine_config(const IkePeerSpec& spec) {
  STORCRYPT_ASSIGN_OR_RETURN(ResolvedPeer r, resolve_peer(spec));
  ike::PeerConfig c;
  c.name = spec.name;
  c.remote_addr = r.remote;
  c.local_addr = r.local;
  c.local_ts = std::move(r.local_ts);
  c.remote_ts = std::move(r.remote_ts);
  c.local_id = r.local_id;
  c.remote_id = r.remote_id;
  c.ike_proposals = std::move(r.ike_proposals);
  c.esp_proposals = std::move(r.esp_proposals);
  c.retransmit.half_open = deps_.half_open_timeout;
  // Keys roll over hourly (strongSwan's default rekey_time), make-before-break;
  // a CHILD_SA whose rekeys keep failing dies in the kernel 6 minutes later
  // (strongSwan's life_time = 110 % of rekey_time): its policies then drop the
  // traffic, they never send it in clear.
  c.child_rekey_time = std::chrono::hours(1);
  c.child_lifetime.hard_add = std::chrono::minutes(66);
  // A peer silent for 30 s (no IKE message, no ESP byte) is asked; one that
  // does not answer within the retransmission schedule is declared dead: its
  // CHILD_SAs are removed and the down event says so.
  c.dpd_delay = std::chrono::seconds(30);
  c.dpd_action =
      spec.dpd_action == "restart" ? ike::PeerConfig::DeadPeerAction::kRestart : ike::PeerConfig::DeadPeerAction::kNone;
  // Our certificate, its chain (without self-signed roots: the peer has them) and key.
  Status s = deps_.certs->with([&](certs::CertStore& store) -> Status {
    auto chain = store.endpoint_chain();
    if (!chain.ok()) return std::move(chain).error();
    auto key = store.endpoint_key();
    if (!key.ok()) return std::move(key).error();
    if (chain->empty() || !key->valid())
      return Error(ErrorCode::kNotFound, "no endpoint certificate is installed", "", "xCertNoEndpoint");
    X509* leaf = chain->front().native();
    X509_up_ref(leaf);
    c.local_cert = ike::share_x509(leaf);
    EVP_PKEY_up_ref(key->native());
    c.local_key = ike::share_pkey(key->native());
    for (std::size_t i = 1; i < chain->size(); ++i) {
      if ((*chain)[i].info().self_signed) continue;
      X509* x = (*chain)[i].native();
      X509_up_ref(x);
      c.local_intermediates.push_back(ike::share_x509(x));
    }
    return ok_status();
  });
  if (!s.ok())
    return Error(s.error().code(), "IKE needs this node's endpoint certificate: " + s.error().message(),
                 "create one with `storcrypt cert create` (or `cert csr` + `cert install`)", s.error().name());
  if (c.local_id)
    if (Status m = ike::check_id_matches_cert(*c.local_id, c.local_cert.get()); !m.ok()) {
      char* subject = X509_NAME_oneline(X509_get_subject_name(c.local_cert.get()), nullptr, 0);
      std::string subj = subject ? subject : "?";
      OPENSSL_free(subject);
      return Error(ErrorCode::kInvalidInput,
                   "--id " + spec.id + " does not name our certificate (subject " + subj + ")",
                   "leave --id out (the certificate's subject DN) or give one of its SAN DNS names (fqdn:) or IP "
                   "addresses (ip:), see `storcrypt cert show`",
                   "xIkePeerInvalid");
    }
  std::weak_ptr<Validator> weak = validator_;
  c.validate_peer = [weak](X509* ee, std::span<X509* const> inter, const ike::IdPayload& id) -> Status {
    auto v = weak.lock();
    if (!v) return Error(ErrorCode::kUnavailable, "the IKE service is stopping");
    STORCRYPT_ASSIGN_OR_RETURN(auto validator, v->get(false));
    return validator->validate(ee, inter, id, static_cast<ike::UnixSeconds>(std::time(nullptr)));
  };
  return c;
}

Status IkeService::ensure_runner(const std::string& adding_remote) {
  if (runner_) return ok_status();
  if (!deps_.factory.start) return Error(ErrorCode::kInternal, "IKE runner factory missing");
  std::weak_ptr<EventPump> weak = pump_;
  auto r = deps_.factory.start(deps_.runner_options, [weak](const ike::Event& e) {
    if (auto p = weak.lock()) p->push(e);
  });
  if (!r.ok())
    return Error(r.error().code(), "cannot start IKE: " + r.error().message(),
                 r.error().fix().empty()
                     ? "stop the other IKE daemon (e.g. `systemctl stop strongswan`) or set ike_port/ike_listen in "
                       "storcrypt.conf, then restart storcryptd"
                     : r.error().fix(),
                 r.error().name().empty() ? "xIkeUnavailable" : r.error().name());
  runner_ = std::move(*r);
  // Every stored peer joins the engine; one that cannot (e.g. no endpoint
  // certificate any more) is retried by `ike peer up`.
  for (const auto& [name, spec] : peers_) (void)engine_add(spec);
  const ike::StaleObjects stale = runner_->stale();
  const std::size_t pruned = prune_stale(adding_remote);
  if (deps_.events && (stale.sas_deleted > 0 || stale.policies_kept > 0)) {
    json sense{{"sas_deleted", stale.sas_deleted},
               {"policies_kept", stale.policies_kept - pruned},
               {"policies_deleted", pruned}};
    (void)deps_.events->raise(
        kIkeStaleClearedEvent,
        fmt::format("IKE start-up: {} SA(s) of an earlier storcryptd deleted; {} of its policies kept (traffic "
                    "dropped) until the peers' new CHILD_SAs replace them, {} of peers no longer configured deleted",
                    stale.sas_deleted, stale.policies_kept - pruned, pruned),
        sense);
  }
  return ok_status();
}

std::size_t IkeService::prune_stale(const std::string& also_keep) {
  // Policies a killed storcryptd left (ike::Runner::stale()) keep dropping
  // the traffic of peers that are still configured until their new CHILD_SA
  // replaces them; those of peers no longer configured go now. A failure
  // leaves them dropping traffic (never in clear) until the next try.
  if (!runner_) return 0;
  std::vector<IpAddress> keep;
  for (const auto& [name, spec] : peers_)
    if (auto a = IpAddress::parse(spec.remote, "remote"); a.ok()) keep.push_back(*a);
  if (auto a = IpAddress::parse(also_keep, "remote"); !also_keep.empty() && a.ok()) keep.push_back(*a);
  auto n = runner_->prune_stale(keep);
  return n.ok() ? *n : 0;
}

bool IkeService::engine_has(const std::string& name) {
  if (!runner_) return false;
  auto names = runner_->with_engine([](ike::Engine& e) { return e.peers(); });
  return std::find(names.begin(), names.end(), name) != names.end();
}

Status IkeService::engine_add(const IkePeerSpec& spec) {
  STORCRYPT_ASSIGN_OR_RETURN(ike::PeerConfig cfg, engine_config(spec));
  Status s = runner_->with_engine([&](ike::Engine& e) { return e.add_peer(std::move(cfg)); });
  if (!s.ok()) return Error(s.error().code(), s.error().message(), s.error().fix(), "xIkePeerInvalid");
  return ok_status();
}

Result<IkePeerSpec> IkeService::add_peer(IkePeerSpec spec) {
  if (peers_.count(spec.name))
    return Error(ErrorCode::kConflict, "IKE peer '" + spec.name + "' exists",
                 "remove it first (`storcrypt ike peer remove " + spec.name + "`) or choose another name",
                 "xIkePeerExists");
  // Everything the operator gave, before anything starts.
  STORCRYPT_TRY(resolve_peer(spec));
  STORCRYPT_TRY(engine_config(spec));
  STORCRYPT_TRY(validator_->get(true));
  STORCRYPT_TRY(ensure_runner(spec.remote));
  STORCRYPT_TRY(engine_add(spec));
  Status stored = deps_.db->exec("INSERT INTO ike_peers(name, spec) VALUES(?1, ?2)", {spec.name, spec.to_json().dump()});
  if (!stored.ok()) {
    (void)runner_->with_engine([&](ike::Engine& e) { return e.remove_peer(spec.name); });
    return stored.error();
  }
  peers_.emplace(spec.name, spec);
  return spec;
}

Status IkeService::remove_peer(const std::string& name) {
  if (!peers_.count(name)) return peer(name).error();
  STORCRYPT_TRY(deps_.db->exec("DELETE FROM ike_peers WHERE name = ?1", {name}));
  peers_.erase(name);
  if (engine_has(name)) (void)runner_->with_engine([&](ike::Engine& e) { return e.remove_peer(name); });
  prune_stale();
  return ok_status();
}

Result<IkePeerSpec> IkeService::peer(const std::string& name) const {
  auto it = peers_.find(name);
  if (it == peers_.end())
    return Error(ErrorCode::kNotFound, "no IKE peer named '" + name + "'",
                 "list them with `storcrypt ike peer list`", "xIkePeerNotFound");
  return it->second;
}

std::vector<IkePeerSpec> IkeService::peers() const {
  std::vector<IkePeerSpec> out;
  for (const auto& [n, s] : peers_) out.push_back(s);
  return out;
}

Status IkeService::up(const std::string& name) {
  STORCRYPT_ASSIGN_OR_RETURN(IkePeerSpec spec, peer(name));
  STORCRYPT_TRY(validator_->get(true));
  STORCRYPT_TRY(ensure_runner());
  if (!engine_has(name)) STORCRYPT_TRY(engine_add(spec));
  Status s = runner_->with_engine([&](ike::Engine& e) { return e.initiate(name); });
  if (!s.ok() && s.error().code() == ErrorCode::kConflict)
    return Error(ErrorCode::kConflict, "IKE peer '" + name + "' is already up or being brought up",
                 "see `storcrypt ike show " + name + "`; `storcrypt ike peer down " + name + "` first to restart it",
                 "xIkePeerBusy");
  return s;
}

Status IkeService::down(const std::string& name) {
  STORCRYPT_TRY(peer(name));
  if (!engine_has(name)) return ok_status();  // nothing is up
  return runner_->with_engine([&](ike::Engine& e) { return e.terminate(name); });
}

std::vector<ike::IkeSaStatus> IkeService::sas(const std::string& peer) {
  if (!runner_) return {};
  auto all = runner_->with_engine([](ike::Engine& e) { return e.list(); });
  if (!peer.empty()) std::erase_if(all, [&](const ike::IkeSaStatus& s) { return s.peer != peer; });
  return all;
}

std::optional<ike::EngineDosStats> IkeService::dos_stats() {
  if (!runner_) return std::nullopt;
  return runner_->with_engine([](ike::Engine& e) { return e.dos_stats(); });
}

std::vector<ike::Endpoint> IkeService::endpoints() const { return runner_ ? runner_->endpoints() : std::vector<ike::Endpoint>{}; }

std::optional<IkeService::LastEvent> IkeService::last_event(const std::string& name) const { return pump_->last(name); }

Status IkeService::start_up() {
  if (peers_.empty()) return ok_status();
  STORCRYPT_TRY(ensure_runner());
  std::optional<Error> first;
  for (const auto& [name, spec] : peers_) {
    if (spec.start != "start") continue;
    Status s = up(name);
    if (!s.ok() && !first) first = s.error();
  }
  if (first) return *first;
  return ok_status();
}

}  // namespace storcrypt::controller
