// GPU benchmark of owf's quantised GEMV/GEMM against cuBLAS bf16 on Llama-3 8B/70B layer shapes.
//   build-cuda/bench/owf_cuda_bench [--quick] [--bits B | --element SPEC] [--block N] [--batches 1,16] [--shapes 28672x8192,...]
//                                   [--rotate] [--graph] [--trace]
// For each shape and batch it times cuBLAS bf16 (cublasGemmEx, fp32 accumulation and output) and
// owf's fused kernel on the same shape with B-bit codes (a 2^B-entry Student-t cube-root
// codebook) and bf16 absmax scales per block of N, and reports microseconds, achieved bandwidth
// (bytes of weights + activations + outputs per second), its fraction of the device-to-device
// copy bandwidth measured in the same run and of the H100 SXM's 3.35 TB/s peak, and the
// speedup. Weights are cycled through enough copies to exceed the L2 cache, so every call reads
// from HBM. Times are medians of repeated CUDA-event timings of 20 back-to-back calls, launched
// one by one from the host or, with --graph, replayed from a CUDA graph that captured them (as a
// decode loop would run them: no host launch cost between calls). --trace (a build with
// -DOWF_GEMV_TRACE=ON) also prints, for the last of 4 back-to-back small-batch products, where
// its warps are in time: entry, end of the prologue, end of the main loop, exit.
#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "cuda_check.h"
#include "owf/cuda/kernels.h"
#include "owf/cuda/layout.h"
#include "owf/formats/quantise.h"

#ifdef OWF_GEMV_TRACE
namespace owf::cuda::detail {
owf::Status SetGemvTrace(unsigned long long* trace);  // src/cuda/device_common.cuh
}
#endif

