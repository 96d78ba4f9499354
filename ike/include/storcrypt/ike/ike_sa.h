// storcrypt IKEv2: one IKE SA's exchange state machine (RFC 7296 §1, §2),
// initiator or responder, sans-IO.
//
// An IkeSa is fed the messages addressed to it (Engine dispatches by SPI)
// and explicit calls (start, create_child, delete_child, close, ping, tick);
// it answers through a Transport and installs/removes CHILD_SAs through a
// ChildSaKernel. It never blocks, never reads a clock (tick(now) brings the
// time) and never logs: what an operator must know comes out as Events.
//
// Exchanges: IKE_SA_INIT (SA, KE, Ni/Nr, NAT_DETECTION_*, SIGNATURE_HASH_
// ALGORITHMS; as initiator INVALID_KE_PAYLOAD -> retry with the asked group
// if one of our proposals has it, COOKIE -> resend with the cookie),
// IKE_AUTH (IDi/IDr, CERT end entity + intermediates, CERTREQ, AUTH method 14
// ECDSA P-384/SHA-384, INITIAL_CONTACT, the first CHILD_SA with traffic
// selector narrowing), CREATE_CHILD_SA (an additional CHILD_SA, optional PFS
// KE), INFORMATIONAL (DELETE of the IKE SA or of CHILD_SAs, empty liveness
// checks). Message IDs per RFC 7296 §2.3 with a window of 1: one request of
// ours outstanding at a time (later calls queue), the last response kept to
// answer a retransmitted request.
//
// NAT (RFC 7296 §2.23): when the NAT_DETECTION hashes disagree, both sides
// move to port 4500 from IKE_AUTH on and ChildSaSpec::encap carries the ports.
//
// CHILD_SA rekeying (RFC 7296 §2.8), make-before-break through the kernel
// seam's reserve_rekey/install_sa/remove_sa: the new SAs take the old reqid
// (its policies stay). As initiator: new inbound and outbound SA installed
// when the answer arrives (the peer has its inbound in by then), then a
// DELETE of the old CHILD_SA: when it is answered its SAs go
// kRekeyedInboundLinger later (packets in flight; the kernel sends with the
// newest outbound SA of the reqid meanwhile). As
// responder: the new inbound SA before the answer is sent, the new outbound
// only when the peer's DELETE of the old one arrives (or after
// kRekeyOutboundGrace), so no packet is sent with a key the peer cannot yet
// read. Rekeys start by rekey_child() or by PeerConfig::child_rekey_time.
// Rekey collisions (RFC 7296 §2.8.1, both sides rekey one CHILD_SA at once):
// each side answers the other's request as usual, so two new CHILD_SAs come
// up; the one whose exchange used the lowest of the four nonces (octet by
// octet) is redundant and deleted by the side that initiated it, and the
// initiator of the survivor deletes the old one. Both sides judge the same
// nonces, so exactly one new pair survives. A rekey request for a CHILD_SA
// we are deleting gets TEMPORARY_FAILURE (§2.25.1); whoever gets
// TEMPORARY_FAILURE retries after a random 0.5-2 s. Dead peer detection:
// PeerConfig::dpd_delay and dpd_action.
//
// IKE SA rekeying (RFC 7296 §1.3.2, §2.18): a CREATE_CHILD_SA whose SA
// payload has IKE proposals (8-octet SPI), Ni/Nr and KEi/KEr. The new IKE SA
// is a new IkeSa (take_successor(); the engine files it under its SPI):
// SKEYSEED = prf_old(SK_d old, g^ir new | Ni | Nr), then SK_* from the new
// PRF and SPIs; message IDs start at 0; the rekey's initiator is the new IKE
// SA's original initiator. Every CHILD_SA moves to it as it is (kernel SAs
// and policies untouched), with our queued requests. The old IkeSa becomes
// kRekeyed: it only answers the peer (DELETE of it ends it, no kDown, no
// CHILD_SA removed) or, as the rekey's initiator, sends that DELETE itself.
// As responder we pick from our own IKE proposals only. We answer
// TEMPORARY_FAILURE to an IKE rekey while a request of ours is outstanding
// (our own IKE rekey too: a collision is resolved by both sides retrying
// after a random 0.5-2 s, not by the §2.8.1 nonce rule) or a CHILD_SA is
// mid-exchange; the peer retries. Our rekeys start by rekey_ike() or
// PeerConfig::ike_rekey_time and wait (0.5-2 s at a time) while a CHILD_SA
// is mid-rekey or mid-delete here; a refused one (TEMPORARY_FAILURE: 0.5-2 s,
// anything else: kIkeRekeyRetry) is tried again later.
#pragma once

