// `owf eval --device cuda`: owf eval (owf/eval/evaluate.h) with both models on the GPU
// (owf/cuda/forward.h). Same sequences, same per-position statistics (ComparePosition on the
// host, in parallel over positions) and the same report; phases timed.
//
// Memory: the reference loads first (and samples the --generate sequences). The candidate stays
// beside it when the device has room for its weights and scratch (estimated from its files);
// otherwise the reference is freed first. Sequences run in chunks whose reference logits fit in a
// quarter of the host's available memory (at most 16 GiB); each chunk runs the reference, keeps
// its logits on the host, runs the candidate and compares. Models that do not fit together are
// reloaded per chunk, so one chunk (the usual case) loads each model once.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "owf/core/status.h"
#include "owf/cuda/forward.h"
#include "owf/eval/evaluate.h"

namespace owf::cuda {

Result<EvalResult> EvaluateOnGpu(const std::string& reference, const std::string& candidate,
                                 const EvalOptions& options);

// SampleSequences (owf/eval/evaluate.h) on the GPU: the same uniform draws from the same
// generator, in the same order (one per token, sequence after sequence), used by SampleToken;
// the sequences are decoded up to 64 at a time with the key-value cache. The same as the CPU's
// wherever the two models' logits agree closely enough not to move a draw across a token boundary.
Result<std::vector<std::vector<int>>> SampleSequencesOnGpu(GpuTransformer& model, int bos, int count, int length,
                                                           uint64_t seed, int threads = 0);

}  // namespace owf::cuda
