// Host-side model reading for the GPU transformer: see include/owf/cuda/model_files.h.
#include "owf/cuda/model_files.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <numbers>
#include <set>
#include <utility>

#include "owf/core/numeric.h"
#include "owf/core/parallel.h"
#include "owf/io/json_integer.h"
#include "owf/io/packed.h"
#include "owf/io/source.h"

namespace owf::cuda {
namespace {

namespace fs = std::filesystem;

std::string ShapeString(const std::vector<int64_t>& shape) {
  std::string s = "(";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + ")";
}

Status CheckShape(const std::string& name, const std::vector<int64_t>& shape, const std::vector<int64_t>& expected) {
  if (shape == expected) return Status::Ok();
  return InvalidData("tensor '" + name + "' has shape " + ShapeString(shape) + ", expected " + ShapeString(expected));
}

// fp32 -> bf16 (round to nearest even), in parallel chunks of 1M elements.
LargeVector<uint16_t> ToBf16(const LargeVector<float>& values) {
  LargeVector<uint16_t> out(values.size());
  constexpr size_t kChunk = size_t{1} << 20;
  ParallelFor((values.size() + kChunk - 1) / kChunk, 0, [&](size_t c) {
    const size_t end = std::min(values.size(), (c + 1) * kChunk);
    for (size_t i = c * kChunk; i < end; ++i) out[i] = Bf16FromFloat(values[i]);
  });
  return out;
}

Status WriteAt(int fd, std::span<const uint8_t> bytes, uint64_t offset, const std::string& path) {
  size_t done = 0;
  while (done < bytes.size()) {
    const ssize_t n = pwrite(fd, bytes.data() + done, bytes.size() - done, static_cast<off_t>(offset + done));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return IoError("writing '" + path + "': " + std::strerror(errno));
    done += static_cast<size_t>(n);
  }
  return Status::Ok();
}

// Creates `path` of `size` bytes (a sparse file) holding `pieces` at their offsets.
Status WriteSparseFile(const std::string& path, uint64_t size,
                       const std::vector<std::pair<uint64_t, std::span<const uint8_t>>>& pieces) {
  const int fd = open(path.c_str(), O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0600);
  if (fd < 0) return IoError("cannot create '" + path + "': " + std::strerror(errno));
  Status st;
  if (ftruncate(fd, static_cast<off_t>(size)) != 0) st = IoError("cannot size '" + path + "': " + std::strerror(errno));
  for (const auto& [offset, bytes] : pieces) {
    if (!st.ok()) break;
    st = WriteAt(fd, bytes, offset, path);
  }
  if (close(fd) != 0 && st.ok()) st = IoError("closing '" + path + "': " + std::strerror(errno));
  return st;
}

std::string SkeletonPath(const std::string& packed_path) {
  static std::atomic<int> counter{0};
  const std::string name = "owf-gpu-" + std::to_string(getpid()) + "-" + std::to_string(counter++) + "-" +
                           fs::path(packed_path).filename().string();
  return (fs::temp_directory_path() / name).string();
}

int CodeBits(int64_t codebook_size) {
  int bits = 1;
  while ((int64_t{1} << bits) < codebook_size) ++bits;
  return bits;
}

}  // namespace

const void* HostMatrix::dense_bytes() const {
  if (tiled) return nullptr;
  if (!mapped.empty()) return mapped.data();
  return bf16.data();
}


Result<GpuModelConfig> ResolveModelConfig(
    const ModelReader& reader, const std::function<Result<LargeVector<float>>(const std::string&, int64_t)>& read_vector) {
  OWF_ASSIGN_OR_RETURN(TransformerConfig c, ReadTransformerConfig(reader));
  const TensorNames global = NamesFor(c.naming, -1);
  // The vocabulary size is the embedding's row count; a config that says otherwise is wrong.
  const TensorInfo* emb = reader.Find(global.embedding);
  if (emb == nullptr) return InvalidData("missing tensor '" + global.embedding + "'");
  if (emb->shape.size() != 2 || emb->shape[1] != c.dim || emb->shape[0] < 1 || emb->shape[0] > (int64_t{1} << 30)) {
    return InvalidData("tensor '" + global.embedding + "' has shape " + ShapeString(emb->shape) + ", expected (vocab, " +
                       std::to_string(c.dim) + ")");
  }
  if (c.vocab_size != 0 && c.vocab_size != emb->shape[0]) {
    return InvalidData("config vocab_size " + std::to_string(c.vocab_size) + " but tensor '" + global.embedding +
                       "' has " + std::to_string(emb->shape[0]) + " rows");
  }
  c.vocab_size = static_cast<int>(emb->shape[0]);
  // Tied exactly when the config says so, or (not said) when there is no output weight.
  const bool has_output = reader.Find(global.output) != nullptr;
  if (c.tie_embeddings_given && !c.tie_embeddings && !has_output) {
    return InvalidData("missing tensor '" + global.output + "' (tie_word_embeddings is false)");
  }
  if (!c.tie_embeddings_given) c.tie_embeddings = !has_output;

  GpuModelConfig m;
  m.inv_freq = RopeInverseFrequencies(c);
  // GGUF Llama 3 carries its rope scaling as per-frequency divisors.
  if (c.naming == TensorNaming::kGguf && reader.Find("rope_freqs.weight") != nullptr) {
    OWF_ASSIGN_OR_RETURN(const LargeVector<float> factors, read_vector("rope_freqs.weight", c.rope_dim / 2));
    for (size_t i = 0; i < factors.size(); ++i) {
      if (!(factors[i] > 0.0f)) return InvalidData("tensor 'rope_freqs.weight' must be positive");
      m.inv_freq[i] /= factors[i];
    }
  }
  m.config = std::move(c);
  return m;
}

Status WriteSourceSkeleton(const ModelReader& packed, const nlohmann::json& source, const std::string& output) {
  OWF_ASSIGN_OR_RETURN(const SourceLayout layout, SourceLayout::FromJson(source));
  if (layout.format == "npy") return Unsupported("the packed file holds a single .npy tensor, not a model");
  if (!layout.directory && layout.files.size() != 1) return InvalidData("a single-file source must have one file");
  // The container's parts holding the bytes outside tensors (docs/container.md).
  auto part = [&](const std::string& name) -> Result<std::span<const uint8_t>> {
    const TensorInfo* t = packed.Find(name);
    if (t == nullptr) return InvalidData("the packed file has no '" + name + "'");
    return packed.RawBytes(*t);
  };
  if (layout.directory) {
    std::error_code ec;
    if (!fs::create_directory(output, ec)) return IoError("cannot create '" + output + "': " + ec.message());
  }
  for (size_t i = 0; i < layout.files.size(); ++i) {
    const SourceFile& f = layout.files[i];
    const std::string path = layout.directory ? (fs::path(output) / f.name).string() : output;
    OWF_ASSIGN_OR_RETURN(const std::span<const uint8_t> gaps, part("__owf.gaps." + std::to_string(i)));
    uint64_t expected = f.size;  // tensors lie inside the file without overlapping (FromJson checks)
    for (const SourceTensor& t : f.tensors) expected -= t.nbytes;
    if (gaps.size() != expected) {
      return InvalidData("'" + f.name + "': " + std::to_string(gaps.size()) + " bytes outside tensors, expected " +
                         std::to_string(expected));
    }
    // The gaps go between the tensors, in order; the tensors stay holes.
    std::vector<std::pair<uint64_t, std::span<const uint8_t>>> pieces;
    uint64_t pos = 0, taken = 0;
    auto gap_until = [&](uint64_t end) {
      pieces.emplace_back(pos, gaps.subspan(taken, end - pos));
      taken += end - pos;
    };
    for (const SourceTensor& t : f.tensors) {
      gap_until(t.offset);
      pos = t.offset + t.nbytes;
    }
    gap_until(f.size);
    OWF_RETURN_IF_ERROR(WriteSparseFile(path, f.size, pieces));
  }
  for (size_t i = 0; i < layout.extra_files.size(); ++i) {
    OWF_ASSIGN_OR_RETURN(const std::span<const uint8_t> bytes, part("__owf.extra." + std::to_string(i)));
    OWF_RETURN_IF_ERROR(
        WriteSparseFile((fs::path(output) / layout.extra_files[i]).string(), bytes.size(), {{0, bytes}}));
  }
  return Status::Ok();
}

Result<std::unique_ptr<GpuModelFiles>> GpuModelFiles::Open(const std::string& path) {
  std::unique_ptr<GpuModelFiles> f(new GpuModelFiles());
  f->path_ = path;
  OWF_ASSIGN_OR_RETURN(f->file_, OpenModel(path));
  if (f->file_->metadata().contains(kPackedMetadataKey)) {
    auto meta = ReadPackedMetadata(*f->file_);
    if (!meta.ok()) return meta.status().WithContext(path);
    if (!meta->contains("source")) return InvalidData(path + ": no source layout in the owf metadata");
    f->descs_ = (*meta)["tensors"];
    f->skeleton_ = SkeletonPath(path);
    const Status st = WriteSourceSkeleton(*f->file_, (*meta)["source"], f->skeleton_);
    if (!st.ok()) return st.WithContext(path + ": rebuilding the source's headers");
    auto layout = OpenModel(f->skeleton_);
    if (!layout.ok()) return layout.status().WithContext(path + ": the source's headers");
    f->layout_ = std::move(*layout);
  }
  const GpuModelFiles* self = f.get();
  auto model = ResolveModelConfig(f->reader(), [self](const std::string& name, int64_t n) {
    return self->ReadVector(name, n);
  });
  if (!model.ok()) return model.status().WithContext(path);
  f->model_ = std::move(*model);
  return f;
}

GpuModelFiles::~GpuModelFiles() {
  layout_.reset();
  file_.reset();
  std::error_code ec;
  if (!skeleton_.empty()) fs::remove_all(skeleton_, ec);
}

std::string GpuModelFiles::CodesUnsupported(const nlohmann::json& d) const {
  // The fields of a "codes" description that ReadPackedCodes decodes into TileForGpu's view
  // (docs/container.md), rotations included (DeviceMatrix rotates the activations); anything else
  // (a container feature added later) is dequantised on the CPU instead. TileForGpu itself
  // answers Unsupported for what the kernels do not take (optmin's minima, for one).
  static const std::set<std::string> kKnown = {
      "spec",   "fitted",       "shape",  "dtype",    "bits",        "kind",      "codebook",  "group",
      "group_bits", "rows",     "cols",   "coding",   "codes",       "block",     "scale_format", "scales",
      "outliers", "scaling",    "mins",   "super_block", "sub_bits", "super_scales", "sub_scales", "min_bits",
      "super_mins", "sub_mins", "sub_offset", "rotation"};
  for (const auto& [key, value] : d.items()) {
    if (kKnown.count(key) == 0) return "container field '" + key + "' is not in the GPU layout";
  }
  const auto cb = d.find("codebook");
  if (cb != d.end() && cb->is_array() && cb->size() > static_cast<size_t>(kMaxCodebook)) {
    return "a codebook of " + std::to_string(cb->size()) + " entries (the GPU layout takes up to " +
           std::to_string(kMaxCodebook) + ")";
  }
  return "";
}

Result<HostMatrix> GpuModelFiles::ReadMatrix(const std::string& name, int64_t rows, int64_t cols,
                                             bool keep_quantised) const {
  const TensorInfo* info = reader().Find(name);
  if (info == nullptr) return InvalidData("missing tensor '" + name + "'");
  OWF_RETURN_IF_ERROR(CheckShape(name, info->shape, {rows, cols}));
  HostMatrix h;
  h.rows = rows;
  h.cols = cols;
  const size_t n = static_cast<size_t>(rows * cols);
  if (packed() && descs_.contains(name)) {
    const nlohmann::json& d = descs_[name];
    const bool codes = d.is_object() && d.value("kind", "") == "codes";
    std::string why = keep_quantised ? CodesUnsupported(d) : "quantised tensors are dequantised (option)";
    if (codes && why.empty()) {
      OWF_ASSIGN_OR_RETURN(const PackedCodes p, ReadPackedCodes(*file_, name, d));
      if (p.geometry.rows != rows || p.geometry.cols != cols) {
        return InvalidData("packed tensor '" + name + "' is stored as " + std::to_string(p.geometry.rows) + " x " +
                           std::to_string(p.geometry.cols) + ", expected " + ShapeString({rows, cols}));
      }
      // TileForGpu refuses what the kernels cannot run.
      QuantisedMatrixView view;
      view.codebook = p.codebook;
      view.geometry = p.geometry;
      view.scale_format = p.scale_format;
      view.scales = p.scales;
      view.mins = p.mins;
      view.codes = p.codes;
      view.outlier_indices = p.outlier_indices;
      view.outlier_values = p.outlier_values;
      view.rotation_seed = p.rotation_seed;
      Result<TiledMatrix> tiled = TileForGpu(view);
      if (tiled.ok()) {
        h.tiled = std::move(*tiled);
        return h;
      }
      if (tiled.status().code() != StatusCode::kUnsupported) {
        return tiled.status().WithContext("packed tensor '" + name + "' in the GPU layout");
      }
      why = tiled.status().message();
    }
    if (codes) h.fallback = why;
    OWF_ASSIGN_OR_RETURN(const Tensor t, ReadPackedTensor(*file_, name, d));
    if (t.data.size() != n) return InvalidData("packed tensor '" + name + "' has the wrong number of values");
    h.bf16 = ToBf16(t.data);
    return h;
  }
  // Stored as it is: the model's own tensor, or one the packed file kept under its name.
  const TensorInfo* src = packed() ? file_->Find(name) : info;
  if (src == nullptr) return InvalidData("the packed file has no tensor '" + name + "'");
  OWF_RETURN_IF_ERROR(CheckShape(name, src->shape, {rows, cols}));
  if (src->dtype == DType::kBF16) {
    h.mapped = file_->RawBytes(*src);
    if (h.mapped.size() != 2 * n) return InvalidData("tensor '" + name + "' has the wrong number of bytes");
    return h;
  }
  Result<Tensor> t = file_->Read(*src);
  if (!t.ok()) return t.status().WithContext("reading tensor '" + name + "'");
  if (t->data.size() != n) return InvalidData("tensor '" + name + "' has the wrong number of values");
  h.bf16 = ToBf16(t->data);
  return h;
}

Result<LargeVector<float>> GpuModelFiles::ReadVector(const std::string& name, int64_t n, bool optional) const {
  const TensorInfo* info = reader().Find(name);
  if (info == nullptr) {
    if (optional) return LargeVector<float>();
    return InvalidData("missing tensor '" + name + "'");
  }
  OWF_RETURN_IF_ERROR(CheckShape(name, info->shape, {n}));
  Tensor t;
  if (packed() && descs_.contains(name)) {
    OWF_ASSIGN_OR_RETURN(t, ReadPackedTensor(*file_, name, descs_[name]));
  } else {
    const TensorInfo* src = packed() ? file_->Find(name) : info;
    if (src == nullptr) return InvalidData("the packed file has no tensor '" + name + "'");
    OWF_RETURN_IF_ERROR(CheckShape(name, src->shape, {n}));
    Result<Tensor> read = file_->Read(*src);
    if (!read.ok()) return read.status().WithContext("reading tensor '" + name + "'");
    t = std::move(*read);
  }
  if (static_cast<int64_t>(t.data.size()) != n) return InvalidData("tensor '" + name + "' has the wrong size");
  return std::move(t.data);
}

void GpuModelFiles::Release(const std::string& name) const {
  for (const std::string& part : {name, name + ".codes", name + ".scales", name + ".values"}) {
    if (const TensorInfo* t = file_->Find(part)) file_->Release(*t);
  }
}

int64_t GpuModelFiles::EstimateWeightBytes(bool keep_quantised) const {
  const std::string embedding = NamesFor(model_.config.naming, -1).embedding;
  int64_t total = 0;
  for (const TensorInfo& t : reader().tensors()) {
    const int64_t n = t.numel();
    if (t.shape.size() != 2) {
      total += 4 * n;  // vectors: fp32
      continue;
    }
    const nlohmann::json* d = packed() && descs_.contains(t.name) ? &descs_[t.name] : nullptr;
    const bool codes = d != nullptr && d->is_object() && d->value("kind", "") == "codes" && keep_quantised &&
                       CodesUnsupported(*d).empty();
    if (!codes) {
      total += 2 * n;  // bf16
      continue;
    }
    const int64_t k = (*d)["codebook"].is_array() ? static_cast<int64_t>((*d)["codebook"].size()) : 2;
    total += (n * CodeBits(k) + 7) / 8;
    // An estimate: a malformed field (which the packed reader rejects) counts as the most it could
    // cost.
    const auto block = d->find("block");
    if (block != d->end()) {
      int64_t cells = 1;  // weights per scale: 1 where the block is malformed or its product overflows
      if (block->is_array() && block->size() == 2) {
        const auto r = JsonIntegerIf<int64_t>((*block)[0]), c = JsonIntegerIf<int64_t>((*block)[1]);
        if (!r || !c || __builtin_mul_overflow(*r, *c, &cells) || cells < 1) cells = 1;
      }
      total += 4 * ((n + cells - 1) / cells);  // scales, at most 4 bytes each
    }
    const auto outliers = d->find("outliers");
    if (outliers != d->end() && outliers->is_object() && outliers->contains("count")) {
      // index, value and per-row correction, for at most one outlier per weight
      total += 24 * std::clamp<int64_t>(JsonIntegerIf<int64_t>(outliers->at("count")).value_or(n), 0, n);
    }
    if (t.name == embedding) total += 2 * n;  // the lookup table is kept dequantised too
  }
  return total;
}

}  // namespace owf::cuda