#include <openssl/types.h>

#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "storcrypt/common/ip.h"
#include "storcrypt/common/result.h"
#include "storcrypt/common/secret.h"
#include "storcrypt/ike/crypto.h"
#include "storcrypt/ike/kernel.h"
#include "storcrypt/ike/peer_auth.h"
#include "storcrypt/ike/message.h"
#include "storcrypt/ike/proposal.h"
#include "storcrypt/ike/sk.h"
#include "storcrypt/ike/transport.h"

namespace storcrypt::ike {

/// Shared, reference-counted OpenSSL handles (a PeerConfig is copied into
/// every IKE SA made from it).
using X509Ref = std::shared_ptr<X509>;
using PkeyRef = std::shared_ptr<EVP_PKEY>;
/// Takes ownership of `x` (X509_free when the last reference goes).
X509Ref share_x509(X509* x);
/// Takes ownership of `k` (EVP_PKEY_free when the last reference goes).
PkeyRef share_pkey(EVP_PKEY* k);

/// Whether a peer's certificate chain is trusted: PeerCertValidator
/// (peer_auth.h; make_peer_cert_validator() over a PeerValidator built from
/// the truststore). It gets the peer's end-entity certificate, the
/// intermediates from its other CERT payloads (in the order received) and the
/// peer's ID, and returns ok or an error whose message says why not (it
/// becomes "peer certificate not trusted: <message>"). The ID has already
/// been checked against the certificate (check_id_matches_cert).

/// Retransmission of our outstanding request: the waits before each
/// retransmission; when the last one has passed without an answer the IKE SA
/// is given up ("peer did not answer").
/// How long a rekey responder waits for the peer's DELETE of the old
/// CHILD_SA before it sends with the new outbound SA anyway.
inline constexpr std::chrono::seconds kRekeyOutboundGrace{10};
/// How long the inbound SA of a rekeyed (superseded) CHILD_SA stays in the
/// kernel after its DELETE exchange: a packet the peer sent with the old key
/// just before it switched may still be on the wire (strongSwan's
/// delete_rekeyed_delay is 5 s too). Its outbound SA goes at once.
inline constexpr std::chrono::seconds kRekeyedInboundLinger{5};
/// How long an IKE SA replaced by a peer's rekey waits for the peer's DELETE
/// of it before it goes by itself (its CHILD_SAs live on in the new one).
inline constexpr std::chrono::seconds kRekeyedIkeLinger{30};
/// When an IKE SA rekey of ours was refused (other than TEMPORARY_FAILURE)
/// or failed, the next attempt is this much later.
inline constexpr std::chrono::seconds kIkeRekeyRetry{60};

struct RetransmitSchedule {
  std::vector<std::chrono::milliseconds> waits = {std::chrono::seconds(1), std::chrono::seconds(2),
                                                  std::chrono::seconds(4), std::chrono::seconds(8),
                                                  std::chrono::seconds(16)};
  /// A responder SA that has answered IKE_SA_INIT but seen no valid IKE_AUTH
  /// for this long (counted from the first tick after it) is dropped.
  std::chrono::milliseconds half_open = std::chrono::seconds(30);
};

/// The CNSA defaults: IKE aes256-sha384-ecp384 (AES-CBC-256, HMAC-SHA-384-192,
/// PRF-HMAC-SHA-384, ECP-384), then aes256gcm16-prfsha384-ecp384; ESP aes256gcm16 (no ESN).
std::vector<Proposal> default_ike_proposals();
std::vector<Proposal> default_esp_proposals();

/// ID payload helpers.
IdPayload id_fqdn(std::string_view name);
IdPayload id_ip(const IpAddress& a);
/// "FQDN right.lab", "IPV4 192.0.2.1", "DN O=x, CN=y", ... for messages.
std::string id_to_string(const IdPayload& id);

/// One peer as configured (the Engine keeps these by name).
struct PeerConfig {
  std::string name;
  IpAddress local_addr;
  IpAddress remote_addr;
  X509Ref local_cert;                        ///< our end-entity certificate (ECDSA P-384)
  PkeyRef local_key;                         ///< its private key
  std::vector<X509Ref> local_intermediates;  ///< sent as further CERT payloads
  std::optional<IdPayload> local_id;         ///< default: the certificate's subject DN
  std::optional<IdPayload> remote_id;        ///< the ID the peer must use; nullopt: any ID its certificate names
  /// CERTREQ content: SHA-1 hashes of the SubjectPublicKeyInfo of the CAs we
  /// trust (20 bytes each). Empty: an empty CERTREQ (still asks for CERT).
  std::vector<Bytes> certreq_authorities;
  std::vector<TsRange> local_ts;   ///< our side of the CHILD_SAs
  std::vector<TsRange> remote_ts;  ///< the peer's side
  std::vector<Proposal> ike_proposals = default_ike_proposals();
  std::vector<Proposal> esp_proposals = default_esp_proposals();  ///< add a KE transform for PFS in CREATE_CHILD_SA
  PeerCertValidator validate_peer;                                ///< required: without it every peer is refused
  RetransmitSchedule retransmit;
  /// RFC 7383: when the peer announced IKEV2_FRAGMENTATION_SUPPORTED, an
  /// encrypted message longer than this (IKE message bytes) is sent as SKF
  /// fragments of at most this size. 0: never fragment.
  std::size_t fragment_size = 1280;
  ChildSaLifetime child_lifetime;
  /// Rekey every CHILD_SA this long after it was installed, less a random
  /// jitter of up to 10 %. 0: only on request (rekey_child()).
  std::chrono::milliseconds child_rekey_time{0};
  /// Rekey the IKE SA this long after it was established (or rekeyed), less
  /// a random jitter of up to 10 % (strongSwan's rekey_time default: 4 h).
  /// 0: only on request (rekey_ike()) or when the peer does.
  std::chrono::milliseconds ike_rekey_time{std::chrono::hours(4)};
  std::uint32_t replay_window = 32;
  /// Dead peer detection (RFC 7296 §2.4): when nothing came from the peer
  /// for this long (no IKE message, no ESP byte on any CHILD_SA), an empty
  /// INFORMATIONAL is sent; when the retransmission schedule passes without
  /// an answer the peer is dead: its CHILD_SAs are removed and kDown says so.
  /// 0: no checks of our own (we still answer the peer's).
  std::chrono::milliseconds dpd_delay{0};
  /// What follows a dead peer: kRestart makes the engine initiate a new IKE
  /// SA to it (whatever our role was), kNone leaves it down.
  enum class DeadPeerAction { kNone, kRestart } dpd_action = DeadPeerAction::kNone;
};

enum class EventKind {
  kUp,           ///< IKE SA established
  kDown,         ///< IKE SA deleted (by us or the peer) after it was up
  kFailed,       ///< IKE SA setup failed (reason says why)
  kAuthFailed,   ///< authentication failed either way (reason, peer certificate details)
  kChildUp,      ///< a CHILD_SA was installed
  kChildDown,    ///< a CHILD_SA was removed
  kChildFailed,  ///< a CHILD_SA could not be negotiated (the IKE SA stays)
  kChildRekeyed, ///< a CHILD_SA was replaced by a new one (child SPIs: the new pair; reason names the old)
  kIkeRekeyed,   ///< the IKE SA was replaced by a new one (spi_i/spi_r: the new; old_spi_i/old_spi_r: the old)
  kIkeRekeyFailed, ///< a rekey of the IKE SA was refused or failed (reason); the IKE SA stays, a retry follows
};
std::string_view event_kind_name(EventKind k);

struct Event {
  EventKind kind = EventKind::kUp;
  std::string peer;  ///< PeerConfig::name
  std::uint64_t spi_i = 0, spi_r = 0;
  std::uint64_t old_spi_i = 0, old_spi_r = 0;  ///< kIkeRekeyed: the IKE SA replaced
  std::uint32_t child_spi_in = 0, child_spi_out = 0;
  std::string reason;        ///< for failures, in words an operator understands
  std::string peer_subject;  ///< auth failures: the peer certificate's subject (RFC 2253), if it sent one
  std::string peer_issuer;   ///< and its issuer
};

enum class IkeRole { kInitiator, kResponder };
enum class IkeState {
  kIdle,      ///< initiator before start()
  kInitSent,  ///< initiator: IKE_SA_INIT request out
  kInitDone,  ///< responder: IKE_SA_INIT answered, waiting for IKE_AUTH
  kAuthSent,  ///< initiator: IKE_AUTH request out
  kEstablished,
  kDeleting,  ///< our DELETE of the IKE SA is out
  kRekeyed,   ///< replaced by a rekey (its CHILD_SAs moved on): only its DELETE exchange is left
  kDeleted,   ///< gone after being up (terminal)
  kFailed,    ///< never came up / authentication failed (terminal)
};
std::string_view ike_state_name(IkeState s);

struct ChildSaInfo {
  ChildSaSlot slot;  ///< reqid, our inbound SPI
  std::uint32_t spi_out = 0;
  Suite suite;
  std::vector<TsRange> local_ts, remote_ts;
  std::optional<std::pair<std::uint16_t, std::uint16_t>> encap;
};

/// Everything an IkeSa needs from outside.
class IkeSa;

struct IkeSaEnv {
  Transport* transport = nullptr;
  ChildSaKernel* kernel = nullptr;
  std::function<void(Event)> emit;
  /// The peer of this IKE SA, just authenticated as responder, sent
  /// INITIAL_CONTACT (RFC 7296 §2.4): its other IKE SAs are stale. Called
  /// before the IKE_AUTH's CHILD_SA is installed, so their CHILD_SAs (same
  /// selectors) are gone first.
  std::function<void(const IkeSa&)> initial_contact;
};

class IkeSa {
 public:
  /// An initiator for `cfg`; start() sends IKE_SA_INIT.
  static Result<std::unique_ptr<IkeSa>> initiator(PeerConfig cfg, IkeSaEnv env);
  /// A responder for an IKE_SA_INIT request `m` received in `d` (the engine
  /// matched `cfg` by address); call receive(d, m) next to answer it.
  static Result<std::unique_ptr<IkeSa>> responder(PeerConfig cfg, IkeSaEnv env, const Datagram& d);

