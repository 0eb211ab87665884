// A model's files as the GPU transformer (owf/cuda/forward.h) reads them, on the host: the
// config, the tensor list and each weight, prepared for upload. Pure C++ (no CUDA): built only
// with -DOWF_CUDA=ON, but testable without a GPU.
//
// A plain model (GGUF, safetensors, Hugging Face directory) is read as it is: BF16 matrices are
// passed on as the file's own bytes, F16 / F32 ones converted to bf16 (round to nearest even),
// vectors (norms, biases) to fp32.
//
// An owf packed file holds neither the source's config nor its tokenizer as readable entries,
// only their bytes (docs/container.md: "__owf.gaps.N", "__owf.extra.N"). GpuModelFiles writes
// those bytes back into a skeleton of the source -- its files at their full size, with every
// tensor's bytes left as holes (sparse, so it costs no disk) -- and opens that with OpenModel:
// config, tokenizer and tensor shapes come from there, values from the packed file. Quantised
// 2-D tensors stay quantised (ReadPackedCodes -> TileForGpu); any the GPU layout does not take
// (codebooks over 64 entries, optmin, container features it does not know)
// fall back to the CPU-dequantised tensor (ReadPackedTensor) as bf16. The skeleton is removed
// with the object.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "owf/core/memory.h"
#include "owf/core/status.h"
#include "owf/cuda/layout.h"
#include "owf/io/model.h"
#include "owf/model/config.h"

namespace owf::cuda {

// One weight matrix (rows, cols), row-major, ready to upload: quantised or bf16.
struct HostMatrix {
  int64_t rows = 0, cols = 0;
  std::optional<TiledMatrix> tiled;  // owf codes in the GPU layout
  LargeVector<uint16_t> bf16;        // otherwise bf16 values (empty when `mapped` holds them)
  std::span<const uint8_t> mapped;   // or the file's own BF16 bytes (valid while the files are open)
  std::string fallback;              // a packed tensor not kept quantised: why ("" otherwise)

  // The bf16 values (rows * cols * 2 bytes), or null for a tiled matrix.
  const void* dense_bytes() const;
};

// The checked shape of a Llama-family model, as LoadTransformer derives it (vocabulary from the
// embedding, tied output head, GGUF rope_freqs divisors folded into the rotation speeds).
struct GpuModelConfig {
  TransformerConfig config;
  std::vector<double> inv_freq;  // (rope_dim / 2) radians per position of each rotated pair
};

class GpuModelFiles {
 public:
  // Opens a model or an owf packed file (see above). Errors name the path.
  static Result<std::unique_ptr<GpuModelFiles>> Open(const std::string& path);
  ~GpuModelFiles();
  GpuModelFiles(const GpuModelFiles&) = delete;
  GpuModelFiles& operator=(const GpuModelFiles&) = delete;

  const std::string& path() const { return path_; }
  bool packed() const { return layout_ != nullptr; }
  // Config, tokenizer and tensor list: the model itself, or the packed file's source skeleton.
  const ModelReader& reader() const { return layout_ ? *layout_ : *file_; }
  const GpuModelConfig& model() const { return model_; }

  // Matrix `name`, which must have shape (rows, cols). keep_quantised: a packed quantised tensor
  // stays in codes when the GPU layout takes it. Thread-safe (const, no shared state).
  Result<HostMatrix> ReadMatrix(const std::string& name, int64_t rows, int64_t cols, bool keep_quantised) const;
  // Vector `name` of n elements as fp32; absent and `optional`: an empty vector.
  Result<LargeVector<float>> ReadVector(const std::string& name, int64_t n, bool optional = false) const;
  // Done with `name`: mapped pages may be dropped.
  void Release(const std::string& name) const;

  // GPU memory the weights will take (bf16 dense, codes at their width, fp32 vectors), within a
  // few per cent; to decide whether a second model fits beside a first.
  int64_t EstimateWeightBytes(bool keep_quantised = true) const;

 private:
  GpuModelFiles() = default;
  // Why a packed tensor's description cannot go to the GPU layout as codes ("" if it can).
  std::string CodesUnsupported(const nlohmann::json& desc) const;

  std::string path_;
  std::unique_ptr<ModelReader> file_;    // the file as given
  std::unique_ptr<ModelReader> layout_;  // packed only: the source skeleton
  nlohmann::json descs_;                 // packed only: "tensors" of the owf metadata
  std::string skeleton_;                 // packed only: removed on destruction
  GpuModelConfig model_;
};

// Derives the model's config the way LoadTransformer does; errors name the offending tensor.
Result<GpuModelConfig> ResolveModelConfig(const ModelReader& reader,
                                          const std::function<Result<LargeVector<float>>(const std::string&, int64_t)>&
                                              read_vector);

// Writes the skeleton of a packed file's source at `output` (a file, or a directory for a
// directory source): every file at full size with the bytes outside tensors (headers,
// config.json, tokenizer files) restored and the tensors left as holes.
Status WriteSourceSkeleton(const ModelReader& packed, const nlohmann::json& source_layout, const std::string& output);

}  // namespace owf::cuda
