// Client logic with a scripted in-process TLS KMIP server (a fake, for the
// retry/failover rules PyKMIP cannot be made to exhibit on demand): one
// retry on a fresh connection only for idempotent operations, no blind
// resend of Create, ordered failover, skipping a failed server for a while.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

#include "storcrypt/kmip/client.h"

namespace storcrypt::kmip {
namespace {

// Self-signed EC certificate for 127.0.0.1 (server, client and CA at once).
struct TestCert {
  std::string dir, cert, key;
  TestCert() {
    char t[] = "/tmp/storcrypt-kmip-unit-XXXXXX";
    dir = mkdtemp(t);
    cert = dir + "/cert.pem";
    key = dir + "/key.pem";
    EVP_PKEY* pk = EVP_EC_gen("P-256");
    X509* x = X509_new();
    ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
    X509_gmtime_adj(X509_getm_notBefore(x), -60);
    X509_gmtime_adj(X509_getm_notAfter(x), 3600);
    X509_set_pubkey(x, pk);
    X509_NAME* n = X509_get_subject_name(x);
    X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_ASC, reinterpret_cast<const unsigned char*>("127.0.0.1"), -1, -1, 0);
    X509_set_issuer_name(x, n);
    X509V3_CTX ctx;
    X509V3_set_ctx_nodb(&ctx);
    X509V3_set_ctx(&ctx, x, x, nullptr, nullptr, 0);
    for (auto [nid, val] :
         {std::pair{NID_subject_alt_name, "IP:127.0.0.1"}, std::pair{NID_basic_constraints, "critical,CA:TRUE"}}) {
      X509_EXTENSION* e = X509V3_EXT_conf_nid(nullptr, &ctx, nid, val);
      X509_add_ext(x, e, -1);
      X509_EXTENSION_free(e);
    }
    X509_sign(x, pk, EVP_sha256());
    FILE* f = fopen(cert.c_str(), "w");
    PEM_write_X509(f, x);
    fclose(f);
    f = fopen(key.c_str(), "w");
    PEM_write_PrivateKey(f, pk, nullptr, nullptr, 0, nullptr, nullptr);
    fclose(f);
    X509_free(x);
    EVP_PKEY_free(pk);
  }
  ~TestCert() {
    unlink(cert.c_str());
    unlink(key.c_str());
    rmdir(dir.c_str());
  }
};

enum class Action { kRespond, kCloseWithoutReply, kNeverReply };

struct FakeOptions {
  bool close_on_accept = false;
  bool discover_versions_unsupported = false;  ///< answer Discover Versions with Operation Not Supported
  std::string client_ca;                       ///< when set: require a client certificate from this CA
};

class FakeServer {
 public:
  // policy(connection index, request index on that connection, request) -> action
  using Policy = std::function<Action(int, int, const Ttlv&)>;
  FakeServer(const TestCert& c, Policy p, bool close_on_accept = false)
      : FakeServer(c, std::move(p), FakeOptions{close_on_accept, false, {}}) {}
  FakeServer(const TestCert& c, Policy p, FakeOptions o)
      : policy_(std::move(p)), close_on_accept_(o.close_on_accept), opts_(std::move(o)) {
    ctx_ = SSL_CTX_new(TLS_server_method());
    SSL_CTX_use_certificate_file(ctx_, c.cert.c_str(), SSL_FILETYPE_PEM);
    SSL_CTX_use_PrivateKey_file(ctx_, c.key.c_str(), SSL_FILETYPE_PEM);
    if (!opts_.client_ca.empty()) {
      SSL_CTX_load_verify_locations(ctx_, opts_.client_ca.c_str(), nullptr);
      SSL_CTX_set_verify(ctx_, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, nullptr);
    }
    fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;
    setsockopt(fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a);
    listen(fd_, 16);
    getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len);
    port_ = ntohs(a.sin_port);
    acceptor_ = std::thread([this] { accept_loop(); });
  }
  ~FakeServer() {
    stop_ = true;
    shutdown(fd_, SHUT_RDWR);
    close(fd_);
    acceptor_.join();
    {
      std::lock_guard<std::mutex> g(mu_);
      for (int c : conns_) shutdown(c, SHUT_RDWR);
    }
    for (auto& t : workers_) t.join();
    SSL_CTX_free(ctx_);
  }
  std::uint16_t port() const { return port_; }
  int accepts() const { return accepts_; }
  std::vector<Operation> ops() {
    std::lock_guard<std::mutex> g(mu_);
    return ops_;
  }

