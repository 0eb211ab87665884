// rANS encoder: frequency quantisation, precision choice, and the per-slice coder (4 interleaved
// 32-bit states, 16-bit renormalisation, symbols coded last to first so that the decoder reads
// its words forwards).
#include <algorithm>
#include <bit>
#include <cmath>
#include <queue>
#include <string>

#include "owf/core/memory.h"
#include "owf/core/parallel.h"
#include "owf/entropy/coder.h"
#include "tables.h"

namespace owf {
namespace {

using entropy_internal::kRansL;

// x -> (x / freq) * 2^prob_bits + x % freq + cum, computed as x + cum + q * (2^prob_bits - freq)
// with q = x / freq by Granlund-Montgomery's multiply-and-shift (exact for every 32-bit x):
// q = (t + ((x - t) >> shift1)) >> shift2 with t = (x * rcp) >> 32.
struct EncodeSymbol {
  uint32_t x_max;  // renormalise (emit 16 bits) while the state is >= x_max
  uint32_t rcp;
  uint32_t cum;
  uint32_t cmpl_freq;  // 2^prob_bits - freq
  uint32_t shift1;
  uint32_t shift2;
};

EncodeSymbol MakeEncodeSymbol(uint32_t freq, uint32_t cum, int prob_bits) {
  EncodeSymbol e{};
  e.x_max = freq << (32 - prob_bits);  // freq < 2^prob_bits: no overflow
  e.cum = cum;
  e.cmpl_freq = (uint32_t{1} << prob_bits) - freq;
  if (freq == 0) return e;  // unused
  int l = 0;                // ceil(log2(freq))
  while ((uint32_t{1} << l) < freq) ++l;
  e.rcp = static_cast<uint32_t>(((uint64_t{1} << 32) * ((uint64_t{1} << l) - freq)) / freq + 1);
  e.shift1 = l > 0 ? 1 : 0;
  e.shift2 = l > 0 ? l - 1 : 0;
  return e;
}

// Coded size in bits of the counts under the frequencies.
double CodedBits(std::span<const uint64_t> counts, std::span<const uint32_t> freqs, int prob_bits) {
  double bits = 0;
  for (size_t s = 0; s < counts.size(); ++s) {
    if (counts[s] > 0) bits += static_cast<double>(counts[s]) * (prob_bits - std::log2(freqs[s]));
  }
  return bits;
}

// One coded slice: its 4 final states (little-endian), then its renormalisation words
// words[first, words.size()) in the order the decoder reads them.
struct CodedSlice {
  uint8_t states[4 * kRansLanes];
  LargeVector<uint16_t> words;  // little-endian
  size_t first = 0;
  size_t bytes() const { return sizeof(states) + 2 * (words.size() - first); }
};

void PutStates(const uint32_t (&x)[kRansLanes], CodedSlice& out) {
  for (int lane = 0; lane < kRansLanes; ++lane) {
    for (int k = 0; k < 4; ++k) out.states[4 * lane + k] = static_cast<uint8_t>(x[lane] >> (8 * k));
  }
}

// Codes symbols[0, m), last to first.
void EncodeSlice(const uint16_t* symbols, size_t m, const EncodeSymbol* table, CodedSlice& out) {
  // At most one word per symbol, filled from the back: words[w, m + 1). words[w - 1] is
  // written whether or not the state renormalises (branchless; w >= 1 always).
  LargeVector<uint16_t>& words = out.words;
  words.resize(m + 1);
  size_t w = m + 1;
  uint32_t x[kRansLanes] = {kRansL, kRansL, kRansL, kRansL};
  auto put = [&](uint32_t& state, uint16_t symbol) {
    const EncodeSymbol& e = table[symbol];
    const uint32_t renorm = state >= e.x_max;
    words[w - 1] = static_cast<uint16_t>(state);
    w -= renorm;
    state >>= renorm << 4;
    const uint32_t t = static_cast<uint32_t>((uint64_t{state} * e.rcp) >> 32);
    const uint32_t q = (t + ((state - t) >> e.shift1)) >> e.shift2;
    state += e.cum + q * e.cmpl_freq;
  };
  size_t i = m;
  while (i % kRansLanes != 0) {  // the last, partial group
    --i;
    put(x[i % kRansLanes], symbols[i]);
  }
  uint32_t x0 = x[0], x1 = x[1], x2 = x[2], x3 = x[3];
  while (i > 0) {
    i -= 4;
    put(x3, symbols[i + 3]);
    put(x2, symbols[i + 2]);
    put(x1, symbols[i + 1]);
    put(x0, symbols[i]);
  }
  PutStates({x0, x1, x2, x3}, out);
  out.first = w;
  if constexpr (std::endian::native == std::endian::big) {
    for (size_t k = w; k <= m; ++k) words[k] = __builtin_bswap16(words[k]);
  }
}

}  // namespace

Result<std::vector<uint32_t>> QuantiseFrequencies(std::span<const uint64_t> counts, int prob_bits) {
  if (prob_bits < 1 || prob_bits > entropy_internal::kMaxProbBits) {
    return InvalidArgument("rANS prob_bits " + std::to_string(prob_bits) + " outside [1, 16]");
  }
  const uint64_t total = uint64_t{1} << prob_bits;
  std::vector<uint32_t> freqs(counts.size(), 0);
  uint64_t n = 0, present = 0;
  for (uint64_t c : counts) {
    n += c;
    present += c > 0;
  }
  if (present == 0) return freqs;
  if (present > total) {
    return InvalidArgument(std::to_string(present) + " distinct symbols need prob_bits > " +
                           std::to_string(prob_bits));
  }
  if (n > entropy_internal::kMaxSymbols) return InvalidArgument("too many symbols");
  // Rounded proportional shares (at least 1), then unit moves to reach the total: the cost is
  // convex in each frequency, so each unit goes where it gains the most (or is taken where it
  // loses the least).
  int64_t sum = 0;
  for (size_t s = 0; s < counts.size(); ++s) {
    if (counts[s] == 0) continue;
    const uint64_t f = (counts[s] * total * 2 + n) / (2 * n);
    freqs[s] = static_cast<uint32_t>(std::clamp<uint64_t>(f, 1, total));
    sum += freqs[s];
  }
  using Item = std::pair<double, uint32_t>;  // (priority, symbol)
  const int64_t target = static_cast<int64_t>(total);
  if (sum < target) {
    auto gain = [&](uint32_t s) {
      return static_cast<double>(counts[s]) * std::log2((freqs[s] + 1.0) / freqs[s]);
    };
    std::priority_queue<Item> heap;  // largest gain first
    for (size_t s = 0; s < counts.size(); ++s) {
      if (counts[s] > 0) heap.emplace(gain(static_cast<uint32_t>(s)), static_cast<uint32_t>(s));
    }
    for (; sum < target; ++sum) {
      const uint32_t s = heap.top().second;
      heap.pop();
      ++freqs[s];
      heap.emplace(gain(s), s);
    }
  } else if (sum > target) {
    auto loss = [&](uint32_t s) {
      return static_cast<double>(counts[s]) * std::log2(freqs[s] / (freqs[s] - 1.0));
    };
    std::priority_queue<Item, std::vector<Item>, std::greater<Item>> heap;  // smallest loss first
    for (size_t s = 0; s < counts.size(); ++s) {
      if (freqs[s] > 1) heap.emplace(loss(static_cast<uint32_t>(s)), static_cast<uint32_t>(s));
    }
    for (; sum > target; --sum) {
      const uint32_t s = heap.top().second;  // non-empty: present <= total
      heap.pop();
      --freqs[s];
      if (freqs[s] > 1) heap.emplace(loss(s), s);
    }
  }
  return freqs;
}

Result<std::vector<uint8_t>> EncodeRans(std::span<const uint16_t> symbols, int alphabet_size,
                                        int streams, int prob_bits, int threads) {
  OWF_ASSIGN_OR_RETURN(const std::vector<uint64_t> counts,
                       CountSymbols(symbols, alphabet_size, threads));
  if (streams < 1 || streams > entropy_internal::kMaxRansStreams) {
    return InvalidArgument("rANS streams " + std::to_string(streams) + " outside [1, 65536]");
  }
  if (prob_bits < 0 || prob_bits > entropy_internal::kMaxProbBits) {
    return InvalidArgument("rANS prob_bits " + std::to_string(prob_bits) + " outside [0, 16]");
  }
  const uint64_t n = symbols.size();
  if (n > entropy_internal::kMaxSymbols) return InvalidArgument("too many symbols");
  uint64_t present = 0;
  for (uint64_t c : counts) present += c > 0;

  std::vector<uint32_t> freqs;
  std::vector<uint8_t> table_bytes;
  if (prob_bits != 0) {
    OWF_ASSIGN_OR_RETURN(freqs, QuantiseFrequencies(counts, prob_bits));
    entropy_internal::PutTable(table_bytes, freqs);
  } else {
    // The smallest precision within 0.1% of the best total size (smaller decode tables).
    const int lo = std::clamp(static_cast<int>(std::bit_width(present > 0 ? present - 1 : 0)) + 1,
                              12, entropy_internal::kMaxProbBits);
    struct Candidate {
      int bits;
      double cost;
      std::vector<uint32_t> freqs;
      std::vector<uint8_t> table;
    };
    std::vector<Candidate> candidates;
    double best = 0;
    for (int b = lo; b <= entropy_internal::kMaxProbBits; ++b) {
      Candidate c{b, 0, {}, {}};
      OWF_ASSIGN_OR_RETURN(c.freqs, QuantiseFrequencies(counts, b));
      entropy_internal::PutTable(c.table, c.freqs);
      c.cost = CodedBits(counts, c.freqs, b) + 8.0 * static_cast<double>(c.table.size());
      best = candidates.empty() ? c.cost : std::min(best, c.cost);
      candidates.push_back(std::move(c));
    }
    for (auto& c : candidates) {
      if (c.cost <= best * 1.001) {
        prob_bits = c.bits;
        freqs = std::move(c.freqs);
        table_bytes = std::move(c.table);
        break;
      }
    }
  }

  // One symbol with probability 1 codes in zero bits (every state stays at kRansL): one slice.
  const uint32_t total = uint32_t{1} << prob_bits;
  const bool lone = std::find(freqs.begin(), freqs.end(), total) != freqs.end();
  const uint64_t slices =
      n == 0 ? 0
      : lone ? 1
             : std::clamp<uint64_t>((n + kMinRansSliceSymbols - 1) / kMinRansSliceSymbols, 1,
                                    static_cast<uint64_t>(streams));
  std::vector<uint8_t> meta;
  meta.push_back(static_cast<uint8_t>(prob_bits));
  meta.push_back(static_cast<uint8_t>(kRansLanes));
  entropy_internal::PutVarint(meta, slices);
  meta.insert(meta.end(), table_bytes.begin(), table_bytes.end());

  std::vector<CodedSlice> coded(static_cast<size_t>(slices));
  if (lone) {
    for (auto& c : coded) PutStates({kRansL, kRansL, kRansL, kRansL}, c);
  } else {
    std::vector<EncodeSymbol> table(freqs.size());
    uint32_t cum = 0;
    for (size_t s = 0; s < freqs.size(); ++s) {
      table[s] = MakeEncodeSymbol(freqs[s], cum, prob_bits);
      cum += freqs[s];
    }
    ParallelFor(static_cast<size_t>(slices), threads, [&](size_t j) {
      const uint64_t begin = entropy_internal::SliceBegin(n, slices, j);
      const uint64_t end = entropy_internal::SliceBegin(n, slices, j + 1);
      EncodeSlice(symbols.data() + begin, static_cast<size_t>(end - begin), table.data(), coded[j]);
    });
  }
  std::vector<std::span<const uint8_t>> pieces;
  for (const auto& c : coded) {
    entropy_internal::PutVarint(meta, c.bytes());
    pieces.emplace_back(c.states, sizeof(c.states));
    pieces.emplace_back(reinterpret_cast<const uint8_t*>(c.words.data() + c.first),
                        2 * (c.words.size() - c.first));
  }
  return entropy_internal::AssembleStream(EntropyCoder::kRans, n, alphabet_size, meta, pieces);
}

}  // namespace owf
