#include "storcrypt/common/files.h"

#include <fcntl.h>
#include <openssl/rand.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>

#include "storcrypt/common/fd.h"
#include "storcrypt/common/hex.h"
#include "storcrypt/common/text.h"

namespace storcrypt {

namespace fs = std::filesystem;

namespace {
constexpr std::string_view kTmpMark = ".tmp-";
constexpr std::size_t kTmpRandomBytes = 4;

std::string shown(const fs::path& p) { return printable(p.native()); }
}  // namespace

Result<SecretBytes> read_secret_file(const fs::path& path, std::size_t max_bytes) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) return errno_error(errno, "opening " + shown(path));
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) return errno_error(errno, "reading " + shown(path));
  if (static_cast<std::uint64_t>(st.st_size) > max_bytes)
    return Error(ErrorCode::kInvalidInput, shown(path) + " is larger than " + std::to_string(max_bytes) + " bytes");
  // Sized once from fstat (+1 to see growth): reads land in place, no reallocation copies the bytes.
  SecretBytes out(static_cast<std::size_t>(st.st_size) + 1);
  std::size_t n = 0;
  for (;;) {
    if (n == out.size()) {
      if (out.size() > max_bytes)
        return Error(ErrorCode::kInvalidInput, shown(path) + " is larger than " + std::to_string(max_bytes) + " bytes");
      out.resize(out.size() * 2);  // the file grew while read (the allocator wipes the old buffer)
    }
    ssize_t r = ::read(fd.get(), out.data() + n, out.size() - n);
    if (r < 0) {
      if (errno == EINTR) continue;
      return errno_error(errno, "reading " + shown(path));
    }
    if (r == 0) break;
    n += static_cast<std::size_t>(r);
  }
  out.resize(n);
  return out;
}

Status write_all(int fd, std::span<const std::uint8_t> data, const fs::path& what) {
  while (!data.empty()) {
    ssize_t w = ::write(fd, data.data(), data.size());
    if (w < 0) {
      if (errno == EINTR) continue;
      return errno_error(errno, "writing " + shown(what));
    }
    data = data.subspan(static_cast<std::size_t>(w));
  }
  return ok_status();
}

Status fsync_directory(const fs::path& dir) {
  const fs::path d = dir.empty() ? fs::path(".") : dir;
  UniqueFd fd(::open(d.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!fd.valid()) return errno_error(errno, "opening directory " + shown(d));
  if (::fsync(fd.get()) != 0) return errno_error(errno, "fsync of directory " + shown(d));
  return ok_status();
}

Status write_file_atomic(const fs::path& path, std::span<const std::uint8_t> data, mode_t mode) {
  const fs::path dir = path.parent_path();
  fs::path tmp;
  UniqueFd fd;
  for (int attempt = 0; attempt < 16 && !fd.valid(); ++attempt) {
    std::uint8_t rnd[kTmpRandomBytes];
    if (RAND_bytes(rnd, sizeof rnd) != 1) return Error(ErrorCode::kInternal, "the random generator failed");
    tmp = dir / ("." + path.filename().string() + std::string(kTmpMark) + to_hex(rnd));
    // O_EXCL: never follow or reuse a file someone else created.
    fd.reset(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600));
    if (!fd.valid() && errno != EEXIST) return errno_error(errno, "creating " + shown(tmp));
  }
  if (!fd.valid()) return errno_error(EEXIST, "creating a temporary file beside " + shown(path));
  auto fail = [&](Error e) -> Status {
    ::unlink(tmp.c_str());
    return e;
  };
  if (::fchmod(fd.get(), mode) != 0) return fail(errno_error(errno, "setting the mode of " + shown(tmp)));
  if (Status st = write_all(fd.get(), data, tmp); !st.ok()) return fail(std::move(st).error());
  if (::fsync(fd.get()) != 0) return fail(errno_error(errno, "fsync of " + shown(tmp)));
  if (::close(fd.release()) != 0) return fail(errno_error(errno, "closing " + shown(tmp)));
  if (::rename(tmp.c_str(), path.c_str()) != 0) return fail(errno_error(errno, "renaming to " + shown(path)));
  return fsync_directory(dir);
}

Status write_file_atomic(const fs::path& path, std::string_view data, mode_t mode) {
  return write_file_atomic(path, {reinterpret_cast<const std::uint8_t*>(data.data()), data.size()}, mode);
}

std::optional<std::string> atomic_write_target(std::string_view name) {
  const std::size_t suffix = kTmpMark.size() + 2 * kTmpRandomBytes;
  if (name.size() < 2 + suffix || name.front() != '.') return std::nullopt;
  std::string_view tail = name.substr(name.size() - suffix);
  if (tail.substr(0, kTmpMark.size()) != kTmpMark || !parse_hex(tail.substr(kTmpMark.size()))) return std::nullopt;
  return std::string(name.substr(1, name.size() - 1 - suffix));
}

}  // namespace storcrypt
