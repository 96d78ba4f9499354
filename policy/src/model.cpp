#include "storcrypt/policy/model.h"

#include <algorithm>
#include <array>
#include <charconv>
#include <utility>

namespace storcrypt::policy {
namespace {

bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           auto l = [](char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c + 32) : c; };
           return l(x) == l(y);
         });
}

template <typename E, std::size_t N>
Result<E> parse_enum(std::string_view s, const std::array<std::pair<std::string_view, E>, N>& table,
                     std::string_view field) {
  for (const auto& [name, value] : table) {
    if (iequals(s, name)) return value;
  }
  std::string choices;
  for (const auto& [name, value] : table) {
    if (!choices.empty()) choices += ", ";
    choices += name;
  }
  return Error(ErrorCode::kInvalidInput, std::string(field) + ": '" + std::string(s) + "' is not recognised",
               "use one of: " + choices);
}

constexpr std::array<std::pair<std::string_view, Direction>, 4> kDirections{{{"inbound", Direction::kInbound},
                                                                             {"outbound", Direction::kOutbound},
                                                                             {"in", Direction::kInbound},
                                                                             {"out", Direction::kOutbound}}};
constexpr std::array<std::pair<std::string_view, Disposition>, 3> kDispositions{
    {{"BYPASS", Disposition::kBypass}, {"DISCARD", Disposition::kDiscard}, {"PROTECT", Disposition::kProtect}}};
constexpr std::array<std::pair<std::string_view, Service>, 4> kServices{
    {{"AH", Service::kAh},
     {"ESP-INTEGRITY", Service::kEspIntegrity},
     {"ESP-CONFIDENTIALITY", Service::kEspConfidentiality},
     {"ESP-INTEGRITY-CONFIDENTIALITY", Service::kEspIntegrityConfidentiality}}};
constexpr std::array<std::pair<std::string_view, Mode>, 2> kModes{
    {{"transport", Mode::kTransport}, {"tunnel", Mode::kTunnel}}};
constexpr std::array<std::pair<std::string_view, Algorithm>, 6> kAlgorithms{
    {{"HMAC-SHA1-96", Algorithm::kHmacSha1_96},
     {"HMAC-SHA-256-128", Algorithm::kHmacSha256_128},
     {"HMAC-SHA-512-256", Algorithm::kHmacSha512_256},
     {"AES-CBC-128", Algorithm::kAesCbc128},
     {"AES-CBC-256", Algorithm::kAesCbc256},
     {"AES-GCM-256", Algorithm::kAesGcm256}}};
constexpr std::array<std::pair<std::string_view, DefaultDisposition>, 4> kDefaults{
    {{"IPv6Only", DefaultDisposition::kIPv6Only},
     {"BYPASS", DefaultDisposition::kBypass},
     {"DENY", DefaultDisposition::kDeny},
     {"DENYALL", DefaultDisposition::kDenyAll}}};
constexpr std::array<std::pair<std::string_view, std::uint8_t>, 7> kProtocols{{{"TCP", proto::kTcp},
                                                                               {"UDP", proto::kUdp},
                                                                               {"ICMP", proto::kIcmp},
                                                                               {"ICMPv6", proto::kIcmpv6},
                                                                               {"SCTP", proto::kSctp},
                                                                               {"ESP", proto::kEsp},
                                                                               {"AH", proto::kAh}}};

template <typename E, std::size_t N>
std::string_view enum_name(E v, const std::array<std::pair<std::string_view, E>, N>& table) {
  for (const auto& [name, value] : table) {
    if (value == v) return name;
  }
  return "?";
}

Error invalid(const std::string& policy, std::string what, std::string fix) {
  return Error(ErrorCode::kInvalidInput, "policy '" + policy + "': " + std::move(what), std::move(fix));
}

bool valid_name(std::string_view n) {
  if (n.empty() || n.size() > 64) return false;
  return std::all_of(n.begin(), n.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '_' ||
           c == '.';
  });
}

}  // namespace

bool protocol_has_ports(std::uint8_t p) { return p == proto::kTcp || p == proto::kUdp || p == proto::kSctp; }
bool protocol_is_icmp(std::uint8_t p) { return p == proto::kIcmp || p == proto::kIcmpv6; }

