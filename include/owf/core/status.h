// Status and Result<T>: how every function that reads untrusted input reports failure.
// The library never throws across its API, never exits and never aborts on bad input.
#pragma once

#include <optional>
#include <string>
#include <utility>
#include <variant>

namespace owf {

enum class StatusCode {
  kOk = 0,
  kInvalidArgument,  // malformed spec, bad CLI value, bad shape
  kInvalidData,      // malformed or hostile file content, NaN weights
  kUnsupported,      // valid input that owf does not handle (e.g. a dtype)
  kIoError,          // the OS refused (open, read, write, rename)
  kInternal,         // a bug in owf
};

const char* StatusCodeName(StatusCode code);

class [[nodiscard]] Status {
 public:
  Status() = default;
  Status(StatusCode code, std::string message) : code_(code), message_(std::move(message)) {}
  static Status Ok() { return Status(); }

  bool ok() const { return code_ == StatusCode::kOk; }
  StatusCode code() const { return code_; }
  const std::string& message() const { return message_; }
  // "invalid argument: <message>"
  std::string ToString() const;
  // Returns a copy whose message is "<context>: <message>".
  Status WithContext(const std::string& context) const;

 private:
  StatusCode code_ = StatusCode::kOk;
  std::string message_;
};

inline Status InvalidArgument(std::string m) { return {StatusCode::kInvalidArgument, std::move(m)}; }
inline Status InvalidData(std::string m) { return {StatusCode::kInvalidData, std::move(m)}; }
inline Status Unsupported(std::string m) { return {StatusCode::kUnsupported, std::move(m)}; }
inline Status IoError(std::string m) { return {StatusCode::kIoError, std::move(m)}; }
inline Status Internal(std::string m) { return {StatusCode::kInternal, std::move(m)}; }

// A value or the Status explaining why there is none.
template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}            // NOLINT: implicit by design
  Result(Status status) : v_(std::move(status)) {}     // NOLINT: must not be Ok
  bool ok() const { return std::holds_alternative<T>(v_); }
  const Status& status() const {
    static const Status kOkStatus;
    return ok() ? kOkStatus : std::get<Status>(v_);
  }
  T& value() & { return std::get<T>(v_); }
  const T& value() const& { return std::get<T>(v_); }
  T&& value() && { return std::get<T>(std::move(v_)); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }

 private:
  std::variant<T, Status> v_;
};

}  // namespace owf

// Propagate a failed Status from an expression returning Status.
#define OWF_RETURN_IF_ERROR(expr)          \
  do {                                     \
    ::owf::Status owf_status_ = (expr);    \
    if (!owf_status_.ok()) return owf_status_; \
  } while (0)

#define OWF_CONCAT_INNER_(a, b) a##b
#define OWF_CONCAT_(a, b) OWF_CONCAT_INNER_(a, b)
// `OWF_ASSIGN_OR_RETURN(auto x, Fn());` declares x from a Result or returns its Status.
#define OWF_ASSIGN_OR_RETURN(lhs, expr) \
  OWF_ASSIGN_OR_RETURN_IMPL_(OWF_CONCAT_(owf_result_, __LINE__), lhs, expr)
#define OWF_ASSIGN_OR_RETURN_IMPL_(tmp, lhs, expr) \
  auto tmp = (expr);                               \
  if (!tmp.ok()) return tmp.status();              \
  lhs = std::move(tmp).value()
