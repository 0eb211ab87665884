// owf eval on the GPU: see include/owf/cuda/evaluate.h.
#include "owf/cuda/evaluate.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <optional>
#include <random>
#include <sstream>

#include "owf/core/parallel.h"
#include "owf/cuda/kernels.h"
#include "owf/eval/kl.h"
#include "owf/model/tokenizer.h"

namespace owf::cuda {
namespace {

using Clock = std::chrono::steady_clock;

double Since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

// Adds to the phase of that name (phases repeat when sequences run in several chunks).
void AddPhase(std::vector<EvalPhase>& phases, const std::string& name, double seconds, int64_t tokens) {
  for (EvalPhase& p : phases) {
    if (p.name == name) {
      p.seconds += seconds;
      p.tokens += tokens;
      return;
    }
  }
  phases.push_back({name, seconds, tokens});
}

// Host memory for one chunk's reference logits: a quarter of what is available, 256 MiB to 16 GiB.
int64_t HostLogitsBudget() {
  int64_t available_kb = 0;
  std::ifstream meminfo("/proc/meminfo");
  for (std::string line; std::getline(meminfo, line);) {
    if (line.rfind("MemAvailable:", 0) == 0) {
      std::istringstream(line.substr(13)) >> available_kb;
      break;
    }
  }
  const int64_t quarter = available_kb > 0 ? available_kb * 1024 / 4 : int64_t{4} << 30;
  return std::clamp<int64_t>(quarter, int64_t{256} << 20, int64_t{16} << 30);
}

std::string Gib(int64_t bytes) {
  char s[32];
  std::snprintf(s, sizeof(s), "%.1f GiB", static_cast<double>(bytes) / (int64_t{1} << 30));
  return s;
}

std::string Describe(const char* which, const GpuTransformer& m) {
  const GpuLoadStats& s = m.load_stats();
  char line[256];
  std::snprintf(line, sizeof(line), "%s: %.2f GiB of weights on the GPU, %d matrices quantised, %d bf16 (%.1f s)",
                which, static_cast<double>(s.weight_bytes) / (1 << 30), s.quantised_matrices, s.dense_matrices,
                s.seconds);
  std::string out = line;
  for (const auto& [name, why] : s.fallbacks) out += "\n  " + name + " dequantised on the CPU: " + why;
  return out;
}

}  // namespace

Result<std::vector<std::vector<int>>> SampleSequencesOnGpu(GpuTransformer& model, int bos, int count, int length,
                                                           uint64_t seed, int threads) {
  if (count < 0 || length < 1) return InvalidArgument("sampling needs a count >= 0 and a length >= 1");
  // The CPU sampler's draws: one per token after BOS, sequence after sequence.
  std::mt19937_64 rng(seed);
  std::vector<std::vector<double>> draws(static_cast<size_t>(count), std::vector<double>(length - 1));
  for (auto& seq : draws) {
    for (double& u : seq) u = static_cast<double>(rng() >> 11) * 0x1p-53;
  }
  std::vector<std::vector<int>> seqs(static_cast<size_t>(count), std::vector<int>{std::max(bos, 0)});
  const int vocab = model.vocab_size();
  constexpr int kSlots = 64;
  for (int begin = 0; begin < count; begin += kSlots) {
    const int slots = std::min(kSlots, count - begin);
    OWF_RETURN_IF_ERROR(model.StartDecoding(slots, length));
    std::vector<int> last(static_cast<size_t>(slots));
    for (int step = 0; step + 1 < length; ++step) {
      for (int s = 0; s < slots; ++s) last[static_cast<size_t>(s)] = seqs[static_cast<size_t>(begin + s)].back();
      // logits (slots, vocab) after each sequence's last token.
      OWF_ASSIGN_OR_RETURN(const std::vector<float> logits, model.DecodeStep(last));
      ParallelFor(static_cast<size_t>(slots), threads, [&](size_t s) {
        const std::span<const float> row(logits.data() + s * static_cast<size_t>(vocab), static_cast<size_t>(vocab));
        seqs[begin + s].push_back(SampleToken(row, draws[begin + s][static_cast<size_t>(step)]));
      });
    }
  }
  return seqs;
}

Result<EvalResult> EvaluateOnGpu(const std::string& reference, const std::string& candidate, const EvalOptions& opt) {
  const auto start = Clock::now();
  std::string why;
  if (!Available(&why)) return Unsupported("--device cuda: " + why);
  if (opt.context < 2) return InvalidArgument("--ctx must be at least 2");
  EvalResult r;
  r.device = "cuda";

  // Both models' files and configs first (cheap): a mismatch fails before anything is loaded.
  auto t = Clock::now();
  OWF_ASSIGN_OR_RETURN(const std::unique_ptr<GpuModelFiles> ref_files, GpuModelFiles::Open(reference));
  OWF_ASSIGN_OR_RETURN(const std::unique_ptr<GpuModelFiles> cand_files, GpuModelFiles::Open(candidate));
  const int vocab = ref_files->model().config.vocab_size;
  if (cand_files->model().config.vocab_size != vocab) {
    return InvalidArgument("the models' vocabularies differ (" + std::to_string(vocab) + " vs " +
                           std::to_string(cand_files->model().config.vocab_size) + ")");
  }
  auto tokenizer = LoadTokenizer(ref_files->reader());
  if (!opt.text_file.empty() && !tokenizer.ok()) return tokenizer.status().WithContext("tokenizing --text");
  OWF_ASSIGN_OR_RETURN(std::vector<std::vector<int>> seqs,
                       ReadSequences(opt, tokenizer.ok() ? tokenizer->get() : nullptr, vocab));
  AddPhase(r.phases, "open files, read sequences", Since(t), 0);

  GpuTransformerOptions go;
  go.threads = opt.threads;
  go.max_batch_tokens = std::max(2048, opt.context);
  std::unique_ptr<GpuTransformer> ref, cand;
  auto load = [&](const GpuModelFiles& files, const char* which, std::unique_ptr<GpuTransformer>& slot) -> Status {
    const auto t0 = Clock::now();
    auto m = LoadGpuTransformer(files, go);
    if (!m.ok()) return m.status().WithContext(std::string("loading the ") + which + " on the GPU");
    slot = std::move(*m);
    AddPhase(r.phases, std::string("load ") + which, Since(t0), 0);
    return Status::Ok();
  };
  OWF_RETURN_IF_ERROR(load(*ref_files, "reference", ref));
  r.notes.push_back(Describe("reference", *ref));

  if (opt.tokens_file.empty() && opt.text_file.empty()) {
    const int n = opt.generate > 0 ? opt.generate : 8;
    const int bos = tokenizer.ok() ? (*tokenizer)->bos_id() : 1;
    t = Clock::now();
    OWF_ASSIGN_OR_RETURN(seqs, SampleSequencesOnGpu(*ref, bos, n, opt.context, opt.seed, opt.threads));
    AddPhase(r.phases, "generate (reference, batched decoding)", Since(t), int64_t{n} * (opt.context - 1));
  }
  if (opt.max_sequences > 0 && static_cast<int>(seqs.size()) > opt.max_sequences) {
    seqs.resize(static_cast<size_t>(opt.max_sequences));
  }
  if (seqs.empty()) return InvalidArgument("no sequences of at least 2 tokens to evaluate");
  int64_t total_positions = 0;
  for (const auto& s : seqs) total_positions += static_cast<int64_t>(s.size());

  // Does the candidate fit beside the reference? Its weights, plus activations and cache for one
  // batch, plus its largest matrix dequantised, with 10% and 1 GiB to spare.
  const TransformerConfig& cc = cand_files->model().config;
  const int64_t batch = std::min<int64_t>(go.max_batch_tokens, total_positions);
  const int64_t cand_bytes = cand_files->EstimateWeightBytes() +
                             EstimateScratchBytes(cc, batch, batch, int64_t{cc.vocab_size} * cc.dim);
  OWF_ASSIGN_OR_RETURN(const auto memory, DeviceMemory());
  const bool both = static_cast<double>(memory.first) > 1.1 * static_cast<double>(cand_bytes) + (int64_t{1} << 30);
  r.notes.push_back("candidate needs about " + Gib(cand_bytes) + ", " + Gib(memory.first) + " free: " +
                    (both ? "both models stay on the GPU" : "the models take turns"));

  // Chunks of sequences whose reference logits fit the host budget (at least one sequence each).
  const int64_t budget_rows = std::max<int64_t>(1, HostLogitsBudget() / (int64_t{vocab} * 4));
  std::vector<PositionStats> positions;
  std::vector<bool> has_target;
  bool described = false;
  positions.reserve(static_cast<size_t>(total_positions));
  for (size_t begin = 0; begin < seqs.size();) {
    size_t end = begin;
    int64_t rows = 0;
    while (end < seqs.size() && (end == begin || rows + static_cast<int64_t>(seqs[end].size()) <= budget_rows)) {
      rows += static_cast<int64_t>(seqs[end].size());
      ++end;
    }
    const std::span<const std::vector<int>> chunk(seqs.data() + begin, end - begin);
    const bool last_chunk = end == seqs.size();
    begin = end;

    // ref_logits, cand_logits (rows, vocab): every position of every sequence in the chunk.
    if (!ref) OWF_RETURN_IF_ERROR(load(*ref_files, "reference", ref));
    t = Clock::now();
    OWF_ASSIGN_OR_RETURN(const std::vector<float> ref_logits, ref->ForwardBatch(chunk));
    AddPhase(r.phases, "reference forward", Since(t), rows);
    if (!both) ref.reset();
    if (!cand) {
      OWF_RETURN_IF_ERROR(load(*cand_files, "candidate", cand));
      if (!described) r.notes.push_back(Describe("candidate", *cand));
      described = true;
    }
    t = Clock::now();
    OWF_ASSIGN_OR_RETURN(const std::vector<float> cand_logits, cand->ForwardBatch(chunk));
    AddPhase(r.phases, "candidate forward", Since(t), rows);
    if (!both && !last_chunk) cand.reset();

    // Per-position statistics, on the host in parallel (each position's own computation).
    t = Clock::now();
    std::vector<int> targets;
    for (const auto& seq : chunk) {
      for (size_t i = 0; i < seq.size(); ++i) targets.push_back(i + 1 < seq.size() ? seq[i + 1] : -1);
    }
    std::vector<PositionStats> chunk_stats(targets.size());
    ParallelFor(targets.size(), opt.threads, [&](size_t i) {
      const size_t off = i * static_cast<size_t>(vocab);
      chunk_stats[i] = ComparePosition(std::span<const float>(ref_logits.data() + off, static_cast<size_t>(vocab)),
                                       std::span<const float>(cand_logits.data() + off, static_cast<size_t>(vocab)),
                                       targets[i]);
    });
    for (size_t i = 0; i < targets.size(); ++i) {
      positions.push_back(chunk_stats[i]);
      has_target.push_back(targets[i] >= 0);
    }
    AddPhase(r.phases, "compare (host)", Since(t), 0);
  }

  r.report = Aggregate(positions, has_target);
  r.sequences = static_cast<int64_t>(seqs.size());
  r.seconds = Since(start);
  r.tokens_per_second = static_cast<double>(2 * total_positions) / std::max(r.seconds, 1e-9);
  if (tokenizer.ok()) r.sample_text = (*tokenizer)->Decode(seqs.front());
  return r;
}

}  // namespace owf::cuda
