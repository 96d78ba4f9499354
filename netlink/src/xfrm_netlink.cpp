// The real XfrmApi: NETLINK_XFRM sockets (libnl3) bound to one network namespace.
#include <fcntl.h>
#include <fmt/format.h>
#include <linux/netlink.h>
#include <linux/xfrm.h>
#include <netlink/msg.h>
#include <netlink/netlink.h>
#include <netlink/socket.h>
#include <poll.h>
#include <sched.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <deque>
#include <functional>
#include <map>
#include <set>
#include <thread>

#include "storcrypt/common/fd.h"
#include "storcrypt/common/netns.h"
#include "storcrypt/netlink/xfrm_api.h"
#include "storcrypt/netlink/xfrm_codec.h"

namespace storcrypt::netlink {
namespace {

using codec::Bytes;

constexpr std::size_t kRecvBuf = 128 * 1024;
constexpr std::size_t kSendChunk = 32 * 1024;

std::string errno_name(int e) {
  switch (e) {
    case EEXIST:
      return "EEXIST";
    case ENOENT:
      return "ENOENT";
    case ESRCH:
      return "ESRCH";
    case EINVAL:
      return "EINVAL";
    case EPERM:
      return "EPERM";
    case ENOSYS:
      return "ENOSYS";
    case EPROTONOSUPPORT:
      return "EPROTONOSUPPORT";
    case ENOMEM:
      return "ENOMEM";
    case ENOBUFS:
      return "ENOBUFS";
    case EOPNOTSUPP:
      return "EOPNOTSUPP";
    default:
      return fmt::format("errno {}", e);
  }
}

Error kernel_error(const codec::NetlinkError& ne, Bytes request, std::string_view what) {
  const int err = -ne.error;
  ErrorCode code = ErrorCode::kKernel;
  std::string fix;
  switch (err) {
    case EEXIST:
      code = ErrorCode::kConflict;
      fix = "the object already exists: update it or delete it first";
      break;
    case ENOENT:
    case ESRCH:
      code = ErrorCode::kNotFound;
      fix = "list the existing objects (dump) and retry with one of them";
      break;
    case EPERM:
    case EACCES:
      code = ErrorCode::kPermission;
      fix = "run as root or grant CAP_NET_ADMIN";
      break;
    case ENOSYS:
    case EPROTONOSUPPORT:
    case EAFNOSUPPORT:
    case EOPNOTSUPP:
      code = ErrorCode::kUnsupported;
      fix = "the kernel lacks this protocol or algorithm (ESP/AH, GCM, HMAC): run `storcrypt system doctor`";
      break;
    default:
      break;
  }
  std::string msg = fmt::format("{}: kernel refused: {} ({})", what, std::strerror(err), errno_name(err));
  if (!ne.message.empty()) msg += fmt::format(": \"{}\"", ne.message);
  if (ne.offset) {
    std::string field = codec::field_at_offset(request, *ne.offset);
    if (!field.empty()) msg += fmt::format(" [field {}]", field);
  }
  return Error(code, std::move(msg), std::move(fix)).with_errno(err);
}

std::uint16_t msg_type(Bytes m) {
  nlmsghdr h;
  std::memcpy(&h, m.data(), sizeof h);
  return h.nlmsg_type;
}
nlmsghdr msg_header(Bytes m) {
  nlmsghdr h;
  std::memcpy(&h, m.data(), sizeof h);
  return h;
}

// ---- socket -------------------------------------------------------------------

/// One NETLINK_XFRM socket (libnl nl_sock), created in the calling thread's netns.
class NlSocket {
 public:
  NlSocket() = default;
  NlSocket(NlSocket&& o) noexcept : sk_(std::exchange(o.sk_, nullptr)), seq_(o.seq_), hook_(std::move(o.hook_)) {}
  NlSocket& operator=(NlSocket&& o) noexcept {
    std::swap(sk_, o.sk_);
    seq_ = o.seq_;
    hook_ = std::move(o.hook_);
    return *this;
  }
  void set_fault_hook(std::function<int(std::string_view)> h) { hook_ = std::move(h); }
  ~NlSocket() {
    if (sk_) nl_socket_free(sk_);  // closes the fd
  }

