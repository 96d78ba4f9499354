// storcrypt controller: the API method table.
//
// HOW TO ADD A NOUN (volume, keymedia, policy, key, ipsec, ...)
// Each noun lives in two files and touches no core file except one line in
// each of the two lists in src/nouns.cpp:
//
//   controller/src/nouns/<noun>_methods.cpp   (daemon side)
//     Status register_<noun>_methods(Dispatcher& d, Context& ctx) {
//       // optional: ctx.db->migrate("<noun>", {...}); ctx.events->define({...});
//       //           ctx.journal->register_handler("<noun>.<op>", ...);
//       //           ctx.set_service(std::make_shared<MyService>(...));
//       return d.add({"<noun>.<verb>", "one-line summary",
//                     {{"id", ParamType::kInteger, true, "volume id"}},
//                     /*mutating=*/true,
//                     [&ctx](const Params& p) -> Result<nlohmann::json> { ... }});
//     }
//   controller/src/cli/<noun>_commands.cpp    (CLI side, see client.h)
//     void add_<noun>_commands(CLI::App& app, ClientContext& cc);
//
// and declare both in include/storcrypt/controller/nouns.h. Method names are
// "<noun>.<verb>" with the CLI's noun and verb (or an Element API name in
// CamelCase, e.g. EnableEncryptionAtRest); params are named (an object),
// validated against the ParamSpec list before the handler runs (missing,
// wrong type and unknown parameters are refused with the parameter's name), so
// handlers only check meaning (ranges, formats). Handlers return Result<json>;
// errors map to JSON-RPC errors in rpc.cpp only. Handlers run on worker
// threads: shared state must be synchronised (Db, Journal and EventLog are).
// Handlers never log key material; they do not log at all (the request loop
// logs method, caller and outcome).
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <typeindex>
#include <vector>

#include "storcrypt/common/result.h"
#include "storcrypt/controller/config.h"
#include "storcrypt/controller/db.h"
#include "storcrypt/controller/events.h"
#include "storcrypt/controller/journal_store.h"

namespace storcrypt::controller {

enum class ParamType { kString, kInteger, kBoolean, kObject, kArray, kAny };
std::string_view param_type_name(ParamType t);

struct ParamSpec {
  std::string name;
  ParamType type = ParamType::kString;
  bool required = false;
  std::string help;
};

/// Who called (from SO_PEERCRED); uid -1 for in-process calls.
struct PeerInfo {
  int64_t uid = -1;
  int64_t gid = -1;
  int64_t pid = -1;
};

/// Validated named parameters of one call.
class Params {
 public:
  Params(const nlohmann::json& j, PeerInfo peer) : j_(j), peer_(peer) {}
  const nlohmann::json& json() const { return j_; }
  const PeerInfo& peer() const { return peer_; }
  bool has(const std::string& name) const { return j_.contains(name) && !j_[name].is_null(); }
  std::string str(const std::string& name, std::string dflt = {}) const;
  int64_t integer(const std::string& name, int64_t dflt = 0) const;
  bool boolean(const std::string& name, bool dflt = false) const;
  /// A positive integer id (>= 1) or an invalid-input error naming the parameter.
  Result<int64_t> id(const std::string& name) const;

 private:
  const nlohmann::json& j_;
  PeerInfo peer_;
};

using Handler = std::function<Result<nlohmann::json>(const Params&)>;

struct MethodSpec {
  std::string name;     ///< "<noun>.<verb>"
  std::string summary;  ///< one line
  std::vector<ParamSpec> params;
  bool mutating = false;  ///< changes state (informational; shown by rpc.discover)
  Handler handler;
};

class Dispatcher {
 public:
  Dispatcher();
  /// Register a method. A duplicate or malformed name is a conflict error.
  Status add(MethodSpec spec);
  const MethodSpec* find(const std::string& name) const;
  std::vector<std::string> method_names() const;

  /// Validate params against the method's spec and call it.
  Result<nlohmann::json> call(const std::string& method, const nlohmann::json& params, PeerInfo peer = {}) const;

