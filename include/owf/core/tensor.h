// A dense fp32 tensor held in memory, C order. Quantisation views any tensor as a matrix
// (rows, cols): cols is the last axis (the input dimension of a weight), rows the product of the
// others; a 1-D tensor is one row.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "owf/core/memory.h"

namespace owf {

struct Tensor {
  std::vector<int64_t> shape;
  LargeVector<float> data;

  int64_t numel() const;
  int64_t cols() const { return shape.empty() ? 1 : shape.back(); }
  int64_t rows() const { return cols() == 0 ? 0 : numel() / cols(); }
  std::string ShapeString() const;  // "(256, 1024)"
};

}  // namespace owf
