// NumPy .npy files (format versions 1.0, 2.0 and 3.0): little-endian float16/float32/float64,
// C order, any rank. Everything read is converted to fp32; writing produces float32 .npy.
#pragma once

#include <cstdint>
#include <span>
#include <string>

#include "owf/core/status.h"
#include "owf/core/tensor.h"

namespace owf {

// Parses an in-memory .npy image. `name` is used in error messages (e.g. the file path).
// Rejects, with a message naming what and where (byte offset), anything malformed: bad magic,
// unknown version, truncated or oversized header, header that is not a valid dict literal,
// big-endian or non-float dtypes ("unsupported dtype '<i4'"), fortran_order True, negative or
// overflowing shapes, data shorter or longer than shape x itemsize.
Result<Tensor> ParseNpy(std::span<const uint8_t> bytes, const std::string& name);
Result<Tensor> ReadNpy(const std::string& path);

// Serialises as float32 .npy version 1.0 (2.0 if the header needs it). Expects a valid tensor
// (non-negative shape whose product is data.size()); WriteNpy checks this and reports it.
std::string SerializeNpy(const Tensor& t);
// Writes atomically: to "<path>.tmp-<pid>" then rename; nothing is left behind on failure.
Status WriteNpy(const std::string& path, const Tensor& t);

}  // namespace owf
