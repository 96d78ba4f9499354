#include "storcrypt/ike/engine.h"

#include <openssl/crypto.h>

#include <algorithm>

#include "storcrypt/ike/auth.h"
#include "storcrypt/ike/crypto.h"
#include "storcrypt/ike/message.h"

namespace storcrypt::ike {

Engine::Engine(Transport& transport, ChildSaKernel& kernel, EngineOptions options)
    : transport_(transport), kernel_(kernel), options_(options) {
  if (auto s = SecretBytes::random(32)) cookie_secret_ = std::move(*s);
}

Engine::~Engine() = default;

IkeSaEnv Engine::env() {
  IkeSaEnv e;
  e.transport = &transport_;
  e.kernel = &kernel_;
  e.emit = [this](Event ev) {
    events_.push_back(ev);
    if (callback_) callback_(events_.back());
  };
  // RFC 7296 §2.4: the peer restarted; its old IKE SAs (and their CHILD_SAs,
  // whose policies would clash with the new one's) are gone.
  e.initial_contact = [this](const IkeSa& sa) {
    for (auto& [spi, other] : sas_)
      if (other.get() != &sa && other->config().name == sa.config().name)
        other->abort("replaced: the peer sent INITIAL_CONTACT in a new IKE SA");
  };
  return e;
}

std::vector<Event> Engine::take_events() {
  std::vector<Event> out(events_.begin(), events_.end());
  events_.clear();
  return out;
}

Status Engine::add_peer(PeerConfig cfg) {
  if (cfg.name.empty()) return Error(ErrorCode::kInvalidInput, "peer name is empty");
  if (peers_.count(cfg.name)) return Error(ErrorCode::kConflict, "peer " + cfg.name + " exists");
  if (!cfg.local_cert || !cfg.local_key)
    return Error(ErrorCode::kInvalidInput, "peer " + cfg.name + ": no local certificate or private key");
  if (cfg.ike_proposals.empty() || cfg.esp_proposals.empty())
    return Error(ErrorCode::kInvalidInput, "peer " + cfg.name + ": no IKE or ESP proposals");
  if (cfg.local_ts.empty() || cfg.remote_ts.empty())
    return Error(ErrorCode::kInvalidInput, "peer " + cfg.name + ": no traffic selectors");
  if (cfg.local_id) {
    if (auto s = check_id_matches_cert(*cfg.local_id, cfg.local_cert.get()); !s)
      return Error(ErrorCode::kInvalidInput,
                   "peer " + cfg.name + ": local ID " + id_to_string(*cfg.local_id) + " does not name our certificate")
          .with_fix("use the certificate's subject DN (the default), or one of its SAN DNS names or IP addresses");
  }
  if (!cfg.validate_peer)
    return Error(ErrorCode::kInvalidInput, "peer " + cfg.name + ": no peer certificate validator");
  if (cfg.local_addr.family != cfg.remote_addr.family)
    return Error(ErrorCode::kInvalidInput, "peer " + cfg.name + ": local and remote address families differ");
  std::string name = cfg.name;
  peers_.emplace(std::move(name), std::move(cfg));
  return ok_status();
}

Status Engine::remove_peer(const std::string& name) {
  if (!peers_.count(name)) return Error(ErrorCode::kNotFound, "no peer " + name);
  for (auto& [spi, sa] : sas_)
    if (sa->config().name == name) {
      (void)sa->close();                        // sends DELETE when established
      sa->abort("peer configuration removed");  // no waiting for the answer
    }
  std::erase_if(sas_, [&](const auto& kv) { return kv.second->config().name == name; });
  peers_.erase(name);
  restarts_.erase(name);
  return ok_status();
}

std::vector<std::string> Engine::peers() const {
  std::vector<std::string> out;
  for (const auto& [n, c] : peers_) out.push_back(n);
  return out;
}

Status Engine::initiate(const std::string& name) {
  auto it = peers_.find(name);
  if (it == peers_.end()) return Error(ErrorCode::kNotFound, "no peer " + name);
  for (const auto& [spi, sa] : sas_)
    if (sa->config().name == name && !sa->terminal() && sa->state() != IkeState::kDeleting &&
        sa->state() != IkeState::kRekeyed)
      return Error(ErrorCode::kConflict,
                   "peer " + name + " already has an IKE SA (" + std::string(ike_state_name(sa->state())) + ")");
  auto sa = IkeSa::initiator(it->second, env());
  if (!sa) return sa.error();
  IkeSa* raw = sa->get();
  while (sas_.count(raw->local_spi())) {  // 2^-64; try again
    sa = IkeSa::initiator(it->second, env());
    if (!sa) return sa.error();
    raw = sa->get();
  }
  sas_.emplace(raw->local_spi(), std::move(*sa));
  auto s = raw->start();
  reap();
  return s;
}

Status Engine::terminate(const std::string& name) {
  if (!peers_.count(name)) return Error(ErrorCode::kNotFound, "no peer " + name);
  restarts_.erase(name);
  bool any = false;
  for (auto& [spi, sa] : sas_)
    if (sa->config().name == name && !sa->terminal()) {
      any = true;
      (void)sa->close();
    }
  reap();
  if (!any) return Error(ErrorCode::kNotFound, "peer " + name + " has no IKE SA");
  return ok_status();
}

IkeSa* Engine::established_sa(const std::string& name) {
  for (auto& [spi, sa] : sas_)
    if (sa->config().name == name && sa->state() == IkeState::kEstablished) return sa.get();
  return nullptr;
}

Status Engine::create_child(const std::string& name) {
  IkeSa* sa = established_sa(name);
  if (!sa) return Error(ErrorCode::kConflict, "peer " + name + " has no established IKE SA");
  return sa->create_child();
}

Status Engine::delete_child(const std::string& name, std::uint32_t spi_in) {
  IkeSa* sa = established_sa(name);
  if (!sa) return Error(ErrorCode::kConflict, "peer " + name + " has no established IKE SA");
  return sa->delete_child(spi_in);
}

Status Engine::rekey_child(const std::string& name, std::uint32_t spi_in) {
  IkeSa* sa = established_sa(name);
  if (!sa) return Error(ErrorCode::kConflict, "peer " + name + " has no established IKE SA");
  return sa->rekey_child(spi_in);
}

Status Engine::rekey_ike(const std::string& name) {
  IkeSa* sa = established_sa(name);
  if (!sa) return Error(ErrorCode::kConflict, "peer " + name + " has no established IKE SA");
  auto s = sa->rekey_ike();
  reap();
  return s;
}

Status Engine::ping(const std::string& name) {
  IkeSa* sa = established_sa(name);
  if (!sa) return Error(ErrorCode::kConflict, "peer " + name + " has no established IKE SA");
  return sa->ping();
}

void Engine::respond_unprotected(const Datagram& d, const Header& req, std::uint16_t notify_type, Bytes data) {
  Message r;
  r.header.spi_i = req.spi_i;
  r.header.spi_r = 0;
  r.header.exchange = req.exchange;
  r.header.flags = kFlagResponse;
  r.header.message_id = req.message_id;
  r.payloads.push_back(Payload::notification(notify_type, std::move(data)));
  if (auto b = serialize(r)) (void)transport_.send(Datagram{d.local, d.remote, *b});
}

Bytes Engine::cookie_for(const Datagram& d, const Header& h, const Bytes& ni, std::uint8_t version) const {
  // RFC 7296 §2.6: Cookie = <VersionIDofSecret> | Hash(Ni | IPi | SPIi | <secret>), here an HMAC.
  const SecretBytes* secret = version == cookie_version_ ? &cookie_secret_
                              : version == static_cast<std::uint8_t>(cookie_version_ - 1) ? &previous_cookie_secret_
                                                                                          : nullptr;
  if (secret == nullptr || secret->size() == 0) return {};
  Bytes input = ni;
  const std::size_t n = d.remote.addr.family == Family::kIPv4 ? 4 : 16;
  input.insert(input.end(), d.remote.addr.bytes.begin(), d.remote.addr.bytes.begin() + static_cast<std::ptrdiff_t>(n));
  for (int i = 7; i >= 0; --i) input.push_back(static_cast<std::uint8_t>(h.spi_i >> (8 * i)));
  auto mac = prf(PrfAlg::kHmacSha256, secret->view(), input);
  if (!mac) return {};
  Bytes out = {version};
  out.insert(out.end(), mac->data(), mac->data() + mac->size());
  return out;
}

void Engine::rotate_cookie_secret(std::chrono::steady_clock::time_point now) {
  if (!cookie_secret_since_) {
    cookie_secret_since_ = now;
    return;
  }
  if (now - *cookie_secret_since_ < options_.cookie_secret_lifetime) return;
  auto fresh = SecretBytes::random(32);
  if (!fresh) return;  // keep the current secret; the next tick tries again
  previous_cookie_secret_ = std::move(cookie_secret_);
  cookie_secret_ = std::move(*fresh);
  ++cookie_version_;
  cookie_secret_since_ = now;
}

Engine::HalfOpen Engine::count_half_open(const IpAddress& source) const {
  HalfOpen n;
  for (const auto& [spi, sa] : sas_)
    if (sa->role() == IkeRole::kResponder && (sa->state() == IkeState::kIdle || sa->state() == IkeState::kInitDone)) {
      ++n.total;
      if (sa->remote_endpoint().addr == source) ++n.from_source;
    }
  return n;
}

EngineDosStats Engine::dos_stats() const {
  EngineDosStats s = dos_;
  s.half_open = count_half_open(IpAddress{}).total;
  return s;
}

bool Engine::admit_sa_init(const Datagram& d, const Header& h, const Message& m) {
  // Nothing here allocates per-request state: a flood of forged requests
  // costs a count over our SAs and, when cookies are on, one HMAC each.
  const HalfOpen n = count_half_open(d.remote.addr);
  if (n.total >= options_.half_open_limit) {
    ++dos_.over_limit;
    return false;
  }
  if (n.from_source >= options_.block_threshold) {
    ++dos_.blocked;
    return false;
  }
  if (!options_.require_cookies && n.total < options_.cookie_threshold && n.from_source < options_.cookie_threshold_ip)
    return true;
  const auto* nonce = m.find(PayloadType::kNonce);
  const auto* ni = nonce ? std::get_if<NoncePayload>(&nonce->body) : nullptr;
  if (!ni) {
    respond_unprotected(d, h, notify::kInvalidSyntax, {});
    return false;
  }
  // RFC 7296 §2.6: the COOKIE notify comes first.
  const NotifyPayload* offered = nullptr;
  if (!m.payloads.empty() && m.payloads.front().type == static_cast<std::uint8_t>(PayloadType::kNotify))
    if (const auto* np = std::get_if<NotifyPayload>(&m.payloads.front().body); np && np->type == notify::kCookie)
      offered = np;
  if (offered != nullptr && !offered->data.empty()) {
    const Bytes want = cookie_for(d, h, ni->data, offered->data.front());
    if (!want.empty() && want.size() == offered->data.size() &&
        CRYPTO_memcmp(want.data(), offered->data.data(), want.size()) == 0)
      return true;
  }
  if (offered != nullptr) ++dos_.bad_cookies;
  ++dos_.cookies_sent;
  respond_unprotected(d, h, notify::kCookie, cookie_for(d, h, ni->data, cookie_version_));
  return false;
}

void Engine::receive(const Datagram& d) {
  auto raw = parse_header(d.data);
  if (!raw) return;
  const Header& h = raw->header;
  const bool new_sa_init =
      h.exchange == static_cast<std::uint8_t>(ExchangeType::kIkeSaInit) && !h.is_response() && h.spi_r == 0;
  auto m = parse(d.data);
  if (!m) {
    if (new_sa_init)  // RFC 7296 §2.21.1: unauthenticated, but answering helps a confused peer
      respond_unprotected(
          d, h, m.error().name() == "xIkeInvalidMajorVersion" ? notify::kInvalidMajorVersion : notify::kInvalidSyntax,
          {});
    return;
  }
  if (new_sa_init) {
    for (auto& [spi, sa] : sas_)
      if (sa->role() == IkeRole::kResponder && sa->spi_i() == h.spi_i && sa->remote_endpoint() == d.remote) {
        sa->receive(d, *m);  // retransmission
        reap();
        return;
      }
    if (auto crit = unsupported_critical_payload(m->payloads)) {
      respond_unprotected(d, h, notify::kUnsupportedCriticalPayload, Bytes{*crit});
      return;
    }
    const PeerConfig* cfg = nullptr;
    for (const auto& [name, c] : peers_)
      if (c.remote_addr == d.remote.addr && (c.local_addr.is_any() || c.local_addr == d.local.addr)) {
        cfg = &c;
        break;
      }
    if (cfg == nullptr) return;  // nobody we know
    if (!admit_sa_init(d, h, *m)) return;
    auto sa = IkeSa::responder(*cfg, env(), d);
    if (!sa) return;
    while (sas_.count((*sa)->local_spi())) {
      sa = IkeSa::responder(*cfg, env(), d);
      if (!sa) return;
    }
    IkeSa* p = sa->get();
    sas_.emplace(p->local_spi(), std::move(*sa));
    p->receive(d, *m);
    reap();
    return;
  }
  const std::uint64_t ours = h.from_initiator() ? h.spi_r : h.spi_i;
  auto it = sas_.find(ours);
  if (it == sas_.end()) return;
  // The SA must play the role the message's flags say we have.
  const bool we_initiated = it->second->role() == IkeRole::kInitiator;
  if (we_initiated == h.from_initiator()) return;
  IkeSa* sa = it->second.get();
  sa->receive(d, *m);
  reap();
}

namespace {
// restarts_ values besides a due time: an attempt is under way / one failed
// (the next tick schedules the retry kRestartRetry later).
constexpr auto kUnderWay = std::chrono::steady_clock::time_point::max();
constexpr auto kAttemptFailed = kUnderWay - std::chrono::steady_clock::duration(1);
}  // namespace

void Engine::tick(std::chrono::steady_clock::time_point now) {
  rotate_cookie_secret(now);
  for (auto& [spi, sa] : sas_) {
    sa->tick(now);
    if (sa->state() == IkeState::kEstablished) restarts_.erase(sa->config().name);
    // A dead peer is restarted at once (this tick).
    if (sa->terminal() && sa->peer_dead() && sa->config().dpd_action == PeerConfig::DeadPeerAction::kRestart)
      restarts_[sa->config().name] = now;
  }
  reap();
  for (auto& [name, at] : restarts_) {
    if (at == kAttemptFailed) at = now + kRestartRetry;
    if (at < kAttemptFailed && now >= at) at = initiate(name).ok() ? kUnderWay : now + kRestartRetry;
  }
}

void Engine::reap() {
  // IKE SAs that replaced one in a rekey, filed under their SPI (the peer's next message may be for them).
  std::vector<std::unique_ptr<IkeSa>> born;
  for (auto& [spi, sa] : sas_)
    if (auto next = sa->take_successor()) born.push_back(std::move(next));
  for (auto& next : born) {
    const std::uint64_t spi = next->local_spi();
    if (sas_.count(spi)) {  // 2^-64: our new random SPI is taken; give the new IKE SA up rather than mix them
      next->abort("the new IKE SA's SPI collides with another one of ours");
      continue;
    }
    sas_.emplace(spi, std::move(next));
  }
  // A restart attempt that ended (timed out in tick, or refused in receive,
  // e.g. NO_PROPOSAL_CHOSEN from a peer still loading its configuration) is
  // retried kRestartRetry later; its own event says why it failed.
  for (const auto& [spi, sa] : sas_)
    if (sa->terminal() && !sa->peer_dead())
      if (auto r = restarts_.find(sa->config().name); r != restarts_.end() && r->second == kUnderWay)
        r->second = kAttemptFailed;
  std::erase_if(sas_, [](const auto& kv) { return kv.second->terminal(); });
}

std::vector<IkeSaStatus> Engine::list() const {
  std::vector<IkeSaStatus> out;
  for (const auto& [spi, sa] : sas_) {
    IkeSaStatus s;
    s.peer = sa->config().name;
    s.role = sa->role();
    s.state = sa->state();
    s.spi_i = sa->spi_i();
    s.spi_r = sa->spi_r();
    s.suite = sa->suite();
    s.local = sa->local_endpoint();
    s.remote = sa->remote_endpoint();
    s.nat = sa->nat_detected();
    for (ChildSaInfo& c : sa->children()) {
      ChildSaStatus cs;
      auto counters = kernel_.counters(c.slot, s.local.addr, s.remote.addr, c.spi_out);
      if (counters) cs.counters = *counters;
      cs.info = std::move(c);
      s.children.push_back(std::move(cs));
    }
    out.push_back(std::move(s));
  }
  return out;
}

}  // namespace storcrypt::ike
