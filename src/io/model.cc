// Shared ModelReader behaviour: lookup and conversion of stored tensors to fp32.
// OpenModel (format sniffing) lives in model_open.cc.
#include <cstring>

#include "owf/core/numeric.h"
#include "owf/io/model.h"

namespace owf {

const char* DTypeName(DType d) {
  switch (d) {
    case DType::kF32: return "F32";
    case DType::kF16: return "F16";
    case DType::kBF16: return "BF16";
    case DType::kOther: return "?";
  }
  return "?";
}

int DTypeBits(DType d) {
  switch (d) {
    case DType::kF32: return 32;
    case DType::kF16:
    case DType::kBF16: return 16;
    case DType::kOther: return 0;
  }
  return 0;
}

int64_t TensorInfo::numel() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

const TensorInfo* ModelReader::Find(const std::string& name) const {
  for (const auto& t : tensors_)
    if (t.name == name) return &t;
  return nullptr;
}

Result<Tensor> ModelReader::Read(const TensorInfo& info) const {
  if (info.dtype == DType::kOther && info.quantised) {
    return Unsupported("tensor '" + info.name + "' is already quantised (" + info.dtype_name +
                       "); owf needs F32, F16 or BF16 weights");
  }
  if (info.dtype == DType::kOther) {
    return Unsupported("tensor '" + info.name + "' has unsupported dtype '" + info.dtype_name +
                       "'; owf reads F32, F16 and BF16 weights");
  }
  const std::span<const uint8_t> raw = RawBytes(info);
  const int64_t n = info.numel();
  const size_t width = static_cast<size_t>(DTypeBits(info.dtype) / 8);
  if (n < 0 || static_cast<uint64_t>(n) > raw.size() / width ||
      raw.size() != static_cast<size_t>(n) * width) {
    return InvalidData("tensor '" + info.name + "': " + std::to_string(raw.size()) + " bytes stored, shape needs " +
                       std::to_string(static_cast<size_t>(n) * width));
  }
  Tensor t;
  t.shape = info.shape;
  try {
    t.data.resize(static_cast<size_t>(n));
  } catch (const std::bad_alloc&) {
    return Internal("out of memory reading tensor '" + info.name + "'");
  }
  const uint8_t* p = raw.data();
  switch (info.dtype) {
    case DType::kF32:
      if (n > 0) std::memcpy(t.data.data(), p, raw.size());  // empty: both pointers may be null
      break;
    case DType::kF16:
      for (int64_t i = 0; i < n; ++i) {
        uint16_t h;
        std::memcpy(&h, p + 2 * i, 2);
        t.data[static_cast<size_t>(i)] = FloatFromFp16(h);
      }
      break;
    case DType::kBF16:
      for (int64_t i = 0; i < n; ++i) {
        uint16_t h;
        std::memcpy(&h, p + 2 * i, 2);
        t.data[static_cast<size_t>(i)] = FloatFromBf16(h);
      }
      break;
    case DType::kOther: break;
  }
  return t;
}

}  // namespace owf