std::string_view to_string(Direction d) { return d == Direction::kInbound ? "inbound" : "outbound"; }
std::string_view to_string(Disposition d) { return enum_name(d, kDispositions); }
std::string_view to_string(Service s) { return enum_name(s, kServices); }
std::string_view to_string(Mode m) { return enum_name(m, kModes); }
std::string_view to_string(Algorithm a) { return enum_name(a, kAlgorithms); }
std::string_view to_string(DefaultDisposition d) { return enum_name(d, kDefaults); }
Result<Direction> parse_direction(std::string_view s) { return parse_enum(s, kDirections, "Direction"); }
Result<Disposition> parse_disposition(std::string_view s) { return parse_enum(s, kDispositions, "Action"); }
Result<Service> parse_service(std::string_view s) { return parse_enum(s, kServices, "Service"); }
Result<Mode> parse_mode(std::string_view s) { return parse_enum(s, kModes, "Mode"); }
Result<Algorithm> parse_algorithm(std::string_view s) { return parse_enum(s, kAlgorithms, "Algorithm"); }
Result<DefaultDisposition> parse_default_disposition(std::string_view s) {
  return parse_enum(s, kDefaults, "default disposition");
}

Result<std::optional<std::uint8_t>> parse_protocol(std::string_view s) {
  if (iequals(s, "ANY")) return std::optional<std::uint8_t>{};
  for (const auto& [name, value] : kProtocols) {
    if (iequals(s, name)) return std::optional<std::uint8_t>{value};
  }
  unsigned v = 0;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (s.empty() || ec != std::errc{} || p != s.data() + s.size() || v > 255) {
    return Error(ErrorCode::kInvalidInput, "Protocol: '" + std::string(s) + "' is not recognised",
                 "use ANY, TCP, UDP, ICMP, ICMPv6, SCTP, ESP, AH or a number from 0 to 255");
  }
  if (v == 0) return std::optional<std::uint8_t>{};  // the kernel treats protocol 0 as "any"
  return std::optional<std::uint8_t>{static_cast<std::uint8_t>(v)};
}

std::string protocol_to_string(std::optional<std::uint8_t> p) {
  if (!p) return "ANY";
  for (const auto& [name, value] : kProtocols) {
    if (value == *p) return std::string(name);
  }
  return std::to_string(*p);
}

std::size_t algorithm_key_bytes(Algorithm a) {
  switch (a) {
    case Algorithm::kHmacSha1_96:
      return 20;
    case Algorithm::kHmacSha256_128:
      return 32;
    case Algorithm::kHmacSha512_256:
      return 64;
    case Algorithm::kAesCbc128:
      return 16;
    case Algorithm::kAesCbc256:
      return 32;
    case Algorithm::kAesGcm256:
      return 36;  // RFC 4106: 32-byte key + 4-byte salt
  }
  return 0;
}

bool algorithm_is_integrity(Algorithm a) {
  return a == Algorithm::kHmacSha1_96 || a == Algorithm::kHmacSha256_128 || a == Algorithm::kHmacSha512_256;
}
bool algorithm_is_aead(Algorithm a) { return a == Algorithm::kAesGcm256; }

std::vector<Family> selector_families(const Selector& s) {
  std::vector<Family> out;
  for (Family f : {Family::kIPv4, Family::kIPv6}) {
    if (s.local.family() && *s.local.family() != f) continue;
    if (s.remote.family() && *s.remote.family() != f) continue;
    if (s.protocol == proto::kIcmp && f != Family::kIPv4) continue;
    if (s.protocol == proto::kIcmpv6 && f != Family::kIPv6) continue;
    out.push_back(f);
  }
  return out;
}

bool matches(const Policy& p, const Packet& pkt) {
  if (p.direction != pkt.direction) return false;
  if (pkt.local.family != pkt.remote.family) return false;
  const Selector& s = p.selector;
  const auto fams = selector_families(s);
  if (std::find(fams.begin(), fams.end(), pkt.local.family) == fams.end()) return false;
  if (!s.local.matches(pkt.local) || !s.remote.matches(pkt.remote)) return false;
  if (!s.protocol) return true;
  if (*s.protocol != pkt.protocol) return false;
  return s.local_ports.matches(pkt.local_port) && s.remote_ports.matches(pkt.remote_port);
}

