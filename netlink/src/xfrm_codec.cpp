// NETLINK_XFRM messages, built with libnl's nlmsg/nla helpers. Debian's
// libnl-xfrm 3.7 lacks ALLOCSPI, IF_ID, SETDEFAULT and ACQUIRE/EXPIRE
// parsing, so every message is built and parsed here against <linux/xfrm.h>.
#include "storcrypt/netlink/xfrm_codec.h"

#include <arpa/inet.h>
#include <fmt/format.h>
#include <linux/udp.h>
#include <linux/xfrm.h>
#include <netlink/attr.h>
#include <netlink/msg.h>
#include <netlink/netlink.h>

#include <cstddef>
#include <cstring>
#include <memory>

namespace storcrypt::netlink::codec {
namespace {

constexpr std::uint64_t kInf = XFRM_INF;

Error proto_error(std::string msg) { return Error(ErrorCode::kProtocol, "decoding XFRM message: " + std::move(msg)); }

int af(Family f) { return f == Family::kIPv4 ? AF_INET : AF_INET6; }

std::optional<Family> family_of(int af_value) {
  if (af_value == AF_INET) return Family::kIPv4;
  if (af_value == AF_INET6) return Family::kIPv6;
  return std::nullopt;
}

void put_addr(xfrm_address_t& out, const IpAddress& a) {
  std::memset(&out, 0, sizeof out);
  std::memcpy(&out, a.bytes.data(), a.family == Family::kIPv4 ? 4 : 16);
}

IpAddress get_addr(const xfrm_address_t& in, Family f) {
  IpAddress a = IpAddress::any(f);
  std::memcpy(a.bytes.data(), &in, f == Family::kIPv4 ? 4 : 16);
  return a;
}

std::uint64_t to_kernel_limit(std::uint64_t v) { return v == 0 ? kInf : v; }
std::uint64_t from_kernel_limit(std::uint64_t v) { return v == kInf ? 0 : v; }

void put_lifetime(xfrm_lifetime_cfg& l, const Lifetime& in) {
  l.soft_byte_limit = to_kernel_limit(in.soft_bytes);
  l.hard_byte_limit = to_kernel_limit(in.hard_bytes);
  l.soft_packet_limit = to_kernel_limit(in.soft_packets);
  l.hard_packet_limit = to_kernel_limit(in.hard_packets);
  // Time limits use 0 for "none" in the kernel (not XFRM_INF).
  l.soft_add_expires_seconds = in.soft_add_seconds;
  l.hard_add_expires_seconds = in.hard_add_seconds;
  l.soft_use_expires_seconds = in.soft_use_seconds;
  l.hard_use_expires_seconds = in.hard_use_seconds;
}

Lifetime get_lifetime(const xfrm_lifetime_cfg& l) {
  Lifetime out;
  out.soft_bytes = from_kernel_limit(l.soft_byte_limit);
  out.hard_bytes = from_kernel_limit(l.hard_byte_limit);
  out.soft_packets = from_kernel_limit(l.soft_packet_limit);
  out.hard_packets = from_kernel_limit(l.hard_packet_limit);
  out.soft_add_seconds = l.soft_add_expires_seconds;
  out.hard_add_seconds = l.hard_add_expires_seconds;
  out.soft_use_seconds = l.soft_use_expires_seconds;
  out.hard_use_seconds = l.hard_use_expires_seconds;
  return out;
}

bool is_icmp(std::uint8_t proto) { return proto == kProtoIcmp || proto == kProtoIcmpV6; }

void put_selector(xfrm_selector& s, const Selector& sel) {
  std::memset(&s, 0, sizeof s);
  s.family = static_cast<std::uint16_t>(af(sel.family));
  put_addr(s.saddr, sel.src.addr);
  put_addr(s.daddr, sel.dst.addr);
  s.prefixlen_s = sel.src.len;
  s.prefixlen_d = sel.dst.len;
  s.proto = sel.proto;
  if (is_icmp(sel.proto)) {
    // The kernel keeps ICMP type in sport and code in dport (xfrm_flowi_sport/dport).
    if (sel.icmp_type) {
      s.sport = htons(*sel.icmp_type);
      s.sport_mask = 0xffff;
    }
    if (sel.icmp_code) {
      s.dport = htons(*sel.icmp_code);
      s.dport_mask = 0xffff;
    }
  } else {
    s.sport = htons(sel.sport.port);
    s.sport_mask = htons(sel.sport.mask);
    s.dport = htons(sel.dport.port);
    s.dport_mask = htons(sel.dport.mask);
  }
  s.ifindex = sel.ifindex;
}

Result<Selector> get_selector(const xfrm_selector& s) {
  auto fam = family_of(s.family);
  if (!fam) return proto_error(fmt::format("selector family {} is neither AF_INET nor AF_INET6", s.family));
  Selector out = Selector::any(*fam);
  unsigned max = *fam == Family::kIPv4 ? 32 : 128;
  if (s.prefixlen_s > max || s.prefixlen_d > max) return proto_error("selector prefix length out of range");
  out.src = *Prefix::make(get_addr(s.saddr, *fam), s.prefixlen_s);
  out.dst = *Prefix::make(get_addr(s.daddr, *fam), s.prefixlen_d);
  out.proto = s.proto;
  if (is_icmp(s.proto)) {
    if (s.sport_mask) out.icmp_type = static_cast<std::uint8_t>(ntohs(s.sport));
    if (s.dport_mask) out.icmp_code = static_cast<std::uint8_t>(ntohs(s.dport));
  } else {
    out.sport = PortMatch{static_cast<std::uint16_t>(ntohs(s.sport) & ntohs(s.sport_mask)), ntohs(s.sport_mask)};
    out.dport = PortMatch{static_cast<std::uint16_t>(ntohs(s.dport) & ntohs(s.dport_mask)), ntohs(s.dport_mask)};
  }
  out.ifindex = s.ifindex;
  return out;
}

// ---- building ---------------------------------------------------------------

struct MsgFree {
  void operator()(nl_msg* m) const {
    if (!m) return;
    // SA messages carry keys: wipe libnl's buffer before it goes back to malloc.
    nlmsghdr* h = nlmsg_hdr(m);
    secure_wipe(h, h->nlmsg_len);
    nlmsg_free(m);
  }
};
using MsgPtr = std::unique_ptr<nl_msg, MsgFree>;

class Builder {
 public:
  Builder(int type, int flags) : m_(nlmsg_alloc_simple(type, flags | NLM_F_REQUEST)) {
    if (!m_) std::abort();  // out of memory
  }
  void header(const void* p, std::size_t n) { check(nlmsg_append(m_.get(), const_cast<void*>(p), n, NLMSG_ALIGNTO)); }
  void attr(int type, const void* p, std::size_t n) { check(nla_put(m_.get(), type, static_cast<int>(n), p)); }
  void u32(int type, std::uint32_t v) { check(nla_put_u32(m_.get(), type, v)); }
  SecretBytes finish() {
    nlmsghdr* h = nlmsg_hdr(m_.get());
    return SecretBytes(reinterpret_cast<const std::uint8_t*>(h), h->nlmsg_len);
  }

