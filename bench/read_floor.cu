// How fast can any kernel read the bytes of a quantised matrix? The floor under owf's GEMV: a
// kernel that only streams N bytes from device memory (and XORs them, so that the loads stay),
// launched back to back like owf_cuda_bench's products, for the byte counts of its shapes.
//   build-cuda/bench/owf_read_floor [--mb 124.8,29.4,...]
// Each time is the median of 7 runs of 20 back-to-back launches with programmatic dependent launch
// (the next call's blocks start as this one's finish; the output store waits for the previous
// call), each call reading the next of enough copies to exceed the L2 cache several times.
// Variants (one block of W warps per SM, as the GEMV; "excl": the block takes 120 KB of shared
// memory, so that, as with the GEMV, a call's block starts on an SM only once the previous call's
// block there has exited; "pair": 100 KB, so that it can share the SM with one block of the
// previous call; "wait after first": each warp waits for the previous call after its first D
// loads, as the GEMV waits for its activations after its first step's codes; else at its end):
//   static W/D      each warp streams an equal contiguous range, 16 bytes per lane per load, D
//                   loads per lane in flight (the batch-1 GEMV keeps 4 in flight: 4 tiles of 512
//                   bytes per warp);
//   dynamic W/D/KB  warps take chunks of KB kilobytes from a counter (one atomic per chunk, the
//                   next chunk's taken one chunk ahead): no warp waits on a slower one at the end;
//   units W/D/KB    dynamic chunks whose sums are added in a fixed order (ReadUnits), as a
//                   deterministic GEMV's would be;
//   copy            cudaMemcpyAsync of the same bytes (which also writes them).
// Prints microseconds per call and the fraction of the 3.35 TB/s peak that the read alone reaches.
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "cuda_check.h"

namespace {

constexpr double kPeakBytesPerSecond = 3.35e12;
constexpr int kCalls = 20;

__device__ __forceinline__ uint4 Load16(const uint4* p) {
  uint4 v;
  asm volatile("ld.global.nc.L1::no_allocate.v4.u32 {%0,%1,%2,%3}, [%4];"
               : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w)
               : "l"(p));
  return v;
}

// Buffers that live across calls: the output, and for ReadUnits the unit counter (never reset:
// each call takes exactly max(chunks, warps) values from it) and (epoch, partial) words.
struct Scratch {
  uint32_t* out;
  unsigned long long* unit_counter;
  unsigned long long* partials;
};

// When a call waits for the previous one (griddepcontrol.wait): at its end, before its one store
// (a read that depends on nothing), or after each warp's first D loads (as owf's GEMV, whose first
// step's codes go out before it waits for the activations).
enum Wait { kWaitAtEnd, kWaitAfterFirstLoads };

__device__ __forceinline__ void GridDependencyWait() { asm volatile("griddepcontrol.wait;" ::: "memory"); }

// Reads 16-byte units [begin, end) of src, lane by lane, D loads per lane in flight; waits for the
// previous call after the first D loads if *wait.
template <int D>
__device__ __forceinline__ uint32_t ReadRange(const uint4* __restrict__ src, int64_t begin, int64_t end, int lane,
                                              bool* wait) {
  uint32_t acc = 0;
  int64_t i = begin + lane;
  for (; i + 32 * (D - 1) < end; i += 32 * D) {
    uint4 v[D];
#pragma unroll
    for (int d = 0; d < D; ++d) v[d] = Load16(src + i + 32 * d);
    if (*wait) GridDependencyWait(), *wait = false;
#pragma unroll
    for (int d = 0; d < D; ++d) acc ^= v[d].x ^ v[d].y ^ v[d].z ^ v[d].w;
  }
  for (; i < end; i += 32) {
    const uint4 v = Load16(src + i);
    acc ^= v.x ^ v.y ^ v.z ^ v.w;
  }
  return acc;
}

