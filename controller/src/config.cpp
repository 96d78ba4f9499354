#include "storcrypt/controller/config.h"

#include "storcrypt/common/ip.h"

#include <charconv>
#include <fstream>
#include <set>
#include <sstream>
#include <vector>

namespace storcrypt::controller {

namespace {

constexpr const char* kFix = "see storcryptd(8) for the configuration file format";

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t' || s.front() == '\r')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r')) s.remove_suffix(1);
  return s;
}

Error bad(std::string_view origin, int line, std::string_view key, const std::string& what) {
  std::string where = std::string(origin) + ":" + std::to_string(line);
  if (!key.empty()) where += ": " + std::string(key);
  return Error(ErrorCode::kInvalidInput, where + ": " + what, kFix, "xConfigInvalid");
}

template <typename T>
Result<T> parse_number(std::string_view v, long long lo, long long hi, std::string_view origin, int line,
                       std::string_view key) {
  long long n = 0;
  auto [p, ec] = std::from_chars(v.data(), v.data() + v.size(), n);
  if (ec != std::errc() || p != v.data() + v.size()) {
    return bad(origin, line, key, "'" + std::string(v) + "' is not a whole number");
  }
  if (n < lo || n > hi) {
    return bad(origin, line, key,
               std::to_string(n) + " is out of range (" + std::to_string(lo) + ".." + std::to_string(hi) + ")");
  }
  return static_cast<T>(n);
}

Result<std::string> absolute_path(std::string_view v, std::string_view origin, int line, std::string_view key) {
  if (v.empty() || v.front() != '/') return bad(origin, line, key, "'" + std::string(v) + "' is not an absolute path");
  if (v.find('\0') != std::string_view::npos) return bad(origin, line, key, "path contains a NUL byte");
  return std::string(v);
}

}  // namespace

