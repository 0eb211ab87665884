// Integers read from JSON metadata (packed files, source layouts): nlohmann's get<int64_t>()
// converts a float, or an integer the type cannot hold, with undefined behaviour, so these accept
// only integers in range and throw nlohmann::json::type_error otherwise (callers catch
// nlohmann::json::exception and report bad data).
#pragma once

#include <cstdint>
#include <limits>
#include <nlohmann/json.hpp>

namespace owf {

template <typename T, typename Json>
T JsonInteger(const Json& v) {
  static_assert(std::numeric_limits<T>::is_integer && sizeof(T) <= 8);
  bool fits = false;
  if (v.is_number_unsigned()) {
    fits = v.template get<uint64_t>() <= static_cast<uint64_t>(std::numeric_limits<T>::max());
  } else if (v.is_number_integer()) {
    const int64_t x = v.template get<int64_t>();
    fits = x >= 0 ? static_cast<uint64_t>(x) <= static_cast<uint64_t>(std::numeric_limits<T>::max())
                  : std::numeric_limits<T>::is_signed && x >= static_cast<int64_t>(std::numeric_limits<T>::min());
  }
  if (!fits) throw nlohmann::json::type_error::create(302, "expected an integer in range, not " + v.dump(), &v);
  return v.is_number_unsigned() ? static_cast<T>(v.template get<uint64_t>()) : static_cast<T>(v.template get<int64_t>());
}

}  // namespace owf
