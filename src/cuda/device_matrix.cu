// DeviceMatrix: a TiledMatrix uploaded to GPU memory, and the host side of its kernels.
#include <algorithm>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <utility>

#include "device_common.cuh"
#include "owf/cuda/kernels.h"

namespace owf::cuda {
namespace {

using detail::MatrixArgs;

template <typename T>
Status UploadVector(const std::vector<T>& v, T** out) {
  *out = nullptr;
  if (v.empty()) return Status::Ok();
  OWF_CUDA_RETURN_IF_ERROR(cudaMalloc(reinterpret_cast<void**>(out), v.size() * sizeof(T)));
  OWF_CUDA_RETURN_IF_ERROR(cudaMemcpy(*out, v.data(), v.size() * sizeof(T), cudaMemcpyHostToDevice));
  return Status::Ok();
}

// The small-batch kernels' segment partial sums and tickets, shared by every matrix whose
// products run on one stream (they run one after another, and the last segment of a group sets
// its ticket back to 0): allocated in stream order, grown on demand, kept for the process.
Status UseGemvScratch(cudaStream_t stream, detail::GemvWorkspace& w, int64_t tickets) {
  struct Buffers {
    float* partials = nullptr;
    unsigned* tickets = nullptr;
    int64_t floats = 0, counters = 0;
  };
  static std::mutex mu;
  static std::map<std::pair<int, cudaStream_t>, Buffers> by_stream;
  int device = 0;
  OWF_CUDA_RETURN_IF_ERROR(cudaGetDevice(&device));
  const std::lock_guard<std::mutex> lock(mu);
  Buffers& b = by_stream[{device, stream}];
  if (b.floats < w.partial_floats) {
    if (b.partials) OWF_CUDA_RETURN_IF_ERROR(cudaFreeAsync(b.partials, stream));
    b.partials = nullptr, b.floats = 0;
    OWF_CUDA_RETURN_IF_ERROR(cudaMallocAsync(reinterpret_cast<void**>(&b.partials),
                                             static_cast<size_t>(w.partial_floats) * sizeof(float), stream));
    b.floats = w.partial_floats;
  }
  if (b.counters < tickets) {
    if (b.tickets) OWF_CUDA_RETURN_IF_ERROR(cudaFreeAsync(b.tickets, stream));
    b.tickets = nullptr, b.counters = 0;
    const size_t bytes = static_cast<size_t>(tickets) * sizeof(unsigned);
    OWF_CUDA_RETURN_IF_ERROR(cudaMallocAsync(reinterpret_cast<void**>(&b.tickets), bytes, stream));
    OWF_CUDA_RETURN_IF_ERROR(cudaMemsetAsync(b.tickets, 0, bytes, stream));
    b.counters = tickets;
  }
  w.partials = b.partials;
  w.tickets = b.tickets;
  return Status::Ok();
}

int PowerOfTwoShift(int64_t v) {
  if (v < 1 || (v & (v - 1)) != 0) return -1;
  int s = 0;
  while ((int64_t{1} << s) < v) ++s;
  return s;
}

}  // namespace

bool Available(std::string* why) {
  int count = 0;
  const cudaError_t e = cudaGetDeviceCount(&count);
  if (e != cudaSuccess || count == 0) {
    if (why) *why = e != cudaSuccess ? std::string("no usable CUDA device: ") + cudaGetErrorString(e) : "no CUDA device";
    return false;
  }
  int device = 0, major = 0;
  if (cudaGetDevice(&device) != cudaSuccess ||
      cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device) != cudaSuccess || major < 8) {
    if (why) *why = "the GPU kernels need compute capability 8.0 or newer (bf16 tensor cores)";
    return false;
  }
  return true;
}