Status check_policy(const Policy& p) {
  if (!valid_name(p.name)) {
    return Error(ErrorCode::kInvalidInput, "policy name '" + p.name + "' is not valid",
                 "use 1-64 characters from A-Z a-z 0-9 . _ -");
  }
  const Selector& s = p.selector;
  if (selector_families(s).empty()) {
    return invalid(p.name, "local address, remote address and protocol belong to different address families",
                   "use addresses of one family; ICMP goes with IPv4 and ICMPv6 with IPv6");
  }
  const bool ports = s.protocol && protocol_has_ports(*s.protocol);
  const bool icmp = s.protocol && protocol_is_icmp(*s.protocol);
  if (!ports && !icmp && (!s.local_ports.is_any() || !s.remote_ports.is_any())) {
    return invalid(p.name, "ports are given but protocol " + protocol_to_string(s.protocol) + " has no ports",
                   "set Protocol to TCP, UDP or SCTP, or set the ports to ANY");
  }
  if (icmp) {
    for (const PortSpec* ps : {&s.local_ports, &s.remote_ports}) {
      for (const PortRange& r : ps->ranges) {
        if (r.hi > 255) {
          return invalid(p.name, "ICMP types and codes go from 0 to 255", "use IcmpType/IcmpCode values 0-255");
        }
      }
    }
  }
  if (p.disposition != Disposition::kProtect) {
    if (p.protection) {
      return invalid(p.name, "IPsec parameters are given but the action is " + std::string(to_string(p.disposition)),
                     "set Action = PROTECT or remove the IPsec parameters");
    }
    return ok_status();
  }
  if (!p.protection) {
    return invalid(p.name, "action PROTECT needs Service, Mode, SPI and keys", "add the IPsec parameters");
  }
  const Protection& pr = *p.protection;
  if (pr.spi < 256) {
    return invalid(p.name, "SPI " + std::to_string(pr.spi) + " is reserved (0-255)",
                   "choose an SPI from 256 (0x100) to 4294967295");
  }
  if (pr.mode == Mode::kTunnel) {
    if (!pr.local_endpoint || !pr.remote_endpoint || pr.local_endpoint->family != pr.remote_endpoint->family) {
      return invalid(p.name, "tunnel mode needs LocalEndpoint and RemoteEndpoint of one address family",
                     "set both tunnel endpoint addresses");
    }
  } else {
    if (pr.local_endpoint || pr.remote_endpoint) {
      return invalid(p.name, "tunnel endpoints are given in transport mode",
                     "remove LocalEndpoint/RemoteEndpoint or set Mode = tunnel");
    }
    // LocalAddress ANY stands for this node's own addresses of the remote's
    // family (the compiler installs the inbound SA on each of them).
    if ((s.local.kind != AddressSpec::Kind::kSingle && s.local.kind != AddressSpec::Kind::kAny) ||
        s.remote.kind != AddressSpec::Kind::kSingle) {
      return invalid(p.name,
                     "transport mode with manual keys needs one local and one remote address (LocalAddress may "
                     "be ANY: this node's addresses)",
                     "give single addresses (LocalAddress may be ANY), or use Mode = tunnel with endpoints for "
                     "prefixes, ranges and named address selectors");
    }
  }
  const bool needs_int = pr.service != Service::kEspConfidentiality;
  const bool needs_enc =
      pr.service == Service::kEspConfidentiality || pr.service == Service::kEspIntegrityConfidentiality;
  if (pr.encryption && algorithm_is_integrity(*pr.encryption)) {
    return invalid(p.name, std::string(to_string(*pr.encryption)) + " is not an encryption algorithm",
                   "use AES-CBC-128, AES-CBC-256 or AES-GCM-256");
  }
  if (pr.integrity && !algorithm_is_integrity(*pr.integrity)) {
    return invalid(p.name, std::string(to_string(*pr.integrity)) + " is not an integrity algorithm",
                   "use HMAC-SHA1-96, HMAC-SHA-256-128 or HMAC-SHA-512-256");
  }
  const bool aead = pr.encryption && algorithm_is_aead(*pr.encryption);
  if (needs_enc && (!pr.encryption || pr.encryption_key.empty())) {
    return invalid(p.name, "service " + std::string(to_string(pr.service)) + " needs an encryption algorithm and key",
                   "set EncryptionAlgorithm and EncryptionKey");
  }
  if (!needs_enc && pr.encryption) {
    return invalid(p.name, "service " + std::string(to_string(pr.service)) + " does not encrypt",
                   "remove EncryptionAlgorithm/EncryptionKey or choose ESP-INTEGRITY-CONFIDENTIALITY");
  }
  if (aead && pr.service != Service::kEspIntegrityConfidentiality) {
    return invalid(p.name, "AES-GCM-256 provides integrity and confidentiality",
                   "use Service = ESP-INTEGRITY-CONFIDENTIALITY with AES-GCM-256");
  }
  if (aead && pr.integrity) {
    return invalid(p.name, "AES-GCM-256 already provides integrity", "remove IntegrityAlgorithm/IntegrityKey");
  }
  if (needs_int && !aead && (!pr.integrity || pr.integrity_key.empty())) {
    return invalid(p.name, "service " + std::string(to_string(pr.service)) + " needs an integrity algorithm and key",
                   "set IntegrityAlgorithm and IntegrityKey");
  }
  if (!needs_int && pr.integrity) {
    return invalid(p.name, "service ESP-CONFIDENTIALITY has no integrity algorithm",
                   "remove IntegrityAlgorithm/IntegrityKey or choose ESP-INTEGRITY-CONFIDENTIALITY");
  }
  return ok_status();
}