  static Result<NlSocket> open(int rcvbuf, bool events, const EventMask& mask) {
    NlSocket s;
    s.sk_ = nl_socket_alloc();
    if (!s.sk_) return Error(ErrorCode::kInternal, "allocating a netlink socket: out of memory");
    nl_socket_disable_seq_check(s.sk_);
    if (int rc = nl_connect(s.sk_, NETLINK_XFRM); rc < 0)
      return Error(rc == -NLE_PERM ? ErrorCode::kPermission : ErrorCode::kUnavailable,
                   fmt::format("opening NETLINK_XFRM socket: {}", nl_geterror(rc)),
                   "run as root or grant CAP_NET_ADMIN; the kernel needs CONFIG_XFRM_USER");
    int fd = nl_socket_get_fd(s.sk_);
    // SO_RCVBUFFORCE lifts rmem_max for privileged callers; fall back silently.
    if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &rcvbuf, sizeof rcvbuf) != 0)
      setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
    int one = 1;
    // Extended ACK gives the kernel's own error text; CAP_ACK keeps requests
    // (and their keys) out of error replies.
    setsockopt(fd, SOL_NETLINK, NETLINK_EXT_ACK, &one, sizeof one);
    setsockopt(fd, SOL_NETLINK, NETLINK_CAP_ACK, &one, sizeof one);
    if (events) {
      int rc = 0;
      if (mask.acquire) rc = nl_socket_add_memberships(s.sk_, XFRMNLGRP_ACQUIRE, 0);
      // POLEXPIRE is multicast on the EXPIRE group as well.
      if (rc >= 0 && (mask.expire || mask.policy_expire)) rc = nl_socket_add_memberships(s.sk_, XFRMNLGRP_EXPIRE, 0);
      if (rc < 0) return Error(ErrorCode::kKernel, fmt::format("joining XFRM multicast groups: {}", nl_geterror(rc)));
    }
    s.seq_ = static_cast<std::uint32_t>(time(nullptr)) << 8;
    return s;
  }

  int fd() const { return nl_socket_get_fd(sk_); }
  std::uint32_t next_seq() { return ++seq_; }

  Status send(Bytes buf) {
    for (;;) {
      ssize_t n;
      if (int e = hook_ ? hook_("send") : 0; e != 0) {
        errno = e;
        n = -1;
      } else {
        n = ::send(fd(), buf.data(), buf.size(), 0);
      }
      if (n == static_cast<ssize_t>(buf.size())) return ok_status();
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) return errno_error(errno, "sending to the XFRM netlink socket");
      return Error(ErrorCode::kInternal, "short send on a netlink socket");
    }
  }

  /// One datagram into buf; returns its size. timeout_ms < 0 blocks.
  Result<std::size_t> recv(std::vector<std::uint8_t>& buf, int timeout_ms = -1) {
    if (timeout_ms >= 0) {
      pollfd p{fd(), POLLIN, 0};
      int rc;
      do rc = ::poll(&p, 1, timeout_ms);
      while (rc < 0 && errno == EINTR);
      if (rc < 0) return errno_error(errno, "polling the XFRM netlink socket");
      if (rc == 0) return std::size_t{0};
    }
    for (;;) {
      ssize_t n;
      if (int e = hook_ ? hook_("recv") : 0; e != 0) {
        errno = e;
        n = -1;
      } else {
        n = ::recv(fd(), buf.data(), buf.size(), MSG_TRUNC);
      }
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && errno == ENOBUFS)
        return Error(ErrorCode::kUnavailable, "XFRM netlink socket overrun: kernel messages were lost",
                     "resynchronise by dumping the state; raise the receive buffer");
      if (n < 0) return errno_error(errno, "receiving from the XFRM netlink socket");
      if (static_cast<std::size_t>(n) > buf.size())
        return Error(ErrorCode::kInternal, fmt::format("netlink datagram of {} bytes truncated", n));
      return static_cast<std::size_t>(n);
    }
  }

 private:
  nl_sock* sk_ = nullptr;
  std::uint32_t seq_ = 0;
  std::function<int(std::string_view)> hook_;
};

void set_seq(SecretBytes& msg, std::uint32_t seq) {
  nlmsghdr h;
  std::memcpy(&h, msg.data(), sizeof h);
  h.nlmsg_seq = seq;
  std::memcpy(msg.data(), &h, sizeof h);
}

