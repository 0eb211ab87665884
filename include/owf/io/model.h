// Reading model files: safetensors (single file or sharded with model.safetensors.index.json),
// GGUF v2/v3, a Hugging Face model directory (config.json + safetensors shards) and single .npy
// tensors, behind one interface. Files are memory-mapped; nothing is read until asked for.
// Every length, offset and count read from a file is validated against the file before use.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "owf/core/status.h"
#include "owf/core/tensor.h"

namespace owf {

enum class DType {
  kF32,
  kF16,
  kBF16,
  kOther,  // listed (name, shape, bytes) but not readable as floats; see dtype_name
};

const char* DTypeName(DType d);  // "F32", "F16", "BF16", "?"
int DTypeBits(DType d);          // 32, 16, 16, 0

struct TensorInfo {
  std::string name;
  std::vector<int64_t> shape;  // outermost first (GGUF's ne[] reversed: rows, cols)
  DType dtype = DType::kF32;
  std::string dtype_name;      // as the file spells it: "BF16", "I64", "Q4_K", ...
  int shard = 0;               // index into the reader's files
  uint64_t offset = 0;         // absolute byte offset of the data in its file
  uint64_t nbytes = 0;
  bool quantised = false;      // a GGUF block-quantised type (Q4_K, IQ2_XS, ...): never readable

  int64_t numel() const;
};

class ModelReader {
 public:
  virtual ~ModelReader() = default;

  // "safetensors", "gguf" or "npy".
  virtual const char* format() const = 0;
  // Tensors in file order (shards in index order).
  const std::vector<TensorInfo>& tensors() const { return tensors_; }
  const TensorInfo* Find(const std::string& name) const;
  // safetensors: the header's "__metadata__" (string map); GGUF: every key-value pair
  // (arrays longer than 64 elements summarised as {"type", "length"}), plus "gguf.version",
  // "gguf.alignment". For a directory, also "config" (config.json).
  const nlohmann::json& metadata() const { return metadata_; }
  // Paths of the underlying files (one per shard).
  const std::vector<std::string>& files() const { return files_; }

  // The tensor's bytes as stored (little-endian), pointing into the mapping.
  virtual std::span<const uint8_t> RawBytes(const TensorInfo& t) const = 0;
  // A hint that the caller is done with the tensor's bytes: memory-mapped pages may be dropped.
  virtual void Release(const TensorInfo&) const {}
  // The tensor converted to fp32. Errors: Unsupported "unsupported dtype 'I64' ..." or, for
  // quantised GGUF types, "tensor 'x' is already quantised (Q4_K) ...".
  Result<Tensor> Read(const TensorInfo& t) const;

 protected:
  std::vector<TensorInfo> tensors_;
  nlohmann::json metadata_ = nlohmann::json::object();
  std::vector<std::string> files_;
};

// Opens a model by sniffing: a directory (config.json + *.safetensors or an index), a
// *.safetensors.index.json, a safetensors file, a GGUF file ("GGUF" magic) or a .npy file (one
// tensor named after the file stem).
Result<std::unique_ptr<ModelReader>> OpenModel(const std::string& path);

// Format-specific openers (used by OpenModel; exposed for tests).
Result<std::unique_ptr<ModelReader>> OpenSafetensors(const std::string& path);       // one file
Result<std::unique_ptr<ModelReader>> OpenSafetensorsIndex(const std::string& index);  // sharded
Result<std::unique_ptr<ModelReader>> OpenGguf(const std::string& path);

// Parses safetensors / GGUF images held in memory (no file); `name` appears in messages.
// The reader keeps a copy of the bytes. For fuzzing and must-reject tests.
Result<std::unique_ptr<ModelReader>> ParseSafetensors(std::span<const uint8_t> bytes, const std::string& name);
Result<std::unique_ptr<ModelReader>> ParseGguf(std::span<const uint8_t> bytes, const std::string& name);

}  // namespace owf
