// libFuzzer target: ParseGguf on arbitrary bytes; a file that parses must let every tensor be
// read (or refused with a Status), its metadata be printed (dump() throws on invalid UTF-8, which
// the reader promises never to store) and its metadata arrays be extracted.
#include <cstdint>
#include <span>

#include "owf/io/gguf.h"
#include "owf/io/model.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto reader = owf::ParseGguf(std::span<const uint8_t>(data, size), "fuzz.gguf");
  if (!reader.ok()) {
    if (reader.status().message().empty()) __builtin_trap();
    return 0;
  }
  const owf::ModelReader& m = **reader;
  for (const owf::TensorInfo& t : m.tensors()) {
    if (m.RawBytes(t).size() != t.nbytes) __builtin_trap();
    auto v = m.Read(t);
    if (v.ok() && static_cast<int64_t>(v->data.size()) != t.numel()) __builtin_trap();
  }
  (void)m.metadata().dump();
  for (const auto& item : m.metadata().items()) {
    (void)owf::GgufStringArray(m, item.key());
    (void)owf::GgufFloatArray(m, item.key());
    (void)owf::GgufIntArray(m, item.key());
  }
  return 0;
}
