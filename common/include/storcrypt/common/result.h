// storcrypt: one project-wide error type and Result<T>.
//
// Errors are values. Library code returns Result<T> (or Status == Result<void>);
// only main() and the daemon's request loop log. Exceptions never cross a module
// boundary. std::expected is avoided on purpose: libstdc++ 12's <expected> does
// not compile with clang 14/16, which the libFuzzer builds need.
#pragma once

#include <cerrno>
#include <cstdlib>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <variant>

namespace storcrypt {

/// Broad error categories. The API and CLI map these to JSON-RPC codes and
/// process exit codes in exactly one place (see category_exit_code()).
enum class ErrorCode {
  kInvalidInput,  ///< caller gave bad input; nothing changed
  kNotFound,      ///< a named object does not exist
  kConflict,      ///< object exists / is in use / state forbids the change
  kUnavailable,   ///< a peer, server or device could not be reached
  kPermission,    ///< caller or process lacks a privilege
  kKernel,        ///< the kernel refused (netlink, ioctl, device-mapper)
  kTls,           ///< TLS handshake or certificate failure
  kProtocol,      ///< a peer spoke malformed or unexpected protocol
  kUnsupported,   ///< this kernel/build lacks a needed feature
  kInternal,      ///< a bug or an unexpected environment failure
};

std::string_view error_code_name(ErrorCode code);

/// Exit code of the admin command for an error category (documented in storcrypt(8)).
int category_exit_code(ErrorCode code);

/// One error: category, optional stable API name (e.g. "xKeyProviderActive"),
/// a human message (what is wrong) and optional fix text (what to do).
/// Messages must never contain key material.
class Error {
 public:
  Error(ErrorCode code, std::string message, std::string fix = {}, std::string name = {})
      : code_(code), message_(std::move(message)), fix_(std::move(fix)), name_(std::move(name)) {}

  ErrorCode code() const { return code_; }
  const std::string& message() const { return message_; }
  const std::string& fix() const { return fix_; }
  /// Stable API name; empty when none was assigned.
  const std::string& name() const { return name_; }
  int sys_errno() const { return errno_; }

  Error& with_fix(std::string fix) & {
    fix_ = std::move(fix);
    return *this;
  }
  Error&& with_fix(std::string fix) && {
    fix_ = std::move(fix);
    return std::move(*this);
  }
  Error& with_name(std::string name) & {
    name_ = std::move(name);
    return *this;
  }
  Error&& with_name(std::string name) && {
    name_ = std::move(name);
    return std::move(*this);
  }
  Error&& with_errno(int e) && {
    errno_ = e;
    return std::move(*this);
  }
  /// Prefix context: "adding SA spi=0x1000: <old message>".
  Error&& context(std::string_view what) && {
    message_ = std::string(what) + ": " + message_;
    return std::move(*this);
  }

  /// "invalid-input: message (fix: ...)"
  std::string to_string() const;

 private:
  ErrorCode code_;
  std::string message_;
  std::string fix_;
  std::string name_;
  int errno_ = 0;
};

/// Build an Error from an errno value, e.g. errno_error(errno, "opening /dev/loop0").
Error errno_error(int err, std::string_view what);

/// Result<T>: either a value or an Error.
template <typename T>
class [[nodiscard]] Result {
 public:
  using value_type = T;
  Result(const T& v) : v_(std::in_place_index<0>, v) {}          // NOLINT(google-explicit-constructor)
  Result(T&& v) : v_(std::in_place_index<0>, std::move(v)) {}    // NOLINT(google-explicit-constructor)
  Result(Error e) : v_(std::in_place_index<1>, std::move(e)) {}  // NOLINT(google-explicit-constructor)
  template <typename U,
            typename = std::enable_if_t<std::is_constructible_v<T, U&&> && !std::is_same_v<std::decay_t<U>, T> &&
                                        !std::is_same_v<std::decay_t<U>, Error>>>
  Result(U&& v) : v_(std::in_place_index<0>, std::forward<U>(v)) {}  // NOLINT(google-explicit-constructor)

  bool ok() const { return v_.index() == 0; }
  explicit operator bool() const { return ok(); }

  T& value() & {
    check();
    return std::get<0>(v_);
  }
  const T& value() const& {
    check();
    return std::get<0>(v_);
  }
  T&& value() && {
    check();
    return std::get<0>(std::move(v_));
  }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T&& operator*() && { return std::move(*this).value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }

  const Error& error() const& { return std::get<1>(v_); }
  Error&& error() && { return std::get<1>(std::move(v_)); }

 private:
  void check() const {
    if (!ok()) std::abort();  // invariant: callers test ok() first
  }
  std::variant<T, Error> v_;
};

template <>
class [[nodiscard]] Result<void> {
 public:
  Result() = default;
  Result(Error e) : e_(std::move(e)) {}  // NOLINT(google-explicit-constructor)
  bool ok() const { return !e_.has_value(); }
  explicit operator bool() const { return ok(); }
  void value() const {
    if (!ok()) std::abort();
  }
  const Error& error() const& { return *e_; }
  Error&& error() && { return std::move(*e_); }

 private:
  std::optional<Error> e_;
};

using Status = Result<void>;

inline Status ok_status() { return {}; }

}  // namespace storcrypt

/// Propagate an error: STORCRYPT_TRY(expr) returns expr's error from the enclosing function.
#define STORCRYPT_TRY(expr)                                                 \
  do {                                                                      \
    auto&& storcrypt_try_r_ = (expr);                                       \
    if (!storcrypt_try_r_.ok()) return std::move(storcrypt_try_r_).error(); \
  } while (0)

#define STORCRYPT_CONCAT_INNER_(a, b) a##b
#define STORCRYPT_CONCAT_(a, b) STORCRYPT_CONCAT_INNER_(a, b)
/// STORCRYPT_ASSIGN_OR_RETURN(auto x, expr): unwrap a Result or return its error.
#define STORCRYPT_ASSIGN_OR_RETURN(lhs, expr) \
  STORCRYPT_ASSIGN_OR_RETURN_IMPL_(STORCRYPT_CONCAT_(storcrypt_r_, __LINE__), lhs, expr)
#define STORCRYPT_ASSIGN_OR_RETURN_IMPL_(tmp, lhs, expr) \
  auto tmp = (expr);                                     \
  if (!tmp.ok()) return std::move(tmp).error();          \
  lhs = std::move(tmp).value()
