// Internal: block scale computation shared by the quantiser and the fitters.
#pragma once

#include <cstdint>
#include <vector>

#include "owf/formats/quantise.h"

namespace owf {

// Rows handled per parallel work item: depends only on the shape (deterministic output).
int64_t RowsPerChunk(int64_t cols);

// One quantised scale per block. lo/hi: the element format's range (absmax maps the block max
// to min(-lo, hi); signmax maps the block's largest-magnitude value to the long side).
std::vector<float> ComputeScales(const float* x, const BlockGeometry& g, ScaleKind kind, float lo,
                                 float hi, ScaleFormat format, int threads);

}  // namespace owf