 private:
  static void check(int rc) {
    // Messages are bounded (<= 6 templates, fixed-size algorithms) and libnl
    // grows the buffer, so a failure here is an invariant violation.
    if (rc < 0) std::abort();
  }
  MsgPtr m_;
};

void put_mark(Builder& b, const std::optional<Mark>& m) {
  if (!m) return;
  xfrm_mark xm{m->value, m->mask};
  b.attr(XFRMA_MARK, &xm, sizeof xm);
}

void put_if_id(Builder& b, std::uint32_t if_id) {
  if (if_id) b.u32(XFRMA_IF_ID, if_id);
}

// Variable-size algorithm attributes built in a wiped buffer.
void put_algorithms(Builder& b, const Sa& sa) {
  if (sa.proto == XfrmProto::kEsp && sa.enc == EncAlgo::kNone) {
    // ESP integrity only: the kernel's esp_init_state() needs a cipher, so the NULL cipher goes with no key.
    xfrm_algo a{};
    std::memcpy(a.alg_name, kEspNullCipher.data(), kEspNullCipher.size());
    a.alg_key_len = 0;
    b.attr(XFRMA_ALG_CRYPT, &a, sizeof a);
  } else if (sa.enc != EncAlgo::kNone) {
    auto name = enc_kernel_name(sa.enc);
    if (enc_is_aead(sa.enc)) {
      SecretBytes buf(sizeof(xfrm_algo_aead) + sa.enc_key.size());
      auto* a = reinterpret_cast<xfrm_algo_aead*>(buf.data());
      std::memcpy(a->alg_name, name.data(), name.size());
      a->alg_key_len = static_cast<unsigned>(sa.enc_key.size() * 8);
      a->alg_icv_len = enc_icv_bits(sa.enc);
      std::memcpy(buf.data() + sizeof(xfrm_algo_aead), sa.enc_key.data(), sa.enc_key.size());
      b.attr(XFRMA_ALG_AEAD, buf.data(), buf.size());
    } else {
      SecretBytes buf(sizeof(xfrm_algo) + sa.enc_key.size());
      auto* a = reinterpret_cast<xfrm_algo*>(buf.data());
      std::memcpy(a->alg_name, name.data(), name.size());
      a->alg_key_len = static_cast<unsigned>(sa.enc_key.size() * 8);
      std::memcpy(buf.data() + sizeof(xfrm_algo), sa.enc_key.data(), sa.enc_key.size());
      b.attr(XFRMA_ALG_CRYPT, buf.data(), buf.size());
    }
  }
  if (sa.integ != IntegAlgo::kNone) {
    auto name = integ_kernel_name(sa.integ);
    SecretBytes buf(sizeof(xfrm_algo_auth) + sa.integ_key.size());
    auto* a = reinterpret_cast<xfrm_algo_auth*>(buf.data());
    std::memcpy(a->alg_name, name.data(), name.size());
    a->alg_key_len = static_cast<unsigned>(sa.integ_key.size() * 8);
    a->alg_trunc_len = integ_trunc_bits(sa.integ);
    std::memcpy(buf.data() + sizeof(xfrm_algo_auth), sa.integ_key.data(), sa.integ_key.size());
    b.attr(XFRMA_ALG_AUTH_TRUNC, buf.data(), buf.size());
  }
}

void put_template(xfrm_user_tmpl& t, const Template& in) {
  std::memset(&t, 0, sizeof t);
  put_addr(t.id.daddr, in.dst);
  put_addr(t.saddr, in.src);
  t.id.spi = htonl(in.spi);
  t.id.proto = static_cast<std::uint8_t>(in.proto);
  t.family = static_cast<std::uint16_t>(af(in.family));
  t.reqid = in.reqid;
  t.mode = static_cast<std::uint8_t>(in.mode);
  t.share = XFRM_SHARE_ANY;
  t.optional = in.optional ? 1 : 0;
  t.aalgos = t.ealgos = t.calgos = ~0u;
}

Result<Template> get_template(const xfrm_user_tmpl& t) {
  Template out;
  auto fam = family_of(t.family);
  if (!fam) return proto_error(fmt::format("template family {} unknown", t.family));
  if (t.id.proto != IPPROTO_ESP && t.id.proto != IPPROTO_AH)
    return proto_error(fmt::format("template protocol {} is not ESP or AH", t.id.proto));
  if (t.mode > XFRM_MODE_TUNNEL) return proto_error(fmt::format("template mode {} unsupported", t.mode));
  out.family = *fam;
  out.proto = static_cast<XfrmProto>(t.id.proto);
  out.mode = static_cast<Mode>(t.mode);
  out.src = get_addr(t.saddr, *fam);
  out.dst = get_addr(t.id.daddr, *fam);
  out.spi = ntohl(t.id.spi);
  out.reqid = t.reqid;
  out.optional = t.optional != 0;
  return out;
}

// ---- parsing ------------------------------------------------------------------

// A copy of the message in 8-byte aligned storage: fuzzers and recv buffers
// may hand us unaligned bytes; libnl's accessors assume alignment.
class Parsed {
 public:
  Status parse(Bytes msg, std::size_t hdrlen) {
    if (msg.size() < NLMSG_HDRLEN) return proto_error("message shorter than a netlink header");
    storage_.assign(msg.size() / 8 + 1, 0);
    std::memcpy(storage_.data(), msg.data(), msg.size());
    h_ = reinterpret_cast<nlmsghdr*>(storage_.data());
    if (h_->nlmsg_len < NLMSG_HDRLEN || h_->nlmsg_len > msg.size())
      return proto_error(
          fmt::format("netlink length {} does not fit the {} bytes received", h_->nlmsg_len, msg.size()));
    if (h_->nlmsg_len < NLMSG_HDRLEN + hdrlen)
      return proto_error(fmt::format("message type {} too short for its {}-byte header", h_->nlmsg_type, hdrlen));
    static nla_policy policy[XFRMA_MAX + 1] = {};
    static bool init = [] {
      policy[XFRMA_ALG_AEAD].minlen = sizeof(xfrm_algo_aead);
      policy[XFRMA_ALG_CRYPT].minlen = sizeof(xfrm_algo);
      policy[XFRMA_ALG_AUTH].minlen = sizeof(xfrm_algo);
      policy[XFRMA_ALG_AUTH_TRUNC].minlen = sizeof(xfrm_algo_auth);
      policy[XFRMA_ENCAP].minlen = sizeof(xfrm_encap_tmpl);
      policy[XFRMA_MARK].minlen = sizeof(xfrm_mark);
      policy[XFRMA_IF_ID].minlen = sizeof(std::uint32_t);
      policy[XFRMA_REPLAY_VAL].minlen = sizeof(xfrm_replay_state);
      policy[XFRMA_REPLAY_ESN_VAL].minlen = sizeof(xfrm_replay_state_esn);
      policy[XFRMA_LASTUSED].minlen = sizeof(std::uint64_t);
      return true;
    }();
    (void)init;
    int rc = nlmsg_parse(h_, static_cast<int>(hdrlen), tb_, XFRMA_MAX, policy);
    if (rc < 0) return proto_error(fmt::format("malformed attributes ({})", nl_geterror(rc)));
    return ok_status();
  }
  ~Parsed() {
    if (!storage_.empty()) secure_wipe(storage_.data(), storage_.size() * 8);
  }
  template <typename T>
  T header() const {
    T v;
    std::memcpy(&v, nlmsg_data(h_), sizeof v);
    return v;
  }
  const nlattr* attr(int type) const { return tb_[type]; }
  std::optional<Mark> mark() const {
    if (!tb_[XFRMA_MARK]) return std::nullopt;
    xfrm_mark m;
    std::memcpy(&m, nla_data(tb_[XFRMA_MARK]), sizeof m);
    return Mark{m.v, m.m};
  }
  std::uint32_t if_id() const { return tb_[XFRMA_IF_ID] ? nla_get_u32(tb_[XFRMA_IF_ID]) : 0; }
  Result<std::vector<Template>> templates() const {
    std::vector<Template> out;
    const nlattr* a = tb_[XFRMA_TMPL];
    if (!a) return out;
    int len = nla_len(a);
    if (len % static_cast<int>(sizeof(xfrm_user_tmpl)) != 0)
      return proto_error(fmt::format("XFRMA_TMPL length {} is not a multiple of {}", len, sizeof(xfrm_user_tmpl)));
    const auto* p = static_cast<const std::uint8_t*>(nla_data(a));
    for (int off = 0; off < len; off += static_cast<int>(sizeof(xfrm_user_tmpl))) {
      xfrm_user_tmpl t;
      std::memcpy(&t, p + off, sizeof t);
      STORCRYPT_ASSIGN_OR_RETURN(Template tm, get_template(t));
      out.push_back(tm);
    }
    return out;
  }
  int type() const { return h_->nlmsg_type; }