  ~IkeSa();
  IkeSa(const IkeSa&) = delete;
  IkeSa& operator=(const IkeSa&) = delete;

  /// Initiator: send the IKE_SA_INIT request.
  Status start();
  /// A message for this SA (Engine has parsed it and matched the SPI).
  void receive(const Datagram& d, const Message& m);
  /// Negotiate one more CHILD_SA (CREATE_CHILD_SA); queued while another
  /// request of ours is outstanding. kConflict unless established.
  Status create_child();
  /// Delete one CHILD_SA by our inbound SPI (INFORMATIONAL DELETE).
  Status delete_child(std::uint32_t spi_in);
  /// Rekey one CHILD_SA by our inbound SPI (CREATE_CHILD_SA with REKEY_SA,
  /// PFS when the ESP proposals carry a KE group). kNotFound / kConflict.
  Status rekey_child(std::uint32_t spi_in);
  /// Rekey the IKE SA (CREATE_CHILD_SA with IKE proposals); queued like the
  /// others. kConflict unless established or when one is under way.
  Status rekey_ike();
  /// The IKE SA that replaced this one in a rekey, once (the engine takes it
  /// after every call and files it under its SPI).
  std::unique_ptr<IkeSa> take_successor() { return std::move(successor_); }
  /// Delete the IKE SA and its CHILD_SAs (INFORMATIONAL DELETE). Before it is
  /// established the SA is simply dropped.
  Status close();
  /// An empty INFORMATIONAL request (liveness check, the DPD primitive).
  Status ping();
  /// Drop the SA now without waiting for the peer (its CHILD_SAs are removed
  /// from the kernel; a kDown or kFailed event carries `reason`).
  void abort(std::string reason);
  /// Retransmit our outstanding request when its wait has passed, give up
  /// after the schedule's last wait.
  void tick(std::chrono::steady_clock::time_point now);

