// storcrypt: the wiping heap of storcryptd and storcrypt.
//
// Linking the `storcrypt::wipe_heap` object library into an executable
// replaces the global operator new/delete (all forms) with ones that zero
// every block before it goes back to malloc. Why process-wide and not a
// wiping std::string: a passphrase or a key's hex arrives inside a JSON
// request, and nlohmann::json's lexer copies each token into a
// std::vector<char> (lexer::token_string) that always uses std::allocator,
// whatever string type or allocator the json type is given; std::string,
// asio's streambuf and the JSON serializer leave the old buffer behind each
// time they grow. Wiping on release is the one place that reaches all of
// those. What stays allocated (a connection's read buffer) is wiped by its
// owner; stack copies by wipe_stack() (secret.h). Not linked into sanitizer
// builds, whose runtime owns operator new/delete.
#pragma once

namespace storcrypt {
/// True when this process runs with the wiping heap (for tests and doctor).
bool wiping_heap_active();
}  // namespace storcrypt