std::string sa_key(const SaId& id) { return id.to_string(); }
std::string policy_key(const PolicyId& id) {
  if (id.index) return fmt::format("idx {} {}", direction_name(id.dir), id.index);
  return fmt::format("{} {} if_id={}", id.to_string(), direction_name(id.dir), id.if_id);
}

// ---- events -------------------------------------------------------------------

class NetlinkSubscription : public EventSubscription {
 public:
  NetlinkSubscription(NlSocket s, Ownership own, EventMask mask)
      : sock_(std::move(s)), own_(own), mask_(mask), buf_(kRecvBuf) {}

  Result<std::optional<XfrmEvent>> next(std::chrono::milliseconds timeout) override {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (pending_.empty()) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
      if (left.count() < 0) return std::optional<XfrmEvent>{};
      STORCRYPT_ASSIGN_OR_RETURN(std::size_t n, sock_.recv(buf_, static_cast<int>(left.count())));
      if (n == 0) continue;
      for (Bytes m : codec::split_messages(Bytes(buf_.data(), n))) {
        auto t = msg_type(m);
        if (t != XFRM_MSG_ACQUIRE && t != XFRM_MSG_EXPIRE && t != XFRM_MSG_POLEXPIRE) continue;
        auto ev = codec::decode_event(m);
        if (!ev.ok()) continue;  // e.g. an ACQUIRE for IPComp: not ours to handle
        if (wanted(*ev)) pending_.push_back(std::move(*ev));
      }
    }
    XfrmEvent ev = std::move(pending_.front());
    pending_.pop_front();
    return std::optional<XfrmEvent>(std::move(ev));
  }
  int fd() const override { return sock_.fd(); }

 private:
  bool wanted(const XfrmEvent& ev) const {
    if (auto* a = std::get_if<AcquireEvent>(&ev)) return mask_.acquire && own_.owns_reqid(a->reqid);
    if (auto* e = std::get_if<SaExpireEvent>(&ev))
      return mask_.expire && own_.owns_reqid(e->reqid) && (!own_.mark || e->id.mark == own_.mark);
    const auto& p = std::get<PolicyExpireEvent>(ev);
    return mask_.policy_expire && own_.owns_index(p.id.index) && (!own_.mark || p.id.mark == own_.mark);
  }
  NlSocket sock_;
  Ownership own_;
  EventMask mask_;
  std::vector<std::uint8_t> buf_;
  std::deque<XfrmEvent> pending_;
};

// ---- the backend ----------------------------------------------------------------

class NetlinkXfrm : public XfrmApi {
 public:
  NetlinkXfrm(XfrmOptions opts, UniqueFd ns, NlSocket sock)
      : opts_(std::move(opts)), ns_(std::move(ns)), sock_(std::move(sock)), buf_(kRecvBuf) {}
  ~NetlinkXfrm() override { secure_wipe(buf_.data(), buf_.size()); }

  const Ownership& ownership() const override { return opts_.ownership; }

  Result<std::uint32_t> allocate_spi(const SpiRequest& req) override {
    SpiRequest r = req;
    r.min = std::max(r.min, kMinSpi);
    std::string what =
        fmt::format("allocating an SPI for {} dst={} reqid={}", proto_name(req.proto), req.dst.to_string(), req.reqid);
    if (r.max < r.min)
      return Error(
          ErrorCode::kInvalidInput,
          fmt::format("max: {}: SPI range [{}, {}] is empty (SPIs below 256 are reserved)", what, req.min, req.max),
          "use a range within 256..0xffffffff");
    if (req.src.family != req.dst.family)
      return Error(ErrorCode::kInvalidInput, fmt::format("src: {}: address families differ", what));
    if (!own().owns_reqid(req.reqid))
      return Error(ErrorCode::kInvalidInput, fmt::format("reqid: {}: outside storcrypt's reqid range", what));
    if (own().mark && req.mark != own().mark)
      return Error(ErrorCode::kInvalidInput, fmt::format("mark: {}: must carry storcrypt's mark", what));
    STORCRYPT_ASSIGN_OR_RETURN(auto replies, transact(codec::encode_alloc_spi(r), what));
    for (const auto& m : replies) {
      if (msg_type(m.view()) != XFRM_MSG_NEWSA) continue;
      STORCRYPT_ASSIGN_OR_RETURN(SaState st, codec::decode_sa(m.view()));
      return st.sa.spi;
    }
    return Error(ErrorCode::kProtocol, what + ": the kernel sent no SA back");
  }