 private:
  std::vector<std::uint64_t> storage_;
  nlmsghdr* h_ = nullptr;
  nlattr* tb_[XFRMA_MAX + 1] = {};
};

std::string c_name(const char* name, std::size_t cap) { return std::string(name, strnlen(name, cap)); }

Result<Policy> policy_from_info(const xfrm_userpolicy_info& info, const Parsed& p) {
  Policy out;
  STORCRYPT_ASSIGN_OR_RETURN(out.selector, get_selector(info.sel));
  if (info.dir > XFRM_POLICY_FWD) return proto_error(fmt::format("policy direction {} unsupported", info.dir));
  if (info.action > XFRM_POLICY_BLOCK) return proto_error(fmt::format("policy action {} unknown", info.action));
  out.dir = static_cast<Direction>(info.dir);
  out.action = static_cast<PolicyAction>(info.action);
  out.priority = info.priority;
  out.index = info.index;
  out.lifetime = get_lifetime(info.lft);
  out.mark = p.mark();
  out.if_id = p.if_id();
  STORCRYPT_ASSIGN_OR_RETURN(out.templates, p.templates());
  return out;
}

}  // namespace

// ---- encoders -------------------------------------------------------------------

SecretBytes encode_sa(const Sa& sa, bool update) {
  Builder b(update ? XFRM_MSG_UPDSA : XFRM_MSG_NEWSA, NLM_F_ACK);
  xfrm_usersa_info info;
  std::memset(&info, 0, sizeof info);
  if (sa.selector) {
    put_selector(info.sel, *sa.selector);
  } else if (sa.mode == Mode::kTransport) {
    info.sel.family = static_cast<std::uint16_t>(af(sa.family()));
  }
  put_addr(info.id.daddr, sa.dst);
  put_addr(info.saddr, sa.src);
  info.id.spi = htonl(sa.spi);
  info.id.proto = static_cast<std::uint8_t>(sa.proto);
  info.family = static_cast<std::uint16_t>(af(sa.family()));
  info.mode = static_cast<std::uint8_t>(sa.mode);
  info.reqid = sa.reqid;
  info.seq = sa.acquire_seq;
  put_lifetime(info.lft, sa.lifetime);
  // A tunnel SA without an explicit selector carries any inner family.
  if (sa.mode == Mode::kTunnel && !sa.selector) info.flags |= XFRM_STATE_AF_UNSPEC;
  if (sa.esn) info.flags |= XFRM_STATE_ESN;
  const bool esn_attr = sa.esn || sa.replay_window > 32;
  if (!esn_attr) info.replay_window = static_cast<std::uint8_t>(sa.replay_window);
  b.header(&info, sizeof info);
  put_algorithms(b, sa);
  if (esn_attr) {
    // The kernel wants replay_window == 0 in the header when this attribute is present.
    std::uint32_t bmp_len = (sa.replay_window + 31) / 32;
    std::vector<std::uint8_t> buf(sizeof(xfrm_replay_state_esn) + bmp_len * 4, 0);
    auto* rs = reinterpret_cast<xfrm_replay_state_esn*>(buf.data());
    rs->bmp_len = bmp_len;
    rs->replay_window = sa.replay_window;
    b.attr(XFRMA_REPLAY_ESN_VAL, buf.data(), buf.size());
  }
  if (sa.encap) {
    xfrm_encap_tmpl e;
    std::memset(&e, 0, sizeof e);
    e.encap_type = UDP_ENCAP_ESPINUDP;
    e.encap_sport = htons(sa.encap->sport);
    e.encap_dport = htons(sa.encap->dport);
    b.attr(XFRMA_ENCAP, &e, sizeof e);
  }
  put_mark(b, sa.mark);
  put_if_id(b, sa.if_id);
  return b.finish();
}

SecretBytes encode_sa_id(const SaId& id, bool del) {
  Builder b(del ? XFRM_MSG_DELSA : XFRM_MSG_GETSA, NLM_F_ACK);
  xfrm_usersa_id u;
  std::memset(&u, 0, sizeof u);
  put_addr(u.daddr, id.dst);
  u.spi = htonl(id.spi);
  u.family = static_cast<std::uint16_t>(af(id.dst.family));
  u.proto = static_cast<std::uint8_t>(id.proto);
  b.header(&u, sizeof u);
  put_mark(b, id.mark);
  return b.finish();
}

SecretBytes encode_alloc_spi(const SpiRequest& req) {
  Builder b(XFRM_MSG_ALLOCSPI, NLM_F_ACK);
  xfrm_userspi_info u;
  std::memset(&u, 0, sizeof u);
  put_addr(u.info.id.daddr, req.dst);
  put_addr(u.info.saddr, req.src);
  u.info.id.proto = static_cast<std::uint8_t>(req.proto);
  u.info.family = static_cast<std::uint16_t>(af(req.dst.family));
  u.info.mode = static_cast<std::uint8_t>(req.mode);
  u.info.reqid = req.reqid;
  u.min = req.min;
  u.max = req.max;
  b.header(&u, sizeof u);
  put_mark(b, req.mark);
  put_if_id(b, req.if_id);
  return b.finish();
}

SecretBytes encode_policy(const Policy& p, bool update) {
  Builder b(update ? XFRM_MSG_UPDPOLICY : XFRM_MSG_NEWPOLICY, NLM_F_ACK);
  xfrm_userpolicy_info info;
  std::memset(&info, 0, sizeof info);
  put_selector(info.sel, p.selector);
  put_lifetime(info.lft, p.lifetime);
  info.priority = p.priority;
  info.index = p.index;
  info.dir = static_cast<std::uint8_t>(p.dir);
  info.action = static_cast<std::uint8_t>(p.action);
  info.share = XFRM_SHARE_ANY;
  b.header(&info, sizeof info);
  if (!p.templates.empty()) {
    std::vector<xfrm_user_tmpl> ts(p.templates.size());
    for (std::size_t i = 0; i < ts.size(); ++i) put_template(ts[i], p.templates[i]);
    b.attr(XFRMA_TMPL, ts.data(), ts.size() * sizeof(xfrm_user_tmpl));
  }
  put_mark(b, p.mark);
  put_if_id(b, p.if_id);
  return b.finish();
}

SecretBytes encode_policy_id(const PolicyId& id, bool del) {
  Builder b(del ? XFRM_MSG_DELPOLICY : XFRM_MSG_GETPOLICY, NLM_F_ACK);
  xfrm_userpolicy_id u;
  std::memset(&u, 0, sizeof u);
  put_selector(u.sel, id.selector);
  u.index = id.index;
  u.dir = static_cast<std::uint8_t>(id.dir);
  b.header(&u, sizeof u);
  put_mark(b, id.mark);
  put_if_id(b, id.if_id);
  return b.finish();
}

SecretBytes encode_dump(bool sas) {
  Builder b(sas ? XFRM_MSG_GETSA : XFRM_MSG_GETPOLICY, NLM_F_DUMP);
  return b.finish();
}

SecretBytes encode_get_default() {
  Builder b(XFRM_MSG_GETDEFAULT, NLM_F_ACK);
  xfrm_userpolicy_default d{};
  b.header(&d, sizeof d);
  return b.finish();
}

SecretBytes encode_set_default(const DefaultPolicy& d) {
  Builder b(XFRM_MSG_SETDEFAULT, NLM_F_ACK);
  auto v = [](PolicyAction a) -> std::uint8_t {
    return a == PolicyAction::kAllow ? XFRM_USERPOLICY_ACCEPT : XFRM_USERPOLICY_BLOCK;
  };
  xfrm_userpolicy_default u{};
  u.in = v(d.in);
  u.fwd = v(d.fwd);
  u.out = v(d.out);
  b.header(&u, sizeof u);
  return b.finish();
}

// ---- decoders -------------------------------------------------------------------

Result<SaState> decode_sa(Bytes msg) {
  Parsed p;
  STORCRYPT_TRY(p.parse(msg, sizeof(xfrm_usersa_info)));
  if (p.type() != XFRM_MSG_NEWSA && p.type() != XFRM_MSG_UPDSA)
    return proto_error(fmt::format("expected an SA message, got type {}", p.type()));
  auto info = p.header<xfrm_usersa_info>();
  SaState st;
  Sa& sa = st.sa;
  auto fam = family_of(info.family);
  if (!fam) return proto_error(fmt::format("SA family {} unknown", info.family));
  if (info.id.proto != IPPROTO_ESP && info.id.proto != IPPROTO_AH)
    return proto_error(fmt::format("SA protocol {} is not ESP or AH", info.id.proto));
  if (info.mode > XFRM_MODE_TUNNEL) return proto_error(fmt::format("SA mode {} unsupported", info.mode));
  sa.src = get_addr(info.saddr, *fam);
  sa.dst = get_addr(info.id.daddr, *fam);
  sa.spi = ntohl(info.id.spi);
  sa.proto = static_cast<XfrmProto>(info.id.proto);
  sa.mode = static_cast<Mode>(info.mode);
  sa.reqid = info.reqid;
  sa.acquire_seq = info.seq;
  sa.lifetime = get_lifetime(info.lft);
  sa.esn = (info.flags & XFRM_STATE_ESN) != 0;
  sa.replay_window = info.replay_window;
  if (info.sel.family != AF_UNSPEC) {
    STORCRYPT_ASSIGN_OR_RETURN(Selector sel, get_selector(info.sel));
    // An all-any transport selector is what encode_sa() writes for "no selector".
    if (!(sel == Selector::any(sel.family) && sa.mode == Mode::kTransport && sel.family == *fam)) sa.selector = sel;
  }
  if (const nlattr* a = p.attr(XFRMA_ALG_AEAD)) {
    xfrm_algo_aead h;
    std::memcpy(&h, nla_data(a), sizeof h);
    std::size_t key = (h.alg_key_len + 7) / 8;
    if (static_cast<std::size_t>(nla_len(a)) < sizeof h + key) return proto_error("XFRMA_ALG_AEAD key truncated");
    std::string name = c_name(h.alg_name, sizeof h.alg_name);
    if (name == "rfc4106(gcm(aes))" && h.alg_icv_len == 128 && key == 20)
      sa.enc = EncAlgo::kAesGcm128;
    else if (name == "rfc4106(gcm(aes))" && h.alg_icv_len == 128 && key == 36)
      sa.enc = EncAlgo::kAesGcm256;
    else
      return Error(ErrorCode::kUnsupported,
                   fmt::format("SA uses AEAD {} ({}-bit key, {}-bit ICV) which storcrypt does not model", name,
                               h.alg_key_len, h.alg_icv_len));
    sa.enc_key = SecretBytes(static_cast<const std::uint8_t*>(nla_data(a)) + sizeof h, key);
  }
  if (const nlattr* a = p.attr(XFRMA_ALG_CRYPT)) {
    xfrm_algo h;
    std::memcpy(&h, nla_data(a), sizeof h);
    std::size_t key = (h.alg_key_len + 7) / 8;
    if (static_cast<std::size_t>(nla_len(a)) < sizeof h + key) return proto_error("XFRMA_ALG_CRYPT key truncated");
    std::string name = c_name(h.alg_name, sizeof h.alg_name);
    if (name == "cbc(aes)" && key == 16)
      sa.enc = EncAlgo::kAesCbc128;
    else if (name == "cbc(aes)" && key == 24)
      sa.enc = EncAlgo::kAesCbc192;
    else if (name == "cbc(aes)" && key == 32)
      sa.enc = EncAlgo::kAesCbc256;
    else if (name == kEspNullCipher && key == 0)
      sa.enc = EncAlgo::kNone;
    else
      return Error(ErrorCode::kUnsupported,
                   fmt::format("SA uses cipher {} ({}-bit key) which storcrypt does not model", name, h.alg_key_len));
    sa.enc_key = SecretBytes(static_cast<const std::uint8_t*>(nla_data(a)) + sizeof h, key);
  }
  if (const nlattr* a = p.attr(XFRMA_ALG_AUTH_TRUNC)) {
    xfrm_algo_auth h;
    std::memcpy(&h, nla_data(a), sizeof h);
    std::size_t key = (h.alg_key_len + 7) / 8;
    if (static_cast<std::size_t>(nla_len(a)) < sizeof h + key) return proto_error("XFRMA_ALG_AUTH_TRUNC key truncated");
    std::string name = c_name(h.alg_name, sizeof h.alg_name);
    IntegAlgo found = IntegAlgo::kNone;
    for (IntegAlgo i : {IntegAlgo::kHmacSha1_96, IntegAlgo::kHmacSha256_128, IntegAlgo::kHmacSha384_192,
                        IntegAlgo::kHmacSha512_256}) {
      if (name == integ_kernel_name(i) && h.alg_trunc_len == integ_trunc_bits(i) && key == integ_key_bytes(i))
        found = i;
    }
    if (found == IntegAlgo::kNone)
      return Error(ErrorCode::kUnsupported,
                   fmt::format("SA uses integrity {} (truncation {} bits, {}-bit key) which storcrypt does not model",
                               name, h.alg_trunc_len, h.alg_key_len));
    sa.integ = found;
    sa.integ_key = SecretBytes(static_cast<const std::uint8_t*>(nla_data(a)) + sizeof h, key);
  }
  if (sa.proto == XfrmProto::kEsp && sa.integ == IntegAlgo::kNone && sa.enc != EncAlgo::kNone && !enc_is_aead(sa.enc))
    sa.allow_no_integrity = true;
  if (const nlattr* a = p.attr(XFRMA_REPLAY_ESN_VAL)) {
    xfrm_replay_state_esn rs;
    std::memcpy(&rs, nla_data(a), sizeof rs);
    sa.replay_window = rs.replay_window;
    st.counters.oseq = (static_cast<std::uint64_t>(rs.oseq_hi) << 32) | rs.oseq;
    st.counters.seq = (static_cast<std::uint64_t>(rs.seq_hi) << 32) | rs.seq;
  } else if (const nlattr* r = p.attr(XFRMA_REPLAY_VAL)) {
    xfrm_replay_state rs;
    std::memcpy(&rs, nla_data(r), sizeof rs);
    st.counters.oseq = rs.oseq;
    st.counters.seq = rs.seq;
  }
  if (const nlattr* a = p.attr(XFRMA_ENCAP)) {
    xfrm_encap_tmpl e;
    std::memcpy(&e, nla_data(a), sizeof e);
    if (e.encap_type != UDP_ENCAP_ESPINUDP)
      return Error(ErrorCode::kUnsupported, fmt::format("SA uses encapsulation type {}", e.encap_type));
    sa.encap = UdpEncap{ntohs(e.encap_sport), ntohs(e.encap_dport)};
  }
  sa.mark = p.mark();
  sa.if_id = p.if_id();
  st.counters.bytes = info.curlft.bytes;
  st.counters.packets = info.curlft.packets;
  st.counters.add_time = info.curlft.add_time;
  st.counters.use_time = info.curlft.use_time;
  st.counters.replay_window_errors = info.stats.replay_window;
  st.counters.replay_errors = info.stats.replay;
  st.counters.integrity_failed = info.stats.integrity_failed;
  return st;
}

Result<Policy> decode_policy(Bytes msg) {
  Parsed p;
  STORCRYPT_TRY(p.parse(msg, sizeof(xfrm_userpolicy_info)));
  if (p.type() != XFRM_MSG_NEWPOLICY && p.type() != XFRM_MSG_UPDPOLICY)
    return proto_error(fmt::format("expected a policy message, got type {}", p.type()));
  return policy_from_info(p.header<xfrm_userpolicy_info>(), p);
}

Result<XfrmEvent> decode_event(Bytes msg) {
  if (msg.size() < NLMSG_HDRLEN) return proto_error("message shorter than a netlink header");
  nlmsghdr h;
  std::memcpy(&h, msg.data(), sizeof h);
  Parsed p;
  switch (h.nlmsg_type) {
    case XFRM_MSG_ACQUIRE: {
      STORCRYPT_TRY(p.parse(msg, sizeof(xfrm_user_acquire)));
      auto a = p.header<xfrm_user_acquire>();
      AcquireEvent ev;
      STORCRYPT_ASSIGN_OR_RETURN(ev.selector, get_selector(a.sel));
      if (a.id.proto != IPPROTO_ESP && a.id.proto != IPPROTO_AH)
        return proto_error(fmt::format("ACQUIRE for protocol {} (not ESP/AH)", a.id.proto));
      ev.proto = static_cast<XfrmProto>(a.id.proto);
      ev.seq = a.seq;
      ev.policy_index = a.policy.index;
      if (a.policy.dir > XFRM_POLICY_FWD) return proto_error("ACQUIRE policy direction out of range");
      ev.policy_dir = static_cast<Direction>(a.policy.dir);
      STORCRYPT_ASSIGN_OR_RETURN(auto tmpls, p.templates());
      Family outer = ev.selector.family;
      if (!tmpls.empty()) {
        ev.reqid = tmpls.front().reqid;
        outer = tmpls.front().family;
      }
      ev.src = get_addr(a.saddr, outer);
      ev.dst = get_addr(a.id.daddr, outer);
      return XfrmEvent(ev);
    }
    case XFRM_MSG_EXPIRE: {
      STORCRYPT_TRY(p.parse(msg, sizeof(xfrm_user_expire)));
      auto e = p.header<xfrm_user_expire>();
      auto fam = family_of(e.state.family);
      if (!fam) return proto_error(fmt::format("EXPIRE family {} unknown", e.state.family));
      if (e.state.id.proto != IPPROTO_ESP && e.state.id.proto != IPPROTO_AH)
        return proto_error(fmt::format("EXPIRE for protocol {} (not ESP/AH)", e.state.id.proto));
      SaExpireEvent ev;
      ev.id.dst = get_addr(e.state.id.daddr, *fam);
      ev.id.spi = ntohl(e.state.id.spi);
      ev.id.proto = static_cast<XfrmProto>(e.state.id.proto);
      ev.id.mark = p.mark();
      ev.src = get_addr(e.state.saddr, *fam);
      ev.reqid = e.state.reqid;
      ev.hard = e.hard != 0;
      return XfrmEvent(ev);
    }
    case XFRM_MSG_POLEXPIRE: {
      STORCRYPT_TRY(p.parse(msg, sizeof(xfrm_user_polexpire)));
      auto e = p.header<xfrm_user_polexpire>();
      STORCRYPT_ASSIGN_OR_RETURN(Policy pol, policy_from_info(e.pol, p));
      PolicyExpireEvent ev;
      ev.id = pol.id();
      ev.id.index = pol.index;
      ev.priority = pol.priority;
      ev.hard = e.hard != 0;
      return XfrmEvent(ev);
    }
    default:
      return proto_error(fmt::format("message type {} is not an XFRM event", h.nlmsg_type));
  }
}

Result<DefaultPolicy> decode_default(Bytes msg) {
  Parsed p;
  STORCRYPT_TRY(p.parse(msg, sizeof(xfrm_userpolicy_default)));
  if (p.type() != XFRM_MSG_GETDEFAULT) return proto_error(fmt::format("expected GETDEFAULT, got type {}", p.type()));
  auto d = p.header<xfrm_userpolicy_default>();
  auto v = [](std::uint8_t x) { return x == XFRM_USERPOLICY_BLOCK ? PolicyAction::kBlock : PolicyAction::kAllow; };
  return DefaultPolicy{v(d.in), v(d.fwd), v(d.out)};
}

Result<NetlinkError> decode_error(Bytes msg) {
  if (msg.size() < NLMSG_HDRLEN + sizeof(nlmsgerr)) return proto_error("NLMSG_ERROR too short");
  std::vector<std::uint64_t> storage(msg.size() / 8 + 1);
  std::memcpy(storage.data(), msg.data(), msg.size());
  const auto* h = reinterpret_cast<const nlmsghdr*>(storage.data());
  if (h->nlmsg_type != NLMSG_ERROR) return proto_error("not an NLMSG_ERROR");
  if (h->nlmsg_len > msg.size() || h->nlmsg_len < NLMSG_HDRLEN + sizeof(nlmsgerr))
    return proto_error("NLMSG_ERROR length out of range");
  const auto* e = reinterpret_cast<const nlmsgerr*>(reinterpret_cast<const std::uint8_t*>(h) + NLMSG_HDRLEN);
  NetlinkError out;
  out.error = e->error;
  if (!(h->nlmsg_flags & NLM_F_ACK_TLVS)) return out;
  std::size_t tlv = NLMSG_HDRLEN + sizeof(nlmsgerr);
  if (!(h->nlmsg_flags & NLM_F_CAPPED)) {
    if (e->msg.nlmsg_len < NLMSG_HDRLEN) return out;
    tlv += NLMSG_ALIGN(e->msg.nlmsg_len - NLMSG_HDRLEN);
  }
  if (tlv >= h->nlmsg_len) return out;
  const auto* base = reinterpret_cast<const std::uint8_t*>(h);
  const auto* head = reinterpret_cast<const nlattr*>(base + tlv);
  int rem = static_cast<int>(h->nlmsg_len - tlv);
  const nlattr* a;
  int r;
  nla_for_each_attr(a, head, rem, r) {
    if (nla_type(a) == NLMSGERR_ATTR_MSG && nla_len(a) > 0) {
      const char* s = static_cast<const char*>(nla_data(a));
      out.message.assign(s, strnlen(s, static_cast<std::size_t>(nla_len(a))));
    } else if (nla_type(a) == NLMSGERR_ATTR_OFFS && nla_len(a) >= 4) {
      std::uint32_t off;
      std::memcpy(&off, nla_data(a), 4);
      out.offset = off;
    }
  }
  return out;
}

std::string attribute_name(std::uint16_t type) {
  static const char* const names[] = {
      "XFRMA_UNSPEC",
      "XFRMA_ALG_AUTH",
      "XFRMA_ALG_CRYPT",
      "XFRMA_ALG_COMP",
      "XFRMA_ENCAP",
      "XFRMA_TMPL",
      "XFRMA_SA",
      "XFRMA_POLICY",
      "XFRMA_SEC_CTX",
      "XFRMA_LTIME_VAL",
      "XFRMA_REPLAY_VAL",
      "XFRMA_REPLAY_THRESH",
      "XFRMA_ETIMER_THRESH",
      "XFRMA_SRCADDR",
      "XFRMA_COADDR",
      "XFRMA_LASTUSED",
      "XFRMA_POLICY_TYPE",
      "XFRMA_MIGRATE",
      "XFRMA_ALG_AEAD",
      "XFRMA_KMADDRESS",
      "XFRMA_ALG_AUTH_TRUNC",
      "XFRMA_MARK",
      "XFRMA_TFCPAD",
      "XFRMA_REPLAY_ESN_VAL",
      "XFRMA_SA_EXTRA_FLAGS",
      "XFRMA_PROTO",
      "XFRMA_ADDRESS_FILTER",
      "XFRMA_PAD",
      "XFRMA_OFFLOAD_DEV",
      "XFRMA_SET_MARK",
      "XFRMA_SET_MARK_MASK",
      "XFRMA_IF_ID",
      "XFRMA_MTIMER_THRESH",
  };
  if (type < sizeof names / sizeof names[0]) return names[type];
  return fmt::format("attribute {}", type);
}

std::string field_at_offset(Bytes request, std::uint32_t offset) {
  if (request.size() < NLMSG_HDRLEN || offset >= request.size()) return {};
  nlmsghdr h;
  std::memcpy(&h, request.data(), sizeof h);
  if (offset < NLMSG_HDRLEN) return "netlink header";
  std::size_t hdrlen = 0;
  const char* hdrname = "";
  switch (h.nlmsg_type) {
    case XFRM_MSG_NEWSA:
    case XFRM_MSG_UPDSA:
      hdrlen = sizeof(xfrm_usersa_info);
      hdrname = "xfrm_usersa_info";
      break;
    case XFRM_MSG_GETSA:
    case XFRM_MSG_DELSA:
      hdrlen = sizeof(xfrm_usersa_id);
      hdrname = "xfrm_usersa_id";
      break;
    case XFRM_MSG_NEWPOLICY:
    case XFRM_MSG_UPDPOLICY:
      hdrlen = sizeof(xfrm_userpolicy_info);
      hdrname = "xfrm_userpolicy_info";
      break;
    case XFRM_MSG_GETPOLICY:
    case XFRM_MSG_DELPOLICY:
      hdrlen = sizeof(xfrm_userpolicy_id);
      hdrname = "xfrm_userpolicy_id";
      break;
    case XFRM_MSG_ALLOCSPI:
      hdrlen = sizeof(xfrm_userspi_info);
      hdrname = "xfrm_userspi_info";
      break;
    case XFRM_MSG_SETDEFAULT:
    case XFRM_MSG_GETDEFAULT:
      hdrlen = sizeof(xfrm_userpolicy_default);
      hdrname = "xfrm_userpolicy_default";
      break;
    default:
      return {};
  }
  std::size_t pos = NLMSG_HDRLEN + NLMSG_ALIGN(hdrlen);
  if (offset < pos) return fmt::format("header ({})", hdrname);
  std::size_t end = std::min<std::size_t>(h.nlmsg_len, request.size());
  while (pos + sizeof(nlattr) <= end) {
    nlattr a;
    std::memcpy(&a, request.data() + pos, sizeof a);
    if (a.nla_len < sizeof(nlattr)) break;
    std::size_t next = pos + NLA_ALIGN(a.nla_len);
    if (offset < next) return attribute_name(a.nla_type & NLA_TYPE_MASK);
    pos = next;
  }
  return {};
}

std::optional<OwnerKey> peek_owner(Bytes msg) {
  if (msg.size() < NLMSG_HDRLEN) return std::nullopt;
  nlmsghdr h;
  std::memcpy(&h, msg.data(), sizeof h);
  OwnerKey k;
  Parsed p;
  if (h.nlmsg_type == XFRM_MSG_NEWSA || h.nlmsg_type == XFRM_MSG_UPDSA) {
    if (!p.parse(msg, sizeof(xfrm_usersa_info)).ok()) return std::nullopt;
    k.is_sa = true;
    k.reqid = p.header<xfrm_usersa_info>().reqid;
  } else if (h.nlmsg_type == XFRM_MSG_NEWPOLICY || h.nlmsg_type == XFRM_MSG_UPDPOLICY) {
    if (!p.parse(msg, sizeof(xfrm_userpolicy_info)).ok()) return std::nullopt;
    k.priority = p.header<xfrm_userpolicy_info>().priority;
    k.index = p.header<xfrm_userpolicy_info>().index;
    k.dir = p.header<xfrm_userpolicy_info>().dir;
  } else {
    return std::nullopt;
  }
  k.mark = p.mark();
  return k;
}

std::vector<Bytes> split_messages(Bytes buffer) {
  std::vector<Bytes> out;
  std::size_t pos = 0;
  while (pos + NLMSG_HDRLEN <= buffer.size()) {
    nlmsghdr h;
    std::memcpy(&h, buffer.data() + pos, sizeof h);
    if (h.nlmsg_len < NLMSG_HDRLEN || h.nlmsg_len > buffer.size() - pos) break;
    out.push_back(buffer.subspan(pos, h.nlmsg_len));
    pos += NLMSG_ALIGN(h.nlmsg_len);
  }
  return out;
}

}  // namespace storcrypt::netlink::codec
