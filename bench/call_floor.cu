// What one call of a one-block-per-SM kernel costs before it reads any weights: the building
// blocks of the small-batch kernels' per-call fixed cost, each timed on its own.
//   build-cuda/bench/owf_call_floor
// Each variant is a kernel of 512 threads per block (as the GEMV), launched 50 times back to back
// from a CUDA graph (no host launch cost between calls), with and without programmatic dependent
// launch (PDL), on 1 block and on one block per SM. Variants add, one at a time:
//   empty         the launch alone (griddepcontrol.launch_dependents at entry);
//   wait          griddepcontrol.wait (the GEMV's wait for the previous kernel);
//   load/store    one global load per thread after the wait, one store per warp lane at the end;
//   + table       a 64 KB shared-memory table built before the wait (140 KB dynamic shared memory);
// and, on top of load/store, four ways to add the partial sums of groups of 5 warps that lie on
// different SMs (as the GEMV's segments do):
//   fenced ticket     stores, __threadfence, atomicAdd by lane 0, __threadfence, loads by the last
//                     (the GEMV until the eighth session);
//   acq_rel ticket    stores, __syncwarp, atom.acq_rel.gpu by lane 0, loads by the last (now);
//   flag polling      each warp stores (value, flag) words; the group's last warp spins on them;
//   in-block          16 warps of one block through shared memory and a barrier (no cross-SM
//                     traffic: what a reduction inside a block would cost).
// Prints microseconds per call (median of 7 timings of the 50-call graph).
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <utility>
#include <vector>

#include "cuda_check.h"

namespace {

constexpr int kThreads = 512, kWarps = kThreads / 32;
constexpr int kGroup = 5;  // warps per cross-SM reduction group
enum Variant { kEmpty, kWait, kLoadStore, kTable, kFencedTicket, kAcqRelTicket, kPolling, kInBlock, kVariants };
const char* const kNames[kVariants] = {"empty",          "wait",           "load/store",    "+ table",
                                       "fenced ticket", "acq_rel ticket", "flag polling", "in-block"};

template <int V>
__global__ void __launch_bounds__(kThreads, 1)
    Call(const float* __restrict__ x, float* y, unsigned long long* partials, unsigned* tickets) {
  extern __shared__ uint4 table[];
  asm volatile("griddepcontrol.launch_dependents;");
  if constexpr (V == kTable) {
    for (int u = threadIdx.x; u < 4096; u += kThreads) table[u] = make_uint4(u, 3 * u, u ^ 7, u + 1);
    __syncthreads();
  }
  if constexpr (V != kEmpty) asm volatile("griddepcontrol.wait;" ::: "memory");
  if constexpr (V < kLoadStore) return;
  const int lane = threadIdx.x & 31, gw = blockIdx.x * kWarps + (threadIdx.x >> 5);
  float v = x[blockIdx.x * kThreads + threadIdx.x];
  if constexpr (V == kTable) v += __uint_as_float(table[(threadIdx.x * 7) & 4095].x);
  __syncthreads();
  const int group = gw / kGroup, k = gw % kGroup;
  const int members = min(kGroup, static_cast<int>(gridDim.x) * kWarps - group * kGroup);
  float* sums = reinterpret_cast<float*>(partials);
  if constexpr (V == kLoadStore || V == kTable) {
    y[gw * 32 + lane] = v;
  } else if constexpr (V == kFencedTicket || V == kAcqRelTicket) {
    sums[gw * 32 + lane] = v;
    unsigned ticket = 0;
    if constexpr (V == kFencedTicket) {
      __threadfence();
      if (lane == 0) ticket = atomicAdd(&tickets[group], 1u);
    } else {
      __syncwarp();
      if (lane == 0) asm volatile("atom.acq_rel.gpu.global.add.u32 %0, [%1], 1;" : "=r"(ticket) : "l"(&tickets[group]) : "memory");
    }
    ticket = __shfl_sync(~0u, ticket, 0);
    if (ticket == static_cast<unsigned>(members - 1)) {
      if constexpr (V == kFencedTicket) __threadfence();
      else __syncwarp();
      float s = 0;
      for (int j = 0; j < members; ++j) s += __ldcg(&sums[(group * kGroup + j) * 32 + lane]);
      y[group * 32 + lane] = s;
      if (lane == 0) tickets[group] = 0;
    }
  } else if constexpr (V == kPolling) {
    if (k != members - 1) {
      const unsigned long long word = (1ull << 32) | __float_as_uint(v);
      asm volatile("st.relaxed.gpu.global.b64 [%0], %1;" ::"l"(partials + gw * 32 + lane), "l"(word) : "memory");
    } else {
      float s = v;
      for (int j = 0; j < members - 1; ++j) {
        unsigned long long* slot = partials + (group * kGroup + j) * 32 + lane;
        unsigned long long word;
        do {
          asm volatile("ld.relaxed.gpu.global.b64 %0, [%1];" : "=l"(word) : "l"(slot) : "memory");
        } while ((word >> 32) == 0);
        s += __uint_as_float(static_cast<unsigned>(word));
        *slot = 0;
      }
      y[group * 32 + lane] = s;
    }
  } else {  // kInBlock
    __shared__ float block_sums[kWarps][32];
    block_sums[threadIdx.x >> 5][lane] = v;
    __syncthreads();
    if (threadIdx.x < 32) {
      float s = 0;
      for (int j = 0; j < kWarps; ++j) s += block_sums[j][lane];
      y[blockIdx.x * 32 + lane] = s;
    }
  }
}

struct Buffers {
  float *x, *y;
  unsigned long long* partials;
  unsigned* tickets;
};

template <int V>
double MicrosecondsPerCall(int blocks, bool pdl, const Buffers& b, cudaStream_t stream) {
  constexpr int kCalls = 50;
  const auto kernel = Call<V>;
  const int shared = V == kTable ? 140 * 1024 : 0;
  CHECK_CUDA(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, 140 * 1024));
  cudaLaunchAttribute attribute{};
  attribute.id = cudaLaunchAttributeProgrammaticStreamSerialization;
  attribute.val.programmaticStreamSerializationAllowed = 1;
  cudaLaunchConfig_t config{};
  config.gridDim = dim3(static_cast<unsigned>(blocks));
  config.blockDim = dim3(kThreads);
  config.dynamicSmemBytes = static_cast<size_t>(shared);
  config.stream = stream;
  config.attrs = pdl ? &attribute : nullptr;
  config.numAttrs = pdl ? 1 : 0;
  const auto launch = [&] {
    CHECK_CUDA(cudaLaunchKernelEx(&config, kernel, static_cast<const float*>(b.x), b.y, b.partials, b.tickets));
  };
  for (int i = 0; i < 5; ++i) launch();
  cudaGraph_t graph;
  cudaGraphExec_t exec;
  CHECK_CUDA(cudaStreamBeginCapture(stream, cudaStreamCaptureModeThreadLocal));
  for (int i = 0; i < kCalls; ++i) launch();
  CHECK_CUDA(cudaStreamEndCapture(stream, &graph));
  CHECK_CUDA(cudaGraphInstantiate(&exec, graph, 0));
  CHECK_CUDA(cudaGraphLaunch(exec, stream));
  CHECK_CUDA(cudaStreamSynchronize(stream));
  cudaEvent_t start, stop;
  CHECK_CUDA(cudaEventCreate(&start));
  CHECK_CUDA(cudaEventCreate(&stop));
  std::vector<float> us;
  for (int rep = 0; rep < 7; ++rep) {
    CHECK_CUDA(cudaEventRecord(start, stream));
    CHECK_CUDA(cudaGraphLaunch(exec, stream));
    CHECK_CUDA(cudaEventRecord(stop, stream));
    CHECK_CUDA(cudaEventSynchronize(stop));
    float ms = 0;
    CHECK_CUDA(cudaEventElapsedTime(&ms, start, stop));
    us.push_back(1000.0f * ms / kCalls);
  }
  CHECK_CUDA(cudaEventDestroy(start));
  CHECK_CUDA(cudaEventDestroy(stop));
  CHECK_CUDA(cudaGraphExecDestroy(exec));
  CHECK_CUDA(cudaGraphDestroy(graph));
  std::sort(us.begin(), us.end());
  return us[us.size() / 2];
}

