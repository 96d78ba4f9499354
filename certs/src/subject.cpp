#include <arpa/inet.h>

#include <cctype>

#include "internal.h"

namespace storcrypt::certs {

using detail::cert_error;

namespace {

Error bad_subject(std::string_view field, std::string what, std::string fix) {
  return cert_error(ErrorCode::kInvalidInput, "xCertBadSubject", "subject field " + std::string(field) + ": " + what,
                    std::move(fix));
}

Status check_text(std::string_view field, const std::string& v, std::size_t max, bool required) {
  if (v.empty()) {
    if (required) return bad_subject(field, "is required", "give a value for " + std::string(field));
    return ok_status();
  }
  if (v.size() > max)
    return bad_subject(field, "is " + std::to_string(v.size()) + " bytes; at most " + std::to_string(max) + " allowed",
                       "shorten " + std::string(field));
  for (unsigned char c : v) {
    if (c < 0x20 || c == 0x7f)
      return bad_subject(field, "contains a control character", "use printable characters only");
  }
  return ok_status();
}

}  // namespace

Status validate_subject(const SubjectFields& s) {
  // Upper bounds from RFC 5280 appendix A (ub-*).
  STORCRYPT_TRY(check_text("CN (common name)", s.common_name, 64, true));
  if (!s.country.empty()) {
    if (s.country.size() != 2 || !std::isalpha(static_cast<unsigned char>(s.country[0])) ||
        !std::isalpha(static_cast<unsigned char>(s.country[1])))
      return bad_subject("C (country)", "must be a two-letter ISO 3166 code", "e.g. DE, US, FR");
  }
  STORCRYPT_TRY(check_text("ST (state)", s.state, 128, false));
  STORCRYPT_TRY(check_text("L (locality)", s.locality, 128, false));
  STORCRYPT_TRY(check_text("O (organization)", s.organization, 64, false));
  STORCRYPT_TRY(check_text("OU (organizational unit)", s.unit, 64, false));
  STORCRYPT_TRY(check_text("emailAddress", s.email, 128, false));
  if (!s.email.empty()) {
    auto at = s.email.find('@');
    bool ok =
        at != std::string::npos && at > 0 && at + 1 < s.email.size() && s.email.find('@', at + 1) == std::string::npos;
    for (unsigned char c : s.email)
      if (c > 0x7e || c == ' ') ok = false;
    if (!ok) return bad_subject("emailAddress", "is not an ASCII address like name@example.com", "fix the address");
  }
  return ok_status();
}

Status validate_sans(const SubjectAltNames& s) {
  for (const auto& d : s.dns) {
    std::string_view n = d;
    auto bad = [&](std::string why) {
      return cert_error(ErrorCode::kInvalidInput, "xCertBadSan", "DNS name \"" + d.substr(0, 64) + "\" " + why,
                        "use letters, digits and '-' in dot-separated labels (optionally starting with \"*.\")");
    };
    if (n.rfind("*.", 0) == 0) n.remove_prefix(2);
    if (n.empty() || n.size() > 253) return bad("has an invalid length");
    if (!n.empty() && n.back() == '.') n.remove_suffix(1);
    std::size_t start = 0;
    while (start <= n.size()) {
      std::size_t dot = n.find('.', start);
      if (dot == std::string_view::npos) dot = n.size();
      std::string_view label = n.substr(start, dot - start);
      if (label.empty() || label.size() > 63) return bad("has an empty or too long label");
      if (label.front() == '-' || label.back() == '-') return bad("has a label starting or ending with '-'");
      for (unsigned char c : label)
        if (!std::isalnum(c) && c != '-') return bad("contains an invalid character");
      start = dot + 1;
    }
  }
  for (const auto& ip : s.ip) {
    unsigned char buf[16];
    if (inet_pton(AF_INET, ip.c_str(), buf) != 1 && inet_pton(AF_INET6, ip.c_str(), buf) != 1)
      return cert_error(ErrorCode::kInvalidInput, "xCertBadSan", "\"" + ip.substr(0, 64) + "\" is not an IP address",
                        "give an IPv4 (192.0.2.1) or IPv6 (2001:db8::1) literal");
  }
  return ok_status();
}

std::string_view trust_use_name(TrustUse u) {
  switch (u) {
    case TrustUse::kIpsec:
      return "ipsec";
    case TrustUse::kRestApi:
      return "restapi";
    case TrustUse::kKmip:
      return "kmip";
  }
  return "unknown";
}

Result<TrustUse> parse_trust_use(std::string_view name) {
  std::string n;
  for (char c : name)
    if (c != ' ') n += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (n == "ipsec") return TrustUse::kIpsec;
  if (n == "restapi" || n == "rest-api" || n == "rest_api" || n == "rest") return TrustUse::kRestApi;
  if (n == "kmip") return TrustUse::kKmip;
  return cert_error(ErrorCode::kInvalidInput, "xTrustBadUse",
                    "unknown truststore use \"" + std::string(name.substr(0, 32)) + "\"",
                    "use one or more of: ipsec, restapi, kmip (comma separated)");
}

Result<std::set<TrustUse>> parse_trust_uses(std::string_view list) {
  std::set<TrustUse> out;
  std::size_t start = 0;
  while (start <= list.size()) {
    std::size_t comma = list.find(',', start);
    if (comma == std::string_view::npos) comma = list.size();
    std::string_view item = list.substr(start, comma - start);
    bool blank = item.find_first_not_of(' ') == std::string_view::npos;
    if (!blank) {
      STORCRYPT_ASSIGN_OR_RETURN(TrustUse u, parse_trust_use(item));
      out.insert(u);
    }
    start = comma + 1;
  }
  if (out.empty())
    return cert_error(ErrorCode::kInvalidInput, "xTrustBadUse", "no truststore use given",
                      "use one or more of: ipsec, restapi, kmip (comma separated)");
  return out;
}

std::string_view endpoint_mode_name(EndpointMode m) {
  switch (m) {
    case EndpointMode::kNone:
      return "none";
    case EndpointMode::kInternal:
      return "internal";
    case EndpointMode::kExternal:
      return "external";
    case EndpointMode::kSelfSigned:
      return "self-signed";
  }
  return "unknown";
}

}  // namespace storcrypt::certs