  /// One request line in, one response line out ("" for a notification).
  /// Never throws; a throwing handler becomes an internal error.
  std::string handle_text(std::string_view request, PeerInfo peer = {}) const;

  /// Outcome of the last handle_text call for logging: method and error name.
  struct Outcome {
    std::string method;
    std::string error;  ///< empty on success
  };
  std::string handle_text(std::string_view request, PeerInfo peer, Outcome* outcome) const;

 private:
  std::map<std::string, MethodSpec> methods_;
};

/// Registers methods whose handlers run on one service object with its
/// `mu` (a std::mutex member) held; `resolve` finds the service per call, or
/// says why it is unavailable (not configured, failed to load):
///   ServiceMethods<VolumeService> methods(d, [st] { return service(*st); });
///   STORCRYPT_TRY(methods.add("volume.open", "...", {...}, true,
///                             [](VolumeService& s, const Params& p) -> Result<nlohmann::json> { ... }));
template <typename Svc>
class ServiceMethods {
 public:
  using Resolve = std::function<Result<Svc*>()>;
  using Fn = std::function<Result<nlohmann::json>(Svc&, const Params&)>;
  ServiceMethods(Dispatcher& d, Resolve resolve) : d_(d), resolve_(std::move(resolve)) {}
  Status add(std::string name, std::string summary, std::vector<ParamSpec> params, bool mutating, Fn fn) {
    return d_.add({std::move(name), std::move(summary), std::move(params), mutating,
                   [resolve = resolve_, fn = std::move(fn)](const Params& p) -> Result<nlohmann::json> {
                     STORCRYPT_ASSIGN_OR_RETURN(Svc * s, resolve());
                     std::lock_guard lock(s->mu);
                     return fn(*s, p);
                   }});
  }

 private:
  Dispatcher& d_;
  Resolve resolve_;
};

/// One finding of `system doctor`.
struct CheckResult {
  std::string area;    ///< "state", "kernel", "versions", "certificates", ...
  std::string check;   ///< short name, e.g. "state-dir-writable"
  std::string status;  ///< "ok", "warning", "error" or "critical"
  std::string detail;  ///< what was found
  std::string fix;     ///< what to do (empty when ok)
};
/// A doctor contributor: modules register one at start-up.
using DoctorCheck = std::function<std::vector<CheckResult>()>;

/// Daemon-wide state handed to noun modules at registration.
struct Context {
  Config config;
  std::string config_path;
  Db* db = nullptr;
  storcrypt::journal::Journal* journal = nullptr;
  EventLog* events = nullptr;
  std::string version;
  int64_t started_unix = 0;
  std::chrono::steady_clock::time_point started = std::chrono::steady_clock::now();

  /// Add checks to `system doctor` (call during registration only).
  void add_doctor_check(DoctorCheck c) { doctor_checks.push_back(std::move(c)); }
  std::vector<DoctorCheck> doctor_checks;

  /// Background work a noun module starts once storcryptd has recovered its
  /// journal, before it serves requests (call during registration only; not
  /// run by tests that only register methods).
  void add_start_hook(std::function<void()> h) { start_hooks.push_back(std::move(h)); }
  std::vector<std::function<void()>> start_hooks;

  /// Services owned by noun modules, found by type (e.g. a VolumeService a
  /// keymedia module also needs).
  template <typename T>
  void set_service(std::shared_ptr<T> s) {
    std::lock_guard lock(services_mu_);
    services_[std::type_index(typeid(T))] = std::move(s);
  }
  template <typename T>
  std::shared_ptr<T> service() const {
    std::lock_guard lock(services_mu_);
    auto it = services_.find(std::type_index(typeid(T)));
    return it == services_.end() ? nullptr : std::static_pointer_cast<T>(it->second);
  }

 private:
  mutable std::mutex services_mu_;
  std::map<std::type_index, std::shared_ptr<void>> services_;
};

}  // namespace storcrypt::controller