// chunk16 == 0: static ranges; else chunks of chunk16 units taken from *counter.
template <int D, int WAIT>
__global__ void Read(const uint4* __restrict__ src, int64_t units, int64_t chunk16, unsigned* counter, Scratch scratch) {
  uint32_t* out = scratch.out;
  asm volatile("griddepcontrol.launch_dependents;");
  bool wait = WAIT == kWaitAfterFirstLoads;
  const int lane = threadIdx.x & 31;
  const int64_t warps = static_cast<int64_t>(gridDim.x) * (blockDim.x / 32);
  const int64_t gw = static_cast<int64_t>(blockIdx.x) * (blockDim.x / 32) + (threadIdx.x >> 5);
  uint32_t acc = 0;
  if (chunk16 == 0) {
    acc = ReadRange<D>(src, units * gw / warps, units * (gw + 1) / warps, lane, &wait);
  } else {
    const int64_t chunks = (units + chunk16 - 1) / chunk16;
    unsigned c = lane == 0 ? atomicAdd(counter, 1u) : 0u;
    c = __shfl_sync(~0u, c, 0);
    while (c < chunks) {
      unsigned next = lane == 0 ? atomicAdd(counter, 1u) : 0u;  // used after this chunk
      const int64_t begin = static_cast<int64_t>(c) * chunk16;
      acc ^= ReadRange<D>(src, begin, begin + chunk16 < units ? begin + chunk16 : units, lane, &wait);
      c = __shfl_sync(~0u, next, 0);
    }
  }
  if (WAIT == kWaitAtEnd || wait) GridDependencyWait();
  out[gw * 32 + lane] = acc;
}

// Dynamic chunks whose results are summed in a fixed order, as a deterministic GEMV's would be: a
// warp takes chunk gw first, then chunks from the counter; after each chunk it stores one
// (epoch, partial) word per lane, with no fence and no ticket. When the counter runs out, warp gw
// sums groups gw, gw + W, ... of S consecutive chunks in chunk order, polling each word until it
// holds this call's epoch (every chunk was taken by a running warp, which finishes it without
// waiting on anything, so the polling ends). The counter's values of call k are k P .. k P + P - 1
// (P = max(chunks, warps): each warp's last take fails), which gives the epoch, k + 1.
template <int D, int S>
__global__ void ReadUnits(const uint4* __restrict__ src, int64_t units, int64_t chunk16, unsigned*, Scratch scratch) {
  asm volatile("griddepcontrol.launch_dependents;");
  const int lane = threadIdx.x & 31;
  const int64_t warps = static_cast<int64_t>(gridDim.x) * (blockDim.x / 32);
  const int64_t gw = static_cast<int64_t>(blockIdx.x) * (blockDim.x / 32) + (threadIdx.x >> 5);
  const int64_t chunks = (units + chunk16 - 1) / chunk16;
  const int64_t period = chunks > warps ? chunks : warps;
  bool wait = true;
  int64_t c = gw < chunks ? gw : -1;
  unsigned long long epoch = 0;
  auto take = [&]() {
    unsigned long long v = lane == 0 ? atomicAdd(scratch.unit_counter, 1ull) : 0ull;
    v = __shfl_sync(~0u, v, 0);
    epoch = v / period + 1;
    const int64_t next = warps + static_cast<int64_t>(v % period);
    return next < chunks ? next : -1;
  };
  if (c < 0) {
    GridDependencyWait();
    wait = false;
    c = take();
  }
  while (c >= 0) {
    const int64_t begin = c * chunk16;
    const uint32_t acc = ReadRange<D>(src, begin, begin + chunk16 < units ? begin + chunk16 : units, lane, &wait);
    if (wait) GridDependencyWait(), wait = false;
    const int64_t next = take();
    const unsigned long long word = epoch << 32 | (acc & 0xFFFFFFu);
    asm volatile("st.relaxed.gpu.global.b64 [%0], %1;" ::"l"(scratch.partials + c * 32 + lane), "l"(word) : "memory");
    c = next;
  }
  for (int64_t g = gw; g * S < chunks; g += warps) {  // the group's S words go out together
    unsigned long long word[S];
    const unsigned long long* first = scratch.partials + g * S * 32 + lane;
#pragma unroll
    for (int k = 0; k < S; ++k)
      if (g * S + k < chunks) asm volatile("ld.relaxed.gpu.global.b64 %0, [%1];" : "=l"(word[k]) : "l"(first + k * 32) : "memory");
    uint32_t sum = 0;
#pragma unroll
    for (int k = 0; k < S; ++k) {
      if (g * S + k >= chunks) break;
      while ((word[k] >> 32) != epoch)
        asm volatile("ld.relaxed.gpu.global.b64 %0, [%1];" : "=l"(word[k]) : "l"(first + k * 32) : "memory");
      sum += static_cast<uint32_t>(word[k]);
    }
    scratch.out[g * 32 + lane] = sum;
  }
}