 private:
  void accept_loop() {
    while (!stop_) {
      int c = accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (c < 0) return;
      int idx = accepts_++;
      if (close_on_accept_) {
        close(c);
        continue;
      }
      std::lock_guard<std::mutex> g(mu_);
      conns_.push_back(c);
      workers_.emplace_back([this, c, idx] { serve(c, idx); });
    }
  }
  static bool read_n(SSL* s, std::uint8_t* p, std::size_t n) {
    std::size_t have = 0;
    while (have < n) {
      int r = SSL_read(s, p + have, static_cast<int>(n - have));
      if (r <= 0) return false;
      have += static_cast<std::size_t>(r);
    }
    return true;
  }
  void serve(int c, int conn_idx) {
    SSL* s = SSL_new(ctx_);
    SSL_set_fd(s, c);
    if (SSL_accept(s) == 1) {
      for (int req_idx = 0;; ++req_idx) {
        std::vector<std::uint8_t> buf(8);
        if (!read_n(s, buf.data(), 8)) break;
        std::size_t len =
            (std::size_t{buf[4]} << 24) | (std::size_t{buf[5]} << 16) | (std::size_t{buf[6]} << 8) | buf[7];
        buf.resize(8 + len);
        if (!read_n(s, buf.data() + 8, len)) break;
        auto req = decode(buf);
        if (!req.ok()) break;
        for (const Ttlv* bi : req->find_all(tag::kBatchItem)) {
          std::lock_guard<std::mutex> g(mu_);
          ops_.push_back(static_cast<Operation>(bi->find(tag::kOperation)->num));
        }
        Action act = policy_(conn_idx, req_idx, *req);
        if (act == Action::kCloseWithoutReply) break;
        if (act == Action::kNeverReply) {
          std::uint8_t b;
          SSL_read(s, &b, 1);  // until the client gives up or the server stops
          break;
        }
        auto out = encode(respond(*req, opts_));
        SSL_write(s, out->data(), static_cast<int>(out->size()));
      }
    }
    SSL_free(s);
    close(c);
  }
  static Ttlv respond(const Ttlv& req, const FakeOptions& o) {
    auto items = req.find_all(tag::kBatchItem);
    Ttlv msg = Ttlv::structure(
        tag::kResponseMessage,
        {Ttlv::structure(tag::kResponseHeader, {encode_protocol_version({1, 4}), Ttlv::date_time(tag::kTimeStamp, 1),
                                                Ttlv::integer(tag::kBatchCount, static_cast<int>(items.size()))})});
    for (const Ttlv* bi : items) {
      auto op = static_cast<Operation>(bi->find(tag::kOperation)->num);
      Ttlv out = Ttlv::structure(tag::kBatchItem, {Ttlv::enumeration(tag::kOperation, static_cast<std::uint32_t>(op))});
      if (const Ttlv* id = bi->find(tag::kUniqueBatchItemId)) out.add(*id);
      if (op == Operation::kDiscoverVersions && o.discover_versions_unsupported) {
        out.add(Ttlv::enumeration(tag::kResultStatus, 1));
        out.add(Ttlv::enumeration(tag::kResultReason, 5));
        out.add(Ttlv::text_string(tag::kResultMessage, "no such operation"));
        msg.add(std::move(out));
        continue;
      }
      out.add(Ttlv::enumeration(tag::kResultStatus, 0));
      Ttlv p = Ttlv::structure(tag::kResponsePayload);
      if (op == Operation::kDiscoverVersions) {
        p.add(encode_protocol_version({1, 4}));
      } else if (op == Operation::kGet) {
        std::vector<std::uint8_t> key(32, 0x11);
        p.add(Ttlv::enumeration(tag::kObjectType, 2));
        p.add(Ttlv::text_string(tag::kUniqueIdentifier, "k1"));
        p.add(Ttlv::structure(
            tag::kSymmetricKey,
            {Ttlv::structure(
                tag::kKeyBlock,
                {Ttlv::enumeration(tag::kKeyFormatType, 1),
                 Ttlv::structure(tag::kKeyValue, {Ttlv::byte_string(tag::kKeyMaterial, key)}),
                 Ttlv::enumeration(tag::kCryptographicAlgorithm, 3), Ttlv::integer(tag::kCryptographicLength, 256)})}));
      } else {
        p.add(Ttlv::text_string(tag::kUniqueIdentifier, "k1"));
      }
      out.add(std::move(p));
      msg.add(std::move(out));
    }
    return msg;
  }

