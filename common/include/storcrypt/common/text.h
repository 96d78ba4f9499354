// storcrypt: is this untrusted string text? One check for every edge.
//
// JSON carries only UTF-8, so every string that comes from outside (file
// contents, argv, file names, kernel and database text) is checked here
// before it reaches a JSON document: refused with require_text() where the
// caller gave it (a clear invalid-input error naming the input), or escaped
// with printable() where it is only reported (a file name in a message).
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "storcrypt/common/result.h"

namespace storcrypt {

/// Offset of the first byte that makes `s` not text: a byte that does not
/// start or continue well-formed UTF-8 (RFC 3629: no overlong forms, no
/// surrogates, nothing above U+10FFFF) or a NUL byte. nullopt when `s` is text.
std::optional<std::size_t> first_non_text_byte(std::string_view s);
inline bool is_text(std::string_view s) { return !first_non_text_byte(s).has_value(); }

/// `s` with every byte that is not part of well-formed UTF-8 (and NUL)
/// written as \xNN, e.g. a file name for a message. Valid text is unchanged.
std::string printable(std::string_view s);

/// Invalid input naming `what` ("the file x.pem", "--cn") and the offending
/// byte's offset (never its neighbours: the input may be a secret) when `s` is
/// not text; ok otherwise.
Status require_text(std::string_view s, std::string_view what, std::string_view fix = {});

/// The non-empty runs of `s` between any of the bytes in `separators`:
/// split_tokens("a,,b", ",") == {"a", "b"}.
std::vector<std::string> split_tokens(std::string_view s, std::string_view separators);

}  // namespace storcrypt
