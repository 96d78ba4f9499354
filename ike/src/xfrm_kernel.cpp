#include "storcrypt/ike/xfrm_kernel.h"

#include <fmt/format.h>

#include <algorithm>
#include <optional>
#include <string>
#include <utility>

namespace storcrypt::ike {
namespace nl = storcrypt::netlink;
namespace {

Error invalid(std::string msg, std::string fix = {}) {
  return Error(ErrorCode::kInvalidInput, std::move(msg), std::move(fix));
}

std::string reqid_text(std::uint32_t reqid) { return fmt::format("reqid 0x{:x}", reqid); }

bool ike_reqid(std::uint32_t reqid) { return nl::Ownership::ike().owns_reqid(reqid); }

Status require_ike_reqid(std::uint32_t reqid) {
  if (ike_reqid(reqid)) return ok_status();
  return invalid(fmt::format("reqid: 0x{:x} is outside the IKE reqid range [0x{:x}, 0x{:x}]", reqid, nl::kIkeReqidMin,
                             nl::kOwnedReqidMax),
                 "use a slot returned by reserve()");
}

/// The netlink algorithms of an ESP suite.
Result<std::pair<nl::EncAlgo, nl::IntegAlgo>> algorithms(const Suite& s) {
  if (s.protocol != ProtocolId::kEsp)
    return Error(ErrorCode::kUnsupported, "suite: only ESP CHILD_SAs can be installed (AH is not supported)");
  nl::EncAlgo enc = nl::EncAlgo::kNone;
  if (s.encr == transform_id::kEncrAesGcm16) {
    if (s.encr_key_bits == 256) enc = nl::EncAlgo::kAesGcm256;
    if (s.encr_key_bits == 128) enc = nl::EncAlgo::kAesGcm128;
  } else if (s.encr == transform_id::kEncrAesCbc) {
    if (s.encr_key_bits == 256) enc = nl::EncAlgo::kAesCbc256;
    if (s.encr_key_bits == 192) enc = nl::EncAlgo::kAesCbc192;
    if (s.encr_key_bits == 128) enc = nl::EncAlgo::kAesCbc128;
  }
  if (enc == nl::EncAlgo::kNone)
    return Error(ErrorCode::kUnsupported,
                 fmt::format("suite: ESP encryption transform {} with {}-bit keys has no kernel mapping here", s.encr,
                             s.encr_key_bits),
                 "negotiate AES-GCM-16 (128/256) or AES-CBC (128/192/256)");
  nl::IntegAlgo integ = nl::IntegAlgo::kNone;
  switch (s.integ) {
    case transform_id::kIntegNone:
      break;
    case transform_id::kIntegHmacSha256_128:
      integ = nl::IntegAlgo::kHmacSha256_128;
      break;
    case transform_id::kIntegHmacSha384_192:
      integ = nl::IntegAlgo::kHmacSha384_192;
      break;
    case transform_id::kIntegHmacSha512_256:
      integ = nl::IntegAlgo::kHmacSha512_256;
      break;
    default:
      return Error(ErrorCode::kUnsupported,
                   fmt::format("suite: ESP integrity transform {} has no kernel mapping here", s.integ),
                   "negotiate HMAC-SHA2-256-128, -384-192 or -512-256");
  }
  if (nl::enc_is_aead(enc) != (integ == nl::IntegAlgo::kNone))
    return invalid(fmt::format("suite: {} {} an integrity transform", nl::enc_name(enc),
                               nl::enc_is_aead(enc) ? "must not have" : "needs"));
  return std::pair{enc, integ};
}

/// One side of a selector, as an XFRM selector can hold it.
struct Piece {
  nl::Prefix prefix;
  std::uint8_t proto = 0;
  nl::PortMatch port;                     ///< TCP/UDP/SCTP
  std::optional<std::uint8_t> icmp_type;  ///< ICMP/ICMPv6
  std::optional<std::uint8_t> icmp_code;
};

bool is_icmp(std::uint8_t p) { return p == nl::kProtoIcmp || p == nl::kProtoIcmpV6; }

Result<std::vector<Piece>> pieces(const TsRange& ts, std::string_view side) {
  if (ts.start.family != ts.end.family || ts.start.value() > ts.end.value())
    return invalid(fmt::format("{}: address range {} - {} is empty or mixes families", side, ts.start.to_string(),
                               ts.end.to_string()));
  if (ts.start_port > ts.end_port)
    return invalid(fmt::format("{}: port range {}-{} is empty", side, ts.start_port, ts.end_port));
  const bool all_ports = ts.start_port == 0 && ts.end_port == 65535;
  std::vector<Piece> ports;  // prefix filled in below
  if (all_ports) {
    ports.push_back(Piece{{}, ts.ip_protocol, {}, {}, {}});
  } else if (ts.ip_protocol == 0) {
    return invalid(fmt::format("{}: ports {}-{} without an IP protocol cannot be a kernel selector", side,
                               ts.start_port, ts.end_port));
  } else if (is_icmp(ts.ip_protocol)) {
    // RFC 7296 §3.13.1: ICMP type (high octet) and code (low octet) as one 16-bit "port".
    Piece p{{}, ts.ip_protocol, {}, static_cast<std::uint8_t>(ts.start_port >> 8), {}};
    if (ts.start_port == ts.end_port) {
      p.icmp_code = static_cast<std::uint8_t>(ts.start_port & 0xff);
    } else if ((ts.start_port >> 8) != (ts.end_port >> 8) || (ts.start_port & 0xff) != 0 ||
               (ts.end_port & 0xff) != 0xff) {
      return Error(ErrorCode::kUnsupported,
                   fmt::format("{}: ICMP type/code range {}-{} is not one type (any code) or one type and code", side,
                               ts.start_port, ts.end_port));
    }
    ports.push_back(p);
  } else {
    auto masks = nl::port_range_to_masks(ts.start_port, ts.end_port);
    if (!masks.ok()) return std::move(masks).error().context(std::string(side));
    for (const auto& m : *masks) ports.push_back(Piece{{}, ts.ip_protocol, m, {}, {}});
  }
  std::vector<Piece> out;
  for (const nl::Prefix& pre : prefixes_covering(ts.start, ts.end))
    for (Piece p : ports) {
      p.prefix = pre;
      out.push_back(p);
    }
  return out;
}

/// The selector of traffic from `src` to `dst`; nullopt when nothing can match both.
std::optional<nl::Selector> selector(const Piece& src, const Piece& dst) {
  if (src.prefix.addr.family != dst.prefix.addr.family) return std::nullopt;
  if (src.proto != 0 && dst.proto != 0 && src.proto != dst.proto) return std::nullopt;
  nl::Selector s = nl::Selector::any(src.prefix.addr.family);
  s.src = src.prefix;
  s.dst = dst.prefix;
  s.proto = std::max(src.proto, dst.proto);
  if (is_icmp(s.proto)) {
    const Piece& a = src.icmp_type ? src : dst;
    const Piece& b = src.icmp_type ? dst : src;
    if (b.icmp_type && (b.icmp_type != a.icmp_type || b.icmp_code != a.icmp_code)) return std::nullopt;
    s.icmp_type = a.icmp_type;
    s.icmp_code = a.icmp_code;
    if (s.proto == nl::kProtoIcmp && s.family != Family::kIPv4) return std::nullopt;
    if (s.proto == nl::kProtoIcmpV6 && s.family != Family::kIPv6) return std::nullopt;
  } else {
    s.sport = src.port;
    s.dport = dst.port;
  }
  return s;
}

nl::Template tmpl(const ChildSaSpec& spec, bool out) {
  nl::Template t;
  t.proto = nl::XfrmProto::kEsp;
  t.mode = spec.tunnel ? nl::Mode::kTunnel : nl::Mode::kTransport;
  t.family = spec.local.family;
  t.reqid = spec.slot.reqid;
  if (spec.tunnel) {
    t.src = out ? spec.local : spec.remote;
    t.dst = out ? spec.remote : spec.local;
  }
  // No SPI in the template, OUT included: templates match the CHILD_SA's SAs
  // by its reqid (ours alone, ownership range), so a rekey adds SAs under the
  // same reqid and never touches a policy; of two outbound SAs the kernel
  // sends with the newer (xfrm_state_find prefers the later add time, and an
  // added SA bumps the cached bundles' generation). Pinning OUT to one SPI
  // (charon's KERNEL_POLICY_SPI) would black-hole the rekeyed CHILD_SA.
  (void)out;
  return t;
}

nl::Sa sa(const ChildSaSpec& spec, bool out, nl::EncAlgo enc, nl::IntegAlgo integ) {
  nl::Sa s;
  s.src = out ? spec.local : spec.remote;
  s.dst = out ? spec.remote : spec.local;
  s.spi = out ? spec.spi_out : spec.slot.spi_in;
  s.proto = nl::XfrmProto::kEsp;
  s.mode = spec.tunnel ? nl::Mode::kTunnel : nl::Mode::kTransport;
  s.reqid = spec.slot.reqid;
  const DirectionKeys& k = out ? spec.out : spec.in;
  s.enc = enc;
  s.enc_key = k.encr.clone();
  s.integ = integ;
  s.integ_key = k.integ.clone();
  s.esn = spec.suite.esn.value_or(transform_id::kEsnNo) == transform_id::kEsnYes;
  // Outbound SAs keep no replay state; with ESN the kernel wants a window of at least 1.
  s.replay_window = out ? (s.esn ? 1 : 0) : spec.replay_window;
  const ChildSaLifetime& l = spec.lifetime;
  s.lifetime.soft_bytes = l.soft_bytes;
  s.lifetime.hard_bytes = l.hard_bytes;
  s.lifetime.soft_packets = l.soft_packets;
  s.lifetime.hard_packets = l.hard_packets;
  s.lifetime.soft_add_seconds = static_cast<std::uint64_t>(std::max<std::int64_t>(0, l.soft_add.count()));
  s.lifetime.hard_add_seconds = static_cast<std::uint64_t>(std::max<std::int64_t>(0, l.hard_add.count()));
  if (spec.encap) {
    // encap = (our port, the peer's port); the SA's sport is its sender's.
    s.encap =
        out ? nl::UdpEncap{spec.encap->first, spec.encap->second} : nl::UdpEncap{spec.encap->second, spec.encap->first};
  }
  return s;
}

std::uint32_t policy_index(std::uint32_t reqid, std::uint32_t pair, nl::Direction dir) {
  // In range by construction: 65536 reqids x 16 pairs x 8 = 2^23 indexes <= the 2^27 of the IKE half.
  return *nl::Ownership::ike().policy_index((reqid - nl::kIkeReqidMin) * kMaxSelectorPairs + pair, dir);
}

bool not_found(const Status& st) { return !st.ok() && st.error().code() == ErrorCode::kNotFound; }

/// Same kernel slot: the kernel refuses a second policy of one (selector,
/// dir, mark, if_id) whatever its priority or index.
bool same_slot(const nl::Policy& a, const nl::Policy& b) {
  return a.selector == b.selector && a.dir == b.dir && a.mark == b.mark && a.if_id == b.if_id;
}

/// The peer a policy of ours protects traffic with: the tunnel's remote end
/// (OUT: template destination, IN/FWD: template source), or in transport
/// mode the selector's remote host.
std::optional<IpAddress> policy_peer(const nl::Policy& p) {
  const bool out = p.dir == nl::Direction::kOut;
  for (const nl::Template& t : p.templates) {
    if (t.mode != nl::Mode::kTunnel) continue;
    const IpAddress& a = out ? t.dst : t.src;
    if (!a.is_any()) return a;
  }
  const nl::Prefix& host = out ? p.selector.dst : p.selector.src;
  if (host.len == (host.addr.family == Family::kIPv4 ? 32 : 128)) return host.addr;
  return std::nullopt;
}

}  // namespace

std::uint32_t ike_policy_priority(const nl::Selector& sel) {
  // strongSwan kernel_netlink_ipsec.c get_priority(), POLICY_PRIORITY_DEFAULT.
  constexpr std::uint32_t kPrioBase = 200000;
  std::uint32_t prio = 2 * kPrioBase;
  prio -= (static_cast<std::uint32_t>(sel.src.len) + sel.dst.len) * 512;
  prio -= sel.proto ? 256 : 0;
  prio -= (sel.sport.mask_bits() + sel.dport.mask_bits()) * 4;
  prio -= sel.ifindex ? 2 : 0;
  prio -= 1;
  return prio;
}

Result<ChildSaObjects> child_sa_objects(const ChildSaSpec& spec) {
  STORCRYPT_TRY(require_ike_reqid(spec.slot.reqid));
  if (spec.local.family != spec.remote.family || spec.local.is_any() || spec.remote.is_any())
    return invalid(fmt::format("local/remote: {} and {} must be two addresses of one family", spec.local.to_string(),
                               spec.remote.to_string()));
  if (spec.slot.spi_in < nl::kMinSpi || spec.spi_out < nl::kMinSpi)
    return invalid(
        fmt::format("spi: SPIs in=0x{:08x} out=0x{:08x} must both be >= 0x100", spec.slot.spi_in, spec.spi_out));
  STORCRYPT_ASSIGN_OR_RETURN(auto algs, algorithms(spec.suite));
  ChildSaObjects o;
  o.in = sa(spec, false, algs.first, algs.second);
  o.out = sa(spec, true, algs.first, algs.second);
  for (const nl::Sa* s : {&o.in, &o.out})
    if (auto st = nl::validate(*s); !st.ok())
      return std::move(st).error().context(
          fmt::format("{} SA of {}", s == &o.in ? "inbound" : "outbound", reqid_text(spec.slot.reqid)));

  std::vector<Piece> locals, remotes;
  for (const TsRange& ts : spec.local_ts) {
    STORCRYPT_ASSIGN_OR_RETURN(auto p, pieces(ts, "local_ts"));
    locals.insert(locals.end(), p.begin(), p.end());
  }
  for (const TsRange& ts : spec.remote_ts) {
    STORCRYPT_ASSIGN_OR_RETURN(auto p, pieces(ts, "remote_ts"));
    remotes.insert(remotes.end(), p.begin(), p.end());
  }
  std::vector<std::pair<nl::Selector, nl::Selector>> pairs;  // (out, in)
  for (const Piece& l : locals)
    for (const Piece& r : remotes) {
      auto out = selector(l, r);
      auto in = selector(r, l);
      if (out && in) pairs.emplace_back(*out, *in);
    }
  if (pairs.empty())
    return invalid("traffic selectors: no local/remote pair of one family and protocol",
                   "narrow the traffic selectors to matching families");
  if (pairs.size() > kMaxSelectorPairs)
    return invalid(fmt::format("traffic selectors: they need {} kernel selector pairs, at most {} are supported",
                               pairs.size(), kMaxSelectorPairs),
                   "use prefixes and power-of-two port ranges, or fewer selectors");
  for (std::uint32_t k = 0; k < pairs.size(); ++k) {
    const auto& [sel_out, sel_in] = pairs[k];
    for (nl::Direction d : {nl::Direction::kOut, nl::Direction::kIn, nl::Direction::kFwd}) {
      nl::Policy p;
      p.selector = d == nl::Direction::kOut ? sel_out : sel_in;
      p.dir = d;
      p.action = nl::PolicyAction::kAllow;
      p.priority = ike_policy_priority(p.selector);
      p.templates.push_back(tmpl(spec, d == nl::Direction::kOut));
      p.index = policy_index(spec.slot.reqid, k, d);
      if (auto st = nl::validate(p); !st.ok())
        return std::move(st).error().context(fmt::format("policy of {}", reqid_text(spec.slot.reqid)));
      o.policies.push_back(std::move(p));
    }
  }
  return o;
}

// ---- XfrmChildSaKernel ------------------------------------------------------------

Result<std::unique_ptr<XfrmChildSaKernel>> XfrmChildSaKernel::create(nl::XfrmApi& xfrm) {
  const nl::Ownership& o = xfrm.ownership();
  const nl::Ownership want = nl::Ownership::ike();
  if (o.reqid_min != want.reqid_min || o.reqid_max != want.reqid_max || o.index_min != want.index_min ||
      o.index_max != want.index_max)
    return invalid(fmt::format("ownership: the XFRM instance owns reqids [0x{:x}, 0x{:x}] and indexes [0x{:08x}, "
                               "0x{:08x}]; IKE CHILD_SAs need exactly Ownership::ike()",
                               o.reqid_min, o.reqid_max, o.index_min, o.index_max),
                   "open the XFRM instance with XfrmOptions{.ownership = netlink::Ownership::ike()}");
  return std::unique_ptr<XfrmChildSaKernel>(new XfrmChildSaKernel(xfrm));
}

Status XfrmChildSaKernel::scan_used() {
  STORCRYPT_ASSIGN_OR_RETURN(auto sas, xfrm_.dump_sas());
  STORCRYPT_ASSIGN_OR_RETURN(auto pols, xfrm_.dump_policies());
  note_used(sas, pols);
  return ok_status();
}

void XfrmChildSaKernel::note_used(const std::vector<nl::SaState>& sas, const std::vector<nl::Policy>& pols) {
  for (const auto& s : sas) used_.insert(s.sa.reqid);
  for (const auto& p : pols)
    for (const auto& t : p.templates) used_.insert(t.reqid);
  scanned_ = true;
}

Result<std::uint32_t> XfrmChildSaKernel::next_reqid() {
  if (!scanned_) {
    if (auto st = scan_used(); !st.ok()) return std::move(st).error().context("listing the reqids in use");
  }
  constexpr std::uint32_t kSpan = nl::kOwnedReqidMax - nl::kIkeReqidMin + 1;
  for (std::uint32_t i = 0; i < kSpan; ++i) {
    const std::uint32_t r = nl::kIkeReqidMin + (cursor_ + i) % kSpan;
    if (used_.count(r)) continue;
    cursor_ = (r - nl::kIkeReqidMin + 1) % kSpan;
    return r;
  }
  return Error(ErrorCode::kConflict, fmt::format("all {} IKE reqids are in use", kSpan),
               "remove CHILD_SAs that are no longer needed");
}

Result<ChildSaSlot> XfrmChildSaKernel::reserve(const IpAddress& local, const IpAddress& remote) {
  if (local.family != remote.family || local.is_any() || remote.is_any())
    return invalid(fmt::format("reserve: local {} and remote {} must be two addresses of one family", local.to_string(),
                               remote.to_string()));
  STORCRYPT_ASSIGN_OR_RETURN(std::uint32_t reqid, next_reqid());
  fresh_ = false;
  auto slot = allocate(reqid, local, remote);
  if (!slot.ok()) {
    cursor_ = reqid - nl::kIkeReqidMin;  // the reqid stays free: offer it again next time
    return slot;
  }
  used_.insert(reqid);
  return slot;
}

Result<ChildSaSlot> XfrmChildSaKernel::allocate(std::uint32_t reqid, const IpAddress& local, const IpAddress& remote) {
  nl::SpiRequest req;
  req.src = remote;
  req.dst = local;
  req.proto = nl::XfrmProto::kEsp;
  req.mode = nl::Mode::kTunnel;
  req.reqid = reqid;
  req.mark = mark();
  auto spi = xfrm_.allocate_spi(req);
  if (!spi.ok()) return std::move(spi).error().context("reserving an inbound SPI for " + reqid_text(reqid));
  return ChildSaSlot{reqid, *spi};
}

Result<ChildSaSlot> XfrmChildSaKernel::reserve_rekey(const ChildSaSlot& old, const IpAddress& local,
                                                     const IpAddress& remote) {
  STORCRYPT_TRY(require_ike_reqid(old.reqid));
  if (local.family != remote.family || local.is_any() || remote.is_any())
    return invalid(fmt::format("reserve_rekey: local {} and remote {} must be two addresses of one family",
                               local.to_string(), remote.to_string()));
  return allocate(old.reqid, local, remote);
}

Status XfrmChildSaKernel::install_sa(const ChildSaSpec& spec, SaDirection dir) {
  STORCRYPT_TRY(require_ike_reqid(spec.slot.reqid));
  const bool in = dir == SaDirection::kIn;
  const std::string what =
      fmt::format("installing the rekeyed {} SA 0x{:08x} of CHILD_SA {}", in ? "inbound" : "outbound",
                  in ? spec.slot.spi_in : spec.spi_out, reqid_text(spec.slot.reqid));
  auto objs = child_sa_objects(spec);
  if (!objs.ok()) return std::move(objs).error().context(what);
  nl::Sa& sa = in ? objs->in : objs->out;
  sa.mark = mark();
  Status st = ok_status();
  if (in) {
    st = xfrm_.update_sa(sa);  // replaces the larval SA of reserve_rekey()
    if (not_found(st)) st = xfrm_.add_sa(sa);
  } else {
    st = xfrm_.add_sa(sa);
  }
  if (!st.ok()) return std::move(st).error().context(what);
  if (in) return ok_status();
  // Re-put the OUT policies unchanged: that drops the routes (bundles) the
  // kernel cached with the old outbound SA, so the next packet takes the new
  // one (the newest SA of the reqid), while a packet already on its way
  // still finds the old SA alive. Deleting the old SA instead would fail
  // that packet (XfrmOutStateInvalid); keeping it without this would keep
  // it in use until the DELETE, after the peer dropped its inbound copy.
  for (nl::Policy& p : objs->policies) {
    if (p.dir != nl::Direction::kOut) continue;
    p.mark = mark();
    if (auto u = xfrm_.update_policy(p); !u.ok())
      return std::move(u).error().context(what + ": switching the OUT policy to it");
  }
  return ok_status();
}

Status XfrmChildSaKernel::remove_sa(std::uint32_t reqid, const IpAddress& dst, std::uint32_t spi) {
  STORCRYPT_TRY(require_ike_reqid(reqid));
  if (spi < nl::kMinSpi) return ok_status();
  const nl::SaId id{dst, spi, nl::XfrmProto::kEsp, mark()};
  const std::string what = "removing SA " + id.to_string() + " of CHILD_SA " + reqid_text(reqid);
  auto cur = xfrm_.get_sa(id);
  if (!cur.ok()) {
    Status st(std::move(cur).error());
    return not_found(st) ? ok_status() : Status(std::move(st).error().context(what));
  }
  if (cur->sa.reqid != reqid)
    return Error(ErrorCode::kConflict, fmt::format("{}: it belongs to reqid 0x{:x}; left alone", what, cur->sa.reqid));
  if (Status st = xfrm_.delete_sa(id); !st.ok() && !not_found(st)) return std::move(st).error().context(what);
  return ok_status();
}

Status XfrmChildSaKernel::install(const ChildSaSpec& spec) {
  const std::string what =
      fmt::format("installing CHILD_SA {} ({} <-> {}, SPIs in 0x{:08x} out 0x{:08x})", reqid_text(spec.slot.reqid),
                  spec.local.to_string(), spec.remote.to_string(), spec.slot.spi_in, spec.spi_out);
  auto objs = child_sa_objects(spec);
  if (!objs.ok()) return std::move(objs).error().context(what);
  ChildSaObjects& o = *objs;
  for (nl::Sa* s : {&o.in, &o.out}) s->mark = mark();
  for (nl::Policy& p : o.policies) p.mark = mark();

  // Undo log: what was added, removed again in reverse order on failure;
  // stale policies this CHILD_SA took over are put back as they were.
  std::vector<nl::SaId> sas_done;
  std::vector<nl::PolicyId> pols_done;
  std::vector<nl::Policy> taken;  // stale policies replaced (with their kept index)
  std::vector<nl::PolicyId> taken_ids;
  auto fail = [&](Error e) -> Status {
    std::string leftovers;
    for (auto it = taken.rbegin(); it != taken.rend(); ++it) {
      if (auto st = xfrm_.update_policy(*it); !st.ok())
        leftovers += "; undo failed: " + st.error().message();
      else
        stale_.push_back(*it);
    }
    for (auto it = pols_done.rbegin(); it != pols_done.rend(); ++it)
      if (auto st = xfrm_.delete_policy(*it); !st.ok() && !not_found(st))
        leftovers += "; undo failed: " + st.error().message();
    for (auto it = sas_done.rbegin(); it != sas_done.rend(); ++it)
      if (auto st = xfrm_.delete_sa(*it); !st.ok() && !not_found(st))
        leftovers += "; undo failed: " + st.error().message();
    Error out = std::move(e).context(what);
    if (leftovers.empty()) return out;
    return Error(out.code(), out.message() + leftovers, "remove() the CHILD_SA to clean up what is left");
  };

  // The inbound SA replaces the larval one reserve() made; if that expired
  // (the kernel drops it after xfrm_acq_expires), add it anew as charon does.
  Status st = xfrm_.update_sa(o.in);
  if (not_found(st)) st = xfrm_.add_sa(o.in);
  if (!st.ok()) return fail(std::move(st).error());
  sas_done.push_back(o.in.id());
  if (st = xfrm_.add_sa(o.out); !st.ok()) return fail(std::move(st).error());
  sas_done.push_back(o.out.id());
  for (const nl::Policy& p : o.policies) {
    nl::PolicyId id;
    id.dir = p.dir;
    id.mark = p.mark;
    auto idx = xfrm_.add_policy(p);
    if (!idx.ok() && idx.error().code() == ErrorCode::kConflict) {
      // A killed instance's policy of the same selector (its SAs are gone,
      // so it drops this traffic): replace it in one step, never leaving the
      // selector without a policy. The kernel keeps the stale index.
      auto old = std::find_if(stale_.begin(), stale_.end(), [&](const nl::Policy& s) { return same_slot(s, p); });
      if (old != stale_.end()) {
        idx = xfrm_.update_policy(p);
        if (idx.ok()) {
          taken.push_back(*old);
          stale_.erase(old);
          id.index = *idx;
          taken_ids.push_back(id);
          continue;
        }
      }
    }
    if (!idx.ok()) return fail(std::move(idx).error());
    id.index = *idx;
    pols_done.push_back(id);
  }
  used_.insert(spec.slot.reqid);
  pairs_[spec.slot.reqid] = static_cast<std::uint32_t>(o.policies.size() / 3);
  if (!taken_ids.empty()) {
    auto& r = replaced_[spec.slot.reqid];
    r.insert(r.end(), taken_ids.begin(), taken_ids.end());
  }
  return ok_status();
}

Status XfrmChildSaKernel::remove(const ChildSaSlot& slot, const IpAddress& local, const IpAddress& remote,
                                 std::uint32_t spi_out) {
  STORCRYPT_TRY(require_ike_reqid(slot.reqid));
  const std::string what = "removing CHILD_SA " + reqid_text(slot.reqid);
  std::optional<Error> first;
  auto note = [&](Status st) {
    if (!st.ok() && !not_found(st) && !first) first = std::move(st).error().context(what);
  };
  // Policies first (OUT before IN/FWD), so no packet is sent into a template
  // whose SA is gone.
  for (const nl::PolicyId& id : policy_ids(slot.reqid)) note(xfrm_.delete_policy(id));
  if (auto e = drop_sas(slot, local, remote, spi_out, what); e && !first) first = std::move(e);
  if (first) return std::move(*first);
  pairs_.erase(slot.reqid);
  replaced_.erase(slot.reqid);
  used_.erase(slot.reqid);
  return ok_status();
}

std::vector<nl::PolicyId> XfrmChildSaKernel::policy_ids(std::uint32_t reqid) const {
  // Unknown pair count (e.g. installed before a restart): every index this
  // reqid can have.
  std::vector<nl::PolicyId> ids;
  auto known = pairs_.find(reqid);
  const std::uint32_t n = known == pairs_.end() ? kMaxSelectorPairs : known->second;
  for (std::uint32_t k = 0; k < n; ++k)
    for (nl::Direction d : {nl::Direction::kOut, nl::Direction::kIn, nl::Direction::kFwd}) {
      nl::PolicyId id;
      id.dir = d;
      id.index = policy_index(reqid, k, d);
      id.mark = mark();
      ids.push_back(id);
    }
  // Stale policies it took over at install() (they kept their old index).
  if (auto r = replaced_.find(reqid); r != replaced_.end()) ids.insert(ids.end(), r->second.begin(), r->second.end());
  return ids;
}

std::optional<Error> XfrmChildSaKernel::drop_sas(const ChildSaSlot& slot, const IpAddress& local,
                                                 const IpAddress& remote, std::uint32_t spi_out,
                                                 const std::string& what) {
  // Only SAs that carry this CHILD_SA's reqid (a stale SPI must not take
  // another CHILD_SA's SA with it).
  std::optional<Error> first;
  auto drop = [&](const IpAddress& dst, std::uint32_t spi) {
    if (spi < nl::kMinSpi) return;
    nl::SaId id{dst, spi, nl::XfrmProto::kEsp, mark()};
    auto cur = xfrm_.get_sa(id);
    if (!cur.ok()) {
      if (Status st(std::move(cur).error()); !not_found(st) && !first) first = std::move(st).error().context(what);
      return;
    }
    if (cur->sa.reqid != slot.reqid) {
      if (!first)
        first = Error(ErrorCode::kConflict, fmt::format("{}: SA {} belongs to reqid 0x{:x}; left alone", what,
                                                        id.to_string(), cur->sa.reqid));
      return;
    }
    if (Status st = xfrm_.delete_sa(id); !st.ok() && !not_found(st) && !first)
      first = std::move(st).error().context(what);
  };
  drop(local, slot.spi_in);
  drop(remote, spi_out);
  return first;
}

Status XfrmChildSaKernel::retire(const ChildSaSlot& slot, const IpAddress& local, const IpAddress& remote,
                                 std::uint32_t spi_out) {
  STORCRYPT_TRY(require_ike_reqid(slot.reqid));
  const std::string what = "retiring CHILD_SA " + reqid_text(slot.reqid) + " of a dead peer";
  // Its policies (those it took over included) become stale, read back by
  // their indexes; one that cannot be read is deleted rather than left
  // untracked (it would refuse the restarted CHILD_SA's install).
  for (const nl::PolicyId& id : policy_ids(slot.reqid)) {
    auto p = xfrm_.get_policy(id);
    if (p.ok()) {
      stale_.push_back(std::move(*p));
    } else if (Status st(std::move(p).error()); !not_found(st)) {
      (void)xfrm_.delete_policy(id);
    }
  }
  if (auto e = drop_sas(slot, local, remote, spi_out, what)) return std::move(*e);
  // The reqid stays in used_: the kept policies' indexes derive from it.
  pairs_.erase(slot.reqid);
  replaced_.erase(slot.reqid);
  return ok_status();
}

Result<StaleObjects> XfrmChildSaKernel::clear_stale() {
  if (!fresh_)
    return invalid("clear_stale: this instance already reserved CHILD_SAs; their SAs would be taken for stale",
                   "call clear_stale() once at start-up, before the first CHILD_SA");
  const std::string what = "clearing the CHILD_SAs a previous instance left";
  auto sas = xfrm_.dump_sas();
  if (!sas.ok()) return std::move(sas).error().context(what);
  auto pols = xfrm_.dump_policies();
  if (!pols.ok()) return std::move(pols).error().context(what);
  // The stale reqids stay in use: the kept policies' indexes derive from them.
  note_used(*sas, *pols);
  StaleObjects r;
  for (const nl::SaState& s : *sas) {
    Status st = xfrm_.delete_sa(s.sa.id());
    if (not_found(st)) continue;
    if (!st.ok()) return std::move(st).error().context(what);
    ++r.sas_deleted;
  }
  stale_ = std::move(*pols);
  r.policies_kept = stale_.size();
  return r;
}

Result<std::size_t> XfrmChildSaKernel::prune_stale(const std::vector<IpAddress>& keep) {
  std::size_t n = 0;
  for (auto it = stale_.begin(); it != stale_.end();) {
    const auto peer = policy_peer(*it);
    if (peer && std::find(keep.begin(), keep.end(), *peer) != keep.end()) {
      ++it;
      continue;
    }
    nl::PolicyId id;
    id.dir = it->dir;
    id.index = it->index;
    id.mark = it->mark;
    if (Status st = xfrm_.delete_policy(id); !st.ok() && !not_found(st))
      return std::move(st).error().context("removing a stale policy of a peer no longer configured");
    it = stale_.erase(it);
    ++n;
  }
  return n;
}

Result<ChildSaCounters> XfrmChildSaKernel::counters(const ChildSaSlot& slot, const IpAddress& local,
                                                    const IpAddress& remote, std::uint32_t spi_out) {
  STORCRYPT_TRY(require_ike_reqid(slot.reqid));
  ChildSaCounters c;
  int found = 0;
  auto read = [&](const IpAddress& dst, std::uint32_t spi, std::uint64_t& bytes, std::uint64_t& packets) -> Status {
    if (spi < nl::kMinSpi) return ok_status();
    auto st = xfrm_.get_sa(nl::SaId{dst, spi, nl::XfrmProto::kEsp, mark()});
    if (!st.ok()) return not_found(Status(st.error())) ? ok_status() : Status(std::move(st).error());
    if (st->sa.reqid != slot.reqid) return ok_status();
    bytes = st->counters.bytes;
    packets = st->counters.packets;
    ++found;
    return ok_status();
  };
  if (auto st = read(local, slot.spi_in, c.bytes_in, c.packets_in); !st.ok())
    return std::move(st).error().context("reading counters of " + reqid_text(slot.reqid));
  if (auto st = read(remote, spi_out, c.bytes_out, c.packets_out); !st.ok())
    return std::move(st).error().context("reading counters of " + reqid_text(slot.reqid));
  if (found == 0)
    return Error(ErrorCode::kNotFound,
                 fmt::format("CHILD_SA {}: neither of its SAs is installed", reqid_text(slot.reqid)));
  return c;
}

}  // namespace storcrypt::ike
