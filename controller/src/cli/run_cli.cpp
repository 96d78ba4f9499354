// The admin command's argument handling (storcrypt's main and the CLI fuzzer).
#include <CLI/CLI.hpp>
#include <iostream>

#include "storcrypt/common/text.h"
#include "storcrypt/controller/client.h"
#include "storcrypt/controller/nouns.h"

namespace storcrypt::controller {

int run_cli(int argc, const char* const* argv, ClientContext& cc, const std::string& version) {
  CLI::App app{"storcrypt: administer the storcrypt encryption controller (storcrypt <noun> <verb>)", "storcrypt"};
  app.require_subcommand(1);
  app.fallthrough(true);  // global options are accepted after the noun and verb too
  app.set_version_flag("--version", version);
  local_path(app.add_option("--socket", cc.socket_path, "storcryptd API socket"), LocalPath::kOther)
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
    // An argument that is not text is invalid input (exit 2), not a usage error.
    if (cc.bad_argument) {
      cc.fail(*cc.bad_argument);
      return cc.exit_code;
    }
    // "storcrypt nonsense" / "storcrypt event nonsense": CLI11 reports only
    // that a subcommand is required; name the unknown word and the choices.
    if (dynamic_cast<const CLI::RequiredError*>(&e) != nullptr) {
      CLI::App* deepest = &app;
      for (;;) {
        auto subs = deepest->get_subcommands();
        if (subs.empty()) break;
        deepest = subs.front();
      }
      auto extra = deepest->remaining();
      if (extra.empty()) extra = app.remaining();
      std::string choices;
      for (const auto* sub : deepest->get_subcommands([](const CLI::App*) { return true; })) {
        choices += (choices.empty() ? "" : ", ") + sub->get_name();
      }
      if (!choices.empty()) {
        const bool top = deepest == &app;
        if (!extra.empty() && !extra.front().empty() && extra.front()[0] != '-') {
          std::cerr << "storcrypt: unknown " << (top ? "noun" : "verb") << " '" << printable(extra.front()) << "'"
                    << (top ? "" : " for '" + deepest->get_name() + "'");
        } else {
          std::cerr << "storcrypt: " << (top ? "a noun" : "'" + deepest->get_name() + "' needs a verb")
                    << (top ? " is required" : "");
        }
        std::cerr << " (choose from: " << choices << ")\nRun with --help for more information.\n";
        return kExitUsage;
      }
    }
    int rc = app.exit(e);  // prints help/version (rc 0) or the usage error
    return rc == 0 ? 0 : kExitUsage;
  }
  return cc.exit_code;
}

}  // namespace storcrypt::controller
