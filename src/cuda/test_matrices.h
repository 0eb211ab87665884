// Quantised test matrices shared by the layout and kernel tests: real owf quantisation of
// synthetic Student-t weights with the given spec, and a view of it for TileForGpu.
#pragma once

#include <gtest/gtest.h>

#include <string>

#include "owf/cuda/layout.h"
#include "owf/formats/quantise.h"
#include "owf/stats/synthetic.h"

namespace owf::cuda::testing {

struct TestMatrix {
  std::string spec;
  int64_t rows = 0, cols = 0;
};

// Shapes that exercise partial tiles (rows % 16, cols % 64), partial scaling blocks, every code
// width 1..6, every scale format, 2-D scaling tiles, tensor scaling, no scaling and outliers.
inline std::vector<TestMatrix> AwkwardMatrices() {
  return {
      {"crd4(t,df=5)@64:absmax", 64, 256},
      {"crd4(normal)@64:absmax:bf16+outliers(0.01)", 37, 200},
      {"int2@16:absmax:fp16", 20, 96},
      {"crd3(laplace,mode=asym)@32:signmax:e4m3", 33, 160},
      {"crd3(laplace)@32:absmax:e8m0", 35, 160},
      {"crd5(t,df=7)@128:absmax:e4m3", 48, 384},
      {"crd6(normal)@256:absmax:fp32", 17, 512},
      {"nf4@4x32:absmax", 30, 128},
      {"e2m1@tensor:absmax", 24, 80},
      {"lut(-1,1)@channel:absmax", 19, 48},
      {"int4@48:absmax+outliers(0.02,fp32)", 40, 144},
      // Block widths the small-batch kernels do not take with 5-6 bit codes: the split-K GEMM's
      // per-code lookup (PairTerms), at every batch.
      {"crd5(t,df=7)@48:absmax", 36, 240},
      {"crd6(normal)@192:absmax:fp32", 33, 384},
  };
}

inline Result<QuantisedTensor> Quantise(const TestMatrix& m, uint64_t seed = 7) {
  OWF_ASSIGN_OR_RETURN(FormatSpec spec, ParseSpec(m.spec));
  const Tensor x = SyntheticTensor(Distribution::kStudentT, 5, m.rows, m.cols, seed);
  return QuantiseTensor(spec, x, QuantiseOptions{1, nullptr});
}

inline QuantisedMatrixView ViewOf(const QuantisedTensor& q) {
  QuantisedMatrixView v;
  v.codebook = q.element.centroids();
  v.geometry = q.geometry;
  if (q.spec.scaling) v.scale_format = q.spec.scaling->format;
  v.scales = q.scales;
  v.codes = std::span<const uint16_t>(q.codes.data(), q.codes.size());
  v.outlier_indices = q.outlier_indices;
  v.outlier_values = q.outlier_values;
  v.rotation_seed = q.rotation_seed;
  return v;
}

}  // namespace owf::cuda::testing