struct Variant {
  std::string name;
  void (*kernel)(const uint4*, int64_t, int64_t, unsigned*, Scratch);
  int warps;         // per block
  int64_t chunk_kb;  // 0: static
  int shared_kb;     // 120: one block per SM at a time, as the GEMV; 100: two
};

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  // The byte counts owf_cuda_bench reports for crd4(t)@64:absmax:bf16 at batch 1 (weights, scales,
  // activations, outputs) on its five shapes, in MB.
  std::vector<double> mbs = {8.9, 31.2, 31.2, 124.8, 35.7};
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--mb") == 0 && i + 1 < argc) {
      mbs.clear();
      for (char* s = std::strtok(argv[++i], ","); s; s = std::strtok(nullptr, ",")) mbs.push_back(std::atof(s));
    } else {
      std::fprintf(stderr, "usage: owf_read_floor [--mb 124.8,29.4,...]\n");
      return 2;
    }
  }
  int sms = 0, l2 = 0;
  CHECK_CUDA(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, 0));
  CHECK_CUDA(cudaDeviceGetAttribute(&l2, cudaDevAttrL2CacheSize, 0));
  const std::vector<Variant> variants = {
      {"static 16/4", Read<4, kWaitAtEnd>, 16, 0, 0},
      {"excl static 16/4", Read<4, kWaitAtEnd>, 16, 0, 120},
      {"excl static 16/4 wait after first", Read<4, kWaitAfterFirstLoads>, 16, 0, 120},
      {"pair static 8/8 wait after first", Read<8, kWaitAfterFirstLoads>, 8, 0, 100},
      {"excl dynamic 16/4/8 wait after first", Read<4, kWaitAfterFirstLoads>, 16, 8, 120},
      {"excl units 16/4/32 wait after first", ReadUnits<4, 4>, 16, 32, 120},
  };
  for (const Variant& v : variants)
    CHECK_CUDA(cudaFuncSetAttribute(v.kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, 120 * 1024));
  cudaStream_t stream;
  CHECK_CUDA(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
  Scratch scratch{};
  CHECK_CUDA(cudaMalloc(&scratch.out, static_cast<size_t>(sms) * 1024 * sizeof(uint32_t)));
  CHECK_CUDA(cudaMalloc(&scratch.unit_counter, sizeof(unsigned long long)));
  CHECK_CUDA(cudaMemset(scratch.unit_counter, 0, sizeof(unsigned long long)));
  constexpr size_t kMaxChunks = 1 << 16;
  CHECK_CUDA(cudaMalloc(&scratch.partials, kMaxChunks * 32 * sizeof(unsigned long long)));
  CHECK_CUDA(cudaMemset(scratch.partials, 0, kMaxChunks * 32 * sizeof(unsigned long long)));
  unsigned* counters = nullptr;
  CHECK_CUDA(cudaMalloc(&counters, kCalls * sizeof(unsigned)));
  cudaEvent_t start, stop;
  CHECK_CUDA(cudaEventCreate(&start));
  CHECK_CUDA(cudaEventCreate(&stop));

  std::printf("%d SMs, L2 %.0f MB; us per call (%% of %.2f TB/s peak), median of 7 runs of %d back-to-back calls\n\n",
              sms, l2 / 1e6, kPeakBytesPerSecond / 1e12, kCalls);
  std::printf("| MB |");
  for (const Variant& v : variants) std::printf(" %s |", v.name.c_str());
  std::printf(" copy |\n|---|");
  for (size_t i = 0; i <= variants.size(); ++i) std::printf("---|");
  std::printf("\n");
  for (const double mb : mbs) {
    const int64_t units = static_cast<int64_t>(mb * 1e6 / 16);
    const size_t bytes = static_cast<size_t>(units) * 16;
    const int copies = static_cast<int>(std::clamp<int64_t>(4 * static_cast<int64_t>(l2) / bytes + 1, 2, 64));
    std::vector<uint4*> src(static_cast<size_t>(copies));
    for (uint4*& p : src) {
      CHECK_CUDA(cudaMalloc(&p, bytes));
      CHECK_CUDA(cudaMemset(p, 0x5A, bytes));
    }
    uint4* dst = nullptr;
    CHECK_CUDA(cudaMalloc(&dst, bytes));
    std::printf("| %.1f |", mb);
    auto time_calls = [&](auto&& call) {
      std::vector<double> us;
      CHECK_CUDA(cudaMemsetAsync(scratch.unit_counter, 0, sizeof(unsigned long long), stream));
      CHECK_CUDA(cudaMemsetAsync(scratch.partials, 0, kMaxChunks * 32 * sizeof(unsigned long long), stream));
      for (int rep = 0; rep < 8; ++rep) {
        CHECK_CUDA(cudaMemsetAsync(counters, 0, kCalls * sizeof(unsigned), stream));
        CHECK_CUDA(cudaEventRecord(start, stream));
        for (int i = 0; i < kCalls; ++i) call(i);
        CHECK_CUDA(cudaEventRecord(stop, stream));
        CHECK_CUDA(cudaEventSynchronize(stop));
        float ms = 0;
        CHECK_CUDA(cudaEventElapsedTime(&ms, start, stop));
        if (rep > 0) us.push_back(1000.0 * ms / kCalls);  // the first run warms up
      }
      return Median(us);
    };
    for (const Variant& v : variants) {
      cudaLaunchAttribute attribute{};
      attribute.id = cudaLaunchAttributeProgrammaticStreamSerialization;
      attribute.val.programmaticStreamSerializationAllowed = 1;
      cudaLaunchConfig_t config{};
      config.gridDim = dim3(static_cast<unsigned>(sms));
      config.blockDim = dim3(static_cast<unsigned>(v.warps * 32));
      config.dynamicSmemBytes = static_cast<size_t>(v.shared_kb) * 1024;
      config.stream = stream;
      config.attrs = &attribute;
      config.numAttrs = 1;
      const int64_t chunk16 = v.chunk_kb * 1024 / 16;
      const double us = time_calls([&](int i) {
        CHECK_CUDA(cudaLaunchKernelEx(&config, v.kernel, static_cast<const uint4*>(src[static_cast<size_t>(i % copies)]),
                                      units, chunk16, counters + i, scratch));
      });
      std::printf(" %.1f (%.1f%%) |", us, 100.0 * static_cast<double>(bytes) / (us * 1e-6) / kPeakBytesPerSecond);
    }
    const double copy_us = time_calls([&](int i) {
      CHECK_CUDA(cudaMemcpyAsync(dst, src[static_cast<size_t>(i % copies)], bytes, cudaMemcpyDeviceToDevice, stream));
    });
    std::printf(" %.1f |\n", copy_us);
    std::fflush(stdout);
    for (uint4* p : src) CHECK_CUDA(cudaFree(p));
    CHECK_CUDA(cudaFree(dst));
  }
  CHECK_CUDA(cudaEventDestroy(start));
  CHECK_CUDA(cudaEventDestroy(stop));
  CHECK_CUDA(cudaFree(scratch.out));
  CHECK_CUDA(cudaFree(scratch.unit_counter));
  CHECK_CUDA(cudaFree(scratch.partials));
  CHECK_CUDA(cudaFree(counters));
  return 0;
}