const Policy* PolicyList::find(std::string_view name) const {
  auto i = index_of(name);
  return i ? &policies_[*i] : nullptr;
}

std::optional<std::size_t> PolicyList::index_of(std::string_view name) const {
  for (std::size_t i = 0; i < policies_.size(); ++i) {
    if (policies_[i].name == name) return i;
  }
  return std::nullopt;
}

Status PolicyList::check_new(const Policy& p, std::string_view replacing) const {
  STORCRYPT_TRY(check_policy(p));
  if (p.name != replacing && index_of(p.name)) {
    return Error(ErrorCode::kConflict, "a policy named '" + p.name + "' already exists", "choose another name", "");
  }
  return ok_status();
}

static Error not_found(std::string_view name) {
  return Error(ErrorCode::kNotFound, "no policy named '" + std::string(name) + "'", "list the policies to see names");
}

Status PolicyList::add(Policy p) { return insert(policies_.size(), std::move(p)); }

Status PolicyList::insert(std::size_t pos, Policy p) {
  if (pos > policies_.size()) {
    return Error(ErrorCode::kInvalidInput,
                 "position " + std::to_string(pos) + " is past the end of the list (" +
                     std::to_string(policies_.size()) + " policies)",
                 "give a position from 0 to " + std::to_string(policies_.size()));
  }
  STORCRYPT_TRY(check_new(p, {}));
  policies_.insert(policies_.begin() + static_cast<std::ptrdiff_t>(pos), std::move(p));
  edited();
  return ok_status();
}

Status PolicyList::move(std::string_view name, std::size_t pos) {
  auto i = index_of(name);
  if (!i) return not_found(name);
  if (pos >= policies_.size()) {
    return Error(ErrorCode::kInvalidInput, "position " + std::to_string(pos) + " is past the end of the list",
                 "give a position from 0 to " + std::to_string(policies_.size() - 1));
  }
  Policy p = std::move(policies_[*i]);
  policies_.erase(policies_.begin() + static_cast<std::ptrdiff_t>(*i));
  policies_.insert(policies_.begin() + static_cast<std::ptrdiff_t>(pos), std::move(p));
  edited();
  return ok_status();
}

Status PolicyList::clone(std::string_view name, std::string new_name) {
  auto i = index_of(name);
  if (!i) return not_found(name);
  Policy copy = policies_[*i];
  copy.name = std::move(new_name);
  return insert(*i + 1, std::move(copy));
}

Status PolicyList::modify(std::string_view name, Policy p) {
  auto i = index_of(name);
  if (!i) return not_found(name);
  STORCRYPT_TRY(check_new(p, name));
  policies_[*i] = std::move(p);
  edited();
  return ok_status();
}

