// libFuzzer target: owf's packed container (a safetensors file whose __metadata__ "owf" entry
// describes bit-packed codes, block scales and outliers; docs/container.md). Every tensor the
// description lists is rebuilt with ReadPackedTensor (UnpackCodes, DecodeScales,
// DequantiseInto), which must return a Status on any inconsistency.
#include <cstdint>
#include <span>
#include <string>

#include "owf/io/model.h"
#include "owf/io/packed.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto reader = owf::ParseSafetensors(std::span<const uint8_t>(data, size), "fuzz.owf");
  if (!reader.ok()) return 0;
  const owf::ModelReader& m = **reader;
  auto meta = owf::ReadPackedMetadata(m);
  if (!meta.ok()) return 0;
  for (const auto& item : (*meta)["tensors"].items()) {
    auto t = owf::ReadPackedTensor(m, item.key(), item.value());
    if (t.ok() && static_cast<int64_t>(t->data.size()) != t->numel()) __builtin_trap();
  }
  return 0;
}
