// Entropy coder speed on 16M symbols drawn from a discretised Gaussian (+-3 sigma) over 16 and
// 64 levels: rANS (32 streams) decode and encode on 1 thread and on all cores, Huffman decode
// and encode (single stream). items_per_second is symbols per second; the labels give the
// coded size in bits per symbol beside the static entropy. Run:
//   build/bench/owf_entropy_bench --benchmark_counters_tabular=true
#include <benchmark/benchmark.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "owf/core/parallel.h"
#include "owf/entropy/coder.h"

namespace owf {
namespace {

constexpr size_t kSymbols = size_t{1} << 24;

const std::vector<uint16_t>& Symbols(int levels) {
  static std::map<int, std::vector<uint16_t>> cache;
  auto& v = cache[levels];
  if (v.empty()) {
    std::mt19937_64 rng(levels);
    std::normal_distribution<double> normal(0.0, 1.0);
    v.resize(kSymbols);
    for (auto& s : v) {
      const double t = (normal(rng) / 3.0 + 1.0) / 2.0 * (levels - 1);
      s = static_cast<uint16_t>(std::clamp<double>(std::round(t), 0, levels - 1));
    }
  }
  return v;
}

std::string SizeLabel(const std::vector<uint16_t>& symbols, int levels,
                      const std::vector<uint8_t>& enc, int threads) {
  std::vector<double> counts(levels, 0);
  for (uint16_t s : symbols) counts[s] += 1;
  double ideal = 0;
  for (double c : counts) {
    if (c > 0) ideal -= c * std::log2(c / symbols.size());
  }
  char buf[160];
  std::snprintf(buf, sizeof(buf), "levels=%d threads=%d bits/sym=%.4f entropy=%.4f (+%.3f%%)",
                levels, ResolveThreads(threads), 8.0 * enc.size() / symbols.size(),
                ideal / symbols.size(), 100.0 * (8.0 * enc.size() / ideal - 1));
  return buf;
}

// range(0): levels; range(1): threads (0 = all cores).
void BM_RansDecode(benchmark::State& state) {
  const int levels = static_cast<int>(state.range(0)), threads = static_cast<int>(state.range(1));
  const auto& symbols = Symbols(levels);
  const auto enc = *EncodeRans(symbols, levels);
  for (auto _ : state) {
    auto dec = DecodeRans(enc, threads);
    if (!dec.ok()) state.SkipWithError("decode failed");
    benchmark::DoNotOptimize(dec->data());
  }
  state.SetLabel(SizeLabel(symbols, levels, enc, threads));
  state.SetItemsProcessed(state.iterations() * static_cast<int64_t>(kSymbols));
}

void BM_RansEncode(benchmark::State& state) {
  const int levels = static_cast<int>(state.range(0)), threads = static_cast<int>(state.range(1));
  const auto& symbols = Symbols(levels);
  std::vector<uint8_t> enc;
  for (auto _ : state) {
    enc = *EncodeRans(symbols, levels, 32, 0, threads);
    benchmark::DoNotOptimize(enc.data());
  }
  state.SetLabel(SizeLabel(symbols, levels, enc, threads));
  state.SetItemsProcessed(state.iterations() * static_cast<int64_t>(kSymbols));
}

void BM_HuffmanDecode(benchmark::State& state) {
  const int levels = static_cast<int>(state.range(0));
  const auto& symbols = Symbols(levels);
  const auto enc = *EncodeHuffman(symbols, levels);
  for (auto _ : state) {
    auto dec = DecodeHuffman(enc);
    if (!dec.ok()) state.SkipWithError("decode failed");
    benchmark::DoNotOptimize(dec->data());
  }
  state.SetLabel(SizeLabel(symbols, levels, enc, 1));
  state.SetItemsProcessed(state.iterations() * static_cast<int64_t>(kSymbols));
}

void BM_HuffmanEncode(benchmark::State& state) {
  const int levels = static_cast<int>(state.range(0));
  const auto& symbols = Symbols(levels);
  std::vector<uint8_t> enc;
  for (auto _ : state) {
    enc = *EncodeHuffman(symbols, levels);
    benchmark::DoNotOptimize(enc.data());
  }
  state.SetLabel(SizeLabel(symbols, levels, enc, 1));
  state.SetItemsProcessed(state.iterations() * static_cast<int64_t>(kSymbols));
}

BENCHMARK(BM_RansDecode)
    ->ArgsProduct({{16, 64}, {1, 0}})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();
BENCHMARK(BM_RansEncode)
    ->ArgsProduct({{16, 64}, {1, 0}})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();
BENCHMARK(BM_HuffmanDecode)->Arg(16)->Arg(64)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_HuffmanEncode)->Arg(16)->Arg(64)->Unit(benchmark::kMillisecond)->UseRealTime();

}  // namespace
}  // namespace owf

BENCHMARK_MAIN();