Result<Config> parse_config(std::string_view text, std::string_view origin) {
  Config c;
  std::set<std::string, std::less<>> seen;
  int line_no = 0;
  while (!text.empty()) {
    size_t nl = text.find('\n');
    std::string_view line = text.substr(0, nl);
    text = nl == std::string_view::npos ? std::string_view() : text.substr(nl + 1);
    ++line_no;
    line = trim(line);
    if (line.empty() || line.front() == '#') continue;
    size_t eq = line.find('=');
    if (eq == std::string_view::npos) return bad(origin, line_no, "", "expected 'key = value'");
    std::string_view key = trim(line.substr(0, eq));
    std::string_view value = trim(line.substr(eq + 1));
    // A trailing comment after an unquoted value.
    if (!value.empty() && value.front() == '"') {
      size_t close = value.find('"', 1);
      if (close == std::string_view::npos) return bad(origin, line_no, key, "unterminated quoted value");
      std::string_view rest = trim(value.substr(close + 1));
      if (!rest.empty() && rest.front() != '#') return bad(origin, line_no, key, "text after the quoted value");
      value = value.substr(1, close - 1);
    } else if (size_t hash = value.find(" #"); hash != std::string_view::npos) {
      value = trim(value.substr(0, hash));
    }
    if (key.empty()) return bad(origin, line_no, "", "missing key before '='");
    if (seen.count(key)) return bad(origin, line_no, key, "key given more than once");
    seen.emplace(key);
    if (value.empty()) return bad(origin, line_no, key, "missing value");

    if (key == "state_directory") {
      STORCRYPT_ASSIGN_OR_RETURN(c.state_directory, absolute_path(value, origin, line_no, key));
    } else if (key == "socket_path") {
      STORCRYPT_ASSIGN_OR_RETURN(c.socket_path, absolute_path(value, origin, line_no, key));
      // sockaddr_un.sun_path holds 108 bytes including the terminating NUL.
      if (c.socket_path.size() > 107) return bad(origin, line_no, key, "path longer than 107 bytes");
    } else if (key == "socket_group") {
      c.socket_group = std::string(value);
    } else if (key == "log_level") {
      static const std::set<std::string_view> kLevels = {"trace", "debug", "info", "warn", "error"};
      if (!kLevels.count(value)) {
        return bad(origin, line_no, key, "'" + std::string(value) + "' is not one of trace, debug, info, warn, error");
      }
      c.log_level = std::string(value);
    } else if (key == "request_timeout_seconds") {
      STORCRYPT_ASSIGN_OR_RETURN(c.request_timeout_seconds, parse_number<int>(value, 1, 3600, origin, line_no, key));
    } else if (key == "max_request_bytes") {
      STORCRYPT_ASSIGN_OR_RETURN(c.max_request_bytes,
                                 parse_number<size_t>(value, 1024, 64LL << 20, origin, line_no, key));
    } else if (key == "worker_threads") {
      STORCRYPT_ASSIGN_OR_RETURN(c.worker_threads, parse_number<int>(value, 1, 64, origin, line_no, key));
    } else if (key == "ike_listen") {
      std::vector<IpAddress> seen_addrs;
      std::string_view rest = value;
      while (true) {
        size_t comma = rest.find(',');
        std::string_view item = trim(rest.substr(0, comma));
        auto a = IpAddress::parse(item, key);
        if (!a.ok()) {
          return bad(origin, line_no, key,
                     "'" + std::string(item) + "' is not an IP address (give addresses separated by commas, e.g. "
                     "0.0.0.0,:: for all)");
        }
        for (const auto& s : seen_addrs)
          if (s == *a) return bad(origin, line_no, key, "'" + std::string(item) + "' is given twice");
        seen_addrs.push_back(*a);
        if (comma == std::string_view::npos) break;
        rest = rest.substr(comma + 1);
      }
      c.ike_listen = std::string(value);
    } else if (key == "ike_port") {
      STORCRYPT_ASSIGN_OR_RETURN(c.ike_port, parse_number<int>(value, 1, 65535, origin, line_no, key));
    } else if (key == "ike_natt_port") {
      STORCRYPT_ASSIGN_OR_RETURN(c.ike_natt_port, parse_number<int>(value, 1, 65535, origin, line_no, key));
    } else if (key == "ike_cookie_threshold") {
      STORCRYPT_ASSIGN_OR_RETURN(c.ike_cookie_threshold, parse_number<size_t>(value, 0, 100000, origin, line_no, key));
    } else if (key == "ike_cookie_threshold_ip") {
      STORCRYPT_ASSIGN_OR_RETURN(c.ike_cookie_threshold_ip,
                                 parse_number<size_t>(value, 0, 100000, origin, line_no, key));
    } else if (key == "ike_block_threshold") {
      STORCRYPT_ASSIGN_OR_RETURN(c.ike_block_threshold, parse_number<size_t>(value, 1, 100000, origin, line_no, key));
    } else if (key == "ike_half_open_limit") {
      STORCRYPT_ASSIGN_OR_RETURN(c.ike_half_open_limit, parse_number<size_t>(value, 1, 1000000, origin, line_no, key));
    } else if (key == "ike_half_open_timeout_seconds") {
      STORCRYPT_ASSIGN_OR_RETURN(c.ike_half_open_timeout_seconds,
                                 parse_number<int>(value, 1, 300, origin, line_no, key));
    } else if (key == "policy_warn_kernel_policies") {
      STORCRYPT_ASSIGN_OR_RETURN(c.policy_warn_kernel_policies,
                                 parse_number<size_t>(value, 0, 100000000, origin, line_no, key));
    } else if (key == "kmip_watch_interval_seconds") {
      STORCRYPT_ASSIGN_OR_RETURN(c.kmip_watch_interval_seconds,
                                 parse_number<int>(value, 1, 86400, origin, line_no, key));
    } else {
      return bad(origin, line_no, key,
                 "unknown key (known: state_directory, socket_path, socket_group, log_level, "
                 "request_timeout_seconds, max_request_bytes, worker_threads, ike_listen, ike_port, ike_natt_port, "
                 "ike_cookie_threshold, ike_cookie_threshold_ip, ike_block_threshold, ike_half_open_limit, "
                 "ike_half_open_timeout_seconds, policy_warn_kernel_policies, kmip_watch_interval_seconds)");
    }
  }
  if (c.ike_port == c.ike_natt_port) {
    return Error(ErrorCode::kInvalidInput,
                 std::string(origin) + ": ike_port and ike_natt_port are both " + std::to_string(c.ike_port), kFix,
                 "xConfigInvalid");
  }
  return c;
}

Result<Config> load_config(const std::string& path, bool must_exist) {
  std::ifstream in(path);
  if (!in) {
    if (errno == ENOENT && !must_exist) return Config{};
    return std::move(errno_error(errno, "reading configuration file " + path))
        .with_fix("create the file or pass --config with the right path");
  }
  std::stringstream ss;
  ss << in.rdbuf();
  return parse_config(ss.str(), path);
}

}  // namespace storcrypt::controller
