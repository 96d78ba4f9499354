#include "storcrypt/kmip/client.h"

#include <algorithm>
#include <atomic>
#include <charconv>
#include <cstdio>
#include <deque>
#include <mutex>

#include "tls_connection.h"

namespace storcrypt::kmip {

using detail::category_error;
using detail::Clock;
using detail::SessionPtr;
using detail::TlsConnection;

std::string_view failure_category_name(FailureCategory c) {
  switch (c) {
    case FailureCategory::kUnavailable:
      return "unavailable";
    case FailureCategory::kTlsError:
      return "tls-error";
    case FailureCategory::kAuthenticationFailed:
      return "authentication-failed";
    case FailureCategory::kInvalidCredentials:
      return "invalid-credentials";
    case FailureCategory::kServerError:
      return "server-error";
    case FailureCategory::kProtocolError:
      return "protocol-error";
    case FailureCategory::kOther:
      return "other";
  }
  return "other";
}

FailureCategory failure_category(const Error& e) {
  const std::string& n = e.name();
  if (n == "xKmipUnavailable") return FailureCategory::kUnavailable;
  if (n == "xKmipTlsError") return FailureCategory::kTlsError;
  if (n == "xKmipAuthenticationFailed") return FailureCategory::kAuthenticationFailed;
  if (n == "xKmipInvalidCredentials") return FailureCategory::kInvalidCredentials;
  if (n == "xKmipServerError") return FailureCategory::kServerError;
  if (n == "xKmipProtocolError") return FailureCategory::kProtocolError;
  return FailureCategory::kOther;
}

namespace {
constexpr std::string_view kReasonMarker = "[result reason 0x";

Error server_error(Operation op, const ResponseItem& it, const std::string& peer) {
  char code[16];
  std::snprintf(code, sizeof code, "%08X", static_cast<unsigned>(it.reason));
  std::string msg = "KMIP " + std::string(operation_name(op)) + " failed on " + peer + ": " +
                    std::string(result_reason_name(it.reason)) + " " + std::string(kReasonMarker) + code + "]";
  if (!it.message.empty()) msg += ": " + it.message;
  if (it.reason == ResultReason::kAuthenticationNotSuccessful)
    return category_error(FailureCategory::kAuthenticationFailed, msg,
                          "the key server did not accept the client identity: the client certificate needs "
                          "extended key usage clientAuth and must be registered/authorized on the server");
  std::string fix;
  switch (it.reason) {
    case ResultReason::kItemNotFound:
      fix = "check the object identifier; the object may have been destroyed";
      break;
    case ResultReason::kPermissionDenied:
      fix =
          "the object belongs to another client identity or its state forbids this operation (revoke before "
          "destroy)";
      break;
    case ResultReason::kOperationNotSupported:
      fix = "the key server does not implement this operation";
      break;
    default:
      fix = "see the server's result message";
  }
  Error e = category_error(FailureCategory::kServerError, msg, fix);
  if (it.reason == ResultReason::kItemNotFound) e = Error(ErrorCode::kNotFound, msg, fix, "xKmipServerError");
  if (it.reason == ResultReason::kPermissionDenied) e = Error(ErrorCode::kPermission, msg, fix, "xKmipServerError");
  return e;
}
}  // namespace

std::optional<ResultReason> server_result_reason(const Error& e) {
  if (failure_category(e) != FailureCategory::kServerError &&
      failure_category(e) != FailureCategory::kAuthenticationFailed)
    return std::nullopt;
  auto pos = e.message().find(kReasonMarker);
  if (pos == std::string::npos) return std::nullopt;
  // Exactly the 8 uppercase digits written by the %08X above.
  std::string_view digits = std::string_view(e.message()).substr(pos + kReasonMarker.size(), 8);
  std::uint32_t v = 0;
  auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), v, 16);
  if (digits.size() != 8 || ec != std::errc() || end != digits.data() + digits.size() ||
      std::any_of(digits.begin(), digits.end(), [](char c) { return c >= 'a' && c <= 'f'; }))
    return std::nullopt;
  return static_cast<ResultReason>(v);
}

struct ServerState {
  ServerEndpoint ep;
  std::mutex mu;
  std::deque<std::unique_ptr<TlsConnection>> idle;
  SessionPtr session;
  std::optional<ProtocolVersion> version;
  Clock::time_point down_until{};
};

