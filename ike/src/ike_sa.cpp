#include "storcrypt/ike/ike_sa.h"

#include <fmt/format.h>
#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/x509.h>

#include <algorithm>
#include <cstring>
#include <string>
#include <utility>

#include "storcrypt/ike/auth.h"
#include "wire.h"

namespace storcrypt::ike {

namespace {

Result<Bytes> random_bytes(std::size_t n) {
  Bytes b(n);
  if (RAND_bytes(b.data(), static_cast<int>(n)) != 1) return Error(ErrorCode::kInternal, "RAND_bytes failed");
  return b;
}

Result<std::uint64_t> random_spi64() {
  for (;;) {
    auto b = random_bytes(8);
    if (!b) return b.error();
    std::uint64_t v = 0;
    Reader(*b).u64(v);
    if (v != 0) return v;
  }
}

Bytes spi64_bytes(std::uint64_t v) {
  Writer w;
  w.u64(v);
  return std::move(w).take();
}

std::optional<std::uint64_t> spi64(const Bytes& b) {
  std::uint64_t v = 0;
  if (b.size() != 8 || !Reader(b).u64(v) || v == 0) return std::nullopt;
  return v;
}

/// A random duration in [0, span).
std::chrono::milliseconds jitter(std::chrono::milliseconds span) {
  std::uint32_t r = 0;
  RAND_bytes(reinterpret_cast<unsigned char*>(&r), sizeof r);
  return span.count() > 0 ? std::chrono::milliseconds(r % static_cast<std::uint32_t>(span.count())) : span;
}

std::span<const std::uint8_t> addr_bytes(const IpAddress& a) {
  return {a.bytes.data(), a.family == Family::kIPv4 ? 4u : 16u};
}

std::string encr_name(std::uint16_t id, std::uint16_t bits) {
  const std::string b = bits ? std::to_string(bits) : "";
  switch (id) {
    case transform_id::kEncrAesCbc:
      return "aes" + b;
    case transform_id::kEncrAesGcm16:
      return "aes" + b + "gcm16";
    case transform_id::kEncrAesGcm12:
      return "aes" + b + "gcm12";
    case transform_id::kEncrAesGcm8:
      return "aes" + b + "gcm8";
    default:
      return "encr" + std::to_string(id) + (bits ? "_" + b : "");
  }
}

std::string transform_name(const Transform& t) {
  switch (t.type) {
    case TransformType::kEncr:
      return encr_name(t.id, t.key_length().value_or(0));
    case TransformType::kInteg:
      switch (t.id) {
        case transform_id::kIntegHmacSha256_128:
          return "sha256";
        case transform_id::kIntegHmacSha384_192:
          return "sha384";
        case transform_id::kIntegHmacSha512_256:
          return "sha512";
        default:
          return "integ" + std::to_string(t.id);
      }
    case TransformType::kPrf:
      switch (t.id) {
        case transform_id::kPrfHmacSha256:
          return "prfsha256";
        case transform_id::kPrfHmacSha384:
          return "prfsha384";
        case transform_id::kPrfHmacSha512:
          return "prfsha512";
        default:
          return "prf" + std::to_string(t.id);
      }
    case TransformType::kKe:
      switch (t.id) {
        case transform_id::kGroupEcp256:
          return "ecp256";
        case transform_id::kGroupEcp384:
          return "ecp384";
        case transform_id::kGroupEcp521:
          return "ecp521";
        case transform_id::kGroupCurve25519:
          return "curve25519";
        default:
          return "ke" + std::to_string(t.id);
      }
    case TransformType::kEsn:
      return t.id == transform_id::kEsnYes ? "esn" : "noesn";
  }
  return "transform" + std::to_string(static_cast<int>(t.type)) + "_" + std::to_string(t.id);
}

std::string describe(std::span<const Proposal> ps) {
  std::string s;
  for (const Proposal& p : ps) {
    if (!s.empty()) s += ", ";
    std::string one;
    for (const Transform& t : p.transforms) one += (one.empty() ? "" : "-") + transform_name(t);
    s += one.empty() ? "(empty proposal)" : one;
  }
  return s.empty() ? "nothing" : s;
}

std::string notify_name(std::uint16_t type) {
  switch (type) {
    case notify::kUnsupportedCriticalPayload:
      return "UNSUPPORTED_CRITICAL_PAYLOAD";
    case notify::kInvalidIkeSpi:
      return "INVALID_IKE_SPI";
    case notify::kInvalidMajorVersion:
      return "INVALID_MAJOR_VERSION";
    case notify::kInvalidSyntax:
      return "INVALID_SYNTAX";
    case notify::kInvalidMessageId:
      return "INVALID_MESSAGE_ID";
    case notify::kInvalidSpi:
      return "INVALID_SPI";
    case notify::kNoProposalChosen:
      return "NO_PROPOSAL_CHOSEN";
    case notify::kInvalidKePayload:
      return "INVALID_KE_PAYLOAD";
    case notify::kAuthenticationFailed:
      return "AUTHENTICATION_FAILED";
    case notify::kSinglePairRequired:
      return "SINGLE_PAIR_REQUIRED";
    case notify::kNoAdditionalSas:
      return "NO_ADDITIONAL_SAS";
    case notify::kInternalAddressFailure:
      return "INTERNAL_ADDRESS_FAILURE";
    case notify::kFailedCpRequired:
      return "FAILED_CP_REQUIRED";
    case notify::kTsUnacceptable:
      return "TS_UNACCEPTABLE";
    case notify::kInvalidSelectors:
      return "INVALID_SELECTORS";
    case notify::kTemporaryFailure:
      return "TEMPORARY_FAILURE";
    case notify::kChildSaNotFound:
      return "CHILD_SA_NOT_FOUND";
    default:
      return "notify " + std::to_string(type);
  }
}

/// The first error notify of a payload list, if any.
const NotifyPayload* first_error(const Message& m) {
  for (const Payload& p : m.payloads)
    if (const auto* n = std::get_if<NotifyPayload>(&p.body); n && n->is_error()) return n;
  return nullptr;
}

template <typename T>
const T* body_of(const Message& m, PayloadType type) {
  const Payload* p = m.find(type);
  return p ? std::get_if<T>(&p->body) : nullptr;
}

TrafficSelector to_selector(const TsRange& r) {
  TrafficSelector ts;
  const bool v4 = r.start.family == Family::kIPv4;
  ts.ts_type = v4 ? kTsIpv4AddrRange : kTsIpv6AddrRange;
  ts.ip_protocol = r.ip_protocol;
  ts.start_port = r.start_port;
  ts.end_port = r.end_port;
  auto s = addr_bytes(r.start), e = addr_bytes(r.end);
  ts.start_address.assign(s.begin(), s.end());
  ts.end_address.assign(e.begin(), e.end());
  return ts;
}

std::optional<TsRange> from_selector(const TrafficSelector& ts) {
  std::size_t n = 0;
  Family f = Family::kIPv4;
  if (ts.ts_type == kTsIpv4AddrRange) {
    n = 4;
  } else if (ts.ts_type == kTsIpv6AddrRange) {
    n = 16;
    f = Family::kIPv6;
  } else {
    return std::nullopt;
  }
  if (ts.start_address.size() != n || ts.end_address.size() != n) return std::nullopt;
  TsRange r;
  r.ip_protocol = ts.ip_protocol;
  r.start_port = ts.start_port;
  r.end_port = ts.end_port;
  r.start.family = r.end.family = f;
  std::copy(ts.start_address.begin(), ts.start_address.end(), r.start.bytes.begin());
  std::copy(ts.end_address.begin(), ts.end_address.end(), r.end.bytes.begin());
  return r;
}

TsPayload ts_payload(const std::vector<TsRange>& rs) {
  TsPayload p;
  for (const TsRange& r : rs) p.selectors.push_back(to_selector(r));
  return p;
}

std::vector<TsRange> ts_ranges(const TsPayload& p) {
  std::vector<TsRange> out;
  for (const TrafficSelector& ts : p.selectors)
    if (auto r = from_selector(ts)) out.push_back(*r);
  return out;
}

std::string describe_ts(const std::vector<TsRange>& rs) {
  std::string s;
  for (const TsRange& r : rs) {
    if (!s.empty()) s += " ";
    s += r.start.to_string() + "-" + r.end.to_string();
    if (r.ip_protocol != 0) s += " proto " + std::to_string(r.ip_protocol);
    if (r.start_port != 0 || r.end_port != 65535)
      s += " ports " + std::to_string(r.start_port) + "-" + std::to_string(r.end_port);
  }
  return s.empty() ? "none" : s;
}

std::optional<TsRange> intersect(const TsRange& a, const TsRange& b) {
  if (a.start.family != b.start.family) return std::nullopt;
  TsRange r;
  if (a.ip_protocol == 0) {
    r.ip_protocol = b.ip_protocol;
  } else if (b.ip_protocol == 0 || b.ip_protocol == a.ip_protocol) {
    r.ip_protocol = a.ip_protocol;
  } else {
    return std::nullopt;
  }
  r.start_port = std::max(a.start_port, b.start_port);
  r.end_port = std::min(a.end_port, b.end_port);
  if (r.start_port > r.end_port) return std::nullopt;
  r.start = a.start.value() >= b.start.value() ? a.start : b.start;
  r.end = a.end.value() <= b.end.value() ? a.end : b.end;
  if (r.start.value() > r.end.value()) return std::nullopt;
  return r;
}

/// Every range the peer proposed, narrowed to what we allow (RFC 7296 §2.9).
std::vector<TsRange> narrow(const std::vector<TsRange>& proposed, const std::vector<TsRange>& allowed) {
  std::vector<TsRange> out;
  for (const TsRange& p : proposed)
    for (const TsRange& a : allowed)
      if (auto r = intersect(p, a); r && std::find(out.begin(), out.end(), *r) == out.end()) out.push_back(*r);
  return out;
}

/// RFC 7296 §2.8.1: whether the exchange with nonces (a1, a2) used the lowest
/// of the four nonces of two colliding rekeys, compared octet by octet (a
/// nonce that is a prefix of another is the lower one).
bool has_lowest_nonce(const Bytes& a1, const Bytes& a2, const Bytes& b1, const Bytes& b2) {
  const Bytes& a = std::min(a1, a2);
  const Bytes& b = std::min(b1, b2);
  return a < b;
}

bool within(const TsRange& r, const std::vector<TsRange>& allowed) {
  for (const TsRange& a : allowed) {
    auto i = intersect(r, a);
    if (i && *i == r) return true;
  }
  return false;
}

std::string name_string(const X509_NAME* name) {
  BIO* b = BIO_new(BIO_s_mem());
  if (b == nullptr) return {};
  X509_NAME_print_ex(b, name, 0, XN_FLAG_RFC2253);
  char* p = nullptr;
  const long n = BIO_get_mem_data(b, &p);
  std::string s(p, static_cast<std::size_t>(n > 0 ? n : 0));
  BIO_free(b);
  return s;
}

Bytes str_bytes(std::string_view s) { return Bytes(s.begin(), s.end()); }

std::vector<Proposal> numbered(std::vector<Proposal> ps, ProtocolId proto, const Bytes& spi, bool with_ke) {
  std::uint8_t n = 1;
  for (Proposal& p : ps) {
    p.number = n++;
    p.protocol = proto;
    p.spi = spi;
    if (!with_ke) std::erase_if(p.transforms, [](const Transform& t) { return t.type == TransformType::kKe; });
  }
  return ps;
}

std::optional<std::uint32_t> spi32(const Bytes& b) {
  if (b.size() != 4) return std::nullopt;
  return (std::uint32_t{b[0]} << 24) | (std::uint32_t{b[1]} << 16) | (std::uint32_t{b[2]} << 8) | b[3];
}

const std::uint16_t kOurHashes[] = {hash_alg::kSha384};

}  // namespace

// ---------------------------------------------------------------------------
// Free helpers

X509Ref share_x509(X509* x) {
  return X509Ref(x, [](X509* p) { X509_free(p); });
}
PkeyRef share_pkey(EVP_PKEY* k) {
  return PkeyRef(k, [](EVP_PKEY* p) { EVP_PKEY_free(p); });
}

std::vector<Proposal> default_ike_proposals() {
  Proposal cbc;
  cbc.protocol = ProtocolId::kIke;
  cbc.number = 1;
  cbc.transforms = {Transform::make(TransformType::kEncr, transform_id::kEncrAesCbc, 256),
                    Transform::make(TransformType::kInteg, transform_id::kIntegHmacSha384_192),
                    Transform::make(TransformType::kPrf, transform_id::kPrfHmacSha384),
                    Transform::make(TransformType::kKe, transform_id::kGroupEcp384)};
  Proposal gcm;
  gcm.protocol = ProtocolId::kIke;
  gcm.number = 2;
  gcm.transforms = {Transform::make(TransformType::kEncr, transform_id::kEncrAesGcm16, 256),
                    Transform::make(TransformType::kPrf, transform_id::kPrfHmacSha384),
                    Transform::make(TransformType::kKe, transform_id::kGroupEcp384)};
  return {cbc, gcm};
}

std::vector<Proposal> default_esp_proposals() {
  Proposal p;
  p.protocol = ProtocolId::kEsp;
  p.transforms = {Transform::make(TransformType::kEncr, transform_id::kEncrAesGcm16, 256),
                  Transform::make(TransformType::kEsn, transform_id::kEsnNo)};
  return {p};
}

IdPayload id_fqdn(std::string_view name) {
  IdPayload id;
  id.id_type = id_type::kFqdn;
  id.data = str_bytes(name);
  return id;
}

IdPayload id_ip(const IpAddress& a) {
  IdPayload id;
  id.id_type = a.family == Family::kIPv4 ? id_type::kIpv4Addr : id_type::kIpv6Addr;
  auto b = addr_bytes(a);
  id.data.assign(b.begin(), b.end());
  return id;
}

std::string id_to_string(const IdPayload& id) {
  switch (id.id_type) {
    case id_type::kFqdn:
      return "FQDN " + std::string(id.data.begin(), id.data.end());
    case id_type::kRfc822Addr:
      return "RFC822 " + std::string(id.data.begin(), id.data.end());
    case id_type::kIpv4Addr:
    case id_type::kIpv6Addr: {
      IpAddress a;
      a.family = id.id_type == id_type::kIpv4Addr ? Family::kIPv4 : Family::kIPv6;
      if (id.data.size() != (a.family == Family::kIPv4 ? 4u : 16u)) return "IP (malformed)";
      std::copy(id.data.begin(), id.data.end(), a.bytes.begin());
      return (a.family == Family::kIPv4 ? "IPV4 " : "IPV6 ") + a.to_string();
    }
    case id_type::kDerAsn1Dn: {
      const unsigned char* p = id.data.data();
      X509_NAME* n = d2i_X509_NAME(nullptr, &p, static_cast<long>(id.data.size()));
      if (n == nullptr) return "DN (malformed)";
      std::string s = "DN " + name_string(n);
      X509_NAME_free(n);
      return s;
    }
    default:
      return "ID type " + std::to_string(id.id_type);
  }
}

std::string_view event_kind_name(EventKind k) {
  switch (k) {
    case EventKind::kUp:
      return "up";
    case EventKind::kDown:
      return "down";
    case EventKind::kFailed:
      return "failed";
    case EventKind::kAuthFailed:
      return "auth-failed";
    case EventKind::kChildUp:
      return "child-up";
    case EventKind::kChildDown:
      return "child-down";
    case EventKind::kChildRekeyed:
      return "child-rekeyed";
    case EventKind::kChildFailed:
      return "child-failed";
    case EventKind::kIkeRekeyed:
      return "ike-rekeyed";
    case EventKind::kIkeRekeyFailed:
      return "ike-rekey-failed";
  }
  return "?";
}

std::string_view ike_state_name(IkeState s) {
  switch (s) {
    case IkeState::kIdle:
      return "idle";
    case IkeState::kInitSent:
      return "init-sent";
    case IkeState::kInitDone:
      return "init-done";
    case IkeState::kAuthSent:
      return "auth-sent";
    case IkeState::kEstablished:
      return "established";
    case IkeState::kDeleting:
      return "deleting";
    case IkeState::kRekeyed:
      return "rekeyed";
    case IkeState::kDeleted:
      return "deleted";
    case IkeState::kFailed:
      return "failed";
  }
  return "?";
}

// ---------------------------------------------------------------------------
// Construction

IkeSa::IkeSa(PeerConfig cfg, IkeSaEnv env, IkeRole role) : cfg_(std::move(cfg)), env_(std::move(env)), role_(role) {}
IkeSa::~IkeSa() = default;

Result<std::unique_ptr<IkeSa>> IkeSa::initiator(PeerConfig cfg, IkeSaEnv env) {
  if (!env.transport || !env.kernel) return Error(ErrorCode::kInvalidInput, "IKE SA needs a transport and a kernel");
  if (!cfg.local_cert || !cfg.local_key)
    return Error(ErrorCode::kInvalidInput, "peer " + cfg.name + ": no local certificate or key");
  if (cfg.ike_proposals.empty()) return Error(ErrorCode::kInvalidInput, "peer " + cfg.name + ": no IKE proposals");
  std::unique_ptr<IkeSa> sa(new IkeSa(std::move(cfg), std::move(env), IkeRole::kInitiator));
  auto spi = random_spi64();
  if (!spi) return spi.error();
  sa->spi_i_ = *spi;
  sa->local_ = {sa->cfg_.local_addr, kIkePort};
  sa->remote_ = {sa->cfg_.remote_addr, kIkePort};
  return sa;
}

Result<std::unique_ptr<IkeSa>> IkeSa::responder(PeerConfig cfg, IkeSaEnv env, const Datagram& d) {
  if (!env.transport || !env.kernel) return Error(ErrorCode::kInvalidInput, "IKE SA needs a transport and a kernel");
  if (!cfg.local_cert || !cfg.local_key)
    return Error(ErrorCode::kInvalidInput, "peer " + cfg.name + ": no local certificate or key");
  std::unique_ptr<IkeSa> sa(new IkeSa(std::move(cfg), std::move(env), IkeRole::kResponder));
  auto spi = random_spi64();
  if (!spi) return spi.error();
  sa->spi_r_ = *spi;
  sa->local_ = d.local;
  sa->remote_ = d.remote;
  return sa;
}

std::vector<ChildSaInfo> IkeSa::children() const {
  std::vector<ChildSaInfo> out;
  for (const Child& c : children_) out.push_back({c.slot, c.spi_out, c.suite, c.local_ts, c.remote_ts, c.encap});
  return out;
}

// ---------------------------------------------------------------------------
// Helpers

Header IkeSa::header(ExchangeType ex, bool response, std::uint32_t message_id) const {
  Header h;
  h.spi_i = spi_i_;
  h.spi_r = spi_r_;
  h.exchange = static_cast<std::uint8_t>(ex);
  h.flags =
      static_cast<std::uint8_t>((role_ == IkeRole::kInitiator ? kFlagInitiator : 0) | (response ? kFlagResponse : 0));
  h.message_id = message_id;
  return h;
}

Status IkeSa::transmit(const Bytes& data) { return env_.transport->send(Datagram{local_, remote_, data}); }

Status IkeSa::transmit(const std::vector<Bytes>& datagrams) {
  Status result = ok_status();
  for (const Bytes& b : datagrams)
    if (auto s = transmit(b); !s) result = s;
  return result;
}

Result<std::vector<Bytes>> IkeSa::seal(const Header& h, const std::vector<Payload>& inner) {
  auto whole = out_->seal(h, inner);
  if (!whole) return whole.error();
  if (!peer_fragmentation_ || cfg_.fragment_size == 0 || whole->size() <= cfg_.fragment_size)
    return std::vector<Bytes>{std::move(*whole)};
  return out_->seal_fragments(h, inner, cfg_.fragment_size);
}

void IkeSa::emit(EventKind kind, std::string reason, std::uint32_t spi_in, std::uint32_t spi_out) {
  if (!env_.emit) return;
  Event e;
  e.kind = kind;
  e.peer = cfg_.name;
  e.spi_i = spi_i_;
  e.spi_r = spi_r_;
  e.child_spi_in = spi_in;
  e.child_spi_out = spi_out;
  e.reason = std::move(reason);
  if (kind == EventKind::kAuthFailed) {
    e.peer_subject = peer_subject_;
    e.peer_issuer = peer_issuer_;
  }
  env_.emit(std::move(e));
}

void IkeSa::fail(EventKind kind, std::string reason) {
  if (terminal()) return;
  remove_all_children();
  outstanding_.reset();
  queued_.clear();
  state_ = was_up_ && kind == EventKind::kFailed ? IkeState::kDeleted : IkeState::kFailed;
  emit(was_up_ && kind == EventKind::kFailed ? EventKind::kDown : kind, std::move(reason));
}

void IkeSa::remove_child(std::size_t index, bool emit_event) {
  Child c = std::move(children_[index]);
  children_.erase(children_.begin() + static_cast<std::ptrdiff_t>(index));
  if (c.collision_of != 0)
    if (Child* old = child_by_spi_in(c.collision_of); old && old->collider == c.slot.spi_in) old->collider = 0;
  if (c.superseded_by != 0 || c.collision_of != 0) {
    // Rekeyed, or the redundant one of a collision: its two SAs only (the reqid's policies carry the successor),
    // kRekeyedInboundLinger later, for packets in flight. The outbound one at once when nothing sends with a
    // newer one yet (a successor whose outbound SA waits, or the loser of a collision, which may be the newer).
    const Child* next = c.superseded_by != 0 ? child_by_spi_in(c.superseded_by) : nullptr;
    if (c.collision_of == 0 && next && !next->pending_out)
      lingering_.push_back(LingeringSa{c.slot.reqid, c.spi_out, true, std::nullopt});
    else
      (void)env_.kernel->remove_sa(c.slot.reqid, remote_.addr, c.spi_out);
    lingering_.push_back(LingeringSa{c.slot.reqid, c.slot.spi_in, false, std::nullopt});
    return;
  }
  if (retire_children_)
    (void)env_.kernel->retire(c.slot, local_.addr, remote_.addr, c.spi_out);
  else
    (void)env_.kernel->remove(c.slot, local_.addr, remote_.addr, c.spi_out);
  if (emit_event) emit(EventKind::kChildDown, {}, c.slot.spi_in, c.spi_out);
  // The peer's undecided rekey of it (a collision) has nothing left to replace.
  if (c.collider != 0)
    for (std::size_t i = 0; i < children_.size(); ++i)
      if (children_[i].slot.spi_in == c.collider) {
        remove_child(i, false);
        break;
      }
}

void IkeSa::remove_all_children() {
  // Superseded CHILD_SAs first (SAs only), then the live ones (SAs and policies).
  for (std::size_t i = children_.size(); i-- > 0;)
    if (children_[i].superseded_by != 0 || children_[i].collision_of != 0) remove_child(i, false);
  while (!children_.empty()) remove_child(children_.size() - 1, true);
  for (const LingeringSa& l : lingering_) remove_lingering(l);
  lingering_.clear();
  if (pending_child_) {
    release(pending_child_->slot, pending_child_->rekey_of != 0);
    pending_child_.reset();
  }
}

void IkeSa::release(const ChildSaSlot& slot, bool rekey) {
  if (rekey)
    (void)env_.kernel->remove_sa(slot.reqid, local_.addr, slot.spi_in);
  else
    (void)env_.kernel->remove(slot, local_.addr, remote_.addr, 0);
}

IkeSa::Child* IkeSa::child_by_spi_in(std::uint32_t spi_in) {
  for (Child& c : children_)
    if (c.slot.spi_in == spi_in) return &c;
  return nullptr;
}

// ---------------------------------------------------------------------------
// IKE_SA_INIT

Status IkeSa::start() {
  if (role_ != IkeRole::kInitiator || state_ != IkeState::kIdle)
    return Error(ErrorCode::kConflict, "IKE SA already started");
  auto n = random_bytes(32);
  if (!n) return n.error();
  ni_ = std::move(*n);
  ke_group_ = 0;
  for (const Transform& t : cfg_.ike_proposals.front().transforms)
    if (t.type == TransformType::kKe) {
      ke_group_ = t.id;
      break;
    }
  if (ke_group_ == 0) return Error(ErrorCode::kInvalidInput, "peer " + cfg_.name + ": first IKE proposal has no KE");
  return send_sa_init();
}

Status IkeSa::send_sa_init() {
  if (!ke_ || ke_->group() != ke_group_) {  // a COOKIE retry keeps the key pair
    auto ke = KeyExchange::generate(ke_group_);
    if (!ke) return ke.error();
    ke_ = std::move(*ke);
  }
  Message m;
  m.header = header(ExchangeType::kIkeSaInit, false, 0);
  m.header.spi_r = 0;
  if (!cookie_.empty()) m.payloads.push_back(Payload::notification(notify::kCookie, cookie_));
  m.payloads.push_back(Payload::sa(SaPayload{numbered(cfg_.ike_proposals, ProtocolId::kIke, {}, true)}));
  m.payloads.push_back(Payload::ke(KePayload{ke_group_, 0, ke_->public_value()}));
  m.payloads.push_back(Payload::nonce(ni_));
  auto src = nat_detection_hash(spi_i_, 0, addr_bytes(local_.addr), local_.port);
  auto dst = nat_detection_hash(spi_i_, 0, addr_bytes(remote_.addr), remote_.port);
  if (!src || !dst) return src ? dst.error() : src.error();
  m.payloads.push_back(Payload::notification(notify::kNatDetectionSourceIp, *src));
  m.payloads.push_back(Payload::notification(notify::kNatDetectionDestinationIp, *dst));
  if (cfg_.fragment_size != 0) m.payloads.push_back(Payload::notification(notify::kIkev2FragmentationSupported));
  m.payloads.push_back(Payload::notification(notify::kSignatureHashAlgorithms, encode_hash_algorithms(kOurHashes)));
  auto bytes = serialize(m);
  if (!bytes) return bytes.error();
  own_init_ = *bytes;
  Outstanding o;
  o.message_id = 0;
  o.exchange = ExchangeType::kIkeSaInit;
  o.data = {*bytes};
  outstanding_ = std::move(o);
  state_ = IkeState::kInitSent;
  return transmit(*bytes);
}

Result<bool> IkeSa::check_nat(const Message& m, const Endpoint& local_seen, const Endpoint& remote_seen) {
  bool any_src = false, src_match = false, dst_seen = false, dst_match = false;
  for (const Payload& p : m.payloads) {
    const auto* n = std::get_if<NotifyPayload>(&p.body);
    if (!n) continue;
    if (n->type == notify::kNatDetectionSourceIp) {
      any_src = true;
      auto h = nat_detection_hash(m.header.spi_i, m.header.spi_r, addr_bytes(remote_seen.addr), remote_seen.port);
      if (!h) return h.error();
      if (*h == n->data) src_match = true;
    } else if (n->type == notify::kNatDetectionDestinationIp) {
      dst_seen = true;
      auto h = nat_detection_hash(m.header.spi_i, m.header.spi_r, addr_bytes(local_seen.addr), local_seen.port);
      if (!h) return h.error();
      if (*h == n->data) dst_match = true;
    }
  }
  if (!any_src || !dst_seen) return false;  // the peer does not do NAT detection
  return !src_match || !dst_match;
}

Status IkeSa::derive_keys(const SecretBytes& shared) {
  auto alg = prf_from_transform(suite_.prf);
  if (!alg) return alg.error();
  prf_ = *alg;
  auto seed = skeyseed(prf_, ni_, nr_, shared);
  if (!seed) return seed.error();
  return keys_from_seed(*seed);
}

Status IkeSa::keys_from_seed(const SecretBytes& seed) {
  auto alg = prf_from_transform(suite_.prf);
  if (!alg) return alg.error();
  prf_ = *alg;
  auto sizes = ike_key_sizes(suite_.encr, suite_.encr_key_bits, suite_.integ);
  if (!sizes) return sizes.error();
  auto keys = derive_ike_sa_keys(prf_, seed, ni_, nr_, spi_i_, spi_r_, *sizes);
  if (!keys) return keys.error();
  const bool init = role_ == IkeRole::kInitiator;
  auto out = SkProtector::create(suite_.encr, suite_.encr_key_bits, suite_.integ,
                                 init ? std::move(keys->sk_ei) : std::move(keys->sk_er),
                                 init ? std::move(keys->sk_ai) : std::move(keys->sk_ar));
  auto in = SkProtector::create(suite_.encr, suite_.encr_key_bits, suite_.integ,
                                init ? std::move(keys->sk_er) : std::move(keys->sk_ei),
                                init ? std::move(keys->sk_ar) : std::move(keys->sk_ai));
  if (!out) return out.error();
  if (!in) return in.error();
  out_.emplace(std::move(*out));
  in_.emplace(std::move(*in));
  sk_d_ = std::move(keys->sk_d);
  sk_pi_ = std::move(keys->sk_pi);
  sk_pr_ = std::move(keys->sk_pr);
  return ok_status();
}

void IkeSa::on_sa_init_response(const Datagram& d, const Message& m) {
  if (state_ != IkeState::kInitSent || !outstanding_ || outstanding_->exchange != ExchangeType::kIkeSaInit) return;
  if (m.header.message_id != 0) return;
  if (const NotifyPayload* c = m.find_notify(notify::kCookie)) {
    if (cookie_rounds_++ >= 3) return fail(EventKind::kFailed, "peer keeps asking for a COOKIE; giving up");
    cookie_ = c->data;
    outstanding_.reset();
    if (auto s = send_sa_init(); !s) fail(EventKind::kFailed, "resending IKE_SA_INIT: " + s.error().message());
    return;
  }
  if (const NotifyPayload* k = m.find_notify(notify::kInvalidKePayload)) {
    auto group = decode_invalid_ke(k->data);
    bool ours = false;
    if (group)
      for (const Proposal& p : cfg_.ike_proposals)
        for (const Transform& t : p.transforms)
          if (t.type == TransformType::kKe && t.id == *group) ours = true;
    if (!group || !ours || *group == ke_group_ || ke_rounds_++ >= 2)
      return fail(EventKind::kFailed, "peer asked for D-H group " + (group ? std::to_string(*group) : "?") +
                                          ", which none of our IKE proposals (" + describe(cfg_.ike_proposals) +
                                          ") allows");
    ke_group_ = *group;
    outstanding_.reset();
    if (auto s = send_sa_init(); !s) fail(EventKind::kFailed, "resending IKE_SA_INIT: " + s.error().message());
    return;
  }
  if (m.find_notify(notify::kNoProposalChosen))
    return fail(EventKind::kFailed,
                "no proposal chosen: peer accepted none of our IKE proposals (" + describe(cfg_.ike_proposals) + ")");
  if (const NotifyPayload* e = first_error(m))
    return fail(EventKind::kFailed, "peer refused IKE_SA_INIT: " + notify_name(e->type));

  const auto* sa = body_of<SaPayload>(m, PayloadType::kSa);
  const auto* ke = body_of<KePayload>(m, PayloadType::kKe);
  const auto* nonce = body_of<NoncePayload>(m, PayloadType::kNonce);
  if (!sa || !ke || !nonce || m.header.spi_r == 0)
    return fail(EventKind::kFailed, "peer's IKE_SA_INIT response lacks SA, KE or nonce");
  const auto offered = numbered(cfg_.ike_proposals, ProtocolId::kIke, {}, true);
  auto suite = check_chosen(*sa, offered);
  if (!suite)
    return fail(EventKind::kFailed, "peer chose an IKE proposal we did not offer: " + suite.error().message());
  if (suite->ke != ke_group_ || ke->group != ke_group_)
    return fail(EventKind::kFailed, "peer's KE payload does not match the chosen D-H group");
  if (nonce->data.size() < 16 || nonce->data.size() > 256)
    return fail(EventKind::kFailed, "peer's nonce has an invalid length");
  suite_ = *suite;
  spi_r_ = m.header.spi_r;
  nr_ = nonce->data;
  peer_init_ = d.data;
  auto shared = ke_->derive(ke->data);
  ke_.reset();
  if (!shared) return fail(EventKind::kFailed, "peer's KE value is invalid: " + shared.error().message());
  if (auto s = derive_keys(*shared); !s) return fail(EventKind::kFailed, "key derivation: " + s.error().message());
  auto nat = check_nat(m, local_, remote_);
  if (!nat) return fail(EventKind::kFailed, nat.error().message());
  if (const NotifyPayload* h = m.find_notify(notify::kSignatureHashAlgorithms))
    if (auto l = decode_hash_algorithms(h->data)) peer_hashes_ = *l;
  peer_fragmentation_ = cfg_.fragment_size != 0 && m.find_notify(notify::kIkev2FragmentationSupported) != nullptr;
  if (*nat) {
    nat_ = true;
    local_.port = kNatTPort;
    remote_.port = kNatTPort;
  }
  outstanding_.reset();
  next_request_id_ = 1;
  if (auto s = send_auth_request(); !s) fail(EventKind::kFailed, "sending IKE_AUTH: " + s.error().message());
}

void IkeSa::on_sa_init_request(const Datagram& d, const Message& m) {
  if (!init_request_.empty()) {  // a retransmission of the request we answered
    if (d.data == init_request_ && !own_init_.empty()) (void)transmit(own_init_);
    return;
  }
  init_request_ = d.data;
  spi_i_ = m.header.spi_i;
  auto refuse = [&](std::uint16_t type, Bytes data, EventKind kind, std::string reason, bool quiet) {
    Message r;
    r.header = header(ExchangeType::kIkeSaInit, true, 0);
    r.header.spi_r = 0;
    r.payloads.push_back(Payload::notification(type, std::move(data)));
    if (auto b = serialize(r)) (void)transmit(*b);
    if (quiet) {
      state_ = IkeState::kFailed;
    } else {
      fail(kind, std::move(reason));
    }
  };
  const auto* sa = body_of<SaPayload>(m, PayloadType::kSa);
  const auto* ke = body_of<KePayload>(m, PayloadType::kKe);
  const auto* nonce = body_of<NoncePayload>(m, PayloadType::kNonce);
  if (!sa || !ke || !nonce || nonce->data.size() < 16 || nonce->data.size() > 256 || m.header.message_id != 0)
    return refuse(notify::kInvalidSyntax, {}, EventKind::kFailed, "peer's IKE_SA_INIT request is malformed", false);
  auto chosen = choose_proposal(*sa, cfg_.ike_proposals);
  if (!chosen)
    return refuse(
        notify::kNoProposalChosen, {}, EventKind::kFailed,
        "no proposal chosen: peer offered " + describe(sa->proposals) + "; we accept " + describe(cfg_.ike_proposals),
        false);
  auto suite = suite_of(*chosen);
  if (!suite || suite->ke == 0)
    return refuse(notify::kNoProposalChosen, {}, EventKind::kFailed, "chosen IKE proposal has no D-H group", false);
  if (ke->group != suite->ke)  // normal negotiation: the initiator retries with our group
    return refuse(notify::kInvalidKePayload, encode_invalid_ke(suite->ke), EventKind::kFailed, {}, true);
  suite_ = *suite;
  ni_ = nonce->data;
  peer_init_ = d.data;
  auto n = random_bytes(32);
  auto kx = KeyExchange::generate(suite_.ke);
  if (!n || !kx) return fail(EventKind::kFailed, "internal: random or key generation failed");
  nr_ = std::move(*n);
  auto shared = kx->derive(ke->data);
  if (!shared)
    return refuse(notify::kInvalidSyntax, {}, EventKind::kFailed,
                  "peer's KE value is invalid: " + shared.error().message(), false);
  if (auto s = derive_keys(*shared); !s) return fail(EventKind::kFailed, "key derivation: " + s.error().message());
  auto nat = check_nat(m, d.local, d.remote);
  if (!nat) return fail(EventKind::kFailed, nat.error().message());
  nat_ = *nat;
  if (const NotifyPayload* h = m.find_notify(notify::kSignatureHashAlgorithms))
    if (auto l = decode_hash_algorithms(h->data)) peer_hashes_ = *l;

  Message r;
  r.header = header(ExchangeType::kIkeSaInit, true, 0);
  r.payloads.push_back(Payload::sa(SaPayload{{*chosen}}));
  r.payloads.push_back(Payload::ke(KePayload{suite_.ke, 0, kx->public_value()}));
  r.payloads.push_back(Payload::nonce(nr_));
  auto src = nat_detection_hash(spi_i_, spi_r_, addr_bytes(d.local.addr), d.local.port);
  auto dst = nat_detection_hash(spi_i_, spi_r_, addr_bytes(d.remote.addr), d.remote.port);
  if (!src || !dst) return fail(EventKind::kFailed, "internal: NAT detection hash failed");
  r.payloads.push_back(Payload::notification(notify::kNatDetectionSourceIp, *src));
  r.payloads.push_back(Payload::notification(notify::kNatDetectionDestinationIp, *dst));
  CertPayload req;
  for (const Bytes& h : cfg_.certreq_authorities) req.data.insert(req.data.end(), h.begin(), h.end());
  r.payloads.push_back(Payload::of(PayloadType::kCertReq, req));
  peer_fragmentation_ = cfg_.fragment_size != 0 && m.find_notify(notify::kIkev2FragmentationSupported) != nullptr;
  if (peer_fragmentation_) r.payloads.push_back(Payload::notification(notify::kIkev2FragmentationSupported));
  r.payloads.push_back(Payload::notification(notify::kSignatureHashAlgorithms, encode_hash_algorithms(kOurHashes)));
  auto bytes = serialize(r);
  if (!bytes) return fail(EventKind::kFailed, "internal: " + bytes.error().message());
  own_init_ = *bytes;
  state_ = IkeState::kInitDone;
  next_peer_request_id_ = 1;
  (void)transmit(own_init_);
}

// ---------------------------------------------------------------------------
// IKE_AUTH

Result<std::vector<Payload>> IkeSa::own_auth_payloads() {
  IdPayload id;
  if (cfg_.local_id) {
    id = *cfg_.local_id;
  } else {
    auto dn = id_from_subject(cfg_.local_cert.get());
    if (!dn) return dn.error();
    id = *dn;
  }
  const bool init = role_ == IkeRole::kInitiator;
  auto octets = auth_octets(prf_, own_init_, init ? nr_ : ni_, init ? sk_pi_ : sk_pr_, id);
  if (!octets) return octets.error();
  auto auth = sign_auth(cfg_.local_key.get(), *octets);  // ECDSA P-384 or RSA-PSS >= 3072, SHA-384
  if (!auth) return auth.error();
  std::vector<Payload> out;
  out.push_back(Payload::of(init ? PayloadType::kIdi : PayloadType::kIdr, id));
  auto c = cert_payload(cfg_.local_cert.get());
  if (!c) return c.error();
  out.push_back(Payload::of(PayloadType::kCert, *c));
  for (const X509Ref& x : cfg_.local_intermediates) {
    auto ci = cert_payload(x.get());
    if (!ci) return ci.error();
    out.push_back(Payload::of(PayloadType::kCert, *ci));
  }
  if (init) {
    out.push_back(Payload::notification(notify::kInitialContact));
    CertPayload req;
    for (const Bytes& h : cfg_.certreq_authorities) req.data.insert(req.data.end(), h.begin(), h.end());
    out.push_back(Payload::of(PayloadType::kCertReq, req));
    if (cfg_.remote_id) out.push_back(Payload::of(PayloadType::kIdr, *cfg_.remote_id));
  }
  out.push_back(Payload::of(PayloadType::kAuth, *auth));
  return out;
}

std::vector<Proposal> IkeSa::esp_offer(std::uint32_t spi_in, bool with_ke) const {
  return numbered(cfg_.esp_proposals, ProtocolId::kEsp, spi_bytes(spi_in), with_ke);
}

Status IkeSa::send_auth_request() {
  auto payloads = own_auth_payloads();
  if (!payloads) return payloads.error();
  auto slot = env_.kernel->reserve(local_.addr, remote_.addr);
  if (!slot) return std::move(slot).error().context("reserving a CHILD_SA in the kernel");
  PendingChild pc;
  pc.slot = *slot;
  pc.offered = esp_offer(slot->spi_in, false);
  payloads->push_back(Payload::sa(SaPayload{pc.offered}));
  payloads->push_back(Payload::of(PayloadType::kTsi, ts_payload(cfg_.local_ts)));
  payloads->push_back(Payload::of(PayloadType::kTsr, ts_payload(cfg_.remote_ts)));
  pending_child_ = std::move(pc);
  state_ = IkeState::kAuthSent;
  return send_request(ExchangeType::kIkeAuth, std::move(*payloads), Op::kPing, 0);
}

Result<std::monostate> IkeSa::authenticate_peer(const Message& m) {
  const bool init = role_ == IkeRole::kInitiator;
  const auto* id = body_of<IdPayload>(m, init ? PayloadType::kIdr : PayloadType::kIdi);
  if (!id) return Error(ErrorCode::kProtocol, std::string("peer sent no ") + (init ? "IDr" : "IDi"));
  std::vector<X509Ptr> certs;
  for (const Payload& p : m.payloads) {
    if (p.type != static_cast<std::uint8_t>(PayloadType::kCert)) continue;
    const auto* c = std::get_if<CertPayload>(&p.body);
    if (!c) continue;
    auto x = parse_cert_payload(*c);
    if (!x) return Error(ErrorCode::kProtocol, "peer's CERT payload unusable: " + x.error().message());
    certs.push_back(std::move(*x));
  }
  if (certs.empty()) return Error(ErrorCode::kProtocol, "peer sent no certificate");
  X509* ee = certs.front().get();
  peer_subject_ = name_string(X509_get_subject_name(ee));
  peer_issuer_ = name_string(X509_get_issuer_name(ee));
  if (cfg_.remote_id && (cfg_.remote_id->id_type != id->id_type || cfg_.remote_id->data != id->data))
    return Error(ErrorCode::kProtocol,
                 "peer ID " + id_to_string(*id) + " is not the configured " + id_to_string(*cfg_.remote_id));
  if (auto s = check_id_matches_cert(*id, ee); !s)
    return Error(ErrorCode::kProtocol,
                 "peer ID " + id_to_string(*id) + " does not match its certificate (subject " + peer_subject_ + ")");
  const auto* auth = body_of<AuthPayload>(m, PayloadType::kAuth);
  if (!auth) return Error(ErrorCode::kProtocol, "peer sent no AUTH payload");
  if (auth->method != auth_method::kDigitalSignature)
    return Error(ErrorCode::kProtocol, "peer used AUTH method " + std::to_string(auth->method) +
                                           "; only 14 (RFC 7427 ECDSA P-384/SHA-384) is accepted");
  auto octets = auth_octets(prf_, peer_init_, init ? ni_ : nr_, init ? sk_pr_ : sk_pi_, *id);
  if (!octets) return octets.error();
  // The CNSA schemes only; verify_auth's reasons are final (auth.h).
  if (auto s = verify_auth(*auth, ee, *octets); !s) return s.error();
  if (!cfg_.validate_peer) return Error(ErrorCode::kProtocol, "peer certificate not trusted: no validator configured");
  std::vector<X509*> inter;
  for (std::size_t i = 1; i < certs.size(); ++i) inter.push_back(certs[i].get());
  if (auto s = cfg_.validate_peer(ee, inter, *id); !s) {
    // PeerValidator's errors name their reason ("peer certificate not trusted: ...",
    // "peer certificate expired ...") and carry a fix: passed on as they are.
    if (s.error().code() == ErrorCode::kProtocol) return s.error();
    return Error(ErrorCode::kProtocol, "peer certificate not trusted: " + s.error().message());
  }
  return std::monostate{};
}

void IkeSa::on_auth_request(const Message& m) {
  const std::uint32_t id = next_peer_request_id_;
  auto ok = authenticate_peer(m);
  if (!ok) {
    std::vector<Payload> r = {Payload::notification(notify::kAuthenticationFailed)};
    (void)send_response(ExchangeType::kIkeAuth, id, r);
    return fail(EventKind::kAuthFailed, ok.error().message());
  }
  auto payloads = own_auth_payloads();
  if (!payloads) {
    std::vector<Payload> r = {Payload::notification(notify::kAuthenticationFailed)};
    (void)send_response(ExchangeType::kIkeAuth, id, r);
    return fail(EventKind::kFailed, "our own AUTH: " + payloads.error().message());
  }
  state_ = IkeState::kEstablished;
  was_up_ = true;
  emit(EventKind::kUp);
  if (m.find_notify(notify::kInitialContact) && env_.initial_contact) env_.initial_contact(*this);
  std::vector<Payload> out = std::move(*payloads);
  respond_child(m, ni_, nr_, false, out);
  (void)send_response(ExchangeType::kIkeAuth, id, out);
}

void IkeSa::on_auth_response(const Message& m) {
  if (m.find_notify(notify::kAuthenticationFailed))
    return fail(EventKind::kAuthFailed, "peer refused our authentication (AUTHENTICATION_FAILED)");
  if (!m.find(PayloadType::kAuth)) {
    const NotifyPayload* e = first_error(m);
    return fail(EventKind::kFailed, "peer refused IKE_AUTH: " + (e ? notify_name(e->type) : "no AUTH payload"));
  }
  auto ok = authenticate_peer(m);
  if (!ok) {
    // RFC 7296 §2.21.2: tell the responder in a separate INFORMATIONAL exchange.
    std::vector<Payload> n = {Payload::notification(notify::kAuthenticationFailed)};
    if (auto b = seal(header(ExchangeType::kInformational, false, next_request_id_), n)) (void)transmit(*b);
    return fail(EventKind::kAuthFailed, ok.error().message());
  }
  state_ = IkeState::kEstablished;
  was_up_ = true;
  emit(EventKind::kUp);
  if (pending_child_) {
    PendingChild pc = std::move(*pending_child_);
    pending_child_.reset();
    accept_child(m, std::move(pc), ni_, nr_);
  }
}

// ---------------------------------------------------------------------------
// CHILD_SAs

Status IkeSa::install_child(const ChildSaSlot& slot, std::uint32_t spi_out, const Suite& suite,
                            const SecretBytes* pfs_shared, const Bytes& ni, const Bytes& nr,
                            std::vector<TsRange> local_ts, std::vector<TsRange> remote_ts, bool we_initiated,
                            std::uint32_t rekey_of) {
  auto sizes = esp_key_sizes(suite.encr, suite.encr_key_bits, suite.integ);
  if (!sizes) return sizes.error();
  auto keys = derive_child_sa_keys(prf_, sk_d_, pfs_shared, ni, nr, *sizes);
  if (!keys) return keys.error();
  const bool init = we_initiated;
  ChildSaSpec spec;
  spec.slot = slot;
  spec.spi_out = spi_out;
  spec.local = local_.addr;
  spec.remote = remote_.addr;
  if (nat_) spec.encap = std::make_pair(local_.port, remote_.port);
  spec.suite = suite;
  spec.out.encr = init ? std::move(keys->encr_i) : std::move(keys->encr_r);
  spec.out.integ = init ? std::move(keys->integ_i) : std::move(keys->integ_r);
  spec.in.encr = init ? std::move(keys->encr_r) : std::move(keys->encr_i);
  spec.in.integ = init ? std::move(keys->integ_r) : std::move(keys->integ_i);
  spec.local_ts = local_ts;
  spec.remote_ts = remote_ts;
  spec.lifetime = cfg_.child_lifetime;
  spec.replay_window = cfg_.replay_window;
  if (rekey_of == 0) {
    if (auto s = env_.kernel->install(spec); !s) return s;
    children_.push_back(Child{slot, spi_out, suite, std::move(local_ts), std::move(remote_ts), spec.encap});
    emit(EventKind::kChildUp, {}, slot.spi_in, spi_out);
    return ok_status();
  }
  // A rekey: the old CHILD_SA's policies stay and carry the new SAs.
  Child* old = child_by_spi_in(rekey_of);
  if (!old) return Error(ErrorCode::kNotFound, "the CHILD_SA being rekeyed is gone");
  if (auto s = env_.kernel->install_sa(spec, SaDirection::kIn); !s) return s;
  Child c{slot, spi_out, suite, std::move(local_ts), std::move(remote_ts), spec.encap};
  if (init) {
    // The peer (responder) installed its new inbound SA before it answered.
    if (auto s = env_.kernel->install_sa(spec, SaDirection::kOut); !s) {
      (void)env_.kernel->remove_sa(slot.reqid, local_.addr, slot.spi_in);
      return s;
    }
  } else {
    // The peer installs its inbound SA when our answer arrives: send with
    // the new key only once it deletes the old CHILD_SA (or after a grace).
    c.pending_out = std::make_unique<ChildSaSpec>(std::move(spec));
  }
  old = child_by_spi_in(rekey_of);
  if (!init && old->rekeying) {
    // A collision (§2.8.1): our rekey of it is outstanding too. Which new
    // CHILD_SA survives is decided when our answer comes (accept_child).
    c.collision_of = rekey_of;
    c.collision_ni = ni;
    c.collision_nr = nr;
    old->collider = slot.spi_in;
    children_.push_back(std::move(c));
    return ok_status();
  }
  old->superseded_by = slot.spi_in;
  old->rekeying = false;
  const std::uint32_t old_in = old->slot.spi_in, old_out = old->spi_out;
  const bool collided = old->collider != 0;
  children_.push_back(std::move(c));             // (invalidates `old`)
  if (collided) return ok_status();  // accept_child judges the collision and reports the survivor
  emit(EventKind::kChildRekeyed, fmt::format("replaces the CHILD_SA with SPIs in 0x{:08x} out 0x{:08x}", old_in, old_out),
       slot.spi_in, spi_out);
  return ok_status();
}

void IkeSa::finish_rekey_outbound(Child& c) {
  if (!c.pending_out) return;
  std::unique_ptr<ChildSaSpec> spec = std::move(c.pending_out);
  c.pending_out_since.reset();
  if (auto s = env_.kernel->install_sa(*spec, SaDirection::kOut); !s) {
    emit(EventKind::kChildFailed, "installing the outbound SA of a rekeyed CHILD_SA: " + s.error().message(),
         c.slot.spi_in, c.spi_out);
    return;
  }
}

void IkeSa::accept_child(const Message& m, PendingChild pc, const Bytes& ni, const Bytes& nr) {
  Child* old = pc.rekey_of ? child_by_spi_in(pc.rekey_of) : nullptr;
  if (old) old->rekeying = false;
  auto refuse = [&](std::string reason) {
    release(pc.slot, pc.rekey_of != 0);
    emit(EventKind::kChildFailed, std::move(reason), pc.slot.spi_in);
  };
  if (pc.rekey_of != 0 && !old) {
    // The CHILD_SA being rekeyed went meanwhile (the peer deleted it, e.g.
    // after a collision it judged in its favour): if the peer made a
    // CHILD_SA for our request, it waits for us to delete that one.
    release(pc.slot, true);
    if (!first_error(m) && m.find(PayloadType::kSa)) queued_.push_front({Op::kDeleteOrphan, pc.slot.spi_in});
    return;
  }
  if (const NotifyPayload* e = first_error(m); e && old && e->type == notify::kTemporaryFailure) {
    // The peer is deleting it or busy: try again soon, unless the peer's
    // own rekey of it crossed ours (that one replaces it).
    release(pc.slot, true);
    old->retry_rekey = old->collider == 0;
    return;
  }
  if (const NotifyPayload* e = first_error(m); e && old && e->type == notify::kChildSaNotFound) {
    // The peer has no such CHILD_SA (RFC 7296 §2.25): ours carries nothing any more.
    release(pc.slot, true);
    emit(EventKind::kChildFailed, "peer has no CHILD_SA to rekey (CHILD_SA_NOT_FOUND); removed ours", old->slot.spi_in,
         old->spi_out);
    for (std::size_t i = 0; i < children_.size(); ++i)
      if (&children_[i] == old) {
        remove_child(i, true);
        break;
      }
    return;
  }
  if (const NotifyPayload* e = first_error(m)) {
    std::string why = "peer refused the CHILD_SA: " + notify_name(e->type);
    if (e->type == notify::kNoProposalChosen) why += " (we offered " + describe(pc.offered) + ")";
    if (e->type == notify::kTsUnacceptable)
      why += " (we proposed TSi " + describe_ts(cfg_.local_ts) + ", TSr " + describe_ts(cfg_.remote_ts) + ")";
    return refuse(std::move(why));
  }
  const auto* sa = body_of<SaPayload>(m, PayloadType::kSa);
  const auto* tsi = body_of<TsPayload>(m, PayloadType::kTsi);
  const auto* tsr = body_of<TsPayload>(m, PayloadType::kTsr);
  if (!sa || !tsi || !tsr) return refuse("peer's answer lacks SA, TSi or TSr");
  auto suite = check_chosen(*sa, pc.offered);
  if (!suite) return refuse("peer chose an ESP proposal we did not offer: " + suite.error().message());
  auto spi_out = spi32(sa->proposals.front().spi);
  if (!spi_out || *spi_out == 0) return refuse("peer's ESP SPI is not 4 bytes");
  auto local_ts = ts_ranges(*tsi), remote_ts = ts_ranges(*tsr);
  if (local_ts.empty() || remote_ts.empty()) return refuse("peer's traffic selectors are empty or unsupported");
  for (const TsRange& r : local_ts)
    if (!within(r, cfg_.local_ts)) return refuse("peer widened TSi beyond ours: " + describe_ts(local_ts));
  for (const TsRange& r : remote_ts)
    if (!within(r, cfg_.remote_ts)) return refuse("peer widened TSr beyond ours: " + describe_ts(remote_ts));
  std::optional<SecretBytes> pfs;
  if (suite->ke != 0) {
    const auto* ke = body_of<KePayload>(m, PayloadType::kKe);
    if (!pc.ke || !ke || ke->group != suite->ke || pc.ke->group() != suite->ke)
      return refuse("peer's PFS KE does not match the chosen group");
    auto shared = pc.ke->derive(ke->data);
    if (!shared) return refuse("peer's PFS KE value is invalid: " + shared.error().message());
    pfs = std::move(*shared);
  }
  if (auto s = install_child(pc.slot, *spi_out, *suite, pfs ? &*pfs : nullptr, ni, nr, std::move(local_ts),
                             std::move(remote_ts), true, pc.rekey_of);
      !s)
    return refuse("installing the CHILD_SA: " + s.error().message());
  if (pc.rekey_of == 0) return;
  old = child_by_spi_in(pc.rekey_of);
  Child* col = old->collider ? child_by_spi_in(old->collider) : nullptr;
  Child* ours = child_by_spi_in(pc.slot.spi_in);
  old->collider = 0;
  const std::string replaces = fmt::format("replaces the CHILD_SA with SPIs in 0x{:08x} out 0x{:08x}", old->slot.spi_in,
                                           old->spi_out);
  if (col && has_lowest_nonce(ni, nr, col->collision_ni, col->collision_nr)) {
    // §2.8.1: ours is the redundant one; we delete it, the peer deletes the
    // old CHILD_SA, whose successor is the peer's (its outbound SA goes in
    // when that DELETE comes).
    col->collision_of = 0;
    old->superseded_by = col->slot.spi_in;
    ours->superseded_by = col->slot.spi_in;
    queued_.push_front({Op::kDeleteChild, pc.slot.spi_in});
    emit(EventKind::kChildRekeyed, replaces + " (rekey collision: the peer's rekey survives)", col->slot.spi_in,
         col->spi_out);
    return;
  }
  if (col) {
    // The peer's CHILD_SA is the redundant one: the peer deletes it; we never send with it.
    col->collision_of = 0;
    col->superseded_by = pc.slot.spi_in;
    col->pending_out.reset();
    col->pending_out_since.reset();
    emit(EventKind::kChildRekeyed, replaces + " (rekey collision: ours survives)", ours->slot.spi_in, ours->spi_out);
  }
  // Rekeyed: the old CHILD_SA goes next (RFC 7296 §2.8: its initiator deletes it).
  queued_.push_front({Op::kDeleteChild, pc.rekey_of});
}

void IkeSa::respond_child(const Message& m, const Bytes& ni_in, const Bytes& nr_in, bool create_child_sa,
                          std::vector<Payload>& out) {
  const auto* sa = body_of<SaPayload>(m, PayloadType::kSa);
  const auto* tsi = body_of<TsPayload>(m, PayloadType::kTsi);
  const auto* tsr = body_of<TsPayload>(m, PayloadType::kTsr);
  if (!sa || !tsi || !tsr) {
    if (create_child_sa) out.push_back(Payload::notification(notify::kInvalidSyntax));
    return;  // IKE_AUTH without a CHILD_SA
  }
  auto refuse = [&](std::uint16_t type, std::string reason, Bytes data = {}) {
    out.push_back(Payload::notification(type, std::move(data)));
    emit(EventKind::kChildFailed, std::move(reason));
  };
  // A rekey names the CHILD_SA by the SPI the peer receives on: our outbound SPI.
  Child* old = nullptr;
  if (const NotifyPayload* rk = create_child_sa ? m.find_notify(notify::kRekeySa) : nullptr) {
    auto spi = spi32(rk->spi);
    for (Child& c : children_)
      if (spi && c.spi_out == *spi && c.superseded_by == 0) old = &c;
    if (!old) {
      out.push_back(Payload::notification(notify::kChildSaNotFound, {}, ProtocolId::kEsp, rk->spi));
      emit(EventKind::kChildFailed, "peer asked to rekey a CHILD_SA we do not have (its inbound SPI " +
                                        (spi ? fmt::format("0x{:08x}", *spi) : std::string("malformed")) + ")");
      return;
    }
    if (old->deleting || old->collider != 0) {
      // We are closing it (RFC 7296 §2.25.1), or the peer's rekey of it
      // crossed ours already: refuse for now. A crossing rekey of ours
      // (old->rekeying) is answered as usual (§2.8.1).
      out.push_back(Payload::notification(notify::kTemporaryFailure));
      return;
    }
  }
  auto ours = numbered(cfg_.esp_proposals, ProtocolId::kEsp, {}, create_child_sa);
  auto chosen = choose_proposal(*sa, ours);
  if (!chosen)
    return refuse(notify::kNoProposalChosen, "no proposal chosen for the CHILD_SA: peer offered " +
                                                 describe(sa->proposals) + "; we accept " + describe(ours));
  std::optional<std::uint32_t> spi_out;
  for (const Proposal& p : sa->proposals)
    if (p.number == chosen->number && p.protocol == ProtocolId::kEsp) spi_out = spi32(p.spi);
  if (!spi_out || *spi_out == 0) return refuse(notify::kInvalidSyntax, "peer's ESP SPI is not 4 bytes");
  auto suite = suite_of(*chosen);
  if (!suite) return refuse(notify::kNoProposalChosen, suite.error().message());
  const auto peer_i = ts_ranges(*tsi), peer_r = ts_ranges(*tsr);
  auto remote_ts = narrow(peer_i, cfg_.remote_ts);
  auto local_ts = narrow(peer_r, cfg_.local_ts);
  if (remote_ts.empty() || local_ts.empty())
    return refuse(notify::kTsUnacceptable, "traffic selectors unacceptable: peer proposed TSi " + describe_ts(peer_i) +
                                               ", TSr " + describe_ts(peer_r) + "; we allow remote " +
                                               describe_ts(cfg_.remote_ts) + ", local " + describe_ts(cfg_.local_ts));
  Bytes ni = ni_in, nr = nr_in;
  std::optional<SecretBytes> pfs;
  std::optional<KeyExchange> kx;
  if (create_child_sa) {
    const auto* n = body_of<NoncePayload>(m, PayloadType::kNonce);
    if (!n || n->data.size() < 16 || n->data.size() > 256)
      return refuse(notify::kInvalidSyntax, "peer's CREATE_CHILD_SA has no valid nonce");
    ni = n->data;
    auto r = random_bytes(32);
    if (!r) return refuse(notify::kTemporaryFailure, "internal: random failed");
    nr = std::move(*r);
    if (suite->ke != 0) {
      const auto* ke = body_of<KePayload>(m, PayloadType::kKe);
      if (!ke || ke->group != suite->ke)
        return refuse(notify::kInvalidKePayload, "peer's PFS KE group differs from the chosen one",
                      encode_invalid_ke(suite->ke));
      auto k = KeyExchange::generate(suite->ke);
      if (!k) return refuse(notify::kTemporaryFailure, "internal: key generation failed");
      kx = std::move(*k);
      auto shared = kx->derive(ke->data);
      if (!shared) return refuse(notify::kInvalidSyntax, "peer's PFS KE value is invalid");
      pfs = std::move(*shared);
    }
  }
  const std::uint32_t rekey_of = old ? old->slot.spi_in : 0;
  auto slot = old ? env_.kernel->reserve_rekey(old->slot, local_.addr, remote_.addr)
                  : env_.kernel->reserve(local_.addr, remote_.addr);
  if (!slot)
    return refuse(notify::kNoProposalChosen, "reserving the CHILD_SA in the kernel: " + slot.error().message());
  if (auto s = install_child(*slot, *spi_out, *suite, pfs ? &*pfs : nullptr, ni, nr, local_ts, remote_ts, false, rekey_of);
      !s) {
    release(*slot, rekey_of != 0);
    return refuse(notify::kNoProposalChosen, "installing the CHILD_SA: " + s.error().message());
  }
  Proposal answer = *chosen;
  answer.spi = spi_bytes(slot->spi_in);
  out.push_back(Payload::sa(SaPayload{{answer}}));
  if (create_child_sa) {
    out.push_back(Payload::nonce(nr));
    if (kx) out.push_back(Payload::ke(KePayload{kx->group(), 0, kx->public_value()}));
  }
  out.push_back(Payload::of(PayloadType::kTsi, ts_payload(remote_ts)));
  out.push_back(Payload::of(PayloadType::kTsr, ts_payload(local_ts)));
}

// ---------------------------------------------------------------------------
// Our requests (window 1)

Status IkeSa::create_child() {
  if (state_ != IkeState::kEstablished) return Error(ErrorCode::kConflict, "IKE SA is not established");
  queue({Op::kCreateChild, 0});
  return ok_status();
}

Status IkeSa::delete_child(std::uint32_t spi_in) {
  if (state_ != IkeState::kEstablished) return Error(ErrorCode::kConflict, "IKE SA is not established");
  if (std::none_of(children_.begin(), children_.end(), [&](const Child& c) { return c.slot.spi_in == spi_in; }))
    return Error(ErrorCode::kNotFound, "no CHILD_SA with inbound SPI " + std::to_string(spi_in));
  queue({Op::kDeleteChild, spi_in});
  return ok_status();
}

Status IkeSa::rekey_child(std::uint32_t spi_in) {
  if (state_ != IkeState::kEstablished) return Error(ErrorCode::kConflict, "IKE SA is not established");
  const Child* c = child_by_spi_in(spi_in);
  if (!c) return Error(ErrorCode::kNotFound, fmt::format("no CHILD_SA with inbound SPI 0x{:08x}", spi_in));
  if (c->superseded_by != 0 || c->rekeying)
    return Error(ErrorCode::kConflict, fmt::format("CHILD_SA 0x{:08x} is being rekeyed already", spi_in));
  if (c->deleting) return Error(ErrorCode::kConflict, fmt::format("CHILD_SA 0x{:08x} is being deleted", spi_in));
  queue({Op::kRekeyChild, spi_in});
  return ok_status();
}

Status IkeSa::close() {
  if (terminal() || state_ == IkeState::kDeleting) return ok_status();
  if (state_ == IkeState::kRekeyed) {  // its successor carries everything; it goes quietly
    outstanding_.reset();
    state_ = IkeState::kDeleted;
    return ok_status();
  }
  if (state_ != IkeState::kEstablished) {
    fail(EventKind::kFailed, "terminated before it was established");
    return ok_status();
  }
  queue({Op::kDeleteIke, 0});
  return ok_status();
}

void IkeSa::abort(std::string reason) {
  if (terminal()) return;
  if (state_ == IkeState::kRekeyed) {
    (void)close();
    return;
  }
  if (state_ == IkeState::kDeleting) {
    remove_all_children();
    outstanding_.reset();
    queued_.clear();
    state_ = IkeState::kDeleted;
    emit(EventKind::kDown, std::move(reason));
    return;
  }
  fail(EventKind::kFailed, std::move(reason));
}

Status IkeSa::ping() {
  if (state_ != IkeState::kEstablished) return Error(ErrorCode::kConflict, "IKE SA is not established");
  queue({Op::kPing, 0});
  return ok_status();
}

void IkeSa::queue(QueuedOp op) {
  queued_.push_back(op);
  pump();
}

void IkeSa::pump() {
  while (!outstanding_ && state_ == IkeState::kEstablished && !queued_.empty()) {
    QueuedOp q = queued_.front();
    queued_.pop_front();
    std::vector<Payload> inner;
    switch (q.op) {
      case Op::kCreateChild: {
        auto slot = env_.kernel->reserve(local_.addr, remote_.addr);
        if (!slot) {
          emit(EventKind::kChildFailed, "reserving a CHILD_SA in the kernel: " + slot.error().message());
          continue;
        }
        PendingChild pc;
        pc.slot = *slot;
        auto offer = child_offer(pc, cfg_.local_ts, cfg_.remote_ts);
        if (!offer) {
          release(pc.slot, false);
          emit(EventKind::kChildFailed, offer.error().message());
          continue;
        }
        pending_child_ = std::move(pc);
        (void)send_request(ExchangeType::kCreateChildSa, std::move(*offer), q.op, 0);
        break;
      }
      case Op::kRekeyChild: {
        Child* old = child_by_spi_in(q.spi);
        if (!old || old->superseded_by != 0 || old->deleting) continue;  // gone, rekeyed or closing meanwhile
        auto slot = env_.kernel->reserve_rekey(old->slot, local_.addr, remote_.addr);
        if (!slot) {
          emit(EventKind::kChildFailed, "reserving the rekeyed CHILD_SA in the kernel: " + slot.error().message(),
               q.spi);
          continue;
        }
        PendingChild pc;
        pc.slot = *slot;
        pc.rekey_of = q.spi;
        auto offer = child_offer(pc, old->local_ts, old->remote_ts);
        if (!offer) {
          release(pc.slot, true);
          emit(EventKind::kChildFailed, offer.error().message(), q.spi);
          continue;
        }
        // REKEY_SA names the CHILD_SA by the SPI we receive on (RFC 7296 §1.3.3).
        offer->insert(offer->begin(),
                      Payload::notification(notify::kRekeySa, {}, ProtocolId::kEsp, spi_bytes(q.spi)));
        old->rekeying = true;
        pending_child_ = std::move(pc);
        (void)send_request(ExchangeType::kCreateChildSa, std::move(*offer), q.op, q.spi);
        break;
      }
      case Op::kDeleteChild:
      case Op::kDeleteOrphan: {
        if (q.op == Op::kDeleteChild) {
          Child* c = child_by_spi_in(q.spi);
          if (!c) continue;  // gone meanwhile
          c->deleting = true;
        }
        DeletePayload del;
        del.protocol = ProtocolId::kEsp;
        del.spi_size = 4;
        del.spis = {spi_bytes(q.spi)};
        inner.push_back(Payload::of(PayloadType::kDelete, del));
        (void)send_request(ExchangeType::kInformational, std::move(inner), q.op, q.spi);
        break;
      }
      case Op::kDeleteIke: {
        DeletePayload del;
        del.protocol = ProtocolId::kIke;
        del.spi_size = 0;
        inner.push_back(Payload::of(PayloadType::kDelete, del));
        state_ = IkeState::kDeleting;
        (void)send_request(ExchangeType::kInformational, std::move(inner), q.op, 0);
        break;
      }
      case Op::kPing:
        (void)send_request(ExchangeType::kInformational, {}, q.op, 0);
        break;
      case Op::kRekeyIke: {
        if (pending_ike_) continue;
        // A CHILD_SA mid-rekey or mid-delete finishes on this IKE SA first (the
        // peer's DELETE of a rekeyed one must find it here): again in 0.5-2 s.
        if (std::any_of(children_.begin(), children_.end(), [](const Child& c) {
              return c.rekeying || c.deleting || c.collider != 0 || c.collision_of != 0 || c.superseded_by != 0 ||
                     c.pending_out != nullptr;
            })) {
          ike_rekey_retry_ = std::chrono::milliseconds(500) + jitter(std::chrono::milliseconds(1500));
          continue;
        }
        auto offer = ike_rekey_offer();
        if (!offer) {
          ike_rekey_retry_ = kIkeRekeyRetry;
          emit(EventKind::kIkeRekeyFailed, "preparing the IKE SA rekey: " + offer.error().message());
          continue;
        }
        (void)send_request(ExchangeType::kCreateChildSa, std::move(*offer), q.op, 0);
        break;
      }
    }
  }
}

Result<std::vector<Payload>> IkeSa::child_offer(PendingChild& pc, const std::vector<TsRange>& local_ts,
                                                const std::vector<TsRange>& remote_ts) {
  pc.offered = esp_offer(pc.slot.spi_in, true);
  std::uint16_t group = 0;
  for (const Transform& t : pc.offered.front().transforms)
    if (t.type == TransformType::kKe) group = t.id;
  auto n = random_bytes(32);
  if (!n) return Error(ErrorCode::kInternal, "CHILD_SA nonce: the random generator failed");
  pc.nonce = std::move(*n);
  std::vector<Payload> inner;
  inner.push_back(Payload::sa(SaPayload{pc.offered}));
  inner.push_back(Payload::nonce(pc.nonce));
  if (group != 0) {
    auto k = KeyExchange::generate(group);
    if (!k) return Error(ErrorCode::kInternal, "PFS key generation: " + k.error().message());
    inner.push_back(Payload::ke(KePayload{group, 0, k->public_value()}));
    pc.ke = std::move(*k);
  }
  inner.push_back(Payload::of(PayloadType::kTsi, ts_payload(local_ts)));
  inner.push_back(Payload::of(PayloadType::kTsr, ts_payload(remote_ts)));
  return inner;
}

Status IkeSa::send_request(ExchangeType ex, std::vector<Payload> inner, Op op, std::uint32_t spi) {
  auto bytes = seal(header(ex, false, next_request_id_), inner);
  if (!bytes) return bytes.error();
  Outstanding o;
  o.message_id = next_request_id_;
  o.exchange = ex;
  o.op = op;
  o.spi = spi;
  o.data = *bytes;
  outstanding_ = std::move(o);
  return transmit(*bytes);
}

void IkeSa::on_response(const Message& m, const Outstanding& req) {
  if (req.exchange == ExchangeType::kIkeAuth) return on_auth_response(m);
  switch (req.op) {
    case Op::kCreateChild:
    case Op::kRekeyChild: {
      if (!pending_child_) return;
      PendingChild pc = std::move(*pending_child_);
      pending_child_.reset();
      const auto* nr = body_of<NoncePayload>(m, PayloadType::kNonce);
      if (!nr && !first_error(m)) {
        release(pc.slot, pc.rekey_of != 0);
        if (Child* old = pc.rekey_of ? child_by_spi_in(pc.rekey_of) : nullptr) old->rekeying = false;
        emit(EventKind::kChildFailed, "peer's CREATE_CHILD_SA answer has no nonce", pc.slot.spi_in);
        return;
      }
      const Bytes ni = pc.nonce;
      accept_child(m, std::move(pc), ni, nr ? nr->data : Bytes{});
      return;
    }
    case Op::kDeleteChild:
      for (std::size_t i = 0; i < children_.size(); ++i)
        if (children_[i].slot.spi_in == req.spi) {
          remove_child(i, true);
          break;
        }
      return;
    case Op::kDeleteIke: {
      const bool rekeyed = state_ == IkeState::kRekeyed;  // its CHILD_SAs live on in the new IKE SA
      remove_all_children();
      state_ = IkeState::kDeleted;
      if (!rekeyed) emit(EventKind::kDown, "deleted by us");
      return;
    }
    case Op::kRekeyIke:
      return accept_ike_rekey(m);
    case Op::kPing:
    case Op::kDeleteOrphan:
      return;
  }
}

// ---------------------------------------------------------------------------
// The peer's requests

Status IkeSa::send_response(ExchangeType ex, std::uint32_t message_id, const std::vector<Payload>& inner) {
  auto bytes = seal(header(ex, true, message_id), inner);
  if (!bytes) return bytes.error();
  last_response_ = std::make_pair(message_id, *bytes);
  next_peer_request_id_ = message_id + 1;
  return transmit(*bytes);
}

void IkeSa::on_create_child_request(const Message& m, std::vector<Payload>& out) {
  // RFC 7296 §1.3.2: an SA payload of protocol IKE rekeys the IKE SA.
  if (const auto* sa = body_of<SaPayload>(m, PayloadType::kSa);
      sa && !sa->proposals.empty() && sa->proposals.front().protocol == ProtocolId::kIke)
    return on_ike_rekey_request(m, out);
  respond_child(m, {}, {}, true, out);
}

void IkeSa::on_informational_request(const Message& m, std::vector<Payload>& out) {
  DeletePayload ours;
  ours.protocol = ProtocolId::kEsp;
  ours.spi_size = 4;
  for (const Payload& p : m.payloads) {
    const auto* del = std::get_if<DeletePayload>(&p.body);
    if (!del || del->protocol != ProtocolId::kEsp) continue;
    for (const Bytes& spi : del->spis) {
      auto v = spi32(spi);
      if (!v) continue;
      for (std::size_t i = 0; i < children_.size(); ++i)
        if (children_[i].spi_out == *v) {
          if (children_[i].collider != 0 && children_[i].superseded_by == 0) {
            // The peer judged a rekey collision before we did: its CHILD_SA
            // replaces this one (our own rekey's answer finds it gone).
            if (Child* col = child_by_spi_in(children_[i].collider)) {
              col->collision_of = 0;
              emit(EventKind::kChildRekeyed,
                   fmt::format("replaces the CHILD_SA with SPIs in 0x{:08x} out 0x{:08x} (rekey collision: the "
                               "peer's rekey survives)",
                               children_[i].slot.spi_in, children_[i].spi_out),
                   col->slot.spi_in, col->spi_out);
            }
            children_[i].superseded_by = std::exchange(children_[i].collider, 0);
          }
          // The peer deletes the CHILD_SA it rekeyed: its new inbound SA is
          // in, so ours sends with the new key from now on.
          if (Child* next = children_[i].superseded_by ? child_by_spi_in(children_[i].superseded_by) : nullptr)
            finish_rekey_outbound(*next);
          ours.spis.push_back(spi_bytes(children_[i].slot.spi_in));
          remove_child(i, true);
          break;
        }
    }
  }
  if (!ours.spis.empty()) out.push_back(Payload::of(PayloadType::kDelete, ours));
}

void IkeSa::on_request(const Datagram&, const Message& hdr, const Message& m) {
  const std::uint32_t id = hdr.header.message_id;
  std::vector<Payload> out;
  switch (static_cast<ExchangeType>(hdr.header.exchange)) {
    case ExchangeType::kIkeAuth:
      if (role_ == IkeRole::kResponder && state_ == IkeState::kInitDone) on_auth_request(m);
      return;
    case ExchangeType::kCreateChildSa:
      if (state_ != IkeState::kEstablished && state_ != IkeState::kDeleting && state_ != IkeState::kRekeyed) return;
      if (state_ != IkeState::kEstablished) {
        out.push_back(Payload::notification(notify::kTemporaryFailure));
      } else {
        on_create_child_request(m, out);
      }
      (void)send_response(ExchangeType::kCreateChildSa, id, out);
      return;
    case ExchangeType::kInformational: {
      if (state_ != IkeState::kEstablished && state_ != IkeState::kDeleting && state_ != IkeState::kRekeyed) return;
      bool delete_ike = false;
      for (const Payload& p : m.payloads)
        if (const auto* d = std::get_if<DeletePayload>(&p.body); d && d->protocol == ProtocolId::kIke)
          delete_ike = true;
      if (delete_ike) {  // RFC 7296 §1.4.1: answer with an empty INFORMATIONAL, then the IKE SA is gone
        (void)send_response(ExchangeType::kInformational, id, out);
        const bool rekeyed = state_ == IkeState::kRekeyed;  // replaced: its CHILD_SAs live on in the new IKE SA
        remove_all_children();
        outstanding_.reset();
        queued_.clear();
        state_ = IkeState::kDeleted;
        if (!rekeyed) emit(EventKind::kDown, "deleted by the peer");
        return;
      }
      const bool auth_failed = m.find_notify(notify::kAuthenticationFailed) != nullptr;
      on_informational_request(m, out);
      (void)send_response(ExchangeType::kInformational, id, out);
      if (auth_failed) fail(EventKind::kAuthFailed, "peer refused our authentication (AUTHENTICATION_FAILED)");
      return;
    }
    default:
      return;
  }
}

void IkeSa::receive(const Datagram& d, const Message& m) {
  if (terminal()) return;
  const auto ex = static_cast<ExchangeType>(m.header.exchange);
  if (ex == ExchangeType::kIkeSaInit) {
    if (m.header.is_response()) {
      if (role_ == IkeRole::kInitiator) on_sa_init_response(d, m);
    } else if (role_ == IkeRole::kResponder) {
      on_sa_init_request(d, m);
    }
    return;
  }
  if (!in_) return;
  // RFC 7296 §2.21.2: a message that fails the integrity check is dropped silently.
  auto opened = in_->open(d.data);
  if (!opened) return;
  heard_ = true;  // authentic: the peer is alive
  const std::uint32_t id = m.header.message_id;
  const bool response = m.header.is_response();
  if (response) {
    if (!outstanding_ || id != outstanding_->message_id || ex != outstanding_->exchange) return;
  } else {
    if (last_response_ && id == last_response_->first) {  // retransmission: the same answer
      // RFC 7383 §2.6.1: answer a fragmented retransmission once, on its first fragment.
      if (opened->fragment_number <= 1) (void)transmit(last_response_->second);
      return;
    }
    if (id != next_peer_request_id_) return;
  }
  // The inner payload chain: SK directly, SKF once every fragment is in.
  Result<std::vector<Payload>> chain = std::vector<Payload>{};
  if (opened->fragment_number == 0) {
    chain = parse_payload_chain(opened->next, opened->plaintext);
  } else {
    if (!peer_fragmentation_) return;  // SKF without having agreed to it
    auto& slot = response ? reasm_response_ : reasm_request_;
    if (!slot || slot->first != id) slot.emplace(id, FragmentReassembler{});
    auto whole = slot->second.add(*opened);
    if (!whole) {
      slot.reset();
      return;  // inconsistent fragments: drop them, the peer retransmits
    }
    if (!whole->has_value()) return;  // more to come
    chain = std::move(**whole);
    slot.reset();
  }
  local_ = d.local;
  remote_ = d.remote;
  Message inner;
  inner.header = m.header;
  if (response) {
    Outstanding req = std::move(*outstanding_);
    outstanding_.reset();
    next_request_id_ = id + 1;
    if (chain) {
      inner.payloads = std::move(*chain);
    } else if (req.exchange == ExchangeType::kIkeAuth) {
      return fail(EventKind::kFailed, "peer's IKE_AUTH response is malformed: " + chain.error().message());
    }
    on_response(inner, req);
    pump();
    return;
  }
  // A request from the peer.
  if (!chain) {
    std::vector<Payload> r = {Payload::notification(notify::kInvalidSyntax)};
    (void)send_response(ex, id, r);
    return;
  }
  if (auto crit = unsupported_critical_payload(*chain)) {
    std::vector<Payload> r = {Payload::notification(notify::kUnsupportedCriticalPayload, Bytes{*crit})};
    (void)send_response(ex, id, r);
    if (ex == ExchangeType::kIkeAuth) fail(EventKind::kFailed, "peer's IKE_AUTH has an unsupported critical payload");
    return;
  }
  inner.payloads = std::move(*chain);
  on_request(d, m, inner);
  pump();
}

void IkeSa::rekey_timers(std::chrono::steady_clock::time_point now) {
  std::vector<std::uint32_t> due;
  for (Child& c : children_) {
    if (c.pending_out && c.collision_of == 0) {
      if (!c.pending_out_since) c.pending_out_since = now;
      if (now - *c.pending_out_since >= kRekeyOutboundGrace) finish_rekey_outbound(c);
    }
    if (c.superseded_by != 0 || c.rekeying || c.deleting || c.collider != 0 || c.collision_of != 0) continue;
    if (c.retry_rekey) {
      c.retry_rekey = false;
      c.rekey_at = now + std::chrono::milliseconds(500) + jitter(std::chrono::milliseconds(1500));
    }
    if (!c.rekey_at && cfg_.child_rekey_time.count() > 0)
      c.rekey_at = now + cfg_.child_rekey_time - jitter(cfg_.child_rekey_time / 10);
    if (c.rekey_at && now >= *c.rekey_at) {
      c.rekey_at.reset();
      due.push_back(c.slot.spi_in);
    }
  }
  for (std::uint32_t spi : due) (void)rekey_child(spi);
}

void IkeSa::remove_lingering(const LingeringSa& l) {
  (void)env_.kernel->remove_sa(l.reqid, l.outbound ? remote_.addr : local_.addr, l.spi);
}

void IkeSa::expire_lingering(std::chrono::steady_clock::time_point now) {
  std::erase_if(lingering_, [&](LingeringSa& l) {
    if (!l.since) l.since = now;
    if (now - *l.since < kRekeyedInboundLinger) return false;
    remove_lingering(l);
    return true;
  });
}

void IkeSa::dead_peer_check(std::chrono::steady_clock::time_point now) {
  if (cfg_.dpd_delay.count() <= 0) return;
  if (heard_ || !quiet_since_) {
    heard_ = false;
    quiet_since_ = now;
    return;
  }
  if (outstanding_ || now - *quiet_since_ < cfg_.dpd_delay) return;  // an answer to what is out proves life too
  // Quiet on IKE: ESP from the peer proves it alive as well (RFC 7296 §2.4).
  std::uint64_t esp_in = 0;
  for (const Child& c : children_)
    if (auto n = env_.kernel->counters(c.slot, local_.addr, remote_.addr, c.spi_out)) esp_in += n->bytes_in;
  quiet_since_ = now;
  if (esp_in != esp_in_seen_) {
    esp_in_seen_ = esp_in;
    return;
  }
  queue({Op::kPing, 0});
}

void IkeSa::tick(std::chrono::steady_clock::time_point now) {
  if (terminal()) return;
  expire_lingering(now);
  if (state_ == IkeState::kEstablished) {
    rekey_timers(now);
    ike_rekey_timer(now);
    dead_peer_check(now);
    pump();  // requests moved here from the IKE SA this one replaced
  }
  if (state_ == IkeState::kRekeyed && !outstanding_) {
    // Replaced by the peer's rekey: the peer deletes this one; if it never does, it goes by itself.
    if (!rekeyed_since_) rekeyed_since_ = now;
    if (now - *rekeyed_since_ >= kRekeyedIkeLinger) {
      state_ = IkeState::kDeleted;
      return;
    }
  }
  if (role_ == IkeRole::kResponder && state_ == IkeState::kInitDone) {
    if (!half_open_since_) half_open_since_ = now;
    if (now - *half_open_since_ >= cfg_.retransmit.half_open)
      return fail(EventKind::kFailed, "peer did not complete IKE_AUTH in time (half-open IKE SA dropped)");
  }
  if (!outstanding_) return;
  const auto& waits = cfg_.retransmit.waits;
  if (!outstanding_->due) {
    outstanding_->due = now + (waits.empty() ? std::chrono::milliseconds(0) : waits.front());
    return;
  }
  if (now < *outstanding_->due) return;
  if (outstanding_->retransmits + 1 < waits.size()) {
    ++outstanding_->retransmits;
    outstanding_->due = now + waits[outstanding_->retransmits];
    (void)transmit(outstanding_->data);
    return;
  }
  const std::string sends = std::to_string(outstanding_->retransmits + 1) + " transmissions";
  if (state_ == IkeState::kRekeyed) {  // our DELETE of the replaced IKE SA went unanswered: it goes anyway
    outstanding_.reset();
    state_ = IkeState::kDeleted;
    return;
  }
  if (state_ == IkeState::kDeleting) {
    outstanding_.reset();
    remove_all_children();
    state_ = IkeState::kDeleted;
    emit(EventKind::kDown, "deleted by us (peer did not answer our DELETE)");
    return;
  }
  if (state_ == IkeState::kEstablished) {
    peer_dead_ = true;
    // Restarted: its traffic is dropped meanwhile, not sent in clear.
    retire_children_ = cfg_.dpd_action == PeerConfig::DeadPeerAction::kRestart;
    return fail(EventKind::kFailed,
                "peer did not answer (" + sends + "): IKE SA considered dead" +
                    (cfg_.dpd_action == PeerConfig::DeadPeerAction::kRestart ? ", restarting it" : ""));
  }
  fail(EventKind::kFailed, std::string("peer did not answer our ") +
                               (state_ == IkeState::kInitSent ? "IKE_SA_INIT" : "IKE_AUTH") + " (" + sends + ")");
}

// ---------------------------------------------------------------------------
// IKE SA rekey (RFC 7296 §1.3.2, §2.18)

Status IkeSa::rekey_ike() {
  if (state_ != IkeState::kEstablished) return Error(ErrorCode::kConflict, "IKE SA is not established");
  if (pending_ike_ || std::any_of(queued_.begin(), queued_.end(), [](const QueuedOp& q) { return q.op == Op::kRekeyIke; }))
    return Error(ErrorCode::kConflict, "IKE SA is being rekeyed already");
  queue({Op::kRekeyIke, 0});
  return ok_status();
}

bool IkeSa::ike_rekey_busy() const {
  if (state_ != IkeState::kEstablished || outstanding_ || pending_child_ || pending_ike_) return true;
  return std::any_of(children_.begin(), children_.end(), [](const Child& c) {
    return c.rekeying || c.deleting || c.collider != 0 || c.collision_of != 0;
  });
}

Result<std::vector<Payload>> IkeSa::ike_rekey_offer() {
  PendingIkeRekey p;
  auto spi = random_spi64();
  if (!spi) return spi.error();
  p.spi = *spi;
  p.offered = numbered(cfg_.ike_proposals, ProtocolId::kIke, spi64_bytes(p.spi), true);
  std::uint16_t group = 0;
  for (const Transform& t : p.offered.front().transforms)
    if (t.type == TransformType::kKe) group = t.id;
  if (group == 0) return Error(ErrorCode::kInvalidInput, "the first IKE proposal has no D-H group");
  auto n = random_bytes(32);
  if (!n) return n.error();
  p.nonce = std::move(*n);
  auto k = KeyExchange::generate(group);
  if (!k) return k.error();
  std::vector<Payload> inner;
  inner.push_back(Payload::sa(SaPayload{p.offered}));
  inner.push_back(Payload::nonce(p.nonce));
  inner.push_back(Payload::ke(KePayload{group, 0, k->public_value()}));
  p.ke = std::move(*k);
  pending_ike_ = std::move(p);
  return inner;
}

Status IkeSa::make_successor(IkeRole role, std::uint64_t spi_i, std::uint64_t spi_r, const Suite& suite,
                             const SecretBytes& shared, const Bytes& ni, const Bytes& nr) {
  // SKEYSEED with the old IKE SA's PRF (the exchange belongs to it), SK_* with the new one's.
  auto seed = skeyseed_rekey(prf_, sk_d_, shared, ni, nr);
  if (!seed) return seed.error();
  std::unique_ptr<IkeSa> next(new IkeSa(cfg_, env_, role));
  next->spi_i_ = spi_i;
  next->spi_r_ = spi_r;
  next->local_ = local_;
  next->remote_ = remote_;
  next->nat_ = nat_;
  next->ni_ = ni;
  next->nr_ = nr;
  next->suite_ = suite;
  if (auto s = next->keys_from_seed(*seed); !s) return s;
  next->peer_hashes_ = peer_hashes_;
  next->peer_fragmentation_ = peer_fragmentation_;
  next->peer_subject_ = peer_subject_;
  next->peer_issuer_ = peer_issuer_;
  next->state_ = IkeState::kEstablished;
  next->was_up_ = true;
  next->heard_ = true;
  next->esp_in_seen_ = esp_in_seen_;
  // Every CHILD_SA moves as it is (kernel SAs and policies untouched), with what is queued for them.
  next->children_ = std::move(children_);
  children_.clear();
  next->lingering_ = std::move(lingering_);
  lingering_.clear();
  next->queued_ = std::move(queued_);
  queued_.clear();
  std::erase_if(next->queued_, [](const QueuedOp& q) { return q.op == Op::kRekeyIke; });
  state_ = IkeState::kRekeyed;
  if (env_.emit) {
    Event e;
    e.kind = EventKind::kIkeRekeyed;
    e.peer = cfg_.name;
    e.spi_i = spi_i;
    e.spi_r = spi_r;
    e.old_spi_i = spi_i_;
    e.old_spi_r = spi_r_;
    e.reason = fmt::format("replaces the IKE SA {:016x}_i {:016x}_r ({} CHILD_SA{} moved)", spi_i_, spi_r_,
                           next->children_.size(), next->children_.size() == 1 ? "" : "s");
    env_.emit(std::move(e));
  }
  successor_ = std::move(next);
  return ok_status();
}

void IkeSa::on_ike_rekey_request(const Message& m, std::vector<Payload>& out) {
  auto refuse = [&](std::uint16_t type, std::string reason, Bytes data = {}) {
    out.push_back(Payload::notification(type, std::move(data)));
    if (!reason.empty()) emit(EventKind::kIkeRekeyFailed, "peer's IKE SA rekey refused: " + reason);
  };
  // Something of ours is mid-exchange (our own IKE rekey too: a collision); the peer retries.
  if (ike_rekey_busy()) return refuse(notify::kTemporaryFailure, {});
  const auto* sa = body_of<SaPayload>(m, PayloadType::kSa);
  const auto* ke = body_of<KePayload>(m, PayloadType::kKe);
  const auto* nonce = body_of<NoncePayload>(m, PayloadType::kNonce);
  if (!sa || !ke || !nonce || nonce->data.size() < 16 || nonce->data.size() > 256)
    return refuse(notify::kInvalidSyntax, "the request lacks SA, KE or a valid nonce");
  auto chosen = choose_proposal(*sa, cfg_.ike_proposals);
  if (!chosen)
    return refuse(notify::kNoProposalChosen,
                  "no proposal chosen: peer offered " + describe(sa->proposals) + "; we accept " +
                      describe(cfg_.ike_proposals));
  auto suite = suite_of(*chosen);
  if (!suite || suite->ke == 0) return refuse(notify::kNoProposalChosen, "the chosen IKE proposal has no D-H group");
  std::optional<std::uint64_t> peer_spi;
  for (const Proposal& p : sa->proposals)
    if (p.number == chosen->number && p.protocol == ProtocolId::kIke) peer_spi = spi64(p.spi);
  if (!peer_spi) return refuse(notify::kInvalidSyntax, "peer's new IKE SPI is not 8 non-zero bytes");
  if (ke->group != suite->ke)  // normal negotiation: the peer retries with our group
    return refuse(notify::kInvalidKePayload, {}, encode_invalid_ke(suite->ke));
  auto nr = random_bytes(32);
  auto kx = KeyExchange::generate(suite->ke);
  auto our_spi = random_spi64();
  if (!nr || !kx || !our_spi) return refuse(notify::kTemporaryFailure, "internal: random or key generation failed");
  auto shared = kx->derive(ke->data);
  if (!shared) return refuse(notify::kInvalidSyntax, "peer's KE value is invalid: " + shared.error().message());
  // The rekey's initiator (the peer) is the new IKE SA's original initiator.
  if (auto s = make_successor(IkeRole::kResponder, *peer_spi, *our_spi, *suite, *shared, nonce->data, *nr); !s)
    return refuse(notify::kNoProposalChosen, "deriving the new IKE SA's keys: " + s.error().message());
  Proposal answer = *chosen;
  answer.spi = spi64_bytes(*our_spi);
  out.push_back(Payload::sa(SaPayload{{answer}}));
  out.push_back(Payload::nonce(*nr));
  out.push_back(Payload::ke(KePayload{kx->group(), 0, kx->public_value()}));
}

void IkeSa::accept_ike_rekey(const Message& m) {
  if (!pending_ike_) return;
  PendingIkeRekey p = std::move(*pending_ike_);
  pending_ike_.reset();
  auto retry = [&](std::chrono::milliseconds after, std::string reason) {
    ike_rekey_retry_ = after;
    if (!reason.empty())
      emit(EventKind::kIkeRekeyFailed,
           reason + fmt::format("; the IKE SA stays, next attempt in {} s",
                                std::chrono::duration_cast<std::chrono::seconds>(after).count()));
  };
  if (const NotifyPayload* e = first_error(m)) {
    // Busy (e.g. its own rekey crossed ours): again soon.
    if (e->type == notify::kTemporaryFailure)
      return retry(std::chrono::milliseconds(500) + jitter(std::chrono::milliseconds(1500)), {});
    std::string why = "peer refused the IKE SA rekey: " + notify_name(e->type);
    if (e->type == notify::kNoProposalChosen) why += " (we offered " + describe(p.offered) + ")";
    return retry(kIkeRekeyRetry, std::move(why));
  }
  const auto* sa = body_of<SaPayload>(m, PayloadType::kSa);
  const auto* ke = body_of<KePayload>(m, PayloadType::kKe);
  const auto* nonce = body_of<NoncePayload>(m, PayloadType::kNonce);
  if (!sa || !ke || !nonce || nonce->data.size() < 16 || nonce->data.size() > 256)
    return retry(kIkeRekeyRetry, "peer's IKE SA rekey answer lacks SA, KE or a valid nonce");
  auto suite = check_chosen(*sa, p.offered);
  if (!suite) return retry(kIkeRekeyRetry, "peer chose an IKE proposal we did not offer: " + suite.error().message());
  auto peer_spi = spi64(sa->proposals.front().spi);
  if (!peer_spi) return retry(kIkeRekeyRetry, "peer's new IKE SPI is not 8 non-zero bytes");
  if (!p.ke || ke->group != suite->ke || p.ke->group() != suite->ke)
    return retry(kIkeRekeyRetry, "peer's KE payload does not match the chosen D-H group");
  auto shared = p.ke->derive(ke->data);
  if (!shared) return retry(kIkeRekeyRetry, "peer's KE value is invalid: " + shared.error().message());
  if (auto s = make_successor(IkeRole::kInitiator, p.spi, *peer_spi, *suite, *shared, p.nonce, nonce->data); !s)
    return retry(kIkeRekeyRetry, "deriving the new IKE SA's keys: " + s.error().message());
  // RFC 7296 §2.18: the rekey's initiator deletes the old IKE SA (on the old one).
  DeletePayload del;
  del.protocol = ProtocolId::kIke;
  del.spi_size = 0;
  (void)send_request(ExchangeType::kInformational, {Payload::of(PayloadType::kDelete, del)}, Op::kDeleteIke, 0);
  successor_->pump();
}

void IkeSa::ike_rekey_timer(std::chrono::steady_clock::time_point now) {
  if (ike_rekey_retry_) ike_rekey_at_ = now + *std::exchange(ike_rekey_retry_, std::nullopt);
  if (!ike_rekey_at_ && cfg_.ike_rekey_time.count() > 0)
    ike_rekey_at_ = now + cfg_.ike_rekey_time - jitter(cfg_.ike_rekey_time / 10);
  if (ike_rekey_at_ && now >= *ike_rekey_at_) {
    ike_rekey_at_.reset();
    (void)rekey_ike();
  }
}

}  // namespace storcrypt::ike
