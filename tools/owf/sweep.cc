// `owf sweep`: the rate-distortion view of one tensor. Quantises it with several format templates
// at several bit widths and prints rmse_norm against all-in bits beside the Shannon bound of a
// Gaussian of the same variance and the Shannon lower bound from the tensor's own differential
// entropy; --svg draws the same as a chart.
#include <cmath>
#include <cstdio>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>

#include "cli_util.h"
#include "commands.h"
#include "owf/formats/quantise.h"
#include "owf/io/file.h"
#include "owf/io/model.h"
#include "owf/io/npy.h"
#include "owf/stats/metrics.h"
#include "table.h"

namespace owf::cli {
namespace {

std::string Instantiate(const std::string& tmpl, double bits) {
  std::string out = tmpl;
  const std::string b = FormatNumber(bits);
  for (size_t pos = out.find("{b}"); pos != std::string::npos; pos = out.find("{b}", pos + b.size()))
    out.replace(pos, 3, b);
  return out;
}

struct Point {
  double bits, rmse;
};

// A log-scale rmse vs bits chart.
std::string Svg(const std::map<std::string, std::vector<Point>>& series, const std::vector<Point>& gauss,
                const std::vector<Point>& slb, const std::string& title) {
  double x0 = INFINITY, x1 = -INFINITY, y0 = INFINITY, y1 = -INFINITY;
  auto extend = [&](const std::vector<Point>& ps) {
    for (const Point& p : ps) {
      if (!(p.rmse > 0) || !std::isfinite(p.rmse)) continue;
      x0 = std::min(x0, p.bits), x1 = std::max(x1, p.bits);
      y0 = std::min(y0, std::log10(p.rmse)), y1 = std::max(y1, std::log10(p.rmse));
    }
  };
  for (const auto& [name, ps] : series) extend(ps);
  extend(gauss);
  extend(slb);
  x0 = std::floor(x0 - 0.25), x1 = std::ceil(x1 + 0.25), y0 = std::floor(y0 * 4) / 4, y1 = std::ceil(y1 * 4) / 4;
  const double W = 760, H = 480, L = 70, R = 250, T = 40, B = 50;
  auto px = [&](double b) { return L + (b - x0) / (x1 - x0) * (W - L - R); };
  auto py = [&](double r) { return T + (y1 - std::log10(r)) / (y1 - y0) * (H - T - B); };
  std::ostringstream s;
  s << "<svg xmlns='http://www.w3.org/2000/svg' width='" << W << "' height='" << H << "' font-family='sans-serif' "
    << "font-size='12'>\n<rect width='100%' height='100%' fill='white'/>\n";
  s << "<text x='" << L << "' y='20' font-size='14'>" << title << "</text>\n";
  for (double b = x0; b <= x1 + 1e-9; b += 1) {
    s << "<line x1='" << px(b) << "' y1='" << T << "' x2='" << px(b) << "' y2='" << H - B << "' stroke='#ddd'/>\n"
      << "<text x='" << px(b) - 4 << "' y='" << H - B + 16 << "'>" << b << "</text>\n";
  }
  for (double e = y0; e <= y1 + 1e-9; e += 0.25) {
    char label[32];
    std::snprintf(label, sizeof(label), "%.3g", std::pow(10.0, e));
    s << "<line x1='" << L << "' y1='" << py(std::pow(10.0, e)) << "' x2='" << W - R << "' y2='"
      << py(std::pow(10.0, e)) << "' stroke='#ddd'/>\n<text x='8' y='" << py(std::pow(10.0, e)) + 4 << "'>"
      << label << "</text>\n";
  }
  s << "<text x='" << (L + W - R) / 2 - 60 << "' y='" << H - 12 << "'>bits per element (all-in)</text>\n";
  s << "<text x='14' y='" << T - 10 << "'>rmse_norm (log)</text>\n";
  const char* colors[] = {"#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf"};
  int k = 0, legend_y = static_cast<int>(T);
  auto line = [&](const std::vector<Point>& ps, const std::string& name, const char* color, bool dashed) {
    std::string pts;
    for (const Point& p : ps)
      if (p.rmse > 0 && std::isfinite(p.rmse)) pts += std::to_string(px(p.bits)) + "," + std::to_string(py(p.rmse)) + " ";
    s << "<polyline fill='none' stroke='" << color << "' stroke-width='2'" << (dashed ? " stroke-dasharray='6,4'" : "")
      << " points='" << pts << "'/>\n";
    if (!dashed)
      for (const Point& p : ps)
        if (p.rmse > 0) s << "<circle cx='" << px(p.bits) << "' cy='" << py(p.rmse) << "' r='3' fill='" << color << "'/>\n";
    s << "<line x1='" << W - R + 10 << "' y1='" << legend_y << "' x2='" << W - R + 30 << "' y2='" << legend_y
      << "' stroke='" << color << "' stroke-width='2'" << (dashed ? " stroke-dasharray='6,4'" : "") << "/>\n<text x='"
      << W - R + 35 << "' y='" << legend_y + 4 << "' font-size='10'>" << name << "</text>\n";
    legend_y += 16;
  };
  for (const auto& [name, ps] : series) line(ps, name, colors[k++ % 8], false);
  line(gauss, "Shannon bound (Gaussian)", "#000", true);
  line(slb, "Shannon lower bound (h)", "#777", true);
  s << "</svg>\n";
  return s.str();
}

}  // namespace

int RunSweep(const SweepArgs& a) {
  std::vector<std::string> templates = a.templates;
  if (templates.empty()) {
    templates = {"int{b}@64:absmax:bf16+search", "crd{b}(t)@64:absmax:bf16", "lloyd{b}@tensor:rms:bf16",
                 "grid({b})@tensor:absmax:bf16+entropy(ideal)"};
  }
  std::vector<double> bits;
  std::stringstream list(a.bits);
  for (std::string item; std::getline(list, item, ',');) {
    char* end = nullptr;
    const double b = std::strtod(item.c_str(), &end);
    if (item.empty() || *end != '\0' || !(b > 0 && b <= 16))
      return Fail(InvalidArgument("--bits: '" + item + "' is not a bit width in (0, 16]"));
    bits.push_back(b);
  }
  Result<Tensor> x = LoadInputTensor(a.input, a.tensor);
  if (!x.ok()) return Fail(x.status());
  ErrorSums moments = ComputeErrorSums(x->data, x->data);
  const double n = static_cast<double>(moments.count);
  const double mean_sq = moments.sum_x2 / n, mean = moments.sum_x / n;
  const double variance = mean_sq - mean * mean;
  const double h = DifferentialEntropyBits(x->data);

  std::map<std::string, std::vector<Point>> series;
  nlohmann::json rows = nlohmann::json::array();
  Table table({"spec", "bits", "rmse_norm", "gaussian bound", "SLB", "gap bits"});
  for (const auto& tmpl : templates) {
    for (double b : bits) {
      const std::string text = Instantiate(tmpl, b);
      auto spec = ParseSpec(text);
      if (!spec.ok()) return Fail(spec.status());
      auto q = QuantiseTensor(*spec, *x, QuantiseOptions{a.threads, nullptr});
      if (!q.ok()) {
        std::fprintf(stderr, "owf: skipping %s: %s\n", text.c_str(), q.status().message().c_str());
        continue;
      }
      const double qb = q->bits_per_element();
      const ErrorMetrics m = ComputeMetrics(q->error, qb);
      const double g = GaussianBoundRmseNorm(variance, mean_sq, qb), slb = ShannonLowerBoundRmseNorm(h, mean_sq, qb);
      series[tmpl].push_back({qb, m.rmse_norm});
      rows.push_back({{"template", tmpl}, {"spec", ToString(*spec)}, {"bits_per_element", qb}, {"rmse_norm", m.rmse_norm},
                      {"gaussian_bound", g}, {"shannon_lower_bound", slb}, {"shannon_gap_bits", m.shannon_gap_bits}});
      table.AddRow({ToString(*spec), Fixed(qb, 3), Fixed(m.rmse_norm, 5), Fixed(g, 5), Fixed(slb, 5),
                    (m.shannon_gap_bits >= 0 ? "+" : "") + Fixed(m.shannon_gap_bits, 3)});
    }
  }
  std::vector<Point> gauss, lower;
  for (double b = bits.front() - 0.5; b <= bits.back() + 0.6; b += 0.25) {
    gauss.push_back({b, GaussianBoundRmseNorm(variance, mean_sq, b)});
    lower.push_back({b, ShannonLowerBoundRmseNorm(h, mean_sq, b)});
  }
  if (!a.svg.empty()) {
    Status st = WriteFileAtomic(a.svg, Svg(series, gauss, lower, "rmse vs bits: " + a.input + " " + x->ShapeString()));
    if (!st.ok()) return Fail(st);
  }
  if (a.json) {
    std::printf("%s\n", nlohmann::json{{"input", a.input}, {"shape", x->shape}, {"differential_entropy_bits", h},
                                        {"rows", rows}}.dump(2).c_str());
    return 0;
  }
  std::printf("%s %s: differential entropy %.3f bits (a Gaussian of the same variance: %.3f)\n\n", a.input.c_str(),
              x->ShapeString().c_str(), h, 0.5 * std::log2(2 * M_PI * std::exp(1.0) * variance));
  std::printf("%s\n", table.Render().c_str());
  std::printf("gaussian bound = rmse a Gaussian source of this variance allows at these bits; SLB = Shannon\n"
              "lower bound from the tensor's own differential entropy; gap bits = bits above the Gaussian bound.\n");
  if (!a.svg.empty()) std::printf("wrote %s\n", a.svg.c_str());
  return 0;
}

}  // namespace owf::cli
