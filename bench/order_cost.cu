// What an ordering operation costs a warp whose global loads are still in flight: the GEMV's
// flush runs while the next step's code loads are outstanding, so an operation that waits for them
// stalls the warp for a load's latency.
//   build-cuda/bench/owf_order_cost
// One block of 512 threads per SM; each warp issues 4 cold 16-byte loads per lane (a 1 GiB
// buffer), reads the clock, runs one operation, reads the clock again, then uses the loads.
// Prints the median over warps of the cycles between the two clock reads (median of 5 launches),
// twice. Operations: nothing; a shared store and __syncwarp; membar.cta; a shared atomicAdd whose
// result is used; fence.cta + shared atomicAdd + fence.cta (the GEMV's block ticket until the
// fifteenth session); atom.acq_rel.cta on shared memory; a shared store and bar.arrive on a named
// barrier (odd warps; even warps bar.sync after their second clock read); a relaxed global
// atomic; the GEMV's acquire-release global ticket; fence.acq_rel.gpu.
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <vector>

#include "cuda_check.h"

namespace {

__device__ __forceinline__ long long Clock() {
  long long t;
  asm volatile("mov.u64 %0, %%clock64;" : "=l"(t)::"memory");
  return t;
}
__device__ __forceinline__ uint4 Ldg(const uint4* p) {
  uint4 v;
  asm volatile("ld.global.nc.v4.u32 {%0,%1,%2,%3}, [%4];" : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w) : "l"(p));
  return v;
}

// OP: 0 nothing, 1 membar.cta, 2 fence.acq_rel.gpu, 3 shared atomicAdd, 4 the old block ticket,
// 5 the global acquire-release ticket, 6 shared store + bar.arrive, 7 relaxed global atomic,
// 8 atom.acq_rel.cta on shared memory, 9 shared store + __syncwarp.
template <int OP>
__global__ void __launch_bounds__(512, 1) Probe(const uint4* __restrict__ src, long long n16, unsigned* counter,
                                                 long long* out, unsigned* sink) {
  __shared__ unsigned ticket[16];
  __shared__ float slot[16][64];
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  if (threadIdx.x < 16) ticket[threadIdx.x] = 0;
  __syncthreads();
  const long long gw = blockIdx.x * 16 + warp;
  const long long base = (gw * 4 * 32 + lane) % (n16 - 128);
  uint4 v[4];
  for (int k = 0; k < 4; ++k) v[k] = Ldg(src + base + 32 * k);
  const long long t0 = Clock();
  unsigned r = 0;
  if constexpr (OP == 1) {
    asm volatile("membar.cta;" ::: "memory");
  } else if constexpr (OP == 2) {
    asm volatile("fence.acq_rel.gpu;" ::: "memory");
  } else if constexpr (OP == 3) {  // shared atomic, result used
    r = atomicAdd(&ticket[warp], 1u);
  } else if constexpr (OP == 4) {  // fence.cta + shared atomic + fence.cta (the old block ticket)
    __syncwarp();
    if (lane == 0) {
      __threadfence_block();
      r = atomicAdd(&ticket[warp], 1u);
      __threadfence_block();
    }
    r = __shfl_sync(0xFFFFFFFFu, r, 0);
  } else if constexpr (OP == 5) {  // global acq_rel ticket
    if (lane == 0)
      asm volatile("atom.acq_rel.gpu.global.add.u32 %0, [%1], 1;" : "=r"(r) : "l"(counter + gw % 64) : "memory");
    r = __shfl_sync(0xFFFFFFFFu, r, 0);
  } else if constexpr (OP == 6) {  // store to shared + named barrier arrive (odd warps), sync (even)
    slot[warp][lane] = 1.0f;
    if (warp & 1) {
      asm volatile("bar.arrive %0, 64;" ::"r"(1 + warp / 2) : "memory");
    }
  } else if constexpr (OP == 7) {  // relaxed global atomic
    if (lane == 0)
      asm volatile("atom.relaxed.gpu.global.add.u32 %0, [%1], 1;" : "=r"(r) : "l"(counter + gw % 64) : "memory");
    r = __shfl_sync(0xFFFFFFFFu, r, 0);
  } else if constexpr (OP == 8) {  // shared atomic with acquire-release semantics at block scope
    const unsigned address = static_cast<unsigned>(__cvta_generic_to_shared(&ticket[warp]));
    if (lane == 0) asm volatile("atom.acq_rel.cta.shared.add.u32 %0, [%1], 1;" : "=r"(r) : "r"(address) : "memory");
    r = __shfl_sync(0xFFFFFFFFu, r, 0);
  } else if constexpr (OP == 9) {  // shared store + __syncwarp
    slot[warp][lane] = 1.0f;
    __syncwarp();
  }
  const long long t1 = Clock();
  if constexpr (OP == 6) {
    if (!(warp & 1)) asm volatile("bar.sync %0, 64;" ::"r"(1 + warp / 2) : "memory");
  }
  unsigned x = r;
  for (int k = 0; k < 4; ++k) x ^= v[k].x ^ v[k].y ^ v[k].z ^ v[k].w;
  if (x == 0x12345678u) sink[0] = x;
  if (lane == 0) out[gw] = t1 - t0;
}

