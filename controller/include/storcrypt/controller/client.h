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
#include <optional>
#include <string>
#include <vector>

#include "storcrypt/common/result.h"
#include "storcrypt/controller/config.h"

namespace CLI {
class App;
class Option;
}  // namespace CLI

namespace storcrypt::controller {

inline constexpr int kJsonOutputVersion = 1;
inline constexpr int kExitUsage = 1;

/// The request line for a call ('\n' included). Every string in params (keys
/// and values, at any depth) must be text (text.h): otherwise an
/// invalid-input error naming the parameter, so nothing reaches the JSON
/// serializer that it would have to refuse.
Result<std::string> encode_request(const std::string& method, const nlohmann::json& params);

/// Send one request on a fresh connection and wait for its response. The
/// request buffer is wiped once sent (it may carry a passphrase or a key).
Result<nlohmann::json> rpc_call(const std::string& socket_path, const std::string& method, const nlohmann::json& params,
                                int timeout_seconds);

class ClientContext {
 public:
  std::string socket_path = kDefaultSocketPath;
  bool json_output = false;  ///< --json
  int timeout_seconds = 60;
  int exit_code = 0;
  /// An argument that is not text (set while parsing argv, see
  /// require_text_arguments()); main reports it with exit code 2.
  std::optional<Error> bad_argument;
  /// How requests are sent; rpc_call() on socket_path unless replaced (the
  /// CLI fuzzer sends nowhere).
  std::function<Result<nlohmann::json>(const std::string& method, const nlohmann::json& params)> transport;

  Result<nlohmann::json> call(const std::string& method, const nlohmann::json& params = nlohmann::json::object());
  /// Call a method; on success print with human() (or the JSON envelope), on
  /// failure print the error and set exit_code.
  void run(const std::string& method, const nlohmann::json& params,
           const std::function<void(const nlohmann::json&)>& human);
  /// Report an error detected before any request (bad local input).
  void fail(const Error& e);
};

/// Read an input file for a request; "-" reads stdin. Refuses files larger
/// than max_bytes, empty files and files that are not text (invalid UTF-8 or
/// a NUL byte: a binary file) with an invalid-input error naming the file.
/// The read buffers are wiped (the file may hold a key or a passphrase).
Result<std::string> read_input_file(const std::string& path, size_t max_bytes = 512 * 1024);
/// Write text to path (mode 0644, replacing it), or stdout for "" / "-".
Status write_output_file(const std::string& path, const std::string& text);

/// How a local path is used (and shown in --help).
enum class LocalPath {
  kInput,   ///< a file the CLI reads and sends the text of ("FILE")
  kOutput,  ///< a file the CLI writes ("OUTPUT")
  kOther,   ///< e.g. the API socket ("PATH")
};
/// Mark an option or positional as a local path: the CLI opens it and never
/// sends it, so it need not be text (a Linux file name is any bytes);
/// messages show it escaped. What an input file holds must be text
/// (read_input_file()).
CLI::Option* local_path(CLI::Option* o, LocalPath use = LocalPath::kInput);
/// The use given to local_path(), nullopt for an ordinary (text) argument.
std::optional<LocalPath> local_path_use(const CLI::Option* o);
/// Every other option and positional of `app` and all its subcommands (as
/// registered so far) must be text: a value that is not sets cc.bad_argument
/// ("--cn is not text: byte 3 is not valid UTF-8") and stops the parse.
void require_text_arguments(CLI::App& app, ClientContext& cc);

/// The admin command: parse argv (nouns and verbs from add_all_commands),
/// run the verb through cc, print, and return the exit code.
int run_cli(int argc, const char* const* argv, ClientContext& cc, const std::string& version);

/// Print rows under headers, columns padded to their widest cell.
void print_table(const std::vector<std::string>& headers, const std::vector<std::vector<std::string>>& rows);
/// "2026-11-29T08:30:00Z" for unix seconds (empty for 0).
std::string format_time(int64_t unix_seconds);
/// A JSON scalar as plain text (strings unquoted).
std::string plain(const nlohmann::json& v);

}  // namespace storcrypt::controller
