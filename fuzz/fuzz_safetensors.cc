// libFuzzer target: ParseSafetensors on arbitrary bytes; a file that parses must let every
// tensor be read (or refused with a Status) and its metadata be printed.
#include <cstdint>
#include <span>

#include "owf/io/model.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto reader = owf::ParseSafetensors(std::span<const uint8_t>(data, size), "fuzz.safetensors");
  if (!reader.ok()) {
    if (reader.status().message().empty()) __builtin_trap();
    return 0;
  }
  const owf::ModelReader& m = **reader;
  for (const owf::TensorInfo& t : m.tensors()) {
    if (m.RawBytes(t).size() != t.nbytes) __builtin_trap();
    if (m.Find(t.name) == nullptr) __builtin_trap();
    auto v = m.Read(t);
    if (v.ok() && static_cast<int64_t>(v->data.size()) != t.numel()) __builtin_trap();
  }
  (void)m.metadata().dump();  // throws (and so crashes the fuzzer) on invalid UTF-8
  return 0;
}
