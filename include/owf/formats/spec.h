// The format spec grammar (design.md): a stable, user-facing text form of every format.
//
//   spec     = element [ "@" scaling ] *( "+" modifier )
//   element  = int<b>[(sym)] | e<E>m<M>[(rn|rz|ri)] | nf4 | sf4 | lut(v,...)
//            | crd<b>(dist[,df=][,mode=][,power=]) | lloyd<b> | grid(<b>) | bf16 | fp16 | fp32
//   scaling  = (tensor | channel | <n> | <r>x<c>) ":" (absmax | signmax | rms | opt | optmin)
//              [":" scalefmt] ["/" <m> (":u" | ":h") <b> [":u" <b>]]  (two-level: sub-blocks of m)
//   modifier = search | rotate(hadamard[,<seed>]) | outliers(<fraction>[,bf16|fp16|fp32])
//            | entropy(ideal|huffman|rans)
//
// Every FormatSpec has one canonical printed form (ToString) that parses back to an equal spec.
// Preset names (fixed2 ... fixed8, see Presets()) parse as the full spec they stand for; a preset
// may be followed by modifiers ("fixed4+rotate(hadamard)").
#pragma once

#include <compare>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "owf/core/status.h"
#include "owf/stats/crd.h"

namespace owf {

enum class ElementFamily {
  kInt,    // int<b>, int<b>(sym): integer grid with round(2^b) levels
  kFloat,  // e<E>m<M>: ExMy float without inf/NaN codes
  kNf4,    // QLoRA NormalFloat4 table
  kSf4,    // Student-t (df=5) float4 table
  kLut,    // explicit codebook
  kCrd,    // cube-root-density codebook
  kLloyd,  // Lloyd-Max codebook trained on the tensor
  kGrid,   // uniform grid sized for an entropy-coded bit budget
  kBf16,
  kFp16,
  kFp32,
};

enum class Rounding { kNearest, kToZero, kToInf };  // rn (ties toward zero), rz, ri

struct ElementSpec {
  ElementFamily family = ElementFamily::kInt;
  double bits = 4;         // int, crd, lloyd, grid
  bool symmetric = false;  // int(sym)
  int exponent_bits = 2;   // e<E>m<M>
  int mantissa_bits = 1;
  Rounding rounding = Rounding::kNearest;
  Distribution dist = Distribution::kNormal;  // crd
  std::optional<double> df;                   // crd(t): absent = chosen per tensor
  CrdMode mode = CrdMode::kSymmetric;
  double power = 1.0 / 3.0;
  std::vector<double> lut;  // lut(...), sorted ascending

  bool operator==(const ElementSpec&) const = default;
};

enum class BlockKind { kTensor, kChannel, kBlock };  // kBlock: block_rows x block_cols
// kOpt: each block's scale minimises the block's squared error for the codebook (search plus
// least-squares refit). kOptMin: value = code * scale - min, scale and min both fitted (affine).
enum class ScaleKind { kAbsmax, kSignmax, kRms, kOpt, kOptMin };
enum class ScaleFormat { kBf16, kFp16, kFp32, kE8m0, kE4m3 };

struct ScalingSpec {
  BlockKind block = BlockKind::kTensor;
  int64_t block_rows = 1;  // kBlock only ("<n>" means 1 x n)
  int64_t block_cols = 0;
  ScaleKind kind = ScaleKind::kAbsmax;
  ScaleFormat format = ScaleFormat::kBf16;
  // Two-level scales ("@256:opt:fp16/32:u6"): the block above is a super-block with one scale
  // (and, for optmin, one min scale) in `format`; each 1 x sub_block sub-block stores a
  // sub_bits-bit unsigned integer q and its scale is the super-block's times q ("u<b>") or times
  // q + 2^b ("h<b>": the top half of a (b+1)-bit grid, for sub-scales within 2x of the largest)
  // or times q + 2^(b-1) ("m<b>": for b = 3, 4 .. 11, a wider range than h<b> at finer steps than u<b>),
  // and a min_bits-bit multiplier of the min scale (optmin, "u<b>"). sub_block == 0: single level.
  int64_t sub_block = 0;
  int sub_bits = 0;
  bool sub_high = false;
  bool sub_mid = false;
  int min_bits = 0;

  bool two_level() const { return sub_block > 0; }
  // What the stored sub-scale multiplier q is offset by: 2^b (h<b>), 2^(b-1) (m<b>) or 0 (u<b>).
  int sub_offset() const { return sub_high ? 1 << sub_bits : sub_mid && sub_bits > 0 ? 1 << (sub_bits - 1) : 0; }
  bool optimised() const { return kind == ScaleKind::kOpt || kind == ScaleKind::kOptMin; }
  bool with_min() const { return kind == ScaleKind::kOptMin; }
  bool operator==(const ScalingSpec&) const = default;
};

// Scale bits per element of a 1 x n (or r x c) blocked scaling when the tensor's rows are a
// multiple of the (super-)block: scales, sub-scales and minima. nullopt for tensor / channel.
std::optional<double> ScaleBitsPerElement(const ScalingSpec& scaling);

struct OutlierSpec {
  double fraction = 0;                       // of all elements, kept at higher precision
  ElementFamily format = ElementFamily::kBf16;  // bf16, fp16 or fp32
  bool operator==(const OutlierSpec&) const = default;
};

enum class EntropyCoding { kNone, kIdeal, kHuffman, kRans };

struct FormatSpec {
  ElementSpec element;
  std::optional<ScalingSpec> scaling;  // absent: elements are applied to the raw values
  bool search = false;
  std::optional<uint64_t> rotate_seed;  // +rotate(hadamard[,seed]): randomised Hadamard rotation
  std::optional<OutlierSpec> outliers;
  EntropyCoding entropy = EntropyCoding::kNone;

  bool operator==(const FormatSpec&) const = default;
};

// Parses a spec. Errors are InvalidArgument with a message like
//   "spec 'crd4(t,df=x)': at column 12: expected a number after 'df='"
// followed by the spec and a caret line pointing at the offending character.
Result<FormatSpec> ParseSpec(std::string_view text);

// The canonical text form: explicit scale format, modifiers in the order search, rotate,
// outliers, entropy; numbers in their shortest round-trip form.
std::string ToString(const FormatSpec& spec);
std::string ToString(const ElementSpec& element);
std::string ToString(const ScalingSpec& scaling);

// Name tables shared by the parser, the printer and `owf formats`.
const char* ScaleFormatName(ScaleFormat f);
std::optional<ScaleFormat> ScaleFormatFromName(std::string_view name);
int ScaleFormatBits(ScaleFormat f);
const char* ScaleKindName(ScaleKind k);
const char* DistributionName(Distribution d);
const char* CrdModeName(CrdMode m);
std::string FormatNumber(double v);  // shortest text that parses back to v

// One row per element family / scaling / modifier, for `owf formats` and `owf help`.
struct SyntaxEntry {
  const char* syntax;
  const char* description;
};
const std::vector<SyntaxEntry>& ElementSyntax();
const std::vector<SyntaxEntry>& ScalingSyntax();
const std::vector<SyntaxEntry>& ModifierSyntax();

// Named fixed-length presets: every block decodes on its own (fixed-width codes, per-block
// scales). `spec` is the full canonical spec the name stands for; `compare` names the ggml type of
// the same all-in bits per weight that it is meant to beat.
struct Preset {
  const char* name;
  const char* spec;
  const char* compare;
};
const std::vector<Preset>& Presets();

}  // namespace owf