struct Client::Impl {
  ClientConfig cfg;
  detail::SslCtxPtr ctx;
  std::vector<std::unique_ptr<ServerState>> servers;
  std::atomic<std::uint64_t> opened{0}, resumed{0}, requests{0}, retries{0}, failovers{0};
  mutable std::mutex stats_mu;
  std::string last_tls_version, last_cipher;

  struct Lease {
    std::unique_ptr<TlsConnection> conn;
    bool reused = false;
  };

  Result<Lease> acquire(ServerState& s, bool allow_reuse) {
    if (allow_reuse) {
      std::lock_guard<std::mutex> g(s.mu);
      while (!s.idle.empty()) {
        auto c = std::move(s.idle.back());
        s.idle.pop_back();
        if (Clock::now() - c->last_used() > cfg.max_idle_age || !c->idle_check()) continue;
        return Lease{std::move(c), true};
      }
    }
    SessionPtr sess;
    if (cfg.session_resumption) {
      std::lock_guard<std::mutex> g(s.mu);
      sess = s.session;
    }
    STORCRYPT_ASSIGN_OR_RETURN(
        auto c, TlsConnection::open(ctx.get(), s.ep, sess, cfg.tcp_keepalive, Clock::now() + cfg.connect_timeout));
    ++opened;
    if (c->resumed()) ++resumed;
    {
      std::lock_guard<std::mutex> g(stats_mu);
      last_tls_version = c->tls_version();
      last_cipher = c->cipher();
    }
    remember_session(s, *c);
    return Lease{std::move(c), false};
  }

  void remember_session(ServerState& s, const TlsConnection& c) {
    if (!cfg.session_resumption) return;
    auto sess = c.session();
    if (!sess) return;
    std::lock_guard<std::mutex> g(s.mu);
    s.session = std::move(sess);
  }

  void release(ServerState& s, std::unique_ptr<TlsConnection> c) {
    if (!c || c->peer_closed()) return;
    remember_session(s, *c);  // TLS 1.3 tickets arrive after the handshake
    std::lock_guard<std::mutex> g(s.mu);
    if (s.idle.size() < cfg.max_idle_connections) s.idle.push_back(std::move(c));
  }

  // One exchange on a connection. `sent` is set once any request byte may
  // have reached the server.
  Result<Response> exchange(TlsConnection& c, const Ttlv& request, bool& sent) {
    STORCRYPT_ASSIGN_OR_RETURN(Bytes wire, encode(request));
    ++requests;
    sent = true;
    auto deadline = Clock::now() + cfg.io_timeout;
    STORCRYPT_TRY(c.send(wire, deadline));
    STORCRYPT_ASSIGN_OR_RETURN(Bytes reply, c.receive(deadline));
    auto t = decode(std::span<const std::uint8_t>(reply.data(), reply.size()));
    if (!t.ok()) return category_error(FailureCategory::kProtocolError, t.error().message(), t.error().fix());
    auto r = parse_response(*t);
    if (!r.ok()) return category_error(FailureCategory::kProtocolError, r.error().message(), r.error().fix());
    return std::move(r).value();
  }

  // Discover Versions on a fresh connection (sent in a 1.1 header); falls
  // back to 1.0 when the server does not know the operation.
  Result<ProtocolVersion> negotiate(ServerState& s, TlsConnection& c) {
    if (cfg.fixed_version) return *cfg.fixed_version;
    {
      std::lock_guard<std::mutex> g(s.mu);
      if (s.version) return *s.version;
    }
    bool sent = false;
    auto req = build_request(ProtocolVersion{1, 1}, {discover_versions_request(cfg.versions)});
    STORCRYPT_ASSIGN_OR_RETURN(Response resp, exchange(c, req, sent));
    ProtocolVersion chosen{1, 0};
    if (resp.items.size() == 1 && resp.items[0].status == ResultStatus::kSuccess) {
      STORCRYPT_ASSIGN_OR_RETURN(auto server_versions, parse_discover_versions(resp.items[0]));
      bool found = false;
      for (const auto& mine : cfg.versions) {
        for (const auto& theirs : server_versions)
          if (mine == theirs) {
            chosen = mine;
            found = true;
            break;
          }
        if (found) break;
      }
      if (!found)
        return category_error(FailureCategory::kProtocolError,
                              "key server " + s.ep.to_string() + " supports none of the offered KMIP versions",
                              "offer a KMIP version the server supports");
    } else if (resp.items.size() == 1 && resp.items[0].reason != ResultReason::kOperationNotSupported &&
               resp.items[0].reason != ResultReason::kInvalidMessage) {
      return server_error(Operation::kDiscoverVersions, resp.items[0], s.ep.to_string());
    } else if (std::find(cfg.versions.begin(), cfg.versions.end(), chosen) == cfg.versions.end()) {
      return category_error(FailureCategory::kProtocolError,
                            "key server " + s.ep.to_string() +
                                " does not support Discover Versions, so it speaks KMIP 1.0, which is not offered",
                            "add KMIP 1.0 to the offered versions or upgrade the key server");
    }
    std::lock_guard<std::mutex> g(s.mu);
    s.version = chosen;
    return chosen;
  }