Status PolicyList::remove(std::string_view name) {
  auto i = index_of(name);
  if (!i) return not_found(name);
  policies_.erase(policies_.begin() + static_cast<std::ptrdiff_t>(*i));
  edited();
  return ok_status();
}

}  // namespace storcrypt::policy

namespace storcrypt::policy {

AddressSpec resolve_address(const AddressSpec& spec, const AddressSets& sets) {
  if (!spec.is_named()) return spec;
  AddressSpec out = spec;
  auto it = sets.find(spec.name);
  out.members = it == sets.end() ? std::vector<AddressSpec>{} : it->second;
  return out;
}

Status PolicyList::add_addresses(const std::string& name, const std::vector<AddressSpec>& entries) {
  if (!valid_address_name(name)) {
    return Error(ErrorCode::kInvalidInput, "address selector name '" + name + "' is not valid",
                 "start with a letter, then up to 63 letters, digits, '_' or '-' (not ANY)", "xAddressInvalid");
  }
  if (entries.empty()) {
    return Error(ErrorCode::kInvalidInput, "address selector '" + name + "' needs at least one entry",
                 "give addresses, prefixes (a/n) or ranges (a-b)", "xAddressInvalid");
  }
  for (const AddressSpec& e : entries) {
    if (e.is_any() || e.is_named()) {
      return Error(ErrorCode::kInvalidInput,
                   "address selector '" + name + "': entry '" + e.to_string() +
                       "' is not an address, a prefix or a range",
                   "list addresses (192.0.2.1), prefixes (192.0.2.0/24) or ranges (192.0.2.10-192.0.2.20); "
                   "ANY and other names cannot be entries",
                   "xAddressInvalid");
    }
  }
  auto& list = addresses_[name];
  for (const AddressSpec& e : entries)
    if (std::find(list.begin(), list.end(), e) == list.end()) list.push_back(e);
  edited();
  return ok_status();
}

std::vector<std::string> PolicyList::users_of_addresses(std::string_view name) const {
  std::vector<std::string> out;
  for (const Policy& p : policies_) {
    if ((p.selector.local.is_named() && p.selector.local.name == name) ||
        (p.selector.remote.is_named() && p.selector.remote.name == name))
      out.push_back(p.name);
  }
  return out;
}

Status PolicyList::remove_addresses(std::string_view name) {
  auto it = addresses_.find(std::string(name));
  if (it == addresses_.end()) {
    return Error(ErrorCode::kNotFound, "no address selector named '" + std::string(name) + "'",
                 "see 'storcrypt address list'", "xAddressNotFound");
  }
  auto users = users_of_addresses(name);
  if (!users.empty()) {
    std::string u;
    for (const auto& x : users) u += (u.empty() ? "'" : ", '") + x + "'";
    return Error(ErrorCode::kConflict, "address selector '" + std::string(name) + "' is used by policy " + u,
                 "change or remove those policies first", "xAddressInUse");
  }
  addresses_.erase(it);
  edited();
  return ok_status();
}

std::vector<std::pair<std::string, std::string>> PolicyList::undefined_addresses() const {
  std::vector<std::pair<std::string, std::string>> out;
  for (const Policy& p : policies_) {
    for (const AddressSpec* a : {&p.selector.local, &p.selector.remote}) {
      if (a->is_named() && !addresses_.count(a->name)) out.emplace_back(p.name, a->name);
    }
  }
  return out;
}

Result<PolicyList> PolicyList::resolved() const {
  if (auto u = undefined_addresses(); !u.empty()) {
    return Error(ErrorCode::kInvalidInput,
                 "policy '" + u.front().first + "': address selector '" + u.front().second + "' is not defined",
                 "define it with 'storcrypt address add " + u.front().second +
                     " ENTRY...' (or in the policy file: 'Address = " + u.front().second +
                     "' and 'Entries = ...'), or use an address",
                 "xAddressUndefined");
  }
  PolicyList out = *this;
  out.edited();
  for (Policy& p : out.policies_) {
    p.selector.local = resolve_address(p.selector.local, addresses_);
    p.selector.remote = resolve_address(p.selector.remote, addresses_);
  }
  return out;
}

}  // namespace storcrypt::policy
