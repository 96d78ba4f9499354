// The two lists of noun modules. Adding a noun = one line in each list (and
// the two declarations in nouns.h).
#include "storcrypt/controller/nouns.h"

#include <CLI/CLI.hpp>

#include "storcrypt/controller/client.h"

namespace storcrypt::controller {

Status register_all_methods(Dispatcher& d, Context& ctx) {
  STORCRYPT_TRY(register_system_methods(d, ctx));
  STORCRYPT_TRY(register_event_methods(d, ctx));
  STORCRYPT_TRY(register_cert_methods(d, ctx));
  STORCRYPT_TRY(register_truststore_methods(d, ctx));
  STORCRYPT_TRY(register_volume_methods(d, ctx));
  STORCRYPT_TRY(register_keymedia_methods(d, ctx));
  STORCRYPT_TRY(register_policy_methods(d, ctx));
  STORCRYPT_TRY(register_key_methods(d, ctx));
  STORCRYPT_TRY(register_address_methods(d, ctx));
  STORCRYPT_TRY(register_ipsec_methods(d, ctx));
  STORCRYPT_TRY(register_drive_methods(d, ctx));
  STORCRYPT_TRY(register_ear_methods(d, ctx));
  STORCRYPT_TRY(register_ike_methods(d, ctx));
  STORCRYPT_TRY(register_kmip_methods(d, ctx));
  return ok_status();
}

void add_all_commands(CLI::App& app, ClientContext& cc) {
  add_system_commands(app, cc);
  add_event_commands(app, cc);
  add_cert_commands(app, cc);
  add_truststore_commands(app, cc);
  add_volume_commands(app, cc);
  add_keymedia_commands(app, cc);
  add_policy_commands(app, cc);
  add_key_commands(app, cc);
  add_address_commands(app, cc);
  add_ipsec_commands(app, cc);
  add_drive_commands(app, cc);
  add_ear_commands(app, cc);
  add_ike_commands(app, cc);
  add_kmip_commands(app, cc);
  // Last: every argument of every verb above must be text (client.h).
  require_text_arguments(app, cc);
}

}  // namespace storcrypt::controller
