// CertStore: the endpoint certificate, the internal root CA and the pending
// CSR key in the state directory.
#include <fcntl.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <ctime>
#include <set>

#include "internal.h"
#include "issue.h"
#include "storcrypt/common/fd.h"

namespace storcrypt::certs {

namespace fs = std::filesystem;
using detail::cert_error;

namespace {

constexpr const char* kEndpoint = "endpoint";
constexpr const char* kPending = "pending";
constexpr const char* kCa = "ca";

struct FileSpec {
  std::string name;
  const SecretBytes* secret = nullptr;  ///< written 0600 when set
  std::string text;                     ///< written 0644 otherwise
};

Error io_error(const std::error_code& ec, const std::string& what) {
  return errno_error(ec.value(), what).with_name("xCertStateIo");
}

/// Replace <dir>/<name>/ with a directory holding exactly `files`, so a
/// crash leaves either the old or the new set (never a key of one and the
/// certificate of the other). Recovery is in recover_dirs().
Status commit_dir(const fs::path& dir, const std::string& name, const std::vector<FileSpec>& files) {
  std::error_code ec;
  fs::path fresh = dir / (name + ".new"), old = dir / (name + ".old"), cur = dir / name;
  fs::remove_all(fresh, ec);
  if (ec) return io_error(ec, "removing " + fresh.string());
  STORCRYPT_TRY(detail::ensure_dir(fresh));
  for (const auto& f : files) {
    if (f.secret) {
      STORCRYPT_TRY(detail::write_secret_atomic(fresh / f.name, *f.secret));
    } else {
      STORCRYPT_TRY(detail::write_file_atomic(fresh / f.name, f.text, 0644));
    }
  }
  fs::remove_all(old, ec);
  if (fs::exists(cur, ec)) {
    fs::rename(cur, old, ec);
    if (ec) return io_error(ec, "renaming " + cur.string());
  }
  fs::rename(fresh, cur, ec);
  if (ec) return io_error(ec, "renaming " + fresh.string());
  UniqueFd dfd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (dfd.valid()) ::fsync(dfd.get());  // make the swap durable before dropping the old set
  fs::remove_all(old, ec);
  return ok_status();
}

Status remove_dir(const fs::path& dir, const std::string& name) {
  std::error_code ec;
  fs::remove_all(dir / name, ec);
  if (ec) return io_error(ec, "removing " + (dir / name).string());
  return ok_status();
}

void recover_dirs(const fs::path& dir) {
  std::error_code ec;
  for (const char* n : {kEndpoint, kPending, kCa}) {
    fs::path cur = dir / n, old = dir / (std::string(n) + ".old"), fresh = dir / (std::string(n) + ".new");
    fs::remove_all(fresh, ec);  // never completed
    if (!fs::exists(cur, ec) && fs::exists(old, ec)) fs::rename(old, cur, ec);
    fs::remove_all(old, ec);
  }
}

/// nullopt when the file does not exist.
Result<std::optional<std::string>> read_optional(const fs::path& p) {
  if (!detail::file_exists(p)) return std::optional<std::string>();
  STORCRYPT_ASSIGN_OR_RETURN(std::string s, detail::read_file(p));
  return std::optional<std::string>(std::move(s));
}

Result<std::optional<PrivateKey>> read_key_optional(const fs::path& p) {
  if (!detail::file_exists(p)) return std::optional<PrivateKey>();
  STORCRYPT_ASSIGN_OR_RETURN(SecretBytes pem, detail::read_secret(p));
  auto k = PrivateKey::from_pem(pem);
  if (!k.ok()) return std::move(k).error().context(p.string());
  return std::optional<PrivateKey>(std::move(k).value());
}

Status check_days(int days, std::string_view what) {
  if (days < 1 || days > 36500)
    return cert_error(ErrorCode::kInvalidInput, "xCertBadDays",
                      std::string(what) + " validity of " + std::to_string(days) + " days is out of range",
                      "give 1 to 36500 days");
  return ok_status();
}

std::string chain_text(const std::vector<Certificate>& v) {
  std::string s;
  for (const auto& c : v) s += c.to_pem();
  return s;
}

Result<std::vector<Certificate>> read_certs_optional(const fs::path& p) {
  STORCRYPT_ASSIGN_OR_RETURN(auto text, read_optional(p));
  if (!text || text->find("-----BEGIN") == std::string::npos) return std::vector<Certificate>();
  auto v = parse_certificates(*text);
  if (!v.ok()) return std::move(v).error().context(p.string());
  return v;
}

EndpointMode parse_mode(std::string_view s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.remove_suffix(1);
  if (s == "internal") return EndpointMode::kInternal;
  if (s == "external") return EndpointMode::kExternal;
  if (s == "self-signed") return EndpointMode::kSelfSigned;
  return EndpointMode::kNone;
}

}  // namespace

Result<CertStore> CertStore::open(std::filesystem::path state_dir, Clock clock) {
  STORCRYPT_TRY(detail::ensure_dir(state_dir));
  recover_dirs(state_dir);
  return CertStore(std::move(state_dir), std::move(clock));
}

UnixTime CertStore::now() const { return clock_ ? clock_() : static_cast<UnixTime>(::time(nullptr)); }

namespace {

struct Root {
  Certificate cert;
  PrivateKey key;
};

Result<std::optional<Root>> load_root(const fs::path& dir) {
  STORCRYPT_ASSIGN_OR_RETURN(auto key, read_key_optional(dir / kCa / "key.pem"));
  STORCRYPT_ASSIGN_OR_RETURN(auto certs, read_certs_optional(dir / kCa / "cert.pem"));
  if (!key || certs.empty()) return std::optional<Root>();
  return std::optional<Root>(Root{certs.front(), std::move(*key)});
}

}  // namespace

Result<CreateResult> CertStore::create_internal(const CreateOptions& o) {
  STORCRYPT_TRY(check_days(o.days, "endpoint certificate"));
  STORCRYPT_TRY(check_days(o.root_days, "root CA"));
  STORCRYPT_ASSIGN_OR_RETURN(auto name, detail::build_name(o.subject));
  STORCRYPT_TRY(validate_sans(o.sans));
  const UnixTime t = now();

  CreateResult out;
  STORCRYPT_ASSIGN_OR_RETURN(auto root, load_root(dir_));
  if (root && classify_expiry(root->cert.info().not_before, root->cert.info().not_after, t) != ExpiryClass::kOk) {
    out.warnings.push_back(
        "the internal root CA expires soon or is not valid; a new root CA was created and must be "
        "exported to every partner again");
    root.reset();
  }
  if (!root) {
    SubjectFields rs = o.subject;
    rs.common_name = o.root_common_name.empty() ? o.subject.common_name + " storcrypt root CA" : o.root_common_name;
    if (rs.common_name.size() > 64) rs.common_name = "storcrypt root CA";
    rs.email.clear();
    STORCRYPT_ASSIGN_OR_RETURN(auto root_name, detail::build_name(rs));
    STORCRYPT_ASSIGN_OR_RETURN(PrivateKey rk, PrivateKey::generate(o.key_type));
    detail::IssueParams rp;
    rp.subject = root_name.get();
    rp.subject_key = rk.native();
    rp.issuer_key = rk.native();
    rp.now = t;
    rp.days = o.root_days;
    rp.profile = detail::Profile::kRootCa;
    STORCRYPT_ASSIGN_OR_RETURN(auto rx, detail::issue_certificate(rp));
    Certificate rc(rx.release());
    STORCRYPT_ASSIGN_OR_RETURN(SecretBytes rkpem, rk.to_pem());
    STORCRYPT_TRY(commit_dir(dir_, kCa, {{"key.pem", &rkpem, {}}, {"cert.pem", nullptr, rc.to_pem()}}));
    root = Root{std::move(rc), std::move(rk)};
  }

  STORCRYPT_ASSIGN_OR_RETURN(PrivateKey key, PrivateKey::generate(o.key_type));
  SubjectAltNames sans = detail::effective_sans(o.subject, o.sans);
  detail::IssueParams p;
  p.subject = name.get();
  p.subject_key = key.native();
  p.issuer = root->cert.native();
  p.issuer_key = root->key.native();
  p.now = t;
  p.days = o.days;
  p.sans = &sans;
  STORCRYPT_ASSIGN_OR_RETURN(auto x, detail::issue_certificate(p));
  Certificate cert(x.release());
  STORCRYPT_ASSIGN_OR_RETURN(SecretBytes kpem, key.to_pem());
  STORCRYPT_TRY(commit_dir(dir_, kEndpoint,
                           {{"key.pem", &kpem, {}},
                            {"cert.pem", nullptr, cert.to_pem()},
                            {"chain.pem", nullptr, root->cert.to_pem()},
                            {"mode", nullptr, "internal\n"}}));
  STORCRYPT_TRY(remove_dir(dir_, kPending));
  out.endpoint = cert.info();
  out.root = root->cert.info();
  return out;
}

Result<CreateResult> CertStore::create_self_signed(const CreateOptions& o) {
  STORCRYPT_TRY(check_days(o.days, "endpoint certificate"));
  STORCRYPT_ASSIGN_OR_RETURN(auto name, detail::build_name(o.subject));
  STORCRYPT_TRY(validate_sans(o.sans));
  STORCRYPT_ASSIGN_OR_RETURN(PrivateKey key, PrivateKey::generate(o.key_type));
  SubjectAltNames sans = detail::effective_sans(o.subject, o.sans);
  detail::IssueParams p;
  p.subject = name.get();
  p.subject_key = key.native();
  p.issuer_key = key.native();
  p.now = now();
  p.days = o.days;
  p.sans = &sans;
  STORCRYPT_ASSIGN_OR_RETURN(auto x, detail::issue_certificate(p));
  Certificate cert(x.release());
  STORCRYPT_ASSIGN_OR_RETURN(SecretBytes kpem, key.to_pem());
  STORCRYPT_TRY(commit_dir(dir_, kEndpoint,
                           {{"key.pem", &kpem, {}},
                            {"cert.pem", nullptr, cert.to_pem()},
                            {"chain.pem", nullptr, ""},
                            {"mode", nullptr, "self-signed\n"}}));
  STORCRYPT_TRY(remove_dir(dir_, kPending));
  CreateResult out;
  out.endpoint = cert.info();
  out.warnings.emplace_back(kSelfSignedWarning);
  return out;
}

Result<CsrResult> CertStore::create_csr(const CreateOptions& o) {
  STORCRYPT_ASSIGN_OR_RETURN(auto name, detail::build_name(o.subject));
  STORCRYPT_TRY(validate_sans(o.sans));
  STORCRYPT_ASSIGN_OR_RETURN(PrivateKey key, PrivateKey::generate(o.key_type));
  SubjectAltNames sans = detail::effective_sans(o.subject, o.sans);
  STORCRYPT_ASSIGN_OR_RETURN(auto req, detail::build_csr(name.get(), key.native(), sans));
  std::string pem = detail::csr_to_pem(req.get());
  if (pem.empty()) return detail::openssl_error("encoding the CSR");
  STORCRYPT_ASSIGN_OR_RETURN(SecretBytes kpem, key.to_pem());
  STORCRYPT_TRY(commit_dir(dir_, kPending, {{"key.pem", &kpem, {}}, {"csr.pem", nullptr, pem}}));
  return CsrResult{pem, key.describe()};
}

Result<std::string> CertStore::pending_csr_pem() const {
  STORCRYPT_ASSIGN_OR_RETURN(auto s, read_optional(dir_ / kPending / "csr.pem"));
  if (!s)
    return cert_error(ErrorCode::kNotFound, "xCertNoKey", "no certificate signing request is pending",
                      "create one with `storcrypt cert csr`");
  return *s;
}

namespace {
std::string incomplete_chain_warning(const std::string& issuer) {
  return "the chain is incomplete: the certificate's issuer (" + issuer +
         ") is neither in the installed file nor in the truststore; partners will need that intermediate "
         "certificate: install the certificate followed by its intermediate(s), or add the issuing CA to the "
         "truststore if partners already trust it";
}
}  // namespace

Result<InstallResult> CertStore::install(std::string_view cert_input) {
  STORCRYPT_ASSIGN_OR_RETURN(auto certs, parse_certificates(cert_input));
  STORCRYPT_ASSIGN_OR_RETURN(auto pending_key, read_key_optional(dir_ / kPending / "key.pem"));
  STORCRYPT_ASSIGN_OR_RETURN(auto endpoint_key, read_key_optional(dir_ / kEndpoint / "key.pem"));
  if (!pending_key && !endpoint_key)
    return cert_error(ErrorCode::kNotFound, "xCertNoKey",
                      "this system has no key waiting for a certificate (no CSR was created)",
                      "create a key and CSR with `storcrypt cert csr`, have it signed, then install the result");

  // Find the certificate of our key among the given ones (chain in any order).
  std::optional<std::size_t> leaf_idx;
  bool from_pending = false;
  for (std::size_t i = 0; i < certs.size() && !leaf_idx; ++i) {
    if (pending_key && certs[i].matches(*pending_key)) {
      leaf_idx = i;
      from_pending = true;
    } else if (endpoint_key && certs[i].matches(*endpoint_key)) {
      leaf_idx = i;
    }
  }
  if (!leaf_idx) {
    std::string what = certs.size() == 1 ? "the certificate (" + certs[0].info().subject + ")"
                                         : "none of the " + std::to_string(certs.size()) + " certificates";
    return cert_error(
        ErrorCode::kInvalidInput, "xCertKeyMismatch",
        what + " does not match this system's " + std::string(pending_key ? "pending CSR key" : "endpoint key"),
        "install the certificate the CA issued for the CSR from `storcrypt cert csr` "
        "(a new CSR replaces the previous key; sign the latest one)");
  }
  Certificate leaf = certs[*leaf_idx];
  CertInfo li = leaf.info();
  if (li.is_ca)
    return cert_error(ErrorCode::kInvalidInput, "xCertNotEndpoint",
                      "the certificate " + li.subject + " is a CA certificate, not an endpoint certificate",
                      "have the CA issue an end-entity certificate (CA:FALSE) for the CSR");
  STORCRYPT_TRY(detail::check_key_policy(X509_get0_pubkey(leaf.native()), "the certificate"));
  const UnixTime t = now();
  if (t > li.not_after)
    return cert_error(ErrorCode::kTls, "xCertExpired",
                      "the certificate " + li.subject + " expired at " + format_utc(li.not_after),
                      "have the CSR signed again with a current validity period");
  if (t < li.not_before)
    return cert_error(ErrorCode::kTls, "xCertNotYetValid",
                      "the certificate " + li.subject + " is valid only from " + format_utc(li.not_before) + " (now " +
                          format_utc(t) + ")",
                      "check this system's clock (NTP) or wait until the certificate becomes valid");

  InstallResult out;
  // Order the rest from the leaf upwards; drop what does not belong.
  std::vector<Certificate> rest;
  for (std::size_t i = 0; i < certs.size(); ++i)
    if (i != *leaf_idx) rest.push_back(certs[i]);
  std::vector<Certificate> chain;
  X509* cur = leaf.native();
  while (!rest.empty() && X509_self_signed(cur, 0) != 1) {
    auto it = std::find_if(rest.begin(), rest.end(),
                           [&](const Certificate& c) { return X509_check_issued(c.native(), cur) == X509_V_OK; });
    if (it == rest.end()) break;
    chain.push_back(*it);
    cur = it->native();
    rest.erase(it);
  }
  ERR_clear_error();
  for (const auto& c : rest)
    out.warnings.push_back("ignored certificate " + c.info().subject + ": not part of the endpoint's chain");
  auto has = [&](const char* eku) {
    return li.ext_key_usage.empty() ||
           std::find(li.ext_key_usage.begin(), li.ext_key_usage.end(), eku) != li.ext_key_usage.end();
  };
  if (!has("serverAuth")) out.warnings.emplace_back("the certificate lacks the serverAuth extended key usage");
  if (!has("clientAuth")) out.warnings.emplace_back("the certificate lacks the clientAuth extended key usage");
  bool self_signed = li.self_signed;
  if (self_signed) out.warnings.emplace_back(kSelfSignedWarning);
  if (ExpiryClass c = classify_expiry(li.not_before, li.not_after, t); c != ExpiryClass::kOk)
    out.warnings.push_back("the certificate expires soon (" + std::string(expiry_class_name(c)) + ")");
  STORCRYPT_ASSIGN_OR_RETURN(auto gap, missing_issuer(leaf, chain));
  if (gap) out.warnings.push_back(incomplete_chain_warning(*gap));

  const PrivateKey& key = from_pending ? *pending_key : *endpoint_key;
  STORCRYPT_ASSIGN_OR_RETURN(SecretBytes kpem, key.to_pem());
  STORCRYPT_TRY(commit_dir(dir_, kEndpoint,
                           {{"key.pem", &kpem, {}},
                            {"cert.pem", nullptr, leaf.to_pem()},
                            {"chain.pem", nullptr, chain_text(chain)},
                            {"mode", nullptr, self_signed ? "self-signed\n" : "external\n"}}));
  if (from_pending) STORCRYPT_TRY(remove_dir(dir_, kPending));
  out.endpoint = li;
  for (const auto& c : chain) out.chain.push_back(c.info());
  return out;
}

Result<EndpointStatus> CertStore::show() const {
  EndpointStatus s;
  STORCRYPT_ASSIGN_OR_RETURN(auto mode, read_optional(dir_ / kEndpoint / "mode"));
  STORCRYPT_ASSIGN_OR_RETURN(auto cert, read_certs_optional(dir_ / kEndpoint / "cert.pem"));
  if (mode && !cert.empty()) {
    s.mode = parse_mode(*mode);
    s.cert = cert.front().info();
    s.expiry = classify_expiry(s.cert->not_before, s.cert->not_after, now());
    STORCRYPT_ASSIGN_OR_RETURN(auto chain, read_certs_optional(dir_ / kEndpoint / "chain.pem"));
    for (const auto& c : chain) s.chain.push_back(c.info());
    STORCRYPT_ASSIGN_OR_RETURN(s.missing_issuer, missing_issuer(cert.front(), chain));
  }
  STORCRYPT_ASSIGN_OR_RETURN(auto root, read_certs_optional(dir_ / kCa / "cert.pem"));
  if (!root.empty()) s.root = root.front().info();
  s.csr_pending = detail::file_exists(dir_ / kPending / "csr.pem");
  return s;
}

Result<std::string> CertStore::export_root_pem() const {
  STORCRYPT_ASSIGN_OR_RETURN(auto root, read_certs_optional(dir_ / kCa / "cert.pem"));
  if (root.empty())
    return cert_error(ErrorCode::kNotFound, "xCertNoInternalRoot", "this system has no internal root CA",
                      "create an internally signed endpoint certificate with `storcrypt cert create --internal`");
  return root.front().to_pem();
}

Result<std::vector<Certificate>> CertStore::endpoint_chain() const {
  STORCRYPT_ASSIGN_OR_RETURN(auto cert, read_certs_optional(dir_ / kEndpoint / "cert.pem"));
  if (cert.empty())
    return cert_error(ErrorCode::kNotFound, "xCertNoEndpoint", "no endpoint certificate is installed",
                      "create one with `storcrypt cert create` or `storcrypt cert csr` + `storcrypt cert install`");
  STORCRYPT_ASSIGN_OR_RETURN(auto chain, read_certs_optional(dir_ / kEndpoint / "chain.pem"));
  cert.insert(cert.end(), chain.begin(), chain.end());
  return cert;
}

Result<std::string> CertStore::endpoint_chain_pem() const {
  STORCRYPT_ASSIGN_OR_RETURN(auto v, endpoint_chain());
  return chain_text(v);
}

Result<PrivateKey> CertStore::endpoint_key() const {
  STORCRYPT_ASSIGN_OR_RETURN(auto key, read_key_optional(dir_ / kEndpoint / "key.pem"));
  if (!key)
    return cert_error(ErrorCode::kNotFound, "xCertNoEndpoint", "no endpoint key is installed",
                      "create one with `storcrypt cert create` or `storcrypt cert csr` + `storcrypt cert install`");
  return std::move(*key);
}

Result<std::vector<ExpiryItem>> CertStore::expiry_report() const {
  std::vector<ExpiryItem> out;
  const UnixTime t = now();
  std::set<std::string> seen;  // the internal root is also in the endpoint's chain: report it once
  auto add = [&](const char* role, CertInfo i) {
    if (std::string_view(role) != "truststore" && !seen.insert(i.sha256_fingerprint).second) return;
    ExpiryItem e;
    e.role = role;
    e.cls = classify_expiry(i.not_before, i.not_after, t);
    e.seconds_left = i.not_after - t;
    e.cert = std::move(i);
    out.push_back(std::move(e));
  };
  STORCRYPT_ASSIGN_OR_RETURN(auto root, read_certs_optional(dir_ / kCa / "cert.pem"));
  for (const auto& c : root) add("internal-root", c.info());
  STORCRYPT_ASSIGN_OR_RETURN(auto cert, read_certs_optional(dir_ / kEndpoint / "cert.pem"));
  for (const auto& c : cert) add("endpoint", c.info());
  STORCRYPT_ASSIGN_OR_RETURN(auto chain, read_certs_optional(dir_ / kEndpoint / "chain.pem"));
  for (const auto& c : chain) add("endpoint-chain", c.info());
  STORCRYPT_ASSIGN_OR_RETURN(auto trusted, trust_list());
  for (auto& e : trusted) add("truststore", std::move(e.cert));
  return out;
}

}  // namespace storcrypt::certs
