// The owf subcommands. Each returns the process exit code: 0 success, 1 failure (message on
// stderr), never exits or throws on bad input.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace owf::cli {

struct MeasureArgs {
  std::string spec;
  std::string input;
  std::string tensor;  // a tensor of a model file (INPUT is then any model owf reads)
  std::string output;
  std::string importance;
  int threads = 0;
  bool json = false;
};

struct SynthArgs {
  std::string dist;
  std::string shape;
  std::string output;
  uint64_t seed = 1;
  float scale = 0.02f;
};

struct QuantiseArgs {
  std::string model;
  std::string format;
  std::string output;
  std::string rules;
  std::string report;
  std::string emit = "packed";
  double bits = 0;  // > 0: allocate element bits per tensor to this all-in budget
  std::string sensitivity;
  std::string importance;  // an owf imatrix file
  int threads = 0;
  bool json = false;
};

struct SweepArgs {
  std::vector<std::string> templates;  // specs with {b} for the bit width
  std::string input;
  std::string tensor;
  std::string bits = "2,3,4,5,6";
  std::string svg;
  int threads = 0;
  bool json = false;
};

struct EvalArgs {
  std::string reference, candidate, text, tokens;
  int generate = 0;
  uint64_t seed = 1;
  int context = 256;
  int max_sequences = 0;
  int threads = 0;
  std::string device = "cpu";  // or "cuda"
  bool json = false;
};

struct SensitivityArgs {
  std::string model, output;
  int generate = 4;
  int context = 128;
  int threads = 0;
};

struct ImatrixArgs {
  std::string model, output, text, tokens;
  int generate = 0;
  uint64_t seed = 1;
  int context = 256;
  int max_sequences = 0;
  int threads = 0;
  bool json = false;
};

int RunFormats(bool json);
int RunImatrix(const ImatrixArgs& args);
int RunSensitivity(const SensitivityArgs& args);
int RunEval(const EvalArgs& args);
int RunSweep(const SweepArgs& args);
int RunQuantise(const QuantiseArgs& args);
int RunDequantise(const std::string& packed, const std::string& output);
int RunSynth(const SynthArgs& args);
int RunFormat(const std::string& spec, bool json);
int RunMeasure(const MeasureArgs& args);
int RunDemo(bool json, int threads);
// Lists a model's tensors (shape, dtype, parameters; rms, absmax, excess kurtosis and fitted
// Student-t df of float tensors) and totals per dtype.
int RunInspect(const std::string& model, bool json, int threads);

}  // namespace owf::cli
