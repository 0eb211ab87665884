// Cube-root-density (CRD) codebooks: Panter-Dite's MSE-optimal fixed-length centroid density
// is proportional to pdf^(1/3); generalised to pdf^power. Centroids are the quantiles of the
// density pdf^power (itself a distribution of the same family) at a probability grid chosen by
// (mode, range). reference-spec.md section 2.3 defines every case exactly.
#pragma once

#include <cstdint>
#include <vector>

#include "owf/core/status.h"

namespace owf {

enum class Distribution { kNormal, kLaplace, kStudentT };
enum class CrdMode { kSymmetric, kAsymmetric, kRepeatZero };
// What the codebook is normalised to:
//  kRms:     unit-RMS data, unbounded (the reference's crd_normal / crd_laplace / crd_t);
//  kAbsmax:  data divided by its block absmax: truncated design on [-1, 1] for block_size;
//  kSignmax: like kAbsmax, the block's largest-magnitude value lands on +1 exactly.
enum class CrdRange { kRms, kAbsmax, kSignmax };

struct CrdDesign {
  Distribution dist = Distribution::kNormal;
  double df = 0;  // Student-t degrees of freedom (real-valued), only for kStudentT
  CrdMode mode = CrdMode::kSymmetric;
  CrdRange range = CrdRange::kRms;
  double power = 1.0 / 3.0;  // density exponent alpha; 1/3 = Panter-Dite, 1 = quantiles
  int levels = 16;           // number of centroids n (even for asymmetric / repeat-zero modes)
  int64_t block_size = 64;   // elements per block; used by kAbsmax / kSignmax only
};

// The sorted centroids (ascending, double precision). Errors (InvalidArgument) name the problem:
// unsupported (mode, range) combinations (e.g. symmetric + signmax), power <= 0 with kRms,
// df too small (needs df > 2 and df' = power*(df+1) - 1 > 0), levels < 2, odd levels where the
// mode needs even, block_size < 2.
Result<std::vector<double>> CrdCodebook(const CrdDesign& design);

}  // namespace owf