  void mark_down(ServerState& s) {
    std::lock_guard<std::mutex> g(s.mu);
    s.down_until = Clock::now() + cfg.server_retry_after;
    s.idle.clear();
    s.version.reset();
  }

  void mark_up(ServerState& s) {
    std::lock_guard<std::mutex> g(s.mu);
    s.down_until = Clock::time_point{};
  }

  static bool connection_level(const Error& e) {
    auto c = failure_category(e);
    return c == FailureCategory::kUnavailable || c == FailureCategory::kTlsError ||
           c == FailureCategory::kProtocolError || c == FailureCategory::kInvalidCredentials;
  }

  struct Attempt {
    Result<std::vector<BatchResult>> result{std::vector<BatchResult>{}};
    bool maybe_delivered = false;
  };

  Attempt try_server(ServerState& s, const BatchBuilder& build, bool idempotent, const RequestOptions& opts) {
    Attempt a;
    for (int attempt = 0; attempt < 2; ++attempt) {
      auto lease = acquire(s, attempt == 0);
      if (!lease.ok()) {
        a.result = std::move(lease).error();
        return a;
      }
      auto v = negotiate(s, *lease->conn);
      if (!v.ok()) {
        bool closed = lease->conn->peer_closed();
        a.result = std::move(v).error();
        if (lease->reused && closed) {  // stale pooled connection: retry fresh (nothing of ours was sent)
          ++retries;
          continue;
        }
        return a;
      }
      auto items = build(*v);
      if (!items.ok()) {
        release(s, std::move(lease->conn));
        a.result = std::move(items).error();
        return a;
      }
      Ttlv req = build_request(*v, *items, opts);
      bool sent = false;
      auto resp = exchange(*lease->conn, req, sent);
      if (!resp.ok()) {
        a.maybe_delivered = a.maybe_delivered || sent;
        bool retryable = lease->reused && lease->conn->peer_closed() && idempotent &&
                         failure_category(resp.error()) == FailureCategory::kUnavailable;
        a.result = std::move(resp).error();
        if (retryable) {
          ++retries;
          continue;
        }
        return a;
      }
      auto matched = match_batch(items->size(), std::move(resp).value());
      release(s, std::move(lease->conn));
      if (!matched.ok()) {
        a.result = category_error(FailureCategory::kProtocolError, matched.error().message(), matched.error().fix());
        return a;
      }
      std::vector<BatchResult> out;
      for (std::size_t i = 0; i < items->size(); ++i) {
        auto& m = (*matched)[i];
        Operation op = (*items)[i].operation;
        if (!m) {
          out.push_back(BatchResult{
              category_error(FailureCategory::kServerError, "KMIP " + std::string(operation_name(op)) +
                                                                " was not executed: the server stopped the batch at an "
                                                                "earlier failure")});
        } else if (m->status != ResultStatus::kSuccess) {
          out.push_back(BatchResult{server_error(op, *m, s.ep.to_string())});
        } else {
          out.push_back(BatchResult{std::move(*m)});
        }
      }
      a.result = std::move(out);
      return a;
    }
    return a;
  }

