#include "owf/io/packed.h"

#include <cstring>
#include <type_traits>

#include "owf/core/numeric.h"
#include "owf/entropy/coder.h"
#include "owf/formats/packing.h"
#include "owf/formats/rotation.h"
#include "owf/io/json_integer.h"

namespace owf {
namespace {

const char* CastDtype(ElementFamily f) {
  return f == ElementFamily::kBf16 ? "BF16" : f == ElementFamily::kFp16 ? "F16" : "F32";
}

// Field `key` of j as T; integers (and arrays of them) through JsonInteger.
template <typename T>
T Get(const nlohmann::json& j, const char* key) {
  const nlohmann::json& v = j.at(key);
  if constexpr (std::is_integral_v<T>) {
    return JsonInteger<T>(v);
  } else if constexpr (std::is_same_v<T, std::vector<int64_t>>) {
    if (!v.is_array()) throw nlohmann::json::type_error::create(302, "expected an array of integers", &v);
    T out;
    for (const auto& e : v) out.push_back(JsonInteger<int64_t>(e));
    return out;
  } else {
    return v.get<T>();
  }
}

// opt/optmin scaling (docs/container.md): per-block scales (and mins) in the scale format, or
// two-level: per-super-block scales (and min scales) plus bit-packed sub-block multipliers.
Status AddOptScales(SafetensorsWriter& w, const std::string& name, const QuantisedTensor& q, nlohmann::json& d) {
  const ScalingSpec& s = *q.spec.scaling;
  const ScaleFormat f = s.format;
  const BlockGeometry& g = q.geometry;
  d["scaling"] = ScaleKindName(s.kind);
  d["block"] = {g.block_rows, g.block_cols};
  d["scale_format"] = ScaleFormatName(f);
  auto add_scales = [&](const std::string& key, const std::vector<float>& v, int64_t across) -> Status {
    OWF_RETURN_IF_ERROR(w.Add(name + "." + key, ScaleDtype(f), {g.rows, across}, EncodeScales(v, f)));
    d[key] = name + "." + key;
    return Status::Ok();
  };
  auto add_multipliers = [&](const std::string& key, const std::vector<uint16_t>& v, int bits) -> Status {
    const LargeVector<uint8_t> packed = PackCodes(v, ChoosePacking(int64_t{1} << bits));
    OWF_RETURN_IF_ERROR(w.Add(name + "." + key, "U8", {static_cast<int64_t>(packed.size())}, packed));
    d[key] = name + "." + key;
    return Status::Ok();
  };
  if (!s.two_level()) {
    OWF_RETURN_IF_ERROR(add_scales("scales", q.scales, g.blocks_across()));
    if (s.with_min()) OWF_RETURN_IF_ERROR(add_scales("mins", q.mins, g.blocks_across()));
    return Status::Ok();
  }
  const int64_t supers = (g.cols + s.block_cols - 1) / s.block_cols;
  d["super_block"] = s.block_cols;
  d["sub_bits"] = s.sub_bits;
  if (s.sub_offset()) d["sub_offset"] = int64_t{s.sub_offset()};
  OWF_RETURN_IF_ERROR(add_scales("super_scales", q.super_scales, supers));
  OWF_RETURN_IF_ERROR(add_multipliers("sub_scales", q.sub_scales, s.sub_bits));
  if (s.with_min()) {
    d["min_bits"] = s.min_bits;
    OWF_RETURN_IF_ERROR(add_scales("super_mins", q.super_mins, supers));
    OWF_RETURN_IF_ERROR(add_multipliers("sub_mins", q.sub_mins, s.min_bits));
  }
  return Status::Ok();
}

// The per-block scales (and mins) of an opt/optmin tensor; g gets the block size.
Status ReadOptScales(const ModelReader& packed, const nlohmann::json& d, PackedCodes* out) {
  BlockGeometry* g = &out->geometry;
  const std::string kind = Get<std::string>(d, "scaling");
  if (kind != "opt" && kind != "optmin") return InvalidData("unknown scaling '" + kind + "'");
  const bool with_min = kind == "optmin";
  const auto block = Get<std::vector<int64_t>>(d, "block");
  if (block.size() != 2 || block[0] != 1 || block[1] < 1 || block[1] > (int64_t{1} << 24))
    return InvalidData("opt scaling needs blocks of 1 x n, n <= 2^24");
  g->block_rows = 1;
  g->block_cols = block[1];
  const auto fmt = ScaleFormatFromName(Get<std::string>(d, "scale_format"));
  if (!fmt) return InvalidData("unknown scale format");
  out->scale_format = fmt;
  auto part = [&](const char* key) -> Result<std::span<const uint8_t>> {
    if (!d.contains(key) || !d.at(key).is_string()) return InvalidData(std::string("missing part '") + key + "'");
    const TensorInfo* t = packed.Find(d.at(key).get<std::string>());
    if (!t) return InvalidData("part '" + d.at(key).get<std::string>() + "' is not in the file");
    return packed.RawBytes(*t);
  };
  const int64_t blocks = g->num_blocks();
  if (!d.contains("super_block")) {
    OWF_ASSIGN_OR_RETURN(auto sb, part("scales"));
    OWF_ASSIGN_OR_RETURN(out->scales, DecodeScales(sb, *fmt, blocks));
    if (with_min) {
      OWF_ASSIGN_OR_RETURN(auto mb, part("mins"));
      OWF_ASSIGN_OR_RETURN(out->mins, DecodeScales(mb, *fmt, blocks));
    }
    return Status::Ok();
  }
  const int64_t super = Get<int64_t>(d, "super_block");
  if (super < g->block_cols || super > (int64_t{1} << 24) || super % g->block_cols != 0)
    return InvalidData("super_block must be a multiple of the block size, up to 2^24");
  const int64_t per_super = super / g->block_cols;
  const int64_t supers_across = (g->cols + super - 1) / super, across = g->blocks_across();
  // One multiplied-out value per block: base[row, super-block] * multiplier[block], in fp32.
  auto expand = [&](const char* base_key, const char* sub_key, int bits, int64_t offset, std::vector<float>* v) -> Status {
    if (bits < 1 || bits > 16) return InvalidData(std::string(sub_key) + " bits must be 1..16");
    if (offset != 0 && offset != (int64_t{1} << bits) && offset != (int64_t{1} << (bits - 1)))
      return InvalidData("sub_offset must be 0, 2^(sub_bits-1) or 2^sub_bits");
    OWF_ASSIGN_OR_RETURN(auto bb, part(base_key));
    OWF_ASSIGN_OR_RETURN(std::vector<float> base, DecodeScales(bb, *fmt, g->rows * supers_across));
    OWF_ASSIGN_OR_RETURN(auto mb, part(sub_key));
    OWF_ASSIGN_OR_RETURN(LargeVector<uint16_t> q, UnpackCodes(mb, blocks, ChoosePacking(int64_t{1} << bits)));
    v->resize(static_cast<size_t>(blocks));
    for (int64_t r = 0; r < g->rows; ++r)
      for (int64_t j = 0; j < across; ++j) {
        const size_t b = static_cast<size_t>(r * across + j);
        (*v)[b] = base[static_cast<size_t>(r * supers_across + j / per_super)] * static_cast<float>(q[b] + offset);
      }
    return Status::Ok();
  };
  const int64_t offset = d.contains("sub_offset") ? Get<int64_t>(d, "sub_offset") : 0;
  OWF_RETURN_IF_ERROR(expand("super_scales", "sub_scales", Get<int>(d, "sub_bits"), offset, &out->scales));
  if (with_min) OWF_RETURN_IF_ERROR(expand("super_mins", "sub_mins", Get<int>(d, "min_bits"), 0, &out->mins));
  return Status::Ok();
}

}  // namespace

Result<LargeVector<uint8_t>> EncodeAs(const Tensor& t, const std::string& dtype) {
  LargeVector<uint8_t> out;
  const size_t n = t.data.size();
  if (dtype == "F32") {
    out.resize(n * 4);
    std::memcpy(out.data(), t.data.data(), out.size());
  } else if (dtype == "BF16" || dtype == "F16") {
    out.resize(n * 2);
    for (size_t i = 0; i < n; ++i) {
      const uint16_t h = dtype == "BF16" ? Bf16FromFloat(t.data[i]) : Fp16FromFloat(t.data[i]);
      std::memcpy(&out[2 * i], &h, 2);
    }
  } else {
    return Unsupported("cannot store values as '" + dtype + "'; owf writes F32, BF16 and F16");
  }
  return out;
}

int64_t PackedPayloadBytes(const QuantisedTensor& q) {
  const int64_t n = q.values.numel();
  if (!q.element.has_codes()) return n * static_cast<int64_t>(q.element.bits() / 8);
  int64_t bytes = !q.entropy_stream.empty()
                      ? static_cast<int64_t>(q.entropy_stream.size())
                      : ChoosePacking(static_cast<int64_t>(q.element.centroids().size())).PackedBytes(n);
  if (q.spec.scaling) {
    const ScalingSpec& s = *q.spec.scaling;
    const int64_t width = ScaleFormatBits(s.format) / 8, per = s.with_min() ? 2 : 1;
    if (s.two_level()) {
      const int64_t blocks = static_cast<int64_t>(q.scales.size());
      bytes += static_cast<int64_t>(q.super_scales.size()) * width * per;
      bytes += ChoosePacking(int64_t{1} << s.sub_bits).PackedBytes(blocks);
      if (s.with_min()) bytes += ChoosePacking(int64_t{1} << s.min_bits).PackedBytes(blocks);
    } else {
      bytes += static_cast<int64_t>(q.scales.size()) * width * per;
    }
  }
  const int64_t k = static_cast<int64_t>(q.outlier_indices.size());
  if (k) bytes += k * ((n >= (int64_t{1} << 32) ? 8 : 4) + (q.spec.outliers->format == ElementFamily::kFp32 ? 4 : 2));
  return bytes;
}

Result<nlohmann::json> AddPackedTensor(SafetensorsWriter& w, const std::string& name, const QuantisedTensor& q,
                                       const std::string& source_dtype) {
  const int64_t n = q.values.numel();
  nlohmann::json d;
  d["spec"] = ToString(q.spec);
  if (!q.fitted.empty()) d["fitted"] = q.fitted;
  d["shape"] = q.values.shape;
  d["dtype"] = source_dtype;
  d["bits"] = q.total_bits();
  if (!q.element.has_codes()) {
    const char* dtype = CastDtype(q.spec.element.family);
    OWF_ASSIGN_OR_RETURN(auto bytes, EncodeAs(q.values, dtype));
    OWF_RETURN_IF_ERROR(w.Add(name + ".values", dtype, q.values.shape, bytes));
    d["kind"] = "cast";
    d["values"] = name + ".values";
    return d;
  }
  d["kind"] = "codes";
  if (q.rotation_seed) d["rotation"] = {{"kind", "hadamard"}, {"seed", *q.rotation_seed}};
  const std::vector<float>& codebook = q.element.centroids();
  d["codebook"] = codebook;
  const CodePacking p = ChoosePacking(static_cast<int64_t>(codebook.size()));
  d["group"] = p.group;
  d["group_bits"] = p.group_bits;
  d["rows"] = q.geometry.rows;
  d["cols"] = q.geometry.cols;
  if (!q.entropy_stream.empty()) {
    // Entropy-coded codes: the owf/entropy stream (docs/container.md), not fixed-width packing.
    d["coding"] = q.spec.entropy == EntropyCoding::kRans ? "rans" : "huffman";
    OWF_RETURN_IF_ERROR(w.Add(name + ".codes", "U8", {static_cast<int64_t>(q.entropy_stream.size())}, q.entropy_stream));
  } else {
    const LargeVector<uint8_t> packed = PackCodes(q.codes, p);
    OWF_RETURN_IF_ERROR(w.Add(name + ".codes", "U8", {static_cast<int64_t>(packed.size())}, packed));
  }
  d["codes"] = name + ".codes";
  if (q.spec.scaling && q.spec.scaling->optimised()) {
    OWF_RETURN_IF_ERROR(AddOptScales(w, name, q, d));
  } else if (q.spec.scaling) {
    const ScaleFormat f = q.spec.scaling->format;
    d["block"] = {q.geometry.block_rows, q.geometry.block_cols};
    d["scale_format"] = ScaleFormatName(f);
    const std::vector<uint8_t> s = EncodeScales(q.scales, f);
    OWF_RETURN_IF_ERROR(w.Add(name + ".scales", ScaleDtype(f),
                              {q.geometry.blocks_down(), q.geometry.blocks_across()}, s));
    d["scales"] = name + ".scales";
  }
  if (!q.outlier_indices.empty()) {
    const int64_t k = static_cast<int64_t>(q.outlier_indices.size());
    const bool wide = n >= (int64_t{1} << 32);
    std::vector<uint8_t> idx;
    if (wide) {
      idx.assign(reinterpret_cast<const uint8_t*>(q.outlier_indices.data()),
                 reinterpret_cast<const uint8_t*>(q.outlier_indices.data() + k));
    } else {
      std::vector<uint32_t> narrow(q.outlier_indices.begin(), q.outlier_indices.end());
      idx.assign(reinterpret_cast<const uint8_t*>(narrow.data()), reinterpret_cast<const uint8_t*>(narrow.data() + k));
    }
    OWF_RETURN_IF_ERROR(w.Add(name + ".outlier_index", wide ? "I64" : "U32", {k}, idx));
    Tensor values;
    values.shape = {k};
    values.data.assign(q.outlier_values.begin(), q.outlier_values.end());
    const char* vdtype = CastDtype(q.spec.outliers->format);
    OWF_ASSIGN_OR_RETURN(auto vbytes, EncodeAs(values, vdtype));
    OWF_RETURN_IF_ERROR(w.Add(name + ".outlier_value", vdtype, {k}, vbytes));
    d["outliers"] = {{"count", k}, {"index", name + ".outlier_index"}, {"value", name + ".outlier_value"}};
  }
  return d;
}

Result<nlohmann::json> ReadPackedMetadata(const ModelReader& packed) {
  const nlohmann::json& meta = packed.metadata();
  if (!meta.is_object() || !meta.contains(kPackedMetadataKey) || !meta[kPackedMetadataKey].is_string())
    return InvalidData("not an owf packed file (no \"owf\" entry in the safetensors __metadata__)");
  nlohmann::json j = nlohmann::json::parse(meta[kPackedMetadataKey].get<std::string>(), nullptr, false);
  if (j.is_discarded() || !j.is_object()) return InvalidData("the \"owf\" metadata is not a JSON object");
  if (!j.contains("version") || !j["version"].is_number_integer() || j["version"].get<int>() != kPackedVersion)
    return Unsupported("packed container version " + (j.contains("version") ? j["version"].dump() : "?") +
                       "; this owf reads version " + std::to_string(kPackedVersion));
  if (!j.contains("tensors") || !j["tensors"].is_object()) return InvalidData("the \"owf\" metadata has no tensors");
  return j;
}

Result<PackedCodes> ReadPackedCodes(const ModelReader& packed, const std::string& name, const nlohmann::json& d) {
  auto fail = [&](const std::string& what) { return InvalidData("packed tensor '" + name + "': " + what); };
  auto part = [&](const nlohmann::json& key) -> Result<const TensorInfo*> {
    if (!key.is_string()) return fail("missing part name");
    const TensorInfo* t = packed.Find(key.get<std::string>());
    if (!t) return fail("part '" + key.get<std::string>() + "' is not in the file");
    return t;
  };
  try {
    PackedCodes out;
    out.shape = Get<std::vector<int64_t>>(d, "shape");
    int64_t n = 1;
    for (int64_t dim : out.shape) {
      if (dim < 0 || (dim > 0 && n > (int64_t{1} << 40) / dim)) return fail("bad shape");
      n *= dim;
    }
    const std::string kind = Get<std::string>(d, "kind");
    if (kind != "codes") return fail("kind '" + kind + "' holds no codes");
    out.codebook = Get<std::vector<float>>(d, "codebook");
    if (out.codebook.empty() || out.codebook.size() > 65536) return fail("codebook must have 1 to 65536 entries");
    CodePacking p{static_cast<int64_t>(out.codebook.size()), Get<int>(d, "group"), Get<int>(d, "group_bits")};
    if (p.group < 1 || p.group > 64 || p.group_bits < 1 || p.group_bits > 64) return fail("bad code packing");
    BlockGeometry& g = out.geometry;
    g = BlockGeometry{Get<int64_t>(d, "rows"), Get<int64_t>(d, "cols"), 0, 0};
    // Bounded like the shape (n <= 2^40), so that the block arithmetic below cannot overflow either.
    constexpr int64_t kMaxDim = int64_t{1} << 40;
    int64_t cells = 0;
    if (g.rows < 0 || g.cols < 0 || g.rows > kMaxDim || g.cols > kMaxDim ||
        __builtin_mul_overflow(g.rows, g.cols, &cells) || cells != n)
      return fail("rows x cols does not match the shape");
    g.block_rows = g.rows;
    g.block_cols = g.cols;
    OWF_ASSIGN_OR_RETURN(const TensorInfo* codes_info, part(d.at("codes")));
    if (d.contains("coding")) {
      const std::string coding = Get<std::string>(d, "coding");
      if (coding != "rans" && coding != "huffman") return fail("unknown coding '" + coding + "'");
      OWF_ASSIGN_OR_RETURN(out.codes, DecodeEntropy(packed.RawBytes(*codes_info)));
      if (static_cast<int64_t>(out.codes.size()) != n) return fail("the coded stream holds the wrong number of codes");
    } else {
      OWF_ASSIGN_OR_RETURN(out.codes, UnpackCodes(packed.RawBytes(*codes_info), n, p));
    }
    if (d.contains("scaling")) {
      OWF_RETURN_IF_ERROR(ReadOptScales(packed, d, &out).WithContext("packed tensor '" + name + "'"));
    } else if (d.contains("scales")) {
      const auto block = Get<std::vector<int64_t>>(d, "block");
      if (block.size() != 2 || block[0] < 1 || block[1] < 1 || block[0] > kMaxDim || block[1] > kMaxDim)
        return fail("bad block");
      g.block_rows = block[0];
      g.block_cols = block[1];
      out.scale_format = ScaleFormatFromName(Get<std::string>(d, "scale_format"));
      if (!out.scale_format) return fail("unknown scale format");
      OWF_ASSIGN_OR_RETURN(const TensorInfo* s_info, part(d.at("scales")));
      OWF_ASSIGN_OR_RETURN(out.scales, DecodeScales(packed.RawBytes(*s_info), *out.scale_format, g.num_blocks()));
    }
    if (d.contains("outliers")) {
      const auto& o = d.at("outliers");
      OWF_ASSIGN_OR_RETURN(const TensorInfo* i_info, part(o.at("index")));
      OWF_ASSIGN_OR_RETURN(const TensorInfo* v_info, part(o.at("value")));
      const std::span<const uint8_t> raw = packed.RawBytes(*i_info);
      const size_t width = i_info->dtype_name == "I64" ? 8 : i_info->dtype_name == "U32" ? 4 : 0;
      if (width == 0 || raw.size() % width) return fail("outlier indices must be U32 or I64");
      for (size_t k = 0; k < raw.size() / width; ++k) {
        if (width == 8) {
          int64_t v;
          std::memcpy(&v, &raw[8 * k], 8);
          out.outlier_indices.push_back(v);
        } else {
          uint32_t v;
          std::memcpy(&v, &raw[4 * k], 4);
          out.outlier_indices.push_back(v);
        }
      }
      OWF_ASSIGN_OR_RETURN(Tensor values, packed.Read(*v_info));
      out.outlier_values.assign(values.data.begin(), values.data.end());
      if (out.outlier_indices.size() != out.outlier_values.size()) return fail("outlier indices and values differ in count");
      for (int64_t i : out.outlier_indices)
        if (i < 0 || i >= n) return fail("outlier index " + std::to_string(i) + " is outside the tensor");
    }
    if (d.contains("rotation")) {
      const auto& r = d.at("rotation");
      if (r.at("kind").get<std::string>() != "hadamard") return fail("unknown rotation");
      out.rotation_seed = JsonInteger<uint64_t>(r.at("seed"));
    }
    return out;
  } catch (const nlohmann::json::exception& e) {
    return fail(std::string("bad description: ") + e.what());
  }
}

Result<Tensor> ReadPackedTensor(const ModelReader& packed, const std::string& name, const nlohmann::json& d) {
  try {
    if (d.at("kind").get<std::string>() == "cast") {
      const std::vector<int64_t> shape = Get<std::vector<int64_t>>(d, "shape");
      int64_t n = 1;
      for (int64_t dim : shape) {
        if (dim < 0 || (dim > 0 && n > (int64_t{1} << 40) / dim))
          return InvalidData("packed tensor '" + name + "': bad shape");
        n *= dim;
      }
      const nlohmann::json& key = d.at("values");
      const TensorInfo* v = key.is_string() ? packed.Find(key.get<std::string>()) : nullptr;
      if (!v) return InvalidData("packed tensor '" + name + "': values part is missing");
      OWF_ASSIGN_OR_RETURN(Tensor t, packed.Read(*v));
      if (t.numel() != n) return InvalidData("packed tensor '" + name + "': values have the wrong size");
      t.shape = shape;
      return t;
    }
  } catch (const nlohmann::json::exception& e) {
    return InvalidData("packed tensor '" + name + "': bad description: " + e.what());
  }
  OWF_ASSIGN_OR_RETURN(PackedCodes p, ReadPackedCodes(packed, name, d));
  Tensor out;
  out.shape = p.shape;
  out.data.resize(p.codes.size());
  OWF_RETURN_IF_ERROR(DequantiseInto(p.codebook, p.geometry, p.scales, p.mins, p.codes, out.data)
                          .WithContext("packed tensor '" + name + "'"));
  if (p.rotation_seed) {
    out.shape = {p.geometry.rows, p.geometry.cols};
    HadamardRotate(out, *p.rotation_seed, /*inverse=*/true, 0);
    out.shape = p.shape;
  }
  for (size_t k = 0; k < p.outlier_indices.size(); ++k)
    out.data[static_cast<size_t>(p.outlier_indices[k])] = p.outlier_values[k];
  return out;
}

}  // namespace owf