template <int... V>
void PrintRow(int blocks, bool pdl, const Buffers& b, cudaStream_t stream, std::integer_sequence<int, V...>) {
  std::printf("| %d | %s |", blocks, pdl ? "yes" : "no");
  ((std::printf(" %.2f |", MicrosecondsPerCall<V>(blocks, pdl, b, stream))), ...);
  std::printf("\n");
  std::fflush(stdout);
}

}  // namespace

int main() {
  int sms = 0;
  CHECK_CUDA(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, 0));
  const size_t threads = static_cast<size_t>(sms) * kThreads;
  Buffers b{};
  CHECK_CUDA(cudaMalloc(&b.x, threads * sizeof(float)));
  CHECK_CUDA(cudaMemset(b.x, 0, threads * sizeof(float)));
  CHECK_CUDA(cudaMalloc(&b.y, threads * sizeof(float)));
  CHECK_CUDA(cudaMalloc(&b.partials, threads * sizeof(unsigned long long)));
  CHECK_CUDA(cudaMemset(b.partials, 0, threads * sizeof(unsigned long long)));
  CHECK_CUDA(cudaMalloc(&b.tickets, threads / 32 * sizeof(unsigned)));
  CHECK_CUDA(cudaMemset(b.tickets, 0, threads / 32 * sizeof(unsigned)));
  cudaStream_t stream;
  CHECK_CUDA(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
  std::printf("us per call, 50 calls back to back from a CUDA graph, %d threads per block\n\n", kThreads);
  std::printf("| blocks | PDL |");
  for (const char* name : kNames) std::printf(" %s |", name);
  std::printf("\n|---|---|");
  for (int v = 0; v < kVariants; ++v) std::printf("---|");
  std::printf("\n");
  for (const int blocks : {1, sms})
    for (const bool pdl : {false, true}) PrintRow(blocks, pdl, b, stream, std::make_integer_sequence<int, kVariants>());
  CHECK_CUDA(cudaFree(b.x));
  CHECK_CUDA(cudaFree(b.y));
  CHECK_CUDA(cudaFree(b.partials));
  CHECK_CUDA(cudaFree(b.tickets));
  return 0;
}
