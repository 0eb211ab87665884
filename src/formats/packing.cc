#include "owf/formats/packing.h"

#include <cmath>
#include <cstring>

#include "owf/core/numeric.h"
#include "owf/formats/quantise.h"
#include "opt_scale.h"

namespace owf {

int64_t CodePacking::PackedBytes(int64_t count) const {
  const int64_t groups = (count + group - 1) / group;
  return (groups * group_bits + 7) / 8;
}

CodePacking ChoosePacking(int64_t levels) {
  CodePacking best{levels, 1, 0};
  double best_rate = INFINITY;
  unsigned __int128 power = 1;
  for (int g = 1; g <= 64; ++g) {
    power *= static_cast<unsigned __int128>(levels);
    if (power > (static_cast<unsigned __int128>(1) << 64)) break;
    // Bits to hold values 0 .. levels^g - 1.
    int bits = 0;
    for (unsigned __int128 v = power - 1; v > 0; v >>= 1) ++bits;
    bits = std::max(bits, 1);
    const double rate = static_cast<double>(bits) / g;
    if (rate < best_rate - 1e-12) {
      best_rate = rate;
      best.group = g;
      best.group_bits = bits;
    }
  }
  return best;
}

LargeVector<uint8_t> PackCodes(std::span<const uint16_t> codes, const CodePacking& p) {
  const int64_t count = static_cast<int64_t>(codes.size());
  LargeVector<uint8_t> out(static_cast<size_t>(p.PackedBytes(count)));
  if (!out.empty()) std::memset(out.data(), 0, out.size());  // data() may be null when empty
  if (p.group == 1 && p.group_bits <= 8 && 8 % p.group_bits == 0) {
    // Whole codes per byte (1, 2, 4 or 8 bits): the same stream, without the general machinery.
    const int per_byte = 8 / p.group_bits;
    for (int64_t i = 0; i < count; ++i)
      out[static_cast<size_t>(i / per_byte)] |= static_cast<uint8_t>(codes[static_cast<size_t>(i)] << ((i % per_byte) * p.group_bits));
    return out;
  }
  unsigned __int128 acc = 0;
  int acc_bits = 0;
  size_t pos = 0;
  for (int64_t start = 0; start < count; start += p.group) {
    uint64_t value = 0, radix = 1;
    for (int j = 0; j < p.group; ++j) {
      const uint64_t code = start + j < count ? codes[static_cast<size_t>(start + j)] : 0;
      value += code * radix;
      radix *= static_cast<uint64_t>(p.levels);  // may wrap on the last step: unused then
    }
    acc |= static_cast<unsigned __int128>(value) << acc_bits;
    acc_bits += p.group_bits;
    while (acc_bits >= 8) {
      out[pos++] = static_cast<uint8_t>(acc);
      acc >>= 8;
      acc_bits -= 8;
    }
  }
  if (acc_bits > 0) out[pos++] = static_cast<uint8_t>(acc);
  return out;
}

Result<LargeVector<uint16_t>> UnpackCodes(std::span<const uint8_t> bytes, int64_t count, const CodePacking& p) {
  if (p.levels < 1 || p.levels > 65536 || p.group < 1 || p.group_bits < 1 || p.group_bits > 64)
    return InvalidData("bad code packing (levels " + std::to_string(p.levels) + ", group " +
                       std::to_string(p.group) + ", bits " + std::to_string(p.group_bits) + ")");
  if (count < 0 || static_cast<int64_t>(bytes.size()) != p.PackedBytes(count))
    return InvalidData("packed codes are " + std::to_string(bytes.size()) + " bytes, " + std::to_string(count) +
                       " codes need " + std::to_string(p.PackedBytes(count)));
  LargeVector<uint16_t> codes(static_cast<size_t>(count));
  unsigned __int128 acc = 0;
  int acc_bits = 0;
  size_t pos = 0;
  const uint64_t mask = p.group_bits == 64 ? ~uint64_t{0} : (uint64_t{1} << p.group_bits) - 1;
  for (int64_t start = 0; start < count; start += p.group) {
    while (acc_bits < p.group_bits) {
      acc |= static_cast<unsigned __int128>(pos < bytes.size() ? bytes[pos] : 0) << acc_bits;
      ++pos;
      acc_bits += 8;
    }
    uint64_t value = static_cast<uint64_t>(acc) & mask;
    acc >>= p.group_bits;
    acc_bits -= p.group_bits;
    for (int j = 0; j < p.group; ++j) {
      const uint64_t code = value % static_cast<uint64_t>(p.levels);
      value /= static_cast<uint64_t>(p.levels);
      if (start + j < count) codes[static_cast<size_t>(start + j)] = static_cast<uint16_t>(code);
    }
    if (value != 0) return InvalidData("packed code group at index " + std::to_string(start) + " is out of range");
  }
  return codes;
}

const char* ScaleDtype(ScaleFormat f) {
  switch (f) {
    case ScaleFormat::kBf16: return "BF16";
    case ScaleFormat::kFp16: return "F16";
    case ScaleFormat::kFp32: return "F32";
    case ScaleFormat::kE8m0:
    case ScaleFormat::kE4m3: return "U8";
  }
  return "?";
}

namespace {

uint8_t EncodeE4m3(float v) {
  // v is a value of the reference E4M3 format (bias 8): find its sign, exponent and mantissa.
  const uint8_t sign = std::signbit(v) ? 0x80 : 0;
  const float a = std::fabs(v);
  if (a == 0) return sign;
  int e = 0;
  const float m = std::frexp(a, &e);  // a = m 2^e, m in [0.5, 1): a = (2m) 2^(e-1)
  int biased = (e - 1) + 8;
  if (biased <= 0) {  // subnormal: a = mant/8 * 2^(1-8)
    return sign | static_cast<uint8_t>(std::lround(a * 1024.0f));
  }
  const int mant = static_cast<int>(std::lround((2 * m - 1) * 8));
  return sign | static_cast<uint8_t>(biased << 3) | static_cast<uint8_t>(mant);
}

float DecodeE4m3(uint8_t c) {
  const int e = (c >> 3) & 15, m = c & 7;
  const float a = e == 0 ? std::ldexp(static_cast<float>(m) / 8.0f, 1 - 8) : std::ldexp(1.0f + m / 8.0f, e - 8);
  return (c & 0x80) ? -a : a;
}

}  // namespace

std::vector<uint8_t> EncodeScales(std::span<const float> scales, ScaleFormat f) {
  std::vector<uint8_t> out;
  switch (f) {
    case ScaleFormat::kBf16:
    case ScaleFormat::kFp16:
      out.resize(scales.size() * 2);
      for (size_t i = 0; i < scales.size(); ++i) {
        const uint16_t h = f == ScaleFormat::kBf16 ? Bf16FromFloat(scales[i]) : Fp16FromFloat(scales[i]);
        std::memcpy(&out[2 * i], &h, 2);
      }
      break;
    case ScaleFormat::kFp32:
      out.resize(scales.size() * 4);
      std::memcpy(out.data(), scales.data(), out.size());
      break;
    case ScaleFormat::kE8m0:
      out.resize(scales.size());
      for (size_t i = 0; i < scales.size(); ++i) {
        int e = 0;
        std::frexp(scales[i], &e);  // scale = 2^(e-1) exactly
        out[i] = static_cast<uint8_t>(e - 1 + 127);
      }
      break;
    case ScaleFormat::kE4m3:
      out.resize(scales.size());
      for (size_t i = 0; i < scales.size(); ++i) out[i] = EncodeE4m3(scales[i]);
      break;
  }
  return out;
}

Result<std::vector<float>> DecodeScales(std::span<const uint8_t> bytes, ScaleFormat f, int64_t count) {
  const size_t width = static_cast<size_t>(ScaleFormatBits(f) / 8);
  if (count < 0 || bytes.size() != static_cast<size_t>(count) * width)
    return InvalidData("scales are " + std::to_string(bytes.size()) + " bytes, " + std::to_string(count) + " " +
                       ScaleFormatName(f) + " scales need " + std::to_string(static_cast<size_t>(count) * width));
  std::vector<float> out(static_cast<size_t>(count));
  for (size_t i = 0; i < out.size(); ++i) {
    switch (f) {
      case ScaleFormat::kBf16:
      case ScaleFormat::kFp16: {
        uint16_t h;
        std::memcpy(&h, &bytes[2 * i], 2);
        out[i] = f == ScaleFormat::kBf16 ? FloatFromBf16(h) : FloatFromFp16(h);
        break;
      }
      case ScaleFormat::kFp32: std::memcpy(&out[i], &bytes[4 * i], 4); break;
      case ScaleFormat::kE8m0: out[i] = std::ldexp(1.0f, static_cast<int>(bytes[i]) - 127); break;
      case ScaleFormat::kE4m3: out[i] = DecodeE4m3(bytes[i]); break;
    }
  }
  return out;
}

Status DequantiseInto(std::span<const float> centroids, const BlockGeometry& g, std::span<const float> scales,
                      std::span<const float> mins, std::span<const uint16_t> codes, std::span<float> out) {
  if (mins.empty()) return DequantiseInto(centroids, g, scales, codes, {}, {}, out);
  const int64_t n = g.rows * g.cols;
  if (static_cast<int64_t>(codes.size()) != n || static_cast<int64_t>(out.size()) != n)
    return InvalidData(std::to_string(codes.size()) + " codes for " + std::to_string(n) + " elements");
  if (static_cast<int64_t>(scales.size()) != g.num_blocks() || mins.size() != scales.size())
    return InvalidData(std::to_string(scales.size()) + " scales and " + std::to_string(mins.size()) + " mins for " +
                       std::to_string(g.num_blocks()) + " blocks");
  const int64_t across = g.blocks_across();
  for (int64_t r = 0; r < g.rows; ++r) {
    for (int64_t c = 0; c < g.cols; ++c) {
      const int64_t i = r * g.cols + c;
      const uint16_t code = codes[static_cast<size_t>(i)];
      if (code >= centroids.size())
        return InvalidData("code " + std::to_string(code) + " at element " + std::to_string(i) + " is past the " +
                           std::to_string(centroids.size()) + "-entry codebook");
      const size_t b = static_cast<size_t>((r / g.block_rows) * across + c / g.block_cols);
      out[static_cast<size_t>(i)] = OptValue(centroids[code], scales[b], mins[b], true);
    }
  }
  return Status::Ok();
}

Status DequantiseInto(std::span<const float> centroids, const BlockGeometry& g, std::span<const float> scales,
                      std::span<const uint16_t> codes, std::span<const int64_t> outlier_indices,
                      std::span<const float> outlier_values, std::span<float> out) {
  const int64_t n = g.rows * g.cols;
  if (static_cast<int64_t>(codes.size()) != n || static_cast<int64_t>(out.size()) != n)
    return InvalidData(std::to_string(codes.size()) + " codes for " + std::to_string(n) + " elements");
  if (!scales.empty() && static_cast<int64_t>(scales.size()) != g.num_blocks())
    return InvalidData(std::to_string(scales.size()) + " scales for " + std::to_string(g.num_blocks()) + " blocks");
  if (outlier_indices.size() != outlier_values.size()) return InvalidData("outlier indices and values differ in count");
  const int64_t across = g.blocks_across();
  for (int64_t r = 0; r < g.rows; ++r) {
    for (int64_t c = 0; c < g.cols; ++c) {
      const int64_t i = r * g.cols + c;
      const uint16_t code = codes[static_cast<size_t>(i)];
      if (code >= centroids.size())
        return InvalidData("code " + std::to_string(code) + " at element " + std::to_string(i) + " is past the " +
                           std::to_string(centroids.size()) + "-entry codebook");
      const float s = scales.empty() ? 1.0f : scales[static_cast<size_t>((r / g.block_rows) * across + c / g.block_cols)];
      out[static_cast<size_t>(i)] = centroids[code] * s;
    }
  }
  for (size_t k = 0; k < outlier_indices.size(); ++k) {
    const int64_t i = outlier_indices[k];
    if (i < 0 || i >= n) return InvalidData("outlier index " + std::to_string(i) + " is outside the tensor");
    out[static_cast<size_t>(i)] = outlier_values[k];
  }
  return Status::Ok();
}

}  // namespace owf
