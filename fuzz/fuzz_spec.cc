// libFuzzer target: ParseSpec on the input as text. A spec that parses must print (ToString) to
// a canonical form that parses back to an equal spec and prints identically.
#include <cstdint>
#include <cstdio>
#include <string>
#include <string_view>

#include "owf/formats/spec.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  auto spec = owf::ParseSpec(text);
  if (!spec.ok()) {
    if (spec.status().message().empty()) __builtin_trap();
    return 0;
  }
  const std::string canonical = owf::ToString(*spec);
  auto again = owf::ParseSpec(canonical);
  if (!again.ok()) {
    std::fprintf(stderr, "canonical form '%s' of '%.*s' does not parse: %s\n", canonical.c_str(),
                 static_cast<int>(size), text.data(), again.status().ToString().c_str());
    __builtin_trap();
  }
  if (!(*again == *spec) || owf::ToString(*again) != canonical) {
    std::fprintf(stderr, "'%.*s' -> '%s' -> '%s' is not a round trip\n", static_cast<int>(size),
                 text.data(), canonical.c_str(), owf::ToString(*again).c_str());
    __builtin_trap();
  }
  return 0;
}
