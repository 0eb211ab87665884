// `owf demo`: the paper's story on synthetic data in one table. For each source distribution
// and bit width, the formats owf designs for it, their error, and their distance from the
// Shannon bound (a Gaussian of the tensor's variance).
#include <cstdio>
#include <nlohmann/json.hpp>

#include "commands.h"
#include "owf/formats/quantise.h"
#include "owf/stats/metrics.h"
#include "owf/stats/synthetic.h"
#include "table.h"

namespace owf::cli {

int RunDemo(bool json, int threads) {
  struct Source {
    const char* name;
    Distribution dist;
    int df;
    const char* crd;  // the matched cube-root-density family
  };
  const Source sources[] = {{"normal", Distribution::kNormal, 0, "normal"},
                            {"laplace", Distribution::kLaplace, 0, "laplace"},
                            {"student-t(5)", Distribution::kStudentT, 5, "t"}};
  // {spec template with %d for the bits, short description}
  const std::pair<const char*, const char*> templates[] = {
      {"int%d@64:absmax:bf16+search", "integer grid, block absmax, scale search"},
      {"crd%d(%s)@tensor:rms:bf16", "cube-root density, tensor RMS (Panter-Dite)"},
      {"crd%d(%s)@64:absmax:bf16", "cube-root density, truncated for block 64"},
      {"lloyd%d@tensor:rms:bf16", "Lloyd-Max trained on the tensor"},
      {"grid(%d)@tensor:rms:bf16+entropy(ideal)", "uniform grid + ideal entropy coding"},
  };
  const int64_t rows = 256, cols = 4096;
  nlohmann::json out = nlohmann::json::array();
  Table table({"data", "spec", "bits", "rmse_norm", "SNR dB", "R*2^b", "gap bits"});
  for (const Source& src : sources) {
    const Tensor x = SyntheticTensor(src.dist, src.df, rows, cols, 20251122);
    for (int bits = 3; bits <= 5; ++bits) {
      for (const auto& [tmpl, what] : templates) {
        char text[128];
        std::snprintf(text, sizeof(text), tmpl, bits, src.crd);
        auto spec = ParseSpec(text);
        if (!spec.ok()) return 1;
        auto q = QuantiseTensor(*spec, x, QuantiseOptions{threads, nullptr});
        if (!q.ok()) {
          std::fprintf(stderr, "owf: error: %s\n", q.status().message().c_str());
          return 1;
        }
        const double b = q->bits_per_element();
        const ErrorMetrics m = ComputeMetrics(q->error, b);
        out.push_back({{"data", src.name}, {"spec", text}, {"description", what}, {"bits_per_element", b},
                       {"rmse_norm", m.rmse_norm}, {"snr_db", m.snr_db}, {"efficiency", m.efficiency},
                       {"shannon_gap_bits", m.shannon_gap_bits}, {"fitted", q->fitted}});
        table.AddRow({src.name, text, Fixed(b, 3), Fixed(m.rmse_norm, 4), Fixed(m.snr_db, 2),
                      Fixed(m.efficiency, 3), (m.shannon_gap_bits >= 0 ? "+" : "") + Fixed(m.shannon_gap_bits, 3)});
      }
    }
  }
  if (json) {
    std::printf("%s\n", out.dump(2).c_str());
    return 0;
  }
  std::printf("owf demo: formats designed for synthetic %lldx%lld tensors (iid, std 0.02)\n\n",
              static_cast<long long>(rows), static_cast<long long>(cols));
  std::printf("%s\n", table.Render().c_str());
  std::printf(
      "R*2^b = rmse_norm * 2^bits (lower is better; 1 = the Shannon bound for Gaussian data).\n"
      "gap bits = bits spent above the rate a Gaussian of the same variance needs for this error\n"
      "(heavy-tailed data can go below 0: it is easier to code than a Gaussian).\n"
      "Entropy-coded uniform grids sit ~0.25 bit above the bound (Gish-Pierce); the best\n"
      "fixed-length formats 0.5-1.2 bits. Try: owf measure SPEC your_tensor.npy\n");
  return 0;
}

}  // namespace owf::cli
