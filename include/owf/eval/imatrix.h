// `owf imatrix`: data-aware importance. Runs the model over token sequences (as owf eval
// chooses them) with an observer on the forward pass and averages, for every linear weight
// (q, k, v, o, gate, up, down of every layer, and the output head), the square of each input
// column's activation over every position. Embedding lookups multiply no activation, so the
// embedding gets no entry, except in a tied model, where it is the output head and gets the
// head's. The file is described in owf/quantize/importance.h.
#pragma once

#include <string>

#include "owf/core/status.h"
#include "owf/eval/evaluate.h"
#include "owf/quantize/importance.h"

namespace owf {

// `options` picks the sequences (text, tokens or generate; context; max_sequences; threads).
Result<Imatrix> CollectImatrix(const std::string& model, const EvalOptions& options);

}  // namespace owf
