#include "storcrypt/controller/client.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <ctime>
#include <iostream>
#include <utility>

#include "storcrypt/common/fd.h"
#include "storcrypt/common/secret.h"
#include "storcrypt/common/text.h"
#include "storcrypt/controller/rpc.h"

namespace storcrypt::controller {

using nlohmann::json;

namespace {

Error connect_error(int err, const std::string& path) {
  switch (err) {
    case ENOENT:
    case ECONNREFUSED:
      return Error(ErrorCode::kUnavailable, "storcryptd is not running (nothing listens on " + printable(path) + ")",
                   "start it with `systemctl start storcryptd`, or pass --socket with the right path",
                   "xDaemonUnavailable");
    case EACCES:
    case EPERM:
      return Error(ErrorCode::kPermission, "permission denied on " + printable(path),
                   "run as root or as a member of group storcrypt", rpc::kNamePermissionDenied);
    default:
      return errno_error(err, "connecting to " + printable(path));
  }
}

// Wait for fd to become ready; false on timeout.
bool wait_fd(int fd, short events, std::chrono::steady_clock::time_point deadline) {
  for (;;) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) return false;
    struct pollfd p {
      fd, events, 0
    };
    int rc = ::poll(&p, 1, static_cast<int>(left.count()));
    if (rc > 0) return true;
    if (rc < 0 && errno != EINTR) return true;  // let the following call report it
  }
}

// Every string (member names too) of a parameter value must be text.
Status check_text(const json& v, const std::string& where) {
  const std::string what = "parameter '" + where + "'";
  if (v.is_string()) return require_text(v.get_ref<const std::string&>(), what);
  if (v.is_object()) {
    for (const auto& [k, x] : v.items()) {
      STORCRYPT_TRY(require_text(k, "a member name of " + what));
      STORCRYPT_TRY(check_text(x, where + "." + k));
    }
  } else if (v.is_array()) {
    for (std::size_t i = 0; i < v.size(); ++i) STORCRYPT_TRY(check_text(v[i], where + "[" + std::to_string(i) + "]"));
  }
  return ok_status();
}

}  // namespace

Result<std::string> encode_request(const std::string& method, const json& params) {
  STORCRYPT_TRY(require_text(method, "the method name"));
  for (const auto& [k, v] : params.items()) {
    STORCRYPT_TRY(require_text(k, "a parameter name of " + method));
    STORCRYPT_TRY(check_text(v, k));
  }
  static std::atomic<int64_t> next_id{1};
  json req{{"jsonrpc", "2.0"}, {"id", next_id++}, {"method", method}, {"params", params}};
  // Checked above: the strict handler cannot throw here.
  std::string out = req.dump(-1, ' ', false, json::error_handler_t::strict);
  out.push_back('\n');
  return out;
}