namespace {

constexpr double kPeakBytesPerSecond = 3.35e12;  // H100 SXM5 HBM3

#define CHECK_CUBLAS(call)                                                              \
  do {                                                                                  \
    cublasStatus_t s_ = (call);                                                         \
    if (s_ != CUBLAS_STATUS_SUCCESS) {                                                  \
      std::fprintf(stderr, "%s:%d: %s: cuBLAS status %d\n", __FILE__, __LINE__, #call, \
                   static_cast<int>(s_));                                               \
      std::exit(1);                                                                     \
    }                                                                                   \
  } while (0)

// The stream every timed call runs on (not the legacy default stream, which cannot be captured).
cudaStream_t bench_stream = nullptr;
bool use_graph = false;  // --graph
bool rotate = false;     // --rotate: Hadamard-rotated matrices (each product rotates its activations first)

// Median time per call of `iterations` back-to-back calls launch(0..iterations-1) on bench_stream
// (7 timings after a warm-up). With use_graph (and graphs allowed), the calls are captured once
// into a CUDA graph and the timings replay it.
template <typename F>
double MedianMicroseconds(F&& launch, int iterations, bool graph_allowed = true) {
  cudaEvent_t start, stop;
  CHECK_CUDA(cudaEventCreate(&start));
  CHECK_CUDA(cudaEventCreate(&stop));
  for (int i = 0; i < 5; ++i) launch(i);  // warm up (and grow any scratch before a capture)
  CHECK_CUDA(cudaStreamSynchronize(bench_stream));
  cudaGraphExec_t exec = nullptr;
  if (use_graph && graph_allowed) {
    cudaGraph_t graph;
    CHECK_CUDA(cudaStreamBeginCapture(bench_stream, cudaStreamCaptureModeThreadLocal));
    for (int i = 0; i < iterations; ++i) launch(i);
    CHECK_CUDA(cudaStreamEndCapture(bench_stream, &graph));
    CHECK_CUDA(cudaGraphInstantiate(&exec, graph, 0));
    CHECK_CUDA(cudaGraphDestroy(graph));
    CHECK_CUDA(cudaGraphLaunch(exec, bench_stream));  // warm up the graph
    CHECK_CUDA(cudaStreamSynchronize(bench_stream));
  }
  std::vector<double> times;
  for (int rep = 0; rep < 7; ++rep) {
    CHECK_CUDA(cudaEventRecord(start, bench_stream));
    if (exec) {
      CHECK_CUDA(cudaGraphLaunch(exec, bench_stream));
    } else {
      for (int i = 0; i < iterations; ++i) launch(i);
    }
    CHECK_CUDA(cudaEventRecord(stop, bench_stream));
    CHECK_CUDA(cudaEventSynchronize(stop));
    float ms = 0;
    CHECK_CUDA(cudaEventElapsedTime(&ms, start, stop));
    times.push_back(1000.0 * ms / iterations);
  }
  if (exec) CHECK_CUDA(cudaGraphExecDestroy(exec));
  CHECK_CUDA(cudaEventDestroy(start));
  CHECK_CUDA(cudaEventDestroy(stop));
  std::sort(times.begin(), times.end());
  return times[times.size() / 2];
}

// Device-to-device copy bandwidth (bytes read + written per second) of a 2 GiB copy.
double CopyBandwidth() {
  const size_t bytes = size_t{1} << 31;
  void *a, *b;
  CHECK_CUDA(cudaMalloc(&a, bytes));
  CHECK_CUDA(cudaMalloc(&b, bytes));
  CHECK_CUDA(cudaMemset(a, 1, bytes));
  const double us = MedianMicroseconds(
      [&](int) { CHECK_CUDA(cudaMemcpyAsync(b, a, bytes, cudaMemcpyDeviceToDevice, bench_stream)); }, 5, false);
  CHECK_CUDA(cudaFree(a));
  CHECK_CUDA(cudaFree(b));
  return 2.0 * static_cast<double>(bytes) / (us * 1e-6);
}

// The benchmarked format: element (a spec's element, e.g. int4 or e2m1; empty: a B-bit Student-t
// cube-root codebook) with bf16 absmax scales per 1 x block.
owf::FormatSpec BenchSpec(const std::string& element, int bits, int64_t block) {
  owf::FormatSpec spec;
  if (!element.empty()) {
    auto parsed = owf::ParseSpec(element);
    if (!parsed.ok()) {
      std::fprintf(stderr, "owf_cuda_bench: --element: %s\n", parsed.status().ToString().c_str());
      std::exit(2);
    }
    spec.element = parsed->element;
  } else {
    spec.element.family = owf::ElementFamily::kCrd;
    spec.element.bits = bits;
    spec.element.dist = owf::Distribution::kStudentT;
    spec.element.df = 5;
  }
  spec.scaling = owf::ScalingSpec{owf::BlockKind::kBlock, 1, block, owf::ScaleKind::kAbsmax, owf::ScaleFormat::kBf16};
  return spec;
}

// A rows x cols quantised matrix with codebook book, random codes and random bf16 scales per
// 1 x block (speed does not depend on them).
owf::cuda::TiledMatrix RandomMatrix(int64_t rows, int64_t cols, const std::vector<float>& book, int64_t block,
                                    uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<uint16_t> codes(static_cast<size_t>(rows * cols));
  for (auto& c : codes) c = static_cast<uint16_t>(rng() % book.size());
  owf::BlockGeometry g{rows, cols, 1, block};
  std::vector<float> scales(static_cast<size_t>(g.num_blocks()));
  std::uniform_real_distribution<float> u(0.01f, 0.05f);
  for (auto& s : scales) s = owf::QuantiseScale(u(rng), owf::ScaleFormat::kBf16);
  owf::cuda::QuantisedMatrixView v;
  v.codebook = book;
  v.geometry = g;
  v.scale_format = owf::ScaleFormat::kBf16;
  v.scales = scales;
  v.codes = codes;
  if (rotate) v.rotation_seed = seed;
  auto m = owf::cuda::TileForGpu(v);
  if (!m.ok()) {
    std::fprintf(stderr, "tile: %s\n", m.status().ToString().c_str());
    std::exit(1);
  }
  return std::move(*m);
}

#ifdef OWF_GEMV_TRACE
// Runs `call` 4 times back to back, the last with per-warp timestamps, and prints their spread.
template <typename F>
void PrintTrace(int warps, F&& call) {
  const size_t n = static_cast<size_t>(warps) * 8;
  unsigned long long* d;
  CHECK_CUDA(cudaMalloc(&d, n * 8));
  CHECK_CUDA(cudaMemset(d, 0, n * 8));
  CHECK_CUDA(cudaDeviceSynchronize());
  // OWF_TRACE_WARM=1: every call stamps (the last one's stamps remain), so the traced call starts
  // while the one before it finishes; otherwise the earlier calls finish first (a cold start).
  const bool warm = std::getenv("OWF_TRACE_WARM") != nullptr;
  for (int i = 0; i < 4; ++i) {
    if (i == (warm ? 0 : 3)) {
      CHECK_CUDA(cudaStreamSynchronize(bench_stream));
      if (!owf::cuda::detail::SetGemvTrace(d).ok()) std::exit(1);
    }
    call(i);
  }
  CHECK_CUDA(cudaDeviceSynchronize());
  if (!owf::cuda::detail::SetGemvTrace(nullptr).ok()) std::exit(1);
  std::vector<unsigned long long> h(n);
  CHECK_CUDA(cudaMemcpy(h.data(), d, n * 8, cudaMemcpyDeviceToHost));
  CHECK_CUDA(cudaFree(d));
  unsigned long long t0 = ~0ull;
  for (int w = 0; w < warps; ++w)
    if (h[w * 8]) t0 = std::min(t0, h[w * 8]);
  const auto q = [](std::vector<double> v, double f) {
    std::sort(v.begin(), v.end());
    return v[static_cast<size_t>(f * static_cast<double>(v.size() - 1))];
  };
  // The kernel's stamps (gemv.cu, Trace): a warp's entry, its block's table built, the previous
  // kernel waited for, the activations staged, its first step done, its main loop done, its exit;
  // 7: its first step's loads issued (before the table), printed second.
  const char* what[] = {"entry", "table built", "wait returned", "prologue done", "first step done",
                        "main loop done", "exit", "loads issued"};
  constexpr int kMainLoopDone = 5;
  for (int k : {0, 7, 1, 2, 3, 4, 5, 6}) {
    std::vector<double> us;
    for (int w = 0; w < warps; ++w)
      if (h[w * 8] && h[w * 8 + k]) us.push_back(static_cast<double>(h[w * 8 + k] - t0) / 1000.0);
    if (us.empty()) return;
    std::printf("  trace %-15s (%zu warps): us after the first entry: min %.2f p10 %.2f median %.2f p90 %.2f max %.2f\n",
                what[k], us.size(), q(us, 0), q(us, 0.1), q(us, 0.5), q(us, 0.9), q(us, 1));
  }
  // Per block of 16 warps: the spread of main-loop ends, and their mean (where the block would
  // end if its warps shared their work).
  std::vector<double> spread, means;
  for (int b = 0; b < warps / 16; ++b) {
    double lo = 1e30, hi = 0, sum = 0;
    int n = 0;
    for (int w = b * 16; w < b * 16 + 16; ++w)
      if (h[w * 8]) {
        const double e = static_cast<double>(h[w * 8 + kMainLoopDone] - t0) / 1000.0;
        lo = std::min(lo, e), hi = std::max(hi, e), sum += e, ++n;
      }
    if (n) spread.push_back(hi - lo), means.push_back(sum / n);
  }
  if (!spread.empty())
    std::printf("  trace main-loop ends within a block: spread min %.2f median %.2f max %.2f us\n", q(spread, 0),
                q(spread, 0.5), q(spread, 1));
  if (!means.empty())
    std::printf("  trace block means of main-loop ends: min %.2f p10 %.2f median %.2f p90 %.2f max %.2f us\n",
                q(means, 0), q(means, 0.1), q(means, 0.5), q(means, 0.9), q(means, 1));
}
#endif

struct Shape {
  int64_t rows, cols;
  const char* what;
};

}  // namespace

