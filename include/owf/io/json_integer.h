// Integers read from JSON metadata (packed files, source layouts, safetensors headers, the GPU
// loader's size estimate): nlohmann's get<int64_t>() converts a float, or an integer the type
// cannot hold, with undefined behaviour, so these accept only integers in range: JsonIntegerIf
// gives nullopt otherwise, and JsonInteger throws nlohmann::json::type_error, which callers catch
// and report as bad data.
#pragma once

#include <cstdint>
#include <limits>
#include <nlohmann/json.hpp>
#include <optional>

namespace owf {

// v as T where v is a JSON integer that T holds; nullopt for anything else (a float, a string,
// an integer out of T's range).
template <typename T, typename Json>
std::optional<T> JsonIntegerIf(const Json& v) {
  static_assert(std::numeric_limits<T>::is_integer && sizeof(T) <= 8);
  if (v.is_number_unsigned()) {
    const uint64_t x = v.template get<uint64_t>();
    if (x <= static_cast<uint64_t>(std::numeric_limits<T>::max())) return static_cast<T>(x);
  } else if (v.is_number_integer()) {
    const int64_t x = v.template get<int64_t>();
    const bool fits =
        x >= 0 ? static_cast<uint64_t>(x) <= static_cast<uint64_t>(std::numeric_limits<T>::max())
               : std::numeric_limits<T>::is_signed &&
                     x >= static_cast<int64_t>(std::numeric_limits<T>::min());
    if (fits) return static_cast<T>(x);
  }
  return std::nullopt;
}

// JsonIntegerIf, throwing nlohmann::json::type_error where it gives nullopt.
template <typename T, typename Json>
T JsonInteger(const Json& v) {
  if (const std::optional<T> x = JsonIntegerIf<T>(v)) return *x;
  throw nlohmann::json::type_error::create(302, "expected an integer in range, not " + v.dump(),
                                           &v);
}

}  // namespace owf