  IkeRole role() const { return role_; }
  IkeState state() const { return state_; }
  bool terminal() const { return state_ == IkeState::kDeleted || state_ == IkeState::kFailed; }
  /// Our SPI (the one the engine dispatches on).
  std::uint64_t local_spi() const { return role_ == IkeRole::kInitiator ? spi_i_ : spi_r_; }
  std::uint64_t spi_i() const { return spi_i_; }
  std::uint64_t spi_r() const { return spi_r_; }
  const PeerConfig& config() const { return cfg_; }
  const Suite& suite() const { return suite_; }
  const Endpoint& local_endpoint() const { return local_; }
  const Endpoint& remote_endpoint() const { return remote_; }
  bool nat_detected() const { return nat_; }
  /// The IKE SA ended because the peer stopped answering (dead peer).
  bool peer_dead() const { return peer_dead_; }
  /// Whether a request of ours is outstanding (window 1).
  bool request_outstanding() const { return outstanding_.has_value(); }
  std::vector<ChildSaInfo> children() const;

 private:
  struct Child {
    ChildSaSlot slot;
    std::uint32_t spi_out = 0;
    Suite suite;
    std::vector<TsRange> local_ts, remote_ts;
    std::optional<std::pair<std::uint16_t, std::uint16_t>> encap;
    /// Replaced by a rekey: our inbound SPI of its successor. Its SAs go when
    /// the DELETE exchange for it ends; its policies (the reqid's) stay.
    std::uint32_t superseded_by = 0;
    bool rekeying = false;     ///< our rekey of it is outstanding
    bool deleting = false;     ///< our DELETE of it is outstanding
    bool retry_rekey = false;  ///< the peer answered TEMPORARY_FAILURE: retry after a random delay
    /// §2.8.1: the peer's rekey of this CHILD_SA crossed ours; our inbound
    /// SPI of the CHILD_SA the peer's request made (0: none).
    std::uint32_t collider = 0;
    /// Made by the peer's rekey of `collision_of` while ours of it was
    /// outstanding, with these nonces (the peer's Ni, our Nr); which of the
    /// two new CHILD_SAs survives is decided when our answer comes.
    std::uint32_t collision_of = 0;
    Bytes collision_ni, collision_nr;
    std::optional<std::chrono::steady_clock::time_point> rekey_at;
    /// Responder of its rekey: the outbound SA, installed when the peer
    /// deletes the old CHILD_SA (or after kRekeyOutboundGrace).
    std::unique_ptr<ChildSaSpec> pending_out;
    std::optional<std::chrono::steady_clock::time_point> pending_out_since;
  };
  /// A CHILD_SA we are negotiating as initiator (IKE_AUTH or CREATE_CHILD_SA).
  struct PendingChild {
    ChildSaSlot slot;
    std::vector<Proposal> offered;
    Bytes nonce;  ///< CREATE_CHILD_SA only
    std::optional<KeyExchange> ke;
    std::uint32_t rekey_of = 0;  ///< our inbound SPI of the CHILD_SA it replaces (0: a new one)
  };
  /// An SA of a superseded CHILD_SA, removed kRekeyedInboundLinger after its
  /// CHILD_SA went (the clock starts at the next tick): the inbound one, and
  /// the outbound one when the successor already sends (a packet that took
  /// it just before the switch is still on its way: deleting the SA under it
  /// fails that send with EINVAL, XfrmOutStateInvalid).
  struct LingeringSa {
    std::uint32_t reqid = 0;
    std::uint32_t spi = 0;
    bool outbound = false;
    std::optional<std::chrono::steady_clock::time_point> since;
  };
  /// kDeleteOrphan: a DELETE for a CHILD_SA the peer made for a rekey of
  /// ours whose old CHILD_SA went meanwhile (we installed nothing for it).
  enum class Op { kCreateChild, kDeleteChild, kDeleteIke, kPing, kRekeyChild, kDeleteOrphan, kRekeyIke };
  struct QueuedOp {
    Op op;
    std::uint32_t spi = 0;
  };
  struct Outstanding {
    std::uint32_t message_id = 0;
    ExchangeType exchange = ExchangeType::kInformational;
    Op op = Op::kPing;
    std::uint32_t spi = 0;    ///< kDeleteChild
    std::vector<Bytes> data;  ///< one message or its SKF fragments
    std::size_t retransmits = 0;
    std::optional<std::chrono::steady_clock::time_point> due;
  };

