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
//
// Details (reference-spec.md section 2.3; matches golden.json's "crd..." codebooks to 1e-6):
//  - the probability grid is the reference's fp32 torch.linspace grid, reproduced bit for bit
//    (heavy-tailed rms designs depend on its last bit); quantiles are evaluated in fp64;
//  - p = 1/2 gives exactly 0, and block designs' grid ends p = 0 / 1 give exactly -1 / +1;
//  - power = 0 gives the uniform table 2p - 1 (block ranges only);
//  - also rejected: levels > 2^20, repeat_zero with levels < 4 (degenerate), normal / t block
//    designs with block_size < 4 (the expected absmax uses ln(B/pi)), non-finite or negative
//    power or df, and designs whose extreme centroids overflow double.
Result<std::vector<double>> CrdCodebook(const CrdDesign& design);

}  // namespace owf
