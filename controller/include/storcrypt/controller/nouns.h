// storcrypt controller: the noun modules (see dispatcher.h for the pattern).
#pragma once

#include "storcrypt/common/result.h"
#include "storcrypt/controller/dispatcher.h"

namespace CLI {
class App;
}

namespace storcrypt::controller {

class ClientContext;

// ---- daemon side: one function per noun, listed in src/nouns.cpp ----
Status register_system_methods(Dispatcher& d, Context& ctx);
Status register_event_methods(Dispatcher& d, Context& ctx);
Status register_cert_methods(Dispatcher& d, Context& ctx);
Status register_truststore_methods(Dispatcher& d, Context& ctx);
Status register_volume_methods(Dispatcher& d, Context& ctx);
Status register_keymedia_methods(Dispatcher& d, Context& ctx);
Status register_policy_methods(Dispatcher& d, Context& ctx);
Status register_key_methods(Dispatcher& d, Context& ctx);
Status register_address_methods(Dispatcher& d, Context& ctx);
Status register_ipsec_methods(Dispatcher& d, Context& ctx);
Status register_drive_methods(Dispatcher& d, Context& ctx);
Status register_ear_methods(Dispatcher& d, Context& ctx);
Status register_ike_methods(Dispatcher& d, Context& ctx);
Status register_kmip_methods(Dispatcher& d, Context& ctx);

/// Every noun's methods (called once by storcryptd at start-up).
Status register_all_methods(Dispatcher& d, Context& ctx);

// ---- CLI side: one function per noun, listed in src/nouns.cpp ----
void add_system_commands(CLI::App& app, ClientContext& cc);
void add_event_commands(CLI::App& app, ClientContext& cc);
void add_cert_commands(CLI::App& app, ClientContext& cc);
void add_truststore_commands(CLI::App& app, ClientContext& cc);
void add_volume_commands(CLI::App& app, ClientContext& cc);
void add_keymedia_commands(CLI::App& app, ClientContext& cc);
void add_policy_commands(CLI::App& app, ClientContext& cc);
void add_key_commands(CLI::App& app, ClientContext& cc);
void add_address_commands(CLI::App& app, ClientContext& cc);
void add_ipsec_commands(CLI::App& app, ClientContext& cc);
void add_drive_commands(CLI::App& app, ClientContext& cc);
void add_ear_commands(CLI::App& app, ClientContext& cc);
void add_ike_commands(CLI::App& app, ClientContext& cc);
void add_kmip_commands(CLI::App& app, ClientContext& cc);

/// Every noun's commands (called once by storcrypt's main).
void add_all_commands(CLI::App& app, ClientContext& cc);

}  // namespace storcrypt::controller
