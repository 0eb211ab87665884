// `owf eval`: run a reference and a candidate model over the same token sequences and compare
// their next-token distributions (owf/eval/kl.h).
#pragma once

#include <cstdint>
#include <span>
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
  std::string device = "cpu";  // "cpu": Evaluate; "cuda": owf::cuda::EvaluateOnGpu (owf/cuda/evaluate.h)
};

// Where the time went (the GPU evaluation reports its phases).
struct EvalPhase {
  std::string name;
  double seconds = 0;
  int64_t tokens = 0;  // tokens run through a model in this phase (0: not a forward phase)
};

struct EvalResult {
  KlReport report;
  int64_t sequences = 0;
  double seconds = 0;
  double tokens_per_second = 0;  // model forward passes (both models) per second
  std::string sample_text;       // first sequence, decoded (generated or given)
  std::string device = "cpu";
  std::vector<EvalPhase> phases;  // GPU evaluation: loading, generation, forward passes, comparison
  std::vector<std::string> notes;  // GPU evaluation: what went to the GPU in which form
};

class Transformer;

// `count` sequences of `length` tokens sampled at temperature 1 from `model`, each starting
// with `bos` (clamped to >= 0), from one generator seeded with `seed`: deterministic.
std::vector<std::vector<int>> SampleSequences(Transformer& model, int bos, int count, int length, uint64_t seed);

// One token drawn at temperature 1 from `logits` with u uniform in [0, 1): the first token at
// which the running sum of exp(logit - max) (double, in vocabulary order) exceeds u times the
// total. SampleSequences' step: it draws u = (rng() >> 11) * 2^-53 once per token.
int SampleToken(std::span<const float> logits, double u);

class Tokenizer;
// The sequences of options.tokens_file, or of options.text_file tokenised with `tokenizer` (which
// must then be given) and cut into --ctx chunks after BOS; none when neither file is given
// (the caller samples). Not cut to max_sequences.
Result<std::vector<std::vector<int>>> ReadSequences(const EvalOptions& options, const Tokenizer* tokenizer, int vocab);

// The token sequences `options` ask for (tokens file, text file or --generate from `model`,
// whose file `reader` supplies the tokenizer), cut to max_sequences. For eval and imatrix.
class ModelReader;
Result<std::vector<std::vector<int>>> MakeSequences(const ModelReader& reader, Transformer& model,
                                                    const EvalOptions& options);

// Models are anything owf reads (GGUF, safetensors, HF directory) or owf packed files, which are
// dequantised (to a temporary file) on load.
Result<EvalResult> Evaluate(const std::string& reference, const std::string& candidate, const EvalOptions& options);

}  // namespace owf
