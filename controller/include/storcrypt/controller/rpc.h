// storcrypt controller: JSON-RPC 2.0 framing and THE mapping between the
// project Error and JSON-RPC error objects (both directions live here only).
//
// Transport: a Unix stream socket; each request is one JSON object on one line
// (terminated by '\n', or by the client shutting down its write side); each
// response is one line. Batches are not supported. Requests without "id" are
// notifications: executed, never answered.
//
// Error object:
//   {"code": -32001, "message": "event 7 does not exist",
//    "data": {"name": "xEventNotFound", "category": "not-found",
//             "fix": "list events with `storcrypt event list`", "exit_code": 3}}
//
// Codes: -32700 parse error, -32600 invalid request (protocol), -32601 method
// not found (unsupported), -32602 invalid params (invalid-input), -32603
// internal, and per category: -32001 not-found, -32002 conflict, -32003
// unavailable, -32004 permission, -32005 kernel, -32006 tls, -32007 protocol
// (a peer of the daemon spoke bad protocol), -32008 unsupported.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

#include "storcrypt/common/result.h"

namespace storcrypt::controller::rpc {

inline constexpr int kParseError = -32700;
inline constexpr int kInvalidRequest = -32600;
inline constexpr int kMethodNotFound = -32601;
inline constexpr int kInvalidParams = -32602;
inline constexpr int kInternalError = -32603;

/// Stable names for the protocol-level errors.
inline constexpr const char* kNameParseError = "xParseError";
inline constexpr const char* kNameInvalidRequest = "xInvalidRequest";
inline constexpr const char* kNameMethodNotFound = "xMethodNotFound";
inline constexpr const char* kNameRequestTooLarge = "xRequestTooLarge";
inline constexpr const char* kNameRequestTimeout = "xRequestTimeout";
inline constexpr const char* kNamePermissionDenied = "xPermissionDenied";

struct Request {
  nlohmann::json id;  ///< string, number or null; absent -> notification
  bool notification = false;
  std::string method;
  nlohmann::json params = nlohmann::json::object();
};

/// Parse and validate the JSON-RPC envelope of one request line. On failure
/// the Error carries kNameParseError or kNameInvalidRequest; *id_out receives
/// the request id when one could be read (so the error response can carry it).
Result<Request> parse_request(std::string_view text, nlohmann::json* id_out);

/// JSON-RPC numeric error code for an Error (by name for protocol errors,
/// otherwise by category).
int error_code_for(const Error& e);
/// Default stable name when an Error has none, e.g. "xNotFound".
std::string default_error_name(ErrorCode c);
/// The JSON-RPC error object for an Error.
nlohmann::json error_object(const Error& e);
/// Back from an error object (client side). Unknown shapes become kProtocol.
Error error_from_object(const nlohmann::json& obj);

nlohmann::json success_response(const nlohmann::json& id, nlohmann::json result);
nlohmann::json error_response(const nlohmann::json& id, const Error& e);

/// THE serialization of every response line the daemon sends (no '\n').
/// Never throws: a string that is not UTF-8 (a file name read from a disk,
/// kernel or database text that reached a result or message) has each bad
/// byte replaced by U+FFFD instead of aborting the reply.
std::string to_line(const nlohmann::json& response);

}  // namespace storcrypt::controller::rpc
