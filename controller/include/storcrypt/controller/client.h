// storcrypt controller: the admin command's side of the API.
//
// ClientContext is what every CLI noun module gets: the global options
// (--socket, --json, --timeout), call() to talk to storcryptd, and run() which
// calls a method and prints the outcome in the documented shapes:
//
//   human (default): tables/key-value text on stdout; errors on stderr as
//       storcrypt: error: <message>
//         fix: <fix>
//   --json: exactly one JSON document on stdout, success or failure:
//       {"version":1,"ok":true,"result":<the API method's result>}
//       {"version":1,"ok":false,"error":{"code":-32001,"name":"xEventNotFound",
//         "category":"not-found","message":"...","fix":"...","exit_code":3}}
//
// Exit codes come from category_exit_code() (0 ok, 1 usage, 2 invalid input,
// 3 not found, 4 conflict, 5 unavailable, 6 permission, 7 kernel, 8 tls,
// 9 protocol, 10 unsupported, 70 internal).
#pragma once

#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "storcrypt/common/result.h"
#include "storcrypt/controller/config.h"

namespace storcrypt::controller {

inline constexpr int kJsonOutputVersion = 1;
inline constexpr int kExitUsage = 1;

/// Send one request on a fresh connection and wait for its response.
Result<nlohmann::json> rpc_call(const std::string& socket_path, const std::string& method, const nlohmann::json& params,
                                int timeout_seconds);

class ClientContext {
 public:
  std::string socket_path = kDefaultSocketPath;
  bool json_output = false;  ///< --json
  int timeout_seconds = 60;
  int exit_code = 0;

  Result<nlohmann::json> call(const std::string& method, const nlohmann::json& params = nlohmann::json::object());
  /// Call a method; on success print with human() (or the JSON envelope), on
  /// failure print the error and set exit_code.
  void run(const std::string& method, const nlohmann::json& params,
           const std::function<void(const nlohmann::json&)>& human);
  /// Report an error detected before any request (bad local input).
  void fail(const Error& e);
};

/// Read a (public) input file for a request; "-" reads stdin. Refuses files
/// larger than max_bytes with a clear error.
Result<std::string> read_input_file(const std::string& path, size_t max_bytes = 512 * 1024);
/// Write text to path (mode 0644, replacing it), or stdout for "" / "-".
Status write_output_file(const std::string& path, const std::string& text);

/// Print rows under headers, columns padded to their widest cell.
void print_table(const std::vector<std::string>& headers, const std::vector<std::vector<std::string>>& rows);
/// "2026-11-29T08:30:00Z" for unix seconds (empty for 0).
std::string format_time(int64_t unix_seconds);
/// A JSON scalar as plain text (strings unquoted).
std::string plain(const nlohmann::json& v);

}  // namespace storcrypt::controller
