// rANS decoder: a table of 2^prob_bits slots gives each slot's symbol, frequency and offset in
// its symbol's range; 4 interleaved states per slice keep several independent decode chains in
// flight; slices decode on threads. Each slice must end exactly at its stream's end with every
// state back at its initial value, which catches corrupted streams.
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <string>

#include "owf/core/parallel.h"
#include "owf/entropy/coder.h"
#include "tables.h"

namespace owf {
namespace {

using entropy_internal::kRansL;
using entropy_internal::Load16Le;
using entropy_internal::Load32Le;
using entropy_internal::Load64Le;

// One slot of the 2^prob_bits decode table: the symbol owning the slot, its frequency (< 2^16:
// a symbol with frequency 2^prob_bits is decoded without the table) and the slot's offset in
// the symbol's range. 8 bytes, so that one base register and three loads serve a step.
struct Slot {
  uint16_t freq;
  uint16_t bias;
  uint16_t symbol;
  uint16_t unused;
};

std::vector<Slot> BuildSlots(std::span<const uint32_t> freqs, int prob_bits) {
  std::vector<Slot> slots(size_t{1} << prob_bits);
  size_t slot = 0;
  for (size_t s = 0; s < freqs.size(); ++s) {
    for (uint32_t k = 0; k < freqs[s]; ++k, ++slot) {  // freqs sum to 2^prob_bits: parse checks
      slots[slot] = {static_cast<uint16_t>(freqs[s]), static_cast<uint16_t>(k),
                     static_cast<uint16_t>(s), 0};
    }
  }
  return slots;
}

struct Params {
  const Slot* slots;
  int bits;
  uint32_t mask;
};

// One slice: 4 states and a cursor into its stream and its output.
struct Cursor {
  uint32_t x[kRansLanes];
  const uint8_t* p;
  const uint8_t* end;
  uint16_t* out;
  uint16_t* out_end;
};

// Decodes one group of 4 symbols (one per lane). The group's words come from one 8-byte load
// at p (lane k takes the word after those taken by lanes 0..k-1), which keeps memory latency
// off the decode chains; the 8 bytes must be readable.
[[gnu::always_inline]] inline void DecodeGroup(const Params& params, uint32_t& x0, uint32_t& x1,
                                               uint32_t& x2, uint32_t& x3, const uint8_t*& p,
                                               uint16_t* out) {
  const int bits = params.bits;
  const uint32_t mask = params.mask;
  const uint64_t window = Load64Le(p);
  uint32_t taken = 0;  // bits of the window taken so far
  auto step = [&](uint32_t& x, uint16_t* o) {
    const Slot& e = params.slots[x & mask];
    *o = e.symbol;
    x = e.freq * (x >> bits) + e.bias;
    const uint32_t w = static_cast<uint32_t>(window >> taken) & 0xFFFF;
    // Renormalise for ~1 symbol in 3, branchless: compilers turn a ?: here into a branch that
    // mispredicts, or into masks and shifts; two conditional moves decode ~25% faster.
#if defined(__x86_64__) && defined(__GNUC__)
    const uint32_t shifted = x << 16 | w;
    const uint32_t next = taken + 16;
    asm("cmpl %[l], %[x]\n\tcmovb %[shifted], %[x]\n\tcmovb %[next], %[taken]"
        : [x] "+r"(x), [taken] "+r"(taken)
        : [shifted] "r"(shifted), [next] "r"(next), [l] "i"(kRansL)
        : "cc");
#else
    const uint32_t renorm = x < kRansL;
    const uint32_t shift = renorm << 4;
    x = (x << shift) | (w & (0u - renorm));
    taken += shift;
#endif
  };
  step(x0, out);
  step(x1, out + 1);
  step(x2, out + 2);
  step(x3, out + 3);
  p += taken >> 3;
}

// How many groups can run before p passes limit (each reads 8 bytes and consumes at most 8).
inline size_t SafeGroups(const uint8_t* p, const uint8_t* limit) {
  return p > limit ? 0 : static_cast<size_t>(limit - p) / 8 + 1;
}

// GCC's SLP vectoriser would pack the lanes into vectors and move every value between vector
// and general registers, several times slower than the scalar chains.
#if defined(__GNUC__) && !defined(__clang__)
#define OWF_NO_SLP __attribute__((optimize("no-tree-slp-vectorize")))
#else
#define OWF_NO_SLP
#endif

// Whole groups while c.p <= limit (and 8 bytes from c.p are readable).
OWF_NO_SLP void DecodeGroups(const Params& params, Cursor& c, const uint8_t* limit) {
  uint32_t x0 = c.x[0], x1 = c.x[1], x2 = c.x[2], x3 = c.x[3];
  const uint8_t* p = c.p;
  uint16_t* out = c.out;
  for (;;) {
    const size_t groups = std::min(static_cast<size_t>(c.out_end - out) / 4, SafeGroups(p, limit));
    if (groups == 0) break;
    uint16_t* const stop = out + 4 * groups;
    for (; out != stop; out += 4) DecodeGroup(params, x0, x1, x2, x3, p, out);
  }
  c.x[0] = x0;
  c.x[1] = x1;
  c.x[2] = x2;
  c.x[3] = x3;
  c.p = p;
  c.out = out;
}

// Two slices in one loop: twice the independent chains for the out-of-order core. Runs while
// both have whole groups and 8 readable bytes; the caller finishes each slice.
OWF_NO_SLP void DecodeGroupsPair(const Params& params, Cursor& a, Cursor& b) {
  if (a.end - a.p < 8 || b.end - b.p < 8) return;
  const uint8_t* const limit_a = a.end - 8;
  const uint8_t* const limit_b = b.end - 8;
  uint32_t a0 = a.x[0], a1 = a.x[1], a2 = a.x[2], a3 = a.x[3];
  uint32_t b0 = b.x[0], b1 = b.x[1], b2 = b.x[2], b3 = b.x[3];
  const uint8_t* pa = a.p;
  const uint8_t* pb = b.p;
  uint16_t* out_a = a.out;
  uint16_t* out_b = b.out;
  for (;;) {
    const size_t groups = std::min({static_cast<size_t>(a.out_end - out_a) / 4,
                                    static_cast<size_t>(b.out_end - out_b) / 4,
                                    SafeGroups(pa, limit_a), SafeGroups(pb, limit_b)});
    if (groups == 0) break;
    uint16_t* const stop = out_a + 4 * groups;
    for (; out_a != stop; out_a += 4, out_b += 4) {
      DecodeGroup(params, a0, a1, a2, a3, pa, out_a);
      DecodeGroup(params, b0, b1, b2, b3, pb, out_b);
    }
  }
  a.x[0] = a0;
  a.x[1] = a1;
  a.x[2] = a2;
  a.x[3] = a3;
  b.x[0] = b0;
  b.x[1] = b1;
  b.x[2] = b2;
  b.x[3] = b3;
  a.p = pa;
  b.p = pb;
  a.out = out_a;
  b.out = out_b;
}

// Reads a slice's initial states; false if malformed.
bool StartSlice(std::span<const uint8_t> stream, uint16_t* out, size_t m, Cursor& c) {
  c.p = stream.data();
  c.end = c.p + stream.size();  // size >= 16, checked on parse
  for (int lane = 0; lane < kRansLanes; ++lane) {
    c.x[lane] = Load32Le(c.p + 4 * lane);
    if (c.x[lane] < kRansL) return false;
  }
  c.p += 4 * kRansLanes;
  c.out = out;
  c.out_end = out + m;
  return true;
}

// Decodes the rest of a slice; false if its stream is malformed.
bool FinishSlice(const Params& params, Cursor& c) {
  // Straight from the stream while 8 bytes remain, then from a zero-padded copy of its end.
  if (c.end - c.p >= 8) DecodeGroups(params, c, c.end - 8);
  uint8_t tail[16] = {};
  if (c.end - c.p < 8) {
    const size_t rest = static_cast<size_t>(c.end - c.p);
    std::memcpy(tail, c.p, rest);
    c.p = tail;
    c.end = tail + rest;
    DecodeGroups(params, c, c.end);
    if (c.p > c.end) return false;  // read into the padding: truncated
  }
  // The last symbols (m % 4, or after a stream overrun), one at a time; lanes continue the
  // 4-cycle from the slice's start, and whole groups left an aligned position.
  for (size_t i = 0; c.out < c.out_end; ++i, ++c.out) {
    uint32_t& x = c.x[i % kRansLanes];
    const Slot& e = params.slots[x & params.mask];
    *c.out = e.symbol;
    x = e.freq * (x >> params.bits) + e.bias;
    if (x < kRansL) {
      if (c.end - c.p < 2) return false;
      x = x << 16 | Load16Le(c.p);
      c.p += 2;
    }
  }
  if (c.p != c.end) return false;
  for (uint32_t x : c.x) {
    if (x != kRansL) return false;
  }
  return true;
}

// Decodes slices [first, first + count), count <= 2, recording which are well formed. Two
// slices decode in one loop (see DecodeGroupsPair), then each finishes alone; the output does
// not depend on the pairing.
void DecodeTask(const Params& params, const entropy_internal::RansLayout& l, uint16_t* out,
                size_t first, size_t count, uint8_t* ok) {
  const size_t slices = l.streams.size();
  Cursor c[2];
  bool started[2] = {false, false};
  for (size_t k = 0; k < count; ++k) {
    const size_t j = first + k;
    const uint64_t begin = entropy_internal::SliceBegin(l.n, slices, j);
    const uint64_t end = entropy_internal::SliceBegin(l.n, slices, j + 1);
    started[k] = StartSlice(l.streams[j], out + begin, static_cast<size_t>(end - begin), c[k]);
  }
  if (count == 2 && started[0] && started[1]) DecodeGroupsPair(params, c[0], c[1]);
  for (size_t k = 0; k < count; ++k) ok[first + k] = started[k] && FinishSlice(params, c[k]);
}

}  // namespace

Result<LargeVector<uint16_t>> DecodeRans(std::span<const uint8_t> encoded, int threads) {
  OWF_ASSIGN_OR_RETURN(const entropy_internal::RansLayout l, entropy_internal::ParseRans(encoded));
  const uint64_t n = l.n;
  const size_t slices = l.streams.size();
  LargeVector<uint16_t> out(static_cast<size_t>(n));
  if (n == 0) return out;
  if (l.lone_symbol >= 0) {
    for (const auto& s : l.streams) {
      if (s.size() != 4 * kRansLanes) return InvalidData("corrupt rANS stream");
      for (int lane = 0; lane < kRansLanes; ++lane) {
        if (Load32Le(s.data() + 4 * lane) != kRansL) return InvalidData("corrupt rANS stream");
      }
    }
    std::fill(out.begin(), out.end(), static_cast<uint16_t>(l.lone_symbol));
    return out;
  }
  const std::vector<Slot> slots = BuildSlots(l.freqs, l.prob_bits);
  const Params params{slots.data(), l.prob_bits, (uint32_t{1} << l.prob_bits) - 1};
  std::vector<uint8_t> ok(slices, 0);
  constexpr size_t per_task = 2;
  ParallelFor((slices + per_task - 1) / per_task, threads, [&](size_t task) {
    const size_t first = task * per_task;
    DecodeTask(params, l, out.data(), first, std::min(per_task, slices - first), ok.data());
  });
  for (size_t j = 0; j < slices; ++j) {
    if (!ok[j]) return InvalidData("corrupt rANS stream " + std::to_string(j));
  }
  return out;
}

}  // namespace owf
