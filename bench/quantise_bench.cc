// Quantisation speed: owf's engine (all cores) beside a plain single-threaded scalar loop doing
// the same work, on a 4096 x 4096 Student-t(5) tensor. Run:
//   build/bench/owf_bench --benchmark_counters_tabular=true
// items_per_second is elements per second. The "Scalar" rows are the baseline: for fixed specs
// a per-element loop over ElementFormat::Quantise (the reference path, no chunking or threads);
// for +search the reference algorithm (quantise the whole tensor for each of the reference's
// candidates: 17 scales, or 12 df x 9 scales for crd(t)) and keep the best.
#include <benchmark/benchmark.h>

#include <cmath>

#include "owf/core/numeric.h"
#include "owf/formats/quantise.h"
#include "owf/stats/synthetic.h"

namespace owf {
namespace {

const Tensor& Input() {
  static const Tensor kInput = SyntheticTensor(Distribution::kStudentT, 5, 4096, 4096, 7);
  return kInput;
}

const char* const kSpecs[] = {"crd4(t,df=7)@64:absmax:bf16", "nf4@64:absmax:bf16", "e2m1@32:absmax:e8m0",
                              "crd4(t)@64:absmax:bf16+search"};

void BM_Owf(benchmark::State& state) {
  const FormatSpec spec = *ParseSpec(kSpecs[state.range(0)]);
  const Tensor& x = Input();
  for (auto _ : state) {
    auto q = QuantiseTensor(spec, x, QuantiseOptions{static_cast<int>(state.range(1)), nullptr});
    benchmark::DoNotOptimize(q->values.data.data());
  }
  state.SetLabel(std::string(kSpecs[state.range(0)]) + " threads=" + std::to_string(state.range(1)));
  state.SetItemsProcessed(state.iterations() * x.numel());
}

// The plain loop: absmax per block of 1 x B, bf16/e8m0 scale, scalar element quantise.
double ScalarPass(const ElementFormat& f, const Tensor& x, int64_t block, ScaleFormat sf, std::vector<float>& out) {
  const float range = std::min(-f.lo(), f.hi());
  double err = 0;
  for (int64_t start = 0; start < x.numel(); start += block) {
    float amax = 0;
    for (int64_t i = start; i < start + block; ++i) amax = std::max(amax, std::fabs(x.data[i]));
    const float s = QuantiseScale(std::max(amax / range, kFp32MinNormal), sf);
    for (int64_t i = start; i < start + block; ++i) {
      out[i] = f.Quantise(x.data[i] / s) * s;
      const double d = out[i] - x.data[i];
      err += d * d;
    }
  }
  return err;
}

void BM_Scalar(benchmark::State& state) {
  const std::string text = kSpecs[state.range(0)];
  const FormatSpec spec = *ParseSpec(text);
  const Tensor& x = Input();
  std::vector<float> out(x.data.size());
  const int64_t block = spec.scaling->block_cols;
  for (auto _ : state) {
    if (!spec.search) {
      const ElementFormat f = *DesignElement(spec);
      benchmark::DoNotOptimize(ScalarPass(f, x, block, spec.scaling->format, out));
      continue;
    }
    double best = INFINITY;
    for (int d = 0; d < 12; ++d) {  // the reference's df grid x 9 half-octave scales
      const double df = std::exp2(std::log2(3.0) + (std::log2(100.0) - std::log2(3.0)) * d / 11.0);
      const ElementFormat base = *DesignElement(spec, df);
      for (int k = -4; k <= 4; ++k) best = std::min(best, ScalarPass(base.WithScale(std::exp2(k / 2.0f)), x, block,
                                                                     spec.scaling->format, out));
    }
    benchmark::DoNotOptimize(best);
  }
  state.SetLabel(text + " scalar baseline, 1 thread");
  state.SetItemsProcessed(state.iterations() * x.numel());
}

// The fixed-length presets (README "Fixed-length presets"): per-block optimal scales, two-level
// scales and a codebook fitted with them, on the same tensor; compare with BM_Owf's absmax rows.
//   build/bench/owf_bench --benchmark_filter=Preset --benchmark_counters_tabular=true
void BM_Preset(benchmark::State& state) {
  const Preset& preset = Presets()[static_cast<size_t>(state.range(0))];
  const FormatSpec spec = *ParseSpec(preset.name);
  const Tensor& x = Input();
  for (auto _ : state) {
    auto q = QuantiseTensor(spec, x, QuantiseOptions{static_cast<int>(state.range(1)), nullptr});
    benchmark::DoNotOptimize(q->values.data.data());
  }
  state.SetLabel(std::string(preset.name) + " threads=" + std::to_string(state.range(1)));
  state.SetItemsProcessed(state.iterations() * x.numel());
}

BENCHMARK(BM_Owf)->ArgsProduct({{0, 1, 2, 3}, {1, 0}})->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_Preset)->ArgsProduct({{0, 1, 2, 3, 4, 5, 6}, {0}})->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_Scalar)->DenseRange(0, 2)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_Scalar)->Arg(3)->Iterations(1)->Unit(benchmark::kMillisecond)->UseRealTime();

}  // namespace
}  // namespace owf

BENCHMARK_MAIN();
