#include "storcrypt/controller/rpc.h"

namespace storcrypt::controller::rpc {

using nlohmann::json;

namespace {

Error invalid_request(const std::string& what) {
  return Error(ErrorCode::kProtocol, "invalid JSON-RPC request: " + what,
               "send one JSON-RPC 2.0 request object per line, e.g. "
               "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"system.status\",\"params\":{}}",
               kNameInvalidRequest);
}

struct CategoryCode {
  ErrorCode category;
  int code;
  const char* name;
};

// The one table: category <-> JSON-RPC code <-> default stable name.
constexpr CategoryCode kTable[] = {
    {ErrorCode::kInvalidInput, kInvalidParams, "xInvalidInput"},
    {ErrorCode::kNotFound, -32001, "xNotFound"},
    {ErrorCode::kConflict, -32002, "xConflict"},
    {ErrorCode::kUnavailable, -32003, "xUnavailable"},
    {ErrorCode::kPermission, -32004, "xPermissionDenied"},
    {ErrorCode::kKernel, -32005, "xKernelError"},
    {ErrorCode::kTls, -32006, "xTlsError"},
    {ErrorCode::kProtocol, -32007, "xProtocolError"},
    {ErrorCode::kUnsupported, -32008, "xUnsupported"},
    {ErrorCode::kInternal, kInternalError, "xInternalError"},
};

std::optional<ErrorCode> category_from_name(std::string_view n) {
  for (const auto& row : kTable) {
    if (error_code_name(row.category) == n) return row.category;
  }
  return std::nullopt;
}

}  // namespace

Result<Request> parse_request(std::string_view text, json* id_out) {
  if (id_out) *id_out = nullptr;
  json j = json::parse(text.begin(), text.end(), nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) {
    return Error(ErrorCode::kProtocol, "request is not valid JSON", "send one JSON-RPC 2.0 request object per line",
                 kNameParseError);
  }
  if (j.is_array()) return invalid_request("batch requests are not supported");
  if (!j.is_object()) return invalid_request("the request must be a JSON object");
  Request r;
  auto id = j.find("id");
  if (id == j.end()) {
    r.notification = true;
  } else if (id->is_string() || id->is_number_integer() || id->is_number_unsigned() || id->is_null()) {
    r.id = *id;
    if (id_out) *id_out = *id;
  } else {
    return invalid_request("\"id\" must be a string, an integer or null");
  }
  auto ver = j.find("jsonrpc");
  if (ver == j.end() || !ver->is_string() || ver->get_ref<const std::string&>() != "2.0") {
    return invalid_request("\"jsonrpc\" must be \"2.0\"");
  }
  auto m = j.find("method");
  if (m == j.end() || !m->is_string() || m->get_ref<const std::string&>().empty()) {
    return invalid_request("\"method\" must be a non-empty string");
  }
  r.method = m->get<std::string>();
  auto p = j.find("params");
  if (p != j.end()) {
    if (p->is_array()) {
      return Error(ErrorCode::kInvalidInput, "positional params are not supported",
                   "pass \"params\" as an object of named parameters");
    }
    if (!p->is_object()) return invalid_request("\"params\" must be an object");
    r.params = *p;
  }
  for (const auto& [k, v] : j.items()) {
    if (k != "jsonrpc" && k != "id" && k != "method" && k != "params") {
      return invalid_request("unknown member \"" + k + "\"");
    }
  }
  return r;
}

int error_code_for(const Error& e) {
  if (e.name() == kNameParseError) return kParseError;
  if (e.name() == kNameInvalidRequest || e.name() == kNameRequestTooLarge) return kInvalidRequest;
  if (e.name() == kNameMethodNotFound) return kMethodNotFound;
  for (const auto& row : kTable) {
    if (row.category == e.code()) return row.code;
  }
  return kInternalError;
}

std::string default_error_name(ErrorCode c) {
  for (const auto& row : kTable) {
    if (row.category == c) return row.name;
  }
  return "xInternalError";
}

json error_object(const Error& e) {
  json data{{"name", e.name().empty() ? default_error_name(e.code()) : e.name()},
            {"category", error_code_name(e.code())},
            {"exit_code", category_exit_code(e.code())}};
  if (!e.fix().empty()) data["fix"] = e.fix();
  return json{{"code", error_code_for(e)}, {"message", e.message()}, {"data", std::move(data)}};
}

Error error_from_object(const json& obj) {
  if (!obj.is_object()) return Error(ErrorCode::kProtocol, "daemon sent a malformed error object");
  int code = obj.contains("code") && obj["code"].is_number_integer() ? obj["code"].get<int>() : kInternalError;
  std::string message =
      obj.contains("message") && obj["message"].is_string() ? obj["message"].get<std::string>() : "unknown error";
  std::optional<ErrorCode> cat;
  std::string name, fix;
  if (auto d = obj.find("data"); d != obj.end() && d->is_object()) {
    if (d->contains("category") && (*d)["category"].is_string())
      cat = category_from_name((*d)["category"].get<std::string>());
    if (d->contains("name") && (*d)["name"].is_string()) name = (*d)["name"].get<std::string>();
    if (d->contains("fix") && (*d)["fix"].is_string()) fix = (*d)["fix"].get<std::string>();
  }
  if (!cat) {
    switch (code) {
      case kParseError:
      case kInvalidRequest:
        cat = ErrorCode::kProtocol;
        break;
      case kMethodNotFound:
        cat = ErrorCode::kUnsupported;
        break;
      default:
        for (const auto& row : kTable) {
          if (row.code == code) cat = row.category;
        }
    }
  }
  return Error(cat.value_or(ErrorCode::kInternal), std::move(message), std::move(fix), std::move(name));
}

json success_response(const json& id, json result) {
  return json{{"jsonrpc", "2.0"}, {"id", id}, {"result", std::move(result)}};
}

json error_response(const json& id, const Error& e) {
  return json{{"jsonrpc", "2.0"}, {"id", id}, {"error", error_object(e)}};
}

std::string to_line(const json& response) { return response.dump(-1, ' ', false, json::error_handler_t::replace); }

}  // namespace storcrypt::controller::rpc
