#include "storcrypt/policy/text.h"

#include <algorithm>
#include <charconv>
#include <cstdio>
#include <map>
#include <sstream>
#include <tuple>

namespace storcrypt::policy {
namespace {

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t' || s.front() == '\r')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r')) s.remove_suffix(1);
  return s;
}

struct Field {
  std::string value;
  int line = 0;
};
using Block = std::map<std::string, Field>;

/// Fields every policy may carry; PROTECT policies add protection_fields().
constexpr std::string_view kSelectorFields[] = {"Name",      "Direction",  "LocalAddress", "RemoteAddress", "Protocol",
                                                "LocalPort", "RemotePort", "IcmpType",     "IcmpCode",      "Action"};

Error at(int line, const Error& e) {
  return Error(e.code(), "line " + std::to_string(line) + ": " + e.message(), e.fix(), e.name());
}

Result<std::uint32_t> parse_spi(std::string_view s) {
  std::uint32_t v = 0;
  int base = 10;
  if (s.size() > 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
    s.remove_prefix(2);
    base = 16;
  }
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v, base);
  if (s.empty() || ec != std::errc{} || p != s.data() + s.size()) {
    return Error(ErrorCode::kInvalidInput, "SPI: '" + std::string(s) + "' is not a 32-bit number",
                 "write the SPI in decimal or as 0x followed by hex digits, e.g. 0x1000");
  }
  return v;
}

/// Keys of a named address selector's block.
constexpr std::string_view kAddressFields[] = {"Address", "Entries"};

/// An `Address = NAME` / `Entries = a, b/n, c-d` block into list's address selectors.
Status build_addresses(const Block& b, PolicyList& list) {
  const Field& name = b.at("Address");
  for (const auto& [k, f] : b) {
    if (k != "Address" && k != "Entries") {
      return Error(ErrorCode::kInvalidInput,
                   "line " + std::to_string(f.line) + ": '" + k + "' does not belong in address selector '" +
                       name.value + "'",
                   "an address selector block holds only 'Address = NAME' and 'Entries = ...'; start a policy "
                   "with 'Name ='");
    }
  }
  auto it = b.find("Entries");
  if (it == b.end()) {
    return Error(ErrorCode::kInvalidInput,
                 "line " + std::to_string(name.line) + ": address selector '" + name.value + "' has no Entries",
                 "add a line 'Entries = 192.0.2.0/24, 198.51.100.7, ...'");
  }
  if (list.addresses().count(name.value)) {
    return Error(ErrorCode::kInvalidInput,
                 "line " + std::to_string(name.line) + ": address selector '" + name.value + "' is defined twice",
                 "define each name once; list all its entries on its Entries line");
  }
  std::vector<AddressSpec> entries;
  std::string_view rest = it->second.value;
  while (true) {
    auto comma = rest.find(',');
    auto r = AddressSpec::parse(rest.substr(0, comma));
    if (!r.ok()) return at(it->second.line, r.error());
    entries.push_back(std::move(r).value());
    if (comma == std::string_view::npos) break;
    rest = rest.substr(comma + 1);
  }
  auto st = list.add_addresses(name.value, entries);
  if (!st.ok()) return at(name.line, st.error());
  return ok_status();
}

