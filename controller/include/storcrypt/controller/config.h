// storcrypt controller: the daemon's configuration file.
//
// Format (/etc/storcrypt/storcrypt.conf): one `key = value` per line; blank
// lines and lines starting with '#' are ignored; values may be wrapped in
// double quotes. Unknown keys, duplicate keys and bad values are errors that
// name the file, line and key.
//
//   state_directory = /var/lib/storcrypt      # SQLite state, 0700, created if missing
//   socket_path = /run/storcrypt/storcrypt.sock
//   socket_group = storcrypt                  # group allowed to use the API
//   log_level = info                          # trace|debug|info|warn|error
//   request_timeout_seconds = 30              # 1..3600
//   max_request_bytes = 1048576               # 1024..67108864
//   worker_threads = 2                        # 1..64
//   ike_listen = 0.0.0.0,::                   # IKE: addresses to listen on (0.0.0.0 / :: = all)
//   ike_port = 500                            # IKE: UDP port, 1..65535
//   ike_natt_port = 4500                      # IKE NAT-T: UDP port, 1..65535, not ike_port
//   ike_cookie_threshold = 10                 # IKE: half-open IKE SAs from which COOKIEs are required, 0..100000
//   ike_cookie_threshold_ip = 3               # ... from one address, for that address, 0..100000
//   ike_block_threshold = 5                   # ... from one address from which its requests are dropped, 1..100000
//   ike_half_open_limit = 1000                # ... overall from which every request is dropped, 1..1000000
//   ike_half_open_timeout_seconds = 30        # IKE: a half-open IKE SA is dropped after this, 1..300
//   policy_warn_kernel_policies = 100000      # policy commit warns above this many kernel policies (0: never)
//   kmip_watch_interval_seconds = 60          # KMIP fault watcher: key servers tested every N s, 1..86400
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

#include "storcrypt/common/result.h"

namespace storcrypt::controller {

inline constexpr const char* kDefaultConfigPath = "/etc/storcrypt/storcrypt.conf";
inline constexpr const char* kDefaultSocketPath = "/run/storcrypt/storcrypt.sock";

struct Config {
  std::string state_directory = "/var/lib/storcrypt";
  std::string socket_path = kDefaultSocketPath;
  std::string socket_group = "storcrypt";
  std::string log_level = "info";
  int request_timeout_seconds = 30;
  size_t max_request_bytes = 1 << 20;
  int worker_threads = 2;
  /// IKE (storcrypt ike): addresses, comma-separated, each an IPv4 or IPv6
  /// address, no duplicates (validated by parse_config).
  std::string ike_listen = "0.0.0.0,::";
  int ike_port = 500;
  int ike_natt_port = 4500;
  /// Half-open IKE SA limits (ike::EngineOptions; strongSwan's
  /// charon.cookie_threshold, cookie_threshold_ip, block_threshold,
  /// init_limit_half_open) and how long a half-open IKE SA is kept.
  size_t ike_cookie_threshold = 10;
  size_t ike_cookie_threshold_ip = 3;
  size_t ike_block_threshold = 5;
  size_t ike_half_open_limit = 1000;
  int ike_half_open_timeout_seconds = 30;
  /// `policy commit` warns (does not fail) when the list compiles to more
  /// kernel XFRM policies than this, with the kernel memory they take; 0: never.
  size_t policy_warn_kernel_policies = 100000;
  /// The KMIP fault watcher tests the key servers assigned to a provider and
  /// checks their certificates this often (events 4010-4024).
  int kmip_watch_interval_seconds = 60;
};

/// Parse configuration text; origin names the source in error messages.
Result<Config> parse_config(std::string_view text, std::string_view origin);

/// Read and parse a file. When the file does not exist: defaults if
/// !must_exist, else a not-found error.
Result<Config> load_config(const std::string& path, bool must_exist);

}  // namespace storcrypt::controller