template <int OP>
void Run(const char* name, const uint4* src, long long n16, unsigned* counter, long long* out, unsigned* sink,
         int blocks) {
  std::vector<long long> h(blocks * 16);
  std::vector<double> meds;
  for (int rep = 0; rep < 5; ++rep) {
    Probe<OP><<<blocks, 512>>>(src + (rep * 7919LL * 4096) % (n16 / 2), n16 / 2, counter, out, sink);
    CHECK_CUDA(cudaGetLastError());
    CHECK_CUDA(cudaMemcpy(h.data(), out, h.size() * 8, cudaMemcpyDeviceToHost));
    std::vector<long long> s = h;
    if (OP == 6) {  // only the arriving warps
      s.clear();
      for (size_t i = 0; i < h.size(); ++i)
        if (i % 2) s.push_back(h[i]);
    }
    std::sort(s.begin(), s.end());
    meds.push_back(s[s.size() / 2]);
  }
  std::sort(meds.begin(), meds.end());
  std::printf("%-44s median cycles %8.0f (runs %0.f..%0.f)\n", name, meds[2], meds[0], meds[4]);
}

}  // namespace

int main() {
  const long long bytes = 1LL << 30;
  uint4* src;
  unsigned *counter, *sink;
  long long* out;
  CHECK_CUDA(cudaMalloc(&src, bytes));
  CHECK_CUDA(cudaMemset(src, 1, bytes));
  CHECK_CUDA(cudaMalloc(&counter, 4096));
  CHECK_CUDA(cudaMemset(counter, 0, 4096));
  CHECK_CUDA(cudaMalloc(&sink, 64));
  int blocks = 0;
  CHECK_CUDA(cudaDeviceGetAttribute(&blocks, cudaDevAttrMultiProcessorCount, 0));
  CHECK_CUDA(cudaMalloc(&out, blocks * 16 * 8));
  const long long n16 = bytes / 16;
  for (int pass = 0; pass < 2; ++pass) {
    std::printf("pass %d: cycles from the clock read before the operation to the one after it\n", pass);
    Run<0>("nothing", src, n16, counter, out, sink, blocks);
    Run<9>("st.shared + syncwarp", src, n16, counter, out, sink, blocks);
    Run<1>("membar.cta", src, n16, counter, out, sink, blocks);
    Run<3>("atomicAdd shared (result used)", src, n16, counter, out, sink, blocks);
    Run<4>("fence.cta + atom.shared + fence.cta (GEMV)", src, n16, counter, out, sink, blocks);
    Run<8>("atom.acq_rel.cta.shared", src, n16, counter, out, sink, blocks);
    Run<6>("st.shared + bar.arrive", src, n16, counter, out, sink, blocks);
    Run<7>("atom.relaxed.gpu.global", src, n16, counter, out, sink, blocks);
    Run<5>("atom.acq_rel.gpu.global (GEMV ticket)", src, n16, counter, out, sink, blocks);
    Run<2>("fence.acq_rel.gpu", src, n16, counter, out, sink, blocks);
  }
  CHECK_CUDA(cudaDeviceSynchronize());
  CHECK_CUDA(cudaFree(src));
  CHECK_CUDA(cudaFree(counter));
  CHECK_CUDA(cudaFree(sink));
  CHECK_CUDA(cudaFree(out));
  return 0;
}
