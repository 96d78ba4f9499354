// storcrypt: the admin command. It talks only to storcryptd's API.
#include <CLI/CLI.hpp>
#include <iostream>

#include "storcrypt/controller/client.h"
#include "storcrypt/controller/nouns.h"

int main(int argc, char** argv) {
  using namespace storcrypt::controller;
  ClientContext cc;
  CLI::App app{"storcrypt: administer the storcrypt encryption controller (storcrypt <noun> <verb>)", "storcrypt"};
  app.require_subcommand(1);
  app.fallthrough(true);  // global options are accepted after the noun and verb too
  app.set_version_flag("--version", STORCRYPT_VERSION);
  app.add_option("--socket", cc.socket_path, "storcryptd API socket")
      ->envname("STORCRYPT_SOCKET")
      ->capture_default_str();
  app.add_flag("--json", cc.json_output, "Machine-readable output (see storcrypt(8), JSON OUTPUT)");
  app.add_option("--timeout", cc.timeout_seconds, "Seconds to wait for the daemon's answer")
      ->check(CLI::Range(1, 86400))
      ->capture_default_str();
  app.footer(
      "Exit codes: 0 ok, 1 usage, 2 invalid input, 3 not found, 4 conflict, 5 unavailable,\n"
      "6 permission, 7 kernel, 8 tls, 9 protocol, 10 unsupported, 70 internal. See storcrypt(8).");
  add_all_commands(app, cc);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int rc = app.exit(e);  // prints help/version (rc 0) or the usage error
    return rc == 0 ? 0 : kExitUsage;
  }
  return cc.exit_code;
}
