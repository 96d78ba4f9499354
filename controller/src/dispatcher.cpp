#include "storcrypt/controller/dispatcher.h"

#include <exception>

#include "storcrypt/controller/rpc.h"

namespace storcrypt::controller {

using nlohmann::json;

std::string_view param_type_name(ParamType t) {
  switch (t) {
    case ParamType::kString:
      return "string";
    case ParamType::kInteger:
      return "integer";
    case ParamType::kBoolean:
      return "boolean";
    case ParamType::kObject:
      return "object";
    case ParamType::kArray:
      return "array";
    case ParamType::kAny:
      return "any";
  }
  return "any";
}

std::string Params::str(const std::string& name, std::string dflt) const {
  return has(name) && j_[name].is_string() ? j_[name].get<std::string>() : dflt;
}

int64_t Params::integer(const std::string& name, int64_t dflt) const {
  return has(name) && j_[name].is_number_integer() ? j_[name].get<int64_t>() : dflt;
}

bool Params::boolean(const std::string& name, bool dflt) const {
  return has(name) && j_[name].is_boolean() ? j_[name].get<bool>() : dflt;
}

Result<int64_t> Params::id(const std::string& name) const {
  if (!has(name) || !j_[name].is_number_integer() || j_[name].get<int64_t>() < 1) {
    return Error(ErrorCode::kInvalidInput, "parameter '" + name + "' must be a positive integer id",
                 "pass the id shown by the list command");
  }
  return j_[name].get<int64_t>();
}

namespace {

bool type_matches(const json& v, ParamType t) {
  switch (t) {
    case ParamType::kString:
      return v.is_string();
    case ParamType::kInteger:
      return v.is_number_integer();
    case ParamType::kBoolean:
      return v.is_boolean();
    case ParamType::kObject:
      return v.is_object();
    case ParamType::kArray:
      return v.is_array();
    case ParamType::kAny:
      return true;
  }
  return false;
}

bool valid_method_name(const std::string& n) {
  if (n.empty() || n.size() > 64) return false;
  // An Element API name (EnableEncryptionAtRest, SecureEraseDrives, ...): CamelCase, no dot.
  if (n[0] >= 'A' && n[0] <= 'Z') {
    for (char c : n)
      if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))) return false;
    return true;
  }
  size_t dot = n.find('.');
  if (dot == std::string::npos || dot == 0 || dot + 1 == n.size()) return false;
  for (char c : n) {
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '-' || c == '_')) return false;
  }
  return true;
}

Status validate(const MethodSpec& spec, const json& params) {
  if (!params.is_object()) {
    return Error(ErrorCode::kInvalidInput, "params of '" + spec.name + "' must be an object of named parameters");
  }
  for (const auto& p : spec.params) {
    auto it = params.find(p.name);
    if (it == params.end() || it->is_null()) {
      if (p.required) {
        return Error(ErrorCode::kInvalidInput, "missing required parameter '" + p.name + "' of '" + spec.name + "'",
                     p.help.empty() ? "" : "give " + p.name + ": " + p.help, "xMissingParameter");
      }
      continue;
    }
    if (!type_matches(*it, p.type)) {
      return Error(ErrorCode::kInvalidInput,
                   "parameter '" + p.name + "' of '" + spec.name + "' must be " + std::string(param_type_name(p.type)) +
                       ", got " + std::string(it->type_name()),
                   p.help, "xInvalidParameter");
    }
  }
  for (const auto& [k, v] : params.items()) {
    bool known = false;
    for (const auto& p : spec.params) known = known || p.name == k;
    if (!known) {
      std::string names;
      for (const auto& p : spec.params) names += (names.empty() ? "" : ", ") + p.name;
      return Error(ErrorCode::kInvalidInput, "unknown parameter '" + k + "' for '" + spec.name + "'",
                   names.empty() ? "this method takes no parameters" : "known parameters: " + names,
                   "xUnknownParameter");
    }
  }
  return ok_status();
}

}  // namespace

Dispatcher::Dispatcher() {
  // Introspection: the method table with parameter specs.
  (void)add(
      {"rpc.discover", "list the API's methods and their parameters", {}, false, [this](const Params&) -> Result<json> {
         json out = json::array();
         for (const auto& [name, m] : methods_) {
           json ps = json::array();
           for (const auto& p : m.params) {
             ps.push_back(
                 {{"name", p.name}, {"type", param_type_name(p.type)}, {"required", p.required}, {"help", p.help}});
           }
           out.push_back({{"method", name}, {"summary", m.summary}, {"mutating", m.mutating}, {"params", ps}});
         }
         return json{{"methods", out}};
       }});
}

Status Dispatcher::add(MethodSpec spec) {
  if (!valid_method_name(spec.name)) {
    return Error(ErrorCode::kInvalidInput, "method name '" + spec.name + "' is not of the form noun.verb");
  }
  if (!spec.handler) return Error(ErrorCode::kInvalidInput, "method '" + spec.name + "' has no handler");
  if (methods_.count(spec.name)) {
    return Error(ErrorCode::kConflict, "method '" + spec.name + "' is registered twice");
  }
  std::string name = spec.name;
  methods_.emplace(std::move(name), std::move(spec));
  return ok_status();
}

const MethodSpec* Dispatcher::find(const std::string& name) const {
  auto it = methods_.find(name);
  return it == methods_.end() ? nullptr : &it->second;
}

std::vector<std::string> Dispatcher::method_names() const {
  std::vector<std::string> out;
  for (const auto& [n, m] : methods_) out.push_back(n);
  return out;
}

Result<json> Dispatcher::call(const std::string& method, const json& params, PeerInfo peer) const {
  const MethodSpec* m = find(method);
  if (m == nullptr) {
    return Error(ErrorCode::kUnsupported, "unknown method '" + method + "'",
                 "check the method name; `rpc.discover` lists the methods this storcryptd serves",
                 rpc::kNameMethodNotFound);
  }
  STORCRYPT_TRY(validate(*m, params));
  try {
    return m->handler(Params(params, peer));
  } catch (const std::exception& e) {
    // Handlers should not throw; a stray exception (e.g. from nlohmann::json
    // on a bug) must not take the daemon down.
    return Error(ErrorCode::kInternal, "method '" + method + "' failed unexpectedly: " + e.what(),
                 "report this bug with the output of `storcrypt system doctor`");
  }
}

std::string Dispatcher::handle_text(std::string_view request, PeerInfo peer) const {
  return handle_text(request, peer, nullptr);
}

std::string Dispatcher::handle_text(std::string_view request, PeerInfo peer, Outcome* outcome) const {
  json id;
  auto req = rpc::parse_request(request, &id);
  json response;
  if (!req.ok()) {
    if (outcome)
      *outcome = {"", req.error().name().empty() ? rpc::default_error_name(req.error().code()) : req.error().name()};
    response = rpc::error_response(id, req.error());
  } else {
    auto r = call(req->method, req->params, peer);
    if (outcome) {
      outcome->method = req->method;
      outcome->error.clear();
      if (!r.ok())
        outcome->error = r.error().name().empty() ? rpc::default_error_name(r.error().code()) : r.error().name();
    }
    if (req->notification) return {};
    response = r.ok() ? rpc::success_response(req->id, std::move(r).value()) : rpc::error_response(req->id, r.error());
  }
  return rpc::to_line(response);
}

}  // namespace storcrypt::controller