  SSL_CTX* ctx_ = nullptr;
  int fd_ = -1;
  std::uint16_t port_ = 0;
  Policy policy_;
  bool close_on_accept_;
  FakeOptions opts_;
  std::atomic<bool> stop_{false};
  std::atomic<int> accepts_{0};
  std::thread acceptor_;
  std::mutex mu_;
  std::vector<int> conns_;
  std::vector<std::thread> workers_;
  std::vector<Operation> ops_;
};

ClientConfig config(const TestCert& c, std::vector<std::uint16_t> ports) {
  ClientConfig cfg;
  for (auto p : ports) cfg.servers.push_back({"127.0.0.1", p, {}});
  cfg.tls.ca_file = c.cert;
  cfg.tls.cert_file = c.cert;
  cfg.tls.key_file = c.key;
  cfg.connect_timeout = std::chrono::milliseconds(3000);
  cfg.io_timeout = std::chrono::milliseconds(3000);
  return cfg;
}

long count(const std::vector<Operation>& ops, Operation op) { return std::count(ops.begin(), ops.end(), op); }

// Connection 0 answers Discover Versions and one more request, then swallows
// the third request and closes (a server restart racing with a pooled connection).
Action drop_third_on_first_connection(int conn, int req, const Ttlv&) {
  return (conn == 0 && req == 2) ? Action::kCloseWithoutReply : Action::kRespond;
}

TEST(KmipClientLogic, IdempotentGetRetriesOnceOnFreshConnection) {
  TestCert cert;
  FakeServer srv(cert, drop_third_on_first_connection);
  auto c = Client::create(config(cert, {srv.port()}));
  ASSERT_TRUE(c.ok()) << c.error().to_string();
  ASSERT_TRUE((*c)->get("k1").ok());
  auto r = (*c)->get("k1");
  ASSERT_TRUE(r.ok()) << r.error().to_string();
  EXPECT_EQ(r->material.size(), 32u);
  EXPECT_EQ((*c)->stats().retries_on_fresh_connection, 1u);
  EXPECT_EQ(srv.accepts(), 2);
  EXPECT_EQ(count(srv.ops(), Operation::kGet), 3);
}

TEST(KmipClientLogic, CreateIsNotResentAfterConnectionLoss) {
  TestCert cert;
  FakeServer srv(cert, drop_third_on_first_connection);
  auto c = Client::create(config(cert, {srv.port()}));
  ASSERT_TRUE(c.ok());
  ASSERT_TRUE((*c)->get("k1").ok());
  auto r = (*c)->create_key(CreateKeyParams{});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(failure_category(r.error()), FailureCategory::kUnavailable);
  EXPECT_NE(r.error().message().find("may have been executed"), std::string::npos) << r.error().message();
  EXPECT_EQ(count(srv.ops(), Operation::kCreate), 1);
  EXPECT_EQ((*c)->stats().retries_on_fresh_connection, 0u);
}