Result<Policy> build(const Block& b, int first_line) {
  auto get = [&](const std::string& k) -> const Field* {
    auto it = b.find(k);
    return it == b.end() ? nullptr : &it->second;
  };
  for (const char* required : {"Name", "Direction", "Action"}) {
    if (!get(required)) {
      return Error(ErrorCode::kInvalidInput,
                   "policy starting at line " + std::to_string(first_line) + " has no " + required,
                   std::string("add a line '") + required + " = ...'");
    }
  }
  Policy p;
  p.name = get("Name")->value;
  auto wrap = [&](const char* key, auto&& parse) -> Status {
    const Field* f = get(key);
    if (!f) return ok_status();
    auto r = parse(f->value);
    if (!r.ok()) return at(f->line, r.error());
    return ok_status();
  };
  STORCRYPT_TRY(wrap("Direction", [&](const std::string& v) -> Status {
    STORCRYPT_ASSIGN_OR_RETURN(p.direction, parse_direction(v));
    return ok_status();
  }));
  STORCRYPT_TRY(wrap("Action", [&](const std::string& v) -> Status {
    STORCRYPT_ASSIGN_OR_RETURN(p.disposition, parse_disposition(v));
    return ok_status();
  }));
  STORCRYPT_TRY(wrap("LocalAddress", [&](const std::string& v) -> Status {
    STORCRYPT_ASSIGN_OR_RETURN(p.selector.local, AddressSpec::parse(v));
    return ok_status();
  }));
  STORCRYPT_TRY(wrap("RemoteAddress", [&](const std::string& v) -> Status {
    STORCRYPT_ASSIGN_OR_RETURN(p.selector.remote, AddressSpec::parse(v));
    return ok_status();
  }));
  STORCRYPT_TRY(wrap("Protocol", [&](const std::string& v) -> Status {
    STORCRYPT_ASSIGN_OR_RETURN(p.selector.protocol, parse_protocol(v));
    return ok_status();
  }));
  const bool icmp = p.selector.protocol && protocol_is_icmp(*p.selector.protocol);
  for (auto [key, target, max] : {std::tuple{"LocalPort", &p.selector.local_ports, std::uint16_t{65535}},
                                  std::tuple{"RemotePort", &p.selector.remote_ports, std::uint16_t{65535}},
                                  std::tuple{"IcmpType", &p.selector.local_ports, std::uint16_t{255}},
                                  std::tuple{"IcmpCode", &p.selector.remote_ports, std::uint16_t{255}}}) {
    const bool icmp_key = max == 255;
    const Field* f = get(key);
    if (!f) continue;
    if (icmp_key != icmp) {
      return Error(ErrorCode::kInvalidInput,
                   "line " + std::to_string(f->line) + ": " + key + " does not apply to protocol " +
                       protocol_to_string(p.selector.protocol),
                   icmp ? "use IcmpType/IcmpCode for ICMP and ICMPv6" : "use LocalPort/RemotePort (TCP, UDP, SCTP)");
    }
    auto r = PortSpec::parse(f->value, max, key);
    if (!r.ok()) return at(f->line, r.error());
    *target = std::move(r).value();
  }
  const bool any_ipsec = std::any_of(protection_fields().begin(), protection_fields().end(),
                                     [&](std::string_view f) { return get(std::string(f)) != nullptr; });
  if (p.disposition == Disposition::kProtect || any_ipsec) {
    Protection pr;
    if (!get("SPI")) {
      return Error(ErrorCode::kInvalidInput, "policy '" + p.name + "' has no SPI", "add a line 'SPI = 0x...'");
    }
    STORCRYPT_TRY(wrap("Service", [&](const std::string& v) -> Status {
      STORCRYPT_ASSIGN_OR_RETURN(pr.service, parse_service(v));
      return ok_status();
    }));
    STORCRYPT_TRY(wrap("Mode", [&](const std::string& v) -> Status {
      STORCRYPT_ASSIGN_OR_RETURN(pr.mode, parse_mode(v));
      return ok_status();
    }));
    STORCRYPT_TRY(wrap("SPI", [&](const std::string& v) -> Status {
      STORCRYPT_ASSIGN_OR_RETURN(pr.spi, parse_spi(v));
      return ok_status();
    }));
    STORCRYPT_TRY(wrap("LocalEndpoint", [&](const std::string& v) -> Status {
      STORCRYPT_ASSIGN_OR_RETURN(pr.local_endpoint, IpAddress::parse(v, ""));
      return ok_status();
    }));
    STORCRYPT_TRY(wrap("RemoteEndpoint", [&](const std::string& v) -> Status {
      STORCRYPT_ASSIGN_OR_RETURN(pr.remote_endpoint, IpAddress::parse(v, ""));
      return ok_status();
    }));
    STORCRYPT_TRY(wrap("IntegrityAlgorithm", [&](const std::string& v) -> Status {
      STORCRYPT_ASSIGN_OR_RETURN(pr.integrity, parse_algorithm(v));
      return ok_status();
    }));
    STORCRYPT_TRY(wrap("EncryptionAlgorithm", [&](const std::string& v) -> Status {
      STORCRYPT_ASSIGN_OR_RETURN(pr.encryption, parse_algorithm(v));
      return ok_status();
    }));
    if (const Field* f = get("IntegrityKey")) pr.integrity_key = f->value;
    if (const Field* f = get("EncryptionKey")) pr.encryption_key = f->value;
    p.protection = std::move(pr);
  }
  return p;
}

}  // namespace

const std::vector<std::string_view>& protection_fields() {
  static const std::vector<std::string_view> fields = {"Service",
                                                       "Mode",
                                                       "SPI",
                                                       "LocalEndpoint",
                                                       "RemoteEndpoint",
                                                       "IntegrityAlgorithm",
                                                       "IntegrityKey",
                                                       "EncryptionAlgorithm",
                                                       "EncryptionKey"};
  return fields;
}

Policy swapped(const Policy& p) {
  Policy s = p;
  s.direction = p.direction == Direction::kInbound ? Direction::kOutbound : Direction::kInbound;
  std::swap(s.selector.local, s.selector.remote);
  const bool icmp = p.selector.protocol && protocol_is_icmp(*p.selector.protocol);
  if (!icmp) std::swap(s.selector.local_ports, s.selector.remote_ports);  // types/codes are not ends
  if (s.protection) std::swap(s.protection->local_endpoint, s.protection->remote_endpoint);
  return s;
}

