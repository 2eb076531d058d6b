// Status and Result<T>: errors as values at module boundaries.
//
// A Status carries an errno value (0 = ok) and a message with context, in the
// form "WHAT: WHY". Nothing here throws; callers decide. Thread-safe as values.
#pragma once

#include <cerrno>
#include <cstring>
#include <string>
#include <utility>
#include <variant>

namespace buildfs {

class Status {
 public:
  Status() = default;
  static Status Ok() { return Status(); }
  // An error with errno `code` (never 0) and a message.
  static Status Error(int code, std::string message) { return Status(code ? code : EIO, std::move(message)); }
  // An error from the current errno: "what: strerror(errno)".
  static Status FromErrno(const std::string& what) { return FromErrno(errno, what); }
  static Status FromErrno(int code, const std::string& what) {
    return Status(code ? code : EIO, what + ": " + std::strerror(code ? code : EIO));
  }

  bool ok() const { return code_ == 0; }
  int code() const { return code_; }
  const std::string& message() const { return message_; }
  // Prefixes the message with more context: "context: message".
  Status With(const std::string& context) const {
    return ok() ? *this : Status(code_, context + ": " + message_);
  }

 private:
  Status(int code, std::string message) : code_(code), message_(std::move(message)) {}
  int code_ = 0;
  std::string message_;
};

template <typename T>
class Result {
 public:
  Result(T value) : v_(std::move(value)) {}
  Result(Status status) : v_(std::move(status)) {}

  bool ok() const { return v_.index() == 0; }
  const Status& status() const {
    static const Status kOk;
    return ok() ? kOk : std::get<1>(v_);
  }
  int code() const { return status().code(); }
  T& value() & { return std::get<0>(v_); }
  const T& value() const& { return std::get<0>(v_); }
  T&& value() && { return std::get<0>(std::move(v_)); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() { return value(); }

 private:
  std::variant<T, Status> v_;
};

}  // namespace buildfs

#define BUILDFS_RETURN_IF_ERROR(expr)      \
  do {                                     \
    auto _st = (expr);                     \
    if (!_st.ok()) return _st;             \
  } while (0)

// Assigns the value of a Result expression to `lhs`, or returns its error.
#define BUILDFS_CONCAT_INNER(a, b) a##b
#define BUILDFS_CONCAT(a, b) BUILDFS_CONCAT_INNER(a, b)
#define BUILDFS_ASSIGN_OR_RETURN(lhs, expr) \
  BUILDFS_ASSIGN_OR_RETURN_IMPL(BUILDFS_CONCAT(_res_, __LINE__), lhs, expr)
#define BUILDFS_ASSIGN_OR_RETURN_IMPL(tmp, lhs, expr) \
  auto tmp = (expr);                                   \
  if (!tmp.ok()) return tmp.status();                  \
  lhs = std::move(tmp).value()
