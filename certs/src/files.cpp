// State-directory I/O: atomic replace, key files 0600 from the first byte.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <random>

#include "internal.h"
#include "storcrypt/common/fd.h"

namespace storcrypt::certs::detail {

namespace {

Error io_error(int err, std::string what) { return errno_error(err, what).with_name("xCertStateIo"); }

Status write_all(int fd, const void* p, std::size_t n, const std::filesystem::path& path) {
  const char* c = static_cast<const char*>(p);
  while (n > 0) {
    ssize_t w = ::write(fd, c, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      return io_error(errno, "writing " + path.string());
    }
    c += w;
    n -= static_cast<std::size_t>(w);
  }
  return ok_status();
}

Status write_atomic_impl(const std::filesystem::path& path, const void* data, std::size_t n, mode_t mode) {
  std::filesystem::path tmp;
  UniqueFd fd;
  std::random_device rd;
  for (int attempt = 0; attempt < 16 && !fd.valid(); ++attempt) {
    char suffix[32];
    std::snprintf(suffix, sizeof suffix, ".tmp.%08x", rd());
    tmp = path;
    tmp += suffix;
    // O_EXCL: never follow or reuse a file someone else created; 0600 at
    // creation and fchmod before writing so no byte is ever more readable.
    fd.reset(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600));
    if (!fd.valid() && errno != EEXIST) return io_error(errno, "creating " + tmp.string());
  }
  if (!fd.valid()) return io_error(EEXIST, "creating a temporary file next to " + path.string());
  auto fail = [&](Error e) -> Status {
    ::unlink(tmp.c_str());
    return e;
  };
  if (::fchmod(fd.get(), mode) != 0) return fail(io_error(errno, "fchmod " + tmp.string()));
  if (auto st = write_all(fd.get(), data, n, tmp); !st.ok()) return fail(std::move(st).error());
  if (::fsync(fd.get()) != 0) return fail(io_error(errno, "fsync " + tmp.string()));
  if (::close(fd.release()) != 0) return fail(io_error(errno, "closing " + tmp.string()));
  if (::rename(tmp.c_str(), path.c_str()) != 0) return fail(io_error(errno, "renaming to " + path.string()));
  UniqueFd dir(
      ::open(path.parent_path().empty() ? "." : path.parent_path().c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (dir.valid()) ::fsync(dir.get());
  return ok_status();
}

}  // namespace

Status ensure_dir(const std::filesystem::path& p) {
  std::error_code ec;
  if (std::filesystem::is_directory(p, ec)) return ok_status();
  if (::mkdir(p.c_str(), 0700) != 0 && errno != EEXIST) {
    // create parents as well
    std::filesystem::create_directories(p, ec);
    if (ec) return io_error(ec.value(), "creating directory " + p.string());
    ::chmod(p.c_str(), 0700);
  }
  return ok_status();
}

Status write_file_atomic(const std::filesystem::path& path, std::string_view data, mode_t mode) {
  return write_atomic_impl(path, data.data(), data.size(), mode);
}

Status write_secret_atomic(const std::filesystem::path& path, const SecretBytes& data) {
  return write_atomic_impl(path, data.data(), data.size(), 0600);
}

namespace {
template <typename Sink>
Status read_into(const std::filesystem::path& path, Sink&& sink) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) {
    int e = errno;
    if (e == ENOENT) return cert_error(ErrorCode::kNotFound, "xCertStateIo", path.string() + " does not exist");
    return io_error(e, "opening " + path.string());
  }
  char buf[4096];
  for (;;) {
    ssize_t r = ::read(fd.get(), buf, sizeof buf);
    if (r < 0) {
      if (errno == EINTR) continue;
      return io_error(errno, "reading " + path.string());
    }
    if (r == 0) break;
    sink(buf, static_cast<std::size_t>(r));
  }
  secure_wipe(buf, sizeof buf);
  return ok_status();
}
}  // namespace

Result<std::string> read_file(const std::filesystem::path& path) {
  std::string out;
  STORCRYPT_TRY(read_into(path, [&](const char* p, std::size_t n) { out.append(p, n); }));
  return out;
}

Result<SecretBytes> read_secret(const std::filesystem::path& path) {
  SecretBytes out;
  STORCRYPT_TRY(read_into(path, [&](const char* p, std::size_t n) {
    out.append(std::span<const std::uint8_t>(reinterpret_cast<const std::uint8_t*>(p), n));
  }));
  return out;
}

bool file_exists(const std::filesystem::path& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0;
}

Status remove_file(const std::filesystem::path& path) {
  if (::unlink(path.c_str()) != 0 && errno != ENOENT) return io_error(errno, "removing " + path.string());
  return ok_status();
}

}  // namespace storcrypt::certs::detail
