// Peer verification cost: CertStore::verify_peer (reads the truststore from
// the state directory on every call, then X509_verify_cert and error mapping)
// against the baseline of a bare X509_verify_cert with a prebuilt X509_STORE,
// measured in the same run. Prints one figure per line.
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <stdlib.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>

#include "storcrypt/certs/certs.h"

using namespace storcrypt::certs;
using Clock = std::chrono::steady_clock;

static double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

int main(int argc, char** argv) {
  int n = argc > 1 ? std::atoi(argv[1]) : 2000;
  char tmpl[] = "/tmp/storcrypt-certs-bench-XXXXXX";
  if (mkdtemp(tmpl) == nullptr) return 1;
  std::filesystem::path dir = tmpl;
  struct Cleanup {
    std::filesystem::path d;
    ~Cleanup() { std::filesystem::remove_all(d); }
  } cleanup{dir};
  auto a = CertStore::open(dir / "a");
  auto b = CertStore::open(dir / "b");
  CreateOptions o;
  o.subject.common_name = "bench.example.com";
  if (!a.ok() || !b.ok() || !a->create_internal(o).ok()) return 1;
  // b trusts a's root plus 20 unrelated roots (a realistic truststore size).
  if (!b->trust_add(a->export_root_pem().value(), {TrustUse::kIpsec}).ok()) return 1;
  for (int i = 0; i < 20; ++i) {
    auto other = CertStore::open(dir / ("o" + std::to_string(i)));
    if (!other.ok() || !other->create_internal(o).ok()) return 1;
    if (!b->trust_add(other->export_root_pem().value(), {TrustUse::kIpsec}).ok()) return 1;
  }
  auto chain = a->endpoint_chain().value();
  VerifyOptions vo;

  X509_STORE* store = b->x509_store_for(TrustUse::kIpsec).value();
  auto t0 = Clock::now();
  for (int i = 0; i < n; ++i) {
    X509_STORE_CTX* ctx = X509_STORE_CTX_new();
    X509_STORE_CTX_init(ctx, store, chain[0].native(), nullptr);
    X509_STORE_CTX_set_purpose(ctx, X509_PURPOSE_SSL_SERVER);
    if (X509_verify_cert(ctx) != 1) return 2;
    X509_STORE_CTX_free(ctx);
  }
  double base = seconds_since(t0);
  X509_STORE_free(store);

  t0 = Clock::now();
  for (int i = 0; i < n; ++i)
    if (!b->verify_peer({chain[0]}, vo).ok()) return 3;
  double ours = seconds_since(t0);

  std::printf("certs_verify_peer_21_roots iterations=%d us_per_verify=%.1f\n", n, ours / n * 1e6);
  std::printf("certs_x509_verify_cert_prebuilt_store us_per_verify=%.1f\n", base / n * 1e6);
  std::printf("certs_verify_peer ratio_vs_prebuilt_x509_store=%.2f\n", ours / base);
  return 0;
}