  /// Our IKE SA rekey request, outstanding.
  struct PendingIkeRekey {
    std::uint64_t spi = 0;  ///< our SPI of the new IKE SA
    std::vector<Proposal> offered;
    Bytes nonce;
    std::optional<KeyExchange> ke;
  };

  /// tests/fuzz/ike/session_fuzzer.cpp plays the peer of an established SA:
  /// it seals fuzzed payloads with this SA's keys (seal, header, message IDs).
  friend struct IkeSaFuzzAccess;

  IkeSa(PeerConfig cfg, IkeSaEnv env, IkeRole role);

  // IKE_SA_INIT
  Status send_sa_init();
  void on_sa_init_request(const Datagram& d, const Message& m);
  void on_sa_init_response(const Datagram& d, const Message& m);
  Status derive_keys(const SecretBytes& shared);
  /// SK_* from SKEYSEED with ni_, nr_, spi_i_, spi_r_ and suite_'s PRF.
  Status keys_from_seed(const SecretBytes& seed);
  Result<bool> check_nat(const Message& m, const Endpoint& local_seen, const Endpoint& remote_seen);
  // IKE_AUTH
  Status send_auth_request();
  void on_auth_request(const Message& inner_msg);
  void on_auth_response(const Message& inner_msg);
  /// Checks IDx/CERT/AUTH of the peer; on failure returns the reason and fills peer_subject_/peer_issuer_.
  Result<std::monostate> authenticate_peer(const Message& m);
  Result<std::vector<Payload>> own_auth_payloads();
  // CHILD_SAs
  std::vector<Proposal> esp_offer(std::uint32_t spi_in, bool with_ke) const;
  /// Responder: negotiate a CHILD_SA from the peer's SA/TSi/TSr (and Ni/Nr/KE
  /// for CREATE_CHILD_SA); appends the answer's payloads or an error notify.
  void respond_child(const Message& m, const Bytes& ni, const Bytes& nr, bool create_child_sa,
                     std::vector<Payload>& out);
  /// Initiator: the responder's answer to our CHILD_SA offer.
  void accept_child(const Message& m, PendingChild pending, const Bytes& ni, const Bytes& nr);
  /// `we_initiated`: we sent the request of this exchange (RFC 7296 §2.17:
  /// the exchange's initiator -> responder keys come first in KEYMAT, whoever
  /// started the IKE SA). `rekey_of`: our inbound SPI of the CHILD_SA this
  /// one replaces (0: none).
  Status install_child(const ChildSaSlot& slot, std::uint32_t spi_out, const Suite& suite,
                       const SecretBytes* pfs_shared, const Bytes& ni, const Bytes& nr, std::vector<TsRange> local_ts,
                       std::vector<TsRange> remote_ts, bool we_initiated, std::uint32_t rekey_of);
  /// Our CREATE_CHILD_SA offer for `pc` (SA, Ni, KE when the proposal has a group, TSi, TSr).
  Result<std::vector<Payload>> child_offer(PendingChild& pc, const std::vector<TsRange>& local_ts,
                                           const std::vector<TsRange>& remote_ts);
  /// Give back what a CHILD_SA negotiation reserved (a rekey's SPI only: the policies are the old one's).
  void release(const ChildSaSlot& slot, bool rekey);
  Child* child_by_spi_in(std::uint32_t spi_in);
  /// The responder's new outbound SA of a rekey, now.
  void finish_rekey_outbound(Child& c);
  void rekey_timers(std::chrono::steady_clock::time_point now);
  void expire_lingering(std::chrono::steady_clock::time_point now);
  void remove_lingering(const LingeringSa& l);
  void dead_peer_check(std::chrono::steady_clock::time_point now);
  void remove_child(std::size_t index, bool emit_event);
  void remove_all_children();
  // IKE SA rekey
  /// Whether a peer's IKE rekey must wait (TEMPORARY_FAILURE): something of ours or a CHILD_SA is mid-exchange.
  bool ike_rekey_busy() const;
  Result<std::vector<Payload>> ike_rekey_offer();
  void on_ike_rekey_request(const Message& m, std::vector<Payload>& out);
  void accept_ike_rekey(const Message& m);
  /// The new IKE SA of a rekey (we are `role` in it), made from this one:
  /// keys from `shared` and the nonces, CHILD_SAs and queued requests moved.
  Status make_successor(IkeRole role, std::uint64_t spi_i, std::uint64_t spi_r, const Suite& suite,
                        const SecretBytes& shared, const Bytes& ni, const Bytes& nr);
  void ike_rekey_timer(std::chrono::steady_clock::time_point now);
  // Requests of ours
  void queue(QueuedOp op);
  void pump();
  Status send_request(ExchangeType ex, std::vector<Payload> inner, Op op, std::uint32_t spi);
  void on_response(const Message& inner_msg, const Outstanding& req);
  // Requests of the peer
  void on_request(const Datagram& d, const Message& header_msg, const Message& inner_msg);
  void on_create_child_request(const Message& m, std::vector<Payload>& out);
  void on_informational_request(const Message& m, std::vector<Payload>& out);
  Status send_response(ExchangeType ex, std::uint32_t message_id, const std::vector<Payload>& inner);
  // Helpers
  /// SK, or SKF fragments when the peer supports them and the message is too long.
  Result<std::vector<Bytes>> seal(const Header& h, const std::vector<Payload>& inner);
  Status transmit(const Bytes& data);
  Status transmit(const std::vector<Bytes>& datagrams);
  void fail(EventKind kind, std::string reason);
  void emit(EventKind kind, std::string reason = {}, std::uint32_t spi_in = 0, std::uint32_t spi_out = 0);
  Header header(ExchangeType ex, bool response, std::uint32_t message_id) const;