int main(int argc, char** argv) {
  int bits = 4;
  int64_t block = 64;
  std::string element;
  std::vector<int> batches = {1, 2, 4, 8, 16, 32, 64};
  bool quick = false, trace = false;
  std::vector<std::pair<int64_t, int64_t>> only;  // --shapes: rows x cols to run (default: all)
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--quick") quick = true;
    else if (a == "--graph") use_graph = true;
    else if (a == "--rotate") rotate = true;
    else if (a == "--trace") trace = true;
    else if (a == "--bits" && i + 1 < argc) bits = std::atoi(argv[++i]);
    else if (a == "--block" && i + 1 < argc) block = std::atoll(argv[++i]);
    else if (a == "--element" && i + 1 < argc) element = argv[++i];
    else if (a == "--batches" && i + 1 < argc) {
      batches.clear();
      for (char* p = std::strtok(argv[++i], ","); p; p = std::strtok(nullptr, ",")) batches.push_back(std::atoi(p));
    } else if (a == "--shapes" && i + 1 < argc) {
      for (char* p = std::strtok(argv[++i], ","); p; p = std::strtok(nullptr, ",")) {
        long long r = 0, c = 0;
        if (std::sscanf(p, "%lldx%lld", &r, &c) != 2 || r < 1 || c < 2 || c % 2 != 0) {
          std::fprintf(stderr, "owf_cuda_bench: --shapes takes ROWSxCOLS (even COLS), not %s\n", p);
          return 2;
        }
        only.emplace_back(r, c);
      }
    } else {
      std::fprintf(stderr,
                   "usage: %s [--quick] [--bits B | --element SPEC] [--block N] [--batches 1,16] [--shapes 28672x8192,...] "
                   "[--rotate] [--graph] [--trace]\n",
                   argv[0]);
      return 2;
    }
  }
