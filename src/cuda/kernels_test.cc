#include "owf/cuda/kernels.h"

#include <cuda_runtime.h>
#include <gtest/gtest.h>

#include <cmath>
#include <initializer_list>
#include <random>

#include "owf/core/numeric.h"
#include "owf/formats/rotation.h"
#include "test_matrices.h"

namespace owf::cuda {
namespace {

using testing::AwkwardMatrices;
using testing::Quantise;
using testing::ViewOf;

#define SKIP_WITHOUT_GPU()                                       \
  do {                                                           \
    std::string why;                                             \
    if (!Available(&why)) GTEST_SKIP() << "no GPU: " << why;     \
  } while (0)

template <typename T>
struct DeviceBuffer {
  T* p = nullptr;
  size_t n = 0;
  explicit DeviceBuffer(size_t count) : n(count) {
    if (cudaMalloc(reinterpret_cast<void**>(&p), n * sizeof(T)) != cudaSuccess) p = nullptr;
  }
  ~DeviceBuffer() {
    if (p) cudaFree(p);
  }
  void Upload(const std::vector<T>& v) { ASSERT_EQ(cudaMemcpy(p, v.data(), n * sizeof(T), cudaMemcpyHostToDevice), cudaSuccess); }
  std::vector<T> Download() const {
    std::vector<T> v(n);
    EXPECT_EQ(cudaMemcpy(v.data(), p, n * sizeof(T), cudaMemcpyDeviceToHost), cudaSuccess);
    return v;
  }
};

Result<DeviceMatrix> UploadQuantised(const QuantisedTensor& q) {
  OWF_ASSIGN_OR_RETURN(TiledMatrix m, TileForGpu(ViewOf(q)));
  return DeviceMatrix::Upload(m);
}

// Dequantisation is bit-exact with the CPU: bf16 of the fp32 values, outliers included; the
// padding of the output rows (ld > cols) is not written. Odd row strides take element stores;
// strides of a multiple of 8 take the stores of lane runs (16 or 8 bytes, a scale per run), or
// 32-bit ones. Blocks of 24 and 8 columns (the GEMMs do not take them) put runs of 4 columns in
// different blocks of one k-step.
TEST(CudaKernels, DequantiseIsBitExact) {
  SKIP_WITHOUT_GPU();
  std::vector<testing::TestMatrix> matrices = AwkwardMatrices();
  matrices.push_back({"int3@24:absmax", 21, 100});
  matrices.push_back({"int4@8:absmax+outliers(0.02)", 18, 72});
  for (const auto& tm : matrices) {
    SCOPED_TRACE(tm.spec);
    auto q = Quantise(tm);
    ASSERT_TRUE(q.ok()) << q.status().ToString();
    auto d = UploadQuantised(*q);
    ASSERT_TRUE(d.ok()) << d.status().ToString();
    for (const int64_t ld : {tm.cols + 5, (tm.cols + 7) / 8 * 8 + 8}) {
      SCOPED_TRACE(ld);
      DeviceBuffer<uint16_t> out(static_cast<size_t>(tm.rows * ld));
      out.Upload(std::vector<uint16_t>(out.n, 0xFFFF));
      ASSERT_TRUE(d->DequantiseBf16(out.p, ld).ok());
      ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
      const std::vector<uint16_t> got = out.Download();
      for (int64_t r = 0; r < tm.rows; ++r) {
        for (int64_t c = 0; c < ld; ++c) {
          const uint16_t want = c < tm.cols ? Bf16FromFloat(q->values.data[static_cast<size_t>(r * tm.cols + c)]) : 0xFFFF;
          ASSERT_EQ(got[static_cast<size_t>(r * ld + c)], want) << "at (" << r << ", " << c << ")";
        }
      }
    }
  }
}

// Runs Gemm on random bf16 activations and checks every output against a double-precision
// product of the CPU's dequantised weights and the same activations, within the error of the
// two-term bf16 weight split of the tensor-core path (2^-17 relative) plus fp32 accumulation (the
// CUDA-core path for batches 1-2 multiplies fp32 codebook values and is tighter still). The
// activations start x_offset elements into their buffer (2: only 4-byte aligned).
void ExpectGemmMatches(const QuantisedTensor& q, const DeviceMatrix& d, int batch, std::mt19937& rng,
                       int64_t x_offset = 0) {
  SCOPED_TRACE("batch " + std::to_string(batch) + ", activations at element " + std::to_string(x_offset));
  std::normal_distribution<float> normal(0.0f, 1.0f);
  const int64_t rows = q.geometry.rows, cols = q.geometry.cols;
  const int64_t ldx = cols + 16, ldy = rows + 3;
  std::vector<uint16_t> x(static_cast<size_t>(batch * ldx + x_offset));
  for (auto& v : x) v = Bf16FromFloat(normal(rng));
  DeviceBuffer<uint16_t> dx(x.size());
  dx.Upload(x);
  DeviceBuffer<float> dy(static_cast<size_t>(batch * ldy));
  ASSERT_TRUE(d.Gemm(dx.p + x_offset, ldx, batch, dy.p, ldy).ok());
  ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
  const std::vector<float> y = dy.Download();
  for (int b = 0; b < batch; ++b) {
    for (int64_t r = 0; r < rows; ++r) {
      double ref = 0, mag = 0;
      for (int64_t c = 0; c < cols; ++c) {
        const double w = q.values.data[static_cast<size_t>(r * cols + c)];
        const double xv = FloatFromBf16(x[static_cast<size_t>(x_offset + b * ldx + c)]);
        ref += w * xv;
        mag += std::abs(w * xv);
      }
      ASSERT_NEAR(y[static_cast<size_t>(b * ldy + r)], ref, 3e-5 * mag + 1e-30) << "row " << r << " batch row " << b;
    }
  }
}

// ExpectGemmMatches for each matrix (quantised and uploaded) at each batch; with
// alternate_alignment every other batch reads activations that are only 4-byte aligned.
void ExpectGemmsMatch(const std::vector<testing::TestMatrix>& matrices, std::initializer_list<int> batches,
                      std::mt19937& rng, bool alternate_alignment = false) {
  for (const auto& tm : matrices) {
    SCOPED_TRACE(tm.spec);
    auto q = Quantise(tm);
    ASSERT_TRUE(q.ok()) << q.status().ToString();
    auto d = UploadQuantised(*q);
    ASSERT_TRUE(d.ok()) << d.status().ToString();
    int k = 0;
    for (int batch : batches) ExpectGemmMatches(*q, *d, batch, rng, alternate_alignment ? 2 * (k++ % 2) : 0);
  }
}

// Every batch size class (1-2: CUDA cores; 3-16: tensor cores, 5-6 bit codes on the 16-row
// kernel; 17-64: the wide GEMM, 16-row chunks or the split-K GEMM) on awkward shapes and strides.
TEST(CudaKernels, GemmMatchesTheCpuReference) {
  SKIP_WITHOUT_GPU();
  std::mt19937 rng(11);
  ExpectGemmsMatch(AwkwardMatrices(), {1, 2, 3, 4, 5, 8, 13, 16, 31, 33, 64}, rng);
}

// Where not even one row of activations fits in shared memory (45056 columns on an H100), batches
// 1-2 must still be computed (by a tensor-core kernel: 8 rows, or 16 for 5-6 bit codes), not
// refused; batches 3-4 where 3 rows would fit and 4 would not (12288 columns) once took a
// CUDA-core kernel of 4 rows for 5-6 bit codes, and now take the 16-row tensor-core kernel.
TEST(CudaKernels, BatchThreeWhereOnlyThreeRowsFit) {
  SKIP_WITHOUT_GPU();
  std::mt19937 rng(13);
  for (const char* spec : {"crd4(t,df=5)@64:absmax", "crd5(t,df=5)@64:absmax"}) {
    for (const int64_t cols : {12288, 45056}) {
      SCOPED_TRACE(std::string(spec) + " x " + std::to_string(cols));
      auto q = Quantise({spec, 32, cols});
      ASSERT_TRUE(q.ok()) << q.status().ToString();
      auto d = UploadQuantised(*q);
      ASSERT_TRUE(d.ok()) << d.status().ToString();
      for (int batch : {1, 2, 3, 4}) ExpectGemmMatches(*q, *d, batch, rng);
    }
  }
}

// Matrices large enough that the small-batch kernels give each warp several tiles, so that warp
// ranges start and end inside row tiles (partial sums of several warps per row tile), for every
// table shape (1-6 bit codes; 5- and 6-bit codes take per-code tables on tensor cores), 2-D
// scaling blocks and outliers, on CUDA cores (batch 1, 2) and tensor cores (4, 8, 16).
TEST(CudaKernels, SmallBatchGemmSplitsRowsAcrossWarps) {
  SKIP_WITHOUT_GPU();
  std::mt19937 rng(12);
  const std::vector<testing::TestMatrix> matrices = {
      {"crd4(t,df=5)@64:absmax", 1000, 4032},
      {"crd3(laplace)@128:absmax:e8m0+outliers(0.005)", 517, 3000},
      {"int2@64:absmax", 300, 4096},
      {"lut(-1,1)@channel:absmax", 96, 8192},
      {"crd5(t,df=7)@128:absmax:e4m3", 250, 2048},
      {"crd6(normal)@256:absmax:fp32", 130, 2304},
      {"crd4(t,df=5)@4x64:absmax", 202, 1536},  // 2-D blocks: each row holds its block's scale
      {"int4@64:absmax", 90, 16384},  // fp16 tables; at batch 1 64 KB of activations beside the table
      // Blocks of 32 and 16 columns (2 and 4 per tile; 2- to 6-bit codes at batches 1-2 on CUDA
      // cores and at 4-16 on tensor cores), including a last tile whose later blocks lie past the
      // matrix (990 and 1000 columns).
      {"e2m1@32:absmax:e8m0+outliers(0.01)", 1000, 4096},
      {"crd4(t,df=5)@32:absmax", 300, 990},
      {"int4@16:absmax:fp16", 200, 1000},
      {"crd3(t,df=5)@32:absmax+outliers(0.01)", 300, 990},
      {"int2@16:absmax", 150, 1000},
      {"crd5(t,df=7)@32:absmax:e4m3", 120, 640},
      {"crd5(t,df=7)@16:absmax+outliers(0.01)", 260, 1000},
      {"crd6(normal)@32:absmax:fp32", 140, 2000},
      {"crd6(normal)@16:absmax", 100, 990},
      // Presets with two-level scales (fp32 per sub-block of 16 or 32 columns on the GPU) and
      // 17 or 38 levels (5- and 6-bit codes).
      {"fixed4.5", 200, 1024},
      {"fixed5", 120, 1280},
      {"crd4(t,df=5)@4x32:absmax", 202, 1536},
  };
  ExpectGemmsMatch(matrices, {1, 2, 4, 8, 16}, rng);
}

// Batches 17-64 on the wide GEMM (tiles the small-batch kernels take; its 32-row kernel takes
// matrices of 8192 rows or more, the tall ones here, and 16-row chunks the others): row blocks
// split across block ranges, partial row and column tiles, 1- to 6-bit codes (5-6 bits: per-code
// tables), bf16 and fp32 scales, 2-D blocks, outliers, 2- to 6-bit codes in blocks of 32 and 16
// columns (lane runs of 8 and 4 columns, last tiles whose later blocks lie past the matrix), and
// activations that are 16-byte aligned (staged 16 bytes at a time) or only 4-byte aligned (staged
// in pairs).
TEST(CudaKernels, WideGemmMatchesTheCpuReference) {
  SKIP_WITHOUT_GPU();
  std::mt19937 rng(14);
  const std::vector<testing::TestMatrix> matrices = {
      {"crd4(t,df=5)@64:absmax", 1000, 4032},
      {"crd3(laplace)@128:absmax:e8m0+outliers(0.005)", 517, 3000},
      {"int2@64:absmax", 300, 4096},
      {"lut(-1,1)@channel:absmax", 96, 8192},
      {"int3@64:absmax:fp32", 130, 4096},
      {"crd4(t,df=5)@4x64:absmax", 202, 1536},
      {"nf4@64:absmax", 2048, 2048},
      {"crd4(t,df=5)@64:absmax+outliers(0.01)", 8200, 320},
      {"int3@128:absmax:fp32", 8195, 448},
      {"int2@64:absmax", 9000, 192},
      {"e2m1@32:absmax:e8m0", 300, 1000},
      {"crd4(t,df=5)@32:absmax:fp32+outliers(0.01)", 140, 990},
      {"int4@16:absmax:fp16", 200, 1000},
      {"nf4@16:absmax", 8210, 160},  // tall, blocks of 16: the 32-row kernel stages 3 steps deep
      {"crd4(t,df=5)@32:absmax:fp32", 8200, 192},  // likewise (blocks of 32, fp32 scales)
      {"crd3(t,df=5)@32:absmax+outliers(0.01)", 300, 1000},
      {"int2@16:absmax:fp32", 170, 480},
      {"crd5(t,df=7)@64:absmax+outliers(0.01)", 300, 2048},
      {"crd6(normal)@128:absmax:e4m3", 8200, 256},
      {"crd6(normal)@16:absmax:fp32", 8200, 160},  // 6-bit codes, blocks of 16, fp32 scales: 3 stages
      {"fixed4.5", 250, 1024},
      {"fixed5", 130, 1280},
  };
  ExpectGemmsMatch(matrices, {17, 24, 32, 40, 64}, rng, /*alternate_alignment=*/true);
}

// Codebooks whose values are all exactly fp16 and bf16 (int4, int3, e2m1) take fp16 lookup tables
// at batch 1 and hi terms only on tensor cores (batches 3-64): they match the CPU reference, and
// give the same bits as the general paths, which the same matrix takes when its codebook carries
// one more value, which neither fp16 nor bf16 can hold and no code uses.
TEST(CudaKernels, ExactCodebooksGiveTheSameBitsAsTheGeneralPaths) {
  SKIP_WITHOUT_GPU();
  std::mt19937 rng(14);
  const std::vector<testing::TestMatrix> matrices = {
      {"int4@64:absmax+outliers(0.01)", 300, 2112},
      {"e2m1@128:absmax", 517, 1000},
      {"int3@64:absmax:fp32", 130, 4096},
  };
  for (const auto& tm : matrices) {
    SCOPED_TRACE(tm.spec);
    auto q = Quantise(tm);
    ASSERT_TRUE(q.ok()) << q.status().ToString();
    auto tiled = TileForGpu(ViewOf(*q));
    ASSERT_TRUE(tiled.ok()) << tiled.status().ToString();
    auto half = DeviceMatrix::Upload(*tiled);
    ASSERT_TRUE(half.ok()) << half.status().ToString();
    for (int batch : {1, 8, 16, 64}) ExpectGemmMatches(*q, *half, batch, rng);
    // Never indexed: it sits past the 2^code_bits values the codes can reach, or in e2m1's unused
    // 16th slot.
    tiled->codebook.push_back(0.1f);
    auto full = DeviceMatrix::Upload(*tiled);
    ASSERT_TRUE(full.ok()) << full.status().ToString();
    std::vector<uint16_t> x(static_cast<size_t>(40 * tm.cols));
    std::normal_distribution<float> normal(0.0f, 1.0f);
    for (auto& v : x) v = Bf16FromFloat(normal(rng));
    DeviceBuffer<uint16_t> dx(x.size());
    dx.Upload(x);
    for (int batch : {1, 8, 16, 40}) {
      SCOPED_TRACE(batch);
      DeviceBuffer<float> y_half(static_cast<size_t>(batch * tm.rows)), y_full(static_cast<size_t>(batch * tm.rows));
      ASSERT_TRUE(half->Gemm(dx.p, tm.cols, batch, y_half.p, tm.rows).ok());
      ASSERT_TRUE(full->Gemm(dx.p, tm.cols, batch, y_full.p, tm.rows).ok());
      EXPECT_EQ(y_half.Download(), y_full.Download());
    }
  }
}

// Products alternate between two activation sets, so that a call reading partial sums or tickets
// left in the stream's scratch by the call before (the GEMV's and the wide GEMM's block parts,
// which each group's last block adds up and whose tickets it resets) would give the other input's
// bits.
TEST(CudaKernels, GemmIsDeterministic) {
  SKIP_WITHOUT_GPU();
  auto q = Quantise({"crd4(t,df=5)@64:absmax", 1000, 2048});
  ASSERT_TRUE(q.ok());
  auto d = UploadQuantised(*q);
  ASSERT_TRUE(d.ok());
  std::vector<uint16_t> x(64 * 2048), x_other(x.size());
  for (size_t i = 0; i < x.size(); ++i) {
    x[i] = Bf16FromFloat(std::sin(0.37f * static_cast<float>(i)));
    x_other[i] = Bf16FromFloat(std::cos(0.11f * static_cast<float>(i)));
  }
  DeviceBuffer<uint16_t> dx(x.size()), dx_other(x.size());
  dx.Upload(x);
  dx_other.Upload(x_other);
  for (int batch : {1, 2, 4, 16, 32, 64}) {  // the GEMVs' and the wide GEMM's segment sums
    SCOPED_TRACE(batch);
    const size_t n = static_cast<size_t>(batch) * 1000;
    DeviceBuffer<float> y1(n), y2(n), y_other1(n), y_other2(n);
    ASSERT_TRUE(d->Gemm(dx.p, 2048, batch, y1.p, 1000).ok());
    ASSERT_TRUE(d->Gemm(dx_other.p, 2048, batch, y_other1.p, 1000).ok());
    const std::vector<float> first = y1.Download(), first_other = y_other1.Download();
    ASSERT_NE(first, first_other);
    for (int rep = 0; rep < 4; ++rep) {
      ASSERT_TRUE(d->Gemm(dx.p, 2048, batch, y2.p, 1000).ok());
      ASSERT_TRUE(d->Gemm(dx_other.p, 2048, batch, y_other2.p, 1000).ok());
      EXPECT_EQ(y2.Download(), first);
      EXPECT_EQ(y_other2.Download(), first_other);
    }
  }
}

// The small-batch kernels' scratch (partial sums, tickets) is per stream: products of two matrices
// running concurrently on two streams give the same bits as one after another on the default
// stream, and so does a matrix whose product needs more scratch than the stream had.
TEST(CudaKernels, GemmScratchIsPerStream) {
  SKIP_WITHOUT_GPU();
  auto qa = Quantise({"crd4(t,df=5)@64:absmax", 1000, 2048});
  auto qb = Quantise({"crd3(laplace)@128:absmax+outliers(0.005)", 2000, 4096});
  ASSERT_TRUE(qa.ok() && qb.ok());
  auto da = UploadQuantised(*qa);
  auto db = UploadQuantised(*qb);
  ASSERT_TRUE(da.ok() && db.ok());
  std::vector<uint16_t> x(16 * 4096);
  for (size_t i = 0; i < x.size(); ++i) x[i] = Bf16FromFloat(std::cos(0.23f * static_cast<float>(i)));
  DeviceBuffer<uint16_t> dx(x.size());
  dx.Upload(x);
  cudaStream_t s1 = nullptr, s2 = nullptr;
  ASSERT_EQ(cudaStreamCreate(&s1), cudaSuccess);
  ASSERT_EQ(cudaStreamCreate(&s2), cudaSuccess);
  for (int batch : {1, 8, 16}) {
    SCOPED_TRACE(batch);
    DeviceBuffer<float> ya(static_cast<size_t>(batch) * 1000), yb(static_cast<size_t>(batch) * 2000);
    DeviceBuffer<float> ya2(ya.n), yb2(yb.n);
    ASSERT_TRUE(da->Gemm(dx.p, 2048, batch, ya.p, 1000).ok());
    ASSERT_TRUE(db->Gemm(dx.p, 4096, batch, yb.p, 2000).ok());
    for (int rep = 0; rep < 4; ++rep) {
      ASSERT_TRUE(da->Gemm(dx.p, 2048, batch, ya2.p, 1000, s1).ok());
      ASSERT_TRUE(db->Gemm(dx.p, 4096, batch, yb2.p, 2000, s2).ok());
    }
    ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
    EXPECT_EQ(ya.Download(), ya2.Download());
    EXPECT_EQ(yb.Download(), yb2.Download());
  }
  cudaStreamDestroy(s1);
  cudaStreamDestroy(s2);
}

TEST(CudaKernels, GemmRejectsBadShapes) {
  SKIP_WITHOUT_GPU();
  auto q = Quantise({"int4@64:absmax", 32, 128});
  ASSERT_TRUE(q.ok());
  auto d = UploadQuantised(*q);
  ASSERT_TRUE(d.ok());
  DeviceBuffer<uint16_t> x(65 * 130);
  DeviceBuffer<float> y(65 * 32);
  EXPECT_EQ(d->Gemm(x.p, 128, 0, y.p, 32).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(d->Gemm(x.p, 128, 65, y.p, 32).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(d->Gemm(x.p, 127, 1, y.p, 32).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(d->Gemm(x.p + 1, 128, 1, y.p, 32).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(d->Gemm(x.p, 128, 1, y.p, 31).code(), StatusCode::kInvalidArgument);
  auto odd = Quantise({"int4@8:absmax", 16, 64});
  ASSERT_TRUE(odd.ok());
  auto od = UploadQuantised(*odd);
  ASSERT_TRUE(od.ok());
  EXPECT_EQ(od->Gemm(x.p, 64, 1, y.p, 32).code(), StatusCode::kInvalidArgument);
  EXPECT_TRUE(od->DequantiseBf16(x.p, 64).ok());
}

// Hadamard-rotated matrices: TileForGpu keeps the codes of V = W (less its outliers) rotated
// along its rows (rows of 64 to 40,000 columns: pieces of 4 to 32768 values), as
// DequantiseStoredBf16 gives it. Dequantisation un-rotates each row on the GPU and writes the
// outliers over: the same bits as the CPU's dequantised tensor (131,112 rows of 64 columns take
// two chunks of the scratch memory). Products rotate their activations and add the outliers'
// corrections with the unrotated ones: against V times the CPU's rotation of the bf16
// activations (rounded to bf16, as RotateActivations rounds them; at batch 1, where the row fits
// in shared memory beside the GEMV's table, 6144 columns or fewer here, the GEMV rotates it
// itself in fp32, without rounding) plus those corrections, within the kernels' tolerance;
// against W times the activations within that rounding (2^-9 of each rotated activation).
TEST(CudaKernels, RotatedMatricesDequantiseAndMultiplyLikeTheCpu) {
  SKIP_WITHOUT_GPU();
  const std::vector<testing::TestMatrix> matrices = {
      {"int4@64:absmax+rotate(hadamard,5)", 37, 172},  // pieces of 128, 32, 8 and 4 columns
      {"crd4(normal)@32:absmax+outliers(0.01)+rotate(hadamard,9)", 50, 256},
      {"crd3(t,df=5)@64:absmax+rotate(hadamard,3)", 8200, 512},  // the wide GEMM at 33-64 rows
      {"crd4(t,df=5)@64:absmax+outliers(0.005)+rotate(hadamard,21)", 300, 6144},  // pieces of 4096 and 2048
      // Pieces of 512 values or more go through registers: 16384, 8192 and 4096; 32768 ... 512 and 64.
      {"crd4(normal)@128:absmax+rotate(hadamard,17)", 20, 28672},
      {"int4@64:absmax+rotate(hadamard,13)", 33, 40000},
      {"int4@64:absmax+outliers(0.001)+rotate(hadamard,11)", 131112, 64}};
  std::mt19937 rng(5);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  for (const auto& tm : matrices) {
    SCOPED_TRACE(tm.spec);
    auto q = Quantise(tm);
    ASSERT_TRUE(q.ok()) << q.status().ToString();
    ASSERT_TRUE(q->rotation_seed.has_value());
    auto m = TileForGpu(ViewOf(*q));
    ASSERT_TRUE(m.ok()) << m.status().ToString();
    auto d = DeviceMatrix::Upload(*m);
    ASSERT_TRUE(d.ok()) << d.status().ToString();
    const int64_t rows = tm.rows, cols = tm.cols, ld = cols + 6;
    DeviceBuffer<uint16_t> out(static_cast<size_t>(rows * ld));
    ASSERT_TRUE(d->DequantiseBf16(out.p, ld).ok());
    const std::vector<uint16_t> got = out.Download();
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t c = 0; c < cols; ++c)
        ASSERT_EQ(got[static_cast<size_t>(r * ld + c)], Bf16FromFloat(q->values.data[static_cast<size_t>(r * cols + c)]))
            << "at (" << r << ", " << c << ")";
    if (rows > 10000) continue;  // products: the smaller matrices
    std::vector<double> vd(static_cast<size_t>(rows * cols));  // V, as the kernels see it
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t c = 0; c < cols; ++c) vd[static_cast<size_t>(r * cols + c)] = TiledValue(*m, r, c);
    ASSERT_TRUE(d->rotated());
    ASSERT_TRUE(d->DequantiseStoredBf16(out.p, ld).ok());  // V itself
    const std::vector<uint16_t> stored = out.Download();
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t c = 0; c < cols; ++c)
        ASSERT_EQ(stored[static_cast<size_t>(r * ld + c)], Bf16FromFloat(static_cast<float>(vd[static_cast<size_t>(r * cols + c)])))
            << "stored at (" << r << ", " << c << ")";
    for (const int batch : {1, 2, 5, 16, 40}) {
      SCOPED_TRACE(batch);
      const int64_t ldx = cols + 4, ldy = rows + 1;
      std::vector<uint16_t> x(static_cast<size_t>(batch * ldx));
      for (auto& v : x) v = Bf16FromFloat(normal(rng));
      DeviceBuffer<uint16_t> dx(x.size());
      dx.Upload(x);
      DeviceBuffer<float> dy(static_cast<size_t>(batch * ldy));
      ASSERT_TRUE(d->Gemm(dx.p, ldx, batch, dy.p, ldy).ok());
      const std::vector<float> y = dy.Download();
      ASSERT_TRUE(d->Gemm(dx.p, ldx, batch, dy.p, ldy).ok());  // every block rotates the same bits
      EXPECT_EQ(dy.Download(), y) << "a second product";
      for (int b = 0; b < batch; ++b) {
        std::vector<float> xr(static_cast<size_t>(cols));
        for (int64_t c = 0; c < cols; ++c) xr[static_cast<size_t>(c)] = FloatFromBf16(x[static_cast<size_t>(b * ldx + c)]);
        const std::vector<float> xw = xr;
        HadamardRotateRow(xr, *q->rotation_seed, /*inverse=*/false);
        const bool gemv_rotates = batch == 1 && cols <= 6144;
        if (!gemv_rotates)
          for (auto& v : xr) v = FloatFromBf16(Bf16FromFloat(v));
        if (batch == 5) {  // RotateActivations: the CPU's rotation, rounded to bf16
          DeviceBuffer<uint16_t> rx(static_cast<size_t>(cols));
          ASSERT_TRUE(d->RotateActivations(dx.p + b * ldx, ldx, 1, rx.p, cols).ok());
          const std::vector<uint16_t> got_x = rx.Download();
          for (int64_t c = 0; c < cols; ++c)
            ASSERT_EQ(got_x[static_cast<size_t>(c)], Bf16FromFloat(xr[static_cast<size_t>(c)])) << "activation " << c;
        }
        for (int64_t r = 0; r < rows; ++r) {
          double ref = 0, mag = 0, ref_w = 0, mag_w = 0;
          for (int64_t c = 0; c < cols; ++c) {
            const double v = vd[static_cast<size_t>(r * cols + c)], xv = xr[static_cast<size_t>(c)];
            ref += v * xv;
            mag += std::abs(v * xv);
            const double w = q->values.data[static_cast<size_t>(r * cols + c)];
            ref_w += w * xw[static_cast<size_t>(c)];
            mag_w += std::abs(w) * std::abs(static_cast<double>(xw[static_cast<size_t>(c)]));
          }
          if (!m->outlier_row_start.empty()) {  // the outliers' corrections, with the unrotated activations
            for (int32_t o = m->outlier_row_start[static_cast<size_t>(r)]; o < m->outlier_row_start[static_cast<size_t>(r + 1)]; ++o) {
              const double term = static_cast<double>(m->outlier_delta[static_cast<size_t>(o)]) *
                                  xw[static_cast<size_t>(m->outlier_col[static_cast<size_t>(o)])];
              ref += term;
              mag += std::abs(term);
            }
          }
          const float yv = y[static_cast<size_t>(b * ldy + r)];
          ASSERT_NEAR(yv, ref, 3e-5 * mag + 1e-30) << "row " << r << " batch row " << b;
          ASSERT_NEAR(yv, ref_w, 4e-3 * mag + 1e-4 * mag_w) << "row " << r << " batch row " << b;
        }
      }
    }
  }
}

}  // namespace
}  // namespace owf::cuda