  PeerConfig cfg_;
  IkeSaEnv env_;
  IkeRole role_;
  IkeState state_ = IkeState::kIdle;
  bool was_up_ = false;
  std::uint64_t spi_i_ = 0, spi_r_ = 0;
  Endpoint local_, remote_;
  bool nat_ = false;

  // IKE_SA_INIT
  Bytes ni_, nr_;
  std::optional<KeyExchange> ke_;
  std::uint16_t ke_group_ = 0;
  Bytes cookie_;
  int cookie_rounds_ = 0, ke_rounds_ = 0;
  Bytes own_init_, peer_init_;  ///< the IKE_SA_INIT messages as sent / received (AUTH octets)
  Bytes init_request_;          ///< responder: the request we answered (to spot retransmissions)
  Suite suite_;
  PrfAlg prf_ = PrfAlg::kHmacSha384;
  SecretBytes sk_d_, sk_pi_, sk_pr_;
  std::optional<SkProtector> out_, in_;
  std::vector<std::uint16_t> peer_hashes_;

  // Message IDs (RFC 7296 §2.3, window 1)
  std::uint32_t next_request_id_ = 0;       ///< the ID of our next request
  std::uint32_t next_peer_request_id_ = 0;  ///< the ID we expect the peer's next request to have
  std::optional<Outstanding> outstanding_;
  std::deque<QueuedOp> queued_;
  std::optional<std::pair<std::uint32_t, std::vector<Bytes>>> last_response_;
  bool peer_fragmentation_ = false;
  /// SKF reassembly of the peer's current request / the response to ours, by message ID.
  std::optional<std::pair<std::uint32_t, FragmentReassembler>> reasm_request_, reasm_response_;

  std::optional<PendingChild> pending_child_;
  std::optional<PendingIkeRekey> pending_ike_;
  std::unique_ptr<IkeSa> successor_;
  std::optional<std::chrono::steady_clock::time_point> ike_rekey_at_;
  /// Set when a rekey of ours was refused: the next attempt's delay (the timer picks it up).
  std::optional<std::chrono::milliseconds> ike_rekey_retry_;
  std::optional<std::chrono::steady_clock::time_point> rekeyed_since_;
  std::vector<Child> children_;
  std::vector<LingeringSa> lingering_;
  std::string peer_subject_, peer_issuer_;
  std::optional<std::chrono::steady_clock::time_point> half_open_since_;
  // Dead peer detection: an authenticated message arrived since the last
  // tick; since when the peer has been quiet; inbound ESP bytes seen then.
  bool heard_ = false;
  bool peer_dead_ = false;
  bool retire_children_ = false;  ///< dead peer to be restarted: CHILD_SAs' policies kept (kernel retire())
  std::optional<std::chrono::steady_clock::time_point> quiet_since_;
  std::uint64_t esp_in_seen_ = 0;
};

}  // namespace storcrypt::ike