struct DeviceMatrix::State {
  int64_t rows = 0, cols = 0, weight_bytes = 0;
  MatrixArgs args{};
  detail::GemmWorkspace workspace;
  detail::GemvWorkspace gemv[detail::kGemvPlans];  // by GemvPlanIndex
  detail::GemvWorkspace wide[detail::kGemmWidePlans];  // 32 and 64 rows
  std::optional<uint64_t> rotation_seed;  // a rotated matrix (TiledMatrix::rotation_seed)
  uint16_t* rotated_x = nullptr;          // then: 64 rows of cols rotated activations,
  uint32_t* negative = nullptr;           // and its signs (NegativeColumns);
  // a rotated matrix's outliers (replacing values of W): the kernels run on V without them (args
  // has none), a product adds their corrections with the unrotated activations, and
  // dequantisation writes them over the un-rotated rows.
  MatrixArgs rotated_outliers{};
  std::vector<void*> allocations;

  template <typename T>
  Status Upload(const std::vector<T>& v, T** out) {
    OWF_RETURN_IF_ERROR(UploadVector(v, out));
    if (*out) allocations.push_back(*out);
    return Status::Ok();
  }
  Status Allocate(size_t bytes, void** out) {
    OWF_CUDA_RETURN_IF_ERROR(cudaMalloc(out, bytes));
    allocations.push_back(*out);
    return Status::Ok();
  }
  ~State() {
    for (void* p : allocations) cudaFree(p);
  }
};

DeviceMatrix::DeviceMatrix(std::unique_ptr<State> s) : s_(std::move(s)) {}
DeviceMatrix::DeviceMatrix(DeviceMatrix&&) noexcept = default;
DeviceMatrix& DeviceMatrix::operator=(DeviceMatrix&&) noexcept = default;
DeviceMatrix::~DeviceMatrix() = default;

int64_t DeviceMatrix::rows() const { return s_->rows; }
int64_t DeviceMatrix::cols() const { return s_->cols; }
int64_t DeviceMatrix::weight_bytes() const { return s_->weight_bytes; }

