// owf imatrix: see owf/eval/imatrix.h.
#include "owf/eval/imatrix.h"

#include <map>
#include <vector>

#include "owf/io/model.h"
#include "owf/model/transformer.h"

namespace owf {

Result<Imatrix> CollectImatrix(const std::string& path, const EvalOptions& options) {
  OWF_ASSIGN_OR_RETURN(auto reader, OpenModel(path));
  auto loaded = LoadTransformer(*reader, options.threads);
  if (!loaded.ok()) return loaded.status().WithContext(path);
  Transformer& model = **loaded;
  OWF_ASSIGN_OR_RETURN(auto seqs, MakeSequences(*reader, model, options));

  // Per weight: the sum of squares of each input column (double, in token order: the same
  // result for any thread count) and how many inputs were seen.
  struct Sums {
    std::vector<double> sq;
    int64_t count = 0;
  };
  std::map<std::string, Sums> sums;
  model.set_observer([&](const std::string& name, std::span<const float> input) {
    Sums& s = sums[name];
    if (s.sq.empty()) s.sq.assign(input.size(), 0.0);
    for (size_t c = 0; c < input.size(); ++c) s.sq[c] += static_cast<double>(input[c]) * input[c];
    ++s.count;
  });
  Imatrix m;
  m.model = path;
  for (const auto& seq : seqs) {
    OWF_ASSIGN_OR_RETURN(auto logits, model.ForwardSequence(seq));
    m.tokens += static_cast<int64_t>(seq.size());
  }
  model.set_observer({});
  m.sequences = static_cast<int64_t>(seqs.size());
  for (const auto& [name, s] : sums) {
    std::vector<float>& col = m.columns[name];
    col.resize(s.sq.size());
    for (size_t c = 0; c < col.size(); ++c) col[c] = static_cast<float>(s.sq[c] / static_cast<double>(s.count));
  }
  return m;
}

}  // namespace owf
