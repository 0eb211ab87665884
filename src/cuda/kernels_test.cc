#include "owf/cuda/kernels.h"

#include <cuda_runtime.h>
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "owf/core/numeric.h"
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
// padding of the output rows (ld > cols) is not written.
TEST(CudaKernels, DequantiseIsBitExact) {
  SKIP_WITHOUT_GPU();
  for (const auto& tm : AwkwardMatrices()) {
    SCOPED_TRACE(tm.spec);
    auto q = Quantise(tm);
    ASSERT_TRUE(q.ok()) << q.status().ToString();
    auto d = UploadQuantised(*q);
    ASSERT_TRUE(d.ok()) << d.status().ToString();
    const int64_t ld = tm.cols + 5;
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

// Products agree with a double-precision product of the CPU's dequantised weights and the same
// bf16 activations, within the error of the two-term bf16 weight split (2^-17 relative) plus
// fp32 accumulation, for every batch size class and awkward shapes and strides.
TEST(CudaKernels, GemmMatchesTheCpuReference) {
  SKIP_WITHOUT_GPU();
  std::mt19937 rng(11);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  for (const auto& tm : AwkwardMatrices()) {
    if (tm.cols % 2 != 0) continue;
    SCOPED_TRACE(tm.spec);
    auto q = Quantise(tm);
    ASSERT_TRUE(q.ok()) << q.status().ToString();
    auto d = UploadQuantised(*q);
    ASSERT_TRUE(d.ok()) << d.status().ToString();
    for (int batch : {1, 3, 8, 13, 16, 31, 33, 64}) {
      SCOPED_TRACE(batch);
      const int64_t ldx = tm.cols + 16, ldy = tm.rows + 3;
      std::vector<uint16_t> x(static_cast<size_t>(batch * ldx));
      for (auto& v : x) v = Bf16FromFloat(normal(rng));
      DeviceBuffer<uint16_t> dx(x.size());
      dx.Upload(x);
      DeviceBuffer<float> dy(static_cast<size_t>(batch * ldy));
      ASSERT_TRUE(d->Gemm(dx.p, ldx, batch, dy.p, ldy).ok());
      ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
      const std::vector<float> y = dy.Download();
      for (int b = 0; b < batch; ++b) {
        for (int64_t r = 0; r < tm.rows; ++r) {
          double ref = 0, mag = 0;
          for (int64_t c = 0; c < tm.cols; ++c) {
            const double w = q->values.data[static_cast<size_t>(r * tm.cols + c)];
            const double xv = FloatFromBf16(x[static_cast<size_t>(b * ldx + c)]);
            ref += w * xv;
            mag += std::abs(w * xv);
          }
          ASSERT_NEAR(y[static_cast<size_t>(b * ldy + r)], ref, 3e-5 * mag + 1e-30) << "row " << r << " batch row " << b;
        }
      }
    }
  }
}

TEST(CudaKernels, GemmIsDeterministic) {
  SKIP_WITHOUT_GPU();
  auto q = Quantise({"crd4(t,df=5)@64:absmax", 300, 1024});
  ASSERT_TRUE(q.ok());
  auto d = UploadQuantised(*q);
  ASSERT_TRUE(d.ok());
  std::vector<uint16_t> x(4 * 1024);
  for (size_t i = 0; i < x.size(); ++i) x[i] = Bf16FromFloat(std::sin(0.37f * static_cast<float>(i)));
  DeviceBuffer<uint16_t> dx(x.size());
  dx.Upload(x);
  DeviceBuffer<float> y1(4 * 300), y2(4 * 300);
  ASSERT_TRUE(d->Gemm(dx.p, 1024, 4, y1.p, 300).ok());
  ASSERT_TRUE(d->Gemm(dx.p, 1024, 4, y2.p, 300).ok());
  EXPECT_EQ(y1.Download(), y2.Download());
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

}  // namespace
}  // namespace owf::cuda