Result<DeviceMatrix> DeviceMatrix::Upload(const TiledMatrix& m) {
  if (m.code_bits < 1 || m.code_bits > 6 || m.codebook.empty() || m.codebook.size() > kMaxCodebook)
    return InvalidArgument("a tiled matrix needs 1- to 6-bit codes and 1 to 64 codebook entries");
  if (m.rows < 1 || m.cols < 1 || m.row_tiles != (m.rows + kTileRows - 1) / kTileRows ||
      m.col_tiles != (m.cols + kTileCols - 1) / kTileCols ||
      static_cast<int64_t>(m.codes.size()) != m.row_tiles * m.col_tiles * 32 * m.code_bits)
    return InvalidArgument("tiled matrix sizes are inconsistent");
  if (m.scale_type != GpuScale::kNone &&
      (m.block_rows < 1 || m.block_cols < 1 || m.blocks_across != (m.cols + m.block_cols - 1) / m.block_cols))
    return InvalidArgument("tiled matrix scaling blocks are inconsistent");
  if (m.scale_type != GpuScale::kNone && m.scale_type != GpuScale::kBf16 && m.scale_type != GpuScale::kFp32)
    return InvalidArgument("a tiled matrix's scales are bf16 or fp32");
  const int64_t scale_width = m.scale_type == GpuScale::kBf16 ? 2 : 4;
  if (m.scale_type != GpuScale::kNone &&
      static_cast<int64_t>(m.scales.size()) != m.row_tiles * kTileRows * m.blocks_across * scale_width)
    return InvalidArgument("tiled matrix scale bytes do not match its blocks");
  if (!m.outlier_index.empty() && static_cast<int64_t>(m.outlier_row_start.size()) != m.rows + 1)
    return InvalidArgument("tiled matrix outlier rows are inconsistent");
  auto s = std::make_unique<State>();
  s->rows = m.rows;
  s->cols = m.cols;
  s->weight_bytes = m.weight_bytes();
  MatrixArgs& a = s->args;
  OWF_RETURN_IF_ERROR(s->Upload(m.codes, const_cast<uint32_t**>(&a.codes)));
  OWF_RETURN_IF_ERROR(s->Upload(m.scales, const_cast<uint8_t**>(&a.scales)));
  OWF_RETURN_IF_ERROR(s->Upload(m.outlier_row_start, const_cast<int32_t**>(&a.outlier_row_start)));
  OWF_RETURN_IF_ERROR(s->Upload(m.outlier_col, const_cast<int32_t**>(&a.outlier_col)));
  OWF_RETURN_IF_ERROR(s->Upload(m.outlier_delta, const_cast<float**>(&a.outlier_delta)));
  OWF_RETURN_IF_ERROR(s->Upload(m.outlier_index, const_cast<int64_t**>(&a.outlier_index)));
  OWF_RETURN_IF_ERROR(s->Upload(m.outlier_value, const_cast<float**>(&a.outlier_value)));
  std::copy(m.codebook.begin(), m.codebook.end(), a.book);
  a.book_half = std::all_of(m.codebook.begin(), m.codebook.end(),
                            [](float v) { return __half2float(__float2half_rn(v)) == v; });
  a.book_bf16 = std::all_of(m.codebook.begin(), m.codebook.end(),
                            [](float v) { return __bfloat162float(__float2bfloat16_rn(v)) == v; });
  a.code_bits = m.code_bits;
  a.scale_type = static_cast<int>(m.scale_type);
  a.block_rows = m.block_rows;
  a.block_cols = m.block_cols;
  a.blocks_across = m.blocks_across;
  a.block_cols_shift = PowerOfTwoShift(m.block_cols);
  a.rows = m.rows;
  a.cols = m.cols;
  a.col_tiles = m.col_tiles;
  a.row_tiles = m.row_tiles;
  if (m.run_steps != 1 && m.run_steps != 2 && m.run_steps != 4)
    return InvalidArgument("a tiled matrix's lane runs are 1, 2 or 4 k-steps long");
  if (m.run_steps > 1 && m.scale_type != GpuScale::kNone && m.blocks_across > 1 && m.block_cols % (16 * m.run_steps) != 0)
    return InvalidArgument("a tiled matrix's lane runs straddle its scaling blocks");
  a.run_steps = m.run_steps;
  a.outliers = static_cast<int64_t>(m.outlier_index.size());
  s->rotation_seed = m.rotation_seed;
  if (m.rotation_seed) {
    OWF_ASSIGN_OR_RETURN(const int max_bytes, detail::MaxSharedBytes());
    if (detail::RotateRowsSharedBytes(m.cols) > max_bytes - detail::kStaticSharedBytes)
      return Unsupported("rotated rows of " + std::to_string(m.cols) + " columns do not fit in this GPU's shared memory");
    OWF_RETURN_IF_ERROR(s->Allocate(static_cast<size_t>(64 * m.cols) * 2, reinterpret_cast<void**>(&s->rotated_x)));
    OWF_RETURN_IF_ERROR(s->Upload(detail::NegativeColumns(*m.rotation_seed, m.cols), &s->negative));
    if (a.outliers > 0) {
      s->rotated_outliers = a;
      a.outlier_row_start = nullptr, a.outlier_col = nullptr, a.outlier_delta = nullptr;
      a.outlier_index = nullptr, a.outlier_value = nullptr, a.outliers = 0;
    }
  }
  // The split-K GEMM's tickets per row tile and partial sums for up to 8 n-tiles per part (the
  // small-batch kernels' come from the stream's scratch, UseGemvScratch).
  const size_t tickets = static_cast<size_t>(a.row_tiles) * sizeof(unsigned);
  OWF_RETURN_IF_ERROR(s->Allocate(tickets, reinterpret_cast<void**>(&s->workspace.tickets)));
  OWF_CUDA_RETURN_IF_ERROR(cudaMemset(s->workspace.tickets, 0, tickets));
  OWF_ASSIGN_OR_RETURN(s->workspace.k_parts, detail::GemmKParts(a));
  if (s->workspace.k_parts > 1) {
    const size_t floats = static_cast<size_t>(s->workspace.k_parts * a.row_tiles * 8 * 128);
    OWF_RETURN_IF_ERROR(s->Allocate(floats * sizeof(float), reinterpret_cast<void**>(&s->workspace.partials)));
  }
  OWF_ASSIGN_OR_RETURN(const int sms, detail::MultiprocessorCount());
  for (int kernel_rows : {1, 2, 8, 16})
    s->gemv[detail::GemvPlanIndex(kernel_rows)] = detail::PlanGemv(a, sms, kernel_rows);
  for (int kernel_rows : {32, 64}) s->wide[kernel_rows / 64] = detail::PlanGemmWide(a, sms, kernel_rows);
  return DeviceMatrix(std::move(s));
}

