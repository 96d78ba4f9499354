// storcrypt: the one atomic file write (state files, key files, key media,
// exported key files).
#pragma once

#include <sys/types.h>

#include <filesystem>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "storcrypt/common/result.h"
#include "storcrypt/common/secret.h"

namespace storcrypt {

/// Replace `path` with `data` atomically and durably: a new temporary file
/// beside it (".<name>.tmp-<8 hex>", created with O_EXCL|O_NOFOLLOW and mode
/// 0600 so no byte is ever more readable, then fchmod to `mode`), written,
/// fsync'ed, renamed over `path`, and the directory fsync'ed. A crash leaves
/// the old or the new file, never a mix (at most a temporary, see
/// atomic_write_target()); on error the temporary is removed. Errors name
/// the step and the path (errno_error categories).
Status write_file_atomic(const std::filesystem::path& path, std::span<const std::uint8_t> data, mode_t mode = 0600);
Status write_file_atomic(const std::filesystem::path& path, std::string_view data, mode_t mode = 0600);

/// The file name a temporary of write_file_atomic() would have replaced, when
/// `file_name` is one (left by a crash: it may hold what the target holds,
/// e.g. key material to shred); nullopt for other names.
std::optional<std::string> atomic_write_target(std::string_view file_name);

/// fsync a directory (after creating, renaming or removing entries in it).
Status fsync_directory(const std::filesystem::path& dir);

/// Read a file that holds key material straight into SecretBytes: no
/// std::string, stream buffer or growing copy ever holds a byte of it (those
/// are freed unwiped and stay in the heap, where a core dump finds them).
/// At most `max_bytes`; errors as errno_error (ENOENT -> not found).
Result<SecretBytes> read_secret_file(const std::filesystem::path& path, std::size_t max_bytes = 1 << 20);

/// Write all of `data` to fd (retrying short writes and EINTR); `what`
/// names the file in the error.
Status write_all(int fd, std::span<const std::uint8_t> data, const std::filesystem::path& what);

}  // namespace storcrypt
