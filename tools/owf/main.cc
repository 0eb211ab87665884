// owf: design low-bit number formats for LLM weights, quantise, and measure the cost.
#include <CLI/CLI.hpp>
#include <cstdio>
#include <string>
#include <vector>

#include "commands.h"

int main(int argc, char** argv) {
  // `owf help <command>` is `owf <command> --help`.
  std::vector<char*> args(argv, argv + argc);
  static char help_flag[] = "--help";
  if (argc >= 2 && std::string(argv[1]) == "help") {
    args.erase(args.begin() + 1);
    args.push_back(help_flag);
  }
  argc = static_cast<int>(args.size());
  argv = args.data();
  CLI::App app{
      "owf: optimal weight formats. Design low-bit number formats for LLM weights (cube-root-density\n"
      "codebooks, block scaling, outliers, entropy coding), quantise tensors, and measure the cost."};
  app.require_subcommand(0, 1);
  bool json = false;
  int threads = 0;

  auto* formats = app.add_subcommand("formats", "List element formats, scalings and modifiers");
  formats->add_flag("--json", json, "Machine-readable output");

  std::string spec;
  auto* format = app.add_subcommand("format", "Show a spec's canonical form, bits per element and codebook");
  format->add_option("SPEC", spec, "Format spec, e.g. 'crd4(t,df=7)@64:absmax:bf16'")->required();
  format->add_flag("--json", json, "Machine-readable output");

  owf::cli::MeasureArgs measure_args;
  auto* measure = app.add_subcommand("measure", "Quantise one tensor (.npy) and report error, bits and time");
  measure->add_option("SPEC", measure_args.spec, "Format spec, e.g. 'nf4@64:absmax'")->required();
  measure->add_option("INPUT", measure_args.input, "Tensor file (.npy: float16/32/64, any rank), or a model with --tensor")->required();
  measure->add_option("--tensor", measure_args.tensor, "Measure this tensor of a model file (gguf, safetensors, directory)");
  measure->add_option("-o,--output", measure_args.output, "Write the dequantised tensor (float32 .npy)");
  measure->add_option("--importance", measure_args.importance,
                      "Per-element importance weights (.npy, same shape) for +search and lloyd");
  measure->add_option("--threads", measure_args.threads, "Worker threads (0 = all cores)")->check(CLI::NonNegativeNumber);
  measure->add_flag("--json", measure_args.json, "Machine-readable output");

  auto* demo = app.add_subcommand("demo",
                                  "Design the paper's formats for normal, Laplace and Student-t data at 3-5 bits\n"
                                  "and print a rate-distortion table with each format's gap to the Shannon bound");
  demo->add_flag("--json", json, "Machine-readable output");
  demo->add_option("--threads", threads, "Worker threads (0 = all cores)")->check(CLI::NonNegativeNumber);

  std::string model;
  auto* inspect = app.add_subcommand("inspect", "List a model's tensors with shape, dtype and weight statistics\n"
                                                "(rms, absmax, excess kurtosis, fitted Student-t df), and totals per dtype");
  inspect->add_option("MODEL", model, "Model: .gguf, .safetensors (or its index), a model directory, or .npy")
      ->required();
  inspect->add_flag("--json", json, "Machine-readable output");
  inspect->add_option("--threads", threads, "Worker threads (0 = all cores)")->check(CLI::NonNegativeNumber);

  owf::cli::SweepArgs sw;
  auto* sweep = app.add_subcommand("sweep", "Rate-distortion curves of several formats on one tensor, with Shannon bounds");
  sweep->add_option("INPUT", sw.input, "Tensor (.npy), or a model with --tensor")->required();
  sweep->add_option("-f,--format", sw.templates,
                    "Spec template with {b} for the bits, repeatable (default: int, crd(t), lloyd, grid+entropy)");
  sweep->add_option("--bits", sw.bits, "Comma-separated bit widths (default 2,3,4,5,6)");
  sweep->add_option("--tensor", sw.tensor, "Tensor of a model file");
  sweep->add_option("--svg", sw.svg, "Also draw the curves to this SVG file");
  sweep->add_option("--threads", sw.threads, "Worker threads (0 = all cores)")->check(CLI::NonNegativeNumber);
  sweep->add_flag("--json", sw.json, "Machine-readable output");

  owf::cli::EvalArgs ev;
  auto* eval = app.add_subcommand("eval", "KL divergence of a candidate model's next-token distributions from a reference's");
  eval->add_option("--reference", ev.reference, "Reference model (GGUF, safetensors, HF directory)")->required();
  eval->add_option("--candidate", ev.candidate, "Candidate model (same, or an owf packed file)")->required();
  eval->add_option("--text", ev.text, "Text file: tokenised, cut into --ctx chunks with BOS");
  eval->add_option("--tokens", ev.tokens, "JSON list of token-id lists, evaluated as given (no BOS added)");
  eval->add_option("--generate", ev.generate, "Evaluate on N sequences sampled from the reference (default 8)");
  eval->add_option("--seed", ev.seed, "Sampling seed for --generate");
  eval->add_option("--ctx", ev.context, "Tokens per sequence (default 256)");
  eval->add_option("--max-sequences", ev.max_sequences, "Evaluate at most this many sequences");
  eval->add_option("--threads", ev.threads, "Worker threads (0 = all cores)")->check(CLI::NonNegativeNumber);
  eval->add_option("--device", ev.device, "cpu (default) or cuda: run both models on the GPU")
      ->check(CLI::IsMember({"cpu", "cuda"}));
  eval->add_flag("--json", ev.json, "Machine-readable output");

  owf::cli::SensitivityArgs sa;
  auto* sens = app.add_subcommand("sensitivity", "Per-tensor Fisher information from the KL that small noise causes");
  sens->add_option("MODEL", sa.model, "Model")->required();
  sens->add_option("-o,--output", sa.output, "Output JSON (for owf quantise --bits --sensitivity)")->required();
  sens->add_option("--generate", sa.generate, "Sequences sampled from the model (default 4)");
  sens->add_option("--ctx", sa.context, "Tokens per sequence (default 128)");
  sens->add_option("--threads", sa.threads, "Worker threads (0 = all cores)")->check(CLI::NonNegativeNumber);

  owf::cli::ImatrixArgs ia;
  auto* imatrix = app.add_subcommand("imatrix", "Mean square of each linear weight's input columns over data (for quantise --importance)");
  imatrix->add_option("MODEL", ia.model, "Model (GGUF, safetensors, HF directory)")->required();
  imatrix->add_option("-o,--output", ia.output, "Output imatrix (.safetensors: one F32 vector per weight)")->required();
  imatrix->add_option("--text", ia.text, "Text file: tokenised, cut into --ctx chunks with BOS");
  imatrix->add_option("--tokens", ia.tokens, "JSON list of token-id lists, used as given");
  imatrix->add_option("--generate", ia.generate, "Use N sequences sampled from the model (default 8)");
  imatrix->add_option("--seed", ia.seed, "Sampling seed for --generate");
  imatrix->add_option("--ctx", ia.context, "Tokens per sequence (default 256)");
  imatrix->add_option("--max-sequences", ia.max_sequences, "Use at most this many sequences");
  imatrix->add_option("--threads", ia.threads, "Worker threads (0 = all cores)")->check(CLI::NonNegativeNumber);
  imatrix->add_flag("--json", ia.json, "Machine-readable output");

  owf::cli::QuantiseArgs qa;
  auto* quantise = app.add_subcommand("quantise", "Quantise a whole model (safetensors file/shards/directory, GGUF, .npy)");
  quantise->alias("quantize");
  quantise->add_option("MODEL", qa.model, "Model: .gguf, .safetensors (or its index), a model directory, or .npy")
      ->required();
  quantise->add_option("-f,--format", qa.format, "Spec for every selected tensor (2-D weights), e.g. 'crd4(t)@64:absmax+search'");
  quantise->add_option("-o,--output", qa.output, "Output file (or directory for a sharded --emit fake)")->required();
  quantise->add_option("--rules", qa.rules, "JSON rules: {\"default\": SPEC, \"<glob>\": SPEC | \"keep\"}");
  quantise->add_option("--emit", qa.emit, "packed (owf container, default) or fake (dequantised copy in the source format)");
  quantise->add_option("--bits", qa.bits, "Allocate element bits per tensor so the model's all-in bits/param hit this");
  quantise->add_option("--sensitivity", qa.sensitivity, "Per-tensor Fisher (owf sensitivity -o S.json) for --bits");
  quantise->add_option("--importance", qa.importance,
                       "Imatrix (owf imatrix -o I.safetensors): minimise each tensor's activation-weighted error");
  quantise->add_option("--report", qa.report, "Write the per-tensor report as JSON");
  quantise->add_option("--threads", qa.threads, "Worker threads (0 = all cores)")->check(CLI::NonNegativeNumber);
  quantise->add_flag("--json", qa.json, "Print the report as JSON");

  std::string packed_in, deq_out;
  auto* dequantise = app.add_subcommand("dequantise", "Rebuild the dequantised model (as --emit fake) from a packed file");
  dequantise->alias("dequantize");
  dequantise->add_option("PACKED", packed_in, "owf packed container")->required();
  dequantise->add_option("-o,--output", deq_out, "Output file or directory")->required();

  owf::cli::SynthArgs synth_args;
  auto* synth = app.add_subcommand("synth", "Write a synthetic iid tensor (.npy) to try formats on");
  synth->add_option("DIST", synth_args.dist, "normal, laplace or t<df> (e.g. t4)")->required();
  synth->add_option("SHAPE", synth_args.shape, "ROWSxCOLS, e.g. 4096x4096")->required();
  synth->add_option("-o,--output", synth_args.output, "Output .npy")->required();
  synth->add_option("--seed", synth_args.seed, "Random seed");
  synth->add_option("--scale", synth_args.scale, "Standard deviation");

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  if (*formats) return owf::cli::RunFormats(json);
  if (*format) return owf::cli::RunFormat(spec, json);
  if (*measure) return owf::cli::RunMeasure(measure_args);
  if (*sens) return owf::cli::RunSensitivity(sa);
  if (*imatrix) return owf::cli::RunImatrix(ia);
  if (*eval) return owf::cli::RunEval(ev);
  if (*sweep) return owf::cli::RunSweep(sw);
  if (*quantise) return owf::cli::RunQuantise(qa);
  if (*dequantise) return owf::cli::RunDequantise(packed_in, deq_out);
  if (*synth) return owf::cli::RunSynth(synth_args);
  if (*demo) return owf::cli::RunDemo(json, threads);
  if (*inspect) return owf::cli::RunInspect(model, json, threads);
  std::fputs(app.help().c_str(), stdout);
  return 0;
}