TEST(KmipClientLogic, CreateIsNotFailedOverAfterDelivery) {
  TestCert cert;
  FakeServer primary(
      cert, [](int, int req, const Ttlv&) { return req == 1 ? Action::kCloseWithoutReply : Action::kRespond; });
  FakeServer secondary(cert, [](int, int, const Ttlv&) { return Action::kRespond; });
  auto c = Client::create(config(cert, {primary.port(), secondary.port()}));
  ASSERT_TRUE(c.ok());
  auto r = (*c)->create_key(CreateKeyParams{});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(count(primary.ops(), Operation::kCreate), 1);
  EXPECT_EQ(count(secondary.ops(), Operation::kCreate), 0);
  // An idempotent Get in the same situation fails over.
  auto g = (*c)->get("k1");
  EXPECT_TRUE(g.ok()) << g.error().to_string();
}

TEST(KmipClientLogic, OrderedFailoverSkipsFailedServerForAWhile) {
  TestCert cert;
  FakeServer broken(cert, nullptr, /*close_on_accept=*/true);
  FakeServer good(cert, [](int, int, const Ttlv&) { return Action::kRespond; });
  auto cfg = config(cert, {broken.port(), good.port()});
  cfg.server_retry_after = std::chrono::milliseconds(60000);
  auto c = Client::create(cfg);
  ASSERT_TRUE(c.ok());
  for (int i = 0; i < 3; ++i) {
    auto r = (*c)->get("k1");
    ASSERT_TRUE(r.ok()) << r.error().to_string();
  }
  EXPECT_EQ(broken.accepts(), 1);  // tried once, then skipped
  EXPECT_EQ(good.accepts(), 1);    // one pooled connection
  EXPECT_EQ((*c)->stats().failovers, 1u);
}

TEST(KmipClientLogic, AllServersDownIsUnavailable) {
  TestCert cert;
  FakeServer a(cert, nullptr, true);
  FakeServer b(cert, nullptr, true);
  auto c = Client::create(config(cert, {a.port(), b.port()}));
  ASSERT_TRUE(c.ok());
  auto r = (*c)->get("k1");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(failure_category(r.error()), FailureCategory::kUnavailable);
  EXPECT_NE(r.error().message().find("all KMIP servers failed"), std::string::npos);
}

TEST(KmipClientLogic, BatchOf50GetsIsOneRoundTrip) {
  TestCert cert;
  FakeServer srv(cert, [](int, int, const Ttlv&) { return Action::kRespond; });
  auto c = Client::create(config(cert, {srv.port()}));
  ASSERT_TRUE(c.ok());
  std::vector<std::string> uids(50, "k1");
  auto r = (*c)->get_many(uids);
  ASSERT_TRUE(r.ok()) << r.error().to_string();
  ASSERT_EQ(r->size(), 50u);
  for (auto& m : *r) EXPECT_TRUE(m.ok());
  EXPECT_EQ((*c)->stats().requests, 2u);  // Discover Versions + one batch
}

Action always_respond(int, int, const Ttlv&) { return Action::kRespond; }

TEST(KmipClientLogic, FallsBackToKmip10WithoutDiscoverVersions) {
  TestCert cert;
  std::vector<int> minors;
  std::mutex mu;
  FakeServer srv(
      cert,
      [&](int, int, const Ttlv& req) {
        const Ttlv* pv = req.find(tag::kRequestHeader)->find(tag::kProtocolVersion);
        std::lock_guard<std::mutex> g(mu);
        minors.push_back(static_cast<int>(pv->find(tag::kProtocolVersionMinor)->num));
        return Action::kRespond;
      },
      FakeOptions{false, true, {}});
  auto c = Client::create(config(cert, {srv.port()}));
  ASSERT_TRUE(c.ok());
  auto v = (*c)->negotiated_version();
  ASSERT_TRUE(v.ok()) << v.error().to_string();
  EXPECT_EQ(*v, (ProtocolVersion{1, 0}));
  std::lock_guard<std::mutex> g(mu);
  ASSERT_EQ(minors.size(), 2u);
  EXPECT_EQ(minors[0], 1);  // Discover Versions goes in a KMIP 1.1 header
  EXPECT_EQ(minors[1], 0);  // then the request speaks 1.0
}

