// Bit-level storage of quantised tensors: element codes packed at (almost exactly) log2(levels)
// bits each, and block scales in their storage formats. docs/container.md specifies the bytes.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "owf/core/memory.h"
#include "owf/core/status.h"
#include "owf/formats/spec.h"

namespace owf {

// Codes are packed in groups of `group` codes, each group written as the mixed-radix number
// sum_j code_j * levels^j (j = 0 first) in `group_bits` bits, groups back to back in a
// little-endian bit stream (bit i of the stream is bit i % 8 of byte i / 8). For a power-of-two
// level count this is plain b-bit packing; for 5 levels, 3 codes share 7 bits (2.33 bits each).
struct CodePacking {
  int64_t levels = 0;
  int group = 1;
  int group_bits = 0;
  double bits_per_code() const { return static_cast<double>(group_bits) / group; }
  int64_t PackedBytes(int64_t count) const;
};

// The densest grouping with groups of at most 64 bits (ties: the smallest group).
CodePacking ChoosePacking(int64_t levels);
LargeVector<uint8_t> PackCodes(std::span<const uint16_t> codes, const CodePacking& p);
// Errors (InvalidData) when the buffer is the wrong size or a code is >= levels.
Result<LargeVector<uint16_t>> UnpackCodes(std::span<const uint8_t> bytes, int64_t count, const CodePacking& p);

// Scales as stored: bf16 -> "BF16", fp16 -> "F16", fp32 -> "F32" (little-endian IEEE);
// e8m0 -> "U8" biased exponent e (value 2^(e - 127)); e4m3 -> "U8" sign | exponent(4) |
// mantissa(3) with the reference's bias 8 and no inf/NaN (max 240).
const char* ScaleDtype(ScaleFormat f);
std::vector<uint8_t> EncodeScales(std::span<const float> scales, ScaleFormat f);
Result<std::vector<float>> DecodeScales(std::span<const uint8_t> bytes, ScaleFormat f, int64_t count);

// Rebuilds values from stored pieces: out[i] = centroids[codes[i]] * scale of i's block (fp32,
// exactly the quantiser's arithmetic), then outliers written over. scales empty = unscaled.
// Errors (InvalidData) on inconsistent sizes or codes past the codebook.
struct BlockGeometry;
// mins non-empty (optmin scaling, one per block): out[i] = fma(centroids[code], scale, -min), one
// rounding, as the quantiser computes it.
Status DequantiseInto(std::span<const float> centroids, const BlockGeometry& geometry, std::span<const float> scales,
                      std::span<const float> mins, std::span<const uint16_t> codes, std::span<float> out);
Status DequantiseInto(std::span<const float> centroids, const BlockGeometry& geometry, std::span<const float> scales,
                      std::span<const uint16_t> codes, std::span<const int64_t> outlier_indices,
                      std::span<const float> outlier_values, std::span<float> out);

}  // namespace owf
