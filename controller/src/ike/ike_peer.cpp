// IKE peer specs: parsing and validation (see ike_peer.h).
#include "ike/ike_peer.h"

#include <openssl/objects.h>
#include <openssl/x509.h>

#include <algorithm>
#include <map>
#include <memory>
#include <set>

namespace storcrypt::controller {

using nlohmann::json;
namespace tid = ike::transform_id;

namespace {

constexpr const char* kPeerFix = "see `storcrypt ike peer add --help` and storcrypt(8), section IKE";

Error invalid(std::string message, std::string fix, std::string name = "xIkePeerInvalid") {
  return Error(ErrorCode::kInvalidInput, std::move(message), std::move(fix), std::move(name));
}

std::vector<std::string_view> split(std::string_view s, char sep) {
  std::vector<std::string_view> out;
  while (true) {
    auto p = s.find(sep);
    out.push_back(s.substr(0, p));
    if (p == std::string_view::npos) break;
    s.remove_prefix(p + 1);
  }
  return out;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

struct Algo {
  ike::TransformType type;
  std::uint16_t id;
  std::uint16_t key_bits = 0;  ///< encryption only
  bool aead = false;
};

const std::map<std::string, Algo, std::less<>>& algorithms() {
  using T = ike::TransformType;
  static const std::map<std::string, Algo, std::less<>> m = {
      {"aes128", {T::kEncr, tid::kEncrAesCbc, 128}},
      {"aes192", {T::kEncr, tid::kEncrAesCbc, 192}},
      {"aes256", {T::kEncr, tid::kEncrAesCbc, 256}},
      {"aes128gcm16", {T::kEncr, tid::kEncrAesGcm16, 128, true}},
      {"aes192gcm16", {T::kEncr, tid::kEncrAesGcm16, 192, true}},
      {"aes256gcm16", {T::kEncr, tid::kEncrAesGcm16, 256, true}},
      {"aes128gcm128", {T::kEncr, tid::kEncrAesGcm16, 128, true}},
      {"aes192gcm128", {T::kEncr, tid::kEncrAesGcm16, 192, true}},
      {"aes256gcm128", {T::kEncr, tid::kEncrAesGcm16, 256, true}},
      {"sha256", {T::kInteg, tid::kIntegHmacSha256_128}},
      {"sha2_256", {T::kInteg, tid::kIntegHmacSha256_128}},
      {"sha384", {T::kInteg, tid::kIntegHmacSha384_192}},
      {"sha2_384", {T::kInteg, tid::kIntegHmacSha384_192}},
      {"sha512", {T::kInteg, tid::kIntegHmacSha512_256}},
      {"sha2_512", {T::kInteg, tid::kIntegHmacSha512_256}},
      {"prfsha256", {T::kPrf, tid::kPrfHmacSha256}},
      {"prfsha384", {T::kPrf, tid::kPrfHmacSha384}},
      {"prfsha512", {T::kPrf, tid::kPrfHmacSha512}},
      {"ecp256", {T::kKe, tid::kGroupEcp256}},
      {"ecp384", {T::kKe, tid::kGroupEcp384}},
      {"ecp521", {T::kKe, tid::kGroupEcp521}},
      {"curve25519", {T::kKe, tid::kGroupCurve25519}},
      {"x25519", {T::kKe, tid::kGroupCurve25519}},
      {"esn", {T::kEsn, tid::kEsnYes}},
      {"noesn", {T::kEsn, tid::kEsnNo}},
  };
  return m;
}

std::uint16_t prf_for_integ(std::uint16_t integ) {
  switch (integ) {
    case tid::kIntegHmacSha256_128:
      return tid::kPrfHmacSha256;
    case tid::kIntegHmacSha512_256:
      return tid::kPrfHmacSha512;
    default:
      return tid::kPrfHmacSha384;
  }
}

IpAddress last_address(const Prefix& p) {
  IpAddress a = p.addr;
  const unsigned width = a.max_prefix();
  for (unsigned bit = p.len; bit < width; ++bit) a.bytes[bit / 8] |= static_cast<std::uint8_t>(0x80u >> (bit % 8));
  return a;
}

Result<std::vector<ike::TsRange>> parse_ts(const std::vector<std::string>& list, Family family,
                                           std::string_view field) {
  const std::string opt = "--" + std::string(field);
  if (list.empty())
    return invalid(opt + " is missing: at least one prefix is needed",
                   "give the networks of that side of the tunnel, e.g. " + opt + " 198.51.100.0/24");
  std::vector<ike::TsRange> out;
  for (const auto& item : list) {
    auto p = Prefix::parse(trim(item), field);
    if (!p.ok())
      return invalid(opt + ": '" + item + "' is not a prefix (" + p.error().message() + ")",
                     "write an address or address/length, e.g. 198.51.100.0/24 or 2001:db8::/64");
    if (p->addr.family != family)
      return invalid(opt + ": " + p->to_string() + " is not of the peer's address family",
                     "use prefixes of the same family (IPv4 or IPv6) as --remote");
    ike::TsRange r;
    r.start = p->addr;
    r.end = last_address(*p);
    if (std::find(out.begin(), out.end(), r) != out.end())
      return invalid(opt + ": " + p->to_string() + " is given twice", "name each prefix once");
    out.push_back(r);
  }
  return out;
}

Result<ike::IdPayload> dn_id(std::string_view text, std::string_view field) {
  auto bad = [&](std::string why) {
    return invalid(std::string(field) + ": '" + std::string(text) + "' is not a distinguished name: " + why,
                   "write it as RFC 2253 text like `storcrypt cert show` prints it, e.g. dn:CN=node2,O=Example");
  };
  if (text.find_first_of("\\\"+") != std::string_view::npos) return bad("escapes, quotes and '+' are not supported");
  auto parts = split(text, ',');
  std::unique_ptr<X509_NAME, decltype(&X509_NAME_free)> name(X509_NAME_new(), X509_NAME_free);
  if (!name) return Error(ErrorCode::kInternal, "out of memory");
  // RFC 2253 text names the most specific RDN first; DER holds it last.
  for (auto it = parts.rbegin(); it != parts.rend(); ++it) {
    auto rdn = trim(*it);
    auto eq = rdn.find('=');
    if (eq == std::string_view::npos || eq == 0 || eq + 1 == rdn.size())
      return bad("'" + std::string(rdn) + "' is not TYPE=value");
    std::string type(trim(rdn.substr(0, eq))), value(trim(rdn.substr(eq + 1)));
    if (OBJ_txt2nid(type.c_str()) == NID_undef) return bad("unknown attribute type '" + type + "'");
    if (X509_NAME_add_entry_by_txt(name.get(), type.c_str(), MBSTRING_UTF8,
                                   reinterpret_cast<const unsigned char*>(value.c_str()), -1, -1, 0) != 1)
      return bad("attribute '" + type + "' does not take '" + value + "'");
  }
  unsigned char* der = nullptr;
  int n = i2d_X509_NAME(name.get(), &der);
  if (n <= 0) return bad("it cannot be encoded");
  ike::IdPayload id;
  id.id_type = ike::id_type::kDerAsn1Dn;
  id.data.assign(der, der + n);
  OPENSSL_free(der);
  return id;
}

}  // namespace

json IkePeerSpec::to_json() const {
  return json{{"name", name},
              {"remote", remote},
              {"local", local},
              {"local_ts", local_ts},
              {"remote_ts", remote_ts},
              {"id", id},
              {"remote_id", remote_id},
              {"ike_proposal", ike_proposal},
              {"esp_proposal", esp_proposal},
              {"start", start},
              {"dpd_action", dpd_action}};
}

Result<IkePeerSpec> IkePeerSpec::from_json(const json& j) {
  try {
    IkePeerSpec s;
    s.name = j.at("name").get<std::string>();
    s.remote = j.at("remote").get<std::string>();
    s.local = j.value("local", "");
    s.local_ts = j.at("local_ts").get<std::vector<std::string>>();
    s.remote_ts = j.at("remote_ts").get<std::vector<std::string>>();
    s.id = j.value("id", "");
    s.remote_id = j.value("remote_id", "");
    s.ike_proposal = j.value("ike_proposal", std::string(kDefaultIkeProposal));
    s.esp_proposal = j.value("esp_proposal", std::string(kDefaultEspProposal));
    s.start = j.value("start", "none");
    s.dpd_action = j.value("dpd_action", "none");
    return s;
  } catch (const json::exception& e) {
    return Error(ErrorCode::kInternal, std::string("stored IKE peer is malformed: ") + e.what(),
                 "remove the peer (`storcrypt ike peer remove NAME`) and add it again");
  }
}

Status check_peer_name(std::string_view name) {
  auto ok_char = [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '_' ||
           c == '-';
  };
  if (name.empty() || name.size() > 64 || !std::all_of(name.begin(), name.end(), ok_char) || name.front() == '.' ||
      name.front() == '_' || name.front() == '-')
    return invalid("peer name '" + std::string(name) + "' is not valid",
                   "use 1 to 64 letters, digits, '.', '_' or '-', starting with a letter or digit",
                   "xIkePeerBadName");
  return ok_status();
}

Result<std::vector<ike::Proposal>> parse_proposals(std::string_view text, ike::ProtocolId protocol) {
  const bool is_ike = protocol == ike::ProtocolId::kIke;
  const std::string what = is_ike ? "IKE proposal" : "ESP proposal";
  const std::string example = is_ike ? kDefaultIkeProposal : kDefaultEspProposal;
  const std::string known = is_ike ? "aes128 aes192 aes256 aes128gcm16 aes192gcm16 aes256gcm16 sha256 sha384 sha512 "
                                     "prfsha256 prfsha384 prfsha512 ecp256 ecp384 ecp521 curve25519"
                                   : "aes128 aes192 aes256 aes128gcm16 aes256gcm16 sha256 sha384 sha512 "
                                     "ecp256 ecp384 ecp521 curve25519 esn noesn";
  auto bad = [&](const std::string& proposal, const std::string& why) {
    return invalid(what + " '" + proposal + "': " + why,
                   "write algorithms joined by '-', proposals by ',' (strongSwan syntax), e.g. " + example +
                       "; known: " + known,
                   "xIkeBadProposal");
  };
  if (trim(text).empty()) return bad(std::string(text), "empty");
  std::vector<ike::Proposal> out;
  std::uint8_t number = 0;
  for (auto ptext : split(text, ',')) {
    std::string ps(trim(ptext));
    if (ps.empty()) return bad(std::string(text), "an empty proposal between commas");
    if (out.size() >= 16) return bad(std::string(text), "more than 16 proposals");
    ike::Proposal p;
    p.protocol = protocol;
    p.number = ++number;
    std::set<std::string> seen;
    std::vector<Algo> encr, integ, prf, ke, esn;
    for (auto tok : split(ps, '-')) {
      std::string t(tok);
      std::transform(t.begin(), t.end(), t.begin(), [](unsigned char c) { return std::tolower(c); });
      auto it = algorithms().find(t);
      if (t.empty()) return bad(ps, "an empty algorithm between dashes");
      if (it == algorithms().end()) return bad(ps, "unknown or unsupported algorithm '" + t + "'");
      if (!seen.insert(t).second) return bad(ps, "'" + t + "' is given twice");
      const Algo& a = it->second;
      switch (a.type) {
        case ike::TransformType::kEncr:
          encr.push_back(a);
          break;
        case ike::TransformType::kInteg:
          integ.push_back(a);
          break;
        case ike::TransformType::kPrf:
          if (!is_ike) return bad(ps, "'" + t + "' is a PRF: ESP has none");
          prf.push_back(a);
          break;
        case ike::TransformType::kKe:
          ke.push_back(a);
          break;
        case ike::TransformType::kEsn:
          if (is_ike) return bad(ps, "'" + t + "' is for ESP proposals only");
          esn.push_back(a);
          break;
      }
    }
    if (encr.empty()) return bad(ps, "no encryption algorithm (e.g. aes256gcm16 or aes256)");
    const bool aead = encr.front().aead;
    for (const Algo& e : encr)
      if (e.aead != aead) return bad(ps, "mixes AES-GCM with AES-CBC; make them separate proposals");
    if (aead && !integ.empty()) return bad(ps, "AES-GCM protects integrity itself: drop the integrity algorithm");
    if (!aead && integ.empty()) return bad(ps, "AES-CBC needs an integrity algorithm (e.g. sha384)");
    if (!is_ike)
      for (const Algo& e : encr)
        if (e.aead && e.key_bits == 192)
          return bad(ps, "aes192gcm16 has no kernel mapping for ESP; use aes128gcm16 or aes256gcm16");
    if (is_ike) {
      if (ke.empty()) return bad(ps, "no key exchange group (e.g. ecp384)");
      if (prf.empty()) {
        if (aead) return bad(ps, "AES-GCM needs a PRF (e.g. prfsha384)");
        for (const Algo& i : integ) {
          Algo a{ike::TransformType::kPrf, prf_for_integ(i.id)};
          if (std::none_of(prf.begin(), prf.end(), [&](const Algo& x) { return x.id == a.id; })) prf.push_back(a);
        }
      }
    }
    if (!is_ike && esn.empty()) esn.push_back({ike::TransformType::kEsn, tid::kEsnNo});
    for (const Algo& a : encr) p.transforms.push_back(ike::Transform::make(a.type, a.id, a.key_bits));
    for (const auto* group : {&integ, &prf, &ke, &esn})
      for (const Algo& a : *group) p.transforms.push_back(ike::Transform::make(a.type, a.id));
    out.push_back(std::move(p));
  }
  return out;
}

Result<ike::IdPayload> parse_id(std::string_view text, bool allow_dn, std::string_view field) {
  const std::string f(field);
  const std::string forms = allow_dn ? "fqdn:NAME, ip:ADDRESS or dn:CN=...,O=..." : "fqdn:NAME or ip:ADDRESS";
  auto colon = text.find(':');
  std::string kind(colon == std::string_view::npos ? text : text.substr(0, colon));
  std::string_view value = colon == std::string_view::npos ? std::string_view() : text.substr(colon + 1);
  if (kind == "fqdn") {
    auto ok = [](char c) {
      return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '-' ||
             c == '_' || c == '*';
    };
    if (value.empty() || value.size() > 253 || !std::all_of(value.begin(), value.end(), ok))
      return invalid(f + ": '" + std::string(text) + "' is not a host name", "write fqdn: and a DNS name of the certificate, e.g. fqdn:node1.example.com");
    return ike::id_fqdn(value);
  }
  if (kind == "ip") {
    auto a = IpAddress::parse(value, field);
    if (!a.ok())
      return invalid(f + ": '" + std::string(text) + "' is not an IP address", "write ip: and an IP address of the certificate, e.g. ip:192.0.2.1");
    return ike::id_ip(*a);
  }
  if (kind == "dn" && allow_dn) return dn_id(value, field);
  return invalid(f + ": '" + std::string(text) + "' is not an ID", "write " + forms +
                     (allow_dn ? "" : " (a SAN of our certificate), or leave it out to send the certificate's subject DN"));
}

Result<ResolvedPeer> resolve_peer(const IkePeerSpec& s) {
  STORCRYPT_TRY(check_peer_name(s.name));
  ResolvedPeer r;
  if (s.remote.empty())
    return invalid("--remote is missing", "give the peer's IP address, e.g. --remote 192.0.2.2");
  auto remote = IpAddress::parse(s.remote, "remote");
  if (!remote.ok() || remote->is_any())
    return invalid("--remote: '" + s.remote + "' is not a unicast IP address",
                   "give the peer's IP address, e.g. --remote 192.0.2.2");
  r.remote = *remote;
  if (s.local.empty()) {
    r.local = IpAddress{};
    r.local.family = r.remote.family;
  } else {
    auto local = IpAddress::parse(s.local, "local");
    if (!local.ok())
      return invalid("--local: '" + s.local + "' is not an IP address",
                     "give one of this node's addresses, or leave --local out");
    if (local->family != r.remote.family)
      return invalid("--local " + s.local + " and --remote " + s.remote + " are of different address families",
                     "use IPv4 for both or IPv6 for both");
    if (*local == r.remote)
      return invalid("--local and --remote are the same address", "--remote is the peer's address");
    r.local = *local;
  }
  STORCRYPT_ASSIGN_OR_RETURN(r.local_ts, parse_ts(s.local_ts, r.remote.family, "local-ts"));
  STORCRYPT_ASSIGN_OR_RETURN(r.remote_ts, parse_ts(s.remote_ts, r.remote.family, "remote-ts"));
  if (!s.id.empty() && s.id != "dn") {
    STORCRYPT_ASSIGN_OR_RETURN(auto id, parse_id(s.id, false, "--id"));
    r.local_id = id;
  }
  if (!s.remote_id.empty()) {
    STORCRYPT_ASSIGN_OR_RETURN(auto id, parse_id(s.remote_id, true, "--remote-id"));
    r.remote_id = id;
  }
  STORCRYPT_ASSIGN_OR_RETURN(r.ike_proposals, parse_proposals(s.ike_proposal, ike::ProtocolId::kIke));
  STORCRYPT_ASSIGN_OR_RETURN(r.esp_proposals, parse_proposals(s.esp_proposal, ike::ProtocolId::kEsp));
  if (s.start != "none" && s.start != "start")
    return invalid("--start: '" + s.start + "' is not none or start",
                   "--start start brings the peer up when storcryptd starts; none (the default) waits for `ike peer up`");
  if (s.dpd_action != "none" && s.dpd_action != "restart")
    return invalid("--dpd-action: '" + s.dpd_action + "' is not none or restart",
                   "--dpd-action restart brings a peer found dead up again (retried every 30 s); none (the default) "
                   "leaves it down until `ike peer up`");
  (void)kPeerFix;
  return r;
}

std::string suite_name(const ike::Suite& s) {
  std::string out;
  auto add = [&](const std::string& t) { out += (out.empty() ? "" : "-") + t; };
  const std::string bits = std::to_string(s.encr_key_bits);
  switch (s.encr) {
    case tid::kEncrAesCbc:
      add("aes" + bits);
      break;
    case tid::kEncrAesGcm16:
      add("aes" + bits + "gcm16");
      break;
    default:
      add("encr" + std::to_string(s.encr));
  }
  const std::pair<ike::TransformType, std::uint16_t> wanted[] = {
      {ike::TransformType::kInteg, s.integ}, {ike::TransformType::kPrf, s.prf}, {ike::TransformType::kKe, s.ke}};
  for (const auto& [type, id] : wanted) {
    if (id == 0) continue;
    for (const auto& [name, a] : algorithms()) {
      if (name.find('_') != std::string::npos || name == "x25519") continue;  // aliases
      if (a.type == type && a.id == id) add(name);
    }
  }
  if (s.esn) add(*s.esn == tid::kEsnYes ? "esn" : "noesn");
  return out;
}

std::string ts_text(const ike::TsRange& r) {
  std::string range;
  for (unsigned len = 0; len <= r.start.max_prefix(); ++len) {
    auto p = Prefix::make(r.start, len);
    if (p.ok() && p->addr == r.start && last_address(*p) == r.end) {
      range = p->to_string();
      break;
    }
  }
  if (range.empty()) range = r.start.to_string() + "-" + r.end.to_string();
  if (r.ip_protocol == 0 && r.start_port == 0 && r.end_port == 65535) return range;
  return range + "[" + std::to_string(r.ip_protocol) + "/" + std::to_string(r.start_port) + "-" +
         std::to_string(r.end_port) + "]";
}

}  // namespace storcrypt::controller