Result<json> rpc_call(const std::string& socket_path, const std::string& method, const json& params,
                      int timeout_seconds) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (socket_path.size() >= sizeof(addr.sun_path)) {
    return Error(ErrorCode::kInvalidInput,
                 "socket path is longer than " + std::to_string(sizeof(addr.sun_path) - 1) + " bytes: " + socket_path);
  }
  std::memcpy(addr.sun_path, socket_path.data(), socket_path.size());
  UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd.valid()) return errno_error(errno, "creating socket");
  if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    return connect_error(errno, socket_path);
  }
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(timeout_seconds);
  auto encoded = encode_request(method, params);
  // The serializer copied the params (maybe a passphrase) through a buffer
  // on the stack below this frame.
  wipe_stack();
  if (!encoded.ok()) return std::move(encoded).error();
  std::string out = std::move(encoded).value();
  size_t off = 0;
  while (off < out.size()) {
    ssize_t n = ::send(fd.get(), out.data() + off, out.size() - off, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      // The daemon may have refused us and closed; its reply explains why.
      if (errno == EPIPE || errno == ECONNRESET) break;
      int e = errno;
      secure_wipe(out);
      return errno_error(e, "sending request to storcryptd");
    }
    off += static_cast<size_t>(n);
  }
  secure_wipe(out);
  std::string in;
  char buf[65536];
  for (;;) {
    if (in.find('\n') != std::string::npos) break;
    if (!wait_fd(fd.get(), POLLIN, deadline)) {
      return Error(ErrorCode::kUnavailable,
                   "storcryptd did not answer " + method + " within " + std::to_string(timeout_seconds) + " s",
                   "check `systemctl status storcryptd`; pass --timeout for long operations", rpc::kNameRequestTimeout);
    }
    ssize_t n = ::recv(fd.get(), buf, sizeof(buf), 0);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == ECONNRESET && !in.empty()) break;
    if (n < 0) return errno_error(errno, "reading reply from storcryptd");
    if (n == 0) break;
    in.append(buf, static_cast<size_t>(n));
  }
  if (in.empty()) {
    return Error(ErrorCode::kProtocol, "storcryptd closed the connection without answering " + method,
                 "check the daemon's log (journalctl -u storcryptd)");
  }
  json resp = json::parse(in.substr(0, in.find('\n')), nullptr, false);
  if (resp.is_discarded() || !resp.is_object()) {
    return Error(ErrorCode::kProtocol, "storcryptd sent a reply that is not JSON");
  }
  if (auto e = resp.find("error"); e != resp.end()) return rpc::error_from_object(*e);
  if (auto r = resp.find("result"); r != resp.end()) return *r;
  return Error(ErrorCode::kProtocol, "storcryptd sent a reply with neither result nor error");
}

Result<json> ClientContext::call(const std::string& method, const json& params) {
  if (transport) return transport(method, params);
  return rpc_call(socket_path, method, params, timeout_seconds);
}

void ClientContext::fail(const Error& e) {
  exit_code = category_exit_code(e.code());
  if (json_output) {
    nlohmann::json err = rpc::error_object(e);
    nlohmann::json flat{{"code", err["code"]},
                        {"name", err["data"]["name"]},
                        {"category", err["data"]["category"]},
                        {"message", e.message()},
                        {"fix", e.fix()},
                        {"exit_code", exit_code}};
    // A message may name a local file whose name is not text.
    std::cout << nlohmann::json{{"version", kJsonOutputVersion}, {"ok", false}, {"error", flat}}.dump(
                     2, ' ', false, nlohmann::json::error_handler_t::replace)
              << "\n";
    return;
  }
  std::cerr << "storcrypt: error: " << printable(e.message()) << "\n";
  if (!e.fix().empty()) std::cerr << "  fix: " << printable(e.fix()) << "\n";
}

void ClientContext::run(const std::string& method, const nlohmann::json& params,
                        const std::function<void(const nlohmann::json&)>& human) {
  auto r = call(method, params);
  if (!r.ok()) {
    fail(r.error());
    return;
  }
  exit_code = 0;
  if (json_output) {
    std::cout << nlohmann::json{{"version", kJsonOutputVersion}, {"ok", true}, {"result", *r}}.dump(
                     2, ' ', false, nlohmann::json::error_handler_t::replace)
              << "\n";
  } else {
    human(*r);
  }
}