bool DeviceMatrix::rotated() const { return s_->rotation_seed.has_value(); }

Status DeviceMatrix::RotateActivations(const uint16_t* x, int64_t ldx, int64_t rows, uint16_t* out, int64_t ld_out,
                                       Stream stream) const {
  if (!s_->rotation_seed) return InvalidArgument("RotateActivations needs a rotated matrix");
  if (!x || !out || rows < 1 || ldx < s_->cols || ld_out < s_->cols)
    return InvalidArgument("RotateActivations needs rows >= 1, ldx >= cols and ld_out >= cols");
  return detail::LaunchRotateRows<uint16_t>(x, ldx, rows, s_->cols, s_->negative, /*inverse=*/false, out, ld_out,
                                            stream);
}

Status DeviceMatrix::DequantiseStoredBf16(uint16_t* out, int64_t ld, Stream stream) const {
  if (!out || ld < s_->cols) return InvalidArgument("DequantiseStoredBf16 needs an output with ld >= cols");
  return detail::LaunchDequantise(s_->args, out, ld, stream);
}

Status DeviceMatrix::DequantiseBf16(uint16_t* out, int64_t ld, Stream stream) const {
  if (!out || ld < s_->cols) return InvalidArgument("DequantiseBf16 needs an output with ld >= cols");
  if (!s_->rotation_seed) return detail::LaunchDequantise(s_->args, out, ld, stream);
  // Rotated: fp32 rows, un-rotated into bf16, in chunks of tile rows (at most 32 MB of scratch).
  const MatrixArgs& a = s_->args;
  const int64_t chunk = std::clamp<int64_t>((int64_t{32} << 20) / (kTileRows * a.cols * 4), 1, a.row_tiles);
  float* scratch = nullptr;
  OWF_CUDA_RETURN_IF_ERROR(cudaMallocAsync(reinterpret_cast<void**>(&scratch),
                                           static_cast<size_t>(chunk * kTileRows * a.cols) * sizeof(float), stream));
  const auto chunks = [&]() -> Status {
    for (int64_t t0 = 0; t0 < a.row_tiles; t0 += chunk) {
      const int64_t tiles = std::min(chunk, a.row_tiles - t0), first_row = t0 * kTileRows;
      OWF_RETURN_IF_ERROR(detail::LaunchDequantiseRows(a, t0, tiles, scratch, stream));
      OWF_RETURN_IF_ERROR(detail::LaunchRotateRows<float>(scratch, a.cols, std::min(a.rows - first_row, tiles * kTileRows),
                                                          a.cols, s_->negative, /*inverse=*/true,
                                                          out + first_row * ld, ld, stream));
    }
    return Status::Ok();
  };
  const Status status = chunks();
  const cudaError_t freed = cudaFreeAsync(scratch, stream);
  OWF_RETURN_IF_ERROR(status);
  OWF_CUDA_RETURN_IF_ERROR(freed);
  // The outliers replace values of W: over the un-rotated rows.
  if (s_->rotated_outliers.outliers > 0) return detail::LaunchWriteOutliers(s_->rotated_outliers, out, ld, stream);
  return Status::Ok();
}

