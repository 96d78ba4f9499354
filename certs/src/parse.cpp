// Parsing certificates handed in by users: PEM bundles (pasted, CRLF,
// escaped newlines) or one DER certificate. Untrusted input: fuzzed by
// tests/fuzz/certs.
#include <openssl/err.h>
#include <openssl/pem.h>

#include <cctype>

#include "internal.h"

namespace storcrypt::certs {

using detail::BioPtr;
using detail::cert_error;
using detail::X509Ptr;

namespace {

constexpr std::size_t kMaxInput = 1 << 20;  // 1 MiB: far above any real chain
constexpr std::string_view kPemBegin = "-----BEGIN ";

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; }

std::string_view trim(std::string_view s) {
  while (!s.empty() && is_space(s.front())) s.remove_prefix(1);
  while (!s.empty() && is_space(s.back())) s.remove_suffix(1);
  return s;
}

Error garbage(std::string message, std::string fix = {}) {
  if (fix.empty())
    fix = "give the certificate as PEM (-----BEGIN CERTIFICATE----- ... -----END CERTIFICATE-----) or as DER";
  return cert_error(ErrorCode::kInvalidInput, "xCertGarbage", std::move(message), std::move(fix));
}

bool looks_like_base64_text(std::string_view s) {
  if (s.size() < 16) return false;
  for (char c : s) {
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '+' || c == '/' || c == '=' || is_space(c))) return false;
  }
  return true;
}

bool mostly_text(std::string_view s) {
  std::size_t printable = 0;
  for (char c : s) {
    unsigned char u = static_cast<unsigned char>(c);
    if ((u >= 0x20 && u < 0x7f) || is_space(c)) ++printable;
  }
  return !s.empty() && printable * 10 >= s.size() * 9;
}

/// One DER certificate; only whitespace may follow it (a file's final newline).
Result<X509Ptr> parse_der_exact(const unsigned char* p, std::size_t n) {
  const unsigned char* q = p;
  X509Ptr x(d2i_X509(nullptr, &q, static_cast<long>(n)));
  if (!x) return garbage("input is not a DER certificate");
  std::string_view rest(reinterpret_cast<const char*>(q), n - static_cast<std::size_t>(q - p));
  if (!trim(rest).empty())
    return garbage("DER certificate is followed by " + std::to_string(rest.size()) + " unexpected bytes");
  return x;
}

}  // namespace

std::string normalize_pem_text(std::string_view input) {
  std::string_view t = trim(input);
  if (t.find(kPemBegin) == std::string_view::npos) return std::string(input);
  // A JSON/shell paste may be wrapped in quotes.
  if (t.size() >= 2 && t.front() == '"' && t.back() == '"') t = trim(t.substr(1, t.size() - 2));
  std::string s;
  s.reserve(t.size() + 1);
  for (std::size_t i = 0; i < t.size(); ++i) {
    char c = t[i];
    if (c == '\\' && i + 1 < t.size() && (t[i + 1] == 'n' || t[i + 1] == 'r')) {
      // literal "\n" or "\r" (escaped paste): a line break
      if (t[i + 1] == 'n') s += '\n';
      ++i;
      continue;
    }
    if (c == '\r') {
      if (i + 1 < t.size() && t[i + 1] == '\n') continue;  // CRLF -> LF
      s += '\n';
      continue;
    }
    s += c;
  }
  // Trim every line: indented pastes (YAML, e-mail quoting) keep PEM intact.
  std::string out;
  out.reserve(s.size() + 1);
  std::size_t pos = 0;
  while (pos <= s.size()) {
    std::size_t nl = s.find('\n', pos);
    if (nl == std::string::npos) nl = s.size();
    std::string_view line = trim(std::string_view(s).substr(pos, nl - pos));
    if (!line.empty()) {
      out += line;
      out += '\n';
    }
    pos = nl + 1;
  }
  return out;
}

