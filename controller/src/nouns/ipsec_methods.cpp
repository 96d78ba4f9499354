// RPC adapter of the `ipsec` noun (enforcement in the kernel: enable,
// disable, default, status), and what the three IPsec nouns share: the one
// IpsecService of the daemon (ipsec_state), its start-up restore, the
// integrity watcher's ticker and the doctor check. State and start-up
// behaviour: include/storcrypt/controller/ipsec.h; rules: ipsec/ipsec_service.h.
#include <ifaddrs.h>
#include <netinet/in.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include <charconv>
#include <fstream>
#include <iterator>
#include <nlohmann/json.hpp>
#include <sstream>

#include "ipsec_rpc.h"
#include "storcrypt/controller/ipsec.h"
#include "storcrypt/controller/nouns.h"
#include "storcrypt/netlink/xfrm_api.h"

namespace storcrypt::controller {

using nlohmann::json;
namespace pol = storcrypt::policy;

Result<std::vector<IpAddress>> interface_addresses() {
  struct ifaddrs* list = nullptr;
  if (::getifaddrs(&list) != 0)
    return Error(ErrorCode::kUnavailable,
                 std::string("reading this node's interface addresses failed: ") + std::strerror(errno));
  std::vector<IpAddress> out;
  for (const struct ifaddrs* i = list; i; i = i->ifa_next) {
    if (!i->ifa_addr) continue;
    IpAddress a;
    if (i->ifa_addr->sa_family == AF_INET) {
      a.family = Family::kIPv4;
      std::memcpy(a.bytes.data(), &reinterpret_cast<const sockaddr_in*>(i->ifa_addr)->sin_addr, 4);
      if (a.bytes[0] == 127) continue;  // loopback: never a partner's destination
    } else if (i->ifa_addr->sa_family == AF_INET6) {
      a.family = Family::kIPv6;
      std::memcpy(a.bytes.data(), &reinterpret_cast<const sockaddr_in6*>(i->ifa_addr)->sin6_addr, 16);
      if (a == *IpAddress::parse("::1")) continue;
    } else {
      continue;
    }
    if (std::find(out.begin(), out.end(), a) == out.end()) out.push_back(a);
  }
  ::freeifaddrs(list);
  return out;
}

Result<IpsecService*> ipsec_service(IpsecState& st) {
  if (st.load_error) return Error(*st.load_error);
  if (!st.svc)
    return Error(ErrorCode::kUnavailable, "the IPsec policy store is not available (no state database)",
                 "run storcryptd with a state directory", "xIpsecUnavailable");
  return st.svc.get();
}

std::shared_ptr<IpsecState> ipsec_state(Context& ctx) {
  if (auto s = ctx.service<IpsecState>()) return s;
  auto st = std::make_shared<IpsecState>();
  if (ctx.db) {
    if (Status m = IpsecStore::migrate(*ctx.db); !m.ok()) {
      st->load_error = m.error();
      ctx.set_service(st);
      return st;
    }
    IpsecKernel kernel;
    if (auto k = ctx.service<IpsecKernel>()) {
      kernel = *k;
    } else {
      kernel.open = [](const netlink::Ownership& own) {
        netlink::XfrmOptions o;
        o.ownership = own;
        return netlink::open_xfrm(o);
      };
      kernel.stats = []() -> Result<std::map<std::string, std::uint64_t>> {
        std::ifstream in("/proc/net/xfrm_stat");
        if (!in)
          return Error(ErrorCode::kUnsupported,
                       "/proc/net/xfrm_stat is missing (kernel without CONFIG_XFRM_STATISTICS)");
        std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
        return parse_xfrm_stat(text);
      };
      kernel.local_addresses = interface_addresses;
    }
    auto store = std::make_unique<IpsecStore>(*ctx.db, ctx.config.state_directory + "/ipsec-keys");
    auto svc = std::make_shared<IpsecService>(std::move(store), kernel);
    svc->set_warn_kernel_policies(ctx.config.policy_warn_kernel_policies);
    if (Status s = svc->load(); !s.ok()) {
      st->load_error = s.error();
    } else {
      // Before the daemon's journal.recover(): unfinished IPsec changes settle there.
      if (ctx.journal) svc->use_journal(*ctx.journal);
      st->svc = svc;
    }
  }
  ctx.set_service(st);
  return st;
}

json report_json(const pol::ValidationReport& r) {
  json arr = json::array();
  for (const auto& d : r.diagnostics)
    arr.push_back(json{{"severity", d.severity == pol::Severity::kError ? "error" : "warning"},
                       {"policy", d.policy},
                       {"message", d.message},
                       {"fix", d.fix}});
  return arr;
}

json stats_json(const std::optional<pol::ApplyStats>& s) {
  if (!s) return nullptr;
  return json{{"policies_added", s->policies_added},     {"policies_updated", s->policies_updated},
              {"policies_deleted", s->policies_deleted}, {"sas_added", s->sas_added},
              {"sas_replaced", s->sas_replaced},         {"sas_deleted", s->sas_deleted}};
}

Result<std::map<std::string, std::uint64_t>> parse_xfrm_stat(std::string_view text) {
  std::map<std::string, std::uint64_t> out;
  std::istringstream in{std::string(text)};
  std::size_t lineno = 0;
  for (std::string line; std::getline(in, line);) {
    ++lineno;
    if (line.empty()) continue;
    std::istringstream fields(line);
    std::string name, value, extra;
    fields >> name >> value >> extra;
    std::uint64_t v = 0;
    auto [p, ec] = std::from_chars(value.data(), value.data() + value.size(), v);
    if (name.empty() || value.empty() || !extra.empty() || ec != std::errc{} || p != value.data() + value.size())
      return Error(ErrorCode::kProtocol, "xfrm_stat line " + std::to_string(lineno) + " is not '<name> <count>'");
    out[name] = v;
  }
  return out;
}

Status register_ipsec_methods(Dispatcher& d, Context& ctx) {
  auto st = ipsec_state(ctx);
  if (ctx.events) {
    ctx.events->define(ipsec_integrity_event());
    ctx.events->define(ipsec_restore_event());
  }
  if (st->svc) {
    ctx.add_start_hook([st, events = ctx.events] {
      {
        std::lock_guard lock(st->svc->mu);
        Status s = st->svc->restore();
        if (!s.ok()) {
          spdlog::error("ipsec: restoring enforcement: {}", s.error().to_string());
          st->svc->set_restore_error(s.error());
          if (events) (void)events->raise(kIpsecRestoreEvent, "IPsec enforcement not restored: " + s.error().message());
        } else if (st->svc->enabled()) {
          spdlog::info("ipsec: committed policy list enforced");
        }
      }
      auto every = interval_from_env("STORCRYPT_IPSEC_WATCH_SECONDS", std::chrono::seconds(10), 3600);
      if (!events) return;
      st->watcher = std::make_unique<IntegrityWatcher>(*events);
      st->ticker = std::make_unique<Ticker>(every, [svc = st->svc, w = st->watcher.get()] {
        std::lock_guard lock(svc->mu);
        // LocalAddress ANY in transport mode follows the node's addresses.
        auto followed = svc->follow_addresses();
        if (!followed.ok()) {
          spdlog::error("ipsec: following this node's addresses: {}", followed.error().to_string());
        } else if (*followed) {
          spdlog::info("ipsec: this node's addresses changed; SAs of LocalAddress ANY policies follow them");
        }
        w->pass(*svc);
      });
    });
  }
  ctx.add_doctor_check([st] {
    std::vector<CheckResult> out;
    if (st->load_error) {
      out.push_back({"ipsec", "state", "error", st->load_error->message(), st->load_error->fix()});
      return out;
    }
    if (!st->svc) return out;
    std::lock_guard lock(st->svc->mu);
    if (const auto& e = st->svc->restore_error())
      out.push_back({"ipsec", "enforcement", "critical", "not restored at start-up: " + e->message(),
                     "fix the cause, then run 'storcrypt ipsec enable'"});
    else
      out.push_back({"ipsec", "enforcement", "ok",
                     st->svc->enabled() ? "committed policy list enforced" : "IPsec policy enforcement disabled", ""});
    return out;
  });

  ServiceMethods<IpsecService> methods(d, [st] { return ipsec_service(*st); });
  STORCRYPT_TRY(methods.add("ipsec.enable", "enforce the committed policy list in the kernel", {}, true,
                            [](IpsecService& s, const Params&) -> Result<json> {
                              STORCRYPT_ASSIGN_OR_RETURN(auto stats, s.enable());
                              return json{{"enabled", true}, {"applied", stats_json(stats)}};
                            }));
  STORCRYPT_TRY(methods.add("ipsec.disable", "remove every policy and SA storcrypt installed (and nothing else)", {},
                            true, [](IpsecService& s, const Params&) -> Result<json> {
                              STORCRYPT_ASSIGN_OR_RETURN(auto stats, s.disable());
                              return json{{"enabled", false}, {"applied", stats_json(stats)}};
                            }));
  STORCRYPT_TRY(
      methods.add("ipsec.default", "show or set the disposition of traffic no policy matches",
                  {{"disposition", ParamType::kString, false, "IPv6Only, BYPASS, DENY or DENYALL"}}, true,
                  [](IpsecService& s, const Params& p) -> Result<json> {
                    std::optional<pol::ApplyStats> applied;
                    if (p.has("disposition")) {
                      STORCRYPT_ASSIGN_OR_RETURN(auto dd, pol::parse_default_disposition(p.str("disposition")));
                      STORCRYPT_ASSIGN_OR_RETURN(applied, s.set_default(dd));
                    }
                    return json{{"default", pol::to_string(s.default_disposition())}, {"applied", stats_json(applied)}};
                  }));
  STORCRYPT_TRY(methods.add("ipsec.status", "enforced policies with packet/byte counters and drops", {}, false,
                            [](IpsecService& s, const Params&) -> Result<json> {
                              json r{{"enabled", s.enabled()},
                                     {"default", pol::to_string(s.default_disposition())},
                                     {"committed_policies", s.committed().size()},
                                     {"uncommitted_changes", s.uncommitted() != s.committed()}};
                              json arr = json::array();
                              if (s.enabled()) {
                                STORCRYPT_ASSIGN_OR_RETURN(auto rows, s.status());
                                for (const auto& e : rows) {
                                  json j{{"name", e.name},
                                         {"priority", e.priority},
                                         {"direction", e.direction},
                                         {"action", e.action},
                                         {"kernel_policies", e.kernel_policies}};
                                  if (e.sa)
                                    j["sa"] = json{{"id", e.sa->to_string()},
                                                   {"packets", e.counters.packets},
                                                   {"bytes", e.counters.bytes},
                                                   {"integrity_failed", e.counters.integrity_failed},
                                                   {"replay_errors", e.counters.replay_errors},
                                                   {"replay_window_errors", e.counters.replay_window_errors}};
                                  arr.push_back(j);
                                }
                              }
                              r["policies"] = arr;
                              r["kernel_counters"] = s.kernel_stats();
                              return r;
                            }));
  return ok_status();
}

}  // namespace storcrypt::controller