  Status add_sa(const Sa& sa) override {
    STORCRYPT_TRY(validate(sa));
    STORCRYPT_TRY(own().require_owned(sa));
    auto r = transact(codec::encode_sa(sa, false), "adding " + sa.to_string());
    if (!r.ok()) return std::move(r).error();
    return ok_status();
  }

  Status update_sa(const Sa& sa) override {
    STORCRYPT_TRY(validate(sa));
    STORCRYPT_TRY(own().require_owned(sa));
    std::string what = "updating " + sa.to_string();
    STORCRYPT_TRY(check_existing_sa(sa.id(), what));
    auto r = transact(codec::encode_sa(sa, true), what);
    if (!r.ok()) return std::move(r).error();
    return ok_status();
  }

  Status delete_sa(const SaId& id) override {
    std::string what = "deleting SA " + id.to_string();
    STORCRYPT_TRY(check_existing_sa(id, what));
    auto r = transact(codec::encode_sa_id(id, true), what);
    if (!r.ok()) return std::move(r).error();
    return ok_status();
  }

  Result<SaState> get_sa(const SaId& id) override {
    std::string what = "getting SA " + id.to_string();
    STORCRYPT_ASSIGN_OR_RETURN(SaState st, get_sa_any(id, what));
    if (!own().owns(st.sa)) return Error(ErrorCode::kNotFound, what + ": not owned by storcrypt");
    return st;
  }

  Result<std::vector<SaState>> dump_sas() override {
    std::vector<SaState> out;
    STORCRYPT_TRY(dump(true, [&](Bytes m) -> Status {
      auto k = codec::peek_owner(m);
      if (!k || !k->is_sa || !own().owns_reqid(k->reqid) || (own().mark && k->mark != own().mark)) return ok_status();
      auto st = codec::decode_sa(m);
      if (!st.ok()) return std::move(st).error().context("dumping SAs");
      out.push_back(std::move(*st));
      return ok_status();
    }));
    return out;
  }

  Result<std::uint32_t> add_policy(const Policy& p) override {
    STORCRYPT_TRY(validate(p));
    STORCRYPT_TRY(own().require_owned(p));
    std::string what = "adding " + p.to_string();
    auto r = transact(codec::encode_policy(p, false), what);
    if (!r.ok()) return std::move(r).error();
    STORCRYPT_ASSIGN_OR_RETURN(std::uint32_t idx, read_index(p, what));
    STORCRYPT_TRY(keep_only_owned_index(p, idx, what));
    return idx;
  }

  Result<std::uint32_t> update_policy(const Policy& p) override {
    STORCRYPT_TRY(validate(p));
    STORCRYPT_TRY(own().require_owned(p));
    std::string what = "updating " + p.to_string();
    auto existing = get_policy_any(p.id(), what);
    if (existing.ok() && !own().owns(*existing))
      return Error(ErrorCode::kConflict, what + ": the installed policy is not owned by storcrypt",
                   "choose a selector that no other daemon uses");
    if (!existing.ok() && existing.error().code() != ErrorCode::kNotFound) return std::move(existing).error();
    auto r = transact(codec::encode_policy(p, true), what);
    if (!r.ok()) return std::move(r).error();
    STORCRYPT_ASSIGN_OR_RETURN(std::uint32_t idx, read_index(p, what));
    STORCRYPT_TRY(keep_only_owned_index(p, idx, what));
    return idx;
  }

  Status delete_policy(const PolicyId& id) override {
    std::string what = "deleting " + id.to_string();
    STORCRYPT_ASSIGN_OR_RETURN(Policy existing, get_policy_any(id, what));
    if (!own().owns(existing))
      return Error(ErrorCode::kConflict, what + ": the policy is not owned by storcrypt", "leave it alone");
    PolicyId by_idx = id;
    by_idx.index = existing.index;
    auto r = transact(codec::encode_policy_id(by_idx, true), what);
    if (!r.ok()) return std::move(r).error();
    return ok_status();
  }

  Result<Policy> get_policy(const PolicyId& id) override {
    std::string what = "getting " + id.to_string();
    STORCRYPT_ASSIGN_OR_RETURN(Policy p, get_policy_any(id, what));
    if (!own().owns(p)) return Error(ErrorCode::kNotFound, what + ": not owned by storcrypt");
    return p;
  }