  Result<std::vector<BatchResult>> execute(const BatchBuilder& build, bool idempotent, const RequestOptions& opts) {
    if (servers.empty())
      return Error(ErrorCode::kInvalidInput, "no KMIP servers configured", "add at least one key server");
    auto now = Clock::now();
    std::vector<ServerState*> order, skipped;
    for (auto& s : servers) {
      std::lock_guard<std::mutex> g(s->mu);
      (s->down_until > now ? skipped : order).push_back(s.get());
    }
    order.insert(order.end(), skipped.begin(), skipped.end());  // down servers last, still tried
    std::string tried;
    std::optional<Error> last;
    for (std::size_t i = 0; i < order.size(); ++i) {
      ServerState& s = *order[i];
      if (i > 0) ++failovers;
      Attempt a = try_server(s, build, idempotent, opts);
      if (a.result.ok()) {
        mark_up(s);
        return std::move(a.result).value();
      }
      Error e = std::move(a.result).error();
      if (!connection_level(e)) return e;  // the server answered: no failover
      mark_down(s);
      if (!tried.empty()) tried += "; ";
      tried += e.message();
      if (a.maybe_delivered && !idempotent)
        return category_error(failure_category(e),
                              e.message() + " (the request may have been executed; not resent to avoid duplicates)",
                              "check with Locate whether the object exists before retrying");
      last = std::move(e);
    }
    if (order.size() == 1) return *last;
    return category_error(failure_category(*last), "all KMIP servers failed: " + tried, last->fix());
  }

  template <typename T, typename Parse>
  Result<T> single(const std::function<Result<RequestItem>(ProtocolVersion)>& make, bool idempotent, Parse parse) {
    auto r = execute(
        [&](ProtocolVersion v) -> Result<std::vector<RequestItem>> {
          STORCRYPT_ASSIGN_OR_RETURN(RequestItem it, make(v));
          return std::vector<RequestItem>{std::move(it)};
        },
        idempotent, {});
    if (!r.ok()) return std::move(r).error();
    auto& br = (*r)[0];
    if (!br.item.ok()) return br.item.error();
    auto parsed = parse(*br.item);
    if (!parsed.ok())
      return category_error(FailureCategory::kProtocolError, parsed.error().message(), parsed.error().fix());
    return parsed;
  }
};