Result<std::string> read_input_file(const std::string& path, size_t max_bytes) {
  const std::string shown = path == "-" ? std::string("standard input") : "the file " + printable(path);
  std::string data;
  UniqueFd owned;
  int fd = 0;
  if (path != "-") {
    owned.reset(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    if (!owned.valid()) {
      return std::move(errno_error(errno, "reading " + printable(path)))
          .with_fix("check the file name and its permissions");
    }
    fd = owned.get();
  }
  // The file may hold a key or a passphrase: wipe what was read on every way out.
  char buf[65536];
  struct Wipe {
    char* p;
    size_t n;
    std::string* d;
    ~Wipe() {
      secure_wipe(p, n);
      if (d) secure_wipe(*d);
    }
  } wipe{buf, sizeof buf, &data};
  for (;;) {
    ssize_t n = ::read(fd, buf, sizeof(buf));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return errno_error(errno, "reading " + printable(path));
    if (n == 0) break;
    data.append(buf, static_cast<size_t>(n));
    if (data.size() > max_bytes) {
      return Error(ErrorCode::kInvalidInput, shown + " is larger than " + std::to_string(max_bytes) + " bytes",
                   "pass the text file itself, not an archive or disk image");
    }
  }
  if (data.empty()) return Error(ErrorCode::kInvalidInput, shown + " is empty", "pass a file with the text");
  STORCRYPT_TRY(require_text(data, shown, "pass the text file itself (is it a binary file or in another encoding?)"));
  wipe.d = nullptr;  // handed to the caller, who wipes it when it held a secret
  return data;
}

Status write_output_file(const std::string& path, const std::string& text) {
  if (path.empty() || path == "-") {
    std::cout << text;
    if (!text.empty() && text.back() != '\n') std::cout << "\n";
    return ok_status();
  }
  UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
  if (!fd.valid()) return errno_error(errno, "writing " + printable(path));
  size_t off = 0;
  while (off < text.size()) {
    ssize_t n = ::write(fd.get(), text.data() + off, text.size() - off);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return errno_error(errno, "writing " + printable(path));
    off += static_cast<size_t>(n);
  }
  return ok_status();
}

namespace {
constexpr std::pair<LocalPath, const char*> kLocalPathNames[] = {
    {LocalPath::kInput, "FILE"}, {LocalPath::kOutput, "OUTPUT"}, {LocalPath::kOther, "PATH"}};
}  // namespace

CLI::Option* local_path(CLI::Option* o, LocalPath use) {
  for (const auto& [u, name] : kLocalPathNames)
    if (u == use) o->type_name(name);
  return o;
}

std::optional<LocalPath> local_path_use(const CLI::Option* o) {
  // The type name is the mark (validators append ":<description>"; ours has none).
  const std::string t = o->get_type_name();
  for (const auto& [u, name] : kLocalPathNames)
    if (t == name) return u;
  return std::nullopt;
}

void require_text_arguments(CLI::App& app, ClientContext& cc) {
  for (CLI::Option* o : app.get_options()) {
    if (local_path_use(o)) continue;
    const std::string name = o->get_name();
    const std::string what = name.rfind('-', 0) == 0 ? name : "the argument '" + name + "'";
    // transform(): first in line, before e.g. a range check that would call
    // the value a bad number.
    o->transform(CLI::Validator(
        [&cc, what](std::string& v) -> std::string {
          Status st = require_text(v, what, "give the value as UTF-8 text");
          if (st.ok()) return {};
          if (!cc.bad_argument) cc.bad_argument = st.error();
          return st.error().message();
        },
        /*validator_desc=*/"", /*validator_name=*/"text"));
  }
  for (CLI::App* sub : app.get_subcommands([](CLI::App*) { return true; })) require_text_arguments(*sub, cc);
}

void print_table(const std::vector<std::string>& headers, const std::vector<std::vector<std::string>>& rows) {
  std::vector<size_t> w(headers.size());
  for (size_t i = 0; i < headers.size(); ++i) w[i] = headers[i].size();
  for (const auto& r : rows) {
    for (size_t i = 0; i < r.size() && i < w.size(); ++i) w[i] = std::max(w[i], r[i].size());
  }
  auto line = [&](const std::vector<std::string>& cells) {
    std::string s;
    for (size_t i = 0; i < w.size(); ++i) {
      std::string c = i < cells.size() ? cells[i] : "";
      s += c;
      if (i + 1 < w.size()) s += std::string(w[i] - c.size() + 2, ' ');
    }
    while (!s.empty() && s.back() == ' ') s.pop_back();
    std::cout << s << "\n";
  };
  line(headers);
  for (const auto& r : rows) line(r);
}

std::string format_time(int64_t t) {
  if (t == 0) return "";
  std::time_t tt = static_cast<std::time_t>(t);
  std::tm tm{};
  gmtime_r(&tt, &tm);
  char buf[32];
  std::strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

std::string plain(const nlohmann::json& v) {
  if (v.is_string()) return v.get<std::string>();
  if (v.is_null()) return "-";
  return v.dump();
}

}  // namespace storcrypt::controller
