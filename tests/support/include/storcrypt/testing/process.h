// Run an independent tool (ip, openssl, cryptsetup) and capture its output.
#pragma once
#include <string>
#include <vector>

namespace storcrypt::testing {

struct ProcessResult {
  int exit_code = -1;  ///< exit status, or 128+signal
  std::string out;     ///< stdout
  std::string err;     ///< stderr
};

/// Run argv (no shell) with optional stdin, wait for it.
ProcessResult run(const std::vector<std::string>& argv, const std::string& input = {});
/// Run a command line through /bin/sh -c (for pipelines in tests only).
ProcessResult sh(const std::string& command);

}  // namespace storcrypt::testing
