// Host tier: the storcrypt binary against one daemon's socket, shared by the
// daemon fixtures (daemon_fixture.h, ike_node.h).
#pragma once

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "storcrypt/testing/process.h"

namespace storcrypt::testing {

/// `bin --socket SOCK ARGS...`
inline ProcessResult storcrypt_cli(const std::string& sock, std::vector<std::string> args,
                                   const std::string& bin = STORCRYPT_BIN) {
  std::vector<std::string> argv{bin, "--socket", sock};
  argv.insert(argv.end(), args.begin(), args.end());
  return run(argv);
}

/// The --json answer of `storcrypt --socket SOCK ARGS...` with its exit code
/// as "exit_code"; not JSON fails the test and gives an empty object.
inline nlohmann::json storcrypt_cli_json(const std::string& sock, std::vector<std::string> args) {
  args.insert(args.begin(), "--json");
  ProcessResult r = storcrypt_cli(sock, std::move(args));
  nlohmann::json j = nlohmann::json::parse(r.out, nullptr, false);
  EXPECT_FALSE(j.is_discarded()) << "not JSON: " << r.out << r.err;
  if (j.is_discarded()) return nlohmann::json::object();
  j["exit_code"] = r.exit_code;
  return j;
}

}  // namespace storcrypt::testing