Client::Client(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Client::~Client() = default;

Result<std::unique_ptr<Client>> Client::create(ClientConfig config) {
  if (config.servers.empty())
    return Error(ErrorCode::kInvalidInput, "no KMIP servers configured", "add at least one key server");
  for (const auto& s : config.servers)
    if (s.host.empty() || s.port == 0)
      return Error(ErrorCode::kInvalidInput, "KMIP server entry '" + s.to_string() + "' lacks host or port",
                   "give host and port (default 5696)");
  if (config.versions.empty() && !config.fixed_version)
    return Error(ErrorCode::kInvalidInput, "no KMIP versions to offer", "list at least one version");
  auto impl = std::make_unique<Impl>();
  STORCRYPT_ASSIGN_OR_RETURN(impl->ctx, detail::make_ssl_ctx(config.tls));
  for (const auto& ep : config.servers) {
    auto s = std::make_unique<ServerState>();
    s->ep = ep;
    impl->servers.push_back(std::move(s));
  }
  impl->cfg = std::move(config);
  return std::unique_ptr<Client>(new Client(std::move(impl)));
}

Result<std::vector<BatchResult>> Client::execute(const BatchBuilder& build, bool idempotent,
                                                 const RequestOptions& opts) {
  return impl_->execute(build, idempotent, opts);
}

Result<ProtocolVersion> Client::negotiated_version() {
  ProtocolVersion seen;
  auto r = impl_->execute(
      [&](ProtocolVersion v) -> Result<std::vector<RequestItem>> {
        seen = v;
        return std::vector<RequestItem>{query_request({QueryFunction::kOperations})};
      },
      true, {});
  if (!r.ok()) return std::move(r).error();
  return seen;
}

Result<std::vector<ProtocolVersion>> Client::discover_versions(const std::vector<ProtocolVersion>& offer) {
  return impl_->single<std::vector<ProtocolVersion>>(
      [&](ProtocolVersion) -> Result<RequestItem> { return discover_versions_request(offer); }, true,
      [](const ResponseItem& it) { return parse_discover_versions(it); });
}

Result<QueryResult> Client::query(const std::vector<QueryFunction>& functions) {
  return impl_->single<QueryResult>([&](ProtocolVersion) -> Result<RequestItem> { return query_request(functions); },
                                    true, [](const ResponseItem& it) { return parse_query(it); });
}

Result<std::string> Client::create_key(const CreateKeyParams& p) {
  return impl_->single<std::string>([&](ProtocolVersion v) { return create_request(p, v); }, false,
                                    [](const ResponseItem& it) { return parse_unique_identifier(it); });
}

Result<std::string> Client::register_object(const RegisterParams& p, const SecretBytes& material) {
  return impl_->single<std::string>([&](ProtocolVersion v) { return register_request(p, material, v); }, false,
                                    [](const ResponseItem& it) { return parse_unique_identifier(it); });
}

Result<ManagedObject> Client::get(const std::string& uid) {
  return impl_->single<ManagedObject>([&](ProtocolVersion) -> Result<RequestItem> { return get_request(uid); }, true,
                                      [](const ResponseItem& it) { return parse_get(it); });
}

Result<std::vector<Result<ManagedObject>>> Client::get_many(const std::vector<std::string>& uids) {
  if (uids.empty()) return std::vector<Result<ManagedObject>>{};
  auto r = impl_->execute(
      [&](ProtocolVersion) -> Result<std::vector<RequestItem>> {
        std::vector<RequestItem> items;
        for (const auto& u : uids) items.push_back(get_request(u));
        return items;
      },
      true, RequestOptions{std::nullopt, BatchErrorContinuationOption::kContinue, std::nullopt});
  if (!r.ok()) return std::move(r).error();
  std::vector<Result<ManagedObject>> out;
  for (auto& br : *r) {
    if (!br.item.ok()) {
      out.emplace_back(br.item.error());
      continue;
    }
    auto m = parse_get(*br.item);
    if (!m.ok())
      out.emplace_back(category_error(FailureCategory::kProtocolError, m.error().message(), m.error().fix()));
    else
      out.emplace_back(std::move(m).value());
  }
  return out;
}

Result<std::vector<std::string>> Client::locate(const LocateFilter& f) {
  return impl_->single<std::vector<std::string>>([&](ProtocolVersion v) { return locate_request(f, v); }, true,
                                                 [](const ResponseItem& it) { return parse_locate(it); });
}

namespace {
Status uid_status(Result<std::string> r) {
  if (!r.ok()) return std::move(r).error();
  return ok_status();
}
}  // namespace

Status Client::activate(const std::string& uid) {
  return uid_status(
      impl_->single<std::string>([&](ProtocolVersion) -> Result<RequestItem> { return activate_request(uid); }, true,
                                 [](const ResponseItem& it) { return parse_unique_identifier(it); }));
}

Status Client::revoke(const std::string& uid, const RevokeParams& p) {
  return uid_status(
      impl_->single<std::string>([&](ProtocolVersion) -> Result<RequestItem> { return revoke_request(uid, p); }, true,
                                 [](const ResponseItem& it) { return parse_unique_identifier(it); }));
}

Status Client::destroy(const std::string& uid) {
  return uid_status(
      impl_->single<std::string>([&](ProtocolVersion) -> Result<RequestItem> { return destroy_request(uid); }, true,
                                 [](const ResponseItem& it) { return parse_unique_identifier(it); }));
}

Result<std::vector<Attribute>> Client::get_attributes(const std::string& uid, const std::vector<std::string>& names) {
  auto r = impl_->single<GetAttributesResult>([&](ProtocolVersion v) { return get_attributes_request(uid, names, v); },
                                              true, [](const ResponseItem& it) { return parse_get_attributes(it); });
  if (!r.ok()) return std::move(r).error();
  return std::move(r->attributes);
}

Status Client::add_attribute(const std::string& uid, const Attribute& a) {
  return uid_status(impl_->single<std::string>([&](ProtocolVersion v) { return add_attribute_request(uid, a, v); },
                                               false,
                                               [](const ResponseItem& it) { return parse_unique_identifier(it); }));
}

Status Client::modify_attribute(const std::string& uid, const Attribute& a, const std::optional<Attribute>& current) {
  return uid_status(
      impl_->single<std::string>([&](ProtocolVersion v) { return modify_attribute_request(uid, a, v, current); }, true,
                                 [](const ResponseItem& it) { return parse_unique_identifier(it); }));
}

ClientStats Client::stats() const {
  ClientStats s;
  s.connections_opened = impl_->opened;
  s.sessions_resumed = impl_->resumed;
  s.requests = impl_->requests;
  s.retries_on_fresh_connection = impl_->retries;
  s.failovers = impl_->failovers;
  std::lock_guard<std::mutex> g(impl_->stats_mu);
  s.last_tls_version = impl_->last_tls_version;
  s.last_cipher = impl_->last_cipher;
  return s;
}

void Client::close_idle_connections() {
  for (auto& s : impl_->servers) {
    std::lock_guard<std::mutex> g(s->mu);
    s->idle.clear();
  }
}

}  // namespace storcrypt::kmip
