// Private to owf_io: the safetensors dtype table and size arithmetic shared by the reader
// (safetensors.cc) and the writer (safetensors_writer.cc).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "owf/io/model.h"

namespace owf::safetensors_internal {

struct DTypeEntry {
  const char* name;  // as safetensors spells it
  int bits;          // per element; 4 and 6 for the packed sub-byte float types
  DType dtype;       // kOther unless owf converts it to fp32
};

// nullptr when `name` is not a safetensors dtype.
const DTypeEntry* FindDType(std::string_view name);

// Bytes taken by `shape` elements of `bits` each, with every multiplication overflow-checked.
// Returns false with `*why` set when a dimension is negative, the element count does not fit in
// int64, the bit count overflows uint64, or the bits do not make whole bytes.
bool ByteSize(const std::vector<int64_t>& shape, int bits, uint64_t* bytes, std::string* why);

// "[1, 16, 256]"
std::string ShapeText(const std::vector<int64_t>& shape);

// Largest header the reader accepts (the safetensors project's limit).
inline constexpr uint64_t kMaxHeaderSize = 100'000'000;

}  // namespace owf::safetensors_internal