  Result<std::vector<Policy>> dump_policies() override {
    std::vector<Policy> out;
    STORCRYPT_TRY(dump(false, [&](Bytes m) -> Status {
      auto k = codec::peek_owner(m);
      // dir 3-5 are per-socket policies (IKE bypass): never ours.
      if (!k || k->is_sa || k->dir > XFRM_POLICY_FWD || !own().owns_index(k->index) ||
          (own().mark && k->mark != own().mark))
        return ok_status();
      auto p = codec::decode_policy(m);
      if (!p.ok()) return std::move(p).error().context("dumping policies");
      out.push_back(std::move(*p));
      return ok_status();
    }));
    return out;
  }

  Result<std::vector<Policy>> dump_foreign_policies() override {
    std::vector<Policy> out;
    STORCRYPT_TRY(dump(false, [&](Bytes m) -> Status {
      auto k = codec::peek_owner(m);
      if (!k || k->is_sa || k->dir > XFRM_POLICY_FWD) return ok_status();
      if (own().owns_index(k->index) && (!own().mark || k->mark == own().mark)) return ok_status();
      auto p = codec::decode_policy(m);
      if (!p.ok()) return ok_status();  // a policy we cannot model is no precedence question we can answer
      out.push_back(std::move(*p));
      return ok_status();
    }));
    return out;
  }