Status DeviceMatrix::Gemm(const uint16_t* x, int64_t ldx, int batch, float* y, int64_t ldy, Stream stream) const {
  const MatrixArgs& a = s_->args;
  if (batch < 1 || batch > 64) return InvalidArgument("Gemm takes 1 to 64 activation rows, not " + std::to_string(batch));
  if (!x || !y || ldx < a.cols || ldy < a.rows) return InvalidArgument("Gemm needs ldx >= cols and ldy >= rows");
  if (a.cols % 2 != 0) return InvalidArgument("Gemm needs an even column count (activations are read in pairs)");
  if (ldx % 2 != 0 || reinterpret_cast<uintptr_t>(x) % 4 != 0)
    return InvalidArgument("Gemm needs 4-byte aligned activation rows (even ldx)");
  if (s_->rotation_seed) {  // W x = V rotate(x) + the outliers' corrections (unrotated x)
    if (batch == 1 && detail::GemvRotatesActivations(a)) {  // the GEMV rotates x itself, in fp32
      OWF_RETURN_IF_ERROR(ProductOfCodes(x, ldx, 1, y, ldy, stream, s_->negative));
    } else {
      OWF_RETURN_IF_ERROR(RotateActivations(x, ldx, batch, s_->rotated_x, a.cols, stream));
      OWF_RETURN_IF_ERROR(ProductOfCodes(s_->rotated_x, a.cols, batch, y, ldy, stream));
    }
    return CorrectStoredProduct(x, ldx, batch, y, ldy, stream);
  }
  return ProductOfCodes(x, ldx, batch, y, ldy, stream);
}

Status DeviceMatrix::CorrectStoredProduct(const uint16_t* x, int64_t ldx, int64_t rows, float* y, int64_t ldy,
                                          Stream stream) const {
  if (!s_->rotation_seed || s_->rotated_outliers.outliers == 0) return Status::Ok();
  if (!x || !y || rows < 1 || ldx < s_->cols || ldy < s_->rows)
    return InvalidArgument("CorrectStoredProduct needs rows >= 1, ldx >= cols and ldy >= rows");
  return detail::LaunchAddOutlierCorrections(s_->rotated_outliers, x, ldx, rows, y, ldy, stream);
}

Status DeviceMatrix::ProductOfCodes(const uint16_t* x, int64_t ldx, int batch, float* y, int64_t ldy, Stream stream,
                                    const uint32_t* rotate_negative) const {
  const MatrixArgs& a = s_->args;
  // The small-batch kernels and the wide GEMM, with the stream's scratch; the split-K GEMM takes
  // what they do not (other block widths, 1-bit codes in blocks narrower than a tile).
  const auto gemv = [&](int b0, int n, int rows) -> Status {
    detail::GemvWorkspace w = s_->gemv[detail::GemvPlanIndex(rows)];
    OWF_RETURN_IF_ERROR(UseGemvScratch(stream, w, a.row_tiles));
    return detail::LaunchGemv(a, w, x + b0 * ldx, ldx, n, rows, y + b0 * ldy, ldy, stream, rotate_negative);
  };
  if (const int rows = detail::GemvKernelRows(a, batch)) return gemv(0, batch, rows);
  if (const int rows = detail::GemmWideRows(a, batch)) {
    detail::GemvWorkspace w = s_->wide[rows / 64];
    OWF_RETURN_IF_ERROR(UseGemvScratch(stream, w, a.row_tiles));
    return detail::LaunchGemmWide(a, w, x, ldx, batch, rows, y, ldy, stream);
  }
  // 16-row chunks: each reads the weights again. Faster than the wide GEMM at 17-32 rows on
  // matrices of fewer than 8192 rows (docs/gpu-performance.md), and where its shared memory does
  // not fit.
  if (detail::GemvKernelRows(a, detail::kGemvMaxBatch) == detail::kGemvMaxBatch) {
    for (int b0 = 0; b0 < batch; b0 += detail::kGemvMaxBatch) {
      const int n = std::min(detail::kGemvMaxBatch, batch - b0);
      const int rows = detail::GemvKernelRows(a, n);
      if (rows == 0) return Internal("no small-batch kernel for " + std::to_string(n) + " rows");
      OWF_RETURN_IF_ERROR(gemv(b0, n, rows));
    }
    return Status::Ok();
  }
  return detail::LaunchGemm(a, s_->workspace, x, ldx, batch, y, ldy, stream);
}

}  // namespace owf::cuda