TEST(KmipClientLogic, ReadTimeoutIsUnavailable) {
  TestCert cert;
  FakeServer srv(cert, [](int, int req, const Ttlv&) { return req == 1 ? Action::kNeverReply : Action::kRespond; });
  auto cfg = config(cert, {srv.port()});
  cfg.io_timeout = std::chrono::milliseconds(300);
  auto c = Client::create(cfg);
  ASSERT_TRUE(c.ok());
  auto r = (*c)->get("k1");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(failure_category(r.error()), FailureCategory::kUnavailable);
  EXPECT_NE(r.error().message().find("timed out"), std::string::npos) << r.error().message();
}

TEST(KmipClientLogic, Tls13ClientCertificateRejectedIsInvalidCredentials) {
  TestCert cert;
  TestCert other;  // the server trusts only this CA, not our certificate
  FakeServer srv(cert, always_respond, FakeOptions{false, false, other.cert});
  auto c = Client::create(config(cert, {srv.port()}));
  ASSERT_TRUE(c.ok());
  auto r = (*c)->get("k1");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(failure_category(r.error()), FailureCategory::kInvalidCredentials) << r.error().to_string();
}

TEST(KmipClientLogic, TlsVersionsAndCipherPreference) {
  TestCert cert;
  FakeServer srv(cert, always_respond);
  auto cfg = config(cert, {srv.port()});
  cfg.tls.allow_tls13 = false;
  auto c = Client::create(cfg);
  ASSERT_TRUE(c.ok());
  EXPECT_TRUE((*c)->get("k1").ok());
  EXPECT_EQ((*c)->stats().last_tls_version, "TLSv1.2");
  EXPECT_EQ((*c)->stats().last_cipher, "ECDHE-ECDSA-AES256-GCM-SHA384");  // first in our list
  auto c13 = Client::create(config(cert, {srv.port()}));
  ASSERT_TRUE(c13.ok());
  EXPECT_TRUE((*c13)->get("k1").ok());
  EXPECT_EQ((*c13)->stats().last_tls_version, "TLSv1.3");
}

TEST(KmipClientLogic, ConcurrentCallersSharePooledConnections) {
  TestCert cert;
  FakeServer srv(cert, always_respond);
  auto cfg = config(cert, {srv.port()});
  cfg.max_idle_connections = 4;
  auto c = Client::create(cfg);
  ASSERT_TRUE(c.ok());
  std::atomic<int> ok{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([&] {
      for (int i = 0; i < 20; ++i)
        if ((*c)->get("k1").ok()) ++ok;
    });
  for (auto& t : threads) t.join();
  EXPECT_EQ(ok.load(), 80);
  // At most one connection per concurrent caller; later calls reuse them.
  EXPECT_LE((*c)->stats().connections_opened, 4u);
}

TEST(KmipClientLogic, ConfigValidation) {
  TestCert cert;
  auto cfg = config(cert, {});
  EXPECT_EQ(Client::create(cfg).error().code(), ErrorCode::kInvalidInput);
  cfg = config(cert, {5696});
  cfg.tls.cert_file = "/nonexistent/cert.pem";
  auto r = Client::create(cfg);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(failure_category(r.error()), FailureCategory::kInvalidCredentials) << r.error().to_string();
  EXPECT_NE(r.error().message().find("/nonexistent/cert.pem"), std::string::npos);
}

TEST(KmipClientLogic, CategoryNamesAreStable) {
  EXPECT_EQ(failure_category_name(FailureCategory::kUnavailable), "unavailable");
  EXPECT_EQ(failure_category_name(FailureCategory::kTlsError), "tls-error");
  EXPECT_EQ(failure_category_name(FailureCategory::kAuthenticationFailed), "authentication-failed");
  EXPECT_EQ(failure_category_name(FailureCategory::kInvalidCredentials), "invalid-credentials");
  EXPECT_EQ(failure_category_name(FailureCategory::kServerError), "server-error");
  EXPECT_EQ(failure_category_name(FailureCategory::kProtocolError), "protocol-error");
  EXPECT_EQ(failure_category(Error(ErrorCode::kInternal, "x")), FailureCategory::kOther);
}

}  // namespace
}  // namespace storcrypt::kmip
