// owf's packed container: a valid safetensors file holding, per quantised tensor, its bit-packed
// codes, block scales and outliers, and a JSON description (spec, codebook, layout) in the
// header's __metadata__ under "owf". Unquantised tensors are stored as they were. The bytes of the
// source file(s) outside their tensors (headers, padding, tokenizer files) are kept too, so that
// `owf dequantise` rebuilds the `--emit fake` output bit for bit. docs/container.md is the spec.
#pragma once

#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "owf/core/status.h"
#include "owf/core/tensor.h"
#include "owf/formats/quantise.h"
#include "owf/io/model.h"
#include "owf/io/safetensors_writer.h"

namespace owf {

constexpr int kPackedVersion = 1;
constexpr const char* kPackedMetadataKey = "owf";

// Adds "<name>.codes" (U8), "<name>.scales", "<name>.outlier_index" (U32, or I64 past 2^32
// elements) and "<name>.outlier_value" to `writer` (or "<name>.values" for bf16/fp16/fp32
// element casts) and returns the tensor's description for the metadata.
Result<nlohmann::json> AddPackedTensor(SafetensorsWriter& writer, const std::string& name, const QuantisedTensor& q,
                                       const std::string& source_dtype);

// The payload bytes AddPackedTensor writes for `q` (codes + scales + outliers).
int64_t PackedPayloadBytes(const QuantisedTensor& q);

// The stored pieces of a quantised ("codes") tensor, decoded but not dequantised: for runtimes
// that compute with codes directly (owf/cuda). value_i = codebook[codes_i] * scale of i's block
// (optmin scaling: fma(codebook[codes_i], scale, -min), one rounding), then the rotation (if
// any) is undone per row, then outliers are written over.
struct PackedCodes {
  std::vector<int64_t> shape;
  std::vector<float> codebook;
  BlockGeometry geometry;                  // whole tensor as one block when unscaled
  std::optional<ScaleFormat> scale_format;  // absent: unscaled (scales empty)
  std::vector<float> scales;               // decoded, one per block (two-level: multiplied out)
  std::vector<float> mins;                 // optmin scaling: one per block; empty otherwise
  LargeVector<uint16_t> codes;             // entropy-coded streams are decoded
  std::optional<uint64_t> rotation_seed;
  std::vector<int64_t> outlier_indices;    // validated: inside the tensor
  std::vector<float> outlier_values;
};
Result<PackedCodes> ReadPackedCodes(const ModelReader& packed, const std::string& name, const nlohmann::json& desc);

// Rebuilds the dequantised fp32 tensor from an opened packed file and its description.
Result<Tensor> ReadPackedTensor(const ModelReader& packed, const std::string& name, const nlohmann::json& desc);

// The "owf" metadata of an opened packed file: {"version", "tensors": {name: desc}, "source"}.
Result<nlohmann::json> ReadPackedMetadata(const ModelReader& packed);

// Converts fp32 values to a stored dtype's little-endian bytes (F32, BF16 or F16, round to
// nearest even).
Result<LargeVector<uint8_t>> EncodeAs(const Tensor& t, const std::string& dtype);

}  // namespace owf