  Result<BatchResult> add_policies(std::span<const Policy> ps) override {
    std::vector<Item> items(ps.size());
    for (std::size_t i = 0; i < ps.size(); ++i) {
      items[i].what = [p = &ps[i]] { return "adding " + p->to_string(); };
      Status st = validate(ps[i]);
      if (st.ok()) st = own().require_owned(ps[i]);
      if (!st.ok())
        items[i].pre_error = std::move(st).error();
      else
        items[i].msg = codec::encode_policy(ps[i], false);
    }
    STORCRYPT_ASSIGN_OR_RETURN(BatchResult br, pipeline(items));
    if (own().owns_index(0) || br.succeeded == 0) return br;
    // The kernel gives a policy another index when the chosen one is taken:
    // find the added policies whose index is not the owner's, and undo them.
    std::map<std::string, std::uint32_t> installed;  // policy_key -> index
    STORCRYPT_TRY(dump(false, [&](Bytes m) -> Status {
      auto k = codec::peek_owner(m);
      if (!k || k->is_sa || k->dir > XFRM_POLICY_FWD) return ok_status();
      auto p = codec::decode_policy(m);
      if (p.ok()) installed[policy_key(p->id())] = p->index;
      return ok_status();
    }));
    std::set<std::size_t> failed;
    for (const auto& f : br.failures) failed.insert(f.first);
    for (std::size_t i = 0; i < ps.size(); ++i) {
      if (failed.count(i)) continue;
      auto it = installed.find(policy_key(ps[i].id()));
      if (it == installed.end() || own().owns_index(it->second)) continue;
      Status st = keep_only_owned_index(ps[i], it->second, items[i].what());
      br.failures.emplace_back(i, std::move(st).error());
      --br.succeeded;
    }
    std::sort(br.failures.begin(), br.failures.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
    return br;
  }

  Result<BatchResult> delete_policies(std::span<const PolicyId> ids) override {
    // One dump tells which of the targets are ours (foreign ones are never
    // sent) and their indexes: the kernel finds a policy by index through a
    // hash, but by selector with a linear walk of its inexact list, which
    // makes deleting many wildcard policies by selector quadratic.
    std::map<std::string, std::pair<std::uint32_t, Direction>> owned;
    std::set<std::string> foreign;
    STORCRYPT_TRY(dump(false, [&](Bytes m) -> Status {
      auto k = codec::peek_owner(m);
      if (!k || k->dir > XFRM_POLICY_FWD) return ok_status();
      auto p = codec::decode_policy(m);
      if (!p.ok()) return ok_status();
      PolicyId by_idx;
      by_idx.dir = p->dir;
      by_idx.index = p->index;
      if (own().owns(*p)) {
        owned[policy_key(p->id())] = {p->index, p->dir};
        owned[policy_key(by_idx)] = {p->index, p->dir};
      } else {
        foreign.insert(policy_key(p->id()));
        foreign.insert(policy_key(by_idx));
      }
      return ok_status();
    }));
    std::vector<Item> items(ids.size());
    for (std::size_t i = 0; i < ids.size(); ++i) {
      items[i].what = [id = &ids[i]] { return "deleting " + id->to_string(); };
      std::string key = policy_key(ids[i]);
      if (auto it = owned.find(key); it != owned.end()) {
        PolicyId by_idx = ids[i];
        by_idx.index = it->second.first;
        by_idx.dir = it->second.second;
        items[i].msg = codec::encode_policy_id(by_idx, true);
        owned.erase(it);  // a repeated id is reported as not found, as the kernel would
      } else if (foreign.count(key)) {
        items[i].pre_error = Error(ErrorCode::kConflict, items[i].what() + ": the policy is not owned by storcrypt");
      } else {
        items[i].pre_error = Error(ErrorCode::kNotFound, items[i].what() + ": no such policy");
      }
    }
    return pipeline(items);
  }

  Result<BatchResult> add_sas(std::span<const Sa> sas) override {
    std::vector<Item> items(sas.size());
    for (std::size_t i = 0; i < sas.size(); ++i) {
      items[i].what = [sa = &sas[i]] { return "adding " + sa->to_string(); };
      Status st = validate(sas[i]);
      if (st.ok()) st = own().require_owned(sas[i]);
      if (!st.ok())
        items[i].pre_error = std::move(st).error();
      else
        items[i].msg = codec::encode_sa(sas[i], false);
    }
    return pipeline(items);
  }

  Result<BatchResult> delete_sas(std::span<const SaId> ids) override {
    std::set<std::string> owned, foreign;
    STORCRYPT_TRY(dump(true, [&](Bytes m) -> Status {
      auto k = codec::peek_owner(m);
      if (!k || !k->is_sa) return ok_status();
      auto st = codec::decode_sa(m);
      if (!st.ok()) return ok_status();
      (own().owns(st->sa) ? owned : foreign).insert(sa_key(st->sa.id()));
      return ok_status();
    }));
    std::vector<Item> items(ids.size());
    for (std::size_t i = 0; i < ids.size(); ++i) {
      items[i].what = [id = &ids[i]] { return "deleting SA " + id->to_string(); };
      std::string key = sa_key(ids[i]);
      if (owned.count(key))
        items[i].msg = codec::encode_sa_id(ids[i], true);
      else if (foreign.count(key))
        items[i].pre_error = Error(ErrorCode::kConflict, items[i].what() + ": the SA is not owned by storcrypt");
      else
        items[i].pre_error = Error(ErrorCode::kNotFound, items[i].what() + ": no such SA");
    }
    return pipeline(items);
  }

  Result<DefaultPolicy> get_default_policy() override {
    STORCRYPT_ASSIGN_OR_RETURN(auto replies, transact(codec::encode_get_default(), "reading the XFRM default policy"));
    for (const auto& m : replies)
      if (msg_type(m.view()) == XFRM_MSG_GETDEFAULT) return codec::decode_default(m.view());
    return Error(ErrorCode::kProtocol, "reading the XFRM default policy: no reply");
  }

  Status set_default_policy(const DefaultPolicy& d) override {
    auto r =
        transact(codec::encode_set_default(d), fmt::format("setting the XFRM default policy (in={} fwd={} out={})",
                                                           action_name(d.in), action_name(d.fwd), action_name(d.out)));
    if (!r.ok()) return std::move(r).error();
    return ok_status();
  }

  Result<std::unique_ptr<EventSubscription>> subscribe(const EventMask& mask) override {
    STORCRYPT_ASSIGN_OR_RETURN(NlSocket s,
                               in_netns(ns_.get(), [&] { return NlSocket::open(opts_.rcvbuf, true, mask); }));
    return std::unique_ptr<EventSubscription>(std::make_unique<NetlinkSubscription>(std::move(s), own(), mask));
  }

 private:
  struct Item {
    std::function<std::string()> what;
    std::optional<Error> pre_error;
    SecretBytes msg;
  };

  const Ownership& own() const { return opts_.ownership; }

  /// Send one request (NLM_F_ACK) and collect its data replies until the ACK.
  Result<std::vector<SecretBytes>> transact(SecretBytes req, const std::string& what) {
    const std::uint32_t seq = sock_.next_seq();
    set_seq(req, seq);
    return exchange(req, seq, what, nullptr);
  }

  /// Dump SAs or policies, calling fn for each message (NLM_F_DUMP_INTR -> retry).
  Status dump(bool sas, const std::function<Status(Bytes)>& fn) {
    for (int attempt = 0; attempt < 5; ++attempt) {
      SecretBytes req = codec::encode_dump(sas);
      const std::uint32_t seq = sock_.next_seq();
      set_seq(req, seq);
      bool interrupted = false;
      auto r = exchange(req, seq, sas ? "dumping SAs" : "dumping policies", &interrupted);
      if (!r.ok()) return std::move(r).error();
      if (interrupted) continue;  // the table changed during the dump
      for (const auto& m : *r) STORCRYPT_TRY(fn(m.view()));
      return ok_status();
    }
    return Error(ErrorCode::kUnavailable, "dumping XFRM state: the kernel kept interrupting the dump",
                 "retry when fewer changes are in flight");
  }

  Result<std::vector<SecretBytes>> exchange(const SecretBytes& req, std::uint32_t seq, const std::string& what,
                                            bool* interrupted) {
    STORCRYPT_TRY(sock_.send(req.view()));
    std::vector<SecretBytes> data;
    for (;;) {
      STORCRYPT_ASSIGN_OR_RETURN(std::size_t n, sock_.recv(buf_));
      bool done = false;
      std::optional<Error> err;
      for (Bytes m : codec::split_messages(Bytes(buf_.data(), n))) {
        nlmsghdr h = msg_header(m);
        if (h.nlmsg_seq != seq) continue;  // a stale reply from an earlier, abandoned request
        if (h.nlmsg_flags & NLM_F_DUMP_INTR && interrupted) *interrupted = true;
        if (h.nlmsg_type == NLMSG_DONE) {
          done = true;
        } else if (h.nlmsg_type == NLMSG_ERROR) {
          auto ne = codec::decode_error(m);
          if (!ne.ok()) {
            err = std::move(ne).error();
          } else if (ne->error != 0) {
            err = kernel_error(*ne, req.view(), what);
          }
          done = true;
        } else {
          data.emplace_back(m);
        }
      }
      secure_wipe(buf_.data(), n);
      if (err) return *err;
      if (done) return data;
    }
  }

  Status check_existing_sa(const SaId& id, const std::string& what) {
    STORCRYPT_ASSIGN_OR_RETURN(SaState st, get_sa_any(id, what));
    if (!own().owns(st.sa))
      return Error(ErrorCode::kConflict, what + ": the installed SA is not owned by storcrypt", "leave it alone");
    return ok_status();
  }

  Result<SaState> get_sa_any(const SaId& id, const std::string& what) {
    STORCRYPT_ASSIGN_OR_RETURN(auto replies, transact(codec::encode_sa_id(id, false), what));
    for (const auto& m : replies)
      if (msg_type(m.view()) == XFRM_MSG_NEWSA) return codec::decode_sa(m.view());
    return Error(ErrorCode::kProtocol, what + ": the kernel sent no SA back");
  }

  Result<Policy> get_policy_any(const PolicyId& id, const std::string& what) {
    STORCRYPT_ASSIGN_OR_RETURN(auto replies, transact(codec::encode_policy_id(id, false), what));
    for (const auto& m : replies)
      if (msg_type(m.view()) == XFRM_MSG_NEWPOLICY) return codec::decode_policy(m.view());
    return Error(ErrorCode::kProtocol, what + ": the kernel sent no policy back");
  }

  /// A policy just added or updated got index `idx`. When that index is not
  /// the owner's (the chosen one was taken, and the kernel generated
  /// another), the policy is deleted again and the add refused: a storcrypt
  /// policy never lives outside its index range, where it would be foreign.
  Status keep_only_owned_index(const Policy& p, std::uint32_t idx, const std::string& what) {
    if (own().owns_index(idx)) return ok_status();
    PolicyId by_idx;
    by_idx.dir = p.dir;
    by_idx.index = idx;
    auto undo = transact(codec::encode_policy_id(by_idx, true), what + " (undoing it)");
    std::string undone = undo.ok() ? "it was removed again"
                                   : "removing it again failed: " + undo.error().message() +
                                         "; delete it with `ip xfrm policy delete dir " +
                                         std::string(direction_name(p.dir)) + " index " + std::to_string(idx) + "`";
    return Error(ErrorCode::kConflict,
                 fmt::format("{}: the kernel gave it index {} instead of {} (that index is in use); {}", what, idx,
                             p.index, undone),
                 "choose a free index from the owner's range");
  }

  Result<std::uint32_t> read_index(const Policy& p, const std::string& what) {
    auto got = get_policy_any(p.id(), what + " (reading back its index)");
    if (!got.ok()) return std::move(got).error();
    return got->index;
  }

  /// Pipelined bulk send: many requests per sendmsg, up to pipeline_depth in
  /// flight, every ACK matched to its item by sequence number.
  Result<BatchResult> pipeline(std::vector<Item>& items) {
    BatchResult result;
    std::map<std::uint32_t, std::size_t> inflight;  // seq -> item
    std::vector<std::uint8_t> chunk;
    const std::size_t depth = std::max<std::size_t>(1, opts_.pipeline_depth);
    std::size_t next = 0;
    auto flush = [&]() -> Status {
      Status st = sock_.send(Bytes(chunk.data(), chunk.size()));
      secure_wipe(chunk.data(), chunk.size());
      chunk.clear();
      if (!st.ok())
        return std::move(st).error().context(
            fmt::format("bulk operation interrupted with {} of {} items acknowledged; dump the state to resynchronise",
                        result.succeeded + result.failures.size(), items.size()));
      return ok_status();
    };
    while (next < items.size() || !inflight.empty()) {
      while (next < items.size() && inflight.size() < depth) {
        Item& it = items[next];
        if (it.pre_error) {
          result.failures.emplace_back(next, *it.pre_error);
          ++next;
          continue;
        }
        std::uint32_t seq = sock_.next_seq();
        set_seq(it.msg, seq);
        inflight[seq] = next;
        chunk.insert(chunk.end(), it.msg.data(), it.msg.data() + it.msg.size());
        chunk.resize((chunk.size() + 3) & ~std::size_t{3}, 0);
        ++next;
        if (chunk.size() >= kSendChunk) STORCRYPT_TRY(flush());
      }
      if (!chunk.empty()) STORCRYPT_TRY(flush());
      if (inflight.empty()) continue;
      auto got = sock_.recv(buf_);
      if (!got.ok())
        return std::move(got).error().context(
            fmt::format("bulk operation interrupted with {} of {} items acknowledged ({} in flight unknown); dump "
                        "the state to resynchronise",
                        result.succeeded + result.failures.size(), items.size(), inflight.size()));
      const std::size_t n = *got;
      for (Bytes m : codec::split_messages(Bytes(buf_.data(), n))) {
        nlmsghdr h = msg_header(m);
        auto f = inflight.find(h.nlmsg_seq);
        if (f == inflight.end() || h.nlmsg_type != NLMSG_ERROR) continue;
        std::size_t idx = f->second;
        inflight.erase(f);
        auto ne = codec::decode_error(m);
        if (!ne.ok()) {
          result.failures.emplace_back(idx, std::move(ne).error());
        } else if (ne->error != 0) {
          result.failures.emplace_back(idx, kernel_error(*ne, items[idx].msg.view(), items[idx].what()));
        } else {
          ++result.succeeded;
        }
      }
      secure_wipe(buf_.data(), n);
    }
    std::sort(result.failures.begin(), result.failures.end(),
              [](const auto& a, const auto& b) { return a.first < b.first; });
    return result;
  }

  XfrmOptions opts_;
  UniqueFd ns_;
  NlSocket sock_;
  std::vector<std::uint8_t> buf_;
};

}  // namespace

Result<std::unique_ptr<XfrmApi>> open_xfrm(const XfrmOptions& opts) {
  STORCRYPT_ASSIGN_OR_RETURN(UniqueFd ns, open_netns(opts.netns));
  const int fd = ns.get();
  STORCRYPT_ASSIGN_OR_RETURN(NlSocket s, in_netns(fd, [&] { return NlSocket::open(opts.rcvbuf, false, EventMask{}); }));
  s.set_fault_hook(opts.fault_hook);
  return std::unique_ptr<XfrmApi>(std::make_unique<NetlinkXfrm>(opts, std::move(ns), std::move(s)));
}

}  // namespace storcrypt::netlink
