// RPC adapter of the `ike` noun: ike.peer.{add,remove,show,list,up,down},
// ike.list and ike.show. The rules live in ike/ike_service.h; the seam and the
// event codes in include/storcrypt/controller/ike.h.
#include <spdlog/spdlog.h>

#include <cstdio>
#include <nlohmann/json.hpp>

#include "cert_service.h"
#include "ike/ike_service.h"
#include "storcrypt/controller/ike.h"
#include "storcrypt/controller/nouns.h"

namespace storcrypt::controller {

using nlohmann::json;

namespace {

/// What the ike noun keeps in the Context: the service, or why there is none.
struct IkeState {
  std::shared_ptr<IkeService> svc;
  std::optional<Error> load_error;
};

Result<IkeService*> ike_service(IkeState& st) {
  if (st.load_error) return Error(*st.load_error);
  if (!st.svc)
    return Error(ErrorCode::kUnavailable, "the IKE peer store is not available (no state database)",
                 "run storcryptd with a state directory", "xIkeUnavailable");
  return st.svc.get();
}

std::vector<std::string> split_list(const std::string& s) {
  std::vector<std::string> out;
  std::size_t start = 0;
  while (start <= s.size()) {
    auto comma = s.find(',', start);
    std::string item = s.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
    out.push_back(item);
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  if (out.size() == 1 && out[0].empty()) out.clear();
  return out;
}

std::string hex(std::uint64_t v, int width) {
  char buf[24];
  std::snprintf(buf, sizeof buf, "%0*llx", width, static_cast<unsigned long long>(v));
  return buf;
}

json endpoint_json(const ike::Endpoint& e) { return json{{"address", e.addr.to_string()}, {"port", e.port}}; }

json sa_json(const ike::IkeSaStatus& s) {
  json children = json::array();
  for (const auto& c : s.children) {
    json lts = json::array(), rts = json::array();
    for (const auto& t : c.info.local_ts) lts.push_back(ts_text(t));
    for (const auto& t : c.info.remote_ts) rts.push_back(ts_text(t));
    json j{{"suite", suite_name(c.info.suite)},
           {"reqid", c.info.slot.reqid},
           {"spi_in", hex(c.info.slot.spi_in, 8)},
           {"spi_out", hex(c.info.spi_out, 8)},
           {"local_ts", lts},
           {"remote_ts", rts},
           {"encap", c.info.encap ? json{{"local_port", c.info.encap->first}, {"remote_port", c.info.encap->second}}
                                  : json(nullptr)}};
    if (c.counters)
      j["counters"] = json{{"bytes_in", c.counters->bytes_in},
                           {"packets_in", c.counters->packets_in},
                           {"bytes_out", c.counters->bytes_out},
                           {"packets_out", c.counters->packets_out}};
    else
      j["counters"] = nullptr;
    children.push_back(j);
  }
  return json{{"peer", s.peer},
              {"role", s.role == ike::IkeRole::kInitiator ? "initiator" : "responder"},
              {"state", std::string(ike::ike_state_name(s.state))},
              {"suite", s.suite.encr ? json(suite_name(s.suite)) : json(nullptr)},
              {"spi_i", hex(s.spi_i, 16)},
              {"spi_r", hex(s.spi_r, 16)},
              {"local", endpoint_json(s.local)},
              {"remote", endpoint_json(s.remote)},
              {"nat", s.nat},
              {"children", children}};
}

json peer_json(IkeService& svc, const IkePeerSpec& p) {
  json j = p.to_json();
  if (j["local"] == "") j["local"] = nullptr;
  if (j["id"] == "") j["id"] = "dn";
  if (j["remote_id"] == "") j["remote_id"] = nullptr;
  auto sas = svc.sas(p.name);
  std::string state = "down";
  for (const auto& s : sas) {
    if (s.state == ike::IkeState::kEstablished) {
      state = "up";
      break;
    }
    if (s.state != ike::IkeState::kDeleted && s.state != ike::IkeState::kFailed) state = "connecting";
  }
  j["state"] = state;
  j["ike_sas"] = sas.size();
  if (auto e = svc.last_event(p.name))
    j["last_event"] = json{{"kind", e->kind}, {"reason", e->reason}, {"time", e->time}};
  else
    j["last_event"] = nullptr;
  return j;
}

std::shared_ptr<IkeState> ike_state(Context& ctx) {
  auto st = std::make_shared<IkeState>();
  if (!ctx.db) return st;
  auto certs = cert_service(ctx);
  if (!certs.ok()) {
    st->load_error = certs.error();
    return st;
  }
  IkeService::Deps deps;
  deps.db = ctx.db;
  deps.certs = *certs;
  deps.events = ctx.events;
  ike::RunnerOptions& o = deps.runner_options;
  for (const auto& a : split_list(ctx.config.ike_listen)) {
    std::string t = a;
    while (!t.empty() && (t.front() == ' ' || t.front() == '\t')) t.erase(0, 1);
    while (!t.empty() && (t.back() == ' ' || t.back() == '\t')) t.pop_back();
    auto ip = IpAddress::parse(t, "ike_listen");
    if (!ip.ok()) {
      st->load_error = ip.error();  // parse_config validated it; a Context built by hand may not be
      return st;
    }
    o.udp.addresses.push_back(*ip);
  }
  o.udp.ike_port = static_cast<std::uint16_t>(ctx.config.ike_port);
  o.udp.natt_port = static_cast<std::uint16_t>(ctx.config.ike_natt_port);
  o.engine.cookie_threshold = ctx.config.ike_cookie_threshold;
  o.engine.cookie_threshold_ip = ctx.config.ike_cookie_threshold_ip;
  o.engine.block_threshold = ctx.config.ike_block_threshold;
  o.engine.half_open_limit = ctx.config.ike_half_open_limit;
  deps.half_open_timeout = std::chrono::seconds(ctx.config.ike_half_open_timeout_seconds);
  if (auto f = ctx.service<IkeRunnerFactory>()) {
    deps.factory = *f;
  } else {
    deps.factory.start = [](const ike::RunnerOptions& opts, std::function<void(const ike::Event&)> cb) {
      return ike::Runner::start(opts, std::move(cb));
    };
  }
  auto svc = std::make_shared<IkeService>(std::move(deps));
  if (Status s = svc->load(); !s.ok())
    st->load_error = s.error();
  else
    st->svc = svc;
  return st;
}

IkePeerSpec spec_from(const Params& p) {
  IkePeerSpec s;
  s.name = p.str("name");
  s.remote = p.str("remote");
  s.local = p.str("local");
  s.local_ts = split_list(p.str("local_ts"));
  s.remote_ts = split_list(p.str("remote_ts"));
  s.id = p.str("id");
  s.remote_id = p.str("remote_id");
  if (p.has("ike_proposal")) s.ike_proposal = p.str("ike_proposal");
  if (p.has("esp_proposal")) s.esp_proposal = p.str("esp_proposal");
  if (p.has("start")) s.start = p.str("start");
  if (p.has("dpd_action")) s.dpd_action = p.str("dpd_action");
  return s;
}

}  // namespace

Status register_ike_methods(Dispatcher& d, Context& ctx) {
  auto st = ike_state(ctx);
  if (ctx.events)
    for (auto& def : ike_event_defs()) ctx.events->define(def);
  if (st->svc) {
    ctx.add_start_hook([svc = st->svc] {
      std::lock_guard lock(svc->mu);
      Status s = svc->start_up();
      if (!s.ok())
        spdlog::error("ike: start-up: {}", s.error().to_string());
      else if (svc->running())
        spdlog::info("ike: key exchange started for {} peer(s)", svc->peers().size());
    });
  }
  ctx.add_doctor_check([st] {
    std::vector<CheckResult> out;
    if (st->load_error) out.push_back({"ike", "state", "error", st->load_error->message(), st->load_error->fix()});
    return out;
  });

  ServiceMethods<IkeService> methods(d, [st] { return ike_service(*st); });
  const ParamSpec name{"name", ParamType::kString, true, "peer name"};
  STORCRYPT_TRY(methods.add(
      "ike.peer.add", "configure an IKEv2 peer (our certificate: the endpoint certificate)",
      {name,
       {"remote", ParamType::kString, true, "the peer's IP address"},
       {"local", ParamType::kString, false, "this node's address (default: any of the peer's family)"},
       {"local_ts", ParamType::kString, true, "our side's prefixes, comma-separated"},
       {"remote_ts", ParamType::kString, true, "the peer's side's prefixes, comma-separated"},
       {"id", ParamType::kString, false, "our ID: dn (default: the certificate's subject), fqdn:NAME or ip:ADDR"},
       {"remote_id", ParamType::kString, false, "the ID the peer must use: fqdn:NAME, ip:ADDR or dn:DN"},
       {"ike_proposal", ParamType::kString, false, std::string("IKE proposals (default ") + kDefaultIkeProposal + ")"},
       {"esp_proposal", ParamType::kString, false, std::string("ESP proposals (default ") + kDefaultEspProposal + ")"},
       {"start", ParamType::kString, false, "none (default) or start: bring up when storcryptd starts"},
       {"dpd_action", ParamType::kString, false,
        "none (default) or restart: initiate again (every 30 s) when the peer is found dead"}},
      true, [](IkeService& s, const Params& p) -> Result<json> {
        STORCRYPT_ASSIGN_OR_RETURN(auto spec, s.add_peer(spec_from(p)));
        return json{{"peer", peer_json(s, spec)}};
      }));
  STORCRYPT_TRY(methods.add("ike.peer.remove", "delete a peer's IKE SAs and forget the peer", {name}, true,
                            [](IkeService& s, const Params& p) -> Result<json> {
                              STORCRYPT_TRY(s.remove_peer(p.str("name")));
                              return json{{"removed", p.str("name")}};
                            }));
  STORCRYPT_TRY(methods.add("ike.peer.show", "one peer's configuration and state", {name}, false,
                            [](IkeService& s, const Params& p) -> Result<json> {
                              STORCRYPT_ASSIGN_OR_RETURN(auto spec, s.peer(p.str("name")));
                              return json{{"peer", peer_json(s, spec)}};
                            }));
  STORCRYPT_TRY(methods.add("ike.peer.list", "configured peers and their state", {}, false,
                            [](IkeService& s, const Params&) -> Result<json> {
                              json arr = json::array();
                              for (const auto& p : s.peers()) arr.push_back(peer_json(s, p));
                              return json{{"peers", arr}};
                            }));
  STORCRYPT_TRY(methods.add("ike.peer.up", "initiate an IKE SA with a peer (asynchronous: see ike list)", {name}, true,
                            [](IkeService& s, const Params& p) -> Result<json> {
                              STORCRYPT_TRY(s.up(p.str("name")));
                              return json{{"peer", p.str("name")}, {"initiated", true}};
                            }));
  STORCRYPT_TRY(methods.add("ike.peer.down", "delete a peer's IKE SAs (and their CHILD_SAs)", {name}, true,
                            [](IkeService& s, const Params& p) -> Result<json> {
                              STORCRYPT_TRY(s.down(p.str("name")));
                              return json{{"peer", p.str("name")}, {"terminated", true}};
                            }));
  STORCRYPT_TRY(methods.add("ike.list", "IKE SAs with their CHILD_SAs, suites, SPIs and counters", {}, false,
                            [](IkeService& s, const Params&) -> Result<json> {
                              json arr = json::array();
                              for (const auto& sa : s.sas()) arr.push_back(sa_json(sa));
                              json eps = json::array();
                              for (const auto& e : s.endpoints()) eps.push_back(endpoint_json(e));
                              json out{{"running", s.running()}, {"listening", eps}, {"sas", arr}};
                              if (auto d = s.dos_stats())
                                out["dos"] = {{"half_open", d->half_open},
                                              {"cookies_sent", d->cookies_sent},
                                              {"bad_cookies", d->bad_cookies},
                                              {"blocked", d->blocked},
                                              {"over_limit", d->over_limit}};
                              return out;
                            }));
  STORCRYPT_TRY(methods.add("ike.show", "one peer's IKE SAs", {{"peer", ParamType::kString, true, "peer name"}},
                            false, [](IkeService& s, const Params& p) -> Result<json> {
                              STORCRYPT_ASSIGN_OR_RETURN(auto spec, s.peer(p.str("peer")));
                              json arr = json::array();
                              for (const auto& sa : s.sas(spec.name)) arr.push_back(sa_json(sa));
                              return json{{"peer", peer_json(s, spec)}, {"sas", arr}};
                            }));
  return ok_status();
}

}  // namespace storcrypt::controller
