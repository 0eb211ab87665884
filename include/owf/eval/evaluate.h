// `owf eval`: run a reference and a candidate model over the same token sequences and compare
// their next-token distributions (owf/eval/kl.h).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "owf/core/status.h"
#include "owf/eval/kl.h"

namespace owf {

struct EvalOptions {
  std::string text_file;    // tokenised with the reference's tokenizer, BOS before each chunk
  std::string tokens_file;  // JSON list of token-id lists, evaluated as given
  int generate = 0;         // sample this many sequences from the reference (seeded)
  uint64_t seed = 1;
  int context = 256;        // tokens per sequence (text chunks and generated sequences)
  int max_sequences = 0;    // 0 = all
  int threads = 0;
};

struct EvalResult {
  KlReport report;
  int64_t sequences = 0;
  double seconds = 0;
  double tokens_per_second = 0;  // model forward passes (both models) per second
  std::string sample_text;       // first sequence, decoded (generated or given)
};

class Transformer;

// `count` sequences of `length` tokens sampled at temperature 1 from `model`, each starting
// with `bos` (clamped to >= 0), from one generator seeded with `seed`: deterministic.
std::vector<std::vector<int>> SampleSequences(Transformer& model, int bos, int count, int length, uint64_t seed);

// The token sequences `options` ask for (tokens file, text file or --generate from `model`,
// whose file `reader` supplies the tokenizer), cut to max_sequences. For eval and imatrix.
class ModelReader;
Result<std::vector<std::vector<int>>> MakeSequences(const ModelReader& reader, Transformer& model,
                                                    const EvalOptions& options);

// Models are anything owf reads (GGUF, safetensors, HF directory) or owf packed files, which are
// dequantised (to a temporary file) on load.
Result<EvalResult> Evaluate(const std::string& reference, const std::string& candidate, const EvalOptions& options);

}  // namespace owf
