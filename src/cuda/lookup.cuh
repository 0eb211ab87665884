// The shared-memory lookup tables of the small-batch kernels (gemv.cu, gemm_wide.cu): a lane turns
// a group of its codes into codebook values (CUDA cores) or into the bf16 hi and lo terms of mma
// A fragments (tensor cores) with one shared-memory load from its own copy of the table.
#pragma once

#include "device_common.cuh"

namespace owf::cuda::detail {

constexpr int kMaxTensorBits = 4;  // tensor-core tables indexed by a pair of codes (5-6 bits: by one code)

// How a lane decodes its codes: kGroup codes per shared-memory load from a table of
// 2^(kGroup * BITS) rows, with kCopies interleaved copies so that the lanes of one shared-memory
// access phase never hit the same bank. On CUDA cores an entry is kGroup fp32 values (entry e of
// copy c at byte e * kRowBytes + c * kEntryBytes). On tensor cores kGroup = 2 and row e holds the
// 32 copies' hi bf16x2 terms of the pair, then their lo terms (copy c's hi word at byte
// e * kRowBytes + 4 c, its lo word 128 bytes on): each term is loaded straight into its mma
// A-fragment register. 5- and 6-bit codes on tensor cores (the 16-row GEMV) have kGroup = 1: row e
// holds the 32 copies of code e's split, hi | lo << 16, and a pair's two registers come from two
// loads and two byte permutes (a pair table of 2^12 rows would not fit).
//
// HALF (batch 1, 3-4 bit codes, codebooks whose values are all exactly fp16, such as int4 or e2m1):
// an entry is the pair's two values as fp16 (4 bytes), in rows of 256 bytes whose second half is
// unused (same addressing and table size as fp32 pairs). A lookup moves half the bytes and gives
// the same fp32 values as the fp32 table (4-7% faster on the 8B shapes, docs/gpu-performance.md).
constexpr int LookupGroup(int bits, bool tensor) {
  return bits <= 2 && !tensor ? 4 : bits <= kMaxTensorBits ? 2 : 1;
}
constexpr int LookupCopies(int bits, bool tensor) { return LookupGroup(bits, tensor) == 4 ? 16 : 32; }
constexpr int LookupBytes(int bits, bool tensor) {
  return (1 << (LookupGroup(bits, tensor) * bits)) * LookupGroup(bits, tensor) * 4 * LookupCopies(bits, tensor);
}
template <int BITS, bool TENSOR, bool HALF = false>
struct Lookup {
  static_assert(!HALF || (!TENSOR && LookupGroup(BITS, false) == 2), "fp16 tables hold pairs");
  static constexpr int kGroup = LookupGroup(BITS, TENSOR);
  static constexpr int kIndexBits = kGroup * BITS;
  static constexpr int kEntryBytes = TENSOR || HALF ? 4 : kGroup * 4;  // between copies
  static constexpr int kCopies = LookupCopies(BITS, TENSOR);
  static constexpr int kRowBytes = kGroup * 4 * kCopies;
  static constexpr int kBytes = LookupBytes(BITS, TENSOR);
  static constexpr bool kBytePerm = kIndexBits == 8 && kRowBytes == 256;  // address = one prmt
};

// Tensor-core tables start at a shared-memory address that is a multiple of this, so that one
// byte permute gives a lookup's whole address (TensorTermsAddress).
constexpr int kTableAlign = 65536;

// The first shared-memory address at or after the dynamic shared memory `smem` that is a multiple
// of kTableAlign (launches reserve up to kTableAlign bytes of padding before the table).
__device__ __forceinline__ uint32_t AlignedTableAddress(const unsigned char* smem) {
  const uint32_t start = static_cast<uint32_t>(__cvta_generic_to_shared(smem));
  return (start + (kTableAlign - 1)) & ~static_cast<uint32_t>(kTableAlign - 1);
}

// CUDA cores: the byte offset in the table of group p of a lane's words; copy = the lane's copy
// offset (bytes). (Tensor cores: TensorTermsAddress.)
template <int BITS>
__device__ __forceinline__ uint32_t GroupOffset(const uint32_t (&w)[BITS], int p, uint32_t copy) {
  using L = Lookup<BITS, false>;  // the same rows with fp16 entries (HALF)
  if constexpr (L::kBytePerm) {
    // Byte p % 4 of word p / 4 into byte 1, the copy offset (< 256) into byte 0, zeros above.
    return __byte_perm(w[(p * L::kIndexBits) >> 5], copy, 0x5504u | (static_cast<uint32_t>(p & 3) << 4));
  } else {
    return FieldAt<L::kIndexBits, BITS>(w, p) * L::kRowBytes + copy;
  }
}

// Tensor cores: the shared-memory address of the hi term of pair p of a lane's words (its lo term
// is 128 bytes on), from base = the table's address (a multiple of 65536) + the lane's copy
// offset (< 128). (Both terms side by side, one 8-byte load, was slower: docs/gpu-performance.md.)
template <int BITS>
__device__ __forceinline__ uint32_t TensorTermsAddress(const uint32_t (&w)[BITS], int p, uint32_t base) {
  using L = Lookup<BITS, true>;
  if constexpr (L::kBytePerm) {
    // Byte p % 4 of word p / 4 into byte 1, the rest from base.
    return __byte_perm(w[(p * L::kIndexBits) >> 5], base, 0x7604u | (static_cast<uint32_t>(p & 3) << 4));
  } else {
    return base + FieldAt<L::kIndexBits, BITS>(w, p) * L::kRowBytes;
  }
}

// The hi and lo terms at a shared-memory address from TensorTermsAddress.
__device__ __forceinline__ void LoadTerms(uint32_t address, uint32_t& hi, uint32_t& lo) {
  asm volatile("ld.shared.b32 %0, [%2];\n\tld.shared.b32 %1, [%2+128];" : "=r"(hi), "=r"(lo) : "r"(address));
}
// The hi term alone (codebooks that are exactly bf16: every lo term is zero).
__device__ __forceinline__ void LoadHiTerm(uint32_t address, uint32_t& hi) {
  asm volatile("ld.shared.b32 %0, [%1];" : "=r"(hi) : "r"(address));
}

// Tensor cores: the A-fragment registers of pair p of a lane's words, its hi terms (and with LO its
// lo terms), from the lane's copy of the table at base = the table's address + the lane's copy
// offset: one lookup per pair (TensorTermsAddress: the table 65536-aligned), or for 5-6 bit codes
// one per code and two byte permutes (Lookup; any 4-byte aligned table, as in the split-K GEMM).
template <int BITS, bool LO>
__device__ __forceinline__ void PairTerms(const uint32_t (&w)[BITS], int p, uint32_t base, uint32_t& hi, uint32_t& lo) {
  using L = Lookup<BITS, true>;
  if constexpr (L::kGroup == 1) {
    uint32_t s0, s1;  // the splits (hi | lo << 16) of codes 2p and 2p + 1
    LoadHiTerm(base + FieldAt<BITS, BITS>(w, 2 * p) * L::kRowBytes, s0);
    LoadHiTerm(base + FieldAt<BITS, BITS>(w, 2 * p + 1) * L::kRowBytes, s1);
    hi = __byte_perm(s0, s1, 0x5410);
    if constexpr (LO) lo = __byte_perm(s0, s1, 0x7632);
  } else {
    const uint32_t address = TensorTermsAddress<BITS>(w, p, base);
    if constexpr (LO) LoadTerms(address, hi, lo);
    else LoadHiTerm(address, hi);
  }
}

// Fills the table (Lookup<BITS, TENSOR, HALF>::kBytes at `table`, 16-byte stores by threads
// `thread` of `threads`) from book[], the codebook as fp32 bits, as fp16 bits (HALF), or as each
// value's split hi | lo << 16 (TENSOR, SplitBf16). The caller synchronises before and after.
// Every copy of a row holds the same entry, so a 16-byte store holds one entry (a group of 4 fp32
// values) or repeats one of 8 or 4 bytes: a store costs one or two codebook reads and a few
// integer operations (the table is built while the previous kernel finishes, but a block that
// starts late builds it on its own critical path).
template <int BITS, bool TENSOR, bool HALF>
__device__ __forceinline__ void BuildTable(unsigned char* table, const uint32_t* book, int thread, int threads) {
  using L = Lookup<BITS, TENSOR, HALF>;
  constexpr int kUnitsPerRow = L::kRowBytes / 16;
  constexpr uint32_t kMask = (1u << BITS) - 1u;
  static_assert(L::kRowBytes % 16 == 0 && (kUnitsPerRow & (kUnitsPerRow - 1)) == 0);
  for (int u = thread; u < L::kBytes / 16; u += threads) {
    const uint32_t e = static_cast<uint32_t>(u) / kUnitsPerRow;  // the row: a code group
    [[maybe_unused]] const bool first_half = static_cast<uint32_t>(u) % kUnitsPerRow < kUnitsPerRow / 2;
    uint4 v;
    if constexpr (L::kGroup == 1) {  // 4 copies of code e's value (TENSOR: its split)
      const uint32_t w = book[e];
      v = make_uint4(w, w, w, w);
    } else if constexpr (TENSOR) {  // the first half of a row: hi terms; the second: lo terms
      const uint32_t s0 = book[e & kMask], s1 = book[e >> BITS];
      const uint32_t w = first_half ? (s0 & 0xFFFFu) | s1 << 16 : s0 >> 16 | (s1 & 0xFFFF0000u);
      v = make_uint4(w, w, w, w);
    } else if constexpr (HALF) {  // the first half: 4 copies of the fp16 pair; the second unused
      const uint32_t w = first_half ? book[e & kMask] | book[e >> BITS] << 16 : 0u;
      v = make_uint4(w, w, w, w);
    } else if constexpr (L::kGroup == 4) {  // one copy of the 4 values
      v = make_uint4(book[e & kMask], book[(e >> BITS) & kMask], book[(e >> 2 * BITS) & kMask], book[e >> 3 * BITS]);
    } else {  // two copies of the pair
      const uint32_t lo = book[e & kMask], hi = book[e >> BITS];
      v = make_uint4(lo, hi, lo, hi);
    }
    reinterpret_cast<uint4*>(table)[u] = v;
  }
}

}  // namespace owf::cuda::detail