std::string export_policies(const PolicyList& list) {
  std::ostringstream os;
  os << "# storcrypt IPsec policy list (first match decides)\n";
  for (const auto& [name, entries] : list.addresses()) {
    os << "\nAddress = " << name << "\nEntries = ";
    for (std::size_t i = 0; i < entries.size(); ++i) os << (i ? ", " : "") << entries[i].to_string();
    os << "\n";
  }
  for (const Policy& p : list.policies()) {
    const Selector& s = p.selector;
    const bool icmp = s.protocol && protocol_is_icmp(*s.protocol);
    os << "\nName = " << p.name << "\nDirection = " << to_string(p.direction)
       << "\nLocalAddress = " << s.local.to_string() << "\nRemoteAddress = " << s.remote.to_string()
       << "\nProtocol = " << protocol_to_string(s.protocol) << "\n";
    os << (icmp ? "IcmpType = " : "LocalPort = ") << s.local_ports.to_string() << "\n";
    os << (icmp ? "IcmpCode = " : "RemotePort = ") << s.remote_ports.to_string() << "\n";
    os << "Action = " << to_string(p.disposition) << "\n";
    if (const auto& pr = p.protection) {
      char spi[16];
      std::snprintf(spi, sizeof spi, "0x%x", pr->spi);
      os << "Service = " << to_string(pr->service) << "\nMode = " << to_string(pr->mode) << "\nSPI = " << spi << "\n";
      if (pr->local_endpoint) os << "LocalEndpoint = " << pr->local_endpoint->to_string() << "\n";
      if (pr->remote_endpoint) os << "RemoteEndpoint = " << pr->remote_endpoint->to_string() << "\n";
      if (pr->integrity) os << "IntegrityAlgorithm = " << to_string(*pr->integrity) << "\n";
      if (!pr->integrity_key.empty()) os << "IntegrityKey = " << pr->integrity_key << "\n";
      if (pr->encryption) os << "EncryptionAlgorithm = " << to_string(*pr->encryption) << "\n";
      if (!pr->encryption_key.empty()) os << "EncryptionKey = " << pr->encryption_key << "\n";
    }
  }
  return os.str();
}

Result<PolicyList> import_policies(std::string_view text, const ImportOptions& opt) {
  PolicyList list;
  Block block;
  int block_line = 0;
  auto flush = [&]() -> Status {
    if (block.empty()) return ok_status();
    if (block.count("Address")) {
      STORCRYPT_TRY(build_addresses(block, list));
      block.clear();
      return ok_status();
    }
    STORCRYPT_ASSIGN_OR_RETURN(Policy p, build(block, block_line));
    if (opt.swap) p = swapped(p);
    auto st = list.add(std::move(p));
    if (!st.ok()) return at(block_line, st.error());
    block.clear();
    return ok_status();
  };
  int line_no = 0;
  std::size_t pos = 0;
  while (pos <= text.size()) {
    std::size_t nl = text.find('\n', pos);
    if (nl == std::string_view::npos) nl = text.size();
    std::string_view line = trim(text.substr(pos, nl - pos));
    pos = nl + 1;
    ++line_no;
    if (line.empty()) {
      STORCRYPT_TRY(flush());
      continue;
    }
    if (line.front() == '#') continue;
    auto eq = line.find('=');
    if (eq == std::string_view::npos) {
      return Error(ErrorCode::kInvalidInput, "line " + std::to_string(line_no) + ": expected 'Name = Value'",
                   "write one 'Key = Value' per line; separate policies by a blank line");
    }
    std::string key(trim(line.substr(0, eq)));
    std::string value(trim(line.substr(eq + 1)));
    bool known = false;
    for (std::string_view k : kSelectorFields) known = known || k == key;
    for (std::string_view k : protection_fields()) known = known || k == key;
    for (std::string_view k : kAddressFields) known = known || k == key;
    if (!known) {
      return Error(ErrorCode::kInvalidInput, "line " + std::to_string(line_no) + ": unknown key '" + key + "'",
                   "known keys: Name, Direction, LocalAddress, RemoteAddress, Protocol, LocalPort, RemotePort, "
                   "IcmpType, IcmpCode, Action, Service, Mode, SPI, LocalEndpoint, RemoteEndpoint, "
                   "IntegrityAlgorithm, IntegrityKey, EncryptionAlgorithm, EncryptionKey; Address, Entries "
                   "(a named address selector)");
    }
    if ((key == "Name" || key == "Address") && !block.empty()) STORCRYPT_TRY(flush());
    if (block.empty()) block_line = line_no;
    if (block.count(key)) {
      return Error(ErrorCode::kInvalidInput, "line " + std::to_string(line_no) + ": '" + key + "' given twice",
                   "give each key once per policy; start a new policy with 'Name ='");
    }
    block[key] = {value, line_no};
  }
  STORCRYPT_TRY(flush());
  return list;
}

}  // namespace storcrypt::policy
