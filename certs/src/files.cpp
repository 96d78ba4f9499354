// State-directory I/O: atomic replace, key files 0600 from the first byte.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>

#include "internal.h"
#include "storcrypt/common/fd.h"
#include "storcrypt/common/files.h"

namespace storcrypt::certs::detail {

namespace {

Error io_error(int err, std::string what) { return errno_error(err, what).with_name("xCertStateIo"); }

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
  Status st = storcrypt::write_file_atomic(path, data, mode);
  if (!st.ok()) return std::move(st).error().with_name("xCertStateIo");
  return st;
}

Status write_secret_atomic(const std::filesystem::path& path, const SecretBytes& data) {
  Status st = storcrypt::write_file_atomic(path, data.view(), 0600);
  if (!st.ok()) return std::move(st).error().with_name("xCertStateIo");
  return st;
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
  auto r = read_secret_file(path);
  if (r.ok()) return r;
  if (r.error().code() == ErrorCode::kNotFound)
    return cert_error(ErrorCode::kNotFound, "xCertStateIo", path.string() + " does not exist");
  return std::move(r).error().with_name("xCertStateIo");
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
