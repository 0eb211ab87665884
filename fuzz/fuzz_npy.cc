// libFuzzer target: ParseNpy on arbitrary bytes. Whatever parses must serialise (SerializeNpy,
// float32 .npy) and parse back to the same shape and bit-identical values.
#include <cstdint>
#include <cstring>
#include <span>
#include <string>

#include "owf/io/npy.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto parsed = owf::ParseNpy(std::span<const uint8_t>(data, size), "fuzz.npy");
  if (!parsed.ok()) {
    if (parsed.status().message().empty()) __builtin_trap();  // errors must say what is wrong
    return 0;
  }
  const owf::Tensor& t = *parsed;
  if (static_cast<int64_t>(t.data.size()) != t.numel()) __builtin_trap();

  const std::string image = owf::SerializeNpy(t);
  auto again = owf::ParseNpy(
      std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(image.data()), image.size()), "re.npy");
  if (!again.ok()) __builtin_trap();  // owf cannot read what it wrote
  const owf::Tensor& u = *again;
  if (u.shape != t.shape || u.data.size() != t.data.size()) __builtin_trap();
  // Bitwise: NaN payloads and -0 must survive too.
  if (!t.data.empty() && std::memcmp(u.data.data(), t.data.data(), t.data.size() * sizeof(float)) != 0)
    __builtin_trap();
  return 0;
}