Result<std::vector<Certificate>> parse_certificates(std::string_view input) {
  if (input.size() > kMaxInput) return garbage("input is larger than 1 MiB; a certificate chain is a few KiB");
  if (trim(input).empty()) return garbage("input is empty");
  std::vector<Certificate> out;

  if (input.find(kPemBegin) == std::string_view::npos) {
    if (looks_like_base64_text(trim(input)))
      return garbage("input looks like base64 without a PEM header",
                     "add the lines -----BEGIN CERTIFICATE----- and -----END CERTIFICATE----- around it");
    // DER starts with 0x30 (SEQUENCE): leading whitespace cannot be part of it.
    std::string_view d = input;
    while (!d.empty() && is_space(d.front())) d.remove_prefix(1);
    auto der = parse_der_exact(reinterpret_cast<const unsigned char*>(d.data()), d.size());
    ERR_clear_error();
    if (!der.ok()) {
      if (mostly_text(input))
        return garbage("input is text without a -----BEGIN CERTIFICATE----- line and is not a DER certificate");
      return std::move(der).error();
    }
    out.emplace_back(der->release());
    return out;
  }

  std::string text = normalize_pem_text(input);
  BioPtr bio(BIO_new_mem_buf(text.data(), static_cast<int>(text.size())));
  if (!bio) return detail::openssl_error("allocating a memory BIO");
  int block = 0;
  for (;;) {
    char* name = nullptr;
    char* header = nullptr;
    unsigned char* data = nullptr;
    long len = 0;
    int rc = PEM_read_bio(bio.get(), &name, &header, &data, &len);
    if (rc != 1) {
      unsigned long e = ERR_peek_last_error();
      ERR_clear_error();
      if (ERR_GET_LIB(e) == ERR_LIB_PEM && ERR_GET_REASON(e) == PEM_R_NO_START_LINE) break;
      return garbage("PEM block " + std::to_string(block + 1) +
                         " is corrupt (bad base64, missing END line or "
                         "mismatched BEGIN/END)",
                     "paste the whole block from -----BEGIN to -----END unchanged");
    }
    ++block;
    std::string pem_name(name ? name : "");
    bool is_key = pem_name.find("PRIVATE KEY") != std::string::npos;
    Result<X509Ptr> x = garbage("");
    if (pem_name == "CERTIFICATE" || pem_name == "X509 CERTIFICATE") {
      x = parse_der_exact(data, static_cast<std::size_t>(len));
    } else if (pem_name == "TRUSTED CERTIFICATE") {
      const unsigned char* q = data;
      X509Ptr t(d2i_X509_AUX(nullptr, &q, len));
      if (t) x = std::move(t);
    }
    if (data) OPENSSL_cleanse(data, static_cast<std::size_t>(len));  // may have been a key
    OPENSSL_free(name);
    OPENSSL_free(header);
    OPENSSL_free(data);
    ERR_clear_error();
    if (is_key) {
      return garbage("PEM block " + std::to_string(block) + " is a private key, not a certificate",
                     "never paste private keys; give only the certificate(s)");
    }
    if (pem_name == "CERTIFICATE REQUEST" || pem_name == "NEW CERTIFICATE REQUEST")
      return garbage("PEM block " + std::to_string(block) + " is a certificate signing request, not a certificate",
                     "have the CSR signed by your CA and give the signed certificate");
    if (!x.ok()) {
      if (pem_name.rfind("CERTIFICATE", 0) == 0 || pem_name.find("CERTIFICATE") != std::string::npos)
        return garbage("PEM block " + std::to_string(block) + " (" + pem_name + ") does not hold a valid certificate");
      return garbage("PEM block " + std::to_string(block) + " is a \"" + pem_name.substr(0, 40) +
                     "\", not a CERTIFICATE");
    }
    out.emplace_back(x->release());
  }
  if (out.empty()) return garbage("no PEM block found after -----BEGIN; the input is truncated or malformed");
  return out;
}

Result<Certificate> parse_certificate(std::string_view input) {
  STORCRYPT_ASSIGN_OR_RETURN(auto v, parse_certificates(input));
  if (v.size() != 1)
    return garbage("expected exactly one certificate, found " + std::to_string(v.size()),
                   "give only the one certificate");
  return std::move(v.front());
}

}  // namespace storcrypt::certs