#ifndef OWF_GEMV_TRACE
  if (trace) {
    std::fprintf(stderr, "owf_cuda_bench: --trace needs a build with -DOWF_GEMV_TRACE=ON\n");
    return 2;
  }
#endif
  std::string why;
  if (!owf::cuda::Available(&why)) {
    std::fprintf(stderr, "owf_cuda_bench: %s\n", why.c_str());
    return 1;
  }
  CHECK_CUDA(cudaStreamCreateWithFlags(&bench_stream, cudaStreamNonBlocking));
  cudaDeviceProp prop{};
  CHECK_CUDA(cudaGetDeviceProperties(&prop, 0));
  const double copy_bw = CopyBandwidth();
  std::printf("device: %s, %d SMs, L2 %.0f MB; device-to-device copy: %.0f GB/s (read + write); peak assumed %.0f GB/s\n",
              prop.name, prop.multiProcessorCount, prop.l2CacheSize / 1e6, copy_bw / 1e9, kPeakBytesPerSecond / 1e9);
  const owf::FormatSpec spec = BenchSpec(element, bits, block);
  const auto design = owf::DesignElement(spec);
  if (!design.ok()) {
    std::fprintf(stderr, "design: %s\n", design.status().ToString().c_str());
    return 2;
  }
  bits = 0;
  while ((size_t{1} << bits) < design->centroids().size()) ++bits;
  std::printf("owf format: %s%s, %d-bit codes, bf16 absmax scale per 1x%lld block = %.4f bits/weight\n\n",
              owf::ToString(spec).c_str(), rotate ? "+rotate(hadamard) (each product rotates its activations)" : "",
              bits, static_cast<long long>(block), bits + 16.0 / static_cast<double>(block));

  std::vector<Shape> shapes = {{4096, 4096, "8B q/o"},    {14336, 4096, "8B gate/up"}, {4096, 14336, "8B down"},
                               {28672, 8192, "70B gate/up"}, {8192, 8192, "70B q/o"}};
  if (quick) shapes.resize(2);
  if (!only.empty()) {
    std::vector<Shape> chosen;
    for (const auto& [r, c] : only) {
      const auto known = std::find_if(shapes.begin(), shapes.end(), [&](const Shape& s) { return s.rows == r && s.cols == c; });
      chosen.push_back(known != shapes.end() ? *known : Shape{r, c, "other"});
    }
    shapes = chosen;
  }
  cublasHandle_t handle;
  CHECK_CUBLAS(cublasCreate(&handle));
  CHECK_CUBLAS(cublasSetStream(handle, bench_stream));
  std::printf("calls: %s\n\n", use_graph ? "20 back to back, replayed from a CUDA graph (--graph)"
                                          : "20 back to back, launched one by one from the host");

  std::printf("| shape (out x in) | batch | cuBLAS bf16 us | GB/s | %% copy | %% peak | owf us | GB/s | %% copy | %% peak | speedup |\n");
  std::printf("|---|---|---|---|---|---|---|---|---|---|---|\n");
  for (const Shape& sh : shapes) {
    const int64_t rows = sh.rows, cols = sh.cols;
    const owf::cuda::TiledMatrix host = RandomMatrix(rows, cols, design->centroids(), block, 42);
    const int64_t q_bytes = host.weight_bytes(), bf16_bytes = rows * cols * 2;
    // Enough copies that the working set is several times the L2 cache.
    const int64_t l2_bytes = std::max<int64_t>(prop.l2CacheSize, 50 << 20);
    const int q_copies = static_cast<int>(std::clamp<int64_t>(4 * l2_bytes / q_bytes + 1, 2, 64));
    const int b_copies = static_cast<int>(std::clamp<int64_t>(4 * l2_bytes / bf16_bytes + 1, 2, 64));
    std::vector<owf::cuda::DeviceMatrix> q;
    for (int c = 0; c < q_copies; ++c) {
      auto d = owf::cuda::DeviceMatrix::Upload(host);
      if (!d.ok()) {
        std::fprintf(stderr, "upload: %s\n", d.status().ToString().c_str());
        return 1;
      }
      q.push_back(std::move(*d));
    }
    std::vector<uint16_t*> w(static_cast<size_t>(b_copies));
    for (auto& p : w) {
      CHECK_CUDA(cudaMalloc(&p, static_cast<size_t>(bf16_bytes)));
      CHECK_CUDA(cudaMemset(p, 0x3c, static_cast<size_t>(bf16_bytes)));  // bf16 ~0.0115
    }
    const int max_batch = *std::max_element(batches.begin(), batches.end());
    uint16_t* x;
    float* y;
    CHECK_CUDA(cudaMalloc(&x, static_cast<size_t>(max_batch * cols * 2)));
    CHECK_CUDA(cudaMemset(x, 0x3c, static_cast<size_t>(max_batch * cols * 2)));
    CHECK_CUDA(cudaMalloc(&y, static_cast<size_t>(max_batch * rows * 4)));
    for (int batch : batches) {
      const float alpha = 1.0f, beta = 0.0f;
      const double us_blas = MedianMicroseconds(
          [&](int i) {
            CHECK_CUBLAS(cublasGemmEx(handle, CUBLAS_OP_T, CUBLAS_OP_N, static_cast<int>(rows), batch,
                                      static_cast<int>(cols), &alpha, w[static_cast<size_t>(i % b_copies)],
                                      CUDA_R_16BF, static_cast<int>(cols), x, CUDA_R_16BF, static_cast<int>(cols),
                                      &beta, y, CUDA_R_32F, static_cast<int>(rows), CUBLAS_COMPUTE_32F,
                                      CUBLAS_GEMM_DEFAULT));
          },
          20);
      const double us_owf = MedianMicroseconds(
          [&](int i) {
            const owf::Status s = q[static_cast<size_t>(i % q_copies)].Gemm(x, cols, batch, y, rows, bench_stream);
            if (!s.ok()) {
              std::fprintf(stderr, "gemm: %s\n", s.ToString().c_str());
              std::exit(1);
            }
          },
          20);
#ifdef OWF_GEMV_TRACE
      if (trace && batch <= 16)
        PrintTrace(prop.multiProcessorCount * 16, [&](int i) {
          if (!q[static_cast<size_t>(i % q_copies)].Gemm(x, cols, batch, y, rows, bench_stream).ok()) std::exit(1);
        });
#endif
      const double io = static_cast<double>(batch) * (cols * 2 + rows * 4);
      const double bw_blas = (static_cast<double>(bf16_bytes) + io) / (us_blas * 1e-6);
      const double bw_owf = (static_cast<double>(q_bytes) + io) / (us_owf * 1e-6);
      std::printf("| %lldx%lld (%s) | %d | %.1f | %.0f | %.1f | %.1f | %.1f | %.0f | %.1f | %.1f | %.2fx |\n",
                  static_cast<long long>(rows), static_cast<long long>(cols), sh.what, batch, us_blas, bw_blas / 1e9,
                  100 * bw_blas / copy_bw, 100 * bw_blas / kPeakBytesPerSecond, us_owf, bw_owf / 1e9,
                  100 * bw_owf / copy_bw, 100 * bw_owf / kPeakBytesPerSecond, us_blas / us_owf);
      std::fflush(stdout);
    }
    // Dequantisation to bf16 (what a prefill would do before a cuBLAS GEMM).
    const double us_deq = MedianMicroseconds(
        [&](int i) {
          const owf::Status s = q[static_cast<size_t>(i % q_copies)].DequantiseBf16(w[0], cols, bench_stream);
          if (!s.ok()) std::exit(1);
        },
        10);
    std::printf("| %lldx%lld dequantise to bf16 | - | | | | | %.1f | %.0f | %.1f | %.1f | |\n", static_cast<long long>(rows),
                static_cast<long long>(cols), us_deq, (q_bytes + bf16_bytes) / (us_deq * 1e-6) / 1e9,
                100 * (q_bytes + bf16_bytes) / (us_deq * 1e-6) / copy_bw,
                100 * (q_bytes + bf16_bytes) / (us_deq * 1e-6) / kPeakBytesPerSecond);
    for (auto* p : w) CHECK_CUDA(cudaFree(p));
    CHECK_CUDA(cudaFree(x));
    CHECK_CUDA(cudaFree(y));
  }
  CHECK_CUBLAS(cublasDestroy(handle));
  return 0;
}
